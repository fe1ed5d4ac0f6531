"""The TechMart code location: every asset, check, job, schedule, sensor and resource, in one place."""

import dagster as dg

from techmart_assets.bronze import bronze_assets
from techmart_assets.freshness import with_freshness
from techmart_assets.gold import gold_assets
from techmart_assets.jobs import daily_job, daily_schedule, lakehouse_job
from techmart_assets.maintenance import maintenance_schedule, table_maintenance_job
from techmart_assets.resources import build_resources
from techmart_assets.silver import silver_assets
from techmart_assets.streaming.assets import streaming_assets
from techmart_assets.streaming.job import fraud_stream_job, fraud_stream_sensor

defs = dg.Definitions(
    assets=[*bronze_assets, *silver_assets, *with_freshness(gold_assets), *streaming_assets],
    jobs=[lakehouse_job, daily_job, fraud_stream_job, table_maintenance_job],
    schedules=[daily_schedule, maintenance_schedule],
    sensors=[fraud_stream_sensor],
    resources=build_resources(),
    # One process per run, so every step of a run (and a whole backfill range) shares one SparkSession
    # instead of starting a JVM per step.
    executor=dg.in_process_executor,
)
