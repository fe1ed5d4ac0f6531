"""The project's Kafka broker: a real Apache Kafka (KRaft, one node) from the Maven-fetched jars,
started and stopped by its pid, with the lakehouse's topics."""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from techmart_assets.settings import Settings
from techmart_assets.streaming import broker
from techmart_assets_tests.support import free_port_pair


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> broker.BrokerConfig:
    port = free_port_pair()
    return broker.BrokerConfig.from_settings(
        dataclasses.replace(settings, kafka_home=tmp_path / "kafka", kafka_bootstrap=f"localhost:{port}")
    )


def test_the_broker_starts_serves_the_topics_and_stops_by_its_pid(config: broker.BrokerConfig) -> None:
    pid = broker.start(config)
    try:
        assert broker.running_pid(config) == pid
        assert broker.start(config) == pid  # a second start finds it running
        assert sorted(broker.ensure_topics(config.bootstrap)) == [
            "customer-features",
            "fraud-alerts",
            "transactions",
            "web-events",
        ]
        assert broker.ensure_topics(config.bootstrap) == []

        producer = KafkaProducer(bootstrap_servers=config.bootstrap)
        for i in range(3):
            producer.send(broker.TRANSACTIONS_TOPIC, key=b"C00001", value=f'{{"n": {i}}}'.encode())
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(
            broker.TRANSACTIONS_TOPIC,
            bootstrap_servers=config.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
        )
        received = [m for m in consumer]
        consumer.close()
        # One key, one partition, in order.
        assert [m.value for m in received] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
        assert len({m.partition for m in received}) == 1
    finally:
        assert broker.stop(config)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert broker.running_pid(config) is None
    assert not broker.answers(config.bootstrap, timeout=2.0)
    assert not broker.stop(config)


def test_a_taken_port_is_a_clear_error(config: broker.BrokerConfig) -> None:
    with socket.socket() as taken:
        taken.bind((config.host, config.port))
        taken.listen()
        with pytest.raises(broker.BrokerError, match="already in use"):
            broker.start(config)
    assert broker.running_pid(config) is None


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage tool reads `-t -Xyz…` as an option: such an id is drawn again, as Kafka does."""
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(drawn))
    assert broker.new_cluster_id() == "EAAAAAAAAAAAAAAAAAAAAA"  # the second draw; the first was "-AAA…"


def test_messages_are_compact_json_and_a_broker_that_takes_none_fails_the_send() -> None:
    assert broker.compact_json({"a": 1, "b": "é"}) == b'{"a":1,"b":"\\u00e9"}'
    address = f"localhost:{free_port_pair()}"
    rows = [{"customer_id": "C1", "at": datetime(2026, 12, 7, 10, tzinfo=UTC)}, {"customer_id": "C2"}]
    expected = f"2 of 2 messages not taken by alerts at {address} \\(not taken within 2 s\\)"
    with pytest.raises(broker.BrokerError, match=expected):
        broker.send_rows(address, "alerts", rows, key="customer_id", timeout_s=2)
    broker.close_driver_producers()  # nothing left to send: the failed ones were dropped
