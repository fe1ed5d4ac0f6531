"""Bronze through Dagster on generated drops: contents match the drop, re-runs are idempotent, a range
is one run, a day without a drop is reported, and a non-Spark Delta reader sees the same table."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets.bronze import bronze_assets
from techmart_assets.settings import Settings
from techmart_assets.silver import silver_assets
from techmart_assets_tests.support import (
    COUPON_FROM,
    DAYS,
    FIRST,
    LAST,
    RANGE_TAGS,
    drop_rows,
    labels,
    lakehouse_resources,
    table,
)


def labelled(raw_data: Path, day: date, kinds: set[str]) -> int:
    return sum(1 for r in labels(raw_data) if r["partition_date"] == str(day) and r["kind"] in kinds)


def bronze(spark: SparkSession, lakehouse: Path, source: str) -> DataFrame:
    return table(spark, lakehouse, "bronze", source)


def materialize(settings: Settings, lakehouse: Path, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(bronze_assets, resources=lakehouse_resources(settings, lakehouse), **kwargs)


def test_one_partition_holds_every_row_of_its_drop(
    spark: SparkSession, settings: Settings, lakehouse: Path, raw_data: Path
) -> None:
    day = FIRST + timedelta(days=3)
    result = materialize(
        settings, lakehouse, partition_key=str(day), selection=[dg.AssetKey(["bronze", "transactions"])]
    )

    table = bronze(spark, lakehouse, "transactions")
    assert table.count() == drop_rows(raw_data, "transactions", day) > 0
    assert table.select("partition_date").distinct().collect() == [(day,)]
    malformed = table.where(F.col("_parse_error").isNotNull())
    assert malformed.count() == labelled(raw_data, day, {"too_few_fields", "too_many_fields"})
    assert malformed.where(F.col("_raw_line").isNull()).count() == 0

    (event,) = result.asset_materializations_for_node("bronze__transactions")
    assert event.partition == str(day)
    assert event.metadata["rows_written"].value == table.count()
    assert event.metadata["malformed_rows"].value == malformed.count()
    assert event.metadata["delta_version"].value == 0
    assert event.metadata["streamed_rows_kept"].value == 0  # transactions are also streamed into bronze
    preview = event.metadata["preview"].value.splitlines()
    assert len(preview) == 2 + 10 and all(f"| {day} |" in line for line in preview[2:])
    # The definition declares the contract's columns and types, which the table has; a
    # materialization within the contract does not repeat them.
    assert "dagster/column_schema" not in event.metadata
    spec = next(iter(bronze_assets[0].specs_by_key.values()))
    declared = spec.metadata["dagster/column_schema"].columns
    assert [(c.name, c.type) for c in declared] == [(f.name, f.dataType.simpleString()) for f in table.schema]
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "drop_fully_landed" and check.passed
    assert check.metadata["drop_data_lines"].value == drop_rows(raw_data, "transactions", day)


def test_materializing_a_partition_twice_leaves_one_copy_and_a_new_version(
    spark: SparkSession, settings: Settings, lakehouse: Path
) -> None:
    day, neighbour = FIRST + timedelta(days=5), FIRST + timedelta(days=6)
    key = [dg.AssetKey(["bronze", "web_events"])]
    materialize(settings, lakehouse, partition_key=str(neighbour), selection=key)
    materialize(settings, lakehouse, partition_key=str(day), selection=key)
    before = Counter(r.event_id for r in bronze(spark, lakehouse, "web_events").collect())

    again = materialize(settings, lakehouse, partition_key=str(day), selection=key)

    after = Counter(r.event_id for r in bronze(spark, lakehouse, "web_events").collect())
    assert after == before
    per_day = dict(bronze(spark, lakehouse, "web_events").groupBy("partition_date").count().collect())
    assert set(per_day) == {day, neighbour}
    (event,) = again.asset_materializations_for_node("bronze__web_events")
    assert event.metadata["delta_version"].value == 2


def test_a_range_is_one_run_covering_every_day_of_every_source(
    spark: SparkSession, settings: Settings, lakehouse: Path, raw_data: Path
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(settings, lakehouse, tags=RANGE_TAGS, instance=instance)

    assert result.success and len(instance.get_runs()) == 1
    for source in ("transactions", "products", "customers", "web_events"):
        counts = dict(bronze(spark, lakehouse, source).groupBy("partition_date").count().collect())
        expected = {d: drop_rows(raw_data, source, d) for d in DAYS if drop_rows(raw_data, source, d)}
        assert counts == expected, source
        materialized = instance.get_materialized_partitions(dg.AssetKey(["bronze", source]))
        assert materialized == {str(d) for d in DAYS}, source


def test_a_column_added_mid_range_is_taken_and_earlier_days_read_it_as_null(
    spark: SparkSession, settings: Settings, lakehouse: Path, raw_data: Path
) -> None:
    result = materialize(
        settings, lakehouse, tags=RANGE_TAGS, selection=[dg.AssetKey(["bronze", "transactions"])]
    )

    events = result.asset_materializations_for_node("bronze__transactions")
    assert [e.partition for e in events] == [str(d) for d in DAYS]
    # The range's facts are on its last day, the asset's latest materialization; the other days point there.
    *earlier, event = events
    assert {tuple(e.metadata) for e in earlier} == {("range_run",)}
    assert f"are on {LAST}" in earlier[0].metadata["range_run"].value
    assert event.metadata["rows_written"].value == sum(drop_rows(raw_data, "transactions", d) for d in DAYS)
    assert event.metadata["columns_beyond_contract"].value == "coupon_code"
    columns = [c.name for c in event.metadata["dagster/column_schema"].schema.columns]
    assert columns[-6:] == [
        "coupon_code",
        "_raw_line",
        "_parse_error",
        "_source_file",
        "_ingested_at",
        "partition_date",
    ]

    by_day = (
        bronze(spark, lakehouse, "transactions")
        .groupBy(F.col("partition_date") >= F.lit(COUPON_FROM))
        .agg(F.count("coupon_code").alias("with_code"), F.count(F.lit(1)).alias("rows"))
        .collect()
    )
    with_code = {bool(r[0]): r.with_code for r in by_day}
    assert with_code[False] == 0 and with_code[True] > 0


def test_a_day_without_a_drop_is_reported_and_writes_nothing(settings: Settings, lakehouse: Path) -> None:
    day = LAST + timedelta(days=30)
    result = dg.materialize(
        [*bronze_assets, *silver_assets],
        resources=lakehouse_resources(settings, lakehouse),
        partition_key=str(day),
    )

    assert result.success
    assert result.get_asset_materialization_events() == []
    observed = {
        o.asset_key.to_user_string(): o.asset_observation_data.asset_observation.metadata
        for o in result.get_asset_observation_events()
    }
    for source in ("transactions", "products", "customers", "web_events"):
        assert observed[f"bronze/{source}"]["status"].value == "no drop"
        assert observed[f"bronze/{source}"]["days_without_drop"].value == str(day)
    checks = result.get_asset_check_evaluations()
    assert {c.asset_key.path[0] for c in checks} >= {"bronze"}
    for check in checks:
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert (
            "no drop" in check.metadata["not_evaluated"].value
            or "no rows" in check.metadata["not_evaluated"].value
        )
    assert not (lakehouse / "bronze").exists() and not (lakehouse / "silver").exists()


def test_a_non_spark_delta_reader_reads_bronze(
    spark: SparkSession, settings: Settings, lakehouse: Path
) -> None:
    materialize(settings, lakehouse, tags=RANGE_TAGS, selection=[dg.AssetKey(["bronze", "customers"])])
    path = str(lakehouse / "bronze" / "customers")

    table = deltalake.DeltaTable(path)
    arrow = table.to_pyarrow_table(columns=["customer_id", "partition_date"])

    spark_rows = bronze(spark, lakehouse, "customers")
    assert table.version() == 0
    assert arrow.num_rows == spark_rows.count()
    assert sorted(arrow.column("customer_id").to_pylist(), key=str) == sorted(
        (r.customer_id for r in spark_rows.select("customer_id").collect()), key=str
    )
