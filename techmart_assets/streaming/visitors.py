"""The live behaviour stream's state: every visitor's `Activity`, when to look at each again without a
new event, and the event-time watermark. Plain Python, no I/O: `live_features.py` keeps one
`Visitors` in the driver, feeds it each micro-batch's web events, and logs what changed to Delta.

The watermark is Spark's, kept here: the newest event time seen minus `late_after_s`, moved at the
end of each micro-batch. An event older than the watermark is dropped and counted; one within it
joins its visitor's activity (and session, if it falls inside it). A visitor is looked at again when
the watermark passes its next due time: the next cart product to become abandoned, else the end of
the day it is remembered for (`BehaviourConfig.memory_s`), when it is forgotten.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from techmart_assets.streaming.behaviour import (
    Activity,
    BehaviourConfig,
    FunnelCounts,
    Preferences,
    WebEvent,
    features,
    next_abandonment,
    observe,
)

ANONYMOUS = "~"  # an anonymous visitor's key: "~" + its session id


def visitor_key(customer_id: str | None, session_id: str | None) -> str | None:
    """Whose activity an event belongs to: its customer, else its session (anonymous)."""
    if customer_id:
        return customer_id
    return ANONYMOUS + session_id if session_id else None


@dataclass
class Step:
    """What one micro-batch changed."""

    features: dict[str, dict[str, object]] = field(default_factory=dict)  # customer -> features
    funnel: FunnelCounts = field(default_factory=dict)
    changed: dict[str, Activity | None] = field(default_factory=dict)  # visitor -> after (None: forgotten)
    followed: int = 0  # events applied
    late: int = 0  # events older than the watermark, dropped


class Visitors:
    def __init__(
        self,
        config: BehaviourConfig,
        late_after_s: float,
        activities: dict[str, Activity] | None = None,
        dues: dict[str, float] | None = None,
        watermark_s: float = 0.0,
    ) -> None:
        self.config, self.late_after_s, self.watermark_s = config, late_after_s, watermark_s
        self.activities = dict(activities or {})
        self.dues = dict(dues or {})  # visitor -> event time to look at it again
        self._queue = [(due, visitor) for visitor, due in self.dues.items()]  # with stale entries
        heapq.heapify(self._queue)

    def step(
        self,
        events: Iterable[tuple[str, WebEvent]],
        preferences: Callable[[str], Preferences | None],
    ) -> Step:
        """Apply a micro-batch's events (visitor, event), then move the watermark and look again at the
        visitors it passed. Each customer whose activity changed gets its features."""
        step, watermark = Step(), self.watermark_s
        by_visitor: dict[str, list[WebEvent]] = {}
        newest = None
        for visitor, event in events:
            if event.event_s < watermark:
                step.late += 1
                continue
            by_visitor.setdefault(visitor, []).append(event)
            newest = event.event_s if newest is None else max(newest, event.event_s)
        for visitor, seen in by_visitor.items():
            after = observe(self.activities.get(visitor, Activity()), seen, self.config, step.funnel)
            step.followed += len(seen)
            self._changed(step, visitor, after, max(watermark, after.last_event_s), preferences)
        if newest is not None:
            self.watermark_s = max(watermark, newest - self.late_after_s)
        while self._queue and self._queue[0][0] <= self.watermark_s:
            due, visitor = heapq.heappop(self._queue)
            if self.dues.get(visitor) != due:
                continue  # rescheduled since
            activity = self.activities[visitor]
            if (activity.last_event_s or 0.0) + self.config.memory_s <= self.watermark_s:
                del self.activities[visitor], self.dues[visitor]
                step.changed[visitor] = None
                step.features.pop(visitor, None)
                continue
            self._changed(step, visitor, activity, self.watermark_s, preferences)
        return step

    def _changed(
        self,
        step: Step,
        visitor: str,
        activity: Activity,
        now_s: float,
        preferences: Callable[[str], Preferences | None],
    ) -> None:
        self.activities[visitor] = activity
        due = next_abandonment(activity, self.config, after_s=now_s)
        if due is None:
            due = (activity.last_event_s or now_s) + self.config.memory_s
        self.dues[visitor] = due
        heapq.heappush(self._queue, (due, visitor))
        if len(self._queue) > 2 * len(self.dues) + 1024:  # mostly stale entries: start afresh
            self._queue = [(d, v) for v, d in self.dues.items()]
            heapq.heapify(self._queue)
        step.changed[visitor] = activity
        if not visitor.startswith(ANONYMOUS):
            step.features[visitor] = features(visitor, activity, preferences(visitor), now_s, self.config)
