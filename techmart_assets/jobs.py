"""Jobs over the asset graph: the lakehouse build that the demo, backfills and the schedule run."""

import dagster as dg

from techmart_assets.partitions import daily_partitions

LAKEHOUSE_JOB = "lakehouse_build"

lakehouse_job = dg.define_asset_job(
    name=LAKEHOUSE_JOB,
    selection=dg.AssetSelection.groups("bronze", "silver"),
    partitions_def=daily_partitions,
    description="Every layer of the lakehouse for a day or a range of days: one run, one Spark session.",
)
