"""The fraud detection stream: Kafka `transactions` -> per-customer rules -> Delta `fraud_alerts` and
the `fraud-alerts` topic.

One Structured Streaming query (spark-sql-kafka), `fraud_detection`, with its checkpoint in
`checkpoints/fraud/detection`, reads the topic once and writes three things:
- alerts: `rules.evaluate` runs per customer on each valid transaction, with the customer's recent
  purchases as checkpointed state (`applyInPandasWithState`, customers grouped in state buckets) and
  the customer's profile (a Delta table the batch job writes). The Python workers keep the profiles
  in memory and read the table again when its version changes (checked every `PROFILE_REFRESH_S`),
  so refreshed profiles arrive without a restart and a micro-batch pays for no join. Each
  micro-batch's alerts are written to Delta `fraud_alerts` once (`BatchLedger`: a replayed batch is
  skipped) and then sent to `fraud-alerts` from the driver.
- dead letters: every message that does not parse, lacks a key or holds a bad value, with its raw
  value and the reason, into Delta `fraud_dead_letters` exactly once. A bad message never stops
  detection.
- the count of valid transactions and of those whose city the reference cannot place
  (`distant_cities` cannot judge them), handed to the runner per micro-batch.

The dead letters and the count ride through the stateful operator as rows of their own kind
(`DETECTION_OUTPUT`): a second query reading and parsing the whole topic again, every half minute,
was what made detection's slowest micro-batches (bench/HISTORY.md, 2026-12-07).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import deltalake
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from techmart_assets.delta import BatchLedger
from techmart_assets.sizing import SHUFFLE_PARTITIONS, session_settings
from techmart_assets.sources import TRANSACTIONS
from techmart_assets.streaming.broker import (
    FRAUD_ALERTS_TOPIC,
    TRANSACTIONS_TOPIC,
    send_rows,
)
from techmart_assets.streaming.ingestion import read_topic
from techmart_assets.streaming.rules import (
    CustomerState,
    FraudConfig,
    Profile,
    Transaction,
    evaluate,
    placeable,
)
from techmart_assets.streaming.table_cache import TableCache, cached
from techmart_assets.timestamps import iso_timestamp, iso_timestamp_problem

DETECTION_QUERY = "fraud_detection"
KEYS = ("transaction_id", "customer_id", "transaction_ts")
STATE_PARTITIONS = 2
_TYPES = {"quantity": T.LongType(), "unit_price": T.DoubleType(), "total_amount": T.DoubleType()}
MESSAGE_SCHEMA = T.StructType([T.StructField(c, _TYPES.get(c, T.StringType())) for c in TRANSACTIONS.columns])
PROFILE_SCHEMA = (
    "customer_id string, home_country string, purchases long, mean_amount double, std_amount double, "
    "night_share double, max_amount double, as_of date"
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
# The alerts table as the driver writes it (delta-rs, `BatchLedger.append_rows`): Spark's column types,
# times in UTC, partitioned by the event's day.
_ARROW = {
    T.StringType(): pa.string(),
    T.DoubleType(): pa.float64(),
    T.TimestampType(): pa.timestamp("us", "UTC"),
}
ALERT_TABLE_SCHEMA = pa.schema(
    [
        *((f.name, _ARROW[f.dataType]) for f in ALERT_SCHEMA),
        ("detected_at", _ARROW[T.TimestampType()]),
        ("partition_date", pa.date32()),
    ]
)
# What the detection's stateful operator emits: alerts (`kind` = ALERT, the alert's columns), dead
# letters (DEAD_LETTER, `record` = the message's JSON, see `detector_input`) and, per state bucket,
# the count of valid transactions and of unplaced cities (CITIES, `record` = {"valid", "unplaced"}).
ALERT, DEAD_LETTER, CITIES = "alert", "dead_letter", "cities"
DETECTION_OUTPUT = T.StructType(
    [*ALERT_SCHEMA.fields, T.StructField("kind", T.StringType()), T.StructField("record", T.StringType())]
)
DEAD_LETTER_TABLE_SCHEMA = pa.schema(
    [
        ("raw_value", pa.string()),
        ("error", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("produced_at", _ARROW[T.TimestampType()]),
        ("partition_date", pa.date32()),
    ]
)
# The state bucket of the messages `parse` refused: they go through the operator without state.
DEAD_LETTER_BUCKET = -1
STATE_SCHEMA = T.StructType([T.StructField("customers", T.StringType())])  # a line per customer
# Customers share state buckets (see `detector`). Part of the checkpoint: changing it needs a new one.
STATE_BUCKETS = 64
# How often a Python worker looks at the profiles table's version (a listing of its Delta log).
PROFILE_REFRESH_S = 5.0
# Delta writes a checkpoint of a table in the commit that reaches its interval, inside that commit's
# micro-batch: with Delta's default of 10, every tenth batch with alerts stalled detection (20 s
# measured under the full streaming job). Set when the alerts table is created; readers replay at
# most this many small JSON commits.
ALERTS_CHECKPOINT_INTERVAL = 100
ALERTS_TABLE_PROPERTIES = {"delta.checkpointInterval": str(ALERTS_CHECKPOINT_INTERVAL)}


@dataclass(frozen=True)
class StreamPaths:
    alerts: str
    dead_letters: str
    profiles: str
    checkpoints: str  # checkpoints/fraud


def read_transactions(
    spark: SparkSession, bootstrap: str, starting: str = "earliest", tasks: int | None = None
) -> DataFrame:
    """The `transactions` topic as a stream; `tasks`: read each micro-batch in at least that many tasks."""
    return read_topic(spark, bootstrap, TRANSACTIONS_TOPIC, starting, tasks)


def parse(messages: DataFrame) -> DataFrame:
    """Kafka records -> the message's columns, `event_ts`, Kafka's coordinates and `error` (null if valid)."""
    raw = F.col("value").cast("string")
    frame = messages.select(
        raw.alias("raw_value"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("produced_at"),
        (F.get_json_object(raw, "$").isNotNull() & raw.rlike(r"^\s*\{")).alias("is_json_object"),
        # The message's columns from a generator (one row per message): the optimizer copies a
        # projected `from_json(...).field` into every filter on it (`where(error IS NULL)` below
        # references ten), and each copy parses the whole message again; a generator's output it
        # cannot copy, so each message is parsed once (detection's input: half the CPU).
        F.inline(F.array(F.from_json(raw, MESSAGE_SCHEMA))),
    )
    event_ts = iso_timestamp("transaction_ts")
    missing = F.concat_ws(
        ", ", *[F.when(F.trim(F.col(k)) == "", F.lit(k)).when(F.col(k).isNull(), F.lit(k)) for k in KEYS]
    )
    error = (
        F.when(~F.col("is_json_object"), F.lit("malformed JSON: not a JSON object"))
        .when(missing != "", F.concat(F.lit("missing key: "), missing))
        .when(event_ts.isNull(), F.concat(F.lit("transaction_ts "), iso_timestamp_problem("transaction_ts")))
        .when(
            F.col("total_amount").isNull() | (F.col("total_amount") <= 0),
            F.lit("total_amount is missing, not a number or not positive"),
        )
    )
    return frame.withColumn("event_ts", event_ts).withColumn("error", error).drop("is_json_object")


def _customer_state(customer_id: str, data: list | dict) -> CustomerState:
    """A customer's state from its JSON: `[velocity_alerted_until, [[transaction_id, event_ts, amount,
    city, country], ...]]` (or, in a checkpoint written before that form, an object with the
    transactions by name)."""
    if isinstance(data, dict):
        return CustomerState(
            recent=[Transaction(**t) for t in data["recent"]],
            velocity_alerted_until=data["velocity_alerted_until"],
        )
    until, recent = data
    return CustomerState(
        recent=[Transaction(t[0], customer_id, t[1], t[2], t[3], t[4]) for t in recent],
        velocity_alerted_until=until,
    )


def _state_data(state: CustomerState) -> list:
    return [
        state.velocity_alerted_until,
        [[t.transaction_id, t.event_ts, t.amount, t.city, t.country] for t in state.recent],
    ]


def _state_line(key: str, state: CustomerState) -> str:
    """One customer's line of the bucket's state: its id as JSON, its latest event time, its state."""
    data = json.dumps(_state_data(state), separators=(",", ":"))
    return f"{key}\t{state.recent[-1].event_ts!r}\t{data}"


def _bucket_lines(text: str | None) -> dict[str, str]:
    """A bucket's state: JSON-encoded customer id -> that customer's line (`_state_line`).

    A bucket holds every customer it saw in the last `memory_s`, and a micro-batch touches a few of
    them: each line is parsed only when its customer buys again, and the others are carried over
    as they are (the JSON ids and states hold no raw tab or newline). A checkpoint written before
    lines (one JSON object for the bucket) is read once and rewritten as lines.
    """
    if not text:
        return {}
    if text.startswith("{"):
        lines = {}
        for customer_id, data in json.loads(text).items():
            state = _customer_state(customer_id, data)
            if state.recent:
                key = json.dumps(customer_id)
                lines[key] = _state_line(key, state)
        return lines
    return {line[: line.index("\t")]: line for line in text.split("\n")}


def _line_state(customer_id: str, line: str | None) -> CustomerState:
    if line is None:
        return CustomerState()
    return _customer_state(customer_id, json.loads(line.split("\t", 2)[2]))


def _remembered_lines(lines: dict[str, str], since: float) -> str:
    """The bucket's state to keep: the lines of customers whose latest purchase is not before `since`."""
    return "\n".join(line for line in lines.values() if float(line.split("\t", 2)[1]) >= since)


# What the detector reads of each transaction, packed into one JSON column: Spark hands every group
# to Python as a pandas frame, converted column by column, so one column instead of several.
_PAYLOAD_FIELDS = ("customer_id", "transaction_id", "total_amount", "city", "country")


def detector_input(parsed: DataFrame) -> DataFrame:
    """Each message's state bucket and one JSON `payload` (times as epoch seconds): a valid
    transaction's in its customer's bucket, a refused message's (raw value, reason, Kafka
    coordinates) in `DEAD_LETTER_BUCKET`."""
    valid = F.col("error").isNull()
    return parsed.select(
        F.when(valid, F.abs(F.xxhash64("customer_id")) % STATE_BUCKETS)
        .otherwise(DEAD_LETTER_BUCKET)
        .alias("bucket"),
        F.when(
            valid,
            F.to_json(
                F.struct(
                    *_PAYLOAD_FIELDS,
                    F.col("event_ts").cast("double").alias("event_s"),
                    F.col("produced_at").cast("double").alias("produced_s"),
                )
            ),
        )
        .otherwise(
            F.to_json(
                F.struct(
                    "raw_value",
                    "error",
                    "kafka_partition",
                    "kafka_offset",
                    F.col("produced_at").cast("double").alias("produced_s"),
                )
            )
        )
        .alias("payload"),
    )


def _output(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=DETECTION_OUTPUT.fieldNames())


def load_profiles(table: deltalake.DeltaTable) -> dict[str, Profile]:
    """The profiles table as `Profile`s by customer. Long and double columns: ints and floats. A table
    written before a column was added (until the next build of the profiles) leaves it at the
    Profile's default."""
    present = {f.name for f in table.schema().fields}
    columns = [f.name for f in fields(Profile) if f.name in present]
    return {
        row["customer_id"]: Profile(**row)
        for row in table.to_pyarrow_table(columns=columns).to_pylist()
        if row["customer_id"] is not None and row["home_country"] is not None
    }


class ProfileCache(TableCache[Profile]):
    """The customer profiles table in a Python worker's memory (`TableCache`): until the batch job
    has written it, every customer is without a profile (the profile rules stay silent for them)."""

    def __init__(self, path: str, refresh_s: float = PROFILE_REFRESH_S) -> None:
        super().__init__(path, load_profiles, refresh_s)

    @property
    def profiles(self) -> dict[str, Profile]:
        return self.values


def profile_cache(path: str) -> TableCache[Profile]:
    return cached(path, load_profiles, PROFILE_REFRESH_S)


def _utc(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s")  # naive UTC, as Spark's session time zone reads it


def detector(config: FraudConfig, profiles_path: str):
    """The function of `applyInPandasWithState`, called once per state bucket and micro-batch.

    Spark's per-group cost (a pandas frame in, one out, the state row) is about a millisecond: paid
    per customer it would be most of a micro-batch at a thousand events per second. So state is kept
    per bucket of customers (`STATE_BUCKETS` groups, a hash of `customer_id`): the bucket's state is
    a line per customer with that customer's remembered purchases (`_bucket_lines`), and
    `rules.evaluate` runs per customer as before. A customer is forgotten once its latest purchase is
    older than the longest rule window (`memory_s`) before the newest event time the bucket has seen.

    Besides alerts it emits, per bucket, the count of its valid transactions and of their cities the
    reference cannot place (`CITIES`), and passes the refused messages on as `DEAD_LETTER` rows.
    """
    memory_s = config.memory_s

    def detect(key: tuple, batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        payloads = [payload for frame in batches for payload in frame["payload"].tolist()]
        if key[0] == DEAD_LETTER_BUCKET:
            yield _output([{"kind": DEAD_LETTER, "record": payload} for payload in payloads])
            return
        profiles = profile_cache(profiles_path)
        rows = [json.loads(payload) for payload in payloads]
        unplaced = sum(not placeable(r.get("city"), r.get("country")) for r in rows)
        lines = _bucket_lines(state.get[0] if state.exists else None)
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
            line_key = json.dumps(customer_id)
            before = _line_state(customer_id, lines.get(line_key))
            found, after = evaluate(transactions, before, profiles.get(customer_id), config)
            alerts.extend(found)
            lines[line_key] = _state_line(line_key, after)
        newest = max(r["event_s"] for r in rows)
        state.update((_remembered_lines(lines, newest - memory_s),))
        by_id = {r["transaction_id"]: r for r in rows} if alerts else {}
        alert_rows = [
            {
                "alert_id": f"{a.transaction_id}:{a.rule_id}",
                "rule_id": a.rule_id,
                "score": a.score,
                "explanation": a.explanation,
                "transaction_id": a.transaction_id,
                "customer_id": a.customer_id,
                "total_amount": float(by_id[a.transaction_id]["total_amount"]),
                "event_ts": _utc(a.event_ts),
                "produced_at": _utc(by_id[a.transaction_id]["produced_s"]),
                "kind": ALERT,
            }
            for a in alerts
        ]
        cities = {"kind": CITIES, "record": json.dumps({"valid": len(rows), "unplaced": unplaced})}
        yield _output([*alert_rows, cities])

    return detect


def _utc_instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(round(seconds, 6), UTC)


def detection_writer(
    paths: StreamPaths,
    bootstrap: str,
    topic: str = FRAUD_ALERTS_TOPIC,
    on_cities: Callable[[int, int, int], None] | None = None,
):
    """foreachBatch of `fraud_detection`: the batch's alerts into Delta exactly once, then onto the
    fraud-alerts topic; its dead letters into Delta exactly once; its city count to `on_cities`
    (micro-batch, valid transactions, unplaced cities).

    The stateful operator runs once per micro-batch: its few rows are collected and written from
    the driver (no second evaluation of the batch), to Delta by delta-rs and to the topic by the
    driver's producer (`broker.send_rows`; a Spark job per batch for a handful of rows would cost
    more than they take to write). A table gets a commit only from a batch with rows for it.
    `detected_at` is the same instant in Delta and on the topic.

    Exactly once in Delta (a `BatchLedger` per table): a replayed batch is skipped there and sent to
    the topic again. The topic is at least once, and `alert_id` (transaction and rule) identifies
    duplicates.
    """
    alerts_ledger, dead_letters_ledger = BatchLedger(paths.alerts), BatchLedger(paths.dead_letters)

    def write(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        by_kind: dict[str, list[dict]] = {ALERT: [], DEAD_LETTER: [], CITIES: []}
        for row in batch.collect():
            values = row.asDict()
            by_kind[values.pop("kind")].append(values)
        if on_cities is not None and by_kind[CITIES]:
            tallies = [json.loads(r["record"]) for r in by_kind[CITIES]]
            on_cities(batch_id, sum(t["valid"] for t in tallies), sum(t["unplaced"] for t in tallies))
        if by_kind[DEAD_LETTER] and (marker := dead_letters_ledger.marker(spark, batch_id)) is not None:
            dead_letters = []
            for r in by_kind[DEAD_LETTER]:
                letter = json.loads(r["record"])
                produced_at = _utc_instant(letter.pop("produced_s"))
                dead_letters.append(
                    {**letter, "produced_at": produced_at, "partition_date": produced_at.date()}
                )
            dead_letters_ledger.append_rows(
                pa.Table.from_pylist(dead_letters, DEAD_LETTER_TABLE_SCHEMA), marker, ["partition_date"]
            )
        if not by_kind[ALERT]:
            return
        # pyspark hands timestamps to Python as naive local times: made UTC-aware here.
        detected_at = datetime.now(UTC)
        alerts = [
            {
                **{
                    k: v.astimezone(UTC) if isinstance(v, datetime) else v
                    for k, v in row.items()
                    if k != "record"
                },
                "detected_at": detected_at,
            }
            for row in by_kind[ALERT]
        ]
        for alert in alerts:
            alert["partition_date"] = alert["event_ts"].date()  # the event's day in UTC
        if (marker := alerts_ledger.marker(spark, batch_id)) is not None:
            alerts_ledger.append_rows(
                pa.Table.from_pylist(alerts, ALERT_TABLE_SCHEMA),
                marker,
                partition_by=["partition_date"],
                configuration=ALERTS_TABLE_PROPERTIES,
            )
        send_rows(bootstrap, topic, alerts, key="customer_id")

    return write


def create_tables(paths: StreamPaths) -> None:
    """Create the empty alerts and dead-letters tables, unless they exist: the writer commits only
    batches with rows, and readers (the demo, a query in the UI's SQL) expect both from the start."""
    deltalake.DeltaTable.create(
        paths.alerts,
        ALERT_TABLE_SCHEMA,
        mode="ignore",
        partition_by=["partition_date"],
        configuration=ALERTS_TABLE_PROPERTIES,
    )
    deltalake.DeltaTable.create(
        paths.dead_letters, DEAD_LETTER_TABLE_SCHEMA, mode="ignore", partition_by=["partition_date"]
    )


def start_detection(
    parsed: DataFrame,
    paths: StreamPaths,
    bootstrap: str,
    config: FraudConfig | None = None,
    trigger_s: float = 1.0,
    on_cities: Callable[[int, int, int], None] | None = None,
) -> StreamingQuery:
    """Start `fraud_detection` on `parsed` (the topic read and parsed); it runs until stopped.
    `on_cities`: see `detection_writer`."""
    spark = parsed.sparkSession
    create_tables(paths)
    output = (
        detector_input(parsed)
        .groupBy("bucket")
        .applyInPandasWithState(
            detector(config or FraudConfig(), paths.profiles),
            DETECTION_OUTPUT,
            STATE_SCHEMA,
            "append",
            GroupStateTimeout.NoTimeout,
        )
    )
    # State in STATE_PARTITIONS partitions, one per core: each costs a Python round trip per batch.
    # Read when the query first starts; the checkpoint keeps it from then on.
    with session_settings(spark, {SHUFFLE_PARTITIONS: str(STATE_PARTITIONS)}):
        return (
            output.writeStream.queryName(DETECTION_QUERY)
            .foreachBatch(detection_writer(paths, bootstrap, on_cities=on_cities))
            .option("checkpointLocation", f"{paths.checkpoints}/detection")
            .trigger(processingTime=f"{trigger_s} seconds")
            .start()
        )
