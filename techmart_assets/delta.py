"""Delta Lake writes shared by every Spark layer: idempotent day replacement, exactly-once appends of
streaming micro-batches, and commit facts."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import deltalake
import pyarrow as pa
from delta.tables import DeltaTable
from deltalake import QueryBuilder
from deltalake.exceptions import TableNotFoundError
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
    return last_commit(path)


def rows_written(entry: dict) -> int | None:
    """The rows a commit (an entry of delta-rs `history`) wrote, as Spark (`numOutputRows`) or
    delta-rs (`num_added_rows`; a MERGE's rows inserted and updated, not the ones it copied) records
    them; None when the commit says nothing of rows."""
    metrics = entry.get("operationMetrics") or {}
    if "num_target_rows_inserted" in metrics:  # a delta-rs MERGE: the rows it inserted or changed
        return int(metrics["num_target_rows_inserted"]) + int(metrics.get("num_target_rows_updated") or 0)
    written = metrics.get("numOutputRows", metrics.get("num_added_rows"))
    return None if written is None else int(written)


def last_commit(path: str) -> Commit:
    """The latest commit of the Delta table at `path`, read from its log by delta-rs: Spark's
    `history` is a Spark job, a tenth of a second for each table a run writes."""
    entry = deltalake.DeltaTable(path).history(1)[0]
    metrics = {name: str(value) for name, value in (entry.get("operationMetrics") or {}).items()}
    return Commit(version=entry["version"], operation=entry["operation"], metrics=metrics)


def select(path: str, sql: str) -> pa.Table:
    """DataFusion SQL over the Delta table at `path` (named `t`), read by delta-rs without Spark: for
    the small facts a run reports about a table it wrote, where a Spark job costs tenths of a second."""
    return pa.table(QueryBuilder().register("t", deltalake.DeltaTable(path)).execute(sql).read_all())


def count_rows(path: str, where: str = "TRUE") -> int:
    """Rows of the Delta table at `path` that match `where` (SQL), read by delta-rs; raises
    `TableNotFoundError` when there is no table."""
    return select(path, f"SELECT count(*) AS n FROM t WHERE {where}")["n"][0].as_py()


def total_rows(paths: Sequence[str]) -> int:
    """Rows of the Delta tables at `paths` together, a path without a table counting none."""
    total = 0
    for path in paths:
        try:
            total += count_rows(path)
        except TableNotFoundError:
            continue
    return total


def count_by(path: str, column: str, where: str) -> dict[str, int]:
    """Rows of the Delta table at `path` that match `where` (SQL), counted by `column` (as text), read
    by delta-rs; {} when there is no table."""
    return {k[0]: n for k, n in count_by_each(path, [column], where).items()}


def count_by_each(path: str, columns: Sequence[str], where: str) -> dict[tuple[str, ...], int]:
    """`count_by` for each combination of `columns`' values (as text)."""
    keys = ", ".join(f"CAST({c} AS VARCHAR) AS k{i}" for i, c in enumerate(columns))
    groups = ", ".join(str(i + 1) for i in range(len(columns)))
    try:
        found = select(path, f"SELECT {keys}, count(*) AS n FROM t WHERE {where} GROUP BY {groups}")
    except TableNotFoundError:
        return {}
    values = [found[f"k{i}"].to_pylist() for i in range(len(columns))]
    return dict(zip(zip(*values, strict=True), found["n"].to_pylist(), strict=True))


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


# The Spark local property holding the id of the streaming query whose micro-batch runs (the id is
# kept in the checkpoint: it survives restarts, and a new checkpoint gets a new one).
QUERY_ID_PROPERTY = "sql.streaming.queryId"
# How many of a table's latest commits a restarted query searches for its own last micro-batch first.
HISTORY_LOOKBACK = 100


@dataclass(frozen=True)
class BatchMarker:
    """Which streaming query's which micro-batch a commit holds (in its `userMetadata`)."""

    query_id: str
    batch_id: int

    @property
    def metadata(self) -> str:
        return json.dumps({"query_id": self.query_id, "batch_id": self.batch_id}, separators=(",", ":"))


def _batches_of(commits: list, query_id: str) -> list[int]:
    """The micro-batches of `query_id` among commits (rows with `userMetadata`)."""
    batches = []
    for (metadata,) in commits:
        try:
            marker = json.loads(metadata) if metadata else None
        except ValueError:  # a commit of another writer
            continue
        if isinstance(marker, dict) and marker.get("query_id") == query_id:
            batches.append(int(marker["batch_id"]))
    return batches


def last_committed_batch(spark: SparkSession, path: str, query_id: str) -> int:
    """The highest micro-batch of `query_id` committed to the table at `path`, -1 if none."""
    if not is_delta_table(spark, path):
        return -1
    table = DeltaTable.forPath(spark, path)
    commits = table.history(HISTORY_LOOKBACK).select("userMetadata").collect()
    batches = _batches_of(commits, query_id)
    if not batches and len(commits) == HISTORY_LOOKBACK:  # only others' latest commits: look further
        batches = _batches_of(table.history().select("userMetadata").collect(), query_id)
    return max(batches, default=-1)


class BatchLedger:
    """Exactly-once appends of a streaming query's micro-batches to one Delta table, in foreachBatch.

    Each commit's `userMetadata` names the query (its id, kept in the checkpoint) and the micro-batch
    (`BatchMarker`). After a restart, the first batch looks up the last one the query committed;
    from then on the ledger remembers it. A replayed batch (the last one, when the process died
    between the Delta commit and the checkpoint's) gets no marker: it is skipped. Delta's own
    `txnAppId`/`txnVersion` (and its streaming sink, which uses them) do the same, but Delta 3.3
    reconstructs the table's whole state, three Spark jobs, to check them on every write: most of a
    small micro-batch's time.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._last: dict[str, int] = {}  # query id -> its last micro-batch in the table

    def marker(self, spark: SparkSession, batch_id: int) -> BatchMarker | None:
        """The marker to commit this micro-batch with, or None when the table holds it already."""
        query_id = spark.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
        if query_id is None:
            raise RuntimeError(f"a BatchLedger writes streaming micro-batches ({QUERY_ID_PROPERTY} unset)")
        if query_id not in self._last:
            self._last[query_id] = last_committed_batch(spark, self.path, query_id)
        return BatchMarker(query_id, batch_id) if batch_id > self._last[query_id] else None

    def append(
        self,
        frame: DataFrame,
        marker: BatchMarker,
        partition_by: Sequence[str] = (),
        options: dict[str, str] | None = None,
    ) -> None:
        """Append `frame` to the table in one commit carrying `marker`, and remember it."""
        writer = frame.write.format("delta").mode("append").options(**(options or {}))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.option("userMetadata", marker.metadata).save(self.path)
        self._last[marker.query_id] = marker.batch_id

    def append_rows(
        self,
        rows: pa.Table,
        marker: BatchMarker,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
        mode: str = "append",
    ) -> None:
        """Append the Arrow table `rows` in one commit carrying `marker`, written by delta-rs from this
        process: for the handful of rows a micro-batch may have, no Spark job and no Spark commit
        (a Spark append took about half a small micro-batch). The commit also carries Delta's own
        transaction (`txn`: the query id and the micro-batch), so any Delta reader can tell which
        batches the table holds. `configuration`: the table's properties, if this write creates it.
        `mode="overwrite"`: the rows replace the table's instead.
        """
        new = not deltalake.DeltaTable.is_deltatable(self.path)
        deltalake.write_deltalake(
            self.path,
            rows,
            mode=mode,
            partition_by=list(partition_by) or None,
            configuration=configuration if new else None,
            commit_properties=_commit_properties(marker),
        )
        self._last[marker.query_id] = marker.batch_id

    def merge_rows(
        self, rows: pa.Table, marker: BatchMarker, predicate: str, updates: dict[str, str] | None = None
    ) -> None:
        """MERGE the Arrow table `rows` (alias `source`) into the existing table (alias `target`) on
        `predicate`, in one delta-rs commit carrying `marker` (as `append_rows`): a matched row takes
        `updates` (column -> SQL over `target` and `source`; default: the source's row), the others
        are inserted."""
        merger = deltalake.DeltaTable(self.path).merge(
            rows,
            predicate,
            source_alias="source",
            target_alias="target",
            commit_properties=_commit_properties(marker),
        )
        merger = merger.when_matched_update(updates) if updates else merger.when_matched_update_all()
        merger.when_not_matched_insert_all().execute()
        self._last[marker.query_id] = marker.batch_id


def _commit_properties(marker: BatchMarker) -> deltalake.CommitProperties:
    return deltalake.CommitProperties(
        custom_metadata={"userMetadata": marker.metadata},
        app_transactions=[deltalake.Transaction(app_id=marker.query_id, version=marker.batch_id)],
    )


def append_batches(
    path: str, partition_by: Sequence[str] = (), options: dict[str, str] | None = None
) -> Callable[[DataFrame, int], None]:
    """A foreachBatch function appending each micro-batch to the Delta table at `path` exactly once."""
    ledger = BatchLedger(path)

    def write(batch: DataFrame, batch_id: int) -> None:
        marker = ledger.marker(batch.sparkSession, batch_id)
        if marker is not None:
            ledger.append(batch, marker, partition_by, options)

    return write
