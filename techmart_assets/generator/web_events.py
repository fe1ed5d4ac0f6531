"""Clickstream: sessions whose events walk down a narrowing funnel (page_view, product_view, search,
add_to_cart, checkout, purchase), purchase sessions ending in the day's online orders, and the JSONL layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from techmart_assets.generator import seasonality
from techmart_assets.generator.catalogue import CATEGORY_NAMES, Catalogue, product_id
from techmart_assets.generator.customers import Customers
from techmart_assets.generator.draws import categorical, choice
from techmart_assets.generator.render import Rows, iso_ts, json_id, table, zero_padded
from techmart_assets.generator.transactions import DEVICES, ONLINE, TxFrame, day_start

EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "checkout", "purchase")
PAGE_VIEW, PRODUCT_VIEW, SEARCH, ADD_TO_CART, CHECKOUT, PURCHASE = range(len(EVENT_TYPES))
EVENT_ID_CELL = 1  # cell 0 is the opening brace

LANDING_PAGES = (
    "/",
    "/deals",
    "/new-arrivals",
    "/stores",
    *(f"/category/{c.lower().replace(' ', '-')}" for c in CATEGORY_NAMES),
)
SEARCH_TERMS = (
    "iphone+15",
    "samsung+galaxy",
    "laptop+gaming",
    "tv+55",
    "airpods",
    "ps5",
    "machine+a+laver",
    "climatiseur",
    "montre+connectee",
    "chargeur+rapide",
    "macbook",
    "xiaomi",
    "casque+bluetooth",
    "ipad",
    "refrigerateur",
)
EXTERNAL_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.co.ma/",
    "https://www.facebook.com/",
    "https://www.instagram.com/",
    "https://www.tiktok.com/",
    "https://www.youtube.com/",
    "https://mail.google.com/",
)
_BROWSE_DEVICES = np.array([0.38, 0.52, 0.10])
_DIRECT_SHARE = 0.35  # sessions that start without a referrer
_LOGGED_IN_SHARE = 0.5  # browsing sessions of a known customer
_SECONDS_BETWEEN_EVENTS = 40.0


class Pages:
    """Every URL the events can carry (pages of the shop, then external referrers), as one lookup table."""

    def __init__(self, products: int):
        self.search = len(LANDING_PAGES)
        self.cart = self.search + len(SEARCH_TERMS)
        self.checkout = self.cart + 1
        self.confirmation = self.cart + 2
        self.product = self.cart + 3
        self.external = self.product + products
        self.table = table(
            [
                *LANDING_PAGES,
                *(f"/search?q={t}" for t in SEARCH_TERMS),
                "/cart",
                "/checkout",
                "/checkout/confirmation",
                *(f"/product/{product_id(i)}" for i in range(products)),
                *EXTERNAL_REFERRERS,
            ]
        )
        # The same URLs as JSON values, then null at index -1.
        self.json = table([*(f'"{u.decode()}"' for u in self.table), "null"])


@dataclass
class EventFrame:
    number: np.ndarray
    session: np.ndarray
    customer: np.ndarray  # -1: anonymous visitor
    event_type: np.ndarray
    product: np.ndarray  # -1: the event is about no product
    url: np.ndarray
    referrer: np.ndarray  # -1: none
    device: np.ndarray
    ts: np.ndarray

    def __len__(self) -> int:
        return len(self.number)


def draw_day(
    rng: np.random.Generator,
    day: date,
    orders: TxFrame,
    sessions: int,
    customers: Customers,
    eligible: int,
    catalogue: Catalogue,
    demand: np.ndarray,
    pages: Pages,
    first_event: int,
    first_session: int,
) -> EventFrame:
    """About `sessions` sessions on `day`: one ending in each online order, the rest browsing only."""
    online = np.flatnonzero(np.isin(orders.channel, ONLINE))
    buying = len(online)
    count = max(sessions, buying)
    purchase = np.arange(count) < buying

    funnel = np.zeros((count, len(EVENT_TYPES)), dtype=np.int64)
    funnel[:, PAGE_VIEW] = 1 + rng.poisson(0.35, count)
    viewed = purchase | (rng.random(count) < 0.7)
    funnel[:, PRODUCT_VIEW] = viewed * (1 + rng.poisson(0.4, count))
    funnel[:, SEARCH] = rng.random(count) < 0.65
    carted = purchase | (viewed & (rng.random(count) < 0.22))
    funnel[:, ADD_TO_CART] = carted
    funnel[:, CHECKOUT] = purchase | (carted & (rng.random(count) < 0.35))
    funnel[:, PURCHASE] = purchase

    per_session = funnel.sum(axis=1)
    total = int(per_session.sum())
    session = np.repeat(np.arange(count), per_session)
    stage = np.repeat(np.tile(np.arange(len(EVENT_TYPES)), count), funnel.ravel())
    first = np.cumsum(per_session) - per_session
    gaps = rng.exponential(_SECONDS_BETWEEN_EVENTS, total)
    gaps[first] = 0
    elapsed = np.cumsum(gaps).astype(np.int64)
    elapsed -= elapsed[first][session]
    duration = elapsed[first + per_session - 1]

    midnight = day_start(day)
    browse = count - buying
    hour = categorical(rng, seasonality.hour_weights(day), np.zeros(browse, dtype=np.int64))
    start = np.concatenate(
        [
            orders.ts[online] - duration[:buying],  # the purchase event is the order itself
            midnight + hour * 3600 + rng.integers(0, 3600, browse),
        ]
    )
    ts = np.clip(start[session] + elapsed, midnight, midnight + 86399)

    visitor = np.where(rng.random(browse) < _LOGGED_IN_SHARE, customers.pick(rng, eligible, browse), -1)
    customer = np.concatenate([orders.customer[online], visitor])
    device = np.concatenate([orders.device[online], choice(rng, _BROWSE_DEVICES, browse)])

    product = np.full(total, -1, dtype=np.int64)
    views = np.flatnonzero(stage == PRODUCT_VIEW)
    product[views] = catalogue.pick(rng, demand, len(views))
    last_view = first + funnel[:, PAGE_VIEW] + funnel[:, PRODUCT_VIEW] - 1
    cart = first + funnel[:, :ADD_TO_CART].sum(axis=1)
    for index in (last_view[:buying], cart[:buying], first[:buying] + per_session[:buying] - 1):
        product[index] = orders.product[online]
    browsing_carts = np.flatnonzero(carted & ~purchase)
    product[cart[browsing_carts]] = product[last_view[browsing_carts]]

    url = np.empty(total, dtype=np.int64)
    for kind, values in (
        (PAGE_VIEW, lambda k: rng.integers(0, pages.search, k)),
        (SEARCH, lambda k: pages.search + rng.integers(0, len(SEARCH_TERMS), k)),
        (ADD_TO_CART, lambda k: np.full(k, pages.cart)),
        (CHECKOUT, lambda k: np.full(k, pages.checkout)),
        (PURCHASE, lambda k: np.full(k, pages.confirmation)),
    ):
        at = np.flatnonzero(stage == kind)
        url[at] = values(len(at))
    url[views] = pages.product + product[views]
    referrer = np.empty(total, dtype=np.int64)
    referrer[1:] = url[:-1]  # inside a session the referrer is the previous page
    referrer[first] = np.where(
        rng.random(count) < _DIRECT_SHARE,
        -1,
        pages.external + rng.integers(0, len(EXTERNAL_REFERRERS), count),
    )

    order = np.argsort(ts, kind="stable")
    session_rank = np.empty(count, dtype=np.int64)
    session_rank[np.argsort(ts[first], kind="stable")] = np.arange(count)
    session = session[order]
    return EventFrame(
        number=first_event + np.arange(total),
        session=first_session + session_rank[session],
        customer=customer[session],
        event_type=stage[order],
        product=product[order],
        url=url[order],
        referrer=referrer[order],
        device=device[session],
        ts=ts[order],
    )


_EVENT_TYPES = table(EVENT_TYPES)
_DEVICES = table(DEVICES)


def rows(frame: EventFrame, pages: Pages) -> Rows:
    """The JSON lines of `frame`, one cell per member (cells 0 and last hold the braces)."""
    return Rows(
        len(frame),
        [
            [b"{"],
            [b'"event_id":"E', *zero_padded(frame.number, 11), b'",'],
            [b'"session_id":"S', *zero_padded(frame.session, 10), b'",'],
            [b'"customer_id":', *json_id("C", frame.customer + 1, 7, frame.customer < 0), b","],
            [b'"event_type":"', _EVENT_TYPES[frame.event_type], b'",'],
            [b'"product_id":', *json_id("P", frame.product + 1, 6, frame.product < 0), b","],
            [b'"page_url":"', pages.table[frame.url], b'",'],
            [b'"referrer":', pages.json[frame.referrer], b","],
            [b'"device":"', _DEVICES[frame.device], b'",'],
            [b'"event_ts":"', *iso_ts(frame.ts), b'"'],
            [b"}"],
        ],
    )
