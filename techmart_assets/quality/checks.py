"""Asset checks as plain functions over DataFrames and counts, each returning an AssetCheckResult.

Assets evaluate them right after their write, on the days they wrote, and declare them with
`check_specs` so they show in the UI beside the asset; the ones guarding gold are blocking.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from techmart_assets.metadata import markdown_table

EXAMPLES = 5


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    blocking: bool

    def spec(self, asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            self.name, asset=asset_key, description=self.description, blocking=self.blocking
        )


def _examples(frame: DataFrame, columns: Sequence[str]) -> dg.MetadataValue:
    rows = [r.asDict() for r in frame.select(*columns).limit(EXAMPLES).collect()]
    return dg.MetadataValue.md(markdown_table(rows, list(columns)))


def unique_key(frame: DataFrame, key: str, check: str = "unique_key") -> dg.AssetCheckResult:
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
        *[F.count_if(F.col(c).isNull()).alias(f"null_{i}") for i, c in enumerate(not_null)],
        *[F.count_if(rule.violation).alias(f"rule_{i}") for i, rule in enumerate(rules)],
        *[column.alias(f"total_{i}") for i, column in enumerate(totals.values())],
    ).first()
    nulls = {c: counts[f"null_{i}"] for i, c in enumerate(not_null)}
    results = [
        dg.AssetCheckResult(
            check_name="keys_not_null",
            passed=not any(nulls.values()),
            metadata={f"null_{c}": n for c, n in nulls.items()},
        )
    ]
    for i, rule in enumerate(rules):
        found = counts[f"rule_{i}"]
        metadata: dict[str, object] = {"violations": found}
        if found:
            metadata["examples"] = _examples(frame.where(rule.violation), rule.show)
        results.append(dg.AssetCheckResult(check_name=rule.check, passed=found == 0, metadata=metadata))
    return results, {name: counts[f"total_{i}"] for i, name in enumerate(totals)}


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
) -> dg.AssetCheckResult:
    """Each written day's rows against the median of the trailing days before it (a warning)."""
    if len(history) < 7:
        return dg.AssetCheckResult(
            check_name="row_count_vs_history", passed=True, metadata={"note": "fewer than 7 earlier days"}
        )
    median = statistics.median(history)
    outliers = {d: n for d, n in day_counts.items() if not low * median <= n <= high * median}
    return dg.AssetCheckResult(
        check_name="row_count_vs_history",
        passed=not outliers,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "trailing_median": median,
            "accepted_range": f"{low * median:,.0f} .. {high * median:,.0f}",
            "days_outside": ", ".join(f"{d}: {n:,}" for d, n in sorted(outliers.items())) or "none",
        },
    )


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


def not_evaluated(names: Sequence[str], reason: str) -> list[dg.AssetCheckResult]:
    """Results for checks a run could not evaluate (no data): a warning that says why."""
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"not_evaluated": reason},
        )
        for name in names
    ]
