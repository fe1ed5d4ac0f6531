"""Gold benchmark.

1. The full gold build at reference scale through Dagster and dbt (one run: `dbt build` of every
   model, seed and test over the whole history) against the same SQL run directly by Spark in this
   process: the models' and tests' SQL as dbt compiles it, executed in dependency order with
   `CREATE OR REPLACE TABLE ... AS` (views as views), no dbt, no Dagster. Both read the same bronze
   and silver tables (built once, first), after --warmup untimed rounds, alternating, best of
   --repeat. Prints both times and the ratio (goal: ratio <= 1.5).
2. The daily incremental run: one day (the last of the history) through every layer, bronze to the
   daily sales report, as the schedule runs it, on the lakehouse of the history. Prints its wall
   time (goal: under 60 s on 2 cores).

Run with `make bench` (or `.venv/bin/python -m bench.gold_build --help`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from graphlib import TopologicalSorter
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from bench.common import (
    QUIET,
    compare,
    figure_key,
    fresh_lakehouse,
    materialize_range,
    parser,
    partition_bookkeeping,
    project_instance,
    reference_workspace,
    report,
    resources,
)
from bench.results import record
from techmart_assets.bronze import bronze_assets
from techmart_assets.gold import gold_assets
from techmart_assets.gold.dbt import gold_dbt_assets
from techmart_assets.gold.dbt_runtime import DBT_PROJECT_DIR, dbt_subprocess
from techmart_assets.jobs import daily_job
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END
from techmart_assets.settings import Settings
from techmart_assets.silver import silver_assets

COMPILED = DBT_PROJECT_DIR / "target" / "bench_compiled"


def compile_project(root: Path) -> dict:
    """dbt's compiled SQL of every node for the whole history (the vars a full Dagster range passes)."""
    window = {"min_date": HISTORY_START, "max_date": "2026-01-01"}
    settings = dataclasses.replace(Settings.from_env(), lakehouse_root=str(root))
    compiled = dbt_subprocess(
        ["compile", "--quiet", "--vars", json.dumps(window)], settings, {"DBT_TARGET_PATH": str(COMPILED)}
    )
    assert compiled.returncode == 0
    return json.loads((COMPILED / "manifest.json").read_text())


def plain_spark(spark: SparkSession, root: Path, manifest: dict) -> None:
    """The compiled models and tests, in dependency order, straight through Spark SQL."""
    for schema in ("silver", "staging", "gold"):
        spark.sql(f"drop database if exists {schema} cascade")
        spark.sql(f"create database {schema}")
    for source in manifest["sources"].values():
        name = source["identifier"]
        spark.sql(f"create table silver.{name} using delta location '{root}/silver/{name}'")
    nodes = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] in ("model", "seed", "test")}
    order = TopologicalSorter(
        {k: [d for d in v.get("depends_on", {}).get("nodes", []) if d in nodes] for k, v in nodes.items()}
    ).static_order()
    for key in order:
        node = nodes[key]
        name, schema = node["name"], node["schema"]
        if node["resource_type"] == "seed":
            with open(DBT_PROJECT_DIR / node["original_file_path"], newline="") as f:
                rows = list(csv.DictReader(f))
            types = node["config"]["column_types"]
            frame = spark.createDataFrame(rows).selectExpr(
                *[f"cast({c} as {t}) as {c}" for c, t in types.items()]
            )
            frame.write.format("delta").mode("overwrite").option("path", f"{root}/gold/{name}").saveAsTable(
                f"{schema}.{name}"
            )
        elif node["resource_type"] == "test":
            spark.sql(f"select count(*) from ({node['compiled_code']}) failures").collect()
        elif node["config"]["materialized"] == "view":
            spark.sql(f"create or replace view {schema}.{name} as {node['compiled_code']}")
        else:
            location = f"{root}/gold/{'metrics/' if 'metrics' in node['fqn'] else ''}{name}"
            spark.sql(
                f"create or replace table {schema}.{name} using delta location '{location}' "
                f"as {node['compiled_code']}"
            )


def through_dagster(root: Path) -> None:
    materialize_range(gold_dbt_assets, root)


def daily_run(root: Path) -> tuple[float, dict[str, float]]:
    """Wall time of one day through every layer, and each step's time."""
    day = REFERENCE_HISTORY_END
    job = dg.Definitions(
        assets=[*bronze_assets, *silver_assets, *gold_assets],
        jobs=[daily_job],
        resources=resources(root),
        executor=dg.in_process_executor,
    ).resolve_job_def(daily_job.name)
    with project_instance() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(partition_key=day, run_config=QUIET, instance=instance)
        elapsed = time.perf_counter() - started
        assert result.success
        steps = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(result.run_id)}
    return elapsed, steps


def main() -> None:
    args = parser(__doc__).parse_args()
    with reference_workspace() as ws:
        print("building bronze and silver once …", flush=True)
        inputs = fresh_lakehouse(ws.work, "inputs", {"raw_data": ws.raw})
        materialize_range([*bronze_assets, *silver_assets], inputs)
        manifest = compile_project(inputs)
        links = {"raw_data": ws.raw, "bronze": inputs / "bronze", "silver": inputs / "silver"}
        best = compare(
            ws.work,
            links,
            {
                "plain Spark SQL": lambda root: plain_spark(ws.spark, root, manifest),
                "Dagster+dbt": through_dagster,
            },
            args.repeat,
            args.warmup,
        )
        title = (
            f"gold build, {ws.summary.days} days, {ws.summary.transactions:,} transactions "
            f"(best of {args.repeat} after {args.warmup} warm-up round(s))"
        )
        figures = report(
            title,
            best,
            "plain Spark SQL",
            "Dagster+dbt",
            "<= 1.5",
            partition_bookkeeping(sum(len(a.keys) for a in gold_dbt_assets if a.partitions_def)),
        )
        record("gold_build", figures, note=title)
        print("\nthe daily run: gold for the history, then one day through every layer …", flush=True)
        through_dagster(inputs)
        elapsed, steps = min(daily_run(inputs) for _ in range(args.repeat))
        print(f"\ndaily run for {REFERENCE_HISTORY_END}, bronze to report: {elapsed:.1f} s (goal < 60 s)")
        ranked = sorted(steps.items(), key=lambda kv: -kv[1])
        for step, seconds in ranked:
            print(f"  {step:40s} {seconds:6.1f} s")
        record(
            "daily_run",
            {"bronze_to_report_s": elapsed, **{f"{figure_key(step)}_s": seconds for step, seconds in ranked}},
            note=(
                f"one day ({REFERENCE_HISTORY_END}) through every layer on the history's lakehouse, warm, "
                f"the fastest of {args.repeat} runs with its steps' times; goal < 60 s"
            ),
        )


if __name__ == "__main__":
    main()
