"""Silver transactions on hand-made rows: every rule's verdict, duplicates across days, point-in-time
enrichment, derived fields, and that every bronze row is accounted for."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from techmart_assets.silver.transactions import build_transactions
from techmart_assets.sources import TRANSACTIONS
from techmart_assets_tests.support import bronze_rows

DAY = date(2024, 3, 5)
CLEAN = {
    "transaction_id": "T1",
    "customer_id": "C1",
    "product_id": "P1",
    "quantity": "2",
    "unit_price": "1500.00",
    "total_amount": "3000.00",
    "currency": "MAD",
    "payment_method": "credit_card",
    "status": "completed",
    "transaction_ts": "2024-03-05T10:00:00Z",
    "channel": "web",
    "device": "desktop",
    "city": "Rabat",
    "country": "Morocco",
    "ip_address": "10.0.0.1",
}


def bronze(spark: SparkSession, *rows: dict, day: date = DAY) -> DataFrame:
    return bronze_rows(spark, TRANSACTIONS, CLEAN, list(rows), day)


def versions(spark: SparkSession, kind: str, rows: list[tuple]) -> DataFrame:
    key, sk = ("customer_id", "customer_sk") if kind == "customer" else ("product_id", "product_sk")
    attrs = (
        "segment string, city string, country string"
        if kind == "customer"
        else "category string, subcategory string, brand string, cost decimal(12,2)"
    )
    return spark.createDataFrame(
        rows, f"{key} string, {sk} bigint, valid_from timestamp, valid_to timestamp, {attrs}"
    )


@pytest.fixture
def customers(spark: SparkSession) -> DataFrame:
    return versions(
        spark,
        "customer",
        [
            ("C1", 11, datetime(2023, 1, 1), datetime(2024, 3, 5, 12), "regular", "Rabat", "Morocco"),
            ("C1", 12, datetime(2024, 3, 5, 12), None, "vip", "Rabat", "Morocco"),
            ("C2", 21, datetime(2024, 3, 5, 20), None, "new", "Fes", "Morocco"),
        ],
    )


@pytest.fixture
def products(spark: SparkSession) -> DataFrame:
    return versions(
        spark,
        "product",
        [("P1", 101, datetime(2023, 1, 1), None, "Laptops", "Ultrabooks", "Dell", Decimal("1100.00"))],
    )


def no_history(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], "transaction_id string, customer_id string, partition_date date")


def verdicts(batch) -> dict[str, str]:
    return {r.record_key or r.raw_line: r.quarantine_rule for r in batch.quarantined.collect()}


def test_each_rule_rejects_its_row_with_a_reason(
    spark: SparkSession, customers: DataFrame, products: DataFrame
) -> None:
    rows = [
        {"transaction_id": "ok"},
        {"transaction_id": "short", "_raw_line": "short,C1", "_parse_error": "expected 15 fields, found 2"},
        {"transaction_id": "nocust", "customer_id": " "},
        {"transaction_id": "badts", "transaction_ts": "2024-13-45 25:61:00"},
        {"transaction_id": "otherday", "transaction_ts": "2024-03-04T23:59:00Z"},
        {"transaction_id": "qty", "quantity": "two"},
        {"transaction_id": "zero", "total_amount": "0.00"},
        {"transaction_id": "negative", "total_amount": "-3000.00"},
        {"transaction_id": "absurd", "quantity": "10000", "total_amount": "15000000.00"},
        {"transaction_id": "mismatch", "total_amount": "2999.00"},
        {"transaction_id": "eur", "currency": "EUR"},
        {"transaction_id": "ghost", "customer_id": "C404"},
        {"transaction_id": "noprod", "product_id": "P404"},
    ]
    batch = build_transactions(bronze(spark, *rows), customers, products, no_history(spark))

    assert [r.transaction_id for r in batch.accepted.collect()] == ["ok"]
    assert verdicts(batch) == {
        "short": "malformed_row",
        "nocust": "missing_key",
        "badts": "invalid_timestamp",
        "otherday": "timestamp_outside_partition",
        "qty": "invalid_number",
        "zero": "non_positive_total_amount",
        "negative": "non_positive_total_amount",
        "absurd": "implausible_total_amount",
        "mismatch": "amount_mismatch",
        "eur": "unexpected_currency",
        "ghost": "unknown_customer",
        "noprod": "unknown_product",
    }
    reasons = {r.record_key: r.quarantine_reason for r in batch.quarantined.collect()}
    assert reasons["nocust"] == "missing customer_id"
    assert reasons["badts"] == "transaction_ts '2024-13-45 25:61:00' is not a valid date and time"
    assert reasons["ghost"] == "customer_id 'C404' is not a known customer"
    assert reasons["absurd"] == "total_amount 15000000.00 MAD exceeds the plausible maximum of 5,000,000 MAD"
    short = next(r for r in batch.quarantined.collect() if r.record_key == "short")
    assert short.raw_line == "short,C1" and '"transaction_id":"short"' in short.record


def test_duplicates_within_the_batch_and_from_earlier_days_are_caught(
    spark: SparkSession, customers: DataFrame, products: DataFrame
) -> None:
    earlier = spark.createDataFrame(
        [("T0", "C1", date(2024, 3, 4))], "transaction_id string, customer_id string, partition_date date"
    )
    rows = bronze(spark, {"transaction_id": "T0"}, {"transaction_id": "T1"}, {"transaction_id": "T1"})

    batch = build_transactions(rows, customers, products, earlier)

    assert [r.transaction_id for r in batch.accepted.collect()] == ["T1"]
    reasons = sorted((r.record_key, r.quarantine_reason) for r in batch.quarantined.collect())
    assert reasons == [
        ("T0", "transaction_id 'T0' already received on 2024-03-04"),
        ("T1", "transaction_id 'T1' already received on 2024-03-05"),
    ]


def test_enrichment_takes_the_version_valid_at_the_sale(
    spark: SparkSession, customers: DataFrame, products: DataFrame
) -> None:
    rows = bronze(
        spark,
        {"transaction_id": "before", "transaction_ts": "2024-03-05T09:00:00Z"},
        {"transaction_id": "after", "transaction_ts": "2024-03-05T13:00:00Z"},
        {"transaction_id": "early", "customer_id": "C2", "transaction_ts": "2024-03-05T08:00:00Z"},
    )
    earlier = spark.createDataFrame(
        [("T0", "C1", date(2024, 3, 1)), ("T9", "C1", date(2024, 3, 2))],
        "transaction_id string, customer_id string, partition_date date",
    )

    accepted = {
        r.transaction_id: r for r in build_transactions(rows, customers, products, earlier).accepted.collect()
    }

    assert (accepted["before"].customer_sk, accepted["before"].customer_segment) == (11, "regular")
    assert (accepted["after"].customer_sk, accepted["after"].customer_segment) == (12, "vip")
    # The customer's first record arrived after the sale: the sale takes that first version.
    assert (accepted["early"].customer_sk, accepted["early"].customer_segment) == (21, "new")
    assert accepted["before"].customer_purchase_seq == 3 and accepted["after"].customer_purchase_seq == 4
    assert accepted["early"].customer_purchase_seq == 1
    assert accepted["after"].product_sk == 101 and accepted["after"].product_category == "Laptops"
    assert accepted["after"].cost_amount == Decimal("2200.00")
    assert accepted["after"].hour_of_day == 13 and accepted["after"].is_foreign is False
