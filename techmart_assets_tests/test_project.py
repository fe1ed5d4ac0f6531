"""The project holds together: definitions load, and the Python and JVM sides pin the same versions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import dagster
import pyspark
import pytest
import yaml

from techmart_assets.instance_storage import (
    TESTED_DAGSTER_VERSION,
    PooledSqliteEventLogStorage,
    write_instance_config,
)
from techmart_assets.partitions import chunk_days
from techmart_assets.resources import spark_config, spark_jars
from techmart_assets.settings import PROJECT_ROOT, Settings
from techmart_assets.sizing import SHUFFLE_PARTITIONS, shuffle_width, shuffles_for
from techmart_assets_tests.support import free_port_pair, stop_process_group

POM = (PROJECT_ROOT / "jvm" / "spark" / "pom.xml").read_text()


def _pom_property(name: str) -> str:
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", POM)
    assert match, f"{name} missing from jvm/spark/pom.xml"
    return match.group(1)


def _without_dagster_home() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}


@pytest.mark.parametrize("home", ["with DAGSTER_HOME", "without DAGSTER_HOME"])
def test_definitions_validate_in_the_project_root(home: str, tmp_path: Path) -> None:
    env = _without_dagster_home()
    if home == "with DAGSTER_HOME":
        env["DAGSTER_HOME"] = str(tmp_path)
        write_instance_config(tmp_path)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_dagster_dev_serves_the_project_from_its_root_without_dagster_home() -> None:
    """`dagster dev` as a newcomer starts it: in the project root, nothing set (a temporary instance
    from the root's dagster.yaml)."""
    port = free_port_pair()
    before = set(PROJECT_ROOT.glob(".tmp_dagster_home_*"))
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=_without_dagster_home(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        query = {"query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"}
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps(query).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.load(response)
                break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, "dagster dev did not answer in 240 s"
                time.sleep(2)
        assert answer["data"]["repositoriesOrError"]["nodes"] == [{"name": "__repository__"}]
    finally:
        # As Ctrl-C stops it (it then removes its temporary instance); dagster dev can take over 30 s
        # to stop, so its whole process group is killed after a minute.
        stop_process_group(process)
        for left in set(PROJECT_ROOT.glob(".tmp_dagster_home_*")) - before:
            shutil.rmtree(left, ignore_errors=True)


def test_the_instance_storage_is_fenced_to_the_dagster_version_it_was_tested_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"dagster=={TESTED_DAGSTER_VERSION}" in pins
    monkeypatch.setattr(dagster, "__version__", "1.99.0")
    refusal = re.escape(f"tested with dagster {TESTED_DAGSTER_VERSION}")
    with pytest.raises(dagster.DagsterInvariantViolationError, match=refusal):
        PooledSqliteEventLogStorage(str(tmp_path))


def test_only_the_project_home_uses_the_project_event_log_storage(tmp_path: Path) -> None:
    root = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert "event_log_storage" not in root  # a temporary instance in the root could not place it
    assert root["nux"] == {"enabled": False}
    written = yaml.safe_load(write_instance_config(tmp_path / "home").read_text())
    assert written == {
        **root,
        "event_log_storage": {
            "module": "techmart_assets.instance_storage",
            "class": "PooledSqliteEventLogStorage",
            "config": {"base_dir": str((tmp_path / "home" / "history" / "runs").resolve())},
        },
    }
    # Read without DAGSTER_HOME: the home says where its events are.
    with dagster.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)


def test_spark_side_versions_agree_with_the_jvm_jars() -> None:
    assert pyspark.__version__ == _pom_property("spark.version") == version("pyspark")
    assert version("delta-spark") == _pom_property("delta.version")
    # Delta 3.x is built for Spark 3.5 / Scala 2.12; Delta 4.x for Spark 4 / Scala 2.13.
    delta_major = int(_pom_property("delta.version").split(".")[0])
    spark_major = int(pyspark.__version__.split(".")[0])
    assert (delta_major, spark_major) in {(3, 3), (4, 4)}
    scala = _pom_property("scala.binary.version")
    assert scala == ("2.12" if spark_major == 3 else "2.13")
    bundled_scala = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar")}
    assert any(name.startswith(f"scala-library-{scala}.") for name in bundled_scala), bundled_scala


def test_spark_loads_exactly_the_jars_pyspark_lacks() -> None:
    names = sorted(Path(j).name for j in spark_jars(Settings.from_env().jars_dir))
    spark_version = pyspark.__version__
    delta_version = version("delta-spark")
    assert f"delta-spark_2.12-{delta_version}.jar" in names
    assert f"delta-storage-{delta_version}.jar" in names
    assert f"spark-sql-kafka-0-10_2.12-{spark_version}.jar" in names
    assert not any(n.startswith(("scala-library", "hadoop-client", "spark-tags")) for n in names), names


def test_pinned_dagster_set_is_coherent() -> None:
    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = dict(p.split("==") for p in pins if "==" in p)
    assert pinned["dagster"] == pinned["dagster-webserver"] == version("dagster")
    assert version("dagster-pyspark") == pinned["dagster-pyspark"]
    assert version("dagster-dbt") == pinned["dagster-dbt"]


def test_a_foreign_spark_home_is_not_used(monkeypatch) -> None:
    monkeypatch.setenv("SPARK_HOME", "/opt/some-other-spark")
    spark_config(Settings.from_env())
    assert os.environ["SPARK_HOME"] == str(Path(pyspark.__file__).parent)


def test_a_range_is_cut_into_chunks_by_weight_keeping_months_whole() -> None:
    days = [date(2024, 1, 20) + timedelta(days=i) for i in range(40)]  # Jan 20 .. Feb 28
    weights = dict.fromkeys(days, 10)
    assert chunk_days(days, weights, 1_000) == [days]
    # January's 12 days (120) fit the budget whole; February (280) does not, so it is cut by days,
    # its first three filling January's chunk.
    chunks = chunk_days(days, weights, 150)
    assert [len(c) for c in chunks] == [15, 15, 10]
    # Two months that fit are never split.
    assert [len(c) for c in chunk_days(days, weights, 300)] == [12, 28]
    assert [d for c in chunks for d in c] == days
    # A day above the budget is a chunk of its own; days without a weight weigh nothing.
    heavy = {days[0]: 500}
    assert chunk_days(days[:3], heavy, 100) == [[days[0]], days[1:3]]
    with pytest.raises(ValueError, match="positive"):
        chunk_days(days, weights, 0)


def test_a_step_s_shuffles_are_sized_to_the_rows_it_reads(spark) -> None:
    assert shuffle_width(0, 250_000, 4) == 4
    assert shuffle_width(1_000_000, 250_000, 4) == 4
    assert shuffle_width(10_000_001, 250_000, 4) == 41
    narrowest = spark.conf.get(SHUFFLE_PARTITIONS)
    with shuffles_for(spark, 10_000_000, 250_000) as width:
        assert width == 40 and spark.conf.get(SHUFFLE_PARTITIONS) == "40"
    assert spark.conf.get(SHUFFLE_PARTITIONS) == narrowest
