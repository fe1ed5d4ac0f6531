"""When gold and the daily report must be fresh: yesterday's partition by 06:30 in Casablanca.

The daily schedule starts at 06:00; a table materialized since midnight (Casablanca) has yesterday's
drops. If the 06:30 deadline passes without one, Dagster's freshness daemon marks the table failing
its policy, and the UI shows it overdue until the next materialization.
"""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

FRESH_BY_CRON = "30 6 * * *"
FRESHNESS_TIMEZONE = "Africa/Casablanca"

DAILY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron=FRESH_BY_CRON,
    lower_bound_delta=timedelta(hours=6, minutes=30),
    timezone=FRESHNESS_TIMEZONE,
)


# What the morning's readers open: the star schema, the metrics and the report (not staging views
# nor the holidays seed, which nobody reads directly).
FRESH_FOLDERS = ("dim_", "fact_", "metrics", "daily_sales_report")


def _must_be_fresh(spec: dg.AssetSpec) -> bool:
    path = spec.key.path
    return path[0] == "gold" and any(path[1].startswith(folder) for folder in FRESH_FOLDERS)


def with_freshness(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    return list(
        dg.map_asset_specs(
            lambda spec: (
                spec.replace_attributes(freshness_policy=DAILY_FRESHNESS) if _must_be_fresh(spec) else spec
            ),
            assets,
        )
    )
