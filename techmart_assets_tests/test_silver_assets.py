"""Silver through Dagster on generated drops: counts reconcile, every injected dirty row is in its
quarantine under the right rule, fraud rows stay, checks report, a failing blocking check stops
what depends on it, and schema evolution works both ways."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets.bronze import bronze_assets
from techmart_assets.delta import IncompatibleSchemaError
from techmart_assets.resources import LakehouseResource
from techmart_assets.settings import Settings
from techmart_assets.silver import silver_assets
from techmart_assets_tests.support import COUPON_FROM, DAYS, RANGE_TAGS, labels, lakehouse_resources, table

RULE_OF_KIND = {
    ("transactions", "duplicate_id_same_day"): "duplicate_transaction_id",
    ("transactions", "duplicate_id_next_day"): "duplicate_transaction_id",
    ("transactions", "missing_key"): "missing_key",
    ("transactions", "zero_amount"): "non_positive_total_amount",
    ("transactions", "negative_amount"): "non_positive_total_amount",
    ("transactions", "absurd_amount"): "implausible_total_amount",
    ("transactions", "malformed_timestamp"): "invalid_timestamp",
    ("transactions", "unknown_customer"): "unknown_customer",
    ("transactions", "unknown_product"): "unknown_product",
    ("transactions", "too_few_fields"): "malformed_row",
    ("transactions", "too_many_fields"): "malformed_row",
    ("web_events", "truncated_json"): "malformed_row",
    ("web_events", "missing_key"): "missing_key",
}
SOURCES = ("transactions", "products", "customers", "web_events")


def build(settings: Settings, lakehouse: Path, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*bronze_assets, *silver_assets], resources=lakehouse_resources(settings, lakehouse), **kwargs
    )


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, raw_data: Path, settings: Settings
) -> tuple[Path, object]:
    """Bronze and silver for the whole generated range, as one run."""
    root = tmp_path_factory.mktemp("silver") / "lakehouse"
    root.mkdir()
    (root / "raw_data").symlink_to(raw_data)
    return root, build(settings, root, tags=RANGE_TAGS, raise_on_error=False)


def test_every_bronze_row_is_in_silver_or_in_quarantine(spark: SparkSession, built) -> None:
    root, result = built
    assert result.success
    for source in SOURCES:
        bronze = table(spark, root, "bronze", source).count()
        quarantined = table(spark, root, "silver", f"{source}_quarantine").count()
        if source in ("transactions", "web_events"):
            accepted = table(spark, root, "silver", source).count()
        else:
            # An SCD2 table holds versions: a record that changed nothing opens none, so count the
            # records that did, from the materialization's own accounting (a range run's is on its
            # last day).
            events = result.asset_materializations_for_node(f"silver_{source}")
            meta = [e for e in events if e.asset_key == dg.AssetKey(["silver", source])][-1].metadata
            accepted = sum(
                meta[k].value for k in ("versions_opened", "records_unchanged", "records_repeated")
            )
        assert bronze == accepted + quarantined, source


def test_each_injected_dirty_row_is_quarantined_under_its_rule(
    spark: SparkSession, built, raw_data: Path
) -> None:
    root, _ = built
    dirty = [r for r in labels(raw_data) if r["category"] == "dirty"]
    assert {(r["source"], r["kind"]) for r in dirty} == set(RULE_OF_KIND)
    for source in ("transactions", "web_events"):
        quarantine = table(spark, root, "silver", f"{source}_quarantine").collect()
        expected = Counter(
            (r["partition_date"], RULE_OF_KIND[(source, r["kind"])]) for r in dirty if r["source"] == source
        )
        assert Counter((str(q.partition_date), q.quarantine_rule) for q in quarantine) == expected, source
        by_key = {(q.record_key, q.quarantine_rule) for q in quarantine}
        for label in dirty:
            if label["source"] == source and not label["record_id"].startswith("line:"):
                assert (label["record_id"], RULE_OF_KIND[(source, label["kind"])]) in by_key, label
    reasons = (
        table(spark, root, "silver", "transactions_quarantine").where("quarantine_reason IS NULL").count()
    )
    assert reasons == 0


def test_fraud_rows_are_valid_sales_and_stay_in_silver(spark: SparkSession, built, raw_data: Path) -> None:
    root, _ = built
    fraud_ids = {r["record_id"] for r in labels(raw_data) if r["category"] == "fraud"}
    silver_ids = {
        r.transaction_id
        for r in table(spark, root, "silver", "transactions").select("transaction_id").collect()
    }
    assert fraud_ids and fraud_ids <= silver_ids


def test_silver_transactions_are_unique_typed_and_enriched(spark: SparkSession, built) -> None:
    root, _ = built
    silver = table(spark, root, "silver", "transactions")
    assert silver.count() == silver.select("transaction_id").distinct().count()
    assert dict(silver.dtypes)["total_amount"] == "decimal(14,2)"
    assert dict(silver.dtypes)["transaction_ts"] == "timestamp"
    unmatched = silver.where(F.col("customer_sk").isNull() | F.col("product_sk").isNull()).count()
    assert unmatched == 0
    customers = table(spark, root, "silver", "customers")
    joined = silver.join(customers, "customer_sk").where(
        (F.col("transaction_ts") < F.col("valid_from")) & (F.col("customer_purchase_seq") > 0)
    )
    # Only a sale before the customer's first record may take a version starting after it.
    assert joined.where(F.col("version_number") > 1).count() == 0


def test_checks_pass_and_report_each_day_in_the_run(spark: SparkSession, built) -> None:
    root, result = built
    by_day: dict[tuple[str, str], dict[str, dg.AssetCheckEvaluation]] = {}
    for e in result.get_asset_check_evaluations():
        by_day.setdefault((e.asset_key.to_user_string(), e.check_name), {})[e.partition] = e
    # One range run, and a result for every check on every day it wrote.
    assert {k for k in by_day if k[0].startswith("silver/")} == {
        (k.asset_key.to_user_string(), k.name) for a in silver_assets for k in a.check_keys
    }
    for (asset, name), days in by_day.items():
        assert sorted(days) == [str(d) for d in DAYS], (asset, name)
        for day, evaluation in days.items():
            if name not in ("quarantine_rate", "row_count_vs_history", "schema_change"):
                assert evaluation.passed, (asset, name, day, evaluation.metadata)
    # Each day reconciles its own bronze rows.
    bronze = {
        str(r.partition_date): r["count"]
        for r in table(spark, root, "bronze", "transactions").groupBy("partition_date").count().collect()
    }
    for day, reconciled in by_day[("silver/transactions", "reconciliation")].items():
        assert reconciled.metadata["bronze_rows"].value == bronze[day]
        assert reconciled.metadata["unaccounted"].value == 0
    schema = by_day[("silver/transactions", "schema_change")][str(DAYS[-1])]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.WARN
    assert schema.metadata["new_columns"].value == "coupon_code"
    assert schema.metadata["evaluated_for"].value == f"{DAYS[0]} to {DAYS[-1]}, one evaluation"


def test_a_new_source_column_reaches_silver_and_reads_null_before(spark: SparkSession, built) -> None:
    root, _ = built
    silver = table(spark, root, "silver", "transactions")
    before = silver.where(F.col("partition_date") < F.lit(COUPON_FROM))
    after = silver.where(F.col("partition_date") >= F.lit(COUPON_FROM))
    assert before.where(F.col("coupon_code").isNotNull()).count() == 0
    assert after.where(F.col("coupon_code").isNotNull()).count() > 0


def test_a_failing_blocking_check_stops_what_depends_on_it(
    spark: SparkSession, settings: Settings, tmp_path: Path, raw_data: Path
) -> None:
    day = DAYS[0]
    root = tmp_path / "lakehouse"
    for source in SOURCES:
        (root / "raw_data" / source).mkdir(parents=True)
        (root / "raw_data" / source / str(day)).symlink_to(raw_data / source / str(day))
    # Products whose prices are mostly not numbers: far above the quarantine rate's failure threshold.
    products = root / "raw_data" / "products" / str(day)
    products.unlink()
    products.mkdir()
    (original,) = (raw_data / "products" / str(day)).glob("*.csv")
    header, *rows = original.read_text().splitlines()
    price = header.split(",").index("unit_price")
    broken = [
        ",".join(v if i != price else "n/a" for i, v in enumerate(r.split(",")))
        for r in rows[: len(rows) // 2]
    ]
    (products / original.name).write_text("\n".join([header, *broken, *rows[len(rows) // 2 :]]) + "\n")

    result = build(settings, root, partition_key=str(day), raise_on_error=False)

    rate = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "quarantine_rate" and e.asset_key == dg.AssetKey(["silver", "products"])
    )
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "silver/products" in materialized and "silver/customers" in materialized
    assert "silver/transactions" not in materialized
    assert not (root / "silver" / "transactions").exists()


def test_an_incompatible_type_change_fails_naming_the_column(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "lakehouse"
    events = root / "raw_data" / "web_events"
    row = {
        "event_id": "E1",
        "session_id": "S1",
        "event_type": "page_view",
        "event_ts": "2024-11-01T10:00:00Z",
    }
    (events / "2024-11-01").mkdir(parents=True)
    (events / "2024-11-01" / "w.jsonl").write_text(json.dumps({**row, "product_id": "P1"}) + "\n")
    (events / "2024-11-02").mkdir(parents=True)
    (events / "2024-11-02" / "w.jsonl").write_text(
        json.dumps({**row, "event_id": "E2", "product_id": {"id": "P1", "variant": 2}}) + "\n"
    )
    web_bronze = [a for a in bronze_assets if dg.AssetKey(["bronze", "web_events"]) in a.keys]
    resources = lakehouse_resources(settings, root)
    dg.materialize(web_bronze, resources=resources, partition_key="2024-11-01")

    with pytest.raises(
        IncompatibleSchemaError, match=r"column 'product_id' \(table: string, new data: struct"
    ):
        dg.materialize(web_bronze, resources=resources, partition_key="2024-11-02")

    assert table(spark, root, "bronze", "web_events").count() == 1


def test_a_range_in_chunks_writes_what_one_pass_writes(
    spark: SparkSession, built, settings: Settings, tmp_path: Path, raw_data: Path
) -> None:
    """Budgets small enough to cut the two weeks into chunks: bronze and silver (duplicates across
    chunks, purchase sequences, sessions, quarantines) hold the same rows as the one-pass build."""
    one_pass, _ = built
    root = tmp_path / "lakehouse"
    root.mkdir()
    (root / "raw_data").symlink_to(raw_data)

    def chunked_by(chunk_rows: int) -> dict[str, object]:
        lakehouse = LakehouseResource(root=str(root), chunk_bytes=700_000, chunk_rows=chunk_rows)
        return {**lakehouse_resources(settings, root), "lakehouse": lakehouse}

    # About 100 sales and 900 web events a day: budgets that give each a few chunks.
    web_events = [a for a in silver_assets if dg.AssetKey(["silver", "web_events"]) in a.keys]
    rest = [a for a in silver_assets if a not in web_events]
    results = [
        dg.materialize([*bronze_assets, *rest], resources=chunked_by(500), tags=RANGE_TAGS),
        dg.materialize(web_events, resources=chunked_by(4_500), tags=RANGE_TAGS),
    ]

    chunks = {
        e.asset_key.to_user_string(): e.materialization.metadata["chunks"].value
        for result in results
        for e in result.get_asset_materialization_events()
        if "chunks" in e.materialization.metadata
    }
    assert min(chunks[k] for k in ("bronze/web_events", "silver/transactions", "silver/web_events")) > 1
    for layer, name in [
        ("bronze", "transactions"),
        ("bronze", "web_events"),
        ("silver", "transactions"),
        ("silver", "web_events"),
        ("silver", "transactions_quarantine"),
        ("silver", "web_events_quarantine"),
    ]:
        chunked, whole = (comparable(table(spark, r, layer, name)) for r in (root, one_pass))
        assert chunked.count() == whole.count() > 0, name
        assert chunked.exceptAll(whole).count() == 0 and whole.exceptAll(chunked).count() == 0, name


def comparable(frame: DataFrame) -> DataFrame:
    """A table's rows without what differs between two builds of it: times of writing, the drop
    file's folder (each lakehouse its own), and the column order (a column that a later chunk
    brings is added at the table's end)."""
    frame = frame.drop("_ingested_at", "quarantined_at", "record").withColumn(
        "_source_file", F.regexp_extract("_source_file", "raw_data/.*", 0)
    )
    return frame.select(*sorted(frame.columns))
