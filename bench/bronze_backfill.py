"""Bronze backfill benchmark.

1. The whole bronze history at reference scale through Dagster (one run, single-run backfill policy)
   against a plain PySpark script that reads the same drops and writes the same Delta tables (the
   last round checks it: same columns, rows and malformed rows per day), both in this process on
   one SparkSession, after --warmup untimed rounds, alternating, best of --repeat. Prints both
   times and the ratio (goal: ratio <= 1.3, Dagster time < 120 s on 2 cores), and Dagster's own
   per-partition bookkeeping.
2. The data generator at --generator-transactions rows in a subprocess: rows per second, peak RSS.

Run with `make bench` (or `.venv/bin/python -m bench.bronze_backfill --help`).
"""

from __future__ import annotations

import math
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from bench.common import (
    compare,
    materialize_range,
    parser,
    partition_bookkeeping,
    reference_workspace,
    report,
)
from bench.results import record
from techmart_assets.bronze import bronze_assets
from techmart_assets.sources import SOURCES


def plain_pyspark(spark: SparkSession, root: Path) -> None:
    """What a hand-written PySpark job would do to write the same tables: read each source's drops
    (malformed rows kept, with their raw line and a reason), stamp them, cluster them by month and
    sorted by day as bronze does, and write Delta."""
    for source in SOURCES.values():
        pattern = f"{root}/raw_data/{source.name}/*/*.{source.extension}"
        days = len(list((root / "raw_data" / source.name).iterdir()))  # one file per month of days
        reader = spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_raw_line")
        if source.file_format == "csv":
            fields = [StructField(c, StringType()) for c in (*source.columns, "_raw_line")]
            frame = reader.schema(StructType(fields)).option("header", True).csv(pattern)
        else:
            frame = reader.option("primitivesAsString", True).json(pattern)
            if "_raw_line" not in frame.columns:
                frame = frame.withColumn("_raw_line", F.lit(None).cast(StringType()))
        day = F.to_date(F.regexp_extract("_source_file", r"/(\d{4}-\d{2}-\d{2})/", 1))
        (
            frame.withColumn("_source_file", F.input_file_name())
            .withColumn("_parse_error", F.when(F.col("_raw_line").isNotNull(), F.lit("malformed row")))
            .withColumn("_ingested_at", F.current_timestamp())
            .withColumn("partition_date", day)
            .select(
                *source.columns, "_raw_line", "_parse_error", "_source_file", "_ingested_at", "partition_date"
            )
            .repartition(math.ceil(days / 31), F.date_trunc("month", "partition_date"))
            .sortWithinPartitions("partition_date")
            .write.format("delta")
            .mode("overwrite")
            .save(f"{root}/bronze/{source.name}")
        )


def same_tables(spark: SparkSession, roots: dict[str, Path]) -> None:
    """Both sides wrote the same bronze tables: columns, rows per day, malformed rows."""
    for source in SOURCES.values():
        seen = {}
        for side, root in roots.items():
            table = spark.read.format("delta").load(f"{root}/bronze/{source.name}")
            counts = table.groupBy("partition_date").agg(F.count("*"), F.count("_parse_error")).collect()
            seen[side] = (set(table.columns), sorted(tuple(r) for r in counts))
        assert len(set(map(str, seen.values()))) == 1, f"bronze/{source.name} differs between {list(roots)}"


def through_dagster(root: Path) -> None:
    materialize_range(bronze_assets, root)


def bench_generator(work: Path, transactions: int) -> dict[str, float]:
    out = work / "generator"
    command = [sys.executable, "-m", "techmart_assets.cli", "generate", "--no-progress", "--out", str(out)]
    command += ["--transactions", str(transactions), "--customers", str(max(5_000, transactions // 10))]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"\ngenerator, {transactions:,} transactions: {elapsed:.1f} s, "
        f"{transactions / elapsed:,.0f} transactions/s, peak RSS {peak_mib:,.0f} MiB"
    )
    shutil.rmtree(out)
    return {
        "wall_time_s": elapsed,
        "transactions_rows_per_s": transactions / elapsed,
        "rss_peak_mib": peak_mib,
    }


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--generator-transactions", type=int, default=10_000_000)
    arguments.add_argument("--skip-generator", action="store_true")
    args = arguments.parse_args()
    with reference_workspace() as ws:
        best = compare(
            ws.work,
            {"raw_data": ws.raw},
            {"plain PySpark": lambda root: plain_pyspark(ws.spark, root), "Dagster": through_dagster},
            args.repeat,
            args.warmup,
            verify=lambda roots: same_tables(ws.spark, roots),
        )
        title = (
            f"bronze backfill, {ws.summary.days} days, {ws.summary.transactions:,} transactions "
            f"(best of {args.repeat} after {args.warmup} warm-up round(s); goal: Dagster < 120 s)"
        )
        figures = report(
            title, best, "plain PySpark", "Dagster", "<= 1.3", partition_bookkeeping(len(bronze_assets))
        )
        record("bronze_backfill", figures, note=title)
        if not args.skip_generator:
            transactions = args.generator_transactions
            note = f"techmart generate of {transactions:,} transactions in a subprocess, one run"
            record("generator", bench_generator(ws.work, transactions), note=note)


if __name__ == "__main__":
    main()
