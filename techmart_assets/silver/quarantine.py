"""The quarantine: every rejected row, as received, with the rule that rejected it and why."""

from __future__ import annotations

from pyspark.sql import DataFrame
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
        "_record", F.to_json(F.struct(*bronze.columns))
    )


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
