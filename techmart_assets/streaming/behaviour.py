"""Live customer behaviour from the clickstream: sessions, per-customer features, a next-best category.

Plain Python, like the fraud rules: the streaming query's state (`visitors.py`) calls `observe` per
visitor with the visitor's `Activity` kept between micro-batches, `features` for each customer whose
activity changed, and `suggest` for the suggestion that goes with them. Every threshold is in
`BehaviourConfig`; every suggestion says why in words.

- **Sessions** follow silver's definition: a visitor's events more than `session_gap_s` apart (30
  minutes) start a new session. An event that arrives late but falls inside the current session
  joins it; one from before it still counts in the last 24 hours' views (and its cart actions),
  not in the session.
- **Cart**: `add_to_cart` puts a product in, a `purchase` of it takes it out. A product still in the
  cart `abandoned_after_s` after it was added is abandoned, judged against the stream's event-time
  frontier (the newest event time seen, or the watermark when the stream checks again).
- **Categories viewed over the last 24 hours**: product views per category, kept by the hour (the
  oldest hour may count up to an hour more than 24).
- **Time since the last visit**: from the end of the previous session to the start of this one.
- **Usual basket and favourite categories**: from the customer's profile (silver's completed
  purchases, `gold/customer_profiles`); a customer without one gets features without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from techmart_assets.silver.web_events import SESSION_GAP_MINUTES

PAGE_VIEW, PRODUCT_VIEW, SEARCH, ADD_TO_CART, CHECKOUT, PURCHASE = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "checkout",
    "purchase",
)
HOUR_S = 3600


@dataclass(frozen=True)
class BehaviourConfig:
    session_gap_s: float = SESSION_GAP_MINUTES * 60.0
    abandoned_after_s: float = 30 * 60.0  # a cart item not bought this long after it was added
    recent_s: float = 24 * HOUR_S  # categories viewed "over the last 24 hours"
    interest_views: int = 2  # product views of a category in a session that make it the current interest
    session_products: int = 20  # distinct products of the session kept (the latest)

    @property
    def memory_s(self) -> float:
        """How long a visitor with no new event is remembered: a day's views, and the gap to tell a
        new session from the last one."""
        return self.recent_s + self.session_gap_s


@dataclass(frozen=True)
class WebEvent:
    customer_id: str | None
    session_id: str | None
    event_type: str
    product_id: str | None
    category: str | None  # the product's category (None: no product, or one the catalogue lacks)
    event_s: float  # event time, epoch seconds
    received_s: float  # when Kafka received it


@dataclass
class Activity:
    """A visitor's state between micro-batches (JSON: `to_data` / `from_data`)."""

    session_id: str | None = None  # the producer's id of the session's latest event
    session_start: float | None = None
    session_last: float | None = None
    session_events: int = 0
    session_products: list[str] = field(default_factory=list)
    session_views: dict[str, int] = field(default_factory=dict)  # category -> product views
    session_bought: list[str] = field(default_factory=list)  # categories bought in the session
    previous_visit_end: float | None = None
    cart: dict[str, list] = field(default_factory=dict)  # product -> [category, added at]
    hourly_views: dict[str, dict[str, int]] = field(default_factory=dict)  # hour -> category -> views
    last_event_s: float | None = None
    last_received_s: float | None = None

    def to_data(self) -> dict:
        """The fields as JSON values (shared with the activity, not copies)."""
        return dict(vars(self))

    def copy(self) -> Activity:
        return replace(
            self,
            session_products=list(self.session_products),
            session_views=dict(self.session_views),
            session_bought=list(self.session_bought),
            cart={product: list(entry) for product, entry in self.cart.items()},
            hourly_views={hour: dict(views) for hour, views in self.hourly_views.items()},
        )

    @classmethod
    def from_data(cls, data: Mapping) -> Activity:
        return cls(**data)


@dataclass(frozen=True)
class Preferences:
    """What silver says a customer usually buys."""

    purchases: int = 0
    usual_basket_mad: float | None = None  # mean completed purchase
    favourite_categories: tuple[str, ...] = ()  # most bought first


@dataclass(frozen=True)
class Funnel:
    """One minute's clickstream, as `observe` counts it."""

    sessions: int = 0  # sessions started
    page_views: int = 0
    product_views: int = 0
    carts: int = 0
    checkouts: int = 0
    purchases: int = 0


FunnelCounts = dict[int, dict[str, int]]  # minute (epoch seconds of its start) -> Funnel's counts
_STEP_FIELD = {
    PAGE_VIEW: "page_views",
    PRODUCT_VIEW: "product_views",
    ADD_TO_CART: "carts",
    CHECKOUT: "checkouts",
    PURCHASE: "purchases",
}


def _count(funnel: FunnelCounts, at: float, name: str) -> None:
    minute = int(at // 60) * 60
    counts = funnel.setdefault(minute, {})
    counts[name] = counts.get(name, 0) + 1


def observe(
    activity: Activity,
    events: Iterable[WebEvent],
    config: BehaviourConfig,
    funnel: FunnelCounts | None = None,
) -> Activity:
    """The visitor's activity after `events` (any order; applied in event-time order). Each event
    and each session started is counted in `funnel` by its minute, if given."""
    state = activity.copy()  # never change the caller's
    for event in sorted(events, key=lambda e: e.event_s):
        at = event.event_s
        in_session = state.session_start is not None and at >= state.session_start - config.session_gap_s
        if state.session_last is None or at - state.session_last > config.session_gap_s:
            if state.session_last is not None:
                state.previous_visit_end = state.session_last
            state.session_start = state.session_last = at
            state.session_events = 0
            state.session_products, state.session_views, state.session_bought = [], {}, []
            in_session = True
            if funnel is not None:
                _count(funnel, at, "sessions")
        if in_session:
            state.session_start = min(state.session_start, at)
            state.session_last = max(state.session_last, at)
            state.session_events += 1
            state.session_id = event.session_id or state.session_id
        if funnel is not None and event.event_type in _STEP_FIELD:
            _count(funnel, at, _STEP_FIELD[event.event_type])
        if event.event_type == PRODUCT_VIEW and event.category:
            hour = str(int(at // HOUR_S))
            views = state.hourly_views.setdefault(hour, {})
            views[event.category] = views.get(event.category, 0) + 1
            if in_session:
                state.session_views[event.category] = state.session_views.get(event.category, 0) + 1
        if event.product_id and in_session and event.event_type in (PRODUCT_VIEW, ADD_TO_CART):
            if event.product_id in state.session_products:
                state.session_products.remove(event.product_id)
            state.session_products = [*state.session_products, event.product_id][-config.session_products :]
        if event.event_type == ADD_TO_CART and event.product_id:
            state.cart[event.product_id] = [event.category, at]
        if event.event_type == PURCHASE:
            if event.product_id:
                state.cart.pop(event.product_id, None)
            if in_session and event.category and event.category not in state.session_bought:
                state.session_bought.append(event.category)
        state.last_event_s = max(state.last_event_s or at, at)
        state.last_received_s = max(state.last_received_s or event.received_s, event.received_s)
    newest = state.last_event_s
    if newest is not None:
        oldest_hour = int((newest - config.recent_s) // HOUR_S)
        state.hourly_views = {h: v for h, v in state.hourly_views.items() if int(h) >= oldest_hour}
    return state


def abandoned(activity: Activity, now_s: float, config: BehaviourConfig) -> list[str]:
    """The cart's products added `abandoned_after_s` or more before `now_s` and not bought, oldest first."""
    late = [
        (added, product)
        for product, (_, added) in activity.cart.items()
        if added + config.abandoned_after_s <= now_s
    ]
    return [product for _, product in sorted(late)]


def next_abandonment(
    activity: Activity, config: BehaviourConfig, after_s: float = float("-inf")
) -> float | None:
    """When the next cart product becomes abandoned (event time) after `after_s`; None when none will."""
    dues = (added + config.abandoned_after_s for _, added in activity.cart.values())
    return min((due for due in dues if due > after_s), default=None)


def recent_views(activity: Activity, now_s: float, config: BehaviourConfig) -> list[tuple[str, int]]:
    """Product views per category over the last `recent_s` before `now_s` (by the hour), most first."""
    oldest_hour = int((now_s - config.recent_s) // HOUR_S)
    totals: dict[str, int] = {}
    for hour, views in activity.hourly_views.items():
        if int(hour) >= oldest_hour:
            for category, n in views.items():
                totals[category] = totals.get(category, 0) + n
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def suggest(
    activity: Activity, preferences: Preferences | None, now_s: float, config: BehaviourConfig
) -> tuple[str | None, str]:
    """The next-best category for the customer and why, the first of these that applies:

    1. the category the session viewed most (at least `interest_views` times) without buying it;
    2. the category of the product abandoned in the cart most recently;
    3. the category viewed most over the last 24 hours;
    4. the customer's favourite category (what silver says they buy most);
    otherwise none. The reason names the customer's usual category when it differs.
    """
    favourites = preferences.favourite_categories if preferences else ()
    usual = f"; usually buys {favourites[0]}" if favourites else ""
    interest = sorted(
        ((n, c) for c, n in activity.session_views.items() if c not in activity.session_bought),
        key=lambda nc: (-nc[0], nc[1]),
    )
    if interest and interest[0][0] >= config.interest_views:
        n, category = interest[0]
        also = usual if favourites and favourites[0] != category else ""
        return category, f"viewed {category} {_times(n)} this session, bought none{also}"
    left = abandoned(activity, now_s, config)
    if left:
        product = left[-1]
        category, added = activity.cart[product]
        if category:
            minutes = int((now_s - added) // 60)
            also = usual if favourites and favourites[0] != category else ""
            return category, f"left {product} ({category}) in the cart {minutes} min ago without buying{also}"
    viewed = recent_views(activity, now_s, config)
    if viewed:
        category, n = viewed[0]
        also = usual if favourites and favourites[0] != category else ""
        return category, f"viewed {category} {_times(n)} in the last 24 hours{also}"
    if favourites:
        return favourites[0], f"usually buys {favourites[0]}"
    return None, "no browsing in the last 24 hours and no purchase history yet"


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _by_count(counts: Mapping[str, int] | Sequence[tuple[str, int]]) -> list[dict[str, object]]:
    items = counts.items() if isinstance(counts, Mapping) else counts
    return [{"category": c, "views": n} for c, n in sorted(items, key=lambda kv: (-kv[1], kv[0]))]


def features(
    customer_id: str,
    activity: Activity,
    preferences: Preferences | None,
    now_s: float,
    config: BehaviourConfig,
) -> dict[str, object]:
    """A customer's live features as of the event-time frontier `now_s` (`FEATURE_COLUMNS`)."""
    category, reason = suggest(activity, preferences, now_s, config)
    since_last = (
        None
        if activity.previous_visit_end is None or activity.session_start is None
        else activity.session_start - activity.previous_visit_end
    )
    left = abandoned(activity, now_s, config)
    return {
        "customer_id": customer_id,
        "session_id": activity.session_id,
        "session_start": _utc(activity.session_start),
        "session_last_event": _utc(activity.session_last),
        "session_events": activity.session_events,
        "session_products": list(activity.session_products),
        "session_categories": _by_count(activity.session_views),
        "session_bought_categories": list(activity.session_bought),
        "cart_products": sorted(activity.cart),
        "cart_abandoned": bool(left),
        "abandoned_products": left,
        "categories_viewed_24h": _by_count(recent_views(activity, now_s, config)),
        "seconds_since_last_visit": since_last,
        "purchases": preferences.purchases if preferences else None,
        "usual_basket_mad": preferences.usual_basket_mad if preferences else None,
        "favourite_categories": list(preferences.favourite_categories) if preferences else [],
        "suggested_category": category,
        "suggestion": reason,
        "as_of": _utc(now_s),
        "last_received_at": _utc(activity.last_received_s),
    }


FEATURE_COLUMNS = tuple(features("", Activity(), None, 0.0, BehaviourConfig()))
