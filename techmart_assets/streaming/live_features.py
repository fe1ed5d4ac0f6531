"""The live behaviour stream: Kafka `web-events` -> per-customer sessions and features -> Delta
`gold/customer_live_features`, the compacted `customer-features` topic, and the per-minute funnel.

One Structured Streaming query, `live_features`, with its checkpoint in `checkpoints/live_features`.
Spark reads and parses each micro-batch's web events; the driver follows them (foreachBatch):
- Every visitor's `behaviour.Activity` (the customer's, or an anonymous visitor's session's), the
  event-time watermark (`LATE_AFTER_S`) and when to look at each visitor again are a `Visitors` held
  in the driver (visitors.py). A late event within the watermark joins its session and counts; one
  later than that is dropped and counted (`late_events_dropped` in the heartbeat). A cart becomes
  abandoned, and a visitor with no event for a day is forgotten, when the watermark passes it,
  without a new event of that visitor.
  Spark's own state per visitor (`applyInPandasWithState`) did the same but could not keep up with
  the clickstream: its path per visitor group costs more than the work (bench/HISTORY.md).
- What a micro-batch changed is written in this order, each commit exactly once (`BatchLedger`):
  1. the funnel: each minute's sessions started, page and product views, carts, checkouts and
     purchases, added into `gold/live_funnel_by_minute` (a MERGE that adds), with the minute's
     conversion (purchases per session started);
  2. the features and suggestion of every customer whose activity changed: a MERGE by `customer_id`
     into `gold/customer_live_features` (earlier states are the table's Delta versions), then a
     message keyed by the customer on `customer-features` (compacted: the topic keeps each
     customer's latest; a replayed batch is sent again);
  3. the visitors that changed and the watermark, appended to the state log (`StateLog`, a Delta
     table in the checkpoint), from time to time replaced by a snapshot of them all.
  The state is written last: after a restart the driver reads it back, and a micro-batch Spark
  replays is either in it (skipped whole) or not (followed again from the state before it, to the
  same funnel and features, which their ledgers do not write twice).
- A message that is not a web event (not JSON, no time, no visitor) is counted, not followed:
  bronze web events keeps it with the reason.

Product categories come from silver products (current versions) and each customer's usual basket and
favourite categories from `gold/customer_profiles`, both kept in memory (`TableCache`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import deltalake
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from techmart_assets.delta import BatchLedger, BatchMarker, select
from techmart_assets.sources import WEB_EVENTS
from techmart_assets.streaming.behaviour import (
    FEATURE_COLUMNS,
    Activity,
    BehaviourConfig,
    Preferences,
    WebEvent,
)
from techmart_assets.streaming.broker import CUSTOMER_FEATURES_TOPIC, send_rows
from techmart_assets.streaming.table_cache import cached
from techmart_assets.streaming.visitors import ANONYMOUS, Step, Visitors
from techmart_assets.timestamps import iso_timestamp

LIVE_FEATURES_QUERY = "live_features"
LATE_AFTER_S = 120  # the watermark: events up to two minutes late still count
FUNNEL_STEPS = ("sessions", "page_views", "product_views", "carts", "checkouts", "purchases")

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
# The state log: a row per visitor a micro-batch changed (its Activity as JSON, null once forgotten,
# and when to look at it again), and the row `WATERMARK` with the watermark in `due_s`.
STATE_SCHEMA = pa.schema(
    [
        ("batch_id", pa.int64()),
        ("visitor", pa.string()),
        ("activity", pa.string()),
        ("due_s", pa.float64()),
    ]
)
WATERMARK = ""
# The log is replaced by a snapshot when longer than SNAPSHOT_ROWS and SNAPSHOT_GROWTH x the visitors.
SNAPSHOT_ROWS, SNAPSHOT_GROWTH = 50_000, 4
# Frequent small commits: a checkpoint every 100 keeps the log short to read without one per batch.
TABLE_PROPERTIES = {"delta.checkpointInterval": "100"}


@dataclass(frozen=True)
class LivePaths:
    features: str  # gold/customer_live_features
    funnel: str  # gold/live_funnel_by_minute
    products: str  # silver/products
    profiles: str  # gold/customer_profiles
    checkpoint: str

    @property
    def state(self) -> str:
        return f"{self.checkpoint}/visitors"


def parse(messages: DataFrame) -> DataFrame:
    """Kafka records -> one row per message: its `visitor` (null for a message that is not a web
    event: not JSON, or no time, visitor or event type) and what the driver follows, times as epoch
    seconds (`event_s`: event time; `received_s`: when Kafka received it)."""
    raw = F.col("value").cast("string")
    fields = F.from_json(raw, T.MapType(T.StringType(), T.StringType()))
    value = {c: F.nullif(F.trim(fields.getItem(c)), F.lit("")) for c in WEB_EVENTS.columns}
    event_ts = iso_timestamp(fields.getItem("event_ts"))
    visitor = F.coalesce(value["customer_id"], F.concat(F.lit(ANONYMOUS), value["session_id"]))
    valid = fields.isNotNull() & event_ts.isNotNull() & visitor.isNotNull() & value["event_type"].isNotNull()
    return messages.select(
        F.when(valid, visitor).alias("visitor"),
        *[value[c].alias(c) for c in ("customer_id", "session_id", "event_type", "product_id")],
        event_ts.cast("double").alias("event_s"),
        F.col("timestamp").cast("double").alias("received_s"),
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


class StateLog:
    """The `Visitors` of `live_features` in a Delta table (delta-rs), one commit per micro-batch with
    the batch's marker: the rows a batch changed are appended; when the log has grown to several
    times the visitors it holds, a snapshot of them all replaces it (and the files it no longer
    needs are removed)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ledger = BatchLedger(path)
        self.rows = 0  # rows in the table's current version

    def load(self, config: BehaviourConfig) -> Visitors:
        """The visitors as the last micro-batch written left them (none before the first)."""
        if not deltalake.DeltaTable.is_deltatable(self.path):
            return Visitors(config, LATE_AFTER_S)
        latest: dict[str, dict] = {}
        log = deltalake.DeltaTable(self.path).to_pyarrow_table().to_pylist()
        self.rows = len(log)
        for row in sorted(log, key=lambda r: r["batch_id"]):
            latest[row["visitor"]] = row
        watermark = latest.pop(WATERMARK, {"due_s": 0.0})["due_s"]
        kept = {v: row for v, row in latest.items() if row["activity"] is not None}
        return Visitors(
            config,
            LATE_AFTER_S,
            {v: Activity.from_data(json.loads(row["activity"])) for v, row in kept.items()},
            {v: row["due_s"] for v, row in kept.items()},
            watermark,
        )

    def save(self, visitors: Visitors, changed: dict[str, Activity | None], marker: BatchMarker) -> None:
        snapshot = self.rows + len(changed) > max(SNAPSHOT_ROWS, SNAPSHOT_GROWTH * len(visitors.activities))
        written = visitors.activities if snapshot else changed
        rows = [
            {
                "batch_id": marker.batch_id,
                "visitor": visitor,
                "activity": None if a is None else json.dumps(a.to_data(), separators=(",", ":")),
                "due_s": visitors.dues.get(visitor),
            }
            for visitor, a in written.items()
        ]
        rows.append({"batch_id": marker.batch_id, "visitor": WATERMARK, "due_s": visitors.watermark_s})
        table = pa.Table.from_pylist(rows, STATE_SCHEMA)
        if snapshot:
            self.ledger.append_rows(table, marker, mode="overwrite")
            deltalake.DeltaTable(self.path).vacuum(
                retention_hours=0, enforce_retention_duration=False, dry_run=False
            )
            self.rows = len(rows)
        else:
            self.ledger.append_rows(table, marker, configuration=TABLE_PROPERTIES)
            self.rows += len(rows)


def funnel_table(minutes: dict[int, dict[str, int]]) -> pa.Table:
    """A micro-batch's funnel counts (minute -> step -> count) as the table's rows."""
    rows = []
    for minute, counts in sorted(minutes.items()):
        start = datetime.fromtimestamp(minute, UTC)
        total = {step: counts.get(step, 0) for step in FUNNEL_STEPS}
        rows.append(
            {
                "minute_start": start,
                **total,
                "conversion_rate": total["purchases"] / total["sessions"] if total["sessions"] else None,
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
    config: BehaviourConfig,
    topic: str = CUSTOMER_FEATURES_TOPIC,
    on_tally: Callable[[int, int, int, int], None] | None = None,
):
    """foreachBatch of `live_features` (see the module's doc). `on_tally` gets each micro-batch's
    counts: its id, the web events followed, the messages that are not web events, and the events
    dropped as later than the watermark. Written from the driver with delta-rs and confluent-kafka,
    as the fraud alerts are."""
    features_ledger, funnel_ledger = BatchLedger(paths.features), BatchLedger(paths.funnel)
    log = StateLog(paths.state)
    held: list[Visitors] = []  # read from the log by the first micro-batch

    def write(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        state_marker = log.ledger.marker(spark, batch_id)
        if state_marker is None:
            return  # replayed, and its state (written last) is in the log: so is everything else
        if not held:
            held.append(log.load(config))
        visitors = held[0]
        categories = cached(paths.products, load_categories)
        profiles = cached(paths.profiles, load_preferences)
        messages = batch.toPandas()
        followed = messages[messages["visitor"].notna()]
        events = [
            (visitor, WebEvent(customer, session, kind, product, categories.get(product), at, received))
            for visitor, customer, session, kind, product, at, received in zip(
                followed["visitor"].tolist(),
                followed["customer_id"].tolist(),
                followed["session_id"].tolist(),
                followed["event_type"].tolist(),
                followed["product_id"].tolist(),
                followed["event_s"].tolist(),
                followed["received_s"].tolist(),
                strict=True,
            )
        ]
        step: Step = visitors.step(events, profiles.get)
        if on_tally is not None:
            on_tally(batch_id, step.followed, len(messages) - len(events), step.late)
        if step.funnel and (marker := funnel_ledger.marker(spark, batch_id)) is not None:
            funnel_ledger.merge_rows(
                funnel_table(step.funnel),
                marker,
                "target.partition_date = source.partition_date AND target.minute_start = source.minute_start",
                FUNNEL_UPDATES,
            )
        if step.features:
            updated_at = datetime.now(UTC)
            rows = [{**row, "updated_at": updated_at} for row in step.features.values()]
            if (marker := features_ledger.marker(spark, batch_id)) is not None:
                features_ledger.merge_rows(
                    pa.Table.from_pylist(rows, FEATURES_SCHEMA),
                    marker,
                    "target.customer_id = source.customer_id",
                )
            send_rows(bootstrap, topic, rows, key="customer_id")
        log.save(visitors, step.changed, state_marker)

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
    on_tally: Callable[[int, int, int, int], None] | None = None,
    topic: str = CUSTOMER_FEATURES_TOPIC,
) -> StreamingQuery:
    """Start `live_features` on `messages` (the `web-events` topic as read); it runs until stopped."""
    create_tables(paths)
    return (
        parse(messages)
        .writeStream.queryName(LIVE_FEATURES_QUERY)
        .foreachBatch(writer(paths, bootstrap, config or BehaviourConfig(), topic, on_tally))
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
