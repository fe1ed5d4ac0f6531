"""The long-running streaming job: every query on the `transactions` and `web-events` topics, started,
watched and stopped together. `techmart fraud run` and the Dagster `fraud_stream` job run this same code.

Queries (each with its checkpoint under `<lakehouse>/checkpoints/`):
- `fraud_detection` (fraud.py): alerts in seconds, bad messages kept as dead letters;
- `bronze_ingestion` and `bronze_web_events_ingestion` (ingestion.py): the topics into bronze
  transactions and bronze web events, exactly once;
- `live_sales_by_minute` (live_sales.py): the watermarked per-minute sales aggregate;
- `live_features` (live_features.py): sessions, per-customer features and suggestions, and the
  per-minute funnel, from the `web-events` topic.

While running, a heartbeat file (`checkpoints/stream_health.json`) is rewritten every few seconds with
each query's last progress and, since the run started, the valid transactions whose city the city
reference could not place (`CityCounts`): the sensor reads it to report health, consumer lag and that
count without Spark.
A clean stop lets each query finish the micro-batch it is in (its commit), then stops it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from techmart_assets.sizing import SHUFFLE_PARTITIONS, session_settings
from techmart_assets.streaming import fraud, live_features
from techmart_assets.streaming.behaviour import BehaviourConfig
from techmart_assets.streaming.broker import WEB_EVENTS_TOPIC, close_driver_producers
from techmart_assets.streaming.ingestion import INGESTIONS, read_topic, start_ingestion
from techmart_assets.streaming.live_features import LivePaths
from techmart_assets.streaming.live_sales import product_categories, start_live_sales
from techmart_assets.streaming.rules import FraudConfig

log = logging.getLogger(__name__)
HEALTH_FILE = "stream_health.json"
# Tasks per micro-batch of the queries beside detection (Kafka's `minPartitions`).
BACKGROUND_TASKS = 12
POOL = "spark.scheduler.pool"  # the pools are in techmart_assets/spark_pools.xml
FRAUD_POOL = "fraud"
LIVE_POOL = "live"
BACKGROUND_POOL = "background"


class StreamFailedError(RuntimeError):
    """A streaming query stopped with an error; the others were stopped cleanly."""


@dataclass(frozen=True)
class StreamTables:
    """Where the streaming queries read and write, all under one lakehouse root."""

    root: str

    def table(self, layer: str, name: str) -> str:
        return f"{self.root}/{layer}/{name}"

    @property
    def checkpoints(self) -> str:
        return f"{self.root}/checkpoints"

    @property
    def health_file(self) -> Path:
        return Path(self.checkpoints) / HEALTH_FILE

    @property
    def live(self) -> LivePaths:
        return LivePaths(
            features=self.table("gold", "customer_live_features"),
            funnel=self.table("gold", "live_funnel_by_minute"),
            products=self.table("silver", "products"),
            profiles=self.table("gold", "customer_profiles"),
            checkpoint=f"{self.checkpoints}/live_features",
        )

    @property
    def fraud(self) -> fraud.StreamPaths:
        return fraud.StreamPaths(
            alerts=self.table("gold", "fraud_alerts"),
            dead_letters=self.table("gold", "fraud_dead_letters"),
            profiles=self.table("gold", "customer_profiles"),
            checkpoints=f"{self.checkpoints}/fraud",
        )


@dataclass(frozen=True)
class StreamOptions:
    detection_trigger_s: float = 1.0
    # The other queries run less often: each batch has a fixed cost that detection would wait for.
    ingestion_trigger_s: float = 30.0
    live_sales_trigger_s: float = 30.0
    live_features_trigger_s: float = 1.0
    heartbeat_s: float = 5.0
    ingestion: bool = True
    live_sales: bool = True
    live_features: bool = True
    fraud: FraudConfig = field(default_factory=FraudConfig)
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)


def progress_summary(query: StreamingQuery) -> dict[str, object]:
    """What a person (or the sensor) needs of a query's last progress, JSON-ready."""
    progress = query.lastProgress or {}
    sources = progress.get("sources") or [{}]
    exception = query.exception() if not query.isActive else None
    return {
        "name": query.name,
        "active": query.isActive,
        "error": str(exception.desc if hasattr(exception, "desc") else exception) if exception else None,
        "batch_id": progress.get("batchId"),
        "batch_time": progress.get("timestamp"),
        "input_rows": progress.get("numInputRows", 0),
        "input_rows_per_s": round(float(progress.get("inputRowsPerSecond") or 0.0), 1),
        "processed_rows_per_s": round(float(progress.get("processedRowsPerSecond") or 0.0), 1),
        "batch_duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        # {"transactions": {"0": 123, ...}}: the next offset to read per partition
        "end_offset": _offsets(sources[0].get("endOffset")),
    }


@dataclass
class CityCounts:
    """Valid transactions, and those whose city the reference could not place (`distant_cities` cannot
    judge them), summed over the `fraud_detection` micro-batches since the runner started.

    The detection's writer hands each batch's counts to `add` (`fraud.detection_writer`); a batch
    given again (replayed) is counted once.
    """

    valid: int = 0
    unplaced: int = 0
    last_batch_id: int = -1
    last_batch_valid: int = 0
    last_batch_unplaced: int = 0

    def add(self, batch_id: int, valid: int, unplaced: int) -> None:
        if batch_id <= self.last_batch_id:
            return  # counted already
        self.last_batch_id = batch_id
        self.last_batch_valid, self.last_batch_unplaced = valid, unplaced
        self.valid += valid
        self.unplaced += unplaced

    def summary(self) -> dict[str, int]:
        return {
            "valid": self.valid,
            "unplaced": self.unplaced,
            "last_batch_valid": self.last_batch_valid,
            "last_batch_unplaced": self.last_batch_unplaced,
        }


@dataclass
class WebEventCounts:
    """The web events `live_features` followed, the messages it could not (not a web event) and the
    events it dropped as later than the watermark, summed over its micro-batches since the runner
    started; a replayed batch is counted once."""

    valid: int = 0
    invalid: int = 0
    late: int = 0
    last_batch_id: int = -1

    def add(self, batch_id: int, valid: int, invalid: int, late: int) -> None:
        if batch_id <= self.last_batch_id:
            return
        self.last_batch_id = batch_id
        self.valid += valid
        self.invalid += invalid
        self.late += late


def _offsets(value: object) -> dict[str, dict[str, int]] | None:
    if isinstance(value, str):  # pyspark hands the Kafka offsets over as a JSON string
        value = json.loads(value)
    return value if isinstance(value, dict) else None


class StreamRunner:
    def __init__(
        self,
        spark: SparkSession,
        tables: StreamTables,
        bootstrap: str,
        options: StreamOptions | None = None,
        log_info: Callable[[str], None] = log.info,
    ) -> None:
        self.spark = spark
        self.tables = tables
        self.bootstrap = bootstrap
        self.options = options or StreamOptions()
        self.log_info = log_info
        self.queries: list[StreamingQuery] = []
        self.cities = CityCounts()
        self.web_events = WebEventCounts()

    def start(self) -> list[StreamingQuery]:
        options, tables = self.options, self.tables
        parsed = fraud.parse(fraud.read_transactions(self.spark, self.bootstrap))
        # A query runs its batches in the scheduler pool that was set when it started.
        context = self.spark.sparkContext
        context.setLocalProperty(POOL, FRAUD_POOL)
        self.queries = [
            fraud.start_detection(
                parsed,
                tables.fraud,
                self.bootstrap,
                options.fraud,
                options.detection_trigger_s,
                on_cities=self.cities.add,
            )
        ]
        # The other queries' tasks must not hold the cores detection's next batch needs; they read in
        # short tasks, so a core they hold is free again soon for detection.
        context.setLocalProperty(POOL, BACKGROUND_POOL)
        if options.ingestion:
            self.queries += [
                start_ingestion(
                    self.spark,
                    tables.table("bronze", ingestion.source.name),
                    f"{tables.checkpoints}/{ingestion.checkpoint}",
                    self.bootstrap,
                    options.ingestion_trigger_s,
                    BACKGROUND_TASKS,
                    ingestion.source,
                )
                for ingestion in INGESTIONS.values()
            ]
        if options.live_sales:
            state_partitions = {SHUFFLE_PARTITIONS: str(fraud.STATE_PARTITIONS)}
            with session_settings(self.spark, state_partitions):
                self.queries.append(
                    start_live_sales(
                        fraud.parse(
                            fraud.read_transactions(self.spark, self.bootstrap, tasks=BACKGROUND_TASKS)
                        ),
                        product_categories(self.spark, tables.table("silver", "products")),
                        tables.table("gold", "live_sales_by_minute"),
                        f"{tables.checkpoints}/live_sales",
                        options.live_sales_trigger_s,
                    )
                )
        if options.live_features:
            # Next after detection, before the ingestions; its read is one task per Kafka partition
            # (split finer, the small micro-batch paid more in tasks than it saved).
            context.setLocalProperty(POOL, LIVE_POOL)
            self.queries.append(
                live_features.start_live_features(
                    read_topic(self.spark, self.bootstrap, WEB_EVENTS_TOPIC),
                    tables.live,
                    self.bootstrap,
                    options.behaviour,
                    options.live_features_trigger_s,
                    on_tally=self.web_events.add,
                )
            )
        context.setLocalProperty(POOL, None)
        self.log_info(f"started {', '.join(q.name for q in self.queries)} on {self.bootstrap}")
        return self.queries

    def health(self) -> dict[str, object]:
        return {
            "heartbeat": datetime.now(UTC).isoformat(timespec="seconds"),
            "pid": os.getpid(),
            "bootstrap": self.bootstrap,
            "queries": [progress_summary(q) for q in self.queries],
            "cities": self.cities.summary(),
            "web_events": {
                "valid": self.web_events.valid,
                "invalid": self.web_events.invalid,
                "late_dropped": self.web_events.late,
            },
        }

    def write_heartbeat(self) -> dict[str, object]:
        health = self.health()
        path = self.tables.health_file
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(health, indent=1))
        partial.replace(path)  # readers never see a half-written file
        return health

    def failed(self) -> list[StreamingQuery]:
        return [q for q in self.queries if not q.isActive and q.exception() is not None]

    def stop(self, timeout_s: float = 60.0) -> None:
        """Let each query finish (and commit) the micro-batch it is in, then stop it."""
        for query in self.queries:
            deadline = time.monotonic() + timeout_s
            while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.1)
            query.stop()
        close_driver_producers()  # what the queries sent from the driver, delivered
        if self.queries:
            release_state_stores(self.spark)
            self.write_heartbeat()
            self.log_info(f"stopped {', '.join(q.name for q in self.queries)}")

    def run(self, should_stop: Callable[[], bool] = lambda: False, duration_s: float | None = None) -> None:
        """Start, then keep the queries running and the heartbeat fresh until `should_stop()`, the
        duration is over, or a query fails (`StreamFailedError`, the others stopped cleanly)."""
        started = time.monotonic()

        def done() -> bool:
            return should_stop() or (duration_s is not None and time.monotonic() - started >= duration_s)

        try:
            self.start()  # inside: queries started before a failing one are stopped too
            while not done():
                beat = time.monotonic() + self.options.heartbeat_s
                while time.monotonic() < beat and not done() and not self.failed():
                    time.sleep(0.2)
                health = self.write_heartbeat()
                if failed := self.failed():
                    raise StreamFailedError(
                        "; ".join(f"{q.name}: {progress_summary(q)['error']}" for q in failed)
                    )
                self.log_info(describe(health))
        finally:
            self.stop()


def release_state_stores(spark: SparkSession) -> None:
    """Unload the session's streaming state stores and stop their maintenance thread, once no query of
    the session is running. Spark leaves that thread running after the queries stop: when the session
    stops at exit, its next tick logs a stack trace (`SparkEnv not active`). A stateful query started
    later loads its stores, and starts the thread, again."""
    if not spark.streams.active:
        spark._jvm.org.apache.spark.sql.execution.streaming.state.StateStore.stop()


def describe(health: dict[str, object]) -> str:
    """One log line: each query's last batch, its rows and rate; the transactions whose city could not
    be placed."""
    parts = []
    for q in health["queries"]:
        state = "running" if q["active"] else "stopped"
        parts.append(
            f"{q['name']} {state} batch {q['batch_id']}: {q['input_rows']} rows, "
            f"{q['processed_rows_per_s']}/s, {q['batch_duration_ms']} ms"
        )
    if cities := describe_cities(health):
        parts.append(cities)
    return "; ".join(parts)


def describe_cities(health: dict[str, object]) -> str | None:
    """The valid transactions whose city could not be placed, in words; None for a heartbeat without
    the count (one written before it was kept)."""
    cities = health.get("cities")
    if not isinstance(cities, dict):
        return None
    return (
        f"city not placed for {cities['unplaced']} of {cities['valid']} valid transactions this run "
        f"({cities['last_batch_unplaced']} of {cities['last_batch_valid']} in the last counted batch; "
        "distant_cities skips them)"
    )
