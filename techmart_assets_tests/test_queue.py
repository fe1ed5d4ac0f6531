"""Backfills under the real daemon, as the UI launches and re-executes them: `dagster-daemon run` on
the project's definitions and instance configuration, GraphQL mutations the UI sends, and the runs
the daemon's run launcher starts (each its own process and Spark).

- Two backfills launched at once wait for each other: every Spark step is in the `spark_batch`
  pool, counted per run with one slot, so the queue starts one batch run at a time even for runs of
  an asset selection (which carry no job tags for the tag limits).
- A failed backfill re-executed "from failure" targets only what did not materialize.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.execution.backfill import BulkActionStatus
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets.settings import PROJECT_ROOT
from techmart_assets_tests.support import DAYS, dagster_process, drop_rows, table

BRONZE = [dg.AssetKey(["bronze", n]) for n in ("customers", "products", "transactions", "web_events")]
PRODUCTS = dg.AssetKey(["bronze", "products"])
SILVER_PRODUCTS = [dg.AssetKey(["silver", "products"]), dg.AssetKey(["silver", "products_quarantine"])]
RETRY_MUTATION = """
mutation Retry($reexecutionParams: ReexecutionParams) {
  reexecutePartitionBackfill(reexecutionParams: $reexecutionParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
TERMINAL = (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING)


@dataclass(frozen=True)
class Daemon:
    home: Path
    lakehouse: Path
    log: Path
    context: object  # the GraphQL context the UI's requests are answered in


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, raw_data: Path) -> Iterator[Daemon]:
    command = ["dagster-daemon", "run", "-w", "workspace.yaml"]
    with (
        dagster_process(tmp_path_factory.mktemp("queue"), raw_data, command) as started,
        dg.DagsterInstance.from_config(str(started.home)) as instance,
        define_out_of_process_context(str(PROJECT_ROOT / "workspace.yaml"), None, instance) as context,
    ):
        yield Daemon(started.home, started.lakehouse, started.log, context)


def _launch(daemon: Daemon, selection: list[dg.AssetKey], days: list[str]) -> str:
    answer = execute_dagster_graphql(
        daemon.context,
        LAUNCH_PARTITION_BACKFILL_MUTATION,
        variables={
            "backfillParams": {
                "assetSelection": [{"path": k.path} for k in selection],
                "partitionNames": days,
            }
        },
    ).data["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def _settled(daemon: Daemon, backfill_id: str, seconds: float = 15 * 60) -> BulkActionStatus:
    instance = daemon.context.instance
    deadline = time.monotonic() + seconds
    while (status := instance.get_backfill(backfill_id).status) in TERMINAL:
        tail = daemon.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"backfill {backfill_id} still {status}; daemon: {tail}"
        time.sleep(3)
    return status


def _runs(daemon: Daemon, backfill_id: str) -> list[dg.RunRecord]:
    filters = dg.RunsFilter(tags={"dagster/backfill": backfill_id})
    return list(daemon.context.instance.get_run_records(filters=filters))


def test_two_backfills_launched_at_once_run_one_after_the_other(
    daemon: Daemon, spark: SparkSession, raw_data: Path
) -> None:
    first, second = [str(d) for d in DAYS[:2]], [str(d) for d in DAYS[2:4]]
    ids = [_launch(daemon, BRONZE, first), _launch(daemon, BRONZE, second)]
    assert [_settled(daemon, i) for i in ids] == [BulkActionStatus.COMPLETED_SUCCESS] * 2

    runs = sorted((r for i in ids for r in _runs(daemon, i)), key=lambda r: r.start_time)
    assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    # Both were queued together; the second started only after the first had ended.
    assert runs[1].create_timestamp.timestamp() < runs[0].end_time
    assert runs[1].start_time >= runs[0].end_time
    # And both wrote their days: every data line of each day's drops is a bronze row.
    for source in ("transactions", "products"):
        rows = {
            str(r.partition_date): r["count"]
            for r in table(spark, daemon.lakehouse, "bronze", source)
            .groupBy("partition_date")
            .count()
            .collect()
        }
        assert rows == {str(d): drop_rows(raw_data, source, d) for d in DAYS[:4]}, source


def test_a_failed_backfill_re_executed_from_failure_runs_only_what_failed(
    daemon: Daemon, spark: SparkSession, raw_data: Path
) -> None:
    """Bronze and silver products over three days; silver cannot write (a file stands where its
    table goes), so its run fails after bronze materialized. Re-executed from failure, as the UI's
    backfill page does, the new backfill targets silver's days only, and writes them."""
    days = [str(d) for d in DAYS[4:7]]
    blocker = daemon.lakehouse / "silver" / "products"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a table")
    failed = _launch(daemon, [PRODUCTS, *SILVER_PRODUCTS], days)
    assert _settled(daemon, failed) in (BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED)
    instance = daemon.context.instance
    assert set(days) <= instance.get_materialized_partitions(PRODUCTS)
    assert not instance.get_materialized_partitions(SILVER_PRODUCTS[0]) & set(days)
    bronze_events = len(instance.fetch_materializations(PRODUCTS, limit=1000).records)

    blocker.unlink()
    answer = execute_dagster_graphql(
        daemon.context,
        RETRY_MUTATION,
        variables={"reexecutionParams": {"parentRunId": failed, "strategy": "FROM_FAILURE"}},
    ).data["reexecutePartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    retry = answer["backfillId"]
    target = instance.get_backfill(retry).asset_backfill_data.target_subset
    assert set(target.asset_keys) == set(SILVER_PRODUCTS)
    for key in SILVER_PRODUCTS:
        assert sorted(target.get_partitions_subset(key).get_partition_keys()) == days
    assert _settled(daemon, retry) == BulkActionStatus.COMPLETED_SUCCESS

    # Bronze was not run again; silver now holds the three days' products.
    assert len(instance.fetch_materializations(PRODUCTS, limit=1000).records) == bronze_events
    assert {k for r in _runs(daemon, retry) for k in (r.dagster_run.asset_selection or ())} == set(
        SILVER_PRODUCTS
    )
    bronze_ids = {
        r.product_id
        for r in table(spark, daemon.lakehouse, "bronze", "products")
        .where(F.col("partition_date").isin(days))
        .select("product_id")
        .distinct()
        .collect()
    }
    silver_ids = {r.product_id for r in table(spark, daemon.lakehouse, "silver", "products").collect()}
    rejected = {
        r.record_key for r in table(spark, daemon.lakehouse, "silver", "products_quarantine").collect()
    }
    assert bronze_ids and bronze_ids <= silver_ids | rejected
    # Each day's reconciliation, recorded for that day by the re-execution's run.
    retry_runs = {r.dagster_run.run_id for r in _runs(daemon, retry)}
    for day in days:
        (record,) = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(SILVER_PRODUCTS[0], "reconciliation"),
            limit=1,
            partition_filter=PartitionKeyFilter(key=day),
        )
        assert record.run_id in retry_runs and record.evaluation.passed, day
        assert record.evaluation.metadata["unaccounted"].value == 0
