"""Silver web events on hand-made rows: each rule's verdict, duplicates across days, derived
sessions, bot sessions, and that every bronze row is accounted for."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets.silver.web_events import BOT_EVENTS_PER_MINUTE, EVENT_TYPES, build_web_events
from techmart_assets.sources import WEB_EVENTS
from techmart_assets_tests.support import bronze_rows

DAY = date(2024, 3, 5)
CLEAN = {
    "event_id": "E1",
    "session_id": "S1",
    "customer_id": "C1",
    "event_type": "page_view",
    "product_id": None,
    "page_url": "/",
    "referrer": None,
    "device": "mobile",
    "event_ts": "2024-03-05T10:00:00Z",
}


def bronze(spark: SparkSession, *rows: dict) -> DataFrame:
    return bronze_rows(spark, WEB_EVENTS, CLEAN, list(rows), DAY)


def no_history(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], "event_id string, partition_date date")


def at(minute: int, second: int = 0) -> str:
    return (datetime(2024, 3, 5, 10) + timedelta(minutes=minute, seconds=second)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_each_rule_rejects_its_row_and_the_rest_are_accepted(spark: SparkSession) -> None:
    rows = bronze(
        spark,
        {"event_id": " E1 "},
        {"event_id": "E2", "event_type": "teleport"},
        {"event_id": "E3", "event_ts": "yesterday"},
        {"event_id": "E4", "event_ts": "2024-03-06T00:00:01Z"},
        {"event_id": "E5", "session_id": None, "customer_id": None},
        {"event_id": None},
    )

    batch = build_web_events(rows, no_history(spark))

    accepted = batch.accepted.collect()
    assert [r.event_id for r in accepted] == ["E1"]  # trimmed
    assert accepted[0].event_ts == datetime(2024, 3, 5, 10)
    quarantined = {r.record_key: r for r in batch.quarantined.collect()}
    assert {k: r.quarantine_rule for k, r in quarantined.items()} == {
        "E2": "unexpected_event_type",
        "E3": "invalid_timestamp",
        "E4": "timestamp_outside_partition",
        "E5": "unsessionizable_event",
        None: "missing_key",
    }
    assert all(r.quarantine_reason for r in quarantined.values())
    # A rejected row reaches the quarantine as it arrived.
    assert json.loads(quarantined["E3"].record)["event_ts"] == "yesterday"


def test_the_first_valid_occurrence_wins_within_the_batch_and_across_days(spark: SparkSession) -> None:
    earlier = spark.createDataFrame([("E0", date(2024, 3, 1))], "event_id string, partition_date date")
    rows = bronze(
        spark,
        {"event_id": "E0"},
        {"event_id": "E1", "event_ts": at(5)},
        {"event_id": "E1", "event_ts": at(1)},
        # Invalid: neither a first occurrence nor a duplicate of the valid E2.
        {"event_id": "E2", "event_type": "teleport", "event_ts": at(0)},
        {"event_id": "E2", "event_ts": at(3)},
    )

    batch = build_web_events(rows, earlier)

    assert sorted((r.event_id, r.event_ts.minute) for r in batch.accepted.collect()) == [("E1", 1), ("E2", 3)]
    assert sorted(
        (r.record_key, r.quarantine_rule, r.quarantine_reason) for r in batch.quarantined.collect()
    ) == [
        ("E0", "duplicate_event_id", "event_id 'E0' already received on 2024-03-01"),
        ("E1", "duplicate_event_id", "event_id 'E1' already received on 2024-03-05"),
        ("E2", "unexpected_event_type", f"event_type 'teleport' is not one of {', '.join(EVENT_TYPES)}"),
    ]


def test_events_without_a_session_get_one_per_customer_split_after_30_idle_minutes(
    spark: SparkSession,
) -> None:
    rows = bronze(
        spark,
        {"event_id": "A1", "session_id": None, "event_ts": at(0)},
        {"event_id": "A2", "session_id": "", "event_ts": at(10)},
        {"event_id": "A3", "session_id": None, "event_ts": at(41)},
        {"event_id": "B1", "session_id": None, "customer_id": "C2", "event_ts": at(12)},
        {"event_id": "G1", "session_id": "S9", "customer_id": None, "event_ts": at(20)},
    )

    sessions = {
        r.event_id: (r.session_id, r.session_is_derived)
        for r in build_web_events(rows, no_history(spark)).accepted.collect()
    }

    assert sessions == {
        "A1": ("derived-C1-1", True),
        "A2": ("derived-C1-1", True),
        "A3": ("derived-C1-2", True),
        "B1": ("derived-C2-1", True),
        "G1": ("S9", False),
    }


def test_a_session_firing_more_than_a_person_can_in_a_minute_is_quarantined(spark: SparkSession) -> None:
    burst = [
        {"event_id": f"B{i}", "session_id": "BOT", "event_ts": at(7, i % 60)}
        for i in range(BOT_EVENTS_PER_MINUTE + 1)
    ]
    # As many as a person can, spread over two minutes' boundary: the limit is per minute.
    busy = [
        {"event_id": f"H{i}", "session_id": "HUMAN", "event_ts": at(8, i)}
        for i in range(BOT_EVENTS_PER_MINUTE)
    ]
    # A duplicate is not a second event of its session.
    resent = {"event_id": "H0", "session_id": "HUMAN", "event_ts": at(8, 0)}
    rows = bronze(spark, *burst, *busy, resent, {"event_id": "L1", "session_id": "BOT", "event_ts": at(30)})

    batch = build_web_events(rows, no_history(spark))

    accepted = {r.event_id for r in batch.accepted.collect()}
    quarantined = batch.quarantined.collect()
    assert accepted == {f"H{i}" for i in range(BOT_EVENTS_PER_MINUTE)}
    bots = [r for r in quarantined if r.quarantine_rule == "bot_session"]
    # The whole session goes, its quiet minute too.
    assert {r.record_key for r in bots} == {f"B{i}" for i in range(BOT_EVENTS_PER_MINUTE + 1)} | {"L1"}
    peak, limit = BOT_EVENTS_PER_MINUTE + 1, BOT_EVENTS_PER_MINUTE
    assert {r.quarantine_reason for r in bots} == {
        f"session BOT fired {peak} events in one minute (a person: at most {limit})"
    }
    assert [(r.record_key, r.quarantine_rule) for r in quarantined if r.quarantine_rule != "bot_session"] == [
        ("H0", "duplicate_event_id")
    ]
    assert len(accepted) + len(quarantined) == rows.count()


def test_a_row_rejected_at_any_step_keeps_its_record_exactly_as_received(spark: SparkSession) -> None:
    """Silver trims `event_id`, types `event_ts` and fills in `session_id`; a row rejected after
    those changes (a duplicate, outside its day, a bot session it was placed in) still reaches the
    quarantine with the values it arrived with."""
    burst = [
        {"event_id": f"B{i}", "session_id": None, "customer_id": "C9", "event_ts": at(7, i % 60)}
        for i in range(BOT_EVENTS_PER_MINUTE + 1)
    ]
    rows = bronze(
        spark,
        {"event_id": "E1", "event_ts": at(1)},
        {"event_id": " E1 ", "event_ts": at(2)},  # a duplicate once trimmed
        {"event_id": "E3", "event_ts": "yesterday"},  # rejected before any change
        {"event_id": "E4", "event_ts": "2024-03-06T00:00:01Z"},  # rejected once typed
        *burst,
    )
    as_received = {
        r.event_id: r.record
        for r in rows.select("event_id", F.to_json(F.struct(*rows.columns)).alias("record")).collect()
    }

    quarantined = build_web_events(rows, no_history(spark)).quarantined.collect()

    assert {(r.record_key, r.quarantine_rule) for r in quarantined if not r.record_key.startswith("B")} == {
        ("E1", "duplicate_event_id"),
        ("E3", "invalid_timestamp"),
        ("E4", "timestamp_outside_partition"),
    }
    assert len(quarantined) == 3 + len(burst)
    for row in quarantined:
        received = " E1 " if row.quarantine_rule == "duplicate_event_id" else row.record_key
        assert row.record == as_received[received], row.record_key
    assert all(
        json.loads(r.record).get("session_id") is None for r in quarantined if r.record_key.startswith("B")
    )
