"""The first fraud alert after a quiet period: a velocity burst after `--idle` seconds without traffic,
against the same burst while the stream is busy.

On a fresh broker and lakehouse of the project, the streaming job's queries (what the `fraud_stream`
job runs) are started and warmed up with `--warmup` seconds of `techmart stream`'s traffic. Then:

1. busy: a velocity burst (four purchases of one customer, half a second apart) sent right after the
   warm-up; its alert's latency is the baseline;
2. quiet: nothing at all for `--idle` seconds (Spark ends Python workers idle for a minute, its Kafka
   consumers idle for five, the broker closes connections idle for ten);
3. the same burst for another customer; its alert's latency against the baseline.

Latency = the Delta commit time of the alert minus the time Kafka received the burst's last
purchase. Goal: the first alert after 10 minutes without traffic within 3 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster_pyspark.resources import spark_session_from_config
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.fraud_stream import caught_up, commit_times
from bench.results import record
from techmart_assets.resources import spark_config
from techmart_assets.settings import Settings
from techmart_assets.streaming import broker, fraud, producer
from techmart_assets.streaming.runner import StreamRunner, StreamTables
from techmart_assets_tests.support import free_port_pair, message, profile

BURST = 4  # the velocity rule's count
BURST_GAP_S = 0.5


def burst(customer: str, first: int) -> producer.StreamPlan:
    at = datetime.now(UTC)
    return producer.StreamPlan(
        [message(first + i, customer, at + timedelta(seconds=i * BURST_GAP_S)) for i in range(BURST)], []
    )


def alert_latency(spark: SparkSession, path: str, customer: str, timeout_s: float = 120.0) -> float:
    """Seconds from Kafka's receipt of the customer's last purchase to the commit of its velocity
    alert (waits for the alert up to `timeout_s`)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        rows = (
            spark.read.format("delta")
            .load(path)
            .where((F.col("customer_id") == customer) & (F.col("rule_id") == "velocity"))
            .withColumn("file_name", F.element_at(F.split(F.input_file_name(), "/"), -1))
            .join(commit_times(spark, path), "file_name")
            .select("committed_s")
            .collect()
        )
        if rows:
            return rows[0].committed_s
        time.sleep(0.5)
    raise TimeoutError(f"no velocity alert for {customer} within {timeout_s:.0f} s")


def measure(spark: SparkSession, bootstrap: str, path: str, customer: str, first: int) -> float:
    result = producer.send(burst(customer, first), bootstrap, rate=1 / BURST_GAP_S)
    assert (result.sent, result.failed) == (BURST, 0), result
    sent_at = last_receipt(spark, bootstrap, customer)
    return alert_latency(spark, path, customer) - sent_at


def last_receipt(spark: SparkSession, bootstrap: str, customer: str) -> float:
    """Kafka's receive time (CreateTime) of the customer's last message on the topic."""
    rows = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", broker.TRANSACTIONS_TOPIC)
        .load()
        .where(F.col("key").cast("string") == customer)
        .agg(F.max(F.col("timestamp").cast("double")).alias("at"))
        .collect()
    )
    return rows[0].at


def main() -> None:
    parsed = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parsed.add_argument("--idle", type=float, default=600.0, help="seconds without traffic")
    parsed.add_argument("--warmup", type=float, default=20.0, help="seconds of traffic at 200/s first")
    args = parsed.parse_args()
    with tempfile.TemporaryDirectory(
        prefix="techmart-bench-", dir=os.environ.get("TECHMART_BENCH_DIR")
    ) as tmp:
        work = Path(tmp)
        settings = dataclasses.replace(
            Settings.from_env(),
            lakehouse_root=str(work / "lakehouse"),
            kafka_home=work / "kafka",
            kafka_bootstrap=f"localhost:{free_port_pair()}",
        )
        config = broker.BrokerConfig.from_settings(settings)
        spark = spark_session_from_config(spark_config(settings))
        broker.start(config)
        try:
            broker.ensure_topics(config.bootstrap)
            tables = StreamTables(settings.lakehouse_root)
            profiles = [profile(c, 1_500, 300) for c in ("BUSY", "QUIET")]
            spark.createDataFrame(profiles, fraud.PROFILE_SCHEMA).write.format("delta").save(
                tables.fraud.profiles
            )
            runner = StreamRunner(spark, tables, config.bootstrap, log_info=lambda _: None)
            runner.start()
            try:
                while not all(q.lastProgress for q in runner.queries):
                    time.sleep(0.5)
                producer.send(producer.plan(round(200 * args.warmup)), config.bootstrap, 200)
                caught_up(runner.queries[0], config.bootstrap)
                busy = measure(spark, config.bootstrap, tables.fraud.alerts, "BUSY", 1)
                print(
                    f"busy: the burst's alert {busy:.2f} s after its last purchase; "
                    f"quiet for {args.idle:.0f} s …"
                )
                time.sleep(args.idle)
                quiet = measure(spark, config.bootstrap, tables.fraud.alerts, "QUIET", 101)
            finally:
                runner.stop()
        finally:
            broker.stop(config)
            spark.stop()
    print(f"after {args.idle:.0f} s without traffic: {quiet:.2f} s ({quiet / busy:.2f}x the busy stream's)")
    print("  goal: the first alert after 10 minutes without traffic within 3 s")
    record(
        "fraud_idle",
        {"idle_s": args.idle, "busy_latency_s": busy, "quiet_latency_s": quiet, "ratio": quiet / busy},
        note=(
            f"a velocity burst's alert after {args.idle:.0f} s without traffic, against the same burst on "
            "the busy stream; latency = alert committed in Delta - last purchase received by Kafka"
        ),
    )


if __name__ == "__main__":
    main()
