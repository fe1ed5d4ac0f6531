"""The fraud stream: parsing with dead-letter reasons, and end to end on a real broker: each scenario
sent raises its alert in Delta and on the topic within 30 s, clean traffic raises none, a city the
reference cannot place is counted in the heartbeat, a refreshed profile is used without a restart, and
the topic lands in bronze once."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import deltalake
import pandas as pd
import pytest
from kafka import KafkaConsumer, KafkaProducer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets import delta
from techmart_assets.delta import QUERY_ID_PROPERTY, is_delta_table, last_committed_batch
from techmart_assets.silver.transactions import build_transactions
from techmart_assets.streaming import broker, fraud
from techmart_assets.streaming.profiles import customer_profiles
from techmart_assets.streaming.rules import FraudConfig, build_profile
from techmart_assets.streaming.runner import CityCounts, StreamOptions, StreamRunner, StreamTables, describe
from techmart_assets_tests.support import TIME_STYLES, message, profile
from techmart_assets_tests.support import message as support_message

ALERT_WITHIN_S = 30


def test_the_profile_cache_follows_the_profiles_table(spark: SparkSession, tmp_path) -> None:
    """What the detection's Python workers read: nothing before the table exists, then each version."""
    path = str(tmp_path / "customer_profiles")
    cache = fraud.ProfileCache(path, refresh_s=0)
    assert cache.get("C1") is None
    spark.createDataFrame([profile("C1", 300, 100)], fraud.PROFILE_SCHEMA).write.format("delta").save(path)
    first = cache.get("C1")
    assert (first.home_country, first.purchases, first.mean_amount, first.std_amount) == (
        "Morocco",
        20,
        300,
        100,
    )
    rows = [
        profile("C1", 500, 50, home="France"),
        profile("C2", 80, 10),
        (None, "Morocco", 1, 1.0, 1.0, 0.0, 1.0, None),
    ]
    spark.createDataFrame(rows, fraud.PROFILE_SCHEMA).write.format("delta").mode("overwrite").save(path)
    assert (cache.get("C1").home_country, cache.get("C1").mean_amount) == ("France", 500)
    assert cache.get("C2").std_amount == 10 and cache.version == 1 and len(cache.profiles) == 2
    # Between checks the table is not looked at: a worker pays for one log listing per period.
    slow = fraud.ProfileCache(path, refresh_s=3600)
    assert slow.get("C2").mean_amount == 80
    spark.createDataFrame([profile("C2", 90, 10)], fraud.PROFILE_SCHEMA).write.format("delta").mode(
        "overwrite"
    ).save(path)
    assert slow.get("C2").mean_amount == 80 and slow.version == 1
    assert cache.get("C2").mean_amount == 90 and cache.version == 2 and cache.get("C1") is None
    assert cache.get("C2").max_amount == 110
    # A table written before `max_amount` existed (until the next build of the profiles): read, the
    # column at its default (no amount is "paid before").
    old_schema = fraud.PROFILE_SCHEMA.replace(" max_amount double,", "")
    spark.createDataFrame([(*profile("C3", 70, 5)[:6], None)], old_schema).write.format("delta").mode(
        "overwrite"
    ).option("overwriteSchema", "true").save(path)
    assert (cache.get("C3").mean_amount, cache.get("C3").max_amount) == (70, 0.0)


def test_a_replayed_batch_lands_in_delta_once(
    spark: SparkSession, kafka: broker.BrokerConfig, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detection's foreachBatch, called as Spark calls it: a batch replayed in the same process or
    after a restart is not written again, alerts nor dead letters, nor counted again; a new
    checkpoint (a new query id) starts from batch 0."""
    path, dead_path = str(tmp_path / "fraud_alerts"), str(tmp_path / "fraud_dead_letters")
    paths = fraud.StreamPaths(alerts=path, dead_letters=dead_path, profiles="", checkpoints="")
    at = datetime(2025, 6, 30, 12)
    nothing = (None,) * len(fraud.ALERT_SCHEMA)

    def output(*transactions: str, dead: tuple[int, ...] = ()):
        """The stateful operator's rows: alerts, dead letters (at these offsets), the city count."""
        alert = ("velocity", 0.9, "x")
        rows = [(f"{t}:velocity", *alert, t, "C1", 10.0, at, at, fraud.ALERT, None) for t in transactions]
        produced_s = datetime(2025, 6, 30, 23, 59, 59, 250_000, tzinfo=UTC).timestamp()
        for offset in dead:
            letter = {"raw_value": "{", "error": "malformed JSON", "kafka_partition": 1}
            letter["kafka_offset"] = offset
            rows.append((*nothing, fraud.DEAD_LETTER, json.dumps({**letter, "produced_s": produced_s})))
        rows.append((*nothing, fraud.CITIES, json.dumps({"valid": len(transactions), "unplaced": 1})))
        return spark.createDataFrame(rows, fraud.DETECTION_OUTPUT)

    topic = "fraud-alerts-replays"  # not the module's topic, which the stream's test reads whole
    broker.ensure_topics(kafka.bootstrap, {topic: 1})
    cities = CityCounts()

    def writer(on_cities=cities.add):
        return fraud.detection_writer(paths, kafka.bootstrap, topic, on_cities)

    context = spark.sparkContext
    try:
        context.setLocalProperty(QUERY_ID_PROPERTY, "query-1")
        write = writer()
        write(output("T1", dead=(7,)), 0)
        write(output(), 1)
        write(output("T2", dead=(8, 9)), 2)
        write(output("T2", dead=(8, 9)), 2)  # replayed by the same process
        restarted = writer()
        restarted(output("T2", dead=(8, 9)), 2)  # replayed after a restart
        restarted(output("T3"), 3)
        context.setLocalProperty(QUERY_ID_PROPERTY, "query-2")  # a new checkpoint
        writer(None)(output("T4", dead=(10,)), 0)
    finally:
        context.setLocalProperty(QUERY_ID_PROPERTY, None)
    written = spark.read.format("delta").load(path).groupBy("transaction_id").count().collect()
    assert {r.transaction_id: r["count"] for r in written} == {"T1": 1, "T2": 1, "T3": 1, "T4": 1}
    assert deltalake.DeltaTable(path).version() == 3  # a commit per batch with alerts, none for batch 1
    dead = spark.read.format("delta").load(dead_path).orderBy("kafka_offset").collect()
    assert [(d.kafka_offset, d.kafka_partition, d.error) for d in dead] == [
        (o, 1, "malformed JSON") for o in (7, 8, 9, 10)
    ]
    assert {(d.produced_at, d.partition_date) for d in dead} == {
        (datetime(2025, 6, 30, 23, 59, 59, 250_000), date(2025, 6, 30))
    }
    assert deltalake.DeltaTable(dead_path).transaction_version("query-1") == 2
    assert cities.summary() == {"valid": 3, "unplaced": 4, "last_batch_valid": 1, "last_batch_unplaced": 1}
    properties = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first().properties
    assert properties["delta.checkpointInterval"] == str(fraud.ALERTS_CHECKPOINT_INTERVAL)
    assert last_committed_batch(spark, path, "query-1") == 3
    assert last_committed_batch(spark, path, "query-2") == 0
    assert last_committed_batch(spark, path, "query-3") == -1
    # Each commit also carries Delta's own transaction of the query and micro-batch.
    assert deltalake.DeltaTable(path).transaction_version("query-1") == 3
    assert deltalake.DeltaTable(path).transaction_version("query-2") == 0
    # Commits of other writers after the query's last one: the lookup reads further back.
    monkeypatch.setattr(delta, "HISTORY_LOOKBACK", 2)
    foreign = output("F1").where("kind = 'alert'").select(*fraud.ALERT_SCHEMA.fieldNames())
    foreign = foreign.withColumn("detected_at", F.col("produced_at")).withColumn(
        "partition_date", F.to_date("event_ts")
    )
    for _ in range(2):
        foreign.write.format("delta").mode("append").save(path)
    assert last_committed_batch(spark, path, "query-1") == 3
    with pytest.raises(RuntimeError, match=r"sql\.streaming\.queryId"):
        writer()(output("T5"), 4)
    # The topic is at least once: a replayed batch is sent again.
    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5_000
    )
    sent = [json.loads(r.value)["transaction_id"] for r in consumer]
    consumer.close()
    assert sent == ["T1", "T2", "T2", "T2", "T3", "T4"]


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
    assert errors["bad_time"].startswith("transaction_ts is not ISO-8601 with Z or an offset")
    assert errors["text_amount"].startswith("total_amount is missing, not a number")
    assert errors["negative"].startswith("total_amount is missing, not a number or not positive")


def test_a_message_is_parsed_once_whatever_filters_follow(spark: SparkSession) -> None:
    """The optimizer must not copy the JSON parse into the filter on `error` (ten fields, ten parses)."""
    frame = spark.createDataFrame([], "value binary, partition int, offset long, timestamp timestamp")
    valid = fraud.detector_input(fraud.parse(frame).where(F.col("error").isNull()))
    dead = fraud.parse(frame).where(F.col("error").isNotNull())
    for query in (valid, dead):
        assert query._jdf.queryExecution().optimizedPlan().toString().count("from_json(") == 1


def scenarios(base: datetime) -> tuple[list[dict], set[tuple[str, str]]]:
    """One crafted sequence per rule (customers C1..C6) and clean traffic (C7, C8): the messages and
    the (rule, transaction) alerts they must raise. Their times are written as other producers
    write them (Python, Java, JavaScript, offsets), in turn."""
    s = timedelta(seconds=1)
    styles = itertools.cycle([style for style in TIME_STYLES if style != "whole seconds, Z"])

    def message(*args, **kwargs) -> dict:
        return support_message(*args, **kwargs, style=next(styles))

    sent = [
        *(message(100 + i, "C1", base + 10 * i * s, amount=300) for i in range(4)),  # 4 in 30 s
        message(200, "C2", base, amount=180),
        message(201, "C2", base + 300 * s, amount=4_000),  # 22x the mean of 180
        message(300, "C3", base, amount=20),
        message(301, "C3", base + 40 * s, amount=6_000),  # small, then large 40 s later
        message(400, "C4", base, country="France", city="Paris"),
        message(500, "C5", base, city="Tangier"),
        message(501, "C5", base + 600 * s, city="Agadir"),  # ~650 km in 10 minutes
        message(600, "C6", base.replace(hour=3)),  # 03h for a customer who never buys at night
        *(message(700 + i, "C7", base + 1_200 * i * s, amount=250) for i in range(3)),
        message(800, "C8", base, amount=3_000),  # no profile: nothing to compare with
        message(801, "C8", base + 60 * s, city="Casablnca"),  # a city the reference cannot place
    ]
    expected = {
        ("velocity", "TX0000000103"),
        ("amount_spike", "TX0000000201"),
        ("small_then_large", "TX0000000301"),
        ("foreign_country", "TX0000000400"),
        ("distant_cities", "TX0000000501"),
        ("unusual_hour", "TX0000000600"),
    }
    return sent, expected


PROFILES = [
    profile("C1", 300, 100),
    profile("C2", 180, 40),
    profile("C3", 2_000, 1_500),
    profile("C4", 1_500, 500),
    profile("C5", 1_500, 500),
    profile("C6", 1_500, 500),
    profile("C7", 250, 50),
]


def send(bootstrap: str, values: list[bytes], keys: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in zip(keys, values, strict=True):
        producer.send(broker.TRANSACTIONS_TOPIC, key=key.encode(), value=value)
    producer.flush()
    producer.close()


def send_messages(bootstrap: str, messages: list[dict]) -> None:
    send(bootstrap, [json.dumps(m).encode() for m in messages], [m["customer_id"] for m in messages])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until `condition()` is truthy; the seconds it took. Fails with `what` after `timeout`."""
    started = time.time()
    while time.time() - started < timeout:
        if condition():
            return time.time() - started
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


@dataclass
class Stream:
    runner: StreamRunner
    tables: StreamTables
    bootstrap: str
    base: datetime  # the scenarios' noon
    messages: list[dict]  # the valid messages sent
    expected: set[tuple[str, str]]  # the (rule, transaction) alerts they must raise
    truncated: bytes  # the one bad message sent
    sent_at: float

    def rows(self, layer: str, name: str) -> list:
        path = self.tables.table(layer, name)
        spark = self.runner.spark
        return spark.read.format("delta").load(path).collect() if is_delta_table(spark, path) else []


@pytest.fixture(scope="module")
def stream(
    spark: SparkSession, kafka: broker.BrokerConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stream]:
    """The streaming queries running on the module's broker, as the job runs them, until the module ends."""
    tables = StreamTables(str(tmp_path_factory.mktemp("stream_lakehouse")))
    spark.createDataFrame(PROFILES, fraud.PROFILE_SCHEMA).write.format("delta").save(tables.fraud.profiles)
    options = StreamOptions(ingestion_trigger_s=2, live_sales_trigger_s=2)
    runner = StreamRunner(spark, tables, kafka.bootstrap, options)
    runner.start()
    try:
        # Running, with its first (empty) micro-batch behind it: what a long-running job looks like.
        wait_for(lambda: all(q.lastProgress for q in runner.queries), 120, "the queries' first batch")
        # The module's traffic, sent once the queries run: every scenario, clean traffic, a bad message.
        base = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=250_000)
        messages, expected = scenarios(base)
        truncated = json.dumps(message(900, "C9", base))[:40].encode()
        send_messages(kafka.bootstrap, messages)
        send(kafka.bootstrap, [truncated], ["C9"])
        yield Stream(runner, tables, kafka.bootstrap, base, messages, expected, truncated, time.time())
    finally:
        runner.stop()
    assert not runner.failed()


def test_each_scenario_is_alerted_in_delta_and_on_the_topic_within_30_s(stream: Stream) -> None:
    messages, expected, truncated = stream.messages, stream.expected, stream.truncated

    def alerted() -> set[tuple[str, str]]:
        return {(a.rule_id, a.transaction_id) for a in stream.rows("gold", "fraud_alerts")}

    wait_for(lambda: alerted() >= expected, ALERT_WITHIN_S, f"alerts {expected - alerted()}")
    elapsed = time.time() - stream.sent_at
    assert elapsed < ALERT_WITHIN_S
    print(f"all {len(expected)} scenarios alerted {elapsed:.1f} s after sending")
    time.sleep(3)  # a few more batches: clean traffic must still raise nothing
    alerts = stream.rows("gold", "fraud_alerts")
    assert {(a.rule_id, a.transaction_id) for a in alerts} == expected
    assert len(alerts) == len(expected)
    for alert in alerts:
        assert alert.explanation and 0 < alert.score <= 1
        assert alert.detected_at >= alert.produced_at
        assert alert.partition_date == alert.event_ts.date()
    assert {a.alert_id for a in alerts} == {f"{tx}:{rule}" for rule, tx in expected}

    consumer = KafkaConsumer(
        broker.FRAUD_ALERTS_TOPIC,
        bootstrap_servers=stream.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    on_topic = [json.loads(r.value) for r in consumer]
    consumer.close()
    assert sorted(a["alert_id"] for a in on_topic) == sorted(a.alert_id for a in alerts)
    assert all(a["explanation"] and a["rule_id"] for a in on_topic)

    wait_for(lambda: stream.rows("gold", "fraud_dead_letters"), 20, "the dead letter")
    (dead,) = stream.rows("gold", "fraud_dead_letters")
    assert dead.error.startswith("malformed JSON") and dead.raw_value == truncated.decode()

    # The detection counts the valid transactions, each once, and the one whose city the
    # reference cannot place; the heartbeat carries the count.
    wait_for(lambda: stream.runner.health()["cities"]["valid"] >= len(messages), 30, "the city count")
    health = stream.runner.health()
    assert (health["cities"]["valid"], health["cities"]["unplaced"]) == (len(messages), 1)
    assert f"city not placed for 1 of {len(messages)} valid transactions this run" in describe(health)

    # Every message, good or bad, lands in bronze transactions once.
    total = len(messages) + 1
    wait_for(lambda: len(stream.rows("bronze", "transactions")) >= total, 30, "bronze ingestion")
    bronze = stream.rows("bronze", "transactions")
    assert sorted(r.transaction_id for r in bronze if r.transaction_id) == sorted(
        m["transaction_id"] for m in messages
    )
    assert len(bronze) == total
    assert not stream.runner.failed()


def test_every_producers_times_reach_silver_at_the_instant_they_name(
    stream: Stream, spark: SparkSession
) -> None:
    """The scenarios' streamed bronze rows (times written by Python, Java, JavaScript, with offsets)
    through silver's batch build: every one accepted, at the instant its text names, in UTC."""
    sent = {m["transaction_id"]: m["transaction_ts"] for m in stream.messages}
    wait_for(lambda: len(stream.rows("bronze", "transactions")) > len(sent), 30, "bronze ingestion")
    bronze = (
        spark.read.format("delta")
        .load(stream.tables.table("bronze", "transactions"))
        .where(F.col("transaction_id").isin(list(sent)) | F.col("transaction_id").isNull())
    )
    since = datetime(2023, 1, 1)
    customers = spark.createDataFrame(
        [(f"C{n}", n, since, None, "regular", "Casablanca", "Morocco") for n in range(1, 9)],
        "customer_id string, customer_sk bigint, valid_from timestamp, valid_to timestamp, "
        "segment string, city string, country string",
    )
    products = spark.createDataFrame(
        [("P000001", 1, since, None, "Laptops", "Ultrabooks", "Dell", Decimal("100.00"))],
        "product_id string, product_sk bigint, valid_from timestamp, valid_to timestamp, "
        "category string, subcategory string, brand string, cost decimal(12,2)",
    )
    earlier = spark.createDataFrame([], "transaction_id string, customer_id string, partition_date date")

    batch = build_transactions(bronze, customers, products, earlier)

    utc = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"  # the session's time zone is UTC
    accepted = {
        r.transaction_id: (r.ts, r.partition_date)
        for r in batch.accepted.select(
            "transaction_id", F.date_format("transaction_ts", utc).alias("ts"), "partition_date"
        ).collect()
    }
    # Python's own parser as the reference: the instant each text names.
    named = {tx: datetime.fromisoformat(text).astimezone(UTC) for tx, text in sent.items()}
    assert accepted == {tx: (at.strftime("%Y-%m-%dT%H:%M:%S.%f"), at.date()) for tx, at in named.items()}
    assert [r.quarantine_rule for r in batch.quarantined.collect()] == ["malformed_row"]  # the truncated one


def test_a_refreshed_profile_is_used_without_a_restart(stream: Stream, spark: SparkSession) -> None:
    """C10 has no profile when the stream starts; once the batch job writes one, its spike is seen."""
    base = datetime.now(UTC).replace(hour=13, minute=0, second=0, microsecond=0)
    spark.createDataFrame([*PROFILES, profile("C10", 100, 20)], fraud.PROFILE_SCHEMA).write.format(
        "delta"
    ).mode("overwrite").save(stream.tables.fraud.profiles)
    send_messages(stream.bootstrap, [message(1_000, "C10", base, amount=2_000)])
    wait_for(
        lambda: any(a.transaction_id == "TX0000001000" for a in stream.rows("gold", "fraud_alerts")),
        ALERT_WITHIN_S,
        "the alert on the refreshed profile",
    )
    (alert,) = [a for a in stream.rows("gold", "fraud_alerts") if a.transaction_id == "TX0000001000"]
    assert alert.rule_id == "amount_spike" and "20.0x" in alert.explanation


def test_live_sales_per_minute_are_written_once_each_minute_is_closed(stream: Stream) -> None:
    """The module's traffic per minute of event time: a minute is written once the watermark (the
    latest event time minus a minute) has passed its end; none is written twice."""
    messages = stream.messages
    base = stream.base.replace(microsecond=0)  # the scenarios' first minute
    # The instants the texts name (their styles differ: offsets, fractions).
    times = [datetime.fromisoformat(m["transaction_ts"]).astimezone(UTC) for m in messages]
    closed_before = max(times) - timedelta(minutes=2)  # 12:40:00.25 - 2 min
    expected: dict[datetime, list[float]] = {}
    for m, at in zip(messages, times, strict=True):
        minute = at.replace(second=0, microsecond=0, tzinfo=None)
        if base.replace(tzinfo=None) <= minute <= closed_before.replace(tzinfo=None):
            orders, units, revenue = expected.get(minute, [0, 0, 0.0])
            expected[minute] = [orders + 1, units + m["quantity"], round(revenue + m["total_amount"], 2)]

    def written() -> dict[datetime, list]:
        return {
            r.minute_start: [r.orders, r.units, r.revenue_mad]
            for r in stream.rows("gold", "live_sales_by_minute")
            if r.minute_start >= base.replace(tzinfo=None)
        }

    wait_for(lambda: set(written()) >= set(expected), 60, "the closed minutes")
    rows = [r for r in stream.rows("gold", "live_sales_by_minute") if r.minute_start in expected]
    assert len(rows) == len(expected)  # one row per minute (one category and channel here), once
    assert {r.minute_start: [r.orders, r.units, r.revenue_mad] for r in rows} == expected
    assert {(r.category, r.channel) for r in rows} == {("unknown", "web")}  # no silver products here
    assert all(r.partition_date == r.minute_start.date() for r in rows)


def test_customer_profiles_follow_the_rules_definition(spark: SparkSession) -> None:
    """The Spark profiles (from silver) equal `rules.build_profile` on the same purchases."""
    config = FraudConfig()
    purchases = [
        ("T1", "C1", datetime(2025, 6, 1, 10), Decimal("100.0"), "completed", "Audio"),
        ("T2", "C1", datetime(2025, 6, 2, 2), Decimal("300.0"), "completed", "Laptops"),  # at night
        ("T3", "C1", datetime(2025, 6, 3, 15), Decimal("200.0"), "completed", "Laptops"),
        ("T4", "C1", datetime(2025, 6, 4, 15), Decimal("9000.0"), "cancelled", "TVs"),  # not a purchase
        ("T5", "C1", datetime(2025, 7, 1, 15), Decimal("9000.0"), "completed", "TVs"),  # after as_of
        ("T7", "C1", datetime(2025, 6, 5, 15), Decimal("20.0"), "completed", "Accessories"),
        ("T8", "C1", datetime(2025, 6, 6, 15), Decimal("30.0"), "completed", "Phones"),
        ("T6", "C2", datetime(2025, 6, 1, 12), Decimal("50.0"), "completed", None),
    ]
    transactions = spark.createDataFrame(
        purchases,
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "total_amount decimal(12,2), status string, product_category string",
    )
    customers = spark.createDataFrame(
        [("C1", "France", False), ("C1", "Morocco", True), ("C2", "Morocco", True), ("C3", "Spain", True)],
        "customer_id string, country string, is_current boolean",
    )
    as_of = datetime(2025, 6, 30).date()
    built = {r.customer_id: r for r in customer_profiles(transactions, customers, as_of, config).collect()}
    assert set(built) == {"C1", "C2", "C3"}
    for customer, home in (("C1", "Morocco"), ("C2", "Morocco"), ("C3", "Spain")):
        history = [
            (float(amount), ts.replace(tzinfo=UTC).timestamp())
            for _, c, ts, amount, status, _ in purchases
            if c == customer and status == "completed" and ts.date() <= as_of
        ]
        want = build_profile(customer, home, history, config)
        got = built[customer]
        assert (got.home_country, got.purchases) == (want.home_country, want.purchases)
        assert got.mean_amount == pytest.approx(want.mean_amount)
        assert got.std_amount == pytest.approx(want.std_amount)
        assert got.night_share == pytest.approx(want.night_share)
        assert got.max_amount == pytest.approx(want.max_amount)
        assert got.as_of == as_of
    assert built["C1"].night_share == pytest.approx(1 / 5)
    # Most bought first, a tie by name, three at most; none known: none.
    assert built["C1"].favourite_categories == ["Laptops", "Accessories", "Audio"]
    assert built["C2"].favourite_categories == [] and built["C3"].favourite_categories == []


def test_python_workers_start_with_the_detection_already_imported(spark: SparkSession) -> None:
    """Spark ends a Python worker idle for a minute and forks a new one from the project's daemon
    (`spark_daemon`), which imported the detection, its rules, the city reference, pandas and pyarrow
    up front: a worker forked after a quiet period does not import them again."""

    @F.pandas_udf("string")
    def imported(ids: pd.Series) -> pd.Series:
        import sys

        wanted = ("pandas", "pyarrow", "techmart_assets.streaming.fraud", "techmart_assets.reference.cities")
        loaded = [m for m in wanted if m in sys.modules]  # before this function imports anything
        cities = sys.modules.get("techmart_assets.reference.cities")
        if cities is not None and cities.reference.cache_info().currsize:
            loaded.append("cities read")
        return pd.Series([",".join(loaded)] * len(ids))

    seen = {r.loaded for r in spark.range(4).select(imported("id").alias("loaded")).distinct().collect()}
    assert seen == {
        "pandas,pyarrow,techmart_assets.streaming.fraud,techmart_assets.reference.cities,cities read"
    }
