"""The quarantine: every rejected row, as received, with the rule that rejected it and why."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

QUARANTINE_COLUMNS = (
    "source",
    "record_key",
    "quarantine_rule",
    "quarantine_reason",
    "record",
    "raw_line",
    "partition_date",
    "_source_file",
    "_ingested_at",
    "quarantined_at",
)


def with_record(bronze: DataFrame) -> DataFrame:
    """Bronze rows with a row id and `_record`: the whole row as received, as JSON, carried along
    so that a row rejected at any step reaches the quarantine exactly as it arrived."""
    return bronze.withColumn("_row_id", F.monotonically_increasing_id()).withColumn(
        "_record", record_as_received(bronze.columns, changed=())
    )


RECEIVED_PREFIX = "_received_"


def received(column: str) -> str:
    """The name of `with_received`'s copy of `column` as received."""
    return f"{RECEIVED_PREFIX}{column}"


def with_received(bronze: DataFrame, changed: Sequence[str]) -> DataFrame:
    """Bronze rows with a copy, as received, of each of the `changed` columns (the ones the
    transformation retypes or fills in): `record_as_received` builds a rejected row's `_record`
    from them and the columns left alone, so a transformation that rejects rows late does not
    carry every row's JSON through its shuffles (see bench/HISTORY.md, 2026-12-03)."""
    return bronze.withColumns({received(c): F.col(c) for c in changed})


def record_as_received(columns: Sequence[str], changed: Sequence[str]) -> Column:
    """A row's JSON as received: its bronze `columns`, the `changed` ones from `with_received`'s
    copies (none changed: the row as it is)."""
    return F.to_json(F.struct(*[F.col(received(c)).alias(c) if c in changed else F.col(c) for c in columns]))


def without_received(frame: DataFrame) -> DataFrame:
    return frame.drop(*[c for c in frame.columns if c.startswith(RECEIVED_PREFIX)])


def to_quarantine(rejected: DataFrame, source: str, key: str) -> DataFrame:
    """Rejected rows (with `_record`, `quarantine_rule`, `quarantine_reason`) in the quarantine's shape."""
    return rejected.select(
        F.lit(source).alias("source"),
        F.col(key).alias("record_key"),
        "quarantine_rule",
        "quarantine_reason",
        F.col("_record").alias("record"),
        F.col("_raw_line").alias("raw_line"),
        "partition_date",
        "_source_file",
        "_ingested_at",
        F.current_timestamp().alias("quarantined_at"),
    )
