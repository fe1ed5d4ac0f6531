"""SCD Type 2 on hand-made change records: new, changed, unchanged, twice in a day, repeated, re-run,
out of order."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets.delta import days_predicate
from techmart_assets.silver.dimensions import records_needed
from techmart_assets.silver.scd2 import REPEATED, UNCHANGED, VERSION, Scd2Table, apply_changes

CUSTOMERS = Scd2Table(business_key="customer_id", surrogate_key="customer_sk", tracked=("city", "segment"))
D1, D2, D3 = date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)
RECORDS = [
    ("C1", "Rabat", "regular", datetime(2024, 1, 1, 8), D1),
    ("C2", "Fes", "new", datetime(2024, 1, 1, 8), D1),
    ("C1", "Rabat", "premium", datetime(2024, 1, 2, 9), D2),  # segment changed
    ("C2", "Fes", "new", datetime(2024, 1, 2, 10), D2),  # unchanged
    ("C1", "Tangier", "premium", datetime(2024, 1, 2, 15), D2),  # changed again the same day
    ("C3", "Agadir", "vip", datetime(2024, 1, 2, 11), D2),  # new
    ("C1", "Tangier", "premium", datetime(2024, 1, 2, 15), D3),  # the day-2 record received again
    ("C2", "Oujda", "new", datetime(2024, 1, 3, 7), D3),  # moved
]


def changes(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [(*r, f"file:/raw/customers/{r[4]}/c.csv") for r in RECORDS],
        "customer_id string, city string, segment string, updated_at timestamp, partition_date date, "
        "_source_file string",
    )


def run(spark: SparkSession, path: Path, days: list[date]) -> dict[str, str]:
    statuses = {}
    for day in days:
        for r in apply_changes(changes(spark), days_predicate([day]), str(path), CUSTOMERS, []).collect():
            statuses[f"{r.customer_id}@{r.updated_at:%d %H}h/{day:%d}"] = r.scd2_status
    return statuses


def table(spark: SparkSession, path: Path) -> list[tuple]:
    rows = spark.read.format("delta").load(str(path)).collect()
    return sorted(
        (
            r.customer_id,
            r.version_number,
            r.city,
            r.segment,
            r.valid_from,
            r.valid_to,
            r.is_current,
            r.customer_sk,
        )
        for r in rows
    )


def test_versions_follow_changes_in_time(spark: SparkSession, tmp_path: Path) -> None:
    statuses = run(spark, tmp_path / "t", [D1, D2, D3])

    assert statuses == {
        "C1@01 08h/01": VERSION,
        "C2@01 08h/01": VERSION,
        "C1@02 09h/02": VERSION,
        "C2@02 10h/02": UNCHANGED,
        "C1@02 15h/02": VERSION,
        "C3@02 11h/02": VERSION,
        "C1@02 15h/03": REPEATED,
        "C2@03 07h/03": VERSION,
    }
    rows = [r[:7] for r in table(spark, tmp_path / "t")]
    assert rows == [
        ("C1", 1, "Rabat", "regular", datetime(2024, 1, 1, 8), datetime(2024, 1, 2, 9), False),
        ("C1", 2, "Rabat", "premium", datetime(2024, 1, 2, 9), datetime(2024, 1, 2, 15), False),
        ("C1", 3, "Tangier", "premium", datetime(2024, 1, 2, 15), None, True),
        ("C2", 1, "Fes", "new", datetime(2024, 1, 1, 8), datetime(2024, 1, 3, 7), False),
        ("C2", 2, "Oujda", "new", datetime(2024, 1, 3, 7), None, True),
        ("C3", 1, "Agadir", "vip", datetime(2024, 1, 2, 11), None, True),
    ]


def test_out_of_order_and_rerun_give_the_in_order_table(spark: SparkSession, tmp_path: Path) -> None:
    run(spark, tmp_path / "in_order", [D1, D2, D3])
    run(spark, tmp_path / "shuffled", [D3, D1, D2, D2, D1])

    assert table(spark, tmp_path / "shuffled") == table(spark, tmp_path / "in_order")
    surrogate_keys = [r[-1] for r in table(spark, tmp_path / "in_order")]
    assert len(set(surrogate_keys)) == len(surrogate_keys)


def test_a_day_keeps_its_records_and_the_other_days_records_of_the_keys_it_names(spark: SparkSession) -> None:
    # C1 is named on day 2 with stray spaces, as bronze keeps it; C2 only on days 1 and 3.
    bronze = spark.createDataFrame(
        [(" C1 ", D2), ("C1", D1), ("C1", D3), ("C2", D1), ("C2", D3), ("C3", D2), (None, D2), (None, D1)],
        "customer_id string, partition_date date",
    )
    key = F.trim("customer_id")  # the key as silver reads it
    needed = records_needed(bronze, days_predicate([D2]), key).collect()
    assert sorted((r.customer_id, r.partition_date) for r in needed if r.customer_id) == [
        (" C1 ", D2),
        ("C1", D1),
        ("C1", D3),
        ("C3", D2),
    ]
    # The day's record without a key stays (the quarantine needs it); another day's does not.
    assert [r.partition_date for r in needed if r.customer_id is None] == [D2]
    # A run of every day keeps every record.
    assert records_needed(bronze, days_predicate([D1, D2, D3]), key).count() == bronze.count()
