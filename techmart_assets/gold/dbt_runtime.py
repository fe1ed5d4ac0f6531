"""How dbt runs here: in this Python process, on the project's own SparkSession.

dbt-spark's `session` method asks pyspark for a session, and in a process that already has one it
gets that one: the Spark resource's session, with the project's Delta, jars, memory and shuffle
sizing, already warm. So a dbt build pays for no second JVM and no metastore, and its queries run
as fast as the assets' own.

The session's catalog is Spark's in-memory one, so it holds nothing from one process to the next.
Before every build, `register_lakehouse_tables` points it at the lakehouse of the run: the silver
sources and every gold table and seed that already exists there, as external tables at their
lakehouse paths (incremental models need to find their table, or they would rebuild it from the
run's window alone). The registration is a function of the lakehouse root only: a session that
served another lakehouse before (the test suite shares one) is re-pointed. The staging views, which are only
catalog entries, are created first (`missing_views`) when the session lacks them: a backfill may
build them in one run and the facts that read them in another process.

`dbt parse` and `dbt compile` need no catalog and run as a separate dbt process (`dbt_subprocess`),
with a Spark configured like the project's should compile need one. Nothing here loads Dagster
definitions, so `techmart dbt ...` starts quickly.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyspark
from pyspark.sql import SparkSession

from techmart_assets.delta import is_delta_table
from techmart_assets.resources import spark_jars, use_project_spark
from techmart_assets.settings import PROJECT_ROOT, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
DBT_DRIVER_MEMORY = "1g"
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
PARTIAL_PARSE = "partial_parse.msgpack"
# Set by `register_lakehouse_tables` to the root it registered; the project's on-run-start hook
# refuses to build when it is not the lakehouse dbt is about to write (dbt run on its own).
REGISTERED_ROOT = "TECHMART_DBT_REGISTERED_LAKEHOUSE"
MATERIALIZED_AS_VIEW = ("view", "ephemeral")


def dbt_environment(settings: Settings, lakehouse_root: str | None = None) -> dict[str, str]:
    """The variables `profiles.yml` and `dbt_project.yml` read: the lakehouse and the project's Spark."""
    use_project_spark()
    return {
        "SPARK_HOME": os.environ["SPARK_HOME"],
        "TECHMART_LAKEHOUSE": lakehouse_root or settings.lakehouse_root,
        "TECHMART_SPARK_MASTER": settings.spark_master,
        "TECHMART_SPARK_JARS": ",".join(spark_jars(settings.jars_dir)),
        "TECHMART_SPARK_SHUFFLE_PARTITIONS": str(settings.spark_shuffle_partitions),
        "TECHMART_SPARK_VERSION": pyspark.__version__,
        "TECHMART_DBT_DRIVER_MEMORY": os.environ.get("TECHMART_DBT_DRIVER_MEMORY", DBT_DRIVER_MEMORY),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the duration (dbt reads them), then restore."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_subprocess(
    args: list[str],
    settings: Settings | None = None,
    overrides: Mapping[str, str] | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess:
    """A dbt command that needs no catalog (`parse`, `compile`) as a dbt process of its own."""
    settings = settings or Settings.from_env()
    command = [str(DBT_EXECUTABLE), *args, "--project-dir", str(DBT_PROJECT_DIR)]
    command += ["--profiles-dir", str(DBT_PROJECT_DIR)]
    env = {**os.environ, **dbt_environment(settings), **(overrides or {})}
    return subprocess.run(
        command, env=env, cwd=DBT_PROJECT_DIR, check=False, capture_output=capture, text=capture
    )


def ensure_manifest() -> Path:
    """The project's dbt manifest, parsed again (`dbt parse`) when a model, test or setting changed."""
    newest = max(
        p.stat().st_mtime
        for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in (".sql", ".yml", ".csv") and "target" not in p.parts and "logs" not in p.parts
    )
    if not MANIFEST.exists() or MANIFEST.stat().st_mtime < newest:
        code = dbt_subprocess(["parse", "--quiet"]).returncode
        if code != 0 or not MANIFEST.exists():
            raise RuntimeError(f"`dbt parse` of {DBT_PROJECT_DIR} failed (exit code {code}); see above")
    return MANIFEST


def lakehouse_path(node: Mapping[str, Any]) -> str:
    """Where a gold table or seed lives, relative to the lakehouse's `gold/` folder.

    The model's folder under `models/`, without `marts` (`metrics/daily_sales`, `fact_sales`), the
    same rule as the `location_root` settings of `dbt_project.yml` and the gold asset keys.
    """
    folders = Path(node.get("original_file_path", "")).parts[1:-1]
    return "/".join([*[f for f in folders if f != "marts"], node["name"]])


def lakehouse_tables(manifest: Mapping[str, Any], root: str) -> dict[str, str]:
    """`schema.table` -> lakehouse path of every table dbt reads or writes (views excepted)."""
    tables = {
        f"{s['schema']}.{s['identifier']}": f"{root}/silver/{s['identifier']}"
        for s in manifest["sources"].values()
        if s["source_name"] == "silver"
    }
    for node in manifest["nodes"].values():
        if node["resource_type"] in ("model", "seed") and node["config"]["materialized"] not in (
            MATERIALIZED_AS_VIEW
        ):
            tables[f"{node['schema']}.{node['alias']}"] = f"{root}/gold/{lakehouse_path(node)}"
    return tables


def register_lakehouse_tables(spark: SparkSession, manifest: Mapping[str, Any], root: str) -> list[str]:
    """Point the session's catalog at `root`'s tables; returns the tables registered.

    A table whose path holds no Delta table yet is left unregistered, so dbt creates it there.
    Only catalog entries change: every table here is external, and dropping one keeps its files.
    """
    tables = lakehouse_tables(manifest, root)
    for schema in sorted({name.split(".")[0] for name in tables}):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
    registered = []
    for name, path in tables.items():
        if spark.catalog.tableExists(name):
            entry = spark.catalog.getTable(name)
            if entry.tableType not in ("EXTERNAL", "VIEW"):
                raise RuntimeError(f"{name} is a {entry.tableType} table; every lakehouse table is external")
            spark.sql(f"DROP {'VIEW' if entry.tableType == 'VIEW' else 'TABLE'} {name}")
        if is_delta_table(spark, path):
            spark.sql(f"CREATE TABLE {name} USING delta LOCATION '{path}'")
            registered.append(name)
    return registered


def missing_views(spark: SparkSession, manifest: Mapping[str, Any]) -> list[str]:
    """The project's views (staging) this session's catalog lacks while the tables they read exist:
    a view is only a catalog entry, so a process whose run did not build it (a backfill runs the
    staging views and the facts in different runs) has none, and the models reading it would fail.
    A view over a table not built yet is left to the build that builds both."""

    def relation(unique_id: str) -> str:
        node = manifest["sources"].get(unique_id) or manifest["nodes"][unique_id]
        return f"{node['schema']}.{node.get('identifier') or node['alias']}"

    return sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"]["materialized"] == "view"
        and not spark.catalog.tableExists(relation(node["unique_id"]))
        and all(spark.catalog.tableExists(relation(parent)) for parent in node["depends_on"]["nodes"])
    )


@dataclass
class DbtRun:
    """One in-process dbt invocation: its structured events (as dbt's JSON log lines) as they come."""

    args: list[str]
    events: "queue.Queue[dict[str, Any] | None]" = field(default_factory=queue.Queue)
    errors: list[str] = field(default_factory=list)
    success: bool = False
    exception: BaseException | None = None

    def record(self, event: Any) -> None:
        from dbt_common.events.functions import msg_to_dict

        raw = msg_to_dict(event)
        if raw.get("info", {}).get("level") == "error":
            self.errors.append(raw["info"].get("msg", ""))
        self.events.put(raw)

    def failure(self) -> str:
        detail = "\n".join(e for e in self.errors if e) or repr(self.exception)
        return f"`dbt {' '.join(self.args)}` failed:\n{detail}"


def stream_dbt(
    spark: SparkSession,
    args: Sequence[str],
    lakehouse_root: str,
    settings: Settings | None = None,
    manifest: Mapping[str, Any] | None = None,
    target_path: Path | None = None,
    project_dir: Path = DBT_PROJECT_DIR,
    with_views: bool = True,
) -> Iterator[dict[str, Any]]:
    """Run a dbt command on `spark` for the lakehouse at `lakehouse_root`, yielding dbt's events.

    dbt runs in a thread of this process while its events are yielded here, so a caller (the
    Dagster asset) reports each model as soon as it is built. Raises when dbt fails.
    """
    from dbt.cli.main import dbtRunner

    settings = settings or Settings.from_env()
    manifest = manifest or json.loads(ensure_manifest().read_text())
    command = [*args, "--project-dir", str(project_dir), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if target_path is not None:
        # Partial parsing from the project's last parse, as dagster-dbt does for its own targets.
        target_path.mkdir(parents=True, exist_ok=True)
        parsed = MANIFEST.parent / PARTIAL_PARSE
        if parsed.exists() and not (target_path / PARTIAL_PARSE).exists():
            shutil.copy(parsed, target_path / PARTIAL_PARSE)
        command += ["--target-path", str(target_path), "--log-path", str(target_path)]
    run = DbtRun(list(args))

    def invoke() -> None:
        try:
            result = dbtRunner(callbacks=[run.record]).invoke(command)
            run.success, run.exception = result.success, result.exception
        except BaseException as error:  # re-raised in the caller's thread
            run.exception = error
        finally:
            run.events.put(None)

    register_lakehouse_tables(spark, manifest, lakehouse_root)
    if with_views and (views := missing_views(spark, manifest)):
        # Created first, quietly (views hold no data: nothing to report as materialized).
        create, target = ["run", "--select", *views], target_path / "views" if target_path else None
        for _ in stream_dbt(spark, create, lakehouse_root, settings, manifest, target, with_views=False):
            pass
    with environment({**dbt_environment(settings, lakehouse_root), REGISTERED_ROOT: lakehouse_root}):
        worker = threading.Thread(target=invoke, name="dbt", daemon=True)
        worker.start()
        try:
            while (event := run.events.get()) is not None:
                yield event
        except BaseException:
            # The step was interrupted (or its consumer failed): cancel dbt's queries until it
            # gives up (each later model then fails at once), so no write outlives the step.
            while worker.is_alive():
                spark.sparkContext.cancelAllJobs()
                worker.join(timeout=1)
            raise
        worker.join()
    if not run.success:
        raise RuntimeError(run.failure()) from run.exception


def run_dbt(spark: SparkSession, args: Sequence[str], lakehouse_root: str, settings: Settings) -> None:
    """Run a dbt command to its end (`techmart dbt ...`); raises when it fails."""
    for _ in stream_dbt(spark, args, lakehouse_root, settings):
        pass
