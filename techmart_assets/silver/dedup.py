"""Deduplication by business key across days: the first valid occurrence wins, deterministically."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from techmart_assets.silver.batch import shared
from techmart_assets.silver.rules import Rule, judge_further, still_valid


def mark_duplicates(
    frame: DataFrame, key: str, order: Sequence[str | Column], earlier: DataFrame
) -> DataFrame:
    """`frame` (judged) with its still-valid duplicates rejected by the rule `duplicate_<key>`.

    A valid row is a duplicate when its key was accepted on an earlier day (`earlier`: key,
    partition_date) or a valid row with that key comes before it in this batch by
    (partition_date, *order). The reason names the day the key was first received. Rows already
    rejected neither count as occurrences nor change.
    """
    # Valid rows first: a row's number among them is its occurrence.
    first_seen = Window.partitionBy(key).orderBy(still_valid().desc(), "partition_date", *order)
    previously = first_days(earlier, frame.select(key), key, "_first_day")
    ranked = (
        frame.withColumn("_occurrence", F.row_number().over(first_seen))
        .withColumn("_batch_first_day", F.first("partition_date").over(first_seen))
        .join(previously, key, "left")
    )
    duplicate = Rule(
        f"duplicate_{key}",
        f"{key} already received, on an earlier day or earlier in the batch",
        F.col("_first_day").isNotNull() | (F.col("_occurrence") > 1),
        F.format_string(
            f"{key} '%s' already received on %s",
            F.col(key),
            F.coalesce(F.col("_first_day"), F.col("_batch_first_day")).cast("string"),
        ),
    )
    return judge_further(ranked, [duplicate]).drop("_occurrence", "_batch_first_day", "_first_day")


def first_days(earlier: DataFrame, keys: DataFrame, key: str, name: str) -> DataFrame:
    """(key, `name`): the first day of each of `keys` found in `earlier` (key, partition_date).

    Only the keys asked for: the earlier days grow with the history and a batch's keys do not, so a
    day's batch (small enough to broadcast) filters the history's keys as they are read instead of
    shuffling all of them, and a chunk shuffles them once (grouped by the key the join then uses)."""
    return earlier.join(keys, key, "left_semi").groupBy(key).agg(F.min("partition_date").alias(name))


def split_first_occurrences(
    valid: DataFrame, key: str, order: Sequence[str | Column], earlier: DataFrame, persisted: list[DataFrame]
) -> tuple[DataFrame, DataFrame]:
    """(first occurrences, duplicates) of `valid` rows (none rejected yet) by `key`, as
    `mark_duplicates` judges them; the marked frame both read is added to `persisted`."""
    marked = shared(mark_duplicates(valid, key, order, earlier), persisted)
    return marked.where(still_valid()), marked.where(~still_valid())
