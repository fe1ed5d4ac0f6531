"""The one daily partitioning shared by every layer.

The history window starts on the first day of TechMart's generated history (2023-01-01, three
years before the reference dataset ends on 2025-12-31) and runs through yesterday, UTC. It is a
constant, not read from the data, so definitions stay static and every process agrees on them.
"""

from collections.abc import Mapping, Sequence
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


def chunk_days(days: Sequence[date], weights: Mapping[date, int], budget: int) -> list[list[date]]:
    """`days` (in order) cut into runs of consecutive days weighing at most `budget` together.

    A range run works through its chunks one at a time, so its memory and its shuffles follow the
    chunk, not the range. Whole months stay together where they fit (the tables' files are monthly:
    a chunk that ends mid-month makes the next rewrite that month's file); a month above the budget
    is cut by days, and a day above it is a chunk of its own. Days without a weight weigh nothing.
    """
    if budget <= 0:
        raise ValueError(f"a chunk budget must be positive, not {budget}")
    months: list[list[date]] = []
    for day in sorted(days):
        if months and (months[-1][0].year, months[-1][0].month) == (day.year, day.month):
            months[-1].append(day)
        else:
            months.append([day])
    chunks: list[list[date]] = []
    current: list[date] = []
    weight = 0

    def add(piece: list[date], piece_weight: int) -> None:
        nonlocal current, weight
        if current and weight + piece_weight > budget:
            chunks.append(current)
            current, weight = [], 0
        current.extend(piece)
        weight += piece_weight

    for month in months:
        month_weight = sum(weights.get(d, 0) for d in month)
        if month_weight <= budget:
            add(month, month_weight)
        else:
            for day in month:
                add([day], weights.get(day, 0))
    if current:
        chunks.append(current)
    return chunks
