"""Backfills of the asset graph as the UI launches them: the `launchPartitionBackfill` GraphQL
mutation with an asset selection and partition names, answered by a real code server."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from techmart_assets.definitions import defs
from techmart_assets.instance_storage import write_instance_config
from techmart_assets.quality.history import checks_of_day
from techmart_assets.settings import PROJECT_ROOT
from techmart_assets_tests.support import DAYS, stop_process_group, table

GRAPH = defs.resolve_asset_graph()
PARTITIONED = sorted(
    (k for k in GRAPH.get_all_asset_keys() if GRAPH.get(k).is_partitioned), key=lambda k: k.to_user_string()
)
LAYERS = ("bronze", "silver", "gold")
# What a person can select: a step that writes several tables is selected whole (the UI adds the rest).
STEPS = sorted(
    {frozenset(GRAPH.get(k).execution_set_asset_keys) & set(PARTITIONED) for k in PARTITIONED},
    key=lambda step: sorted(k.to_user_string() for k in step),
)


def _days(n: int) -> list[str]:
    return [f"2025-01-{d:02d}" for d in range(1, n + 1)]


def _layer_selections() -> Iterator[tuple[str, list[dg.AssetKey]]]:
    for n in range(1, len(LAYERS) + 1):
        for layers in itertools.combinations(LAYERS, n):
            yield "+".join(layers), [k for k in PARTITIONED if k.path[0] in layers]


# Dagster targets what descends from the selection's roots through selected assets: with a gap
# (bronze and gold without silver) the far side is left out, by Dagster's design, not refused.
CONNECTED = {"bronze", "silver", "gold", "bronze+silver", "silver+gold", "bronze+silver+gold"}


def _random_selections(count: int) -> Iterator[tuple[str, list[dg.AssetKey]]]:
    rnd = random.Random(20261203)
    for i in range(count):
        steps = rnd.sample(STEPS, rnd.randint(1, len(STEPS)))
        yield f"random {i}", sorted({k for step in steps for k in step}, key=lambda k: k.to_user_string())


@pytest.fixture(scope="module")
def graphql(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    home = tmp_path_factory.mktemp("dagster_home")
    write_instance_config(home)
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        define_out_of_process_context(workspace, None, instance) as context,
    ):
        yield context


def _launch(context, selection: list[dg.AssetKey], days: list[str]) -> dict:
    result = execute_dagster_graphql(
        context,
        LAUNCH_PARTITION_BACKFILL_MUTATION,
        variables={
            "backfillParams": {
                "assetSelection": [{"path": k.path} for k in selection],
                "partitionNames": days,
            }
        },
    )
    return result.data["launchPartitionBackfill"]


@pytest.mark.parametrize("days", [1, 7])
def test_any_selection_of_the_graph_is_accepted_and_targets_exactly_what_was_selected(
    graphql, days: int
) -> None:
    """Every layer and every combination of layers, and random selections of steps: each accepted,
    with the selected days for every targeted table. Silver's outputs once made Dagster refuse most
    of them: the quarantine named other inputs than its table, so the two keys' targets were built
    differently and no longer compared equal."""
    selections = [*_layer_selections(), *_random_selections(25)]
    refused = {}
    for name, selection in selections:
        answer = _launch(graphql, selection, _days(days))
        if answer["__typename"] != "LaunchBackfillSuccess":
            refused[name] = answer.get("message", answer["__typename"])
            continue
        backfill = graphql.instance.get_backfill(answer["backfillId"])
        target = backfill.asset_backfill_data.target_subset
        assert set(target.asset_keys) <= set(selection), name
        if name in CONNECTED:
            assert set(target.asset_keys) == set(selection), name
        for key in target.asset_keys:
            assert sorted(target.get_partitions_subset(key).get_partition_keys()) == _days(days), (name, key)
    assert refused == {}


def _counts_by_day(spark, root: Path, layer: str, name: str, column: str = "partition_date") -> dict:
    rows = table(spark, root, layer, name).groupBy(column).count().collect()
    return {str(r[column]): r["count"] for r in rows}


def test_a_backfill_of_the_whole_graph_over_a_week_runs_under_the_daemon(
    spark, lakehouse: Path, tmp_path: Path
) -> None:
    """As a person launches it from the UI: every partitioned table of bronze, silver and gold over a
    week, then `dagster-daemon` does the rest. Each Spark layer takes the week in one run (not a run
    per day), every table and check ends with the week, and the tables reconcile."""
    home = tmp_path / "dagster_home"
    write_instance_config(home)
    week = [d.isoformat() for d in DAYS[:7]]
    env = {**os.environ, "DAGSTER_HOME": str(home), "TECHMART_LAKEHOUSE": str(lakehouse)}
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=(tmp_path / "daemon.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with (
            dg.DagsterInstance.from_config(str(home)) as instance,
            define_out_of_process_context(str(PROJECT_ROOT / "workspace.yaml"), None, instance) as context,
        ):
            answer = _launch(context, PARTITIONED, week)
            assert answer["__typename"] == "LaunchBackfillSuccess", answer
            backfill_id = answer["backfillId"]
            deadline = time.monotonic() + 20 * 60
            while (status := instance.get_backfill(backfill_id).status) in (
                BulkActionStatus.REQUESTED,
                BulkActionStatus.CANCELING,
            ):
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the backfill did not finish in 20 minutes"
                time.sleep(5)
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            assert status == BulkActionStatus.COMPLETED_SUCCESS, _failures(instance, runs)
            materialized = {key: instance.get_materialized_partitions(key) for key in PARTITIONED}
            checks = {day: checks_of_day(instance, GRAPH, date.fromisoformat(day)) for day in week}
    finally:
        stop_process_group(daemon, signal.SIGTERM)

    # Few runs, each the whole week: the Spark layers do not start a JVM per day.
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    assert len(runs) <= 6, [sorted(k.to_user_string() for k in r.asset_selection) for r in runs]
    ranges = {(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in runs}
    assert ranges == {(week[0], week[-1])}
    assert {key.to_user_string(): sorted(days) for key, days in materialized.items()} == {
        key.to_user_string(): week for key in PARTITIONED
    }
    # Every check of every day was evaluated by the backfill's runs, and none failed.
    backfill_runs = {r.run_id for r in runs}
    settled = ("passed", "warning")
    for day, results in checks.items():
        assert {c.run_id for c in results} <= backfill_runs, day
        unsettled = [f"{c.asset}:{c.check} {c.status}" for c in results if c.status not in settled]
        assert unsettled == [], day

    # The data: each bronze row of the week is in silver or its quarantine, and gold has every sale.
    bronze = _counts_by_day(spark, lakehouse, "bronze", "transactions")
    silver = _counts_by_day(spark, lakehouse, "silver", "transactions")
    quarantined = _counts_by_day(spark, lakehouse, "silver", "transactions_quarantine")
    assert sorted(bronze) == week
    assert {d: silver.get(d, 0) + quarantined.get(d, 0) for d in week} == bronze
    assert _counts_by_day(spark, lakehouse, "gold", "fact_sales", "sale_date") == silver
    for day in week:
        assert (lakehouse / "reports" / day / "report.html").is_file()


def _failures(instance: dg.DagsterInstance, runs) -> list[str]:
    """The step failures of the runs, for the assertion message."""
    failures = []
    for run in runs:
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        for record in records:
            error = record.event_log_entry.dagster_event.event_specific_data.error
            while error.cause:
                error = error.cause
            failures.append(f"{run.run_id[:8]} {record.event_log_entry.step_key}: {error.message[:800]}")
    return failures
