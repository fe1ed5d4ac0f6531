"""Deduplication by business key across days: the first valid occurrence wins, deterministically."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from techmart_assets.silver.batch import shared


def split_first_occurrences(
    valid: DataFrame, key: str, order: Sequence[str | Column], earlier: DataFrame, persisted: list[DataFrame]
) -> tuple[DataFrame, DataFrame]:
    """(first occurrences, duplicates) of `valid` rows by `key`.

    A row is a duplicate when its key was accepted on an earlier day (`earlier`: key, partition_date)
    or appears before it in this batch by (partition_date, *order). Duplicates carry the rule
    `duplicate_<key>` and a reason naming the day the key was first received. The ranking both
    outputs read is added to `persisted`.
    """
    first_seen = Window.partitionBy(key).orderBy("partition_date", *order)
    previously = earlier.select(key, F.col("partition_date").alias("_first_day")).distinct()
    ranked = shared(
        valid.withColumn("_occurrence", F.row_number().over(first_seen))
        .withColumn("_batch_first_day", F.first("partition_date").over(first_seen))
        .join(previously, key, "left"),
        persisted,
    )
    is_duplicate = F.col("_first_day").isNotNull() | (F.col("_occurrence") > 1)
    duplicates = ranked.where(is_duplicate).withColumns(
        {
            "quarantine_rule": F.lit(f"duplicate_{key}"),
            "quarantine_reason": F.format_string(
                f"{key} '%s' already received on %s",
                F.col(key),
                F.coalesce(F.col("_first_day"), F.col("_batch_first_day")).cast("string"),
            ),
        }
    )
    working = ["_occurrence", "_batch_first_day", "_first_day"]
    return ranked.where(~is_duplicate).drop(*working), duplicates.drop(*working)
