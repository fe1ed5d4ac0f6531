"""Delta floor benchmark: what the smallest operations of a daily run cost, warm, on this machine.

A daily run moves a few hundred rows, so its time is the fixed cost of its Spark actions and Delta
commits, not data. This times each kind on a history-sized table (`--days` days of `--rows` rows,
clustered by month as the project writes its tables), in the project's Spark configuration, each
the median of `--repeat` timed rounds after two untimed ones:

- a Spark action that reads nothing (`SELECT 1`): Spark's own floor per action;
- counting one day of the table (a Delta scan with its file filtering);
- replacing one day with the same rows (`techmart_assets.delta.replace_days`, as bronze and silver
  write): the rows are already collected, so this is the write alone;
- the same on a table partitioned by day (no month file to rewrite);
- appending one day to a table (no files to find or remove);
- a MERGE of a few unchanged rows, as the SCD2 dimensions MERGE.

Each round checks the tables still hold what they held. The daily run's figure is the number of
Delta commits its tables receive for a day (`DAILY_RUN_COMMITS`, or --commits) times the replace's
median: what its writes alone cost, before it reads, transforms or checks anything.

Run with `.venv/bin/python -m bench.delta_floor`; tables are made under $TECHMART_BENCH_DIR if set.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from dagster_pyspark.resources import spark_session_from_config
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.common import parser
from bench.results import record
from techmart_assets.delta import PARTITION_COLUMN, days_predicate, replace_days
from techmart_assets.resources import spark_config
from techmart_assets.settings import Settings

FIRST_DAY = date(2023, 1, 1)
WARMUP = 2
# A daily run's Delta commits, counted from the tables' logs (delta-rs `history`) after the daily run
# of 2025-12-31 on the reference lakehouse: bronze 4; silver 5 (two SCD2 MERGEs, transactions, web
# events and its quarantine: a quarantine replace with no rows and none to remove commits nothing);
# gold 10 (the holidays seed twice, three dimensions, the fact, four metrics), and since then one
# more metric (category_interest).
DAILY_RUN_COMMITS = 20


def history_table(spark: SparkSession, days: int, rows: int) -> tuple[object, list[date]]:
    """`days` days of `rows` rows each: an id, the day, an amount and a text column."""
    every = [FIRST_DAY + timedelta(days=i) for i in range(days)]
    frame = (
        spark.range(days * rows)
        .withColumn(PARTITION_COLUMN, F.date_add(F.lit(FIRST_DAY), (F.col("id") % days).cast("int")))
        .withColumn("amount", (F.col("id") % 997).cast("decimal(12,2)"))
        .withColumn("channel", F.concat(F.lit("channel-"), (F.col("id") % 5).cast("string")))
    )
    return frame, every


def median_ms(name: str, action: Callable[[], None], repeat: int) -> float:
    times = []
    for i in range(WARMUP + repeat):
        started = time.perf_counter()
        action()
        if i >= WARMUP:
            times.append((time.perf_counter() - started) * 1000)
    median = statistics.median(times)
    print(f"  {name:42s} {median:7.0f} ms  (min {min(times):.0f}, max {max(times):.0f})", flush=True)
    return median


def measure(spark: SparkSession, work: Path, days: int, rows: int, repeat: int) -> dict[str, float]:
    """The median milliseconds of each operation (see the module's doc); checks the tables after."""
    frame, every = history_table(spark, days, rows)
    clustered, partitioned = str(work / "clustered"), str(work / "partitioned")
    appended, merged = str(work / "appended"), str(work / "merged")
    replace_days(frame, clustered, every)
    frame.write.format("delta").partitionBy(PARTITION_COLUMN).save(partitioned)
    frame.where(F.col(PARTITION_COLUMN) == every[0]).write.format("delta").save(appended)
    frame.write.format("delta").save(merged)
    last = every[-1]
    day = days_predicate([last])
    day_rows = spark.read.format("delta").load(clustered).where(day).collect()
    schema = spark.read.format("delta").load(clustered).schema

    def replace(path: str) -> Callable[[], None]:
        return lambda: replace_days(spark.createDataFrame(day_rows, schema), path, [last])

    def merge() -> None:
        source = spark.createDataFrame(day_rows[:10], schema)
        (
            DeltaTable.forPath(spark, merged)
            .alias("t")
            .merge(source.alias("s"), "t.id = s.id")
            .whenMatchedUpdateAll(condition="t.amount <> s.amount")
            .whenNotMatchedInsertAll()
            .execute()
        )

    print(f"warm medians of {repeat} rounds, a table of {days} days x {rows} rows:", flush=True)
    figures = {
        "spark_action_ms": median_ms(
            "Spark action (SELECT 1)", lambda: spark.sql("SELECT 1").collect(), repeat
        ),
        "count_day_ms": median_ms(
            "count one day", lambda: spark.read.format("delta").load(clustered).where(day).count(), repeat
        ),
        "replace_day_ms": median_ms("replace one day (month files)", replace(clustered), repeat),
        "replace_day_partitioned_ms": median_ms(
            "replace one day (day partitions)", replace(partitioned), repeat
        ),
        "append_day_ms": median_ms(
            "append one day",
            lambda: (
                spark.createDataFrame(day_rows, schema).write.format("delta").mode("append").save(appended)
            ),
            repeat,
        ),
        "merge_rows_ms": median_ms("MERGE of 10 unchanged rows", merge, repeat),
    }
    for path in (clustered, partitioned, merged):
        table = spark.read.format("delta").load(path)
        assert table.count() == days * rows, (path, table.count())
        assert table.where(day).count() == rows, path
    appends = WARMUP + repeat
    assert spark.read.format("delta").load(appended).count() == rows * (1 + appends)
    return figures


def main() -> None:
    arguments = parser(__doc__, warmup=False)
    arguments.set_defaults(repeat=7)
    arguments.add_argument("--days", type=int, default=1096, help="days of the table (three years)")
    arguments.add_argument("--rows", type=int, default=50, help="rows per day (about the reference's)")
    arguments.add_argument(
        "--commits", type=int, default=DAILY_RUN_COMMITS, help="Delta commits of a daily run"
    )
    args = arguments.parse_args()
    spark = spark_session_from_config(spark_config(Settings.from_env()))
    try:
        with tempfile.TemporaryDirectory(
            prefix="techmart-floor-", dir=os.environ.get("TECHMART_BENCH_DIR")
        ) as tmp:
            figures = measure(spark, Path(tmp), args.days, args.rows, args.repeat)
    finally:
        spark.stop()
    writes = args.commits * figures["replace_day_ms"] / 1000
    print(f"\n{args.commits} commits of a daily run x one day's replace: {writes:.1f} s of writes alone")
    record(
        "delta_floor",
        {**figures, "daily_run_commits": args.commits, "daily_run_writes_s": writes},
        note=(
            f"warm medians of {args.repeat} rounds after {WARMUP} untimed, on a table of {args.days} days "
            f"x {args.rows} rows, in the project's Spark configuration (`python -m bench.delta_floor`); "
            "daily run writes = its Delta commits x one day's replace"
        ),
    )


if __name__ == "__main__":
    main()
