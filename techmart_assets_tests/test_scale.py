"""A month at 20 times the reference data (a day holds about 900 sales and 8,000 web events): every
layer is built as one range run with the default settings, in chunks, and every table reconciles
with its source: drop lines to bronze, bronze to silver and quarantine, silver to gold."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from techmart_assets.bronze import bronze_assets
from techmart_assets.generator import GeneratorConfig, generate
from techmart_assets.gold.dbt import gold_dbt_assets
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END
from techmart_assets.resources import LakehouseResource
from techmart_assets.settings import Settings
from techmart_assets.silver import silver_assets
from techmart_assets_tests.support import drop_rows, lakehouse_resources, table

SCALE = 20
FIRST, LAST = date(2025, 3, 1), date(2025, 3, 31)
DAYS_OF_HISTORY = (date.fromisoformat(REFERENCE_HISTORY_END) - date.fromisoformat(HISTORY_START)).days + 1
# The reference data set's transactions per day, times SCALE, over this month.
MONTH = dataclasses.replace(
    GeneratorConfig(start=FIRST, end=LAST).scaled(SCALE),
    transactions=round(GeneratorConfig.transactions * SCALE * 31 / DAYS_OF_HISTORY),
)
SOURCES = ("transactions", "products", "customers", "web_events")


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("scale") / "lakehouse"
    generate(MONTH, root / "raw_data")
    # Default budgets, cut smaller in proportion so a month at this scale comes in a few chunks,
    # as three years at 10x do with the defaults.
    defaults = Settings.from_env()
    resources = {
        **lakehouse_resources(settings, root),
        "lakehouse": LakehouseResource(
            root=str(root), chunk_bytes=defaults.chunk_bytes // 20, chunk_rows=defaults.chunk_rows // 20
        ),
    }
    result = dg.materialize(
        [*bronze_assets, *silver_assets, *gold_dbt_assets],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": str(FIRST),
            "dagster/asset_partition_range_end": str(LAST),
        },
        raise_on_error=False,
    )
    return root, result


def last_metadata(result, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def test_a_month_at_scale_builds_in_chunks_and_checks_pass(month) -> None:
    _, result = month
    assert result.success
    assert last_metadata(result, "silver/web_events")["chunks"] > 1
    assert last_metadata(result, "bronze/web_events")["chunks"] > 1
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed == []


def test_every_table_reconciles_with_its_source(spark: SparkSession, month) -> None:
    root, result = month
    days = [date.fromordinal(d) for d in range(FIRST.toordinal(), LAST.toordinal() + 1)]
    for source in SOURCES:
        lines = sum(drop_rows(root / "raw_data", source, day) for day in days)
        bronze = table(spark, root, "bronze", source).count()
        assert bronze == lines, source
        quarantined = table(spark, root, "silver", f"{source}_quarantine").count()
        meta = last_metadata(result, f"silver/{source}")
        if source in ("transactions", "web_events"):
            accepted = table(spark, root, "silver", source).count()
            assert meta["rows_accepted"] == accepted
        else:
            accepted = sum(meta[k] for k in ("versions_opened", "records_unchanged", "records_repeated"))
        assert bronze == accepted + quarantined, source

    silver = table(spark, root, "silver", "transactions")
    assert silver.count() / len(days) > 800
    fact = table(spark, root, "gold", "fact_sales")
    assert fact.count() == silver.count()
    silver_sum = silver.agg(F.sum("total_amount")).first()[0]
    assert fact.agg(F.sum("amount")).first()[0] == silver_sum
    assert fact.select("transaction_id").distinct().count() == fact.count()
