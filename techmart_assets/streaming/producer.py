"""`techmart stream`: live transactions on the `transactions` topic, with labelled fraud scenarios, and
the clickstream around them on the `web-events` topic.

The traffic is the data generator's: one generated day of sales (with its fraud scenarios: velocity
bursts, amount spikes, small-then-large, foreign country, distant cities, night time, and no dirty
rows), sent in the generated order at `--rate` messages per second for `--duration` seconds. What
was injected is written to a labels file (the generator's `labels.csv` columns) for scoring
detectors.

A live sale is a new sale:
- Its `transaction_id` is minted for the stream (`TXL`, the plan's UTC time to the second, a
  sequence number), so it never repeats an id of the drop files. A streamed id that does collide
  with an earlier one (another producer's, a replay) is a duplicate: silver quarantines it with
  the day the id was first received, and the reconciliation counts it.
- Its `transaction_ts` is the time it is sent (UTC, milliseconds), so the live per-minute sales and
  the daily build see it when it happened. A day of sales is thus sent in minutes; so that the
  clean part still looks like real customers, each clean sale is made by the next customer of a
  rotation over the customer base (the scenarios' customers left out), in their home city and
  country. Given the customers' history (`read_history`: their completed purchases in silver), a
  clean sale is a repeat of one of that customer's earlier purchases (their usual basket). The
  scenarios keep their customers, order and amounts: a burst is several purchases within a second
  or two of real time. (One generated day has no customer history, so it holds no `amount_spike`
  or `night_time` scenario.) Sent in the rules' night hours (01:00-05:00 UTC), the clean traffic
  is a day's rate of sales by customers who mostly buy by day, so `unusual_hour` fires on it: a
  real shop's night is quieter and its night buyers are the ones who buy at night.

With web events (`web_events_per_sale` > 0, `--web-rate` of `techmart stream`), the plan also holds
the generated day's web sessions (views, searches, carts, sometimes a checkout and a purchase),
sampled to about that many events per sale and sent between the sales in the generated order:
- A session that ends in a purchase is the session of one of the sales sent: its customer, and the
  product it views last, carts and buys, are that sale's (after the rotation and the repeat above),
  and its purchase event is sent just before the sale.
- Browsing sessions keep their generated visitor (a customer, or none: an anonymous visitor).
- `event_id` and `session_id` are minted for the stream (`EVL`/`SEL`, the plan's time, a number).
- `event_ts` is the time the event is sent, as `transaction_ts` is.

Transaction message format (one JSON object per message, UTF-8, key = customer_id):
    transaction_id, customer_id, product_id: strings
    quantity: integer; unit_price, total_amount: numbers (MAD, two decimals)
    currency ("MAD"), payment_method, status, channel, device, city, country, ip_address: strings
    transaction_ts: the event time, ISO-8601 with an offset ("2026-12-02T14:03:27.120Z"; see
    `techmart_assets.timestamps` for every form accepted)

Web event message format (one JSON object per message, UTF-8, key = customer_id, else session_id):
    event_id, session_id, event_type (page_view, product_view, search, add_to_cart, checkout,
    purchase), page_url, referrer, device: strings
    customer_id, product_id: strings, or null (an anonymous visitor; an event of no product)
    event_ts: as transaction_ts
"""

from __future__ import annotations

import bisect
import csv
import json
import logging
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import confluent_kafka

from techmart_assets.generator import GeneratorConfig, generate
from techmart_assets.generator.writer import LABELS_FILE
from techmart_assets.sources import TRANSACTIONS, WEB_EVENTS
from techmart_assets.streaming.broker import (
    TRANSACTIONS_TOPIC,
    WEB_EVENTS_TOPIC,
    BrokerError,
    compact_json,
    iso_utc,
    new_producer,
    produce,
)

log = logging.getLogger(__name__)
INTEGERS = ("quantity",)
NUMBERS = ("unit_price", "total_amount")
PLAN_DAY = date(2025, 6, 30)  # any ordinary day: its sales are sent as live ones
LIVE_ID_PREFIX = "TXL"
LIVE_EVENT_PREFIX, LIVE_SESSION_PREFIX = "EVL", "SEL"
PURCHASE = "purchase"
GENERATED_SESSIONS_PER_SALE = 2.0  # the generator's default: sampled down to the events asked for
LABEL_HEADER = ["category", "kind", "source", "partition_date", "record_id", "detail"]


@dataclass
class StreamPlan:
    messages: list[dict[str, object]]
    labels: list[dict[str, str]]  # the fraud scenarios among the messages
    web_events: list[dict[str, object]] = field(default_factory=list)
    # Where each web event goes among the messages: at i, with the i-th sale; between two sales, a
    # fraction (its generated time between theirs).
    web_positions: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Purchase:
    """One earlier completed purchase of a customer: what a repeat of it sends."""

    product_id: str
    quantity: int
    unit_price: float
    total_amount: float


History = Mapping[str, Sequence[Purchase]]  # customer_id -> earlier completed purchases


def read_history(silver_transactions: str) -> dict[str, list[Purchase]]:
    """Each customer's completed purchases in silver's transactions table, read with `deltalake` (no
    Spark); empty when the table does not exist yet (a lakehouse not built)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(silver_transactions)
    except TableNotFoundError:
        return {}
    columns = ["customer_id", "product_id", "quantity", "unit_price", "total_amount"]
    rows = table.to_pyarrow_table(columns=columns, filters=[("status", "=", "completed")])
    history: dict[str, list[Purchase]] = {}
    for customer, product, quantity, unit_price, amount in zip(
        *(rows[c].to_pylist() for c in columns), strict=True
    ):
        history.setdefault(customer, []).append(
            Purchase(product, int(quantity), float(unit_price), float(amount))
        )
    return history


@dataclass
class StreamResult:
    sent: int = 0  # transactions
    failed: int = 0  # any message
    errors: list[str] = field(default_factory=list)
    web_sent: int = 0


def to_message(row: dict[str, str], transaction_id: str) -> dict[str, object]:
    """A CSV row of the generator as a message: typed values, a minted id. Its `transaction_ts` is
    the generated time until `send` stamps the time of sending."""
    message: dict[str, object] = {column: row[column] for column in TRANSACTIONS.columns}
    for column in INTEGERS:
        message[column] = int(row[column])
    for column in NUMBERS:
        message[column] = round(float(row[column]), 2)
    message["transaction_id"] = transaction_id
    return message


def _read_csv(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows.extend(csv.DictReader(f))
    return rows


def plan(
    count: int,
    *,
    seed: int = GeneratorConfig.seed,  # the reference data set's: its customers and products
    fraud_rate: float = 0.002,
    customers: int = GeneratorConfig.customers,
    products: int = GeneratorConfig.products,
    now: datetime | None = None,
    history: History | None = None,
    web_events_per_sale: float = 0.0,
) -> StreamPlan:
    """`count` generated sales of one day, in generated order, with ids minted at `now` (UTC). With
    the customers' `history`, each clean sale repeats one of its customer's earlier purchases. With
    `web_events_per_sale`, about that many web events per sale around them (see the module's doc)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    day = PLAN_DAY
    config = GeneratorConfig(
        seed=seed,
        start=day,
        end=day,
        customers=customers,
        products=products,
        transactions=count,
        sessions_per_transaction=GENERATED_SESSIONS_PER_SALE if web_events_per_sale > 0 else 0,
        fraud_rate=fraud_rate,
        dirty_rate=0,
        web_dirty_rate=0,
    )
    with tempfile.TemporaryDirectory(prefix="techmart-stream-") as tmp:
        generate(config, tmp)
        rows = _read_csv(Path(tmp) / "transactions" / str(day))
        homes = {
            c["customer_id"]: (c["city"], c["country"]) for c in _read_csv(Path(tmp) / "customers" / str(day))
        }
        with open(Path(tmp) / LABELS_FILE, newline="", encoding="utf-8") as f:
            labels = [r for r in csv.DictReader(f) if r["category"] == "fraud"]
        events = _read_jsonl(Path(tmp) / "web_events" / str(day)) if web_events_per_sale > 0 else []
    rows.sort(key=lambda r: (r["transaction_ts"], r["transaction_id"]))
    scenario_ids = {label["record_id"] for label in labels}
    in_scenarios = {r["customer_id"] for r in rows if r["transaction_id"] in scenario_ids}
    rotation = sorted(c for c in homes if c not in in_scenarios)
    rng = random.Random(seed)
    rng.shuffle(rotation)
    history = history or {}
    token = now.strftime("%y%m%d%H%M%S")
    minted: dict[str, str] = {}
    messages = []
    for i, row in enumerate(rows):
        message = to_message(row, f"{LIVE_ID_PREFIX}{token}{i:06d}")
        minted[row["transaction_id"]] = str(message["transaction_id"])
        if row["transaction_id"] not in scenario_ids and rotation:
            customer = rotation[len(messages) % len(rotation)]
            message["customer_id"] = customer
            message["city"], message["country"] = homes[customer]
            if history.get(customer):
                repeat(message, rng.choice(history[customer]))
        messages.append(message)
    labels = [{**label, "record_id": minted[label["record_id"]]} for label in labels]
    web_events, positions = web_sessions(rows, messages, events, web_events_per_sale, rng, token)
    return StreamPlan(messages=messages, labels=labels, web_events=web_events, web_positions=positions)


def _read_jsonl(folder: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def web_sessions(
    rows: Sequence[Mapping[str, str]],
    messages: Sequence[Mapping[str, object]],
    events: Sequence[dict[str, object]],
    per_sale: float,
    rng: random.Random,
    token: str,
) -> tuple[list[dict[str, object]], list[float]]:
    """The generated day's web `events`, sessions sampled to about `per_sale` events per sale, made to
    agree with the sales as sent (`messages`, from the generated `rows`, in the same order); each
    with its position among the messages. A purchase session whose sale is not among them (another
    day's, or fewer sales than generated) is left out whole."""
    if not events or not rows:
        return [], []
    sale_at: dict[tuple[object, object, object], list[int]] = {}
    for i, row in enumerate(rows):
        sale_at.setdefault((row["customer_id"], row["product_id"], row["transaction_ts"]), []).append(i)
    sessions: dict[object, list[dict[str, object]]] = {}
    for event in sorted(events, key=lambda e: (str(e["event_ts"]), str(e["event_id"]))):
        sessions.setdefault(event["session_id"], []).append(event)
    keep = min(1.0, per_sale * len(rows) / len(events))
    times = [_seconds(row["transaction_ts"]) for row in rows]
    planned: list[tuple[float, dict[str, object]]] = []
    for number, session in enumerate(sessions.values()):
        if rng.random() >= keep:
            continue
        bought = [e for e in session if e["event_type"] == PURCHASE]
        sale = None
        if bought:
            key = (bought[-1]["customer_id"], bought[-1]["product_id"], bought[-1]["event_ts"])
            if not sale_at.get(key):
                continue
            sale = sale_at[key].pop(0)
            session = as_sale(session, rows[sale], messages[sale])
        session_id = f"{LIVE_SESSION_PREFIX}{token}{number:06d}"
        for event in session:
            at = _seconds(str(event["event_ts"]))
            index = bisect.bisect_left(times, at)
            position = float(index) if index == 0 or index == len(times) else _between(times, index, at)
            if sale is not None and event["event_type"] == PURCHASE:
                position = float(sale)  # with its sale, among sales of the same second
            planned.append((position, {**event, "session_id": session_id}))
    planned.sort(key=lambda p: p[0])
    web_events = [
        {**event, "event_id": f"{LIVE_EVENT_PREFIX}{token}{n:07d}"} for n, (_, event) in enumerate(planned)
    ]
    return web_events, [position for position, _ in planned]


def _between(times: Sequence[float], index: int, at: float) -> float:
    """Where `at` falls between the sales `index - 1` and `index` (their generated times), as a fraction."""
    before, after = times[index - 1], times[index]
    return index - 1 + (1.0 if after == before else (at - before) / (after - before))


def as_sale(
    session: Sequence[dict[str, object]], row: Mapping[str, str], message: Mapping[str, object]
) -> list[dict[str, object]]:
    """A purchase session made the session of the sale as sent: the generated sale's customer and
    product (in its events, pages and referrers) become the sent message's."""
    product, sent_product = row["product_id"], message["product_id"]
    pages = {f"/product/{product}": f"/product/{sent_product}"}
    changed = []
    for event in session:
        event = {**event, "customer_id": message["customer_id"]}
        if event["product_id"] == product:
            event["product_id"] = sent_product
        for column in ("page_url", "referrer"):
            event[column] = pages.get(str(event[column]), event[column])
        changed.append(event)
    return changed


def repeat(message: dict[str, object], purchase: Purchase) -> None:
    """Make a clean sale a repeat of an earlier purchase: its product, quantity and amounts."""
    message["product_id"] = purchase.product_id
    message["quantity"] = purchase.quantity
    message["unit_price"] = round(purchase.unit_price, 2)
    message["total_amount"] = round(purchase.total_amount, 2)


def schedule(plan_: StreamPlan) -> list[tuple[float, str, dict[str, object]]]:
    """Every message of the plan as (position, topic, message), in sending order: the i-th sale at
    i, each web event at its position (a purchase event before its sale)."""
    sales = [(float(i), 1, TRANSACTIONS_TOPIC, m) for i, m in enumerate(plan_.messages)]
    events = [(p, 0, WEB_EVENTS_TOPIC, e) for p, e in zip(plan_.web_positions, plan_.web_events, strict=True)]
    return [(p, topic, m) for p, _, topic, m in sorted([*sales, *events], key=lambda s: (s[0], s[1]))]


EVENT_TIME = {TRANSACTIONS_TOPIC: TRANSACTIONS.event_time, WEB_EVENTS_TOPIC: WEB_EVENTS.event_time}


def message_key(message: Mapping[str, object]) -> object:
    """A customer's messages share a partition; an anonymous visitor's, their session's."""
    return message.get("customer_id") or message.get("session_id")


def send(
    plan_: StreamPlan,
    bootstrap: str,
    rate: float,
    topic: str = TRANSACTIONS_TOPIC,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    web_topic: str = WEB_EVENTS_TOPIC,
) -> StreamResult:
    """Send the plan's sales at `rate` per second, its web events between them (see `schedule`),
    each stamped with `clock()` as it is sent; every failed send is counted and reported."""
    result = StreamResult()
    topics = {TRANSACTIONS_TOPIC: topic, WEB_EVENTS_TOPIC: web_topic}

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            result.failed += 1
            if len(result.errors) < 5:
                result.errors.append(str(error))

    producer = new_producer(bootstrap, **{"message.send.max.retries": 5})
    try:
        producer.list_topics(timeout=10)
    except confluent_kafka.KafkaException as error:
        raise BrokerError(
            f"no Kafka broker answers at {bootstrap} ({error}): start one with `techmart kafka start`, "
            "or set TECHMART_KAFKA_BOOTSTRAP"
        ) from error
    planned = schedule(plan_)
    started = time.perf_counter()
    last_report = started
    for position, kind, message in planned:
        due = started + position / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        stamped = {**message, EVENT_TIME[kind]: iso_utc(clock())}
        produce(producer, topics[kind], message_key(message), compact_json(stamped), delivered)
        if kind == TRANSACTIONS_TOPIC:
            result.sent += 1
        else:
            result.web_sent += 1
        if time.perf_counter() - last_report >= 5:
            last_report = time.perf_counter()
            log.info(
                "sent %d of %d transactions and %d of %d web events (%d failed)",
                result.sent,
                len(plan_.messages),
                result.web_sent,
                len(plan_.web_events),
                result.failed,
            )
    unsent = producer.flush(60)
    if unsent:
        result.failed += unsent
        result.errors.append(f"{unsent} messages still unsent after 60 s")
    return result


def write_labels(labels: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, LABEL_HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(labels)
    return path
