"""The fraud stream's parsing: a message parses, or it goes to the dead letters with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from techmart_assets.streaming import fraud


def message(
    n: int,
    customer: str,
    at: datetime,
    amount: float = 1_500.0,
    country: str = "Morocco",
    city: str = "Casablanca",
) -> dict:
    return {
        "transaction_id": f"TX{n:010d}",
        "customer_id": customer,
        "product_id": "P000001",
        "quantity": 1,
        "unit_price": amount,
        "total_amount": amount,
        "currency": "MAD",
        "payment_method": "credit_card",
        "status": "completed",
        "transaction_ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "channel": "web",
        "device": "mobile",
        "city": city,
        "country": country,
        "ip_address": "105.1.2.3",
    }


def test_each_bad_message_gets_its_reason(spark: SparkSession) -> None:
    good = message(1, "C1", datetime(2025, 6, 30, 12, tzinfo=UTC))
    values = {
        "good": json.dumps(good),
        "truncated": json.dumps(good)[:40],
        "no_customer": json.dumps({**good, "customer_id": None}),
        "bad_time": json.dumps({**good, "transaction_ts": "30/06/2025 12:00"}),
        "text_amount": json.dumps({**good, "total_amount": "lots"}),
        "negative": json.dumps({**good, "total_amount": -5}),
    }
    rows = [(v.encode(), 0, i, datetime(2025, 6, 30, 12)) for i, v in enumerate(values.values())]
    frame = spark.createDataFrame(rows, "value binary, partition int, offset long, timestamp timestamp")
    errors = dict(
        zip(values, [r.error for r in fraud.parse(frame).orderBy("kafka_offset").collect()], strict=True)
    )
    assert errors["good"] is None
    assert errors["truncated"].startswith("malformed JSON")
    assert errors["no_customer"] == "missing key: customer_id"
    assert errors["bad_time"].startswith("transaction_ts is not an ISO-8601")
    assert errors["text_amount"].startswith("total_amount is missing, not a number")
    assert errors["negative"].startswith("total_amount is missing, not a number or not positive")
