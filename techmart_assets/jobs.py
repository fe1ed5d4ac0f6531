"""Jobs over the asset graph, and the daily schedule.

- `lakehouse_build`: bronze, silver and the gold tables for a day or a range of days, as one run
  with one Spark session (the demo, backfills of history).
- `daily_lakehouse`: the whole chain for one day, bronze to the daily sales report: what the
  schedule runs every morning for yesterday.
"""

from datetime import datetime, timedelta

import dagster as dg

from techmart_assets.gold.assets import REPORT_KEY
from techmart_assets.partitions import daily_partitions

LAKEHOUSE_JOB = "lakehouse_build"
DAILY_JOB = "daily_lakehouse"
SCHEDULE_TIMEZONE = "Africa/Casablanca"
# 06:00 in Casablanca: the day's drops have landed overnight, the report is there before work starts.
SCHEDULE_CRON = "0 6 * * *"
# The run tag dagster.yaml limits: one batch run (Spark over the tables) and one stream run at a time.
WORKLOAD_TAG = "techmart/workload"
WORKLOAD_BATCH = "batch"
WORKLOAD_STREAM = "stream"

lakehouse_job = dg.define_asset_job(
    name=LAKEHOUSE_JOB,
    selection=dg.AssetSelection.groups("bronze", "silver", "gold") - dg.AssetSelection.assets(REPORT_KEY),
    partitions_def=daily_partitions,
    description="Bronze, silver and gold tables for a day or a range of days: one run, one Spark session.",
    tags={WORKLOAD_TAG: WORKLOAD_BATCH},
)

daily_job = dg.define_asset_job(
    name=DAILY_JOB,
    selection=dg.AssetSelection.groups("bronze", "silver", "gold"),
    partitions_def=daily_partitions,
    description="The whole chain for one day, from the raw drops to the daily sales report.",
    tags={WORKLOAD_TAG: WORKLOAD_BATCH},
)


def yesterday_partition(scheduled: datetime) -> str:
    """The partition key of the day before the tick's day, the tick read in Casablanca time."""
    return (scheduled.date() - timedelta(days=1)).isoformat()


@dg.schedule(
    job=daily_job,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 06:00 (Africa/Casablanca): yesterday's partition, bronze to report.",
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    partition = yesterday_partition(context.scheduled_execution_time)
    if partition < daily_partitions.get_first_partition_key():
        return dg.SkipReason(f"{partition} is before the history starts")
    return dg.RunRequest(run_key=partition, partition_key=partition)
