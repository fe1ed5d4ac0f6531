"""The fraud detection stream: Kafka `transactions` -> per-customer rules -> Delta `fraud_alerts` and
the `fraud-alerts` topic.

Two Structured Streaming queries (spark-sql-kafka) on the same topic, each with its checkpoint
under `checkpoints/fraud/`:
- `fraud_detection`: each valid transaction is joined with its customer's profile (a Delta table;
  a stream-static join reads its latest version every micro-batch, so refreshed profiles arrive
  without a restart), then `rules.evaluate` runs per customer with the customer's recent purchases
  as checkpointed state (`applyInPandasWithState`). Each micro-batch's alerts are written to Delta
  once (`txnAppId`/`txnVersion`: a replayed batch is skipped) and then sent to `fraud-alerts`.
- `fraud_dead_letters`: every message that does not parse, lacks a key or holds a bad value, with
  its raw value and the reason. A bad message never stops detection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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
_TYPES = {"quantity": T.LongType(), "unit_price": T.DoubleType(), "total_amount": T.DoubleType()}
MESSAGE_SCHEMA = T.StructType([T.StructField(c, _TYPES.get(c, T.StringType())) for c in TRANSACTIONS.columns])
PROFILE_SCHEMA = (
    "customer_id string, home_country string, purchases long, mean_amount double, std_amount double, "
    "night_share double"
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
STATE_SCHEMA = T.StructType([T.StructField("state", T.StringType())])


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


def _load_state(state: GroupState) -> CustomerState:
    if not state.exists:
        return CustomerState()
    (payload,) = state.get
    data = json.loads(payload)
    return CustomerState(
        recent=[Transaction(**t) for t in data["recent"]],
        velocity_alerted_until=data["velocity_alerted_until"],
    )


def detector(config: FraudConfig):
    """The per-customer function of `applyInPandasWithState`: rules over the batch, state kept."""

    def detect(key: tuple, batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        if state.hasTimedOut:  # the customer has been quiet longer than any rule looks back
            state.remove()
            return
        frame = pd.concat(list(batches), ignore_index=True)
        first = frame.iloc[0]
        profile = (
            Profile(
                first.customer_id,
                first.home_country,
                int(first.purchases),
                float(first.mean_amount),
                float(first.std_amount),
                float(first.night_share),
            )
            if isinstance(first.home_country, str)
            else None
        )
        produced = dict(zip(frame.transaction_id, frame.produced_at, strict=True))
        transactions = [
            Transaction(
                r.transaction_id,
                r.customer_id,
                pd.Timestamp(r.event_ts).timestamp(),
                float(r.total_amount),
                r.city or "",
                r.country or "",
            )
            for r in frame.itertuples()
        ]
        alerts, after = evaluate(transactions, _load_state(state), profile, config)
        state.update(
            (
                json.dumps(
                    {
                        "recent": [asdict(t) for t in after.recent],
                        "velocity_alerted_until": after.velocity_alerted_until,
                    }
                ),
            )
        )
        state.setTimeoutDuration(config.memory_s * 1000)
        amounts = {t.transaction_id: t.amount for t in transactions}
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
                    "event_ts": pd.Timestamp(a.event_ts, unit="s", tz="UTC").tz_localize(None),
                    "produced_at": produced[a.transaction_id],
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
    """foreachBatch: the batch's alerts into Delta exactly once, then onto the fraud-alerts topic."""

    def write(batch: DataFrame, batch_id: int) -> None:
        alerts = batch.withColumn("detected_at", F.current_timestamp()).withColumn(
            "partition_date", F.to_date("event_ts")
        )
        alerts.persist()
        try:
            (
                alerts.write.format("delta")
                .mode("append")
                .partitionBy("partition_date")
                .option("txnAppId", DETECTION_QUERY)
                .option("txnVersion", batch_id)
                .save(path)
            )
            (
                alerts.select(F.col("customer_id").alias("key"), F.to_json(F.struct("*")).alias("value"))
                .write.format("kafka")
                .option("kafka.bootstrap.servers", bootstrap)
                .option("topic", FRAUD_ALERTS_TOPIC)
                .save()
            )
        finally:
            alerts.unpersist()

    return write


def start(
    spark: SparkSession,
    paths: StreamPaths,
    bootstrap: str,
    config: FraudConfig | None = None,
    trigger_s: float = 1.0,
) -> list[StreamingQuery]:
    """Start both queries; they run until stopped."""
    config = config or FraudConfig()
    parsed = parse(read_transactions(spark, bootstrap))
    valid = parsed.where(F.col("error").isNull())
    enriched = valid.join(profiles(spark, paths.profiles), "customer_id", "left")
    alerts = enriched.groupBy("customer_id").applyInPandasWithState(
        detector(config), ALERT_SCHEMA, STATE_SCHEMA, "append", GroupStateTimeout.ProcessingTimeTimeout
    )
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
        .trigger(processingTime="5 seconds")
        .start(paths.dead_letters)
    )
    return [detection, dead]
