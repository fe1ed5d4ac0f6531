"""Streaming ingestion of the `transactions` topic into bronze, against the real broker: each message
lands once on its event day with its Kafka coordinates, bad messages are kept with their reason,
a restart (or a replayed micro-batch) writes nothing twice, a batch re-materialization of the day
replaces only the file rows, and silver takes the streamed rows like file rows.

The broker is shared by this module's tests, so each test reconciles bronze with everything the
topic holds (its end offsets) and checks its own messages by their (partition, offset).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets.bronze import bronze_assets
from techmart_assets.bronze.ingest import FROM_DROP_FILES, METADATA_COLUMNS
from techmart_assets.delta import PARTITION_COLUMN
from techmart_assets.settings import Settings
from techmart_assets.silver.transactions import build_transactions
from techmart_assets.silver.web_events import build_web_events
from techmart_assets.sources import TRANSACTIONS, WEB_EVENTS
from techmart_assets.streaming import broker
from techmart_assets.streaming.ingestion import source_marker, to_bronze
from techmart_assets_tests import support
from techmart_assets_tests.support import COUPON_FROM, drop_rows, ingesting, lakehouse_resources

TOPIC = broker.TRANSACTIONS_TOPIC
STREAMED = f"NOT ({FROM_DROP_FILES})"


def message(transaction_id: str, at: datetime, customer: str = "C1", **changes: object) -> dict:
    """support.message with this module's values: two units of P1 bought in Rabat."""
    return support.message(
        0,
        customer,
        at,
        **{
            "city": "Rabat",
            "transaction_id": transaction_id,
            "product_id": "P1",
            "quantity": 2,
            "unit_price": 249.99,
            "total_amount": 499.98,
            **changes,
        },
    )


def send(
    bootstrap: str, values: list[tuple[str, str]], topic: str = TOPIC
) -> list[tuple[str, int, datetime]]:
    """(key, value) messages sent and acknowledged; their `_source_file` marker and Kafka timestamp."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        futures = [producer.send(topic, key=k.encode(), value=v.encode()) for k, v in values]
        producer.flush()
        sent = [f.get(timeout=30) for f in futures]
    finally:
        producer.close()
    return [
        (
            source_marker(topic, m.partition, m.offset),
            m.partition,
            datetime.fromtimestamp(m.timestamp / 1000, UTC),
        )
        for m in sent
    ]


def topic_size(bootstrap: str, topic: str = TOPIC) -> int:
    """Every message the topic holds (it is never trimmed in a test): the sum of its end offsets."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def bronze(spark: SparkSession, root: Path) -> DataFrame:
    return spark.read.format("delta").load(str(root / "bronze" / "transactions"))


def materialize_day(settings: Settings, lakehouse: Path, day: date) -> dg.ExecuteInProcessResult:
    """The bronze transactions asset, as Dagster runs it, for one day of `lakehouse`'s drops."""
    return dg.materialize(
        bronze_assets,
        resources=lakehouse_resources(settings, lakehouse),
        partition_key=str(day),
        selection=[dg.AssetKey(["bronze", "transactions"])],
    )


def table_version(spark: SparkSession, root: Path) -> int:
    return spark.sql(f"DESCRIBE HISTORY delta.`{root / 'bronze' / 'transactions'}`").first().version


def by_marker(frame: DataFrame) -> dict[str, dict]:
    rows = frame.where(STREAMED).collect()
    markers = Counter(r._source_file for r in rows)
    assert all(n == 1 for n in markers.values()), "a Kafka record landed more than once"
    return {r._source_file: r.asDict() for r in rows}


def test_messages_land_on_their_event_day_once_with_bad_ones_kept(
    spark: SparkSession, settings: Settings, kafka: broker.BrokerConfig, lakehouse: Path, raw_data: Path
) -> None:
    day1, day2 = date(2024, 11, 12), date(2024, 11, 13)
    good = [message(f"A{n}", datetime(2024, 11, 12, 8, tzinfo=UTC) + timedelta(hours=n)) for n in range(4)]
    good += [message(f"B{n}", datetime(2024, 11, 13, 0, n, tzinfo=UTC), customer=f"C{n}") for n in range(3)]
    good[3]["transaction_ts"] = "2024-11-12T23:59:59Z"  # last second of day 1 (UTC)
    text_quantity = message("T1", datetime(2024, 11, 13, 9, tzinfo=UTC), quantity="two")
    truncated = json.dumps(message("X1", datetime(2024, 11, 13, 9, tzinfo=UTC)))[:60]
    lacking = {k: v for k, v in message("L1", datetime(2024, 11, 13, 9, tzinfo=UTC)).items() if k != "city"}
    values = [(m["customer_id"], json.dumps(m)) for m in [*good, text_quantity]]
    values += [("C9", truncated), ("C9", json.dumps(lacking))]

    with ingesting(spark, lakehouse, kafka.bootstrap):
        sent = send(kafka.bootstrap, values)

    table = bronze(spark, lakehouse)
    rows = by_marker(table)
    assert table.count() == len(rows) == topic_size(kafka.bootstrap)
    assert {p for _, p, _ in sent} != {sent[0][1]}, "the test's messages should use several partitions"
    mine = [rows[marker] for marker, _, _ in sent]
    assert [r["_raw_line"] for r in mine] == [v for _, v in values]
    *valid, text_row, truncated_row, lacking_row = mine
    for sent_message, row in zip([*good, text_quantity], [*valid, text_row], strict=True):
        assert {c: row[c] for c in TRANSACTIONS.columns} == {c: str(v) for c, v in sent_message.items()}
        assert row["_parse_error"] is None
    assert Counter(r["partition_date"] for r in valid) == {day1: 4, day2: 3}
    assert text_row["quantity"] == "two" and text_row["partition_date"] == day2

    assert truncated_row["_parse_error"] == "message is not a complete JSON object"
    assert all(truncated_row[c] is None for c in TRANSACTIONS.columns)
    assert truncated_row["partition_date"] == sent[-2][2].date()  # the day Kafka received it
    assert lacking_row["_parse_error"] == "JSON object lacks keys: city"
    assert lacking_row["partition_date"] == day2 and lacking_row["transaction_id"] == "L1"

    assert table.columns == [*TRANSACTIONS.columns, *METADATA_COLUMNS]
    types = dict(table.dtypes)
    assert {types[c] for c in (*TRANSACTIONS.columns, "_raw_line", "_parse_error", "_source_file")} == {
        "string"
    }
    assert (types["_ingested_at"], types["partition_date"]) == ("timestamp", "date")

    # The batch asset writes onto the table the stream created: the drop's new column is merged in,
    # the day's file rows land beside the streamed rows, which stay as they were.
    materialize_day(settings, lakehouse, day1)
    after = bronze(spark, lakehouse)
    assert "coupon_code" in after.columns
    assert after.where(FROM_DROP_FILES).count() == drop_rows(raw_data, "transactions", day1)
    assert {m: {c: r[c] for c in table.columns} for m, r in by_marker(after).items()} == rows


def test_a_restart_or_a_replayed_batch_lands_each_message_exactly_once(
    spark: SparkSession, kafka: broker.BrokerConfig, tmp_path: Path
) -> None:
    at = datetime(2024, 11, 14, 10, tzinfo=UTC)
    first = send(kafka.bootstrap, [(f"C{n}", json.dumps(message(f"R{n}", at, f"C{n}"))) for n in range(10)])
    with ingesting(spark, tmp_path, kafka.bootstrap):
        pass
    assert len(by_marker(bronze(spark, tmp_path))) == topic_size(kafka.bootstrap)

    second = send(kafka.bootstrap, [(f"C{n}", json.dumps(message(f"S{n}", at, f"C{n}"))) for n in range(12)])
    with ingesting(spark, tmp_path, kafka.bootstrap):
        pass
    rows = by_marker(bronze(spark, tmp_path))
    assert len(rows) == bronze(spark, tmp_path).count() == topic_size(kafka.bootstrap)
    assert {m for m, _, _ in [*first, *second]} <= set(rows)

    # A crash after the Delta commit but before the checkpoint recorded it: the restarted query
    # runs the last micro-batch again, and the commit's marker (query id + batch id) makes it skip it.
    commits = tmp_path / "checkpoints" / "ingestion" / "commits"
    last = max((int(p.name) for p in commits.glob("[0-9]*")), default=None)
    assert last is not None
    for name in (str(last), f".{last}.crc"):
        (commits / name).unlink(missing_ok=True)
    version = table_version(spark, tmp_path)
    with ingesting(spark, tmp_path, kafka.bootstrap):
        pass
    assert (commits / str(last)).exists(), "the last micro-batch was not run again"
    assert by_marker(bronze(spark, tmp_path)).keys() == rows.keys()
    assert bronze(spark, tmp_path).count() == len(rows)
    assert table_version(spark, tmp_path) == version


def test_a_batch_rematerialization_replaces_the_file_rows_and_keeps_the_streamed_ones(
    spark: SparkSession, settings: Settings, kafka: broker.BrokerConfig, lakehouse: Path, raw_data: Path
) -> None:
    day = COUPON_FROM + timedelta(days=1)  # a day whose drop has the `coupon_code` column
    materialize_day(settings, lakehouse, day)  # the batch asset creates the table; the stream appends to it
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=15)
    values = [(f"C{n}", json.dumps(message(f"K{n}", at + timedelta(minutes=n), f"C{n}"))) for n in range(5)]
    values.append(("C7", json.dumps(message("K7", at, "C7", coupon_code="SPRING10"))))
    with ingesting(spark, lakehouse, kafka.bootstrap):
        sent = send(kafka.bootstrap, values)

    def day_rows() -> tuple[int, dict[str, dict]]:
        rows = bronze(spark, lakehouse).where(F.col("partition_date") == F.lit(day))
        return rows.where(FROM_DROP_FILES).count(), by_marker(rows)

    file_rows, streamed = day_rows()
    assert file_rows == drop_rows(raw_data, "transactions", day) > 0
    assert {m for m, _, _ in sent} <= set(streamed)
    assert streamed[sent[-1][0]]["coupon_code"] == "SPRING10"

    result = materialize_day(settings, lakehouse, day)

    assert day_rows() == (file_rows, streamed)
    (event,) = result.asset_materializations_for_node("bronze__transactions")
    assert event.metadata["rows_written"].value == file_rows
    assert event.metadata["streamed_rows_kept"].value == len(streamed)
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["bronze_rows"].value == file_rows
    history = spark.sql(f"DESCRIBE HISTORY delta.`{lakehouse / 'bronze' / 'transactions'}`")
    commits = history.orderBy("version").collect()
    assert commits[0].userMetadata is None and commits[-1].userMetadata is None  # the batch asset's
    assert any(c.userMetadata and "query_id" in c.userMetadata for c in commits[1:-1])  # the stream's
    assert bronze(spark, lakehouse).count() == file_rows + topic_size(kafka.bootstrap)


def test_silver_takes_streamed_rows_like_file_rows(spark: SparkSession) -> None:
    """Kafka-shaped records through `to_bronze`, next to a file row, into silver transactions."""
    day, at = date(2024, 3, 5), datetime(2024, 3, 5, 10, tzinfo=UTC)
    records = [
        json.dumps(message("T1", at)),  # also in the day's drop file: a duplicate
        json.dumps(message("T2", at)),
        json.dumps(message("T3", at, quantity="two")),
        json.dumps(message("T4", at))[:50],
    ]
    kafka_rows = spark.createDataFrame(
        [(v.encode(), TOPIC, 0, i, datetime(2024, 3, 5, 10, 1)) for i, v in enumerate(records)],
        "value binary, topic string, partition int, offset long, timestamp timestamp",
    )
    streamed = to_bronze(kafka_rows)
    from_file = streamed.where("transaction_id = 'T1'").withColumns(
        {
            "_source_file": F.lit(f"file:/raw/transactions/{day}/t.csv"),
            "_raw_line": F.lit(None).cast("string"),
        }
    )
    customers = spark.createDataFrame(
        [("C1", 11, datetime(2023, 1, 1), None, "regular", "Rabat", "Morocco")],
        "customer_id string, customer_sk bigint, valid_from timestamp, valid_to timestamp, "
        "segment string, city string, country string",
    )
    products = spark.createDataFrame(
        [("P1", 101, datetime(2023, 1, 1), None, "Laptops", "Ultrabooks", "Dell", Decimal("100.00"))],
        "product_id string, product_sk bigint, valid_from timestamp, valid_to timestamp, "
        "category string, subcategory string, brand string, cost decimal(12,2)",
    )
    earlier = spark.createDataFrame([], "transaction_id string, customer_id string, partition_date date")

    batch = build_transactions(from_file.unionByName(streamed), customers, products, earlier)

    accepted = {r.transaction_id: r for r in batch.accepted.collect()}
    assert set(accepted) == {"T1", "T2"}
    assert accepted["T1"]._source_file.startswith("file:")  # the file row wins the tie, deterministically
    assert accepted["T2"]._source_file == source_marker(TOPIC, 0, 1)
    assert (accepted["T2"].quantity, accepted["T2"].total_amount) == (2, Decimal("499.98"))
    verdicts = {(r.record_key, r.quarantine_rule) for r in batch.quarantined.collect()}
    assert verdicts == {("T1", "duplicate_transaction_id"), ("T3", "invalid_number"), (None, "malformed_row")}


def test_web_events_land_in_bronze_web_events_once_whatever_the_producer_writes_times_as(
    spark: SparkSession, kafka: broker.BrokerConfig, tmp_path: Path
) -> None:
    at = datetime(2024, 11, 14, 23, 30, tzinfo=UTC)
    styles = list(support.TIME_STYLES.items())
    events = [
        support.web_event(f"E{n}", write(at), customer=f"C{n}", session_id=f"S{n}")
        for n, (_, write) in enumerate(styles)
    ]
    anonymous = support.web_event("EA", "2024-11-15T00:30:00+01:00", customer=None, session_id="S9")
    lacking = {k: v for k, v in support.web_event("EL", "2024-11-14T10:00:00Z").items() if k != "device"}
    values = [(e["customer_id"] or e["session_id"], json.dumps(e)) for e in [*events, anonymous, lacking]]
    values.append(("C9", json.dumps(support.web_event("EX", "2024-11-14T10:00:00Z"))[:40]))
    sent = send(kafka.bootstrap, values, broker.WEB_EVENTS_TOPIC)

    for _ in range(2):  # a restart reads on from its checkpoint: nothing lands twice
        with ingesting(spark, tmp_path, kafka.bootstrap, WEB_EVENTS):
            pass
        table = spark.read.format("delta").load(str(tmp_path / "bronze" / "web_events"))
        rows = by_marker(table)
        assert table.count() == len(rows) == topic_size(kafka.bootstrap, broker.WEB_EVENTS_TOPIC)

    assert table.columns == [*WEB_EVENTS.columns, *METADATA_COLUMNS]
    *valid, anonymous_row, lacking_row, truncated_row = [rows[marker] for marker, _, _ in sent]
    for event, row in zip([*events, anonymous], [*valid, anonymous_row], strict=True):
        assert {c: row[c] for c in WEB_EVENTS.columns} == event
        assert row["_parse_error"] is None
        # 23:30 UTC on the 14th in every style; 00:30 at +01:00 on the 15th is 23:30 UTC the 14th too.
        assert row["partition_date"] == date(2024, 11, 14), row["event_ts"]
    assert anonymous_row["customer_id"] is None
    assert lacking_row["_parse_error"] == "JSON object lacks keys: device"
    assert truncated_row["_parse_error"] == "message is not a complete JSON object"
    assert truncated_row["partition_date"] == sent[-1][2].date()

    # Silver takes the day's streamed events as it takes a drop's: the one that lacks a key is quarantined.
    batch = build_web_events(
        table.where(F.col(PARTITION_COLUMN) == date(2024, 11, 14)),
        spark.createDataFrame([], "event_id string, partition_date date"),
    )
    assert {r.event_id for r in batch.accepted.collect()} == {e["event_id"] for e in [*events, anonymous]}
    assert [(r.record_key, r.quarantine_rule) for r in batch.quarantined.collect()] == [
        ("EL", "malformed_row")
    ]
