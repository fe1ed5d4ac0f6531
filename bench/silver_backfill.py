"""Silver backfill benchmark.

The whole silver history at reference scale through Dagster (one run: SCD2 customers and products,
transactions, web events, their quarantines and checks) against the same transformation functions
called from one plain PySpark script with the same writes and no Dagster, no checks, no metadata.
Both read the same bronze tables (built once, first), in this process on one SparkSession,
after --warmup untimed rounds, alternating, best of --repeat. Prints both times and the ratio
(goal: ratio <= 1.3).

Run with `make bench` (or `.venv/bin/python -m bench.silver_backfill --help`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession

from bench.common import (
    compare,
    fresh_lakehouse,
    materialize_range,
    parser,
    partition_bookkeeping,
    reference_workspace,
    report,
)
from bench.results import record
from techmart_assets.bronze import bronze_assets
from techmart_assets.delta import PARTITION_COLUMN, days_predicate, replace_days
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END
from techmart_assets.silver import silver_assets
from techmart_assets.silver.dimensions import CUSTOMER_DIMENSION, PRODUCT_DIMENSION, build_dimension
from techmart_assets.silver.transactions import build_transactions
from techmart_assets.silver.web_events import build_web_events


def plain_pyspark(spark: SparkSession, root: Path, days: list[date]) -> None:
    def load(layer: str, name: str):
        return spark.read.format("delta").load(f"{root}/{layer}/{name}")

    window = days_predicate(days)
    for dimension in (CUSTOMER_DIMENSION, PRODUCT_DIMENSION):
        name = dimension.source.name
        batch = build_dimension(load("bronze", name), window, f"{root}/silver/{name}", dimension)
        replace_days(batch.quarantined, f"{root}/silver/{name}_quarantine", days)
    no_history = spark.createDataFrame(
        [], f"transaction_id string, customer_id string, {PARTITION_COLUMN} date"
    )
    transactions = build_transactions(
        load("bronze", "transactions").where(window),
        load("silver", "customers"),
        load("silver", "products"),
        no_history,
    )
    no_events = spark.createDataFrame([], f"event_id string, {PARTITION_COLUMN} date")
    events = build_web_events(load("bronze", "web_events").where(window), no_events)
    for name, batch in (("transactions", transactions), ("web_events", events)):
        replace_days(batch.accepted, f"{root}/silver/{name}", days)
        replace_days(batch.quarantined, f"{root}/silver/{name}_quarantine", days)


def through_dagster(root: Path) -> None:
    materialize_range(silver_assets, root)


def main() -> None:
    args = parser(__doc__).parse_args()
    with reference_workspace() as ws:
        print("building bronze once …", flush=True)
        inputs = fresh_lakehouse(ws.work, "inputs", {"raw_data": ws.raw})
        materialize_range(bronze_assets, inputs)
        first, last = date.fromisoformat(HISTORY_START), date.fromisoformat(REFERENCE_HISTORY_END)
        days = [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]
        best = compare(
            ws.work,
            {"raw_data": ws.raw, "bronze": inputs / "bronze"},
            {"plain PySpark": lambda root: plain_pyspark(ws.spark, root, days), "Dagster": through_dagster},
            args.repeat,
            args.warmup,
        )
        title = (
            f"silver backfill, {ws.summary.days} days, {ws.summary.transactions:,} transactions "
            f"(best of {args.repeat} after {args.warmup} warm-up round(s))"
        )
        figures = report(
            title,
            best,
            "plain PySpark",
            "Dagster",
            "<= 1.3",
            partition_bookkeeping(sum(len(a.keys) for a in silver_assets)),
        )
        record("silver_backfill", figures, note=title)


if __name__ == "__main__":
    main()
