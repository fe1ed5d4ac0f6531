"""The Dagster side of the stream, for real: the sensor starts `fraud_stream` when the topic has unread
messages, the job runs the queries and writes alerts, and the sensor then reports the heartbeat and
the consumer lag and records the new alerts as a materialization of `gold/fraud_alerts`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from techmart_assets.resources import KafkaResource
from techmart_assets.settings import Settings
from techmart_assets.streaming import broker, fraud
from techmart_assets.streaming.assets import ALERTS_KEY, LIVE_FEATURES_KEY
from techmart_assets.streaming.job import FRAUD_JOB, fraud_stream_job, fraud_stream_sensor, read_health
from techmart_assets.streaming.runner import StreamTables
from techmart_assets_tests.support import lakehouse_resources, message, profile, send_messages, web_event


def send(bootstrap: str, messages: list[dict], topic: str = broker.TRANSACTIONS_TOPIC) -> None:
    send_messages(bootstrap, topic, messages)


def views(customer: str, at: datetime, count: int) -> list[dict]:
    """`count` product views of one product by `customer`, a second apart (the web-events contract)."""
    return [
        web_event(
            f"W{customer}{i}",
            (at + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            customer,
            session_id=f"S{customer}",
        )
        for i in range(count)
    ]


def test_the_sensor_starts_the_job_reports_lag_and_records_alerts(
    spark: SparkSession, settings: Settings, kafka: broker.BrokerConfig, tmp_path: Path
) -> None:
    root = tmp_path / "lakehouse"
    tables = StreamTables(str(root))
    spark.createDataFrame([profile("D1", 300, 100)], fraud.PROFILE_SCHEMA).write.format("delta").save(
        tables.fraud.profiles
    )
    resources = {**lakehouse_resources(settings, root), "kafka": KafkaResource(bootstrap=kafka.bootstrap)}
    sensor_resources = {k: resources[k] for k in ("lakehouse", "kafka")}
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:

        def tick(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=sensor_resources)
            return fraud_stream_sensor(context)

        # Nothing on the topic yet: nothing to start (the module's topic is fresh).
        idle = tick(None)
        assert not idle.run_requests and "no message" in idle.skip_reason.skip_message

        base = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        burst = [message(100 + i, "D1", base + timedelta(seconds=5 * i), amount=300) for i in range(4)]
        send(kafka.bootstrap, burst)
        send(kafka.bootstrap, views("W1", datetime.now(UTC), 3), broker.WEB_EVENTS_TOPIC)
        started = tick(idle.cursor)
        (request,) = started.run_requests

        # The run the sensor asked for, for 45 s: the queries start, read the burst, alert, stop cleanly.
        op_config = {"duration_s": 45, "live_sales": False}
        result = fraud_stream_job.execute_in_process(
            run_config={"ops": {"run_streaming_queries": {"config": op_config}}},
            resources=resources,
            instance=instance,
            tags=request.tags,
        )
        assert result.success
        alerts = spark.read.format("delta").load(tables.fraud.alerts).collect()
        assert [(a.rule_id, a.transaction_id) for a in alerts] == [("velocity", "TX0000000103")]
        # No bad message: the dead letters' table is there all the same, and empty.
        assert spark.read.format("delta").load(tables.fraud.dead_letters).count() == 0
        health = read_health(tables.health_file)
        assert {q["name"] for q in health["queries"]} == {
            fraud.DETECTION_QUERY,
            "bronze_ingestion",
            "bronze_web_events_ingestion",
            "live_features",
        }
        assert not any(q["active"] for q in health["queries"])  # stopped by the run's end

        # Not running, every message read: no new run, and the alert becomes a materialization.
        after = tick(started.cursor)
        assert not after.run_requests and "every message" in after.skip_reason.skip_message
        (recorded,) = [e for e in after.asset_events if e.asset_key == ALERTS_KEY]
        assert recorded.metadata["new_rows"].value == 1
        assert recorded.metadata["dagster/row_count"].value == 1
        assert not [e for e in tick(after.cursor).asset_events if e.asset_key == ALERTS_KEY]  # seen once
        # The web events made W1's live features: a materialization with what the run followed.
        (live,) = [e for e in after.asset_events if e.asset_key == LIVE_FEATURES_KEY]
        assert live.metadata["new_rows"].value == 1 and live.metadata["dagster/row_count"].value == 1
        assert live.metadata["web_events_followed"].value == 3
        assert live.metadata["messages_not_web_events"].value == 0

        # A run in progress, five messages it has not read: the sensor reports that lag, starts nothing.
        instance.add_run(
            dg.DagsterRun(job_name=FRAUD_JOB, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
        )
        send(kafka.bootstrap, [message(200 + i, "D2", base + timedelta(minutes=i)) for i in range(5)])
        watching = tick(after.cursor)
        assert not watching.run_requests
        assert "consumer lag 5 messages" in watching.skip_reason.skip_message
        send(kafka.bootstrap, views("W2", datetime.now(UTC), 2), broker.WEB_EVENTS_TOPIC)
        watching = tick(after.cursor)
        # Each query's lag on its own topic, from the last heartbeat.
        assert "fraud_detection 5" in watching.skip_reason.skip_message
        assert "live_features 2" in watching.skip_reason.skip_message
        assert "bronze_web_events_ingestion 2" in watching.skip_reason.skip_message
