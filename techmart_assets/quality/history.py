"""The asset checks of one day, read back from the Dagster instance: what the daily report shows and
`techmart checks report --date D` prints.

A check partitioned by day (bronze's and silver's) records a result for each day its run wrote:
the day's result is the latest evaluation of that partition. A check without partitions on a table
with days (dbt's tests of the facts) runs once for all its run's days, so its result for a day is
the latest evaluation whose run covered that day: its partition, or a range that holds it. A later
run of another day does not replace either. A check on a current table (no days: the dimensions,
customer value) describes the table as it is, so every day shows its latest evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.dagster_run import FINISHED_STATUSES as FINISHED
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from techmart_assets.metadata import markdown_table

# Pages of a check's history read while looking for the run that covered the day.
PAGE = 100


@dataclass(frozen=True)
class DayCheck:
    asset: str
    check: str
    status: str  # passed, warning, failed, running, skipped, error, not run
    severity: str  # ERROR or WARN, as declared by the result; blocking checks stop what follows
    blocking: bool
    description: str
    metadata: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    blocked: tuple[str, ...] = ()  # assets of the run that did not materialize because this failed

    @property
    def failing(self) -> bool:
        return self.status in ("failed", "warning", "error")


def run_covers(tags: dict[str, str], day: date) -> bool:
    text = day.isoformat()
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG] == text
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return start is not None and end is not None and start <= text <= end


def _evaluation(record) -> AssetCheckEvaluation | None:
    """The result, or None while the check is only planned (its run has not reached it)."""
    evaluation = record.evaluation
    return evaluation if isinstance(evaluation, AssetCheckEvaluation) else None


def _status(record, run_status: dg.DagsterRunStatus | None) -> str:
    evaluation = _evaluation(record)
    if evaluation is None:  # planned: running, or never reached by its run
        if run_status is None or run_status not in FINISHED:
            return "running"
        return "error" if run_status == dg.DagsterRunStatus.FAILURE else "skipped"
    if evaluation.passed:
        return "passed"
    return "warning" if evaluation.severity == dg.AssetCheckSeverity.WARN else "failed"


def _metadata_text(value) -> str:
    text = getattr(value, "value", value)
    return str(text)


class _Runs:
    """Tags, status and assets of runs, read once each."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._runs: dict[str, dg.DagsterRun | None] = {}
        self._assets: dict[tuple[str, dg.DagsterEventType], set[dg.AssetKey]] = {}

    def _run(self, run_id: str) -> dg.DagsterRun | None:
        if run_id not in self._runs:
            self._runs[run_id] = self.instance.get_run_by_id(run_id)
        return self._runs[run_id]

    def tags(self, run_id: str) -> dict[str, str]:
        run = self._run(run_id)
        return dict(run.tags) if run else {}

    def status(self, run_id: str) -> dg.DagsterRunStatus | None:
        run = self._run(run_id)
        return run.status if run else None

    def assets(self, run_id: str, kind: dg.DagsterEventType) -> set[dg.AssetKey]:
        """The assets the run planned (ASSET_MATERIALIZATION_PLANNED) or materialized."""
        if (run_id, kind) not in self._assets:
            records = self.instance.get_records_for_run(run_id, of_type=kind).records
            self._assets[run_id, kind] = {
                r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event
            }
        return self._assets[run_id, kind]


def checks_of_day(
    instance: dg.DagsterInstance,
    graph,
    day: date,
    layers: Sequence[str] = ("bronze", "silver", "gold"),
) -> list[DayCheck]:
    """Every check on the tables of `layers`, with its result for `day` ("not run" where no run
    covering the day evaluated it)."""
    runs = _Runs(instance)
    keys = sorted(
        (k for k in graph.asset_check_keys if k.asset_key.path[0] in layers),
        key=lambda k: (k.asset_key.to_user_string(), k.name),
    )
    return [_check_of_day(instance, graph, runs, key, day) for key in keys]


def _check_of_day(instance, graph, runs: _Runs, key: dg.AssetCheckKey, day: date) -> DayCheck:
    spec = graph.get_check_spec(key)
    base = {"asset": key.asset_key.to_user_string(), "check": key.name, "blocking": spec.blocking}
    if graph.get(key.asset_key).partitions_def is None:  # a current table: its latest result
        found = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        record = found[0] if found else None
    else:
        record = _record_of_day(instance, runs, key, day, partitioned=spec.partitions_def is not None)
    if record is None:
        return DayCheck(**base, status="not run", severity="", description=spec.description or "")
    evaluation = _evaluation(record)
    status = _status(record, runs.status(record.run_id))
    blocked: tuple[str, ...] = ()
    if spec.blocking and status == "failed":
        planned = runs.assets(record.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        done = runs.assets(record.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
        waiting = graph.get(key.asset_key).child_keys & planned
        blocked = tuple(sorted(k.to_user_string() for k in waiting - done))
    return DayCheck(
        **base,
        status=status,
        severity=evaluation.severity.value if evaluation else "",
        description=(evaluation.description or spec.description or "") if evaluation else "",
        metadata={k: _metadata_text(v) for k, v in evaluation.metadata.items()} if evaluation else {},
        run_id=record.run_id,
        blocked=blocked,
    )


def _record_of_day(instance, runs: _Runs, key: dg.AssetCheckKey, day: date, partitioned: bool):
    """The check's latest execution record for `day`, or None."""
    storage = instance.event_log_storage
    if partitioned:
        found = storage.get_asset_check_execution_history(
            key, limit=1, partition_filter=PartitionKeyFilter(key=day.isoformat())
        )
        return found[0] if found else None
    cursor = None
    while True:
        records = storage.get_asset_check_execution_history(key, limit=PAGE, cursor=cursor)
        for record in records:
            if run_covers(runs.tags(record.run_id), day):
                return record
        if len(records) < PAGE:
            return None
        cursor = records[-1].id


def report_markdown(day: date, checks: Iterable[DayCheck]) -> str:
    """The day's checks as markdown: failing ones first, each with its metadata."""
    checks = sorted(checks, key=lambda c: (not c.failing, c.status == "not run", c.asset, c.check))
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.status] = counts.get(c.status, 0) + 1
    lines = [
        f"# Asset checks of {day.isoformat()}",
        "",
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no checks",
        "",
        markdown_table(
            [
                {
                    "asset": c.asset,
                    "check": c.check,
                    "result": c.status,
                    "severity": c.severity or ("blocking" if c.blocking else ""),
                    "blocked": ", ".join(c.blocked),
                    "run": c.run_id[:8],
                }
                for c in checks
            ],
            ["asset", "check", "result", "severity", "blocked", "run"],
        ),
    ]
    for c in checks:
        if not c.failing:
            continue
        lines += ["", f"## {c.asset}: {c.check} ({c.status})", ""]
        if c.description:
            lines += [c.description, ""]
        for name, value in c.metadata.items():
            text = value if "\n" not in value else "\n\n" + value
            lines.append(f"- **{name}**: {text}")
    return "\n".join(lines) + "\n"
