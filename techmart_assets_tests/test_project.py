"""The project holds together: definitions load, and the Python and JVM sides pin the same versions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import pyspark
import pytest

from techmart_assets.partitions import chunk_days
from techmart_assets.resources import spark_config, spark_jars
from techmart_assets.settings import PROJECT_ROOT, Settings
from techmart_assets.sizing import SHUFFLE_PARTITIONS, shuffle_width, shuffles_for

POM = (PROJECT_ROOT / "jvm" / "spark" / "pom.xml").read_text()


def _pom_property(name: str) -> str:
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", POM)
    assert match, f"{name} missing from jvm/spark/pom.xml"
    return match.group(1)


def test_definitions_validate() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-m",
            "techmart_assets.definitions",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


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
