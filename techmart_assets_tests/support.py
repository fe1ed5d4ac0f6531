"""What the integration tests share: the small generated data set and ways to read it back."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from dagster_pyspark import PySparkResource
from kafka import KafkaProducer
from pyspark.sql import DataFrame, SparkSession

from techmart_assets.generator import GeneratorConfig
from techmart_assets.instance_storage import write_instance_config
from techmart_assets.resources import LakehouseResource, spark_config
from techmart_assets.settings import PROJECT_ROOT, Settings
from techmart_assets.sources import TRANSACTIONS, Source
from techmart_assets.streaming.ingestion import INGESTIONS, start_ingestion

FIRST, LAST = date(2024, 11, 1), date(2024, 11, 14)
COUPON_FROM = date(2024, 11, 10)
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
RANGE_TAGS = {
    "dagster/asset_partition_range_start": str(FIRST),
    "dagster/asset_partition_range_end": str(LAST),
}
# Small, with anomaly rates raised so every injected kind appears in two weeks of data.
SMALL = GeneratorConfig(
    seed=11,
    start=FIRST,
    end=LAST,
    customers=300,
    products=60,
    transactions=1_400,
    fraud_rate=0.01,
    dirty_rate=0.004,
    web_dirty_rate=0.002,
    coupon_code_from=COUPON_FROM,
)


def lakehouse_resources(settings: Settings, root: Path | str) -> dict[str, object]:
    """The definitions' resources pointed at `root`; the Spark resource reuses the session's Spark."""
    return {
        "spark": PySparkResource(spark_config=spark_config(settings)),
        "lakehouse": LakehouseResource(root=str(root)),
    }


def drop_rows(raw_data: Path, source: str, day: date) -> int:
    """Data lines in a source's drop for a day (CSV header excluded)."""
    return sum(
        sum(1 for line in f.read_text().splitlines()[1 if f.suffix == ".csv" else 0 :] if line)
        for f in (raw_data / source / str(day)).glob("*.*")
    )


def labels(raw_data: Path) -> list[dict[str, str]]:
    with open(raw_data / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def table(spark: SparkSession, root: Path, layer: str, name: str) -> DataFrame:
    return spark.read.format("delta").load(str(root / layer / name))


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux; its default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("localhost", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose next port is free too (the broker's controller listens on port + 1).

    Taken outside the kernel's ephemeral range: a port from it can become the local end of any
    outgoing connection (Spark's, a Kafka client's) between this check and the broker's bind, and
    the broker then fails with "Address already in use".
    """
    low, high = _ephemeral_ports()
    candidates = range(10_000, low - 1) if low > 10_002 else range(high + 1, 65_534)
    for port in random.sample(candidates, 100):
        if _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError("no free port pair outside the ephemeral range")


def _java_instant(at: datetime) -> str:
    """`Instant.toString()`: fractions in groups of three digits (nanoseconds here), then Z."""
    utc = at.astimezone(UTC)
    if not utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    digits = f"{utc.microsecond * 1000:09d}".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + digits.ljust(-(-len(digits) // 3) * 3, "0") + "Z"


# A time as producers write it: this project's, kafka-python clients, a JVM service, a browser,
# local clocks. Each must reach the lakehouse as the same instant (to the microsecond).
TIME_STYLES = {
    "whole seconds, Z": lambda at: at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "python isoformat()": lambda at: at.astimezone(UTC).isoformat(),
    "python str()": lambda at: str(at.astimezone(UTC)),
    "java Instant.toString()": _java_instant,
    "java Instant, nanosecond clock": lambda at: at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",
    "javascript toISOString()": lambda at: at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
    "java OffsetDateTime, +01:00": lambda at: at.astimezone(timezone(timedelta(hours=1))).isoformat(),
    "offset -05:30": lambda at: at.astimezone(timezone(-timedelta(hours=5, minutes=30))).isoformat(),
    "basic offset +0100": lambda at: at.astimezone(timezone(timedelta(hours=1))).strftime(
        "%Y-%m-%dT%H:%M:%S.%f%z"
    ),
}


def web_event(event_id: str, at: str, customer: str | None = "C1", **changes: object) -> dict:
    """A web event as the README's `web-events` contract has it (a product view in session S1), its
    time as given."""
    return {
        "event_id": event_id,
        "session_id": "S1",
        "customer_id": customer,
        "event_type": "product_view",
        "product_id": "P000001",
        "page_url": "/product/P000001",
        "referrer": "/",
        "device": "mobile",
        "event_ts": at,
        **changes,
    }


def send_messages(bootstrap: str, topic: str, messages: list[dict], **options: object) -> None:
    """`messages` as JSON on `topic`, keyed by customer (a web event without one by its session),
    acknowledged by the broker; `options`: the KafkaProducer's (e.g. `retries`)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    try:
        for m in messages:
            key = m.get("customer_id") or m["session_id"]
            producer.send(topic, key=key.encode(), value=json.dumps(m).encode())
        producer.flush()
    finally:
        producer.close()


def message(
    n: int,
    customer: str,
    at: datetime,
    amount: float = 1_500.0,
    country: str = "Morocco",
    city: str = "Casablanca",
    style: str = "whole seconds, Z",
    **changes: object,
) -> dict:
    """A transaction message as `techmart stream` sends it (the README's message format), its time
    written in one of the `TIME_STYLES`."""
    return {
        "transaction_id": f"TX{n:010d}",
        "customer_id": customer,
        "product_id": "P000001",
        "quantity": 1,
        "unit_price": amount,
        "total_amount": amount,
        "currency": "MAD",
        "payment_method": "credit_card",
        "status": "completed",
        "transaction_ts": TIME_STYLES[style](at),
        "channel": "web",
        "device": "mobile",
        "city": city,
        "country": country,
        "ip_address": "105.1.2.3",
        **changes,
    }


def profile(customer: str, mean: float, std: float, home: str = "Morocco", purchases: int = 20) -> tuple:
    """A row of the customer profiles table (fraud.PROFILE_SCHEMA): no purchase at night, the largest
    two standard deviations above the mean."""
    return (customer, home, purchases, float(mean), float(std), 0.0, float(mean + 2 * std), date(2025, 6, 29))


BRONZE_METADATA_SCHEMA = "_raw_line string, _parse_error string, _source_file string, _ingested_at timestamp"


def bronze_rows(spark: SparkSession, source: Source, clean: dict, rows: list[dict], day: date) -> DataFrame:
    """Hand-made bronze rows of `source` for `day`: each row is `clean` with its own changes (a
    `_raw_line` or `_parse_error` among them), all strings, with bronze's metadata columns."""
    columns = ", ".join(f"{c} string" for c in source.columns)
    schema = f"{columns}, {BRONZE_METADATA_SCHEMA}, partition_date date"

    def values(row: dict) -> tuple:
        merged = {**clean, **row}
        return (
            *(merged[c] for c in source.columns),
            merged.get("_raw_line"),
            merged.get("_parse_error"),
            f"file:/raw/{source.name}/{day}/{source.name}-{day}",
            datetime(2024, 3, 6),
            day,
        )

    return spark.createDataFrame([values(r) for r in rows], schema)


def stop_process_group(process: subprocess.Popen, first: int = signal.SIGINT, grace: float = 60) -> None:
    """Stop a process started with `start_new_session=True` and everything it started (dagster dev
    and the daemon start code servers and runs): `first` to the group, then SIGKILL after `grace`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


@dataclass(frozen=True)
class DagsterProcess:
    """A Dagster command started by `dagster_process`: its instance, lakehouse, log and process."""

    home: Path
    lakehouse: Path
    log: Path
    process: subprocess.Popen


@contextlib.contextmanager
def dagster_process(
    base: Path, raw_data: Path, command: list[str], env: dict[str, str] | None = None
) -> Iterator[DagsterProcess]:
    """`command` (a Dagster executable beside this Python and its arguments) run in the project root
    on a new instance (the project's configuration, pools initialized) and an empty lakehouse of
    `raw_data`'s drops, as a newcomer starts it; stopped with everything it started on exit."""
    lakehouse, home = base / "lakehouse", base / "dagster_home"
    lakehouse.mkdir()
    (lakehouse / "raw_data").symlink_to(raw_data)
    write_instance_config(home)
    log = base / f"{command[0]}.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home), "TECHMART_LAKEHOUSE": str(lakehouse), **(env or {})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield DagsterProcess(home, lakehouse, log, process)
    finally:
        stop_process_group(process)


@contextmanager
def ingesting(
    spark: SparkSession, root: Path, bootstrap: str, source: Source = TRANSACTIONS
) -> Iterator[None]:
    """The ingestion query of `source` on `root`'s bronze table, run until its topic is drained, then
    stopped."""
    ingestion = INGESTIONS[source.name]
    query = start_ingestion(
        spark,
        str(root / "bronze" / source.name),
        str(root / "checkpoints" / ingestion.checkpoint),
        bootstrap,
        0.5,
        source=source,
    )
    try:
        assert query.name == ingestion.query
        yield
        query.processAllAvailable()
    finally:
        query.stop()
    assert query.exception() is None
