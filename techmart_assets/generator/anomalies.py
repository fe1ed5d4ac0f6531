"""Anomalies injected on purpose: fraud scenarios (valid sales that look suspicious) and dirty data (broken
rows), every one recorded as a label so that quality checks and fraud detectors can be scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np

from techmart_assets.generator import geo
from techmart_assets.generator.catalogue import MICRO_PRICE_LIMIT, Catalogue, cents_text, product_id
from techmart_assets.generator.customers import Customers, customer_id
from techmart_assets.generator.render import Rows
from techmart_assets.generator.transactions import (
    COLUMNS,
    COMPLETED,
    CREDIT_CARD,
    MOBILE,
    ONLINE,
    TxFrame,
    day_start,
    transaction_id,
)
from techmart_assets.generator.transactions import rows as transaction_rows
from techmart_assets.generator.web_events import EVENT_ID_CELL

FRAUD_KINDS = (
    "velocity_burst",
    "amount_spike",
    "small_then_large",
    "foreign_country",
    "distant_cities",
    "night_time",
)
TRANSACTION_DIRTY_KINDS = (
    "duplicate_id_same_day",
    "duplicate_id_next_day",
    "missing_key",
    "zero_amount",
    "negative_amount",
    "absurd_amount",
    "malformed_timestamp",
    "unknown_customer",
    "unknown_product",
    "too_few_fields",
    "too_many_fields",
)
WEB_DIRTY_KINDS = ("truncated_json", "missing_key")
LABEL_COLUMNS = ("category", "kind", "source", "partition_date", "record_id", "detail")

ABSURD_AMOUNT = 10_000_000 * 100  # cents; anything above is not a real basket
LARGE_AMOUNT = 5_000 * 100  # the second purchase of small_then_large costs at least this
SPIKE_FACTOR = 10  # amount_spike is at least this many times the customer's mean basket
DISTANT_KM = 400
_MISSING_KEYS = ("transaction_id", "customer_id", "product_id")
_DISTRICTS = ("Maarif", "Agdal", "Gueliz", "Hay Riad", "Centre Ville", "Bourgogne", "Anfa")


@dataclass(frozen=True)
class Label:
    category: str  # fraud | dirty
    kind: str
    source: str
    partition_date: str
    record_id: str  # transaction_id / event_id, or line:<n> where the row has no usable id
    detail: str  # key=value pairs separated by ';'

    def row(self) -> list[str]:
        return [self.category, self.kind, self.source, self.partition_date, self.record_id, self.detail]


@dataclass
class Scenario:
    kind: str
    scenario_id: str
    rows: np.ndarray  # positions in the day's frame
    details: list[str]  # one per row


def _details(**values: object) -> str:
    return ";".join(f"{k}={v}" for k, v in values.items())


class _FraudDay:
    """What the scenario builders of one day share: the frame they rewrite and the rows still free."""

    def __init__(
        self,
        rng: np.random.Generator,
        day: date,
        frame: TxFrame,
        customers: Customers,
        eligible: int,
        catalogue: Catalogue,
    ):
        self.rng, self.day, self.frame = rng, day, frame
        self.customers, self.eligible, self.catalogue = customers, eligible, catalogue
        self.free = rng.permutation(len(frame))
        self.used = 0

    @cached_property
    def small_products(self) -> np.ndarray:
        return self._active(self.catalogue.price < MICRO_PRICE_LIMIT)

    @cached_property
    def large_products(self) -> np.ndarray:
        return self._active(self.catalogue.price >= LARGE_AMOUNT)

    @cached_property
    def expensive_products(self) -> np.ndarray:
        """The dearest quarter of today's catalogue."""
        prices = self.catalogue.price[self.catalogue.active]
        return self._active(self.catalogue.price >= np.quantile(prices, 0.75)) if len(prices) else prices

    def _active(self, keep: np.ndarray) -> np.ndarray:
        return np.flatnonzero(self.catalogue.active & keep)

    def take(self, count: int) -> np.ndarray | None:
        if self.used + count > len(self.free):
            return None
        rows = np.sort(self.free[self.used : self.used + count])
        self.used += count
        return rows

    def customer(self, accept: Callable[[np.ndarray], np.ndarray]) -> int | None:
        candidates = self.customers.pick(self.rng, self.eligible, 16)
        accepted = candidates[accept(candidates)]
        return int(accepted[0]) if len(accepted) else None

    def daytime(self) -> int:
        return day_start(self.day) + int(self.rng.integers(9 * 3600, 21 * 3600))

    def order(self, rows: np.ndarray, customer: int, ts: np.ndarray) -> None:
        """Make `rows` online card orders of `customer` from home, at times `ts`."""
        f, rng = self.frame, self.rng
        channel = ONLINE[int(rng.integers(0, 2))]
        f.customer[rows] = customer
        f.ts[rows] = ts
        f.channel[rows] = channel
        f.device[rows] = MOBILE if channel == ONLINE[1] else int(rng.integers(0, 2))  # desktop or mobile
        f.payment[rows] = CREDIT_CARD
        f.status[rows] = COMPLETED
        f.city[rows] = self.customers.city[customer]
        f.ip[rows, :3] = self.customers.ip[customer]
        f.ip[rows, 3] = rng.integers(1, 255)


def _velocity_burst(d: _FraudDay) -> tuple[np.ndarray, list[str]] | None:
    c = d.customer(lambda cs: np.ones(len(cs), dtype=bool))
    size = int(d.rng.integers(4, 7))
    rows = None if c is None else d.take(size)
    if rows is None:
        return None
    d.order(rows, c, d.daytime() + np.sort(d.rng.choice(60, size, replace=False)))
    return rows, [_details(customer=customer_id(c), size=size)] * size


def _amount_spike(d: _FraudDay) -> tuple[np.ndarray, list[str]] | None:
    c = d.customer(lambda cs: d.customers.purchases[cs] >= 3)
    expensive = d.expensive_products
    if c is None or not len(expensive):
        return None
    mean = d.customers.mean_basket(c)
    product = int(d.rng.choice(expensive))
    quantity = int(np.ceil(mean * SPIKE_FACTOR * d.rng.uniform(1.2, 2.5) / d.catalogue.price[product]))
    rows = d.take(1) if quantity * d.catalogue.price[product] < ABSURD_AMOUNT // 2 else None
    if rows is None:
        return None
    d.order(rows, c, np.array([d.daytime()]))
    d.frame.product[rows] = product
    d.frame.quantity[rows] = quantity
    return rows, [_details(customer=customer_id(c), customer_mean=f"{mean / 100:.2f}")]


def _small_then_large(d: _FraudDay) -> tuple[np.ndarray, list[str]] | None:
    small, large = d.small_products, d.large_products
    c = d.customer(lambda cs: np.ones(len(cs), dtype=bool))
    rows = None if c is None or not len(small) or not len(large) else d.take(2)
    if rows is None:
        return None
    start = d.daytime()
    d.order(rows, c, np.array([start, start + int(d.rng.integers(5, 60))]))
    d.frame.product[rows] = [d.rng.choice(small), d.rng.choice(large)]
    d.frame.quantity[rows] = 1
    return rows, [
        _details(customer=customer_id(c), step="small"),
        _details(customer=customer_id(c), step="large"),
    ]


def _foreign_country(d: _FraudDay) -> tuple[np.ndarray, list[str]] | None:
    c = d.customer(lambda cs: ~d.customers.foreign[cs])
    rows = None if c is None else d.take(1)
    if rows is None:
        return None
    d.order(rows, c, np.array([d.daytime()]))
    city = geo.FRAUD_CITY_CODES[int(d.rng.integers(0, len(geo.FRAUD_CITY_CODES)))]
    d.frame.city[rows] = city
    d.frame.ip[rows, :3] = geo.ip_prefixes(d.rng, np.array([city]))
    return rows, [
        _details(customer=customer_id(c), home_country=geo.MOROCCO, country=geo.CITIES[city].country)
    ]


_MOROCCAN_DISTANCES = {
    (a, b): geo.distance_km(a, b) for a in geo.MOROCCAN_CITIES.tolist() for b in geo.MOROCCAN_CITIES.tolist()
}
_FAR_CITIES = {
    a: [b for b in geo.MOROCCAN_CITIES.tolist() if _MOROCCAN_DISTANCES[a, b] >= DISTANT_KM]
    for a in geo.MOROCCAN_CITIES.tolist()
}


def _distant_cities(d: _FraudDay) -> tuple[np.ndarray, list[str]] | None:
    c = d.customer(lambda cs: ~d.customers.foreign[cs])
    home = -1 if c is None else int(d.customers.city[c])
    far = _FAR_CITIES.get(home, [])
    rows = d.take(2) if far else None
    if rows is None:
        return None
    other = far[int(d.rng.integers(0, len(far)))]
    start = d.daytime()
    d.order(rows, c, np.array([start, start + int(d.rng.integers(120, 900))]))
    d.frame.city[rows[1]] = other
    d.frame.ip[rows[1], :3] = geo.ip_prefixes(d.rng, np.array([other]))[0]
    detail = _details(
        customer=customer_id(c),
        cities=f"{geo.CITY_NAMES[home]}/{geo.CITY_NAMES[other]}",
        distance_km=round(_MOROCCAN_DISTANCES[home, other]),
    )
    return rows, [detail, detail]


def _night_time(d: _FraudDay) -> tuple[np.ndarray, list[str]] | None:
    c = d.customer(lambda cs: ~d.customers.night_owl[cs] & (d.customers.purchases[cs] >= 1))
    rows = None if c is None else d.take(1)
    if rows is None:
        return None
    d.order(rows, c, np.array([day_start(d.day) + int(d.rng.integers(3600, 5 * 3600))]))
    return rows, [_details(customer=customer_id(c))]


_BUILDERS = {
    "velocity_burst": _velocity_burst,
    "amount_spike": _amount_spike,
    "small_then_large": _small_then_large,
    "foreign_country": _foreign_country,
    "distant_cities": _distant_cities,
    "night_time": _night_time,
}


def inject_fraud(
    rng: np.random.Generator,
    day: date,
    frame: TxFrame,
    rate: float,
    customers: Customers,
    eligible: int,
    catalogue: Catalogue,
) -> list[Scenario]:
    """Rewrite some of the day's ordinary orders into fraud scenarios (before pricing)."""
    d = _FraudDay(rng, day, frame, customers, eligible, catalogue)
    scenarios = []
    for kind in FRAUD_KINDS:
        for _ in range(rng.poisson(rate * len(frame))):
            built = _BUILDERS[kind](d)
            if built is not None:
                scenario_id = f"{kind}-{day:%Y%m%d}-{len(scenarios) + 1}"
                scenarios.append(Scenario(kind, scenario_id, *built))
    return scenarios


def fraud_labels(scenarios: list[Scenario], frame: TxFrame, day: date) -> list[Label]:
    """One label per transaction of every scenario (scenario rows index `frame`, already numbered)."""
    return [
        Label(
            "fraud",
            s.kind,
            "transactions",
            day.isoformat(),
            transaction_id(int(frame.number[row])),
            f"scenario={s.scenario_id};{detail}",
        )
        for s in scenarios
        for row, detail in zip(s.rows.tolist(), s.details, strict=True)
    ]


class ResendPool:
    """Clean rows of the last few days that the upstream system may send again in a later drop."""

    def __init__(self, keep_days: int = 7):
        self.keep_days = keep_days
        self.frame: TxFrame | None = None
        self.sent_on = np.empty(0, dtype=np.int64)

    def add(
        self, rng: np.random.Generator, day: date, frame: TxFrame, candidates: np.ndarray, count: int
    ) -> None:
        picked = frame.take(rng.choice(candidates, min(count, len(candidates)), replace=False))
        today = day.toordinal()
        keep = self.sent_on > today - self.keep_days
        self.frame = picked if self.frame is None else TxFrame.concat([self.frame.take(keep), picked])
        self.sent_on = np.concatenate([self.sent_on[keep], np.full(len(picked), today)])

    def take(self, rng: np.random.Generator, count: int) -> tuple[TxFrame, np.ndarray] | None:
        if self.frame is None or not count:
            return None
        chosen = rng.choice(len(self.sent_on), min(count, len(self.sent_on)), replace=False)
        taken = (self.frame.take(chosen), self.sent_on[chosen])
        keep = np.ones(len(self.sent_on), dtype=bool)
        keep[chosen] = False
        self.frame, self.sent_on = self.frame.take(keep), self.sent_on[keep]
        return taken


@dataclass
class TransactionDrop:
    rows: Rows  # the lines of the day's file, dirty ones included
    mutated: np.ndarray  # base rows that were corrupted in place
    labels: list[Label]


def dirty_transactions(
    rng: np.random.Generator,
    day: date,
    frame: TxFrame,
    fraud: np.ndarray,
    rate: float,
    pool: ResendPool,
    customers: Customers,
    catalogue: Catalogue,
    with_coupon: bool,
    path: str,
) -> TransactionDrop:
    """Lay out the day's file: `frame` (sorted, numbered orders) plus repeated rows, with some rows broken.

    Fraud rows (`fraud`) are never touched: they must stay valid sales.
    """
    n = len(frame)
    candidates = rng.permutation(np.flatnonzero(~fraud))
    counts = dict(
        zip(
            TRANSACTION_DIRTY_KINDS, rng.poisson(rate * n, len(TRANSACTION_DIRTY_KINDS)).tolist(), strict=True
        )
    )
    chosen: dict[str, np.ndarray] = {}
    used = 0
    for kind in TRANSACTION_DIRTY_KINDS:
        if kind != "duplicate_id_next_day":
            chosen[kind] = np.sort(candidates[used : used + counts[kind]])
            used += len(chosen[kind])
    resent = pool.take(rng, counts["duplicate_id_next_day"])

    # Repeats land a little after their original; resent rows anywhere in the file.
    repeated = chosen.pop("duplicate_id_same_day")
    parts, keys = (
        [frame, frame.take(repeated)],
        [np.arange(n), repeated + rng.uniform(0.5, 30, len(repeated))],
    )
    if resent is not None:
        parts.append(resent[0])
        keys.append(rng.uniform(-0.5, n, len(resent[0])))
    order = np.argsort(np.concatenate(keys), kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    rows = transaction_rows(TxFrame.concat(parts).take(order), with_coupon)
    numbers = np.concatenate([p.number for p in parts])
    labels: list[Label] = []

    def line(row: int) -> int:  # `row` indexes the concatenated parts
        return int(position[row]) + 2

    def add(kind: str, row: int, record: str | None = None, **detail: object) -> None:
        labels.append(
            Label(
                "dirty",
                kind,
                "transactions",
                day.isoformat(),
                record or transaction_id(int(numbers[row])),
                _details(file=path, line=line(row), **detail),
            )
        )

    for copy, original in enumerate(repeated.tolist()):
        add("duplicate_id_same_day", n + copy, first_line=line(original))
    if resent is not None:
        for copy, sent_on in enumerate(resent[1].tolist()):
            add(
                "duplicate_id_next_day",
                n + len(repeated) + copy,
                original_date=date.fromordinal(sent_on).isoformat(),
            )

    which = rng.integers(0, len(_MISSING_KEYS), len(chosen["missing_key"]))
    for key_index, key in enumerate(_MISSING_KEYS):
        at = chosen["missing_key"][which == key_index]
        rows.set(COLUMNS.index(key), position[at], [""] * len(at))
        for row in at.tolist():
            add("missing_key", row, f"line:{line(row)}" if key == "transaction_id" else None, field=key)

    values = {
        "zero_amount": ["0.00"] * len(chosen["zero_amount"]),
        "negative_amount": [cents_text(-int(frame.total_amount[r])) for r in chosen["negative_amount"]],
        "absurd_amount": [
            cents_text(int(v))
            for v in rng.integers(ABSURD_AMOUNT + 100, 10 * ABSURD_AMOUNT, len(chosen["absurd_amount"]))
        ],
        "malformed_timestamp": [
            _malformed(int(frame.ts[r]), int(v))
            for r, v in zip(
                chosen["malformed_timestamp"],
                rng.integers(0, 5, len(chosen["malformed_timestamp"])),
                strict=True,
            )
        ],
        "unknown_customer": [
            customer_id(customers.count + int(k))
            for k in rng.integers(0, 1_000_000, len(chosen["unknown_customer"]))
        ],
        "unknown_product": [
            product_id(catalogue.count + int(k))
            for k in rng.integers(0, 100_000, len(chosen["unknown_product"]))
        ],
    }
    columns = {
        "zero_amount": "total_amount",
        "negative_amount": "total_amount",
        "absurd_amount": "total_amount",
        "malformed_timestamp": "transaction_ts",
        "unknown_customer": "customer_id",
        "unknown_product": "product_id",
    }
    for kind, column in columns.items():
        rows.set(COLUMNS.index(column), position[chosen[kind]], values[kind])
        for row, value in zip(chosen[kind].tolist(), values[kind], strict=True):
            # Broken timestamps may hold spaces and commas, so the detail does not repeat them.
            add(kind, row, **({} if kind == "malformed_timestamp" else {column: value}))

    fields = len(COLUMNS) + with_coupon
    short = chosen["too_few_fields"]
    cut = rng.integers(1, 4, len(short))
    for k in (1, 2, 3):
        rows.drop(range(fields - k, fields), position[short[cut == k]])
    for row, k in zip(short.tolist(), cut.tolist(), strict=True):
        add("too_few_fields", row, fields=fields - k, expected=fields)

    # An address with an unquoted comma: the district spills into one or two extra fields.
    long = chosen["too_many_fields"]
    spill = rng.integers(1, 3, len(long))
    rows.set(
        COLUMNS.index("city"),
        position[long],
        [
            ",".join([geo.CITY_NAMES[frame.city[r]], *_DISTRICTS[:k]])
            for r, k in zip(long, spill, strict=True)
        ],
    )
    for row, k in zip(long.tolist(), spill.tolist(), strict=True):
        add("too_many_fields", row, fields=fields + k, expected=fields)

    mutated = np.zeros(n, dtype=bool)
    for at in chosen.values():
        mutated[at] = True
    return TransactionDrop(rows, mutated, labels)


def _malformed(ts: int, variant: int) -> str:
    stamp = str(np.datetime64(ts, "s"))
    y, m, d = stamp[:10].split("-")
    return (
        f"{y}-13-45 25:61:00",
        "not-a-date",
        f"{d}/{m}/{y} {stamp[11:13]}h{stamp[14:16]}",
        f"{stamp[:10]}T99:99:99Z",
        "0000-00-00 00:00:00",
    )[variant]


def dirty_events(rng: np.random.Generator, day: date, rows: Rows, rate: float, path: str) -> list[Label]:
    """Drop the event_id of some of the day's event lines and cut others short."""
    candidates = rng.permutation(rows.count)
    counts = rng.poisson(rate * rows.count, 2)
    missing = np.sort(candidates[: counts[0]])
    truncated = np.sort(candidates[len(missing) : len(missing) + counts[1]])
    rows.drop([EVENT_ID_CELL], missing)
    lines = rows.lines(truncated)
    kept = [int(rng.integers(len(line) // 4, 3 * len(line) // 4)) for line in lines]
    rows.replace_lines(truncated, [line[:k] for line, k in zip(lines, kept, strict=True)])
    labels = [
        Label(
            "dirty",
            "missing_key",
            "web_events",
            day.isoformat(),
            f"line:{r + 1}",
            _details(file=path, line=r + 1, field="event_id"),
        )
        for r in missing.tolist()
    ]
    labels += [
        Label(
            "dirty",
            "truncated_json",
            "web_events",
            day.isoformat(),
            f"line:{r + 1}",
            _details(file=path, line=r + 1, kept_bytes=k),
        )
        for r, k in zip(truncated.tolist(), kept, strict=True)
    ]
    return labels
