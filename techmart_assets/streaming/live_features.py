"""The live behaviour stream: Kafka `web-events` -> per-customer sessions and features -> Delta
`gold/customer_live_features`, the compacted `customer-features` topic, and the per-minute funnel.

One Structured Streaming query, `live_features`, with its checkpoint in `checkpoints/live_features`:
- Each valid web event goes to its visitor (the customer, or the session of an anonymous visitor),
  whose `behaviour.Activity` is checkpointed state (`applyInPandasWithState`, one state per visitor:
  a micro-batch reads and writes the state of the visitors it sees, not the whole day's; state
  grouped in buckets of visitors was rewritten whole by every batch, 27 s a batch at 2,000 events/s
  in `bench.fraud_stream`). Events are watermarked on their event
  time (`LATE_AFTER_S`): a late event within it joins its session and counts; one later than that is
  dropped by Spark, and the query's progress counts it (`late_events_dropped` in the heartbeat).
- Every customer whose activity changed gets its features (`behaviour.features`) and the suggestion:
  a MERGE by `customer_id` into `gold/customer_live_features` (delta-rs, one commit per micro-batch,
  exactly once: `BatchLedger`; earlier states are the table's Delta versions), then a message keyed
  by the customer on `customer-features` (compacted: the topic keeps each customer's latest).
- A cart becomes abandoned without a new event of its customer: the visitor's event-time timeout
  fires when the watermark passes it, and the customer's features are updated then. A visitor with
  no event for a day (`BehaviourConfig.memory_s`) is forgotten the same way.
- The funnel: each minute's sessions started, page and product views, carts, checkouts and
  purchases are added into `gold/live_funnel_by_minute` (a MERGE that adds, exactly once), with the
  minute's conversion (purchases per session started).
- A message that is not a web event (not JSON, no time, no visitor) is counted, not followed:
  bronze web events keeps it with the reason.

Product categories come from silver products (current versions) and each customer's usual basket and
favourite categories from `gold/customer_profiles`, both kept in the workers' memory (`TableCache`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import deltalake
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from techmart_assets.delta import BatchLedger, select
from techmart_assets.sizing import SHUFFLE_PARTITIONS, session_settings
from techmart_assets.sources import WEB_EVENTS
from techmart_assets.streaming.behaviour import (
    FEATURE_COLUMNS,
    Activity,
    BehaviourConfig,
    Preferences,
    WebEvent,
    features,
    next_abandonment,
    observe,
)
from techmart_assets.streaming.broker import CUSTOMER_FEATURES_TOPIC, driver_producer, message_values
from techmart_assets.streaming.table_cache import cached
from techmart_assets.timestamps import iso_timestamp

LIVE_FEATURES_QUERY = "live_features"
LATE_AFTER_S = 120  # the watermark: events up to two minutes late still count
STATE_PARTITIONS = 2
INVALID = "!"  # the group of the messages that are not web events
ANONYMOUS = "~"  # an anonymous visitor's state key: "~" + its session id
FEATURES, FUNNEL, TALLY = "features", "funnel", "tally"
FUNNEL_STEPS = ("sessions", "page_views", "product_views", "carts", "checkouts", "purchases")
TIME_COLUMNS = ("session_start", "session_last_event", "as_of", "last_received_at")

OUTPUT = T.StructType([T.StructField("kind", T.StringType()), T.StructField("record", T.StringType())])
STATE = T.StructType([T.StructField("activity", T.StringType())])  # the visitor's Activity, JSON

_CATEGORY_COUNTS = pa.list_(pa.struct([("category", pa.string()), ("views", pa.int64())]))
_TIME = pa.timestamp("us", tz="UTC")
FEATURES_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("session_id", pa.string()),
        ("session_start", _TIME),
        ("session_last_event", _TIME),
        ("session_events", pa.int64()),
        ("session_products", pa.list_(pa.string())),
        ("session_categories", _CATEGORY_COUNTS),
        ("session_bought_categories", pa.list_(pa.string())),
        ("cart_products", pa.list_(pa.string())),
        ("cart_abandoned", pa.bool_()),
        ("abandoned_products", pa.list_(pa.string())),
        ("categories_viewed_24h", _CATEGORY_COUNTS),
        ("seconds_since_last_visit", pa.float64()),
        ("purchases", pa.int64()),
        ("usual_basket_mad", pa.float64()),
        ("favourite_categories", pa.list_(pa.string())),
        ("suggested_category", pa.string()),
        ("suggestion", pa.string()),
        ("as_of", _TIME),
        ("last_received_at", _TIME),
        ("updated_at", _TIME),
    ]
)
assert FEATURES_SCHEMA.names[:-1] == list(FEATURE_COLUMNS), "the table's columns are the features'"
FUNNEL_SCHEMA = pa.schema(
    [
        ("minute_start", _TIME),
        *[(step, pa.int64()) for step in FUNNEL_STEPS],
        ("conversion_rate", pa.float64()),
        ("partition_date", pa.date32()),
    ]
)
# Frequent small commits: a checkpoint every 100 keeps the log short to read without one per batch.
TABLE_PROPERTIES = {"delta.checkpointInterval": "100"}


@dataclass(frozen=True)
class LivePaths:
    features: str  # gold/customer_live_features
    funnel: str  # gold/live_funnel_by_minute
    products: str  # silver/products
    profiles: str  # gold/customer_profiles
    checkpoint: str


def parse(messages: DataFrame) -> DataFrame:
    """Kafka records -> one row per message: its `visitor` (`INVALID` for a message that is not a web
    event), its event time (`event_ts`, null for an invalid one: it neither moves the
    watermark nor is dropped as late, so it is counted) and one JSON `payload` of what the tracker
    reads."""
    raw = F.col("value").cast("string")
    fields = F.from_json(raw, T.MapType(T.StringType(), T.StringType()))
    value = {c: F.nullif(F.trim(fields.getItem(c)), F.lit("")) for c in WEB_EVENTS.columns}
    event_ts = iso_timestamp(fields.getItem("event_ts"))
    visitor = F.coalesce(value["customer_id"], F.concat(F.lit(ANONYMOUS), value["session_id"]))
    valid = fields.isNotNull() & event_ts.isNotNull() & visitor.isNotNull() & value["event_type"].isNotNull()
    return messages.select(
        F.when(valid, visitor).otherwise(F.lit(INVALID)).alias("visitor"),
        F.when(valid, event_ts).alias("event_ts"),
        F.when(
            valid,
            F.to_json(
                F.struct(
                    value["customer_id"].alias("customer_id"),
                    value["session_id"].alias("session_id"),
                    value["event_type"].alias("event_type"),
                    value["product_id"].alias("product_id"),
                    event_ts.cast("double").alias("event_s"),
                    F.col("timestamp").cast("double").alias("received_s"),
                )
            ),
        ).alias("payload"),
    )


def load_categories(table: deltalake.DeltaTable) -> dict[str, str]:
    rows = table.to_pyarrow_table(columns=["product_id", "category", "is_current"]).to_pylist()
    return {r["product_id"]: r["category"] for r in rows if r["is_current"] and r["product_id"]}


def load_preferences(table: deltalake.DeltaTable) -> dict[str, Preferences]:
    present = {f.name for f in table.schema().fields}
    columns = [c for c in ("customer_id", "purchases", "mean_amount", "favourite_categories") if c in present]
    preferences = {}
    for row in table.to_pyarrow_table(columns=columns).to_pylist():
        purchases = row.get("purchases") or 0
        preferences[row["customer_id"]] = Preferences(
            purchases=purchases,
            usual_basket_mad=row.get("mean_amount") if purchases else None,
            favourite_categories=tuple(row.get("favourite_categories") or ()),
        )
    return preferences


def _features_record(row: dict[str, object]) -> str:
    return json.dumps(row, default=lambda v: v.timestamp() if isinstance(v, datetime) else str(v))


def tracker(config: BehaviourConfig, products_path: str, profiles_path: str):
    """The function of `applyInPandasWithState`, called per visitor and micro-batch with the visitor's
    events, or when the visitor's event-time timeout fires (a cart became abandoned, or a day passed
    without an event). See the module's doc."""

    def track(key: tuple, batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        visitor = key[0]
        payloads = [p for frame in batches for p in frame["payload"].tolist()]
        if visitor == INVALID:
            yield pd.DataFrame([{"kind": TALLY, "record": json.dumps({"invalid": len(payloads)})}])
            return
        watermark_s = state.getCurrentWatermarkMs() / 1000
        before = Activity.from_data(json.loads(state.get[0])) if state.exists else Activity()
        rows = []
        if state.hasTimedOut:
            if before.last_event_s is not None and before.last_event_s + config.memory_s <= watermark_s:
                state.remove()  # forgotten: a day without an event
                return
            after, now_s = before, watermark_s
        else:
            categories = cached(products_path, load_categories)
            events = []
            for payload in payloads:
                row = json.loads(payload)
                product = row.get("product_id")
                events.append(
                    WebEvent(
                        row.get("customer_id"),
                        row.get("session_id"),
                        row["event_type"],
                        product,
                        categories.get(product),
                        row["event_s"],
                        row["received_s"],
                    )
                )
            funnel: dict[int, dict[str, int]] = {}
            after = observe(before, events, config, funnel)
            now_s = max(watermark_s, after.last_event_s or watermark_s)
            rows += [{"kind": FUNNEL, "record": json.dumps({"minute": m, **c})} for m, c in funnel.items()]
            rows.append({"kind": TALLY, "record": json.dumps({"valid": len(payloads)})})
        if not visitor.startswith(ANONYMOUS):
            preferences = cached(profiles_path, load_preferences).get(visitor)
            rows.append(
                {
                    "kind": FEATURES,
                    "record": _features_record(features(visitor, after, preferences, now_s, config)),
                }
            )
        state.update((json.dumps(after.to_data(), separators=(",", ":")),))
        # Called again when the next cart product becomes abandoned, else when the visitor is forgotten.
        due = next_abandonment(after, config, after_s=now_s)
        if due is None:
            due = (after.last_event_s or now_s) + config.memory_s
        state.setTimeoutTimestamp(max(int(due * 1000) + 1, int(watermark_s * 1000) + 1))
        yield pd.DataFrame(rows, columns=OUTPUT.fieldNames())

    return track


def _from_epoch(value: object) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def features_table(records: list[str], updated_at: datetime) -> pa.Table:
    """Feature records (JSON, times as epoch seconds) as the table's rows; a customer's latest wins."""
    latest: dict[str, dict] = {}
    for record in records:
        row = json.loads(record)
        for column in TIME_COLUMNS:
            row[column] = _from_epoch(row[column])
        previous = latest.get(row["customer_id"])
        if previous is None or row["as_of"] >= previous["as_of"]:
            latest[row["customer_id"]] = {**row, "updated_at": updated_at}
    return pa.Table.from_pylist(list(latest.values()), FEATURES_SCHEMA)


def funnel_table(records: list[str]) -> pa.Table:
    """Funnel records (a minute's counts from each visitor) summed by minute."""
    minutes: dict[int, dict[str, int]] = {}
    for record in records:
        counts = json.loads(record)
        total = minutes.setdefault(int(counts.pop("minute")), dict.fromkeys(FUNNEL_STEPS, 0))
        for step, n in counts.items():
            total[step] += n
    rows = []
    for minute, counts in sorted(minutes.items()):
        start = datetime.fromtimestamp(minute, UTC)
        rows.append(
            {
                "minute_start": start,
                **counts,
                "conversion_rate": counts["purchases"] / counts["sessions"] if counts["sessions"] else None,
                "partition_date": start.date(),
            }
        )
    return pa.Table.from_pylist(rows, FUNNEL_SCHEMA)


# Adding a minute's counts from a later micro-batch to what the table holds.
FUNNEL_UPDATES = {
    **{step: f"target.{step} + source.{step}" for step in FUNNEL_STEPS},
    "conversion_rate": (
        "CASE WHEN target.sessions + source.sessions > 0 THEN "
        "CAST(target.purchases + source.purchases AS DOUBLE) / (target.sessions + source.sessions) END"
    ),
}


def writer(
    paths: LivePaths,
    bootstrap: str,
    topic: str = CUSTOMER_FEATURES_TOPIC,
    on_tally: Callable[[int, int, int], None] | None = None,
):
    """foreachBatch of `live_features`: the features MERGEd into Delta exactly once, then sent to the
    topic (at least once: a replayed batch is sent again, and the topic keeps a customer's latest);
    the funnel's counts added into Delta exactly once; the batch's counts (micro-batch, valid events,
    invalid messages) to `on_tally`. Written from the driver with delta-rs and kafka-python, as the
    fraud alerts are: a micro-batch holds a few hundred rows."""
    features_ledger, funnel_ledger = BatchLedger(paths.features), BatchLedger(paths.funnel)

    def write(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        by_kind: dict[str, list[str]] = {FEATURES: [], FUNNEL: [], TALLY: []}
        for row in batch.collect():
            by_kind[row.kind].append(row.record)
        if on_tally is not None and by_kind[TALLY]:
            tallies = [json.loads(r) for r in by_kind[TALLY]]
            on_tally(
                batch_id, sum(t.get("valid", 0) for t in tallies), sum(t.get("invalid", 0) for t in tallies)
            )
        if by_kind[FUNNEL] and (marker := funnel_ledger.marker(spark, batch_id)) is not None:
            funnel_ledger.merge_rows(
                funnel_table(by_kind[FUNNEL]),
                marker,
                "target.partition_date = source.partition_date AND target.minute_start = source.minute_start",
                FUNNEL_UPDATES,
            )
        if not by_kind[FEATURES]:
            return
        rows = features_table(by_kind[FEATURES], datetime.now(UTC))
        if (marker := features_ledger.marker(spark, batch_id)) is not None:
            features_ledger.merge_rows(rows, marker, "target.customer_id = source.customer_id")
        producer = driver_producer(bootstrap)
        for row in rows.to_pylist():
            producer.send(topic, key=row["customer_id"], value=message_values(row))
        producer.flush()

    return write


def create_tables(paths: LivePaths) -> None:
    """The empty tables, unless they exist: the MERGEs need them, and readers expect both."""
    deltalake.DeltaTable.create(
        paths.features, FEATURES_SCHEMA, mode="ignore", configuration=TABLE_PROPERTIES
    )
    deltalake.DeltaTable.create(
        paths.funnel,
        FUNNEL_SCHEMA,
        mode="ignore",
        partition_by=["partition_date"],
        configuration=TABLE_PROPERTIES,
    )


def start_live_features(
    messages: DataFrame,
    paths: LivePaths,
    bootstrap: str,
    config: BehaviourConfig | None = None,
    trigger_s: float = 1.0,
    on_tally: Callable[[int, int, int], None] | None = None,
    topic: str = CUSTOMER_FEATURES_TOPIC,
) -> StreamingQuery:
    """Start `live_features` on `messages` (the `web-events` topic as read); it runs until stopped."""
    spark = messages.sparkSession
    create_tables(paths)
    output = (
        parse(messages)
        .withWatermark("event_ts", f"{LATE_AFTER_S} seconds")
        .groupBy("visitor")
        .applyInPandasWithState(
            tracker(config or BehaviourConfig(), paths.products, paths.profiles),
            OUTPUT,
            STATE,
            "append",
            GroupStateTimeout.EventTimeTimeout,
        )
    )
    with session_settings(spark, {SHUFFLE_PARTITIONS: str(STATE_PARTITIONS)}):
        return (
            output.writeStream.queryName(LIVE_FEATURES_QUERY)
            .foreachBatch(writer(paths, bootstrap, topic, on_tally))
            .option("checkpointLocation", paths.checkpoint)
            .trigger(processingTime=f"{trigger_s} seconds")
            .start()
        )


def read_customer(path: str, customer_id: str) -> dict | None:
    """A customer's row of the live features table at `path` (delta-rs, no Spark); None if absent."""
    from deltalake.exceptions import TableNotFoundError

    try:
        rows = select(
            path, f"SELECT * FROM t WHERE customer_id = '{customer_id.replace(chr(39), chr(39) * 2)}'"
        )
    except TableNotFoundError:
        return None
    found = rows.to_pylist()
    return found[0] if found else None


def _clock(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _counts(counts: list[dict] | None) -> str:
    return ", ".join(f"{c['category']} {c['views']}" for c in counts or []) or "none"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def describe_customer(row: dict) -> str:
    """A customer's live features and suggestion, for a person (`techmart customer show`)."""
    since = row["seconds_since_last_visit"]
    basket = (
        f"{row['usual_basket_mad']:,.2f} MAD over {row['purchases']} purchases"
        if row["purchases"]
        else "no purchase in silver yet"
        if row["purchases"] == 0
        else "no profile yet"
    )
    abandoned = f" (abandoned: {', '.join(row['abandoned_products'])})" if row["cart_abandoned"] else ""
    lines = [
        f"customer {row['customer_id']}: features as of {_clock(row['as_of'])}, "
        f"written {_clock(row['updated_at'])}",
        f"  suggestion      {row['suggested_category'] or 'none'}: {row['suggestion']}",
        f"  session         {row['session_id']}, {_clock(row['session_start'])} to "
        f"{_clock(row['session_last_event'])}, {row['session_events']} events",
        f"  products        {', '.join(row['session_products']) or 'none'}",
        f"  categories      {_counts(row['session_categories'])}; bought: "
        f"{', '.join(row['session_bought_categories']) or 'none'}",
        f"  cart            {', '.join(row['cart_products']) or 'empty'}{abandoned}",
        f"  last 24 hours   {_counts(row['categories_viewed_24h'])}",
        f"  last visit      {'first visit' if since is None else _duration(since) + ' before this session'}",
        f"  usual basket    {basket}",
        f"  favourites      {', '.join(row['favourite_categories']) or 'none known'}",
    ]
    return "\n".join(lines)
