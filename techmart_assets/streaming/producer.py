"""`techmart stream`: live transactions on the `transactions` topic, with labelled fraud scenarios.

The traffic is the data generator's: one generated day of sales (with its fraud scenarios: velocity
bursts, amount spikes, small-then-large, foreign country, distant cities, night time, and no dirty
rows), sent in event-time order at `--rate` messages per second for `--duration` seconds. The
generated day is moved to today by whole days, so event times keep their spacing and their hour of
day, and rules over event time (a minute, a customer's usual hour) see what the generator meant.
What was injected is written to a labels file (the generator's `labels.csv` columns) for scoring
detectors.

Message format (one JSON object per message, UTF-8, key = customer_id):
    transaction_id, customer_id, product_id: strings
    quantity: integer; unit_price, total_amount: numbers (MAD, two decimals)
    currency ("MAD"), payment_method, status, channel, device, city, country, ip_address: strings
    transaction_ts: the event time, ISO-8601 UTC ("2025-06-30T14:03:27Z")
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError

from techmart_assets.generator import GeneratorConfig, generate
from techmart_assets.generator.writer import LABELS_FILE
from techmart_assets.sources import TRANSACTIONS
from techmart_assets.streaming.broker import TRANSACTIONS_TOPIC, BrokerError

log = logging.getLogger(__name__)
INTEGERS = ("quantity",)
NUMBERS = ("unit_price", "total_amount")
PLAN_DAY = date(2025, 6, 30)  # any ordinary day: its sales are replayed as today's
LABEL_HEADER = ["category", "kind", "source", "partition_date", "record_id", "detail"]


@dataclass
class StreamPlan:
    messages: list[dict[str, object]]
    labels: list[dict[str, str]]  # the fraud scenarios among the messages


@dataclass
class StreamResult:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def to_message(row: dict[str, str], shift: timedelta) -> dict[str, object]:
    """A CSV row of the generator as a message: typed values, the event time shifted and in ISO UTC."""
    message: dict[str, object] = {column: row[column] for column in TRANSACTIONS.columns}
    for column in INTEGERS:
        message[column] = int(row[column])
    for column in NUMBERS:
        message[column] = round(float(row[column]), 2)
    event = datetime.fromisoformat(row["transaction_ts"].replace("Z", "+00:00")) + shift
    message["transaction_ts"] = event.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return message


def plan(
    count: int,
    *,
    seed: int = GeneratorConfig.seed,  # the reference data set's: its customers and products
    fraud_rate: float = 0.002,
    customers: int = 5_000,
    now: datetime | None = None,
) -> StreamPlan:
    """`count` generated sales of one day, in event-time order, moved to `now`'s day (UTC)."""
    now = now or datetime.now(UTC)
    day = PLAN_DAY
    config = GeneratorConfig(
        seed=seed,
        start=day,
        end=day,
        customers=customers,
        products=500,
        transactions=count,
        sessions_per_transaction=0,
        fraud_rate=fraud_rate,
        dirty_rate=0,
        web_dirty_rate=0,
    )
    with tempfile.TemporaryDirectory(prefix="techmart-stream-") as tmp:
        generate(config, tmp)
        rows = []
        for path in sorted((Path(tmp) / "transactions" / str(day)).glob("*.csv")):
            with open(path, newline="", encoding="utf-8") as f:
                rows.extend(csv.DictReader(f))
        with open(Path(tmp) / LABELS_FILE, newline="", encoding="utf-8") as f:
            labels = [r for r in csv.DictReader(f) if r["category"] == "fraud"]
    shift = timedelta(days=(now.astimezone(UTC).date() - day).days)
    messages = sorted(
        (to_message(r, shift) for r in rows), key=lambda m: (m["transaction_ts"], m["transaction_id"])
    )
    return StreamPlan(messages=messages, labels=labels)


def send(plan_: StreamPlan, bootstrap: str, rate: float, topic: str = TRANSACTIONS_TOPIC) -> StreamResult:
    """Send the plan's messages at `rate` per second; every failed send is counted and reported."""
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
            key_serializer=str.encode,
            value_serializer=lambda v: json.dumps(v, separators=(",", ":")).encode(),
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
            producer.send(topic, key=message["customer_id"], value=message).add_errback(failed)
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
