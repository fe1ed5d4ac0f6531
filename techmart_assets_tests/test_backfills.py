"""Backfills of the asset graph as the UI launches them: the `launchPartitionBackfill` GraphQL
mutation with an asset selection and partition names, answered by a real code server. (A backfill
launched from the UI and run by the daemon is in `test_ui.py`.)"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from techmart_assets.definitions import defs
from techmart_assets.instance_storage import write_instance_config
from techmart_assets.settings import PROJECT_ROOT

GRAPH = defs.resolve_asset_graph()
LAYERS = ("bronze", "silver", "gold")
# What a backfill can build: the layers' tables, per day or current state (the stream's tables are
# written by the stream, not materialized).
BUILDABLE = sorted(
    (k for k in GRAPH.get_all_asset_keys() if GRAPH.get(k).is_materializable and k.path[0] in LAYERS),
    key=lambda k: k.to_user_string(),
)
PARTITIONED = [k for k in BUILDABLE if GRAPH.get(k).is_partitioned]
CURRENT = [k for k in BUILDABLE if not GRAPH.get(k).is_partitioned]
# What a person can select: a step that writes several tables is selected whole (the UI adds the rest).
STEPS = sorted(
    {frozenset(GRAPH.get(k).execution_set_asset_keys) for k in BUILDABLE},
    key=lambda step: sorted(k.to_user_string() for k in step),
)


def _days(n: int) -> list[str]:
    return [f"2025-01-{d:02d}" for d in range(1, n + 1)]


def _layer_selections() -> Iterator[tuple[str, list[dg.AssetKey]]]:
    for n in range(1, len(LAYERS) + 1):
        for layers in itertools.combinations(LAYERS, n):
            yield "+".join(layers), [k for k in BUILDABLE if k.path[0] in layers]


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
    with the selected days for every targeted table per day, and once for each current table.
    Silver's outputs once made Dagster refuse most of them: the quarantine named other inputs than
    its table, so the two keys' targets were built differently and no longer compared equal."""
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
            if GRAPH.get(key).is_partitioned:
                days_of_key = sorted(target.get_partitions_subset(key).get_partition_keys())
                assert days_of_key == _days(days), (name, key)
            else:  # current state: built once, whatever the days
                assert key in target.non_partitioned_asset_keys, (name, key)
    assert refused == {}
