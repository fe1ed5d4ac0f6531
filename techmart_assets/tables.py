"""The lakehouse's Delta tables as their users handle them: their history, an earlier version read back,
a rollback, and upkeep (OPTIMIZE with Z-order, VACUUM).

Reads go through delta-rs (no JVM for a look at a table); writes (restore, optimize, vacuum) go through
delta-spark, as every other write of the lakehouse does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import deltalake
import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import SparkSession

from techmart_assets.delta import Commit, last_commit, rows_written

# The batch tables a day's reads filter by day and then by customer: Z-ordered on both. A table
# missing here is compacted without Z-order.
ZORDER: dict[str, tuple[str, ...]] = {
    "bronze/transactions": ("partition_date",),
    "bronze/web_events": ("partition_date",),
    "silver/transactions": ("partition_date", "customer_id"),
    "silver/web_events": ("partition_date", "customer_id"),
    "gold/fact_sales": ("sale_date", "customer_sk"),
}
MAINTAINED = tuple(ZORDER)
DEFAULT_RETENTION_HOURS = 7 * 24
# Delta's own safety line: a shorter retention can remove files a running reader or writer still needs.
SAFE_RETENTION_HOURS = 7 * 24


class TableError(ValueError):
    """A table name or version a user gave that does not fit the lakehouse."""


def split_name(name: str) -> tuple[str, str]:
    """`silver/transactions` -> ("silver", "transactions"); gold's metrics keep their folder."""
    layer, _, rest = name.strip("/").partition("/")
    if layer not in ("bronze", "silver", "gold") or not rest:
        raise TableError(f"{name!r} is not a table name: write LAYER/NAME, e.g. silver/transactions")
    return layer, rest


def open_table(path: str, as_of: int | datetime | None = None) -> deltalake.DeltaTable:
    try:
        table = deltalake.DeltaTable(path)
    except TableNotFoundError as error:
        raise TableError(f"no Delta table at {path}") from error
    if as_of is not None:
        try:
            table.load_as_version(as_of)
        except Exception as error:  # delta-rs raises several kinds for a version it does not hold
            raise TableError(f"{path} has no version as of {as_of}: {error}") from error
    return table


def parse_as_of(text: str) -> int | datetime:
    """A version number, or an ISO-8601 time (UTC when it names no offset)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise TableError(f"--as-of takes a version number or an ISO-8601 time, not {text!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Version:
    version: int
    at: datetime
    operation: str
    parameters: str
    rows_written: int | None

    def as_row(self) -> dict[str, object]:
        return {
            "version": self.version,
            "time (UTC)": self.at.strftime("%Y-%m-%d %H:%M:%S"),
            "operation": self.operation,
            "rows written": "" if self.rows_written is None else f"{self.rows_written:,}",
            "parameters": self.parameters,
        }


def history(path: str, limit: int | None = None) -> list[Version]:
    """The table's commits, newest first."""
    versions = []
    for commit in open_table(path).history(limit):
        written = rows_written(commit)
        parameters = commit.get("operationParameters") or {}
        shown = {k: v for k, v in parameters.items() if v not in (None, "", "[]", "false")}
        versions.append(
            Version(
                version=int(commit["version"]),
                at=datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
                operation=commit.get("operation", "?"),
                parameters=json.dumps(shown, sort_keys=True)[:160] if shown else "",
                rows_written=written,
            )
        )
    return versions


def rows_as_of(path: str, as_of: int | datetime | None, limit: int) -> tuple[int, pa.Table]:
    """The version read and its first `limit` rows."""
    table = open_table(path, as_of)
    return table.version(), table.to_pyarrow_dataset().head(limit)


def restore(spark: SparkSession, path: str, version: int) -> Commit:
    """Roll the table back to `version` with a new commit (the versions after it stay readable)."""
    current = open_table(path).version()
    if not 0 <= version < current:
        raise TableError(f"{path} is at version {current}: restore to one of 0..{current - 1}")
    DeltaTable.forPath(spark, path).restoreToVersion(version)
    return last_commit(path)


@dataclass(frozen=True)
class Files:
    count: int
    bytes: int


def active_files(path: str) -> Files:
    """The data files the current version reads."""
    actions = pa.table(open_table(path).get_add_actions(flatten=True))  # from delta-rs's arro3
    return Files(actions.num_rows, int(pc.sum(actions.column("size_bytes")).as_py() or 0))


def optimize(spark: SparkSession, path: str, zorder: tuple[str, ...]) -> None:
    """Compact small files; cluster them on the columns reads filter by."""
    builder = DeltaTable.forPath(spark, path).optimize()
    if zorder:
        builder.executeZOrderBy(*zorder)
    else:
        builder.executeCompaction()


def check_retention(retention_hours: float, allow_short: bool) -> None:
    """Refuse a VACUUM retention below Delta's 7 days unless `allow_short` says so."""
    if retention_hours < SAFE_RETENTION_HOURS and not allow_short:
        raise TableError(
            f"a VACUUM retention of {retention_hours:g} h is below Delta's safe {SAFE_RETENTION_HOURS} h: "
            "it can delete files that time travel and running writers still read; set "
            "allow_short_retention to do it anyway"
        )


def vacuum(spark: SparkSession, path: str, retention_hours: float, allow_short: bool = False) -> None:
    """Delete files no version younger than the retention reads. Below Delta's 7 days only with an
    explicit `allow_short` (a reader of an older version, or a running write, may still need them)."""
    check_retention(retention_hours, allow_short)
    key = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(key, "true")
    spark.conf.set(key, "false" if allow_short else "true")
    try:
        DeltaTable.forPath(spark, path).vacuum(retention_hours)
    finally:
        spark.conf.set(key, previous)
