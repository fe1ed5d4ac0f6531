"""The `fraud_stream` job and the sensor that keeps it running and reports what it does.

The job is one long run: it starts the streaming queries (runner.py), fraud detection and the live
customer behaviour alike (one job: on 2 cores, a second job for the behaviour was no faster and cost
a second JVM; `bench.fraud_stream --two-jobs`), and keeps them running until the run is terminated
(a clean stop: each query finishes its micro-batch first) or `duration_s` is over.
A run per sensor tick could not alert within seconds; the sensor only starts the job when it is not
running and the topic has messages it has not read, and otherwise watches it:

- health: the heartbeat the job writes every few seconds (age, each query's last batch, the valid
  transactions whose city the city reference could not place, the web events followed, refused and
  dropped as late) and each query's consumer lag (messages on its topic it has not read yet),
  logged every tick;
- results: each new Delta version of `fraud_alerts`, `fraud_dead_letters`, `live_sales_by_minute`,
  `customer_live_features` and `live_funnel_by_minute` becomes a materialization of that asset,
  with the rows it added, so alerts appear in the UI and can trigger downstream assets. The alerts'
  materialization also carries the heartbeat's count of transactions whose city could not be placed
  (`distant_cities` could not judge them); the live features', the web events' counts.

The sensor reads Delta with the `deltalake` library and Kafka with kafka-python: no Spark in the
daemon.
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
from dagster_pyspark import PySparkResource
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from techmart_assets import metadata as md
from techmart_assets.delta import PARTITION_COLUMN, rows_written
from techmart_assets.jobs import WORKLOAD_STREAM, WORKLOAD_TAG
from techmart_assets.resources import KafkaResource, LakehouseResource
from techmart_assets.streaming.assets import (
    ALERTS_KEY,
    DEAD_LETTERS_KEY,
    LIVE_FEATURES_KEY,
    LIVE_FUNNEL_KEY,
    LIVE_SALES_KEY,
)
from techmart_assets.streaming.broker import TRANSACTIONS_TOPIC, WEB_EVENTS_TOPIC, BrokerError
from techmart_assets.streaming.fraud import DETECTION_QUERY
from techmart_assets.streaming.ingestion import INGESTIONS
from techmart_assets.streaming.live_features import LIVE_FEATURES_QUERY
from techmart_assets.streaming.live_sales import LIVE_SALES_QUERY
from techmart_assets.streaming.rules import FraudConfig
from techmart_assets.streaming.runner import (
    StreamOptions,
    StreamRunner,
    StreamTables,
    describe,
    describe_cities,
)

FRAUD_JOB = "fraud_stream"
STALE_HEARTBEAT_S = 60
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class FraudStreamConfig(dg.Config):
    duration_s: float = 0.0  # 0: until the run is terminated
    detection_trigger_s: float = 1.0
    ingestion: bool = True  # land the topics in bronze transactions and web events too
    live_sales: bool = True  # the per-minute sales aggregate
    live_features: bool = True  # sessions, customer features and the funnel from the web-events topic


@dg.op(
    description="Runs the fraud detection (alerts and dead letters), bronze ingestion, per-minute sales "
    "and live customer features queries on the `transactions` and `web-events` topics until the run is "
    "terminated.",
    tags={"kind": "spark"},
)
def run_streaming_queries(
    context: dg.OpExecutionContext,
    config: FraudStreamConfig,
    spark: PySparkResource,
    lakehouse: LakehouseResource,
    kafka: KafkaResource,
) -> None:
    options = StreamOptions(
        detection_trigger_s=config.detection_trigger_s,
        ingestion=config.ingestion,
        live_sales=config.live_sales,
        live_features=config.live_features,
        fraud=FraudConfig(),
    )
    runner = StreamRunner(
        spark.spark_session, StreamTables(lakehouse.root), kafka.bootstrap, options, context.log.info
    )
    # Terminating the run interrupts this op; the runner's own `finally` stops the queries cleanly.
    runner.run(duration_s=config.duration_s or None)


@dg.job(
    name=FRAUD_JOB,
    description="The long-running streaming job: fraud alerts within seconds, bronze ingestion, live "
    "sales and live customer features from the `transactions` and `web-events` topics. Started and "
    "watched by `fraud_stream_sensor`.",
    tags={WORKLOAD_TAG: WORKLOAD_STREAM},
)
def fraud_stream_job() -> None:
    run_streaming_queries()


def read_health(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def consumer_lag(
    end_offsets: dict[int, int],
    health: dict | None,
    query: str = DETECTION_QUERY,
    topic: str = TRANSACTIONS_TOPIC,
) -> int | None:
    """Messages on `topic` that `query` has not read yet, from its last progress; None if unknown."""
    if health is None:
        return None
    for q in health.get("queries", []):
        if q["name"] == query:
            read = (q.get("end_offset") or {}).get(topic)
            if read is None:
                return None
            return sum(max(0, end - int(read.get(str(p), 0))) for p, end in end_offsets.items())
    return None


def heartbeat_age_s(health: dict | None, now: float | None = None) -> float | None:
    if health is None:
        return None
    beat = datetime.fromisoformat(health["heartbeat"]).timestamp()
    return round((now or time.time()) - beat, 1)


@dataclass(frozen=True)
class TableChange:
    version: int
    added_rows: int
    total_rows: int
    rows_by_day: dict[str, int]


def table_change(path: str, since: int | None) -> TableChange | None:
    """What the Delta table at `path` gained after version `since`; None if it is unchanged or absent."""
    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        return None
    version, seen = table.version(), -1 if since is None else since
    if version <= seen:
        return None
    added = sum(
        rows_written(entry) or 0 for entry in table.history(version - seen) if entry["version"] > seen
    )
    by_day: dict[str, int] = {}
    for f in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        day = str(f.get(f"partition.{PARTITION_COLUMN}", "all (not partitioned)"))
        by_day[day] = by_day.get(day, 0) + int(f["num_records"] or 0)
    return TableChange(version, added, sum(by_day.values()), dict(sorted(by_day.items())[-7:]))


STREAM_TABLES = {
    ALERTS_KEY: "fraud_alerts",
    DEAD_LETTERS_KEY: "fraud_dead_letters",
    LIVE_SALES_KEY: "live_sales_by_minute",
    LIVE_FEATURES_KEY: "customer_live_features",
    LIVE_FUNNEL_KEY: "live_funnel_by_minute",
}
# The topic each query reads: the sensor reports each query's lag on it.
QUERY_TOPICS = {
    DETECTION_QUERY: TRANSACTIONS_TOPIC,
    INGESTIONS["transactions"].query: TRANSACTIONS_TOPIC,
    INGESTIONS["web_events"].query: WEB_EVENTS_TOPIC,
    LIVE_SALES_QUERY: TRANSACTIONS_TOPIC,
    LIVE_FEATURES_QUERY: WEB_EVENTS_TOPIC,
}


def query_lags(ends: dict[str, dict[int, int]], health: dict | None) -> dict[str, int | None]:
    """Each running query's unread messages on its topic (None: unknown), from the heartbeat."""
    names = [q["name"] for q in (health or {}).get("queries", [])]
    return {
        name: consumer_lag(ends[QUERY_TOPICS[name]], health, name, QUERY_TOPICS[name])
        for name in names
        if name in QUERY_TOPICS and QUERY_TOPICS[name] in ends
    }


def describe_lags(lags: dict[str, int | None]) -> str:
    return ", ".join(f"{name} {'?' if lag is None else lag}" for name, lag in lags.items()) or "none known"


def city_metadata(health: dict | None) -> tuple[str, dict[str, int]]:
    """The heartbeat's count of transactions whose city could not be placed, for the alerts'
    materialization: a sentence and metadata (nothing without a heartbeat that has it)."""
    sentence = describe_cities(health) if health else None
    if sentence is None:
        return "", {}
    cities = health["cities"]
    return f"; {sentence}", {
        "transactions_city_not_placed": cities["unplaced"],
        "transactions_checked_for_city": cities["valid"],
    }


def web_event_metadata(health: dict | None) -> tuple[str, dict[str, int]]:
    """The heartbeat's counts of the web events `live_features` followed, could not read (not a web
    event) and dropped as later than the watermark, for the live features' materialization."""
    counts = (health or {}).get("web_events")
    if not isinstance(counts, dict):
        return "", {}
    return (
        f"; this run: {counts['valid']} web events followed, {counts['invalid']} messages not web events, "
        f"{counts['late_dropped']} dropped as late",
        {
            "web_events_followed": counts["valid"],
            "messages_not_web_events": counts["invalid"],
            "web_events_dropped_late": counts["late_dropped"],
        },
    )


def stream_table_events(
    tables: StreamTables, cursor: dict[str, int], health: dict | None = None
) -> list[dg.AssetMaterialization]:
    """A materialization for each stream table with new Delta versions since the cursor (updated); the
    alerts' one also says what the stream's current (or last) run, per its heartbeat `health`, could
    not place."""
    events = []
    for key, name in STREAM_TABLES.items():
        path = tables.table("gold", name)
        change = table_change(path, cursor.get(name))
        if change is None:
            continue
        cursor[name] = change.version
        sentence, cities = (
            city_metadata(health)
            if key == ALERTS_KEY
            else web_event_metadata(health)
            if key == LIVE_FEATURES_KEY
            else ("", {})
        )
        events.append(
            dg.AssetMaterialization(
                asset_key=key,
                description=f"{change.added_rows} new rows (Delta version {change.version}){sentence}",
                metadata={
                    "new_rows": change.added_rows,
                    "dagster/row_count": change.total_rows,
                    "delta_version": change.version,
                    "table_path": dg.MetadataValue.path(path),
                    "rows_by_day": dg.MetadataValue.md(
                        md.markdown_table(
                            [{"day": d, "rows": n} for d, n in change.rows_by_day.items()], ["day", "rows"]
                        )
                    ),
                    **cities,
                },
            )
        )
    return events


@dg.sensor(
    job=fraud_stream_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts `fraud_stream` when it is not running and `transactions` or `web-events` has "
    "unread messages; logs its heartbeat and each query's consumer lag; records new versions of the "
    "alerts, dead letters, live sales, live customer features and live funnel as materializations of "
    "their assets.",
)
def fraud_stream_sensor(
    context: dg.SensorEvaluationContext, lakehouse: LakehouseResource, kafka: KafkaResource
) -> dg.SensorResult:
    tables = StreamTables(lakehouse.root)
    cursor = json.loads(context.cursor) if context.cursor else {}
    health = read_health(tables.health_file)
    events = stream_table_events(tables, cursor, health)
    new_cursor = json.dumps(cursor, sort_keys=True)

    def skip(reason: str) -> dg.SensorResult:
        context.log.info(reason)
        return dg.SensorResult(skip_reason=reason, asset_events=events, cursor=new_cursor)

    try:
        ends = kafka.end_offsets(TRANSACTIONS_TOPIC)
        web_ends = kafka.end_offsets(WEB_EVENTS_TOPIC)
    except BrokerError as error:
        return skip(f"Kafka is not reachable, nothing started: {error}")
    lag = consumer_lag(ends, health)
    web_lag = consumer_lag(web_ends, health, LIVE_FEATURES_QUERY, WEB_EVENTS_TOPIC)
    lags = query_lags({TRANSACTIONS_TOPIC: ends, WEB_EVENTS_TOPIC: web_ends}, health)
    age = heartbeat_age_s(health)
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=FRAUD_JOB, statuses=IN_PROGRESS), limit=1
    )
    if running:
        state = f"{FRAUD_JOB} run {running[0].run_id[:8]} is {running[0].status.value.lower()}"
        if age is not None and age > STALE_HEARTBEAT_S:
            context.log.warning(f"{state} but its last heartbeat is {age:.0f} s old (lag {lag} messages)")
        return skip(
            f"{state}; heartbeat {age} s ago, consumer lag {lag} messages; lag per query: "
            f"{describe_lags(lags)}; " + (describe(health) if health else "no heartbeat yet")
        )
    if sum(ends.values()) + sum(web_ends.values()) == 0:
        return skip(f"no message on {TRANSACTIONS_TOPIC!r} or {WEB_EVENTS_TOPIC!r} yet: nothing to run")
    web_unread = 0 if sum(web_ends.values()) == 0 else web_lag  # None: unknown (never read)
    if lag == 0 and web_unread == 0:
        return skip(
            f"{FRAUD_JOB} is not running and every message on {TRANSACTIONS_TOPIC!r} and "
            f"{WEB_EVENTS_TOPIC!r} was read"
        )
    unread = None if lag is None or web_unread is None else lag + web_unread
    context.log.info(f"starting {FRAUD_JOB}: {unread if unread is not None else 'unknown'} unread messages")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(tags={"techmart/unread_messages": str(unread)})],
        asset_events=events,
        cursor=new_cursor,
    )
