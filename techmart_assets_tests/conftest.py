"""Shared fixtures: one SparkSession for the whole test session, throw-away lakehouses, resources."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster_pyspark import PySparkResource
from dagster_pyspark.resources import spark_session_from_config
from pyspark import SparkContext
from pyspark.sql import SparkSession

from techmart_assets.resources import LakehouseResource, spark_config
from techmart_assets.settings import Settings


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("lakehouse")
    return dataclasses.replace(
        Settings.from_env(), lakehouse_root=str(root), spark_driver_memory="2g", spark_ui_enabled=False
    )


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[SparkSession]:
    """The one SparkSession of the test session; its JVM is stopped by PID when the session ends."""
    session = spark_session_from_config(spark_config(settings))
    yield session
    session.stop()
    gateway = SparkContext._gateway
    if gateway is not None:
        gateway.shutdown()
        gateway.proc.terminate()
        gateway.proc.wait(timeout=60)
        SparkContext._gateway = None
        SparkContext._jvm = None


def lakehouse_resources(settings: Settings, root: Path | str) -> dict[str, object]:
    """The definitions' resources pointed at `root`; the Spark resource reuses the session's Spark."""
    return {
        "spark": PySparkResource(spark_config=spark_config(settings)),
        "lakehouse": LakehouseResource(root=str(root)),
    }
