"""The live behaviour stream against the real broker, Spark and Delta: crafted clickstreams become
sessions, features and explained suggestions in `gold/customer_live_features` and on the compacted
`customer-features` topic; the per-minute funnel adds up; a cart is found abandoned without a new
event; late events count within the watermark and are dropped with a count beyond it; another
producer's time formats are read; a restart and a replayed micro-batch change nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import deltalake
import pytest
from kafka import KafkaProducer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets import cli
from techmart_assets.streaming import broker
from techmart_assets.streaming.behaviour import BehaviourConfig
from techmart_assets.streaming.ingestion import read_topic
from techmart_assets.streaming.live_features import (
    FUNNEL_STEPS,
    LIVE_FEATURES_QUERY,
    start_live_features,
)
from techmart_assets.streaming.runner import StreamTables
from techmart_assets_tests import support

CONFIG = BehaviourConfig(abandoned_after_s=60)
# Event times near now, so that the watermark (the newest event time minus two minutes) is the test's.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
LAPTOPS, ACCESSORIES, PHONES = "Laptops", "Accessories", "Smartphones"


def at(seconds: float, style: str = "Z") -> str:
    moment = BASE + timedelta(seconds=seconds)
    if style == "+01:00":  # another producer's: an offset, not Z
        return moment.astimezone(timezone(timedelta(hours=1))).isoformat()
    if style == "nanos":  # a Java Instant with a nanosecond clock
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def web_event(n: str, customer: str | None, kind: str, seconds: float, product=None, session="S1", style="Z"):
    return support.web_event(
        f"E{n}",
        at(seconds, style),
        customer,
        session_id=session,
        event_type=kind,
        product_id=product,
        page_url=f"/product/{product}" if product else "/",
        referrer=None,
    )


def send(bootstrap: str, events: list[dict | str]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for e in events:
            value = e if isinstance(e, str) else json.dumps(e)
            key = "x" if isinstance(e, str) else (e["customer_id"] or e["session_id"])
            producer.send(broker.WEB_EVENTS_TOPIC, key=key.encode(), value=value.encode())
        producer.flush()
    finally:
        producer.close()


@pytest.fixture
def tables(spark: SparkSession, tmp_path: Path) -> StreamTables:
    tables = StreamTables(str(tmp_path))
    products = [
        ("PL1", LAPTOPS, True),
        ("PL2", LAPTOPS, True),
        ("PA1", ACCESSORIES, True),
        ("PP1", PHONES, True),
    ]
    products.append(("PL2", "Old category", False))  # an earlier version: not the category in force
    spark.createDataFrame(products, "product_id string, category string, is_current boolean").write.format(
        "delta"
    ).save(tables.live.products)
    spark.createDataFrame(
        [("LF1", 12, 850.0, [ACCESSORIES, PHONES])],
        "customer_id string, purchases long, mean_amount double, favourite_categories array<string>",
    ).write.format("delta").save(tables.live.profiles)
    return tables


@contextmanager
def following(
    spark: SparkSession, tables: StreamTables, bootstrap: str, tallies: list | None = None
) -> Iterator[Callable[[], None]]:
    """The live_features query on the module's broker; yields a function that waits until it has
    read everything sent. Each micro-batch's counts go to `tallies`."""
    query = start_live_features(
        read_topic(spark, bootstrap, broker.WEB_EVENTS_TOPIC),
        tables.live,
        bootstrap,
        CONFIG,
        trigger_s=0.5,
        on_tally=None if tallies is None else lambda *counts: tallies.append(counts),
    )
    try:
        assert query.name == LIVE_FEATURES_QUERY
        yield query.processAllAvailable
    finally:
        query.stop()
        broker.close_driver_producers()
    assert query.exception() is None


def features(spark: SparkSession, tables: StreamTables) -> dict[str, dict]:
    rows = spark.read.format("delta").load(tables.live.features).collect()
    assert len({r.customer_id for r in rows}) == len(rows), "one row per customer"
    return {r.customer_id: r.asDict(recursive=True) for r in rows}


def funnel_totals(spark: SparkSession, tables: StreamTables) -> dict[str, int]:
    frame = spark.read.format("delta").load(tables.live.funnel)
    return frame.agg(*[F.sum(s).alias(s) for s in FUNNEL_STEPS]).first().asDict()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    started = time.time()
    while time.time() - started < timeout:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


def test_crafted_clickstreams_become_features_suggestions_and_a_funnel(
    spark: SparkSession,
    kafka: broker.BrokerConfig,
    tables: StreamTables,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = [
        web_event("1", "LF1", "page_view", 0),
        web_event("2", "LF1", "product_view", 30, "PL1", style="+01:00"),
        web_event("3", "LF1", "product_view", 60, "PL2", style="nanos"),
        web_event("4", "LF1", "product_view", 90, "PL1"),
        web_event("5", "LF1", "product_view", 100, "PA1"),
        web_event("6", "LF1", "add_to_cart", 120, "PL2"),
        web_event("7", "LF2", "product_view", 200, "PP1", session="S2"),
        web_event("8", "LF2", "add_to_cart", 210, "PP1", session="S2"),
        web_event("9", "LF2", "checkout", 220, session="S2"),
        web_event("10", "LF2", "purchase", 230, "PP1", session="S2"),
        web_event("11", None, "page_view", 240, session="ANON"),
        web_event("12", "LF3", "add_to_cart", 400, "PA1", session="S3"),
        '{"event_id": "E13", "customer_id": "LF9", "event_ty',  # truncated: not a web event
    ]
    send(kafka.bootstrap, first)
    tallies: list[tuple[int, int, int, int]] = []
    with following(spark, tables, kafka.bootstrap, tallies) as drain:
        drain()
        # Every message accounted for: 12 web events followed, the truncated one counted as invalid.
        assert (sum(t[1] for t in tallies), sum(t[2] for t in tallies)) == (12, 1)
        got = features(spark, tables)
        assert set(got) == {"LF1", "LF2", "LF3"}  # customers only: the anonymous visitor has no row
        one = got["LF1"]
        assert one["session_id"] == "S1" and one["session_events"] == 6
        assert one["session_start"].replace(tzinfo=None) == BASE.replace(tzinfo=None)  # Spark's naive UTC
        assert one["session_categories"] == [
            {"category": LAPTOPS, "views": 3},
            {"category": ACCESSORIES, "views": 1},
        ]
        assert one["cart_products"] == ["PL2"]
        assert (one["purchases"], one["usual_basket_mad"]) == (12, 850.0)
        assert one["favourite_categories"] == [ACCESSORIES, PHONES]
        assert one["suggested_category"] == LAPTOPS
        assert (
            one["suggestion"] == "viewed Laptops 3 times this session, bought none; usually buys Accessories"
        )
        two = got["LF2"]  # no profile: features all the same
        assert two["purchases"] is None and two["favourite_categories"] == []
        assert two["cart_products"] == [] and two["session_bought_categories"] == [PHONES]
        assert two["suggestion"] == "viewed Smartphones once in the last 24 hours"
        assert got["LF3"]["cart_products"] == ["PA1"] and got["LF3"]["cart_abandoned"] is False
        assert funnel_totals(spark, tables) == {
            "sessions": 4,
            "page_views": 2,
            "product_views": 5,
            "carts": 3,
            "checkouts": 1,
            "purchases": 1,
        }

        # LF2 comes back after more than the session gap: the watermark passes LF3's cart, abandoned
        # with no new event of LF3.
        send(kafka.bootstrap, [web_event("14", "LF2", "page_view", 2130, session="S4")])
        drain()
        wait_for(
            lambda: features(spark, tables)["LF3"]["cart_abandoned"],
            60,
            "LF3's cart found abandoned once the watermark passed it",
        )
        three = features(spark, tables)["LF3"]
        assert three["abandoned_products"] == ["PA1"]
        assert three["suggestion"].startswith("left PA1 (Accessories) in the cart")
        assert features(spark, tables)["LF2"]["seconds_since_last_visit"] == 2130 - 230

        # Late: 2 minutes is the watermark. One event within it counts, one beyond it is dropped.
        send(
            kafka.bootstrap,
            [
                web_event("15", "LF2", "product_view", 2050, "PL1", session="S4"),
                web_event("16", "LF2", "page_view", 100),
            ],
        )
        drain()
        two = features(spark, tables)["LF2"]
        assert two["session_events"] == 2 and two["session_categories"] == [{"category": LAPTOPS, "views": 1}]
        assert two["seconds_since_last_visit"] == 2050 - 230  # the late event moved the session's start
        assert sum(t[3] for t in tallies) == 1, "the event beyond the watermark is dropped with a count"
        assert sum(t[1] for t in tallies) == 12 + 1 + 1, "the one within it is followed"
        totals = funnel_totals(spark, tables)
        assert (totals["sessions"], totals["product_views"], totals["page_views"]) == (5, 6, 3)

    # The compacted topic holds each customer's features, keyed by the customer.
    latest = {
        m.key.decode(): json.loads(m.value)
        for m in broker.read_all(kafka.bootstrap, broker.CUSTOMER_FEATURES_TOPIC)
    }
    assert set(latest) == {"LF1", "LF2", "LF3"}
    assert latest["LF3"]["cart_abandoned"] is True
    assert latest["LF1"]["suggested_category"] == LAPTOPS and latest["LF1"]["session_start"].endswith("Z")
    configs = broker_topic_config(kafka.bootstrap, broker.CUSTOMER_FEATURES_TOPIC)
    assert configs["cleanup.policy"] == "compact"

    # What the shop's people read: `techmart customer show`.
    monkeypatch.setenv("TECHMART_LAKEHOUSE", tables.root)
    assert cli.main(["customer", "show", "LF1"]) == 0
    shown = capsys.readouterr().out
    assert "suggestion      Laptops: viewed Laptops 3 times this session, bought none; usually buys" in shown
    assert "cart            PL2 (abandoned: PL2)" in shown
    assert "usual basket    850.00 MAD over 12 purchases" in shown
    assert "favourites      Accessories, Smartphones" in shown
    assert cli.main(["customer", "show", "NOBODY"]) == 1
    assert "no live features for NOBODY" in capsys.readouterr().err

    # A restart, and a replayed last micro-batch: nothing is counted twice, no feature is lost. First
    # the process died after the batch's writes, before Spark's commit: the state log holds the batch,
    # which is skipped. Then it died before the state log's commit too: the batch is followed again
    # from the state before it, and the funnel's and features' ledgers do not write it twice.
    before_funnel, before_features = funnel_totals(spark, tables), features(spark, tables)
    commits = Path(tables.live.checkpoint) / "commits"
    state_log = Path(tables.live.state) / "_delta_log"
    last = max(int(p.name) for p in commits.glob("[0-9]*"))
    state_version = deltalake.DeltaTable(tables.live.state).version()
    for lose_the_state in (False, True):
        for name in (str(last), f".{last}.crc"):
            (commits / name).unlink(missing_ok=True)
        if lose_the_state:
            (state_log / f"{state_version:020d}.json").unlink()
            assert deltalake.DeltaTable(tables.live.state).version() == state_version - 1
        with following(spark, tables, kafka.bootstrap) as drain:
            drain()
        assert (commits / str(last)).exists(), "the last micro-batch was not run again"
        assert deltalake.DeltaTable(tables.live.state).version() == state_version
        assert funnel_totals(spark, tables) == before_funnel
        after = features(spark, tables)
        assert set(after) == set(before_features)
        assert {c: r["session_events"] for c, r in after.items()} == {
            c: r["session_events"] for c, r in before_features.items()
        }


def broker_topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        (by_name,) = described.values()  # {resource type: {topic: {config: its data}}}
        return {
            name: data["value"] if isinstance(data, dict) else data for name, data in by_name[topic].items()
        }
    finally:
        admin.close()
