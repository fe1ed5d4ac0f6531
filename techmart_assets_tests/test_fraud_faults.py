"""Faults on the real stack: the broker stopped and restarted mid-stream, and the streaming process
killed (SIGKILL, no clean stop) and started again. Either way every alert lands in Delta exactly
once, every message lands in bronze exactly once, and every web event counts once in the live
features and the live funnel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from techmart_assets.delta import is_delta_table
from techmart_assets.streaming import broker, fraud
from techmart_assets.streaming.runner import StreamOptions, StreamRunner, StreamTables
from techmart_assets_tests.support import message, profile, send_messages, web_event

CUSTOMERS = [f"F{i:02d}" for i in range(1, 11)]


def bursts(customers: list[str], first_id: int) -> tuple[list[dict], set[str]]:
    """Four purchases in 30 s per customer: one velocity alert each, on the fourth. Each set of bursts
    has its own minutes (from `first_id`), so bursts of the same customers never merge."""
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    base = noon + timedelta(minutes=first_id // 100)
    messages, expected = [], set()
    for c, customer in enumerate(customers):
        ids = [first_id + 10 * c + i for i in range(4)]
        messages += [
            message(n, customer, base + timedelta(seconds=10 * i), amount=300) for i, n in enumerate(ids)
        ]
        expected.add(f"TX{ids[-1]:010d}:velocity")
    return messages, expected


def send(bootstrap: str, messages: list[dict], topic: str = broker.TRANSACTIONS_TOPIC) -> None:
    send_messages(bootstrap, topic, messages, retries=10)


def clicks(customers: list[str]) -> list[dict]:
    """Three product views per customer, a second apart, now: one session each."""
    now = datetime.now(UTC)
    return [
        web_event(
            f"E{customer}{i}",
            (now + timedelta(seconds=i)).isoformat(),
            customer,
            session_id=f"S{customer}",
            device="desktop",
        )
        for customer in customers
        for i in range(3)
    ]


def assert_web_events_once(
    spark: SparkSession, tables: StreamTables, customers: list[str], sent: int
) -> None:
    """Each web event on the topic (`sent`) in bronze once, in the funnel once, in its customer's
    session once (every customer's three views)."""
    bronze = [r._source_file for r in rows(spark, tables.table("bronze", "web_events"))]
    assert len(bronze) == len(set(bronze)) == sent
    funnel = rows(spark, tables.live.funnel)
    assert sum(r.product_views for r in funnel) == sent and sum(r.sessions for r in funnel) == len(customers)
    features = {r.customer_id: r.session_events for r in rows(spark, tables.live.features)}
    assert features == dict.fromkeys(customers, 3)


def rows(spark: SparkSession, path: str) -> list:
    return spark.read.format("delta").load(path).collect() if is_delta_table(spark, path) else []


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(1)
    tail = "\n".join(log.read_text().splitlines()[-30:]) if log and log.exists() else ""
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{tail}")


def assert_exactly_once(spark: SparkSession, tables: StreamTables, expected: set[str], sent: int) -> None:
    alerts = [a.alert_id for a in rows(spark, tables.fraud.alerts)]
    assert sorted(alerts) == sorted(expected)  # each expected alert, once, and nothing else
    bronze = [r._source_file for r in rows(spark, tables.table("bronze", "transactions"))]
    assert len(bronze) == len(set(bronze)) == sent  # each Kafka record once


def write_profiles(spark: SparkSession, tables: StreamTables) -> None:
    spark.createDataFrame([profile(c, 300, 100) for c in CUSTOMERS], fraud.PROFILE_SCHEMA).write.format(
        "delta"
    ).save(tables.fraud.profiles)


VISITORS = [f"W{i:02d}" for i in range(1, 21)]


def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    spark: SparkSession, kafka: broker.BrokerConfig, tmp_path: Path
) -> None:
    tables = StreamTables(str(tmp_path / "lakehouse"))
    write_profiles(spark, tables)
    options = StreamOptions(live_sales=False, ingestion_trigger_s=2)
    runner = StreamRunner(spark, tables, kafka.bootstrap, options)
    runner.start()
    try:
        first, expected_first = bursts(CUSTOMERS[:5], 1_000)
        send(kafka.bootstrap, first)
        send(kafka.bootstrap, clicks(VISITORS[:5]), broker.WEB_EVENTS_TOPIC)
        wait_until(lambda: len(rows(spark, tables.fraud.alerts)) == 5, 120, "the first five alerts")

        broker.stop(kafka)
        time.sleep(5)  # the queries poll a broker that is gone
        broker.start(kafka)

        second, expected_second = bursts(CUSTOMERS[5:], 2_000)
        send(kafka.bootstrap, second)
        send(kafka.bootstrap, clicks(VISITORS[5:10]), broker.WEB_EVENTS_TOPIC)
        wait_until(lambda: len(rows(spark, tables.fraud.alerts)) >= 10, 180, "the alerts after the restart")
        wait_until(
            lambda: len(rows(spark, tables.table("bronze", "transactions"))) >= 40, 120, "bronze ingestion"
        )
        wait_until(lambda: len(rows(spark, tables.live.features)) >= 10, 120, "the live features")
        wait_until(
            lambda: len(rows(spark, tables.table("bronze", "web_events"))) >= 30, 120, "bronze web events"
        )
        assert not runner.failed(), "the queries recover by themselves from a broker restart"
    finally:
        runner.stop()
    assert_exactly_once(spark, tables, expected_first | expected_second, sent=40)
    assert_web_events_once(spark, tables, VISITORS[:10], sent=30)
    # Stopped cleanly, the state stores are released: no maintenance thread outlives the session.
    assert not spark._jvm.org.apache.spark.sql.execution.streaming.state.StateStore.isMaintenanceRunning()


def start_stream(root: Path, bootstrap: str, log: Path) -> subprocess.Popen:
    """`techmart fraud run` in its own process group (its Spark JVM included), output to `log`."""
    env = {**os.environ, "TECHMART_LAKEHOUSE": str(root), "TECHMART_KAFKA_BOOTSTRAP": bootstrap}
    techmart = Path(sys.executable).with_name("techmart")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(techmart), "fraud", "run", "--no-live-sales"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_killed_stream_resumes_from_its_checkpoint_exactly_once(
    spark: SparkSession, kafka: broker.BrokerConfig, tmp_path: Path
) -> None:
    root = tmp_path / "lakehouse"
    tables = StreamTables(str(root))
    write_profiles(spark, tables)
    # The module's broker already holds the previous test's 40 messages: this stream reads them too.
    before = sum(broker.end_offsets(kafka.bootstrap, broker.TRANSACTIONS_TOPIC).values())
    first, expected_first = bursts(CUSTOMERS[:5], 3_000)
    second, expected_second = bursts(CUSTOMERS[5:], 4_000)
    log = tmp_path / "stream.log"
    process = start_stream(root, kafka.bootstrap, log)
    try:
        send(kafka.bootstrap, first)
        wait_until(
            lambda: (
                {f"TX{3_000 + 10 * c + 3:010d}:velocity" for c in range(5)}
                <= {a.alert_id for a in rows(spark, tables.fraud.alerts)}
            ),
            180,
            "the first alerts",
            log,
        )
        send(kafka.bootstrap, second)
        send(kafka.bootstrap, clicks(VISITORS[10:20]), broker.WEB_EVENTS_TOPIC)
        time.sleep(2)  # mid-batch, most likely
        os.killpg(process.pid, signal.SIGKILL)  # no clean stop: no final commit
        process.wait(timeout=30)

        process = start_stream(root, kafka.bootstrap, log)
        wait_until(
            lambda: expected_second <= {a.alert_id for a in rows(spark, tables.fraud.alerts)},
            180,
            "the alerts after the restart",
            log,
        )
        total = before + 40
        wait_until(
            lambda: len(rows(spark, tables.table("bronze", "transactions"))) >= total, 120, "bronze ingestion"
        )
        wait_until(lambda: len(rows(spark, tables.live.features)) >= 20, 120, "the live features", log)
        wait_until(
            lambda: len(rows(spark, tables.table("bronze", "web_events"))) >= 60,
            120,
            "bronze web events",
            log,
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # a clean stop, as Ctrl-C
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
    # The previous test's traffic raised its own ten alerts here too (same customers, same bursts).
    previous = {f"TX{n:010d}:velocity" for n in [1_000 + 10 * c + 3 for c in range(5)]}
    previous |= {f"TX{n:010d}:velocity" for n in [2_000 + 10 * c + 3 for c in range(5)]}
    assert_exactly_once(spark, tables, previous | expected_first | expected_second, sent=total)
    # The previous test's visitors are on the topic too: this lakehouse follows them as well.
    assert_web_events_once(spark, tables, VISITORS, sent=60)
