"""Delta Lake writes shared by every Spark layer: idempotent day replacement and commit facts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

PARTITION_COLUMN = "partition_date"
# Tables are not Hive-partitioned by day (a day holds a few hundred rows at reference scale, which
# would make thousands of tiny files). Rows are clustered by month into files sorted by day, so
# Delta's min/max statistics let a one-day replaceWhere touch one file.
_DAYS_PER_FILE = 31


@dataclass(frozen=True)
class Commit:
    version: int
    operation: str
    metrics: dict[str, str]

    def metric(self, name: str) -> int:
        return int(self.metrics.get(name, 0))


def days_predicate(days: Sequence[date], column: str = PARTITION_COLUMN) -> str:
    """A SQL predicate selecting exactly these days: a range when they are contiguous, else a list."""
    ordered = sorted(set(days))
    first, last = ordered[0], ordered[-1]
    if (last - first).days + 1 == len(ordered):
        return f"{column} BETWEEN DATE'{first}' AND DATE'{last}'"
    listed = ", ".join(f"DATE'{d}'" for d in ordered)
    return f"{column} IN ({listed})"


class IncompatibleSchemaError(ValueError):
    """New data changes the type of a column the table already has."""


def check_compatible(frame: DataFrame, path: str) -> None:
    """Raise, naming the columns, when `frame` would change the type of an existing column.

    New columns are schema evolution and welcome; a changed type is not merged silently.
    """
    spark = frame.sparkSession
    if not is_delta_table(spark, path):
        return
    existing = {f.name: f.dataType for f in spark.read.format("delta").load(path).schema.fields}
    changed = [
        f"'{f.name}' (table: {existing[f.name].simpleString()}, new data: {f.dataType.simpleString()})"
        for f in frame.schema.fields
        if f.name in existing and f.dataType != existing[f.name]
    ]
    if changed:
        raise IncompatibleSchemaError(
            f"Incompatible type change in column {', '.join(changed)} of {path}; nothing was written."
        )


def replace_days(frame: DataFrame, path: str, days: Sequence[date], where: str | None = None) -> Commit:
    """Replace exactly `days` of the Delta table at `path` with `frame` (creating the table if needed).

    Running it twice with the same input leaves one copy: replaceWhere removes what the days held.
    `where` (a SQL predicate) narrows what is replaced to the rows of those days it selects; the
    days' other rows are kept. Every row of `frame` must satisfy it (Delta checks, and fails if not).
    New columns are added to the table schema; a column whose type changes fails before writing.
    """
    check_compatible(frame, path)
    replaced = days_predicate(days) if where is None else f"({days_predicate(days)}) AND ({where})"
    files = max(1, math.ceil(len(set(days)) / _DAYS_PER_FILE))
    (
        frame.repartition(files, F.date_trunc("month", PARTITION_COLUMN))
        .sortWithinPartitions(PARTITION_COLUMN)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", replaced)
        .option("mergeSchema", "true")
        .save(path)
    )
    return last_commit(frame.sparkSession, path)


def last_commit(spark: SparkSession, path: str) -> Commit:
    row = (
        DeltaTable.forPath(spark, path).history(1).select("version", "operation", "operationMetrics").first()
    )
    return Commit(version=row.version, operation=row.operation, metrics=dict(row.operationMetrics or {}))


def is_delta_table(spark: SparkSession, path: str) -> bool:
    """True when `path` holds a Delta table, even one another process created after this session
    first looked: `isDeltaTable` answers from the session's cached log of the path, which stays
    "no table" until something updates it; `forPath` looks at the folder."""
    if DeltaTable.isDeltaTable(spark, path):
        return True
    try:
        DeltaTable.forPath(spark, path)
    except AnalysisException:
        return False
    return True


def read_days(spark: SparkSession, path: str, days: Sequence[date]) -> DataFrame | None:
    """The rows of `days` in the Delta table at `path`, or None when the table does not exist yet."""
    if not is_delta_table(spark, path):
        return None
    return spark.read.format("delta").load(path).where(days_predicate(days))
