"""How dbt runs here: dbt-spark's `session` method in its own process, configured like the project's Spark.

That process must run the same Spark and Delta as every other writer of the lakehouse, so its
environment is built here, from the same settings as the Spark resource: SPARK_HOME pinned to the
pyspark wheel, the same Maven-fetched jars, the same shuffle sizing, and the lakehouse root of the
run. The profile (`dbt_project/profiles.yml`) reads only these variables, and the project's
on-run-start hook fails the run if dbt's Spark is not the pyspark version of this environment.
Nothing here loads Dagster definitions, so `techmart dbt ...` starts quickly.
"""

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyspark

from techmart_assets.resources import spark_jars, use_project_spark
from techmart_assets.settings import PROJECT_ROOT, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
DBT_DRIVER_MEMORY = "1g"


def dbt_environment(settings: Settings, lakehouse_root: str | None = None) -> dict[str, str]:
    """The variables `profiles.yml` reads: dbt's Spark configured like the project's own."""
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
    """Set `values` in os.environ for the duration (a dbt subprocess inherits them), then restore."""
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


def run_dbt(
    args: list[str],
    settings: Settings | None = None,
    overrides: Mapping[str, str] | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess:
    """Run a dbt command on the project with the project's environment (`techmart dbt ...`)."""
    settings = settings or Settings.from_env()
    command = [str(DBT_EXECUTABLE), *args, "--project-dir", str(DBT_PROJECT_DIR)]
    command += ["--profiles-dir", str(DBT_PROJECT_DIR)]
    env = {**os.environ, **dbt_environment(settings), **(overrides or {})}
    return subprocess.run(
        command, env=env, cwd=DBT_PROJECT_DIR, check=False, capture_output=capture, text=capture
    )
