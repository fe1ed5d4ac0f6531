"""The one daily partitioning shared by every layer.

The history window starts on the first day of TechMart's generated history (2023-01-01, three
years before the reference dataset ends on 2025-12-31) and runs through yesterday, UTC. It is a
constant, not read from the data, so definitions stay static and every process agrees on them.
"""

from datetime import date, timedelta

import dagster as dg

HISTORY_START = "2023-01-01"
REFERENCE_HISTORY_END = "2025-12-31"

daily_partitions = dg.DailyPartitionsDefinition(start_date=HISTORY_START, timezone="UTC")


def run_days(context: dg.AssetExecutionContext) -> list[date]:
    """The days a run covers: one partition, or every day of a single-run backfill's range."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]
