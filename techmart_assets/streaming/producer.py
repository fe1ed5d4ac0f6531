"""`techmart stream`: live transactions on the `transactions` topic, with labelled fraud scenarios.

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

Message format (one JSON object per message, UTF-8, key = customer_id):
    transaction_id, customer_id, product_id: strings
    quantity: integer; unit_price, total_amount: numbers (MAD, two decimals)
    currency ("MAD"), payment_method, status, channel, device, city, country, ip_address: strings
    transaction_ts: the event time, ISO-8601 with an offset ("2026-12-02T14:03:27.120Z"; see
    `techmart_assets.timestamps` for every form accepted)
"""

from __future__ import annotations

import csv
import logging
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError

from techmart_assets.generator import GeneratorConfig, generate
from techmart_assets.generator.writer import LABELS_FILE
from techmart_assets.sources import TRANSACTIONS
from techmart_assets.streaming.broker import KEY_SERIALIZER, TRANSACTIONS_TOPIC, BrokerError, CompactJson

log = logging.getLogger(__name__)
INTEGERS = ("quantity",)
NUMBERS = ("unit_price", "total_amount")
PLAN_DAY = date(2025, 6, 30)  # any ordinary day: its sales are sent as live ones
LIVE_ID_PREFIX = "TXL"
LABEL_HEADER = ["category", "kind", "source", "partition_date", "record_id", "detail"]


@dataclass
class StreamPlan:
    messages: list[dict[str, object]]
    labels: list[dict[str, str]]  # the fraud scenarios among the messages


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
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


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


def stamp(when: datetime) -> str:
    """A time as the producer writes it: UTC, milliseconds, `Z` (JavaScript's `toISOString()`)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
) -> StreamPlan:
    """`count` generated sales of one day, in generated order, with ids minted at `now` (UTC). With
    the customers' `history`, each clean sale repeats one of its customer's earlier purchases."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    day = PLAN_DAY
    config = GeneratorConfig(
        seed=seed,
        start=day,
        end=day,
        customers=customers,
        products=products,
        transactions=count,
        sessions_per_transaction=0,
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
    return StreamPlan(messages=messages, labels=labels)


def repeat(message: dict[str, object], purchase: Purchase) -> None:
    """Make a clean sale a repeat of an earlier purchase: its product, quantity and amounts."""
    message["product_id"] = purchase.product_id
    message["quantity"] = purchase.quantity
    message["unit_price"] = round(purchase.unit_price, 2)
    message["total_amount"] = round(purchase.total_amount, 2)


def send(
    plan_: StreamPlan,
    bootstrap: str,
    rate: float,
    topic: str = TRANSACTIONS_TOPIC,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> StreamResult:
    """Send the plan's messages at `rate` per second, each stamped with `clock()` as it is sent;
    every failed send is counted and reported."""
    result = StreamResult()

    def failed(error: Exception) -> None:
        result.failed += 1
        if len(result.errors) < 5:
            result.errors.append(repr(error))

    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            retries=5,
            key_serializer=KEY_SERIALIZER,
            value_serializer=CompactJson(),
        )
    except KafkaError as error:
        raise BrokerError(
            f"no Kafka broker answers at {bootstrap} ({error}): start one with `techmart kafka start`, "
            "or set TECHMART_KAFKA_BOOTSTRAP"
        ) from error
    started = time.perf_counter()
    last_report = started
    try:
        for i, message in enumerate(plan_.messages):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            stamped = {**message, "transaction_ts": stamp(clock())}
            producer.send(topic, key=message["customer_id"], value=stamped).add_errback(failed)
            result.sent += 1
            if time.perf_counter() - last_report >= 5:
                last_report = time.perf_counter()
                log.info(
                    "sent %d of %d messages (%d failed)", result.sent, len(plan_.messages), result.failed
                )
        producer.flush(timeout=60)
    except KafkaError as error:
        failed(error)
    finally:
        producer.close(timeout=10)
    return result


def write_labels(labels: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, LABEL_HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(labels)
    return path
