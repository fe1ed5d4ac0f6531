"""Row-level checks counted in one pass: each check's verdict, counts and examples, on hand-made rows."""

from __future__ import annotations

import dagster as dg
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets.quality.checks import RowRule, row_checks, unique_key

ROWS = [
    ("T1", "C1", 120.0),
    ("T2", None, 80.0),
    ("T3", "C3", -5.0),
    ("T4", None, -1.0),
    (None, "C5", 10.0),
]


def _by_name(results: list[dg.AssetCheckResult]) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in results}


def _spark_jobs(spark: SparkSession, group: str, work):
    """What `work()` returns, and how many Spark jobs it ran."""
    context = spark.sparkContext
    context.setJobGroup(group, group)
    try:
        returned = work()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    return returned, len(context.statusTracker().getJobIdsForGroup(group))


def test_every_count_and_total_comes_from_one_pass(spark: SparkSession) -> None:
    frame = spark.createDataFrame(ROWS, "transaction_id string, customer_id string, amount double")
    _, one_count = _spark_jobs(spark, "row_checks_baseline", lambda: frame.agg(F.count(F.lit(1))).first())
    rules = [RowRule(f"rule_{i}", F.col("amount") > 1000 + i, ["transaction_id"]) for i in range(4)]
    (results, totals), jobs = _spark_jobs(
        spark,
        "row_checks_passing",
        lambda: row_checks(frame, ["amount"], rules, {"rows": F.count(F.lit(1)), "amount": F.sum("amount")}),
    )
    assert all(r.passed for r in results) and len(results) == 5
    assert totals == {"rows": 5, "amount": 204.0}
    assert jobs == one_count  # five checks and two totals cost what one count does


def test_each_check_reports_its_counts_and_only_failures_their_examples(spark: SparkSession) -> None:
    frame = spark.createDataFrame(ROWS, "transaction_id string, customer_id string, amount double")
    results, totals = row_checks(
        frame,
        ["transaction_id", "customer_id"],
        [
            RowRule("amount_positive", F.col("amount") <= 0, ["transaction_id", "amount"]),
            RowRule("amount_below_1000", F.col("amount") > 1000, ["transaction_id", "amount"]),
        ],
    )
    checks = _by_name(results)
    assert set(checks) == {"keys_not_null", "amount_positive", "amount_below_1000"}
    not_null = checks["keys_not_null"]
    assert not not_null.passed
    assert {k: v.value for k, v in not_null.metadata.items()} == {
        "null_transaction_id": 1,
        "null_customer_id": 2,
    }
    positive = checks["amount_positive"]
    assert not positive.passed and positive.metadata["violations"].value == 2
    assert "T3" in positive.metadata["examples"].value and "T4" in positive.metadata["examples"].value
    assert "T1" not in positive.metadata["examples"].value
    below = checks["amount_below_1000"]
    assert below.passed and below.metadata["violations"].value == 0 and "examples" not in below.metadata
    assert totals == {}


def test_unique_key_looks_across_the_table_at_the_keys_asked_for(spark: SparkSession) -> None:
    table = spark.createDataFrame(
        [
            ("E1", "2025-01-01"),
            ("E1", "2025-01-02"),
            ("E2", "2025-01-01"),
            ("E2", "2025-01-01"),
            ("E3", "2025-01-02"),
        ],
        "event_id string, day string",
    )
    whole = unique_key(table, "event_id")
    assert not whole.passed and whole.metadata["repeated_keys"].value == 2
    # A run of 2025-01-02: E1 is repeated with a day outside the run; E2's repeat is not its business.
    day = unique_key(table, "event_id", among=table.where("day = '2025-01-02'"))
    assert not day.passed and day.metadata["repeated_keys"].value == 1
    assert "E1" in day.metadata["examples"].value and "E2" not in day.metadata["examples"].value
    clean = unique_key(table, "event_id", among=table.where("event_id = 'E3'"))
    assert clean.passed and clean.metadata["repeated_keys"].value == 0
