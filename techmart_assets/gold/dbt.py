"""The dbt project (`dbt_project/`) as Dagster assets: the gold star schema and metrics.

dbt runs in its own process, started by dagster-dbt, with the environment of `dbt_runtime`: the
same Spark, Delta and jars as the Spark resource, on the run's lakehouse.
"""

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from dagster_pyspark import PySparkResource
from pyspark.sql import SparkSession

from techmart_assets.delta import is_delta_table, last_commit
from techmart_assets.gold.dbt_runtime import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    dbt_environment,
    environment,
    run_dbt,
)
from techmart_assets.metadata import commit_metadata
from techmart_assets.partitions import daily_partitions
from techmart_assets.resources import LakehouseResource
from techmart_assets.settings import Settings

# The embedded Derby metastore admits one process at a time: dbt steps queue on this pool, so a
# backfill or two overlapping runs never die on the metastore lock (limit 1 in dagster.yaml).
DBT_POOL = "dbt_metastore"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def ensure_manifest() -> Path:
    """The dbt manifest the asset definitions are read from, parsed again when the project changed."""
    manifest = dbt_project.manifest_path
    newest = max(
        p.stat().st_mtime
        for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in (".sql", ".yml", ".csv") and "target" not in p.parts and "logs" not in p.parts
    )
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        code = run_dbt(["parse", "--quiet"]).returncode
        if code != 0 or not manifest.exists():
            raise RuntimeError(f"`dbt parse` of {DBT_PROJECT_DIR} failed (exit code {code}); see above")
    return manifest


class GoldTranslator(DagsterDbtTranslator):
    """dbt nodes as lakehouse assets: sources are the silver assets, models live under `gold`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        name = dbt_resource_props["name"]
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], name])
        folders = Path(dbt_resource_props.get("original_file_path", "")).parts[1:-1]
        return dg.AssetKey(["gold", *[f for f in folders if f != "marts"], name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "gold"


def dbt_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's partition window, [min_date, max_date), for the incremental models."""
    window = context.partition_time_window
    return {"min_date": window.start.date().isoformat(), "max_date": window.end.date().isoformat()}


def table_metadata(spark: SparkSession, lakehouse: LakehouseResource, key: dg.AssetKey) -> dict[str, Any]:
    """Row count and Delta commit of a gold table dbt just wrote (views and seeds have no lakehouse path)."""
    path = lakehouse.table_path("gold", "/".join(key.path[1:]))
    if key.path[1] == "staging" or not is_delta_table(spark, path):
        return {}
    rows = spark.read.format("delta").load(path).count()
    return {"dagster/row_count": rows, **commit_metadata(path, last_commit(spark, path))}


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=GoldTranslator(),
    partitions_def=daily_partitions,
    # A backfill range is one dbt invocation whose window covers every day of the range.
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DBT_POOL,
)
def gold_dbt_assets(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    lakehouse: LakehouseResource,
    spark: PySparkResource,
) -> Iterator[Any]:
    window = dbt_vars(context)
    context.log.info(f"dbt build for [{window['min_date']}, {window['max_date']}) on {lakehouse.root}")
    with environment(dbt_environment(Settings.from_env(), lakehouse.root)):
        invocation = dbt.cli(["build", "--vars", json.dumps(window)], context=context)
    for event in invocation.stream():
        if isinstance(event, dg.Output | dg.AssetMaterialization):
            key = context.asset_key_for_output(event.output_name) if isinstance(event, dg.Output) else None
            key = key or event.asset_key
            extra = table_metadata(spark.spark_session, lakehouse, key)
            event = event.with_metadata({**event.metadata, **extra})
        yield event


def build_dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=str(DBT_EXECUTABLE)
    )
