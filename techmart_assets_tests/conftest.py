"""Shared fixtures: one SparkSession for the whole test session, generated drops, throw-away lakehouses."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster_pyspark.resources import spark_session_from_config
from pyspark import SparkContext
from pyspark.sql import SparkSession

from techmart_assets.generator import generate
from techmart_assets.resources import spark_config
from techmart_assets.settings import Settings
from techmart_assets.streaming import broker
from techmart_assets_tests.support import SMALL, free_port_pair


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


@pytest.fixture(scope="session")
def raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two weeks of generated drops (with every anomaly kind), generated once per test session."""
    out = tmp_path_factory.mktemp("raw_data")
    generate(SMALL, out)
    return out


@pytest.fixture
def lakehouse(tmp_path: Path, raw_data: Path) -> Path:
    """A fresh, empty lakehouse whose raw_data is the session's generated drops."""
    root = tmp_path / "lakehouse"
    root.mkdir()
    (root / "raw_data").symlink_to(raw_data)
    return root


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[broker.BrokerConfig]:
    """A real broker of the project on free ports, with the lakehouse's topics; stopped by its pid."""
    config = broker.BrokerConfig.from_settings(
        dataclasses.replace(
            settings,
            kafka_home=tmp_path_factory.mktemp("kafka"),
            kafka_bootstrap=f"localhost:{free_port_pair()}",
        )
    )
    broker.start(config)
    broker.ensure_topics(config.bootstrap)
    yield config
    broker.stop(config)
