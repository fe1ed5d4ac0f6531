"""Asset checks as plain functions over DataFrames and counts, each returning an AssetCheckResult.

Assets evaluate them right after their write, on the days they wrote, and declare them with
`check_specs` so they show in the UI beside the asset; the ones guarding gold are blocking.

The checks are partitioned by day like their tables, so the UI shows each check's result and
history per partition. A range run (a single-run backfill) evaluates its checks once and records a
result for every day it wrote (`evaluate_days`): the day's own result where the check counts per
day (reconciliation, quarantine rate, row rules, volume), the table's where the check is about the
whole table (unique keys, the source's columns), then saying which days it covered.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from techmart_assets.metadata import markdown_table
from techmart_assets.partitions import daily_partitions

EXAMPLES = 5

# A check's results for each day a run wrote, by ISO day.
DayResults = dict[str, list[dg.AssetCheckResult]]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    blocking: bool

    def spec(self, asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
        # Partitioned checks are a preview in Dagster 1.13; the exact version is pinned, and
        # test_check_history holds what this project relies on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.AssetCheckSpec(
                self.name,
                asset=asset_key,
                description=self.description,
                blocking=self.blocking,
                partitions_def=daily_partitions,
            )


def each_day(days: Sequence[date], results: Sequence[dg.AssetCheckResult]) -> DayResults:
    """Results about the whole table after the run, recorded on each of the run's days; a range run
    says which days the one evaluation covered."""
    span = {} if len(days) == 1 else {"evaluated_for": f"{days[0]} to {days[-1]}, one evaluation"}
    return {
        str(day): [r.with_metadata({**r.metadata, **span}) if span else r for r in results] for day in days
    }


def merge_days(*parts: DayResults) -> DayResults:
    merged: DayResults = {}
    for part in parts:
        for day, results in part.items():
            merged.setdefault(day, []).extend(results)
    return merged


def evaluate_days(context: dg.AssetExecutionContext, asset_key: dg.AssetKey, by_day: DayResults) -> Iterator:
    """The events that record `by_day`: an output per check (what a blocking check's dependents wait
    for) and an evaluation per check and day, partitioned by that day and pointing at that day's
    latest materialization, as Dagster's own evaluation of a one-partition step does.

    Yielded after the asset's `MaterializeResult`: its materializations are stored by then. Dagster
    turns an `AssetCheckResult` into an evaluation of the step's partition, and of no partition in
    a range step, so a range run's days would get none; `test_check_history` compares these
    evaluations with Dagster's own on a one-partition run.
    """
    selected = context.selected_asset_check_keys
    specs = {spec.key: spec for spec in context.assets_def.check_specs}
    targets = _latest_materializations(context.instance, asset_key, list(by_day))
    outputs: set[dg.AssetCheckKey] = set()
    for day, results in by_day.items():
        for result in results:
            key = dg.AssetCheckKey(asset_key, result.check_name or "")
            if key not in selected:
                continue
            if key not in outputs:
                outputs.add(key)
                yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))
            yield dg.AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=key.name,
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=targets.get(day),
                severity=result.severity,
                description=result.description,
                blocking=specs[key].blocking,
                partition=day,
            )


def _latest_materializations(instance: dg.DagsterInstance, asset_key: dg.AssetKey, days: list[str]) -> dict:
    """The latest materialization of each of `days`, as a check evaluation's target (a query per
    500 days, not one per day)."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as Target,
    )

    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(days)
    )
    ids = sorted(latest.values())
    targets = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk), limit=len(chunk)
        ).records
        for r in records:
            targets[r.partition_key] = Target(storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
    return targets


def _examples(frame: DataFrame, columns: Sequence[str]) -> dg.MetadataValue:
    rows = [r.asDict() for r in frame.select(*columns).limit(EXAMPLES).collect()]
    return dg.MetadataValue.md(markdown_table(rows, list(columns)))


def unique_key(
    frame: DataFrame, key: str, check: str = "unique_key", among: DataFrame | None = None
) -> dg.AssetCheckResult:
    """Whether each key occurs once in `frame`; only the keys of `among` are looked at when given
    (a run's days: whether a key they hold occurs anywhere else in the table, without grouping
    every key of a history that grows)."""
    if among is not None:
        frame = frame.join(among.select(key), key, "left_semi")
    repeated = frame.groupBy(key).count().where(F.col("count") > 1)
    found = repeated.count()
    metadata: dict[str, object] = {"repeated_keys": found}
    if found:
        metadata["examples"] = _examples(repeated.orderBy(F.desc("count")), [key, "count"])
    return dg.AssetCheckResult(check_name=check, passed=found == 0, metadata=metadata)


@dataclass(frozen=True)
class RowRule:
    """A row-level check: the rows meeting `violation` fail it, and a few of them (their `show`
    columns) are its examples."""

    check: str
    violation: Column
    show: Sequence[str]


def row_checks(
    frame: DataFrame,
    not_null: Sequence[str],
    rules: Sequence[RowRule],
    totals: Mapping[str, Column] | None = None,
) -> tuple[list[dg.AssetCheckResult], dict[str, object]]:
    """`keys_not_null` over the `not_null` columns and each rule's check, counted in one pass over
    `frame` (one Spark job, not one per check), with the caller's `totals` (named aggregates such
    as the row count) in the same pass. Examples are read only for a rule that fails."""
    totals = dict(totals or {})
    counts = frame.agg(
        *_row_counts(not_null, rules),
        *[column.alias(f"total_{i}") for i, column in enumerate(totals.values())],
    ).first()
    results = _row_results(
        counts.asDict(), not_null, rules, lambda rule: _examples(frame.where(rule.violation), rule.show)
    )
    return results, {name: counts[f"total_{i}"] for i, name in enumerate(totals)}


def row_checks_by_day(
    frame: DataFrame,
    day_column: str,
    days: Sequence[date],
    not_null: Sequence[str],
    rules: Sequence[RowRule],
) -> DayResults:
    """`row_checks` for each of `days` (`frame`'s `day_column`), counted in one pass grouped by day;
    a day without rows passes them all. Examples are read only for a day and rule that fail."""
    counted = frame.groupBy(day_column).agg(
        *_row_counts(not_null, rules),
    )
    found = {str(row[day_column]): row.asDict() for row in counted.collect()}

    def examples_of(day: str):
        on_day = F.col(day_column) == F.lit(day).cast("date")
        return lambda rule: _examples(frame.where(rule.violation & on_day), rule.show)

    return {
        day: _row_results(found.get(day, {}), not_null, rules, examples_of(day)) for day in map(str, days)
    }


def _row_counts(not_null: Sequence[str], rules: Sequence[RowRule]) -> list[Column]:
    """The aggregates `_row_results` reads: nulls per `not_null` column, violations per rule."""
    return [
        *[F.count_if(F.col(c).isNull()).alias(f"null_{i}") for i, c in enumerate(not_null)],
        *[F.count_if(rule.violation).alias(f"rule_{i}") for i, rule in enumerate(rules)],
    ]


def _row_results(
    counts: Mapping[str, int],
    not_null: Sequence[str],
    rules: Sequence[RowRule],
    examples: Callable[[RowRule], object],
) -> list[dg.AssetCheckResult]:
    """`keys_not_null` and each rule's result from the counts `null_{i}` and `rule_{i}` (missing ones
    are zero); `examples(rule)` is read only for a rule that has violations."""
    nulls = {c: counts.get(f"null_{i}", 0) for i, c in enumerate(not_null)}
    results = [
        dg.AssetCheckResult(
            check_name="keys_not_null",
            passed=not any(nulls.values()),
            metadata={f"null_{c}": n for c, n in nulls.items()},
        )
    ]
    for i, rule in enumerate(rules):
        violations = counts.get(f"rule_{i}", 0)
        metadata: dict[str, object] = {"violations": violations}
        if violations:
            metadata["examples"] = examples(rule)
        results.append(dg.AssetCheckResult(check_name=rule.check, passed=not violations, metadata=metadata))
    return results


def reconciliation(bronze_rows: int, parts: dict[str, int]) -> dg.AssetCheckResult:
    """bronze rows = the sum of where they went (silver, quarantine, ...): nothing lost or invented."""
    accounted = sum(parts.values())
    equation = f"bronze {bronze_rows:,} = " + " + ".join(f"{name} {n:,}" for name, n in parts.items())
    return dg.AssetCheckResult(
        check_name="reconciliation",
        passed=accounted == bronze_rows,
        metadata={
            "bronze_rows": bronze_rows,
            **parts,
            "unaccounted": bronze_rows - accounted,
            "equation": equation,
        },
    )


def quarantine_rate(bronze_rows: int, quarantined: int, warn: float, fail: float) -> dg.AssetCheckResult:
    rate = quarantined / bronze_rows if bronze_rows else 0.0
    severity = dg.AssetCheckSeverity.ERROR if rate > fail else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name="quarantine_rate",
        passed=rate <= warn,
        severity=severity,
        metadata={"rate": dg.MetadataValue.float(round(rate, 5)), "warn_above": warn, "fail_above": fail},
    )


def row_count_vs_history(
    day_counts: dict[str, int], history: Sequence[int], low: float = 0.3, high: float = 3.0
) -> DayResults:
    """Each written day's rows against the median of the trailing days before the run (a warning)."""
    if len(history) < 7:
        return {
            day: [
                dg.AssetCheckResult(
                    check_name="row_count_vs_history",
                    passed=True,
                    metadata={"rows": n, "note": "fewer than 7 earlier days"},
                )
            ]
            for day, n in day_counts.items()
        }
    median = statistics.median(history)
    return {
        day: [
            dg.AssetCheckResult(
                check_name="row_count_vs_history",
                passed=low * median <= n <= high * median,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rows": n,
                    "trailing_median": median,
                    "accepted_range": f"{low * median:,.0f} .. {high * median:,.0f}",
                },
            )
        ]
        for day, n in day_counts.items()
    }


def schema_change(columns: Sequence[str], expected: Sequence[str]) -> dg.AssetCheckResult:
    """New columns are welcome (a warning naming them); a missing contract column fails."""
    added = [c for c in columns if c not in expected]
    missing = [c for c in expected if c not in columns]
    return dg.AssetCheckResult(
        check_name="schema_change",
        passed=not added and not missing,
        severity=dg.AssetCheckSeverity.ERROR if missing else dg.AssetCheckSeverity.WARN,
        metadata={"new_columns": ", ".join(added) or "none", "missing_columns": ", ".join(missing) or "none"},
    )


def not_evaluated(days: Sequence[date], names: Sequence[str], reason: str) -> DayResults:
    """Results for checks a run could not evaluate on `days` (no data): a warning that says why."""
    return {
        str(day): [
            dg.AssetCheckResult(
                check_name=name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"not_evaluated": reason},
            )
            for name in names
        ]
        for day in days
    }
