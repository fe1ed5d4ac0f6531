"""Silver web events: typed, validated, deduplicated, sessionized; bot-like sessions quarantined."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from techmart_assets.bronze.ingest import columns_beyond_contract
from techmart_assets.silver import rules as r
from techmart_assets.silver.batch import SilverBatch, shared
from techmart_assets.silver.dedup import split_first_occurrences
from techmart_assets.silver.quarantine import to_quarantine, with_record
from techmart_assets.sources import WEB_EVENTS

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
    """Events without a source session get one: per customer, a new session after 30 idle minutes."""
    ts = F.col("event_ts")
    by_customer = Window.partitionBy("customer_id").orderBy(ts, "event_id")
    missing = r.blank("session_id")
    gaps = events.where(missing).withColumn(
        "_new_session",
        F.coalesce(
            (ts.cast("long") - F.lag(ts).over(by_customer).cast("long")) > SESSION_GAP_MINUTES * 60,
            F.lit(True),
        ).cast("int"),
    )
    derived = (
        gaps.withColumn("_session_number", F.sum("_new_session").over(by_customer))
        .withColumn(
            "session_id",
            F.concat_ws("-", F.lit("derived"), F.col("customer_id"), F.col("_session_number").cast("string")),
        )
        .withColumn("session_is_derived", F.lit(True))
        .drop("_new_session", "_session_number")
    )
    given = events.where(~missing).withColumn("session_is_derived", F.lit(False))
    return given.unionByName(derived)


def split_bots(events: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(human events, events of sessions that fired more than BOT_EVENTS_PER_MINUTE in a minute)."""
    per_minute = events.groupBy("session_id", F.date_trunc("minute", "event_ts").alias("_minute")).count()
    bots = (
        per_minute.where(F.col("count") > BOT_EVENTS_PER_MINUTE)
        .groupBy("session_id")
        .agg(F.max("count").alias("_peak"))
    )
    marked = events.join(bots, "session_id", "left")
    flagged = marked.where(F.col("_peak").isNotNull()).withColumns(
        {
            "quarantine_rule": F.lit("bot_session"),
            "quarantine_reason": F.format_string(
                f"session %s fired %d events in one minute (a person: at most {BOT_EVENTS_PER_MINUTE})",
                F.col("session_id"),
                F.col("_peak"),
            ),
        }
    )
    return marked.where(F.col("_peak").isNull()).drop("_peak"), flagged.drop("_peak")


def build_web_events(bronze: DataFrame, earlier: DataFrame) -> SilverBatch:
    """Bronze events of some days → accepted and quarantined; `earlier` (event_id, partition_date)."""
    persisted: list[DataFrame] = []
    judged = shared(r.judge(with_record(bronze), web_event_rules()), persisted)
    typed = judged.where(F.col("quarantine_rule").isNull()).withColumns(
        {"event_id": F.trim("event_id"), "event_ts": r.timestamp_of("event_ts")}
    )
    first, duplicates = split_first_occurrences(
        typed, WEB_EVENTS.key, ["event_ts", "_source_file", "_record"], earlier, persisted
    )
    # Judged after deduplication: a re-sent event is a duplicate first, whatever its day.
    placed = shared(r.judge(first, [r.timestamp_outside_partition("event_ts")]), persisted)
    sessions = shared(sessionize(placed.where(F.col("quarantine_rule").isNull())), persisted)
    humans, bots = split_bots(sessions)
    extra = columns_beyond_contract(bronze.columns, WEB_EVENTS)
    accepted = humans.withColumns(
        {"event_date": F.to_date("event_ts"), "hour_of_day": F.hour("event_ts")}
    ).select(
        *WEB_EVENTS.columns,
        "session_is_derived",
        "event_date",
        "hour_of_day",
        *extra,
        "partition_date",
        "_source_file",
        "_ingested_at",
    )
    rejected = [
        judged.where(F.col("quarantine_rule").isNotNull()),
        duplicates,
        placed.where(F.col("quarantine_rule").isNotNull()),
        bots,
    ]
    quarantined = [to_quarantine(q, WEB_EVENTS.name, WEB_EVENTS.key) for q in rejected]
    return SilverBatch(accepted, reduce(DataFrame.unionByName, quarantined), persisted)
