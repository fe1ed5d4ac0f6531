"""The live behaviour stream's state: the watermark and late events, looking at a visitor again when the
watermark passes its cart or its day, and the state log in Delta that a restart reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import deltalake
import pytest

from techmart_assets.delta import BatchMarker
from techmart_assets.streaming import live_features
from techmart_assets.streaming.behaviour import BehaviourConfig, Preferences, WebEvent
from techmart_assets.streaming.live_features import StateLog
from techmart_assets.streaming.visitors import Visitors, visitor_key

CONFIG = BehaviourConfig(abandoned_after_s=60)
LATE_S = 120
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
FAN = Preferences(purchases=3, usual_basket_mad=100.0, favourite_categories=("Phones",))


def event(customer: str | None, kind: str, at_s: float, product: str | None = None, session: str = "S1"):
    visitor = visitor_key(customer, session)
    category = "Laptops" if product else None
    return visitor, WebEvent(customer, session, kind, product, category, T0 + at_s, T0 + at_s + 0.1)


def preferences(customer: str) -> Preferences | None:
    return FAN if customer == "C1" else None


def test_events_older_than_the_watermark_are_dropped_and_counted_the_others_followed() -> None:
    visitors = Visitors(CONFIG, LATE_S)
    first = visitors.step([event("C1", "page_view", 0), event("C2", "page_view", 500)], preferences)
    assert (first.followed, first.late) == (2, 0)
    assert visitors.watermark_s == T0 + 500 - LATE_S
    assert first.features["C1"]["purchases"] == 3 and first.features["C2"]["purchases"] is None

    late = visitors.step(
        [
            event("C1", "product_view", 400, "P1"),  # 100 s late: within the watermark
            event("C1", "product_view", 379, "P2"),  # 121 s late: beyond it
            event(None, "page_view", 450, session="ANON"),
        ],
        preferences,
    )
    assert (late.followed, late.late) == (2, 1)
    assert set(late.features) == {"C1"}  # an anonymous visitor has state, not features
    assert set(late.changed) == {"C1", "~ANON"}
    assert late.features["C1"]["session_products"] == ["P1"]  # in the session of 0 s (30 min gap)
    assert late.funnel == {
        int((T0 + 400) // 60) * 60: {"product_views": 1},
        int((T0 + 450) // 60) * 60: {"sessions": 1, "page_views": 1},
    }
    assert visitors.watermark_s == T0 + 500 - LATE_S, "the watermark never goes back"


def test_a_cart_is_abandoned_when_the_watermark_passes_it_and_a_silent_visitor_is_forgotten() -> None:
    visitors = Visitors(CONFIG, LATE_S)
    visitors.step([event("C1", "add_to_cart", 0, "P1")], preferences)
    quiet = visitors.step([event("C2", "page_view", 150)], preferences)
    assert "C1" not in quiet.changed  # the watermark (30 s) has not reached the cart's 60 s

    passed = visitors.step([event("C2", "page_view", 200)], preferences)  # watermark 80 s
    assert passed.features["C1"]["cart_abandoned"] is True
    assert passed.features["C1"]["abandoned_products"] == ["P1"]
    assert passed.features["C1"]["as_of"] == datetime.fromtimestamp(T0 + 80, UTC)

    # A day and the session gap later, C1 is forgotten (no features), C2's event keeps C2.
    later = visitors.step([event("C2", "page_view", CONFIG.memory_s + 200)], preferences)
    assert later.changed["C1"] is None and "C1" not in later.features
    assert set(visitors.activities) == {"C2"} and set(visitors.dues) == {"C2"}


def test_the_state_log_gives_back_the_visitors_after_appends_and_after_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "visitors")
    log = StateLog(path)
    visitors = Visitors(CONFIG, LATE_S)
    batches = [
        [event("C1", "add_to_cart", 0, "P1"), event(None, "page_view", 10, session="ANON")],
        [event("C2", "product_view", 300, "P2")],
        [event("C1", "purchase", 310, "P1")],
    ]
    for batch_id, batch in enumerate(batches):
        step = visitors.step(batch, preferences)
        log.save(visitors, step.changed, BatchMarker("Q", batch_id))

    def same(loaded: Visitors) -> None:
        assert loaded.watermark_s == visitors.watermark_s
        assert {v: a.to_data() for v, a in loaded.activities.items()} == {
            v: a.to_data() for v, a in visitors.activities.items()
        }
        assert loaded.dues == visitors.dues

    assert visitors.watermark_s == T0 + 310 - LATE_S
    same(StateLog(path).load(CONFIG))
    assert deltalake.DeltaTable(path).version() == 2  # a commit per micro-batch
    assert deltalake.DeltaTable(path).transaction_version("Q") == 2  # Delta's own record of the batch

    # Past the snapshot size, the log becomes one row per visitor and the watermark.
    monkeypatch.setattr(live_features, "SNAPSHOT_ROWS", 0)
    monkeypatch.setattr(live_features, "SNAPSHOT_GROWTH", 1)
    step = visitors.step([event("C3", "page_view", 320)], preferences)
    log.save(visitors, step.changed, BatchMarker("Q", 3))
    rows = deltalake.DeltaTable(path).to_pyarrow_table().to_pylist()
    assert sorted(r["visitor"] for r in rows) == ["", "C1", "C2", "C3", "~ANON"]
    assert {r["batch_id"] for r in rows} == {3}
    same(StateLog(path).load(CONFIG))
    # The loaded visitors carry on as the ones kept: the same next step.
    loaded = StateLog(path).load(CONFIG)
    far = [event("C2", "page_view", 2000)]
    assert loaded.step(far, preferences).features == visitors.step(far, preferences).features
