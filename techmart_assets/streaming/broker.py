"""A real Apache Kafka broker (KRaft, single node) for the demo, the tests and CI.

`techmart kafka start` formats a storage folder once and starts the broker's own main class
(`kafka.Kafka`) with `java`, from the jars `make setup` fetched with Maven (`.jvm/kafka`), with a
bounded heap, listening on loopback only. It returns when the broker answers a metadata request,
and writes the process id next to the data, so `techmart kafka stop` stops exactly that process.
The topics the lakehouse uses are created by `ensure_topics`.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import confluent_kafka
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from techmart_assets.settings import Settings

# librdkafka's own messages (a broker it cannot reach, ...) go to Python's logging, not to stderr.
LIBRDKAFKA_LOG = logging.getLogger("techmart.librdkafka")


def compact_json(value: object) -> bytes:
    """A message value as the project's producers send it: compact JSON in UTF-8."""
    return json.dumps(value, separators=(",", ":")).encode()


def iso_utc(when: datetime) -> str:
    """A time as the project's messages carry it: UTC, milliseconds, `Z` (JavaScript's
    `toISOString()`, and what Spark writes)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_values(row: dict) -> dict:
    """A row (an alert, a customer's features) as a message's JSON values: times by `iso_utc`
    (UTC-aware datetimes), dates in ISO-8601."""

    def value(v: object) -> object:
        if isinstance(v, datetime):
            return iso_utc(v)
        if isinstance(v, date):
            return v.isoformat()
        return v

    return {k: value(v) for k, v in row.items()}


# One producer per broker for what the streaming job sends from its driver (alerts, customer
# features), kept across micro-batches, flushed at exit. confluent-kafka (librdkafka): a micro-batch
# may send thousands of features, and kafka-python's producer spends Python time on each.
_DRIVER_PRODUCERS: dict[str, confluent_kafka.Producer] = {}


def new_producer(bootstrap: str, **settings: object) -> confluent_kafka.Producer:
    """A producer as the project's are: every replica acknowledges, 5 ms to fill a batch, librdkafka's
    log to Python's; `settings`: more of librdkafka's."""
    return confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "logger": LIBRDKAFKA_LOG, **settings}
    )


def produce(
    producer: confluent_kafka.Producer, topic: str, key: str, value: bytes, on_delivery: Callable
) -> None:
    """Queue one message; while the local queue is full, let deliveries make room."""
    while True:
        try:
            producer.produce(topic, value=value, key=key.encode(), on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)  # serve the delivery reports that are in


def driver_producer(bootstrap: str) -> confluent_kafka.Producer:
    if bootstrap not in _DRIVER_PRODUCERS:
        _DRIVER_PRODUCERS[bootstrap] = new_producer(bootstrap)
    return _DRIVER_PRODUCERS[bootstrap]


def send_rows(bootstrap: str, topic: str, rows: list[dict], key: str, timeout_s: float = 60.0) -> None:
    """Send each row (`message_values`, compact JSON) keyed by its `key` column, and wait until the
    broker has them all: a message it did not take raises `BrokerError` (the micro-batch fails, and
    is sent again when Spark runs it again)."""
    producer = driver_producer(bootstrap)
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for row in rows:
        produce(producer, topic, str(row[key]), compact_json(message_values(row)), delivered)
    if unsent := producer.flush(timeout_s):
        producer.purge()  # they go again with the micro-batch, when Spark runs it again
        producer.poll(0)  # their delivery reports: purged
    if failures:
        late = f" (not taken within {timeout_s:.0f} s)" if unsent else ""
        raise BrokerError(
            f"{len(failures)} of {len(rows)} messages not taken by {topic} at {bootstrap}{late}: "
            + failures[0]
        )


@atexit.register
def close_driver_producers() -> None:
    while _DRIVER_PRODUCERS:
        _, producer = _DRIVER_PRODUCERS.popitem()
        producer.flush(5)


def read_all(bootstrap: str, topic: str, idle_ms: int = 10_000) -> list:
    """Every message on `topic` from the earliest, until none came for `idle_ms` (tests, benchmarks)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=idle_ms
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


TRANSACTIONS_TOPIC = "transactions"
WEB_EVENTS_TOPIC = "web-events"
FRAUD_ALERTS_TOPIC = "fraud-alerts"
CUSTOMER_FEATURES_TOPIC = "customer-features"
# Partitions per topic. Transactions and web events are keyed by customer (a web event without one
# by its session), so a customer's events stay in order in one partition; three partitions let up
# to three consumers share the load on a small machine.
TOPICS = {TRANSACTIONS_TOPIC: 3, WEB_EVENTS_TOPIC: 3, FRAUD_ALERTS_TOPIC: 3, CUSTOMER_FEATURES_TOPIC: 3}
# The shop reads each customer's latest features: the topic keeps the latest message per key.
TOPIC_CONFIGS = {CUSTOMER_FEATURES_TOPIC: {"cleanup.policy": "compact"}}
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerConfig:
    bootstrap: str  # host:port clients connect to
    home: Path  # data, logs, pid file
    jars: Path  # the broker's jars
    heap: str

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerConfig:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            home=settings.kafka_home,
            jars=settings.jars_dir / "kafka",
            heap=settings.kafka_heap,
        )

    @property
    def host(self) -> str:
        return self.bootstrap.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def server_properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir}",
                "num.partitions=3",
                "auto.create.topics.enable=false",
                # One node: every internal topic has one replica.
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )


LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = warn
"""


def _java(config: BrokerConfig, main: str, *args: str) -> list[str]:
    jars = sorted(config.jars.glob("*.jar"))
    if not jars:
        raise BrokerError(f"No Kafka jars in {config.jars}: run `make setup` (it fetches them with Maven).")
    return [
        "java",
        f"-Xms{config.heap}",
        f"-Xmx{config.heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={config.home / 'logs'}",
        f"-Dlog4j2.configurationFile={config.home / 'log4j2.properties'}",
        "-cp",
        os.pathsep.join(str(j) for j in jars),
        main,
        *args,
    ]


def new_cluster_id() -> str:
    """A random cluster id as `kafka-storage random-uuid` makes it: a UUID in URL-safe base64.

    Like Kafka's own `Uuid.randomUuid`, never one starting with "-": the storage tool would read it
    as an option and refuse to format (1 start in 64 failed that way).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def running_pid(config: BrokerConfig) -> int | None:
    """The pid of the broker this project started, if that process is still alive."""
    try:
        pid = int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a broker at `bootstrap` answers a metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), client_id="techmart-probe"
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def start(config: BrokerConfig, timeout: float = 90.0) -> int:
    """Start the broker (formatting its storage the first time); return its pid once it answers."""
    pid = running_pid(config)
    if pid is not None:
        if not answers(config.bootstrap):
            raise BrokerError(f"broker pid {pid} is running but does not answer on {config.bootstrap}")
        return pid
    for port in (config.port, config.controller_port):
        if _port_in_use(config.host, port):
            raise BrokerError(
                f"{config.host}:{port} is already in use by another process: stop it, or set "
                "TECHMART_KAFKA_BOOTSTRAP to another host:port (the controller uses the next port)."
            )
    config.home.mkdir(parents=True, exist_ok=True)
    (config.home / "logs").mkdir(exist_ok=True)
    properties = config.home / "server.properties"
    properties.write_text(config.server_properties())
    (config.home / "log4j2.properties").write_text(LOG4J2)
    if not (config.data_dir / "meta.properties").exists():
        cluster_id = new_cluster_id()
        subprocess.run(
            _java(config, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(properties)),
            check=True,
            capture_output=True,
        )
    with open(config.log_file, "ab") as log:
        process = subprocess.Popen(
            _java(config, MAIN_CLASS, str(properties)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a Ctrl-C in the shell does not reach it
        )
    config.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            config.pid_file.unlink(missing_ok=True)
            raise BrokerError(f"the broker exited with code {process.returncode}; see {config.log_file}")
        if answers(config.bootstrap, timeout=2.0):
            return process.pid
        time.sleep(0.5)
    stop(config)
    raise BrokerError(
        f"the broker did not answer on {config.bootstrap} within {timeout:.0f} s; see {config.log_file}"
    )


def stop(config: BrokerConfig, timeout: float = 30.0) -> bool:
    """Stop the broker this project started (SIGTERM: a clean shutdown; SIGKILL after `timeout`)."""
    pid = running_pid(config)
    if pid is None:
        config.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (started by another process): poll for its end
            finished = 0 if running_pid(config) else pid
        if finished:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    config.pid_file.unlink(missing_ok=True)
    return True


def ensure_topics(bootstrap: str, topics: dict[str, int] | None = None) -> list[str]:
    """Create the lakehouse's topics that do not exist yet; return the ones created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="techmart-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=TOPIC_CONFIGS.get(name, {}),
            )
            for name, partitions in (topics or TOPICS).items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another client
                admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        admin.close()


def end_offsets(bootstrap: str, topic: str, timeout: float = 5.0) -> dict[int, int]:
    """The next offset to be written in each partition of `topic` (its size, on a topic never trimmed).

    Raises BrokerError when no broker answers or the topic does not exist.
    """
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="techmart-probe",
            request_timeout_ms=int(timeout * 1000) + 1000,
            bootstrap_timeout_ms=int(timeout * 1000),
        )
    except KafkaError as error:
        raise BrokerError(f"no Kafka broker answers at {bootstrap} ({error})") from error
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerError(f"topic {topic!r} does not exist on {bootstrap}")
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    except KafkaError as error:
        raise BrokerError(f"could not read the offsets of {topic!r} at {bootstrap} ({error})") from error
    finally:
        consumer.close()
