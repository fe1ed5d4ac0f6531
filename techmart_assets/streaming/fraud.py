"""The fraud detection stream: Kafka `transactions` -> per-customer rules -> Delta `fraud_alerts` and
the `fraud-alerts` topic.

Two Structured Streaming queries (spark-sql-kafka) on the same topic, each with its checkpoint
under `checkpoints/fraud/`:
- `fraud_detection`: each valid transaction is joined with its customer's profile (a Delta table;
  a stream-static join reads its latest version every micro-batch, so refreshed profiles arrive
  without a restart), then `rules.evaluate` runs per customer with the customer's recent purchases
  as checkpointed state (`applyInPandasWithState`, customers grouped in state buckets). Each
  micro-batch's alerts are written to Delta once (`txnAppId`/`txnVersion`: a replayed batch is
  skipped) and then sent to `fraud-alerts`.
- `fraud_dead_letters`: every message that does not parse, lacks a key or holds a bad value, with
  its raw value and the reason. A bad message never stops detection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from techmart_assets.delta import is_delta_table
from techmart_assets.sources import TRANSACTIONS
from techmart_assets.streaming.broker import FRAUD_ALERTS_TOPIC, TRANSACTIONS_TOPIC
from techmart_assets.streaming.rules import CustomerState, FraudConfig, Profile, Transaction, evaluate

DETECTION_QUERY = "fraud_detection"
DEAD_LETTER_QUERY = "fraud_dead_letters"
KEYS = ("transaction_id", "customer_id", "transaction_ts")
STATE_PARTITIONS = 2
_TYPES = {"quantity": T.LongType(), "unit_price": T.DoubleType(), "total_amount": T.DoubleType()}
MESSAGE_SCHEMA = T.StructType([T.StructField(c, _TYPES.get(c, T.StringType())) for c in TRANSACTIONS.columns])
PROFILE_SCHEMA = (
    "customer_id string, home_country string, purchases long, mean_amount double, std_amount double, "
    "night_share double, as_of date"
)
ALERT_SCHEMA = T.StructType(
    [
        T.StructField("alert_id", T.StringType()),
        T.StructField("rule_id", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("explanation", T.StringType()),
        T.StructField("transaction_id", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("total_amount", T.DoubleType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("produced_at", T.TimestampType()),
    ]
)
STATE_SCHEMA = T.StructType([T.StructField("customers", T.StringType())])  # JSON: customer -> state
# Customers share state buckets (see `detector`). Part of the checkpoint: changing it needs a new one.
STATE_BUCKETS = 64


@dataclass(frozen=True)
class StreamPaths:
    alerts: str
    dead_letters: str
    profiles: str
    checkpoints: str  # checkpoints/fraud


def read_transactions(spark: SparkSession, bootstrap: str, starting: str = "earliest") -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", TRANSACTIONS_TOPIC)
        .option("startingOffsets", starting)
        # A micro-batch reads up to offsets that exist: without this the broker holds each partition's
        # last fetch for its default 500 ms waiting for more, which is most of a small batch's time.
        .option("kafka.fetch.max.wait.ms", "20")
        .load()
    )


def parse(messages: DataFrame) -> DataFrame:
    """Kafka records -> the message's columns, `event_ts`, Kafka's coordinates and `error` (null if valid)."""
    raw = F.col("value").cast("string")
    frame = messages.select(
        raw.alias("raw_value"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("produced_at"),
        F.from_json(raw, MESSAGE_SCHEMA).alias("m"),
        (F.get_json_object(raw, "$").isNotNull() & raw.rlike(r"^\s*\{")).alias("is_json_object"),
    ).select("*", "m.*")
    event_ts = F.to_timestamp("transaction_ts", "yyyy-MM-dd'T'HH:mm:ss'Z'")
    missing = F.concat_ws(
        ", ", *[F.when(F.trim(F.col(k)) == "", F.lit(k)).when(F.col(k).isNull(), F.lit(k)) for k in KEYS]
    )
    error = (
        F.when(~F.col("is_json_object"), F.lit("malformed JSON: not a JSON object"))
        .when(missing != "", F.concat(F.lit("missing key: "), missing))
        .when(event_ts.isNull(), F.lit("transaction_ts is not an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SSZ)"))
        .when(
            F.col("total_amount").isNull() | (F.col("total_amount") <= 0),
            F.lit("total_amount is missing, not a number or not positive"),
        )
    )
    return frame.withColumn("event_ts", event_ts).withColumn("error", error).drop("m", "is_json_object")


def _customer_state(data: dict) -> CustomerState:
    return CustomerState(
        recent=[Transaction(**t) for t in data["recent"]],
        velocity_alerted_until=data["velocity_alerted_until"],
    )


def _state_data(state: CustomerState) -> dict:
    return {
        "recent": [asdict(t) for t in state.recent],
        "velocity_alerted_until": state.velocity_alerted_until,
    }


# What the detector reads of each transaction, packed into one JSON column: Spark hands every group
# to Python as a pandas frame, converted column by column, so one column instead of a dozen.
_PROFILE_FIELDS = ("home_country", "purchases", "mean_amount", "std_amount", "night_share")
_PAYLOAD_FIELDS = ("customer_id", "transaction_id", "total_amount", "city", "country", *_PROFILE_FIELDS)


def detector_input(enriched: DataFrame) -> DataFrame:
    """The state bucket of each transaction's customer and one JSON `payload` (times as epoch seconds)."""
    return enriched.select(
        (F.abs(F.xxhash64("customer_id")) % STATE_BUCKETS).alias("bucket"),
        F.to_json(
            F.struct(
                *_PAYLOAD_FIELDS,
                F.col("event_ts").cast("double").alias("event_s"),
                F.col("produced_at").cast("double").alias("produced_s"),
            )
        ).alias("payload"),
    )


def _profile(row: dict) -> Profile | None:
    """The customer's profile from a joined row (every row of a customer carries the same one)."""
    if row.get("home_country") is None:  # no profile row for this customer
        return None
    return Profile(
        row["customer_id"],
        row["home_country"],
        int(row["purchases"]),
        float(row["mean_amount"]),
        float(row["std_amount"]),
        float(row["night_share"]),
    )


def _utc(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s")  # naive UTC, as Spark's session time zone reads it


def detector(config: FraudConfig):
    """The function of `applyInPandasWithState`, called once per state bucket and micro-batch.

    Spark's per-group cost (a pandas frame in, one out, the state row) is about a millisecond: paid
    per customer it would be most of a micro-batch at a thousand events per second. So state is kept
    per bucket of customers (`STATE_BUCKETS` groups, a hash of `customer_id`): the bucket's state is
    a map customer -> that customer's recent purchases, and `rules.evaluate` runs per customer as
    before. A customer is forgotten once its latest purchase is older than the longest rule window
    (`memory_s`) before the newest event time the bucket has seen.
    """

    def detect(key: tuple, batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        rows = [json.loads(payload) for frame in batches for payload in frame["payload"].tolist()]
        customers: dict[str, dict] = json.loads(state.get[0]) if state.exists else {}
        by_customer: dict[str, list[dict]] = {}
        for row in rows:
            by_customer.setdefault(row["customer_id"], []).append(row)
        alerts = []
        for customer_id, own in by_customer.items():
            transactions = [
                Transaction(
                    r["transaction_id"],
                    customer_id,
                    r["event_s"],
                    float(r["total_amount"]),
                    r.get("city") or "",
                    r.get("country") or "",
                )
                for r in own
            ]
            known = customers.get(customer_id)
            before = _customer_state(known) if known else CustomerState()
            found, after = evaluate(transactions, before, _profile(own[0]), config)
            alerts.extend(found)
            customers[customer_id] = _state_data(after)
        newest = max(r["event_s"] for r in rows)
        state.update(
            (
                json.dumps(
                    {
                        c: data
                        for c, data in customers.items()
                        if data["recent"] and data["recent"][-1]["event_ts"] >= newest - config.memory_s
                    }
                ),
            )
        )
        if not alerts:
            return
        produced = {r["transaction_id"]: r["produced_s"] for r in rows}
        amounts = {r["transaction_id"]: float(r["total_amount"]) for r in rows}
        yield pd.DataFrame(
            [
                {
                    "alert_id": f"{a.transaction_id}:{a.rule_id}",
                    "rule_id": a.rule_id,
                    "score": a.score,
                    "explanation": a.explanation,
                    "transaction_id": a.transaction_id,
                    "customer_id": a.customer_id,
                    "total_amount": amounts[a.transaction_id],
                    "event_ts": _utc(a.event_ts),
                    "produced_at": _utc(produced[a.transaction_id]),
                }
                for a in alerts
            ],
            columns=ALERT_SCHEMA.fieldNames(),
        )

    return detect


def profiles(spark: SparkSession, path: str) -> DataFrame:
    """The customer profiles table, or an empty one until the batch job has written it."""
    if is_delta_table(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], PROFILE_SCHEMA)


def alerts_writer(path: str, bootstrap: str):
    """foreachBatch: the batch's alerts into Delta exactly once, then onto the fraud-alerts topic.

    The stateful operator runs once per micro-batch: its few alerts are collected and written from
    the driver (no second evaluation of the batch). A batch without alerts commits nothing. A batch
    replayed after a crash is skipped by Delta (`txnAppId`/`txnVersion`) but sent to the topic again:
    the topic is at least once, and `alert_id` (transaction and rule) identifies duplicates.
    """

    def write(batch: DataFrame, batch_id: int) -> None:
        rows = batch.collect()
        if not rows:
            return
        spark = batch.sparkSession
        alerts = (
            spark.createDataFrame(rows, ALERT_SCHEMA)
            .withColumn("detected_at", F.current_timestamp())
            .withColumn("partition_date", F.to_date("event_ts"))
        )
        alerts.persist()
        try:
            (
                alerts.coalesce(1)
                .write.format("delta")
                .mode("append")
                .partitionBy("partition_date")
                .option("txnAppId", DETECTION_QUERY)
                .option("txnVersion", batch_id)
                .save(path)
            )
            (
                alerts.select(F.col("customer_id").alias("key"), F.to_json(F.struct("*")).alias("value"))
                .coalesce(1)
                .write.format("kafka")
                .option("kafka.bootstrap.servers", bootstrap)
                .option("topic", FRAUD_ALERTS_TOPIC)
                .save()
            )
        finally:
            alerts.unpersist()

    return write


@contextmanager
def query_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Session settings for the queries started inside the block (a query reads them when it starts)."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def start(
    spark: SparkSession,
    paths: StreamPaths,
    bootstrap: str,
    config: FraudConfig | None = None,
    trigger_s: float = 1.0,
    parsed: DataFrame | None = None,
    dead_letters_trigger_s: float = 30.0,
) -> list[StreamingQuery]:
    """Start both queries on `parsed` (the topic read and parsed, by default); they run until stopped."""
    config = config or FraudConfig()
    parsed = parsed if parsed is not None else parse(read_transactions(spark, bootstrap))
    valid = parsed.where(F.col("error").isNull())
    enriched = valid.join(profiles(spark, paths.profiles), "customer_id", "left")
    alerts = (
        detector_input(enriched)
        .groupBy("bucket")
        .applyInPandasWithState(
            detector(config), ALERT_SCHEMA, STATE_SCHEMA, "append", GroupStateTimeout.NoTimeout
        )
    )
    # State in STATE_PARTITIONS partitions, one per core: each costs a Python round trip per batch.
    # Read when the query first starts; the checkpoint keeps it from then on.
    with query_settings(spark, {"spark.sql.shuffle.partitions": str(STATE_PARTITIONS)}):
        detection = (
            alerts.writeStream.queryName(DETECTION_QUERY)
            .foreachBatch(alerts_writer(paths.alerts, bootstrap))
            .option("checkpointLocation", f"{paths.checkpoints}/detection")
            .trigger(processingTime=f"{trigger_s} seconds")
            .start()
        )
    dead = (
        parsed.where(F.col("error").isNotNull())
        .select("raw_value", "error", "kafka_partition", "kafka_offset", "produced_at")
        .withColumn("partition_date", F.to_date("produced_at"))
        .writeStream.queryName(DEAD_LETTER_QUERY)
        .format("delta")
        .partitionBy("partition_date")
        .option("checkpointLocation", f"{paths.checkpoints}/dead_letters")
        .trigger(processingTime=f"{dead_letters_trigger_s} seconds")
        .start(paths.dead_letters)
    )
    return [detection, dead]
