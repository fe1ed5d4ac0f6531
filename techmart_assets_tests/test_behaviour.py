"""Live behaviour from crafted clickstreams: sessions, the cart and its abandonment, the last 24 hours'
views, the time since the last visit, the per-minute funnel and the explained suggestion."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from techmart_assets.streaming.behaviour import (
    FEATURE_COLUMNS,
    Activity,
    BehaviourConfig,
    Preferences,
    WebEvent,
    abandoned,
    features,
    next_abandonment,
    observe,
    suggest,
)

CONFIG = BehaviourConfig()
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
LAPTOPS, ACCESSORIES, PHONES = "Laptops", "Accessories", "Smartphones"
REGULAR = Preferences(purchases=12, usual_basket_mad=850.0, favourite_categories=(ACCESSORIES, PHONES))


def event(kind: str, at_s: float, product: str | None = None, category: str | None = None, session="S1"):
    return WebEvent("C1", session, kind, product, category, T0 + at_s, T0 + at_s + 0.2)


def browse_laptops() -> list[WebEvent]:
    return [
        event("page_view", 0),
        event("product_view", 30, "P1", LAPTOPS),
        event("product_view", 60, "P2", LAPTOPS),
        event("product_view", 90, "P1", LAPTOPS),
        event("product_view", 120, "P9", ACCESSORIES),
        event("add_to_cart", 150, "P2", LAPTOPS),
    ]


def test_a_session_of_laptop_views_suggests_laptops_and_says_what_the_customer_usually_buys() -> None:
    activity = observe(Activity(), browse_laptops(), CONFIG)
    row = features("C1", activity, REGULAR, T0 + 150, CONFIG)

    assert set(row) == set(FEATURE_COLUMNS)
    assert row["session_id"] == "S1" and row["session_events"] == 6
    assert row["session_start"] == datetime.fromtimestamp(T0, UTC)
    assert row["session_products"] == ["P1", "P9", "P2"]  # distinct, most recent last
    assert row["session_categories"] == [
        {"category": LAPTOPS, "views": 3},
        {"category": ACCESSORIES, "views": 1},
    ]
    assert row["cart_products"] == ["P2"] and row["cart_abandoned"] is False
    assert row["categories_viewed_24h"] == row["session_categories"]
    assert row["seconds_since_last_visit"] is None  # a first visit
    assert (row["purchases"], row["usual_basket_mad"]) == (12, 850.0)
    assert row["favourite_categories"] == [ACCESSORIES, PHONES]
    assert row["suggested_category"] == LAPTOPS
    assert row["suggestion"] == "viewed Laptops 3 times this session, bought none; usually buys Accessories"
    assert row["last_received_at"] == datetime.fromtimestamp(T0 + 150.2, UTC)


def test_buying_the_category_ends_the_interest_and_empties_the_cart() -> None:
    bought = [*browse_laptops(), event("checkout", 170), event("purchase", 180, "P2", LAPTOPS)]
    activity = observe(Activity(), bought, CONFIG)
    assert activity.cart == {} and activity.session_bought == [LAPTOPS]
    category, reason = suggest(activity, REGULAR, T0 + 180, CONFIG)
    # Laptops were bought: the next interest is the 24 hours' views, whose top is Laptops still.
    assert (category, reason) == (
        LAPTOPS,
        "viewed Laptops 3 times in the last 24 hours; usually buys Accessories",
    )


def test_a_cart_is_abandoned_once_the_configured_time_passes_without_a_purchase() -> None:
    activity = observe(Activity(), browse_laptops(), CONFIG)  # P2 added at +150 s
    added = T0 + 150
    assert next_abandonment(activity, CONFIG) == added + 1800
    assert abandoned(activity, added + 1799, CONFIG) == []
    assert abandoned(activity, added + 1800, CONFIG) == ["P2"]
    row = features("C1", activity, None, added + 1800, CONFIG)
    assert row["cart_abandoned"] is True and row["abandoned_products"] == ["P2"]

    quick = BehaviourConfig(abandoned_after_s=60)
    assert abandoned(activity, added + 60, quick) == ["P2"]
    # Session interest comes first; without it, the abandoned cart explains the suggestion.
    cart_only = observe(Activity(), [event("add_to_cart", 0, "P7", PHONES)], quick)
    assert suggest(cart_only, REGULAR, T0 + 600, quick) == (
        PHONES,
        "left P7 (Smartphones) in the cart 10 min ago without buying; usually buys Accessories",
    )
    # Two products: once the first is abandoned, the next one to watch for is the second.
    two = observe(cart_only, [event("add_to_cart", 300, "P8", PHONES)], quick)
    assert next_abandonment(two, quick) == T0 + 60
    assert next_abandonment(two, quick, after_s=T0 + 60) == T0 + 360
    assert next_abandonment(two, quick, after_s=T0 + 360) is None
    bought = observe(cart_only, [event("purchase", 700, "P7", PHONES)], quick)
    assert abandoned(bought, T0 + 900, quick) == [] and next_abandonment(bought, quick) is None


def test_a_new_session_after_the_gap_gives_the_time_since_the_last_visit() -> None:
    first = observe(Activity(), browse_laptops(), CONFIG)
    later = observe(
        first,
        [event("page_view", 150 + 1801, session="S2"), event("product_view", 2000, "P5", PHONES, "S2")],
        CONFIG,
    )
    row = features("C1", later, REGULAR, T0 + 2000, CONFIG)
    assert row["session_id"] == "S2" and row["session_events"] == 2
    assert row["seconds_since_last_visit"] == 1801.0
    assert row["session_categories"] == [{"category": PHONES, "views": 1}]
    # The earlier session's views still count in the last 24 hours.
    assert row["categories_viewed_24h"] == [
        {"category": LAPTOPS, "views": 3},
        {"category": ACCESSORIES, "views": 1},
        {"category": PHONES, "views": 1},
    ]
    # A day later the views are forgotten; a session only 30 minutes apart is the same session.
    next_day = observe(later, [event("product_view", 2000 + 25 * 3600, "P5", PHONES, "S3")], CONFIG)
    assert recent(next_day, T0 + 2000 + 25 * 3600) == [{"category": PHONES, "views": 1}]
    same = observe(first, [event("page_view", 150 + 1800)], CONFIG)
    assert same.session_start == T0 and same.session_events == 7


def recent(activity: Activity, now_s: float) -> list:
    return features("C1", activity, None, now_s, CONFIG)["categories_viewed_24h"]


def test_late_events_join_their_session_or_only_the_last_24_hours() -> None:
    activity = observe(Activity(), browse_laptops()[3:], CONFIG)  # +90 .. +150 s
    late_in_session = observe(activity, browse_laptops()[:3], CONFIG)  # 0 .. +60 s, arriving after
    assert late_in_session.session_start == T0 and late_in_session.session_events == 6
    assert late_in_session.session_views == {LAPTOPS: 3, ACCESSORIES: 1}

    much_later = observe(activity, [event("page_view", 3 * 3600, session="S2")], CONFIG)
    straggler = observe(much_later, [event("product_view", 2 * 3600, "P3", PHONES)], CONFIG)
    assert straggler.session_views == {} and straggler.session_events == 1  # not part of the session
    assert {"category": PHONES, "views": 1} in recent(straggler, T0 + 3 * 3600)


def test_a_customer_without_history_gets_features_without_a_profile() -> None:
    activity = observe(Activity(), [event("page_view", 0), event("product_view", 10, "P1", LAPTOPS)], CONFIG)
    row = features("C404", activity, None, T0 + 10, CONFIG)
    assert row["purchases"] is None and row["usual_basket_mad"] is None and row["favourite_categories"] == []
    # One view is not an interest yet: the 24 hours' views explain the suggestion.
    assert (row["suggested_category"], row["suggestion"]) == (
        LAPTOPS,
        "viewed Laptops once in the last 24 hours",
    )
    assert suggest(Activity(), None, T0, CONFIG) == (
        None,
        "no browsing in the last 24 hours and no purchase history yet",
    )
    assert suggest(Activity(), REGULAR, T0, CONFIG) == (ACCESSORIES, "usually buys Accessories")


def test_the_funnel_counts_each_step_and_each_session_by_minute() -> None:
    funnel: dict[int, dict[str, int]] = {}
    steps = [*browse_laptops(), event("checkout", 170), event("purchase", 180, "P2", LAPTOPS)]
    activity = observe(Activity(), steps, CONFIG, funnel)
    observe(activity, [event("page_view", 4000, session="S2")], CONFIG, funnel)
    minute = int(T0 // 60) * 60  # T0 is on the minute
    assert funnel == {
        minute: {"sessions": 1, "page_views": 1, "product_views": 1},
        minute + 60: {"product_views": 2},
        minute + 120: {"product_views": 1, "carts": 1, "checkouts": 1},
        minute + 180: {"purchases": 1},
        minute + 3960: {"sessions": 1, "page_views": 1},
    }


def test_the_activity_survives_its_json_state() -> None:
    activity = observe(Activity(), browse_laptops(), CONFIG)
    assert Activity.from_data(json.loads(json.dumps(activity.to_data()))) == activity
