"""How wide a batch step's shuffles are: sized to the rows it reads, so a task's share stays about
the same whether the step reads a day or a year."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Session settings for the queries run or started inside the block, restored after it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def shuffle_width(rows: int, rows_per_task: int, narrowest: int) -> int:
    """Shuffle partitions for a step reading `rows`: about `rows_per_task` each, never fewer than
    `narrowest` (adaptive query execution still merges the ones that come out small)."""
    return max(narrowest, math.ceil(rows / rows_per_task))


@contextmanager
def shuffles_for(spark: SparkSession, rows: int, rows_per_task: int) -> Iterator[int]:
    """The block's shuffles sized for `rows` input rows; yields the width. The narrowest is the
    session's own setting, as it started (the streaming queries' width)."""
    narrowest = int(spark.sparkContext.getConf().get(SHUFFLE_PARTITIONS, "200"))
    width = shuffle_width(rows, rows_per_task, narrowest)
    with session_settings(spark, {SHUFFLE_PARTITIONS: str(width)}):
        yield width
