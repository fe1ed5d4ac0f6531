"""Silver web events: typed, validated, deduplicated, sessionized; bot-like sessions quarantined."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from techmart_assets.bronze.ingest import columns_beyond_contract
from techmart_assets.silver import rules as r
from techmart_assets.silver.batch import SilverBatch, shared
from techmart_assets.silver.dedup import mark_duplicates
from techmart_assets.silver.quarantine import (
    received,
    record_as_received,
    to_quarantine,
    with_received,
    without_received,
)
from techmart_assets.sources import WEB_EVENTS

# The bronze columns silver retypes (`event_ts`), trims (`event_id`) or fills in (`session_id`).
CHANGED_COLUMNS = ("event_id", "event_ts", "session_id")
EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "checkout", "purchase")
SESSION_GAP_MINUTES = 30
# A person does not produce more than this many events in one minute of one session.
BOT_EVENTS_PER_MINUTE = 60


def web_event_rules() -> tuple[r.Rule, ...]:
    return (
        r.malformed_row(),
        r.missing_keys("event_id", "event_type"),
        r.invalid_timestamp("event_ts"),
        r.unexpected_value("event_type", EVENT_TYPES),
        r.Rule(
            "unsessionizable_event",
            "an event with neither a session nor a customer cannot be placed in a session",
            r.blank("session_id") & r.blank("customer_id"),
            F.lit("event has neither session_id nor customer_id"),
        ),
    )


def sessionize(events: DataFrame) -> DataFrame:
    """Valid events without a source session get one: per customer, a new session after 30 idle
    minutes. `session_is_derived` says which did; other rows pass unchanged."""
    ts = F.col("event_ts")
    derive = r.still_valid() & r.blank("session_id")
    # Rows that keep their session are each a window of their own: no one partition for them all.
    by_customer = Window.partitionBy(
        derive, F.when(derive, F.col("customer_id")).otherwise(F.col("event_id"))
    ).orderBy(ts, "event_id")
    idle = (ts.cast("long") - F.lag(ts).over(by_customer).cast("long")) > SESSION_GAP_MINUTES * 60
    numbered = events.withColumn(
        "_session_number", F.sum(F.coalesce(idle, F.lit(True)).cast("int")).over(by_customer)
    )
    derived = F.concat_ws(
        "-", F.lit("derived"), F.col("customer_id"), F.col("_session_number").cast("string")
    )
    return numbered.withColumns(
        {"session_id": F.when(derive, derived).otherwise(F.col("session_id")), "session_is_derived": derive}
    ).drop("_session_number")


def reject_bots(events: DataFrame) -> DataFrame:
    """Valid events of sessions that fired more than BOT_EVENTS_PER_MINUTE valid events in one
    minute rejected by the rule `bot_session`."""
    valid = r.still_valid()
    minute = F.date_trunc("minute", "event_ts").cast("long")
    same_minute = Window.partitionBy("session_id").orderBy(minute).rangeBetween(0, 0)
    in_minute = F.when(valid, F.count(F.when(valid, F.lit(1))).over(same_minute))
    peaked = events.withColumn("_peak", F.max(in_minute).over(Window.partitionBy("session_id")))
    bot = r.Rule(
        "bot_session",
        f"a session fired more than {BOT_EVENTS_PER_MINUTE} events in one minute",
        F.col("_peak") > BOT_EVENTS_PER_MINUTE,
        F.format_string(
            f"session %s fired %d events in one minute (a person: at most {BOT_EVENTS_PER_MINUTE})",
            F.col("session_id"),
            F.col("_peak"),
        ),
    )
    return r.judge_further(peaked, [bot]).drop("_peak")


def build_web_events(bronze: DataFrame, earlier: DataFrame) -> SilverBatch:
    """Bronze events of some days → accepted and quarantined; `earlier` (event_id, partition_date).

    One pass: every rule, the deduplication, the sessions and the bot test mark rows of one frame
    (a rejected row keeps the first rule it broke), which is computed once for both writes.
    """
    judged = r.judge(with_received(bronze, CHANGED_COLUMNS), web_event_rules())
    valid = r.still_valid()
    typed = judged.withColumns(
        {
            "event_id": F.when(valid, F.trim("event_id")).otherwise(F.col("event_id")),
            "event_ts": r.timestamp_of("event_ts"),
        }
    )
    # Among a key's rows of equal time and file, the values as received decide (deterministically).
    as_received = [c for c in bronze.columns if c not in ("event_ts", "_source_file", "partition_date")]
    order = ["event_ts", "_source_file", received("event_ts"), *as_received]
    deduplicated = mark_duplicates(typed, WEB_EVENTS.key, order, earlier)
    # Judged after deduplication: a re-sent event is a duplicate first, whatever its day.
    placed = r.judge_further(deduplicated, [r.timestamp_outside_partition("event_ts")])
    # A rejected row's record as received; accepted rows have none.
    persisted: list[DataFrame] = []
    classified = shared(
        without_received(
            reject_bots(sessionize(placed)).withColumn(
                "_record", F.when(~valid, record_as_received(bronze.columns, CHANGED_COLUMNS))
            )
        ),
        persisted,
    )
    extra = columns_beyond_contract(bronze.columns, WEB_EVENTS)
    accepted = (
        classified.where(valid)
        .withColumns({"event_date": F.to_date("event_ts"), "hour_of_day": F.hour("event_ts")})
        .select(
            *WEB_EVENTS.columns,
            "session_is_derived",
            "event_date",
            "hour_of_day",
            *extra,
            "partition_date",
            "_source_file",
            "_ingested_at",
        )
    )
    quarantined = to_quarantine(classified.where(~valid), WEB_EVENTS.name, WEB_EVENTS.key)
    return SilverBatch(accepted, quarantined, persisted)
