"""The dbt project (`dbt_project/`) as Dagster assets: the gold star schema and metrics.

dbt runs inside the step, on the step's own SparkSession (`dbt_runtime`): the same Spark, Delta and
jars as every other asset, warm, on the run's lakehouse. dagster-dbt reads the project and turns
dbt's events into materializations and check results, as it does for a dbt process.

The project is split as dagster-dbt projects split partitioned incremental models from the rest,
with selections: `gold_daily_dbt_assets` (the facts, the daily metrics and their staging views,
partitioned by day) between two unpartitioned definitions of current state,
`gold_dimensions_dbt_assets` (what the facts read: dimensions, calendar, seed) and
`gold_current_metrics_dbt_assets` (what reads the facts: customer value).
"""

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dagster_pyspark import PySparkResource
from deltalake.exceptions import TableNotFoundError

from techmart_assets.delta import count_rows, last_commit, total_rows
from techmart_assets.gold.dbt_runtime import DBT_PROJECT_DIR, ensure_manifest, lakehouse_path, stream_dbt
from techmart_assets.metadata import commit_metadata
from techmart_assets.partitions import daily_partitions
from techmart_assets.resources import SPARK_BATCH_POOL, LakehouseResource
from techmart_assets.sizing import shuffles_for

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class GoldTranslator(DagsterDbtTranslator):
    """dbt nodes as lakehouse assets: sources are the silver assets, models live under `gold`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        name = dbt_resource_props["name"]
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], name])
        return dg.AssetKey(["gold", *lakehouse_path(dbt_resource_props).split("/")])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "gold"


def table_metadata(lakehouse: LakehouseResource, key: dg.AssetKey) -> dict[str, Any]:
    """Row count and Delta commit of a gold table dbt just wrote (views and seeds have no lakehouse
    path), read by delta-rs while dbt goes on: no Spark job between the models."""
    path = lakehouse.table_path("gold", "/".join(key.path[1:]))
    if key.path[1] == "staging":
        return {}
    try:
        rows = count_rows(path)
    except TableNotFoundError:
        return {}
    return {"dagster/row_count": rows, **commit_metadata(path, last_commit(path))}


def silver_rows(lakehouse: LakehouseResource) -> int:
    """Rows of the silver tables gold reads most of: sales and web events."""
    return total_rows([lakehouse.table_path("silver", name) for name in ("transactions", "web_events")])


# What dbt builds incrementally is per day: the facts and the daily metrics replace the days of the
# run's partition window, and the staging views they read go with them (a view holds no data; being
# per day keeps the path from silver's days to gold's unbroken, so a backfill of silver and gold
# from the UI reaches the facts). Everything else is current state, rebuilt whole by every run: the
# dimensions, the calendar and the seed (which the facts read), and customer value (which reads the
# facts). It has no partitions, so a backfill of an old day rebuilds it as of the latest data, never
# as of the backfilled day.
INCREMENTAL = "config.materialized:incremental"
PER_DAY = f"{INCREMENTAL} 1+{INCREMENTAL},config.materialized:view"
READS_THE_FACTS = f"{INCREMENTAL}+"


def dbt_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's partition window, [min_date, max_date), for the incremental models; none for the
    current-state models, which read every day."""
    if context.assets_def.partitions_def is None:
        return {}
    window = context.partition_time_window
    return {"min_date": window.start.date().isoformat(), "max_date": window.end.date().isoformat()}


def build_with_dbt(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: PySparkResource
) -> Iterator[Any]:
    """`dbt build` of the step's selection on the step's SparkSession, its events as Dagster's."""
    window = dbt_vars(context)
    scope = f"[{window['min_date']}, {window['max_date']})" if window else "the current state"
    context.log.info(f"dbt build for {scope} on {lakehouse.root}")
    session = spark.spark_session
    # The step's models and tests, selected as dagster-dbt's CLI resource selects them (a large
    # selection comes as a selector in a copy of the project).
    selection = get_updated_cli_invocation_params_for_context(context, {}, GoldTranslator())
    project_dir = Path(selection.dbt_project.project_dir) if selection.dbt_project else DBT_PROJECT_DIR
    # dbt's advice: unit tests (fixed inputs) run in CI, not in every production build; the test
    # suite runs them (`test_gold.py`). Two of them were 1.4 s on the daily run's critical path.
    args = ["build", "--exclude-resource-type", "unit_test", "--vars", json.dumps(window)]
    args += selection.selection_args
    # A test comes with its models only when every model it reads is built or upstream (dbt's
    # `buildable`): a backfill may build the dimensions in one run and the facts in the next, and
    # dbt's default would test the facts' references before the facts exist.
    args += ["--indirect-selection", selection.indirect_selection or "buildable"]
    target = DBT_PROJECT_DIR / "target" / "runs" / f"{context.run_id[:8]}-{uuid.uuid4().hex[:6]}"
    # Sized for all of silver: the current-state models (customer value, profiles) read every day.
    with shuffles_for(session, silver_rows(lakehouse), lakehouse.rows_per_task):
        for raw in stream_dbt(
            session,
            args,
            lakehouse.root,
            manifest=selection.manifest,
            target_path=target,
            project_dir=project_dir,
        ):
            message = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
            for event in message.to_default_asset_events(
                manifest=selection.manifest,
                dagster_dbt_translator=selection.dagster_dbt_translator,
                context=context,
                target_path=target,
                project=dbt_project,
            ):
                if isinstance(event, dg.Output | dg.AssetMaterialization):
                    key = (
                        context.asset_key_for_output(event.output_name)
                        if isinstance(event, dg.Output)
                        else None
                    )
                    key = key or event.asset_key
                    extra = table_metadata(lakehouse, key)
                    event = event.with_metadata({**event.metadata, **extra})
                yield event


def gold_dbt_definition(name: str, select: str, exclude: str | None = None, *, daily: bool = False):
    """One `@dbt_assets` over part of the project: partitioned by day when `daily`, else current state."""

    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project,
        name=name,
        select=select,
        exclude=exclude,
        dagster_dbt_translator=GoldTranslator(),
        partitions_def=daily_partitions if daily else None,
        # A backfill range is one dbt invocation whose window covers every day of the range.
        backfill_policy=dg.BackfillPolicy.single_run() if daily else None,
        # One batch run at a time: a backfill and a daily run never write the gold tables at once.
        pool=SPARK_BATCH_POOL,
    )
    def _gold(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: PySparkResource
    ) -> Iterator[Any]:
        yield from build_with_dbt(context, lakehouse, spark)

    return _gold


# Three definitions, in the order a run builds them, so that none is both upstream and downstream of
# another (Dagster would split such a definition into several dbt invocations per run).
gold_dimensions_dbt_assets = gold_dbt_definition(
    "gold_dimensions_dbt_assets", "fqn:*", exclude=f"{PER_DAY} {READS_THE_FACTS}"
)
gold_daily_dbt_assets = gold_dbt_definition("gold_daily_dbt_assets", PER_DAY, daily=True)
gold_current_metrics_dbt_assets = gold_dbt_definition(
    "gold_current_metrics_dbt_assets", READS_THE_FACTS, exclude=PER_DAY
)

gold_dbt_assets = [gold_dimensions_dbt_assets, gold_daily_dbt_assets, gold_current_metrics_dbt_assets]
