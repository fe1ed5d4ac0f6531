"""`techmart stream` against the real broker: every planned transaction arrives once, keyed by its
customer, in the documented format, and the labels name fraud rows that were sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from techmart_assets.sources import TRANSACTIONS
from techmart_assets.streaming import broker, producer
from techmart_assets_tests.support import free_port_pair


def test_the_plan_is_the_generators_day_moved_to_today_with_its_fraud_labels() -> None:
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    planned = producer.plan(800, fraud_rate=0.01, now=now)
    assert len(planned.messages) == 800
    times = [m["transaction_ts"] for m in planned.messages]
    assert times == sorted(times)
    assert {t[:10] for t in times} == {"2026-01-15"}
    # Whole days: each sale keeps its generated time of day.
    generated = producer.plan(800, fraud_rate=0.01, now=datetime(2025, 6, 30, tzinfo=UTC))
    assert [t[10:] for t in times] == [m["transaction_ts"][10:] for m in generated.messages]
    ids = {m["transaction_id"] for m in planned.messages}
    assert planned.labels and all(label["record_id"] in ids for label in planned.labels)
    assert {label["category"] for label in planned.labels} == {"fraud"}


def test_every_message_arrives_once_keyed_by_customer(kafka: broker.BrokerConfig, tmp_path: Path) -> None:
    planned = producer.plan(600, fraud_rate=0.01)
    result = producer.send(planned, kafka.bootstrap, rate=300)
    assert (result.sent, result.failed) == (600, 0)

    consumer = KafkaConsumer(
        broker.TRANSACTIONS_TOPIC,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    received = list(consumer)
    consumer.close()
    values = [json.loads(m.value) for m in received]
    assert sorted(v["transaction_id"] for v in values) == sorted(
        m["transaction_id"] for m in planned.messages
    )
    assert all(m.key.decode() == v["customer_id"] for m, v in zip(received, values, strict=True))
    for value in values:
        assert set(TRANSACTIONS.columns) <= set(value)
        assert isinstance(value["quantity"], int) and isinstance(value["total_amount"], float)
        assert value["transaction_ts"].endswith("Z")
    # One customer's messages stay in one partition, in event-time order.
    by_customer: dict[str, list] = {}
    for message, value in zip(received, values, strict=True):
        by_customer.setdefault(value["customer_id"], []).append((message.partition, value["transaction_ts"]))
    for events in by_customer.values():
        assert len({p for p, _ in events}) == 1
        assert [t for _, t in events] == sorted(t for _, t in events)

    labels = producer.write_labels(planned.labels, tmp_path / "labels.csv")
    assert labels.read_text().splitlines()[0] == ",".join(producer.LABEL_HEADER)


def test_a_broker_that_is_not_there_is_a_clear_error() -> None:
    address = f"localhost:{free_port_pair()}"
    with pytest.raises(broker.BrokerError, match=f"no Kafka broker answers at {address}"):
        producer.send(producer.plan(5), address, rate=100)
