"""Sales transactions: the day's orders drawn from customers and the catalogue, and their CSV layout."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

import numpy as np

from techmart_assets.generator import geo, seasonality
from techmart_assets.generator.catalogue import QUANTITY_PROBS, Catalogue
from techmart_assets.generator.customers import Customers
from techmart_assets.generator.draws import categorical
from techmart_assets.generator.render import Rows, iso_ts, money, plain_int, table, zero_padded
from techmart_assets.sources import TRANSACTIONS

COLUMNS = TRANSACTIONS.columns
COUPON_COLUMN = "coupon_code"
CHANNELS = ("web", "mobile_app", "marketplace", "store")
DEVICES = ("desktop", "mobile", "tablet")
PAYMENTS = ("credit_card", "debit_card", "cash_on_delivery", "paypal", "bank_transfer", "mobile_wallet")
STATUSES = ("completed", "pending", "cancelled", "refunded")
COUPONS = ("", "BLACKFRIDAY10", "CYBER15", "RAMADAN15", "WELCOME10", "TECHMART5", "SUMMER5", "NEWYEAR10")
CURRENCY = "MAD"
ONLINE = (CHANNELS.index("web"), CHANNELS.index("mobile_app"))
CREDIT_CARD = PAYMENTS.index("credit_card")
MOBILE = DEVICES.index("mobile")
COMPLETED = STATUSES.index("completed")

# P(channel) for customers living in Morocco (row 0) and abroad (row 1), who cannot walk into a store.
CHANNEL_PROBS = np.array([[0.42, 0.36, 0.12, 0.10], [0.55, 0.35, 0.10, 0.0]])
# P(device) per channel. A store sale is keyed in on the till's desktop or a tablet.
DEVICE_PROBS = np.array([[0.55, 0.35, 0.10], [0.0, 0.88, 0.12], [0.40, 0.55, 0.05], [0.80, 0.0, 0.20]])
# P(payment) per channel, rows 4-7 for customers abroad. Cash on delivery is how Morocco pays online.
_ABROAD_PAYMENTS = [0.45, 0.20, 0.0, 0.25, 0.05, 0.05]
PAYMENT_PROBS = np.array(
    [
        [0.24, 0.18, 0.30, 0.06, 0.10, 0.12],
        [0.22, 0.18, 0.25, 0.05, 0.05, 0.25],
        [0.20, 0.15, 0.45, 0.05, 0.05, 0.10],
        [0.45, 0.35, 0.0, 0.0, 0.0, 0.20],
        _ABROAD_PAYMENTS,
        _ABROAD_PAYMENTS,
        _ABROAD_PAYMENTS,
        _ABROAD_PAYMENTS,
    ]
)
# P(status) per payment method: cash-on-delivery orders get refused at the door more often.
STATUS_PROBS = np.array(
    [
        [0.90, 0.03, 0.04, 0.03],
        [0.90, 0.03, 0.04, 0.03],
        [0.80, 0.06, 0.11, 0.03],
        [0.90, 0.03, 0.04, 0.03],
        [0.84, 0.10, 0.04, 0.02],
        [0.90, 0.03, 0.04, 0.03],
    ]
)

_EPOCH = date(1970, 1, 1)


@dataclass
class TxFrame:
    """A batch of transactions, one numpy array per attribute (money in cents, times in epoch seconds)."""

    number: np.ndarray
    customer: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    total_amount: np.ndarray
    payment: np.ndarray
    status: np.ndarray
    channel: np.ndarray
    device: np.ndarray
    city: np.ndarray
    ip: np.ndarray  # (n, 4) octets
    ts: np.ndarray
    coupon: np.ndarray

    def __len__(self) -> int:
        return len(self.number)

    def take(self, index: np.ndarray) -> TxFrame:
        return TxFrame(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, frames: list[TxFrame]) -> TxFrame:
        return cls(**{f.name: np.concatenate([getattr(x, f.name) for x in frames]) for f in fields(cls)})


def day_start(day: date) -> int:
    """`day` at midnight UTC, in epoch seconds."""
    return (day - _EPOCH).days * 86400


def draw_day(
    rng: np.random.Generator,
    day: date,
    count: int,
    customers: Customers,
    eligible: int,
    catalogue: Catalogue,
    demand: np.ndarray,
) -> TxFrame:
    """`count` ordinary orders placed on `day` (not yet numbered, priced or sorted)."""
    customer = customers.pick(rng, eligible, count)
    product = catalogue.pick(rng, demand, count)
    abroad = customers.foreign[customer].astype(np.int64)
    channel = categorical(rng, CHANNEL_PROBS, abroad)
    hour = categorical(rng, seasonality.hour_weights(day), customers.night_owl[customer].astype(np.int64))
    codes, share = seasonality.coupons(day)
    coupon_codes = np.array([COUPONS.index(c) for c in codes])
    coupon = np.where(rng.random(count) < share, coupon_codes[rng.integers(0, len(codes), count)], 0)
    payment = categorical(rng, PAYMENT_PROBS, channel + 4 * abroad)
    return TxFrame(
        number=np.zeros(count, dtype=np.int64),
        customer=customer,
        product=product,
        quantity=1 + categorical(rng, QUANTITY_PROBS, catalogue.category[product]),
        unit_price=np.zeros(count, dtype=np.int64),
        total_amount=np.zeros(count, dtype=np.int64),
        payment=payment,
        status=categorical(rng, STATUS_PROBS, payment),
        channel=channel,
        device=categorical(rng, DEVICE_PROBS, channel),
        city=customers.city[customer],
        ip=np.column_stack([customers.ip[customer], rng.integers(1, 255, count)]).astype(np.uint8),
        ts=day_start(day) + hour * 3600 + rng.integers(0, 3600, count),
        coupon=coupon,
    )


def settle(frame: TxFrame, catalogue: Catalogue) -> None:
    """Price every order at its product's price of the day."""
    frame.unit_price = catalogue.price[frame.product]
    frame.total_amount = frame.quantity * frame.unit_price


_TABLES = {
    "payment": table(PAYMENTS),
    "status": table(STATUSES),
    "channel": table(CHANNELS),
    "device": table(DEVICES),
    "city": table(geo.CITY_NAMES),
    "country": table(geo.COUNTRIES),
    "coupon": table(COUPONS),
    "octet": table([str(i) for i in range(256)]),
}


def header(with_coupon: bool) -> bytes:
    return ",".join(COLUMNS + ((COUPON_COLUMN,) if with_coupon else ())).encode() + b"\n"


def rows(frame: TxFrame, with_coupon: bool) -> Rows:
    """The CSV lines of `frame`, one cell per column of `header(with_coupon)`."""
    t = _TABLES
    octet = t["octet"][frame.ip]
    cells = {
        "transaction_id": [b"TX", *zero_padded(frame.number, 10)],
        "customer_id": [b"C", *zero_padded(frame.customer + 1, 7)],
        "product_id": [b"P", *zero_padded(frame.product + 1, 6)],
        "quantity": plain_int(frame.quantity),
        "unit_price": money(frame.unit_price),
        "total_amount": money(frame.total_amount),
        "currency": [CURRENCY.encode()],
        "payment_method": [t["payment"][frame.payment]],
        "status": [t["status"][frame.status]],
        "transaction_ts": iso_ts(frame.ts),
        "channel": [t["channel"][frame.channel]],
        "device": [t["device"][frame.device]],
        "city": [t["city"][frame.city]],
        "country": [t["country"][geo.CITY_COUNTRY[frame.city]]],
        "ip_address": [octet[:, 0], b".", octet[:, 1], b".", octet[:, 2], b".", octet[:, 3]],
    }
    ordered = [cells[c] for c in COLUMNS] + ([[t["coupon"][frame.coupon]]] if with_coupon else [])
    return Rows(len(frame), ordered, sep=b",")


def transaction_id(number: int) -> str:
    return f"TX{number:010d}"
