"""Materialization metadata a person reads in the Dagster UI: previews, per-day counts, table facts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import dagster as dg
from pyspark.sql import DataFrame

from techmart_assets.delta import Commit, select

PREVIEW_ROWS = 10


def markdown_table(rows: Iterable[Mapping[str, object]], columns: list[str]) -> str:
    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def preview(frame: DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        markdown_table((r.asDict() for r in frame.limit(rows).collect()), frame.columns)
    )


def table_preview(
    path: str, where: str, columns: Sequence[str] = ("*",), order_by: str = "", rows: int = PREVIEW_ROWS
) -> dg.MetadataValue:
    """The first rows of the Delta table at `path` that match `where` (SQL), read without Spark."""
    order = f"ORDER BY {order_by}" if order_by else ""
    found = select(path, f"SELECT {', '.join(columns)} FROM t WHERE {where} {order} LIMIT {rows}")
    return dg.MetadataValue.md(markdown_table(found.to_pylist(), found.column_names))


def table_schema(columns: Iterable[tuple[str, str]]) -> dg.TableSchema:
    """A column schema for the UI from (name, Spark type) pairs."""
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=kind) for name, kind in columns])


def column_schema(frame: DataFrame) -> dg.TableSchema:
    return table_schema((f.name, f.dataType.simpleString()) for f in frame.schema.fields)


def days_summary(days: Iterable[date], limit: int = 10) -> str:
    ordered = sorted(days)
    shown = ", ".join(str(d) for d in ordered[:limit])
    return shown + (f" … and {len(ordered) - limit} more" if len(ordered) > limit else "")


def for_each_day(
    context: dg.AssetExecutionContext, metadata: dict[str, object], asset_key: dg.AssetKey | None = None
) -> dict[str, object]:
    """What a run's `MaterializeResult` carries, given the metadata that describes the whole run.

    A one-day run: all of it. A range run (a single-run backfill) records one materialization per
    day; all of it goes on the range's last day, the one the UI shows as the asset's latest
    materialization, and every other day gets one line pointing there. The range's totals, commit
    and preview copied onto each of 1,096 days would describe the range, not the day, and cost a
    history backfill about a second to serialize and store (4,384 copies for bronze).
    """
    keys = context.partition_key_range
    if keys.start == keys.end:
        return metadata
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=keys.end)
    return {
        "range_run": f"{keys.start} to {keys.end}, one run; its totals, commit and preview are on {keys.end}"
    }


def commit_metadata(path: str, commit: Commit) -> dict[str, object]:
    return {
        "table_path": dg.MetadataValue.path(path),
        "delta_version": commit.version,
        "delta_operation": commit.operation,
        "delta_files_added": commit.metric("numFiles") or commit.metric("numAddedFiles"),
        "delta_files_removed": commit.metric("numRemovedFiles"),
    }
