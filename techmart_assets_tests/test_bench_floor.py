"""The Delta floor benchmark's smoke run: its operations on a small table, with the shared session, and
the tables left as they were (a replace of a day keeps that day's rows, a MERGE of unchanged rows
changes nothing)."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.delta_floor import WARMUP, history_table, measure
from techmart_assets.delta import PARTITION_COLUMN

DAYS, ROWS = 40, 5


def test_the_floor_benchmark_times_each_operation_and_keeps_the_tables(
    spark: SparkSession, tmp_path: Path
) -> None:
    figures = measure(spark, tmp_path, DAYS, ROWS, repeat=1)

    assert set(figures) == {
        "spark_action_ms",
        "count_day_ms",
        "replace_day_ms",
        "replace_day_partitioned_ms",
        "append_day_ms",
        "merge_rows_ms",
    }
    assert all(ms > 0 for ms in figures.values())
    expected, days = history_table(spark, DAYS, ROWS)
    last = days[-1]
    expected_last = sorted(r.id for r in expected.where(F.col(PARTITION_COLUMN) == last).collect())
    for name in ("clustered", "partitioned", "merged"):
        table = spark.read.format("delta").load(str(tmp_path / name))
        assert table.count() == DAYS * ROWS
        assert sorted(r.id for r in table.where(F.col(PARTITION_COLUMN) == last).collect()) == expected_last
        assert table.agg(F.sum("amount")).first()[0] == expected.agg(F.sum("amount")).first()[0]
    appended = spark.read.format("delta").load(str(tmp_path / "appended"))
    assert appended.count() == ROWS * (1 + WARMUP + 1)
