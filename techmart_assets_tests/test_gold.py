"""Gold through Dagster and real dbt on generated drops: the star schema matches silver day by day,
sales point at the dimension versions in force, dbt tests are asset checks (and a planted violation
fails one), a partition rebuild replaces exactly its day, and the report holds the right figures."""

from __future__ import annotations

import html
import json
import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import jinja2
import pyspark
import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from techmart_assets.bronze import bronze_assets
from techmart_assets.gold import gold_assets
from techmart_assets.gold.assets import REPORT_KEY
from techmart_assets.gold.dbt import gold_dbt_assets
from techmart_assets.gold.dbt_runtime import (
    DBT_PROJECT_DIR,
    dbt_environment,
    dbt_subprocess,
    ensure_manifest,
    environment,
    register_lakehouse_tables,
    stream_dbt,
)
from techmart_assets.jobs import DAILY_JOB, LAKEHOUSE_JOB, daily_schedule, yesterday_partition
from techmart_assets.resources import spark_config
from techmart_assets.settings import Settings
from techmart_assets.silver import silver_assets
from techmart_assets.streaming import broker, producer
from techmart_assets.streaming.assets import customer_profiles
from techmart_assets_tests.support import DAYS, RANGE_TAGS, SMALL, ingesting, lakehouse_resources, table

FACT_SALES = dg.AssetKey(["gold", "fact_sales"])
FACT_UNIQUE_CHECK = dg.AssetCheckKey(FACT_SALES, "unique_fact_sales_transaction_id")
SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)


def resources(settings: Settings, root: Path) -> dict[str, object]:
    return lakehouse_resources(settings, root)


def run_gold(settings: Settings, root: Path, day) -> dg.ExecuteInProcessResult:
    """Only the dbt assets, for one day: silver is read as it is on disk."""
    return dg.materialize(
        gold_dbt_assets, resources=resources(settings, root), partition_key=str(day), raise_on_error=False
    )


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory, raw_data: Path, settings: Settings):
    """Every layer, the reports and the fraud rules' profiles for the whole generated range, as one run."""
    root = tmp_path_factory.mktemp("gold") / "lakehouse"
    root.mkdir()
    (root / "raw_data").symlink_to(raw_data)
    result = dg.materialize(
        [*bronze_assets, *silver_assets, *gold_assets, customer_profiles],
        resources=resources(settings, root),
        tags=RANGE_TAGS,
        raise_on_error=False,
    )
    return root, result


def sales_by_day(frame, day_column: str, amount_column: str) -> dict:
    rows = frame.groupBy(day_column).agg(F.count("*").alias("n"), F.sum(amount_column).alias("amount"))
    return {r[day_column]: (r["n"], r["amount"]) for r in rows.collect()}


def test_fact_sales_equal_silver_for_every_day(spark: SparkSession, gold) -> None:
    root, result = gold
    assert result.success
    silver = sales_by_day(table(spark, root, "silver", "transactions"), "partition_date", "total_amount")
    fact = sales_by_day(table(spark, root, "gold", "fact_sales"), "sale_date", "amount")
    assert set(silver) == set(DAYS)
    assert fact == silver
    assert (
        table(spark, root, "gold", "fact_sales").where("customer_sk is null or product_sk is null").count()
        == 0
    )


def test_sales_point_at_the_customer_version_in_force(spark: SparkSession, gold) -> None:
    root, _ = gold
    versions = table(spark, root, "gold", "dim_customers")
    fact = table(spark, root, "gold", "fact_sales")
    # Customers whose segment changed during the range, with sales both before and after the change.
    changed = (
        versions.where("version_number > 1")
        .select("customer_id", F.col("valid_from").alias("changed_at"), F.col("segment").alias("new_segment"))
        .join(fact, "customer_id")
        .groupBy("customer_id", "changed_at", "new_segment")
        .agg(
            F.sum(F.when(F.col("transaction_ts") < F.col("changed_at"), 1).otherwise(0)).alias("before"),
            F.sum(F.when(F.col("transaction_ts") >= F.col("changed_at"), 1).otherwise(0)).alias("after"),
        )
        .where("before > 0 and after > 0")
        .collect()
    )
    assert changed, "the generated data should hold a customer whose segment changed between two sales"
    customer = changed[0]
    sales = (
        fact.where(F.col("customer_id") == customer.customer_id)
        .join(versions.select("customer_sk", "segment", "valid_from", "valid_to"), "customer_sk")
        .collect()
    )
    for sale in sales:
        assert sale.valid_from <= sale.transaction_ts or sale.valid_from == min(s.valid_from for s in sales)
        assert sale.valid_to is None or sale.transaction_ts < sale.valid_to
        expected_new = sale.transaction_ts >= customer.changed_at
        assert (sale.segment == customer.new_segment) == expected_new or not expected_new
    after = [s for s in sales if s.transaction_ts >= customer.changed_at]
    before = [s for s in sales if s.transaction_ts < customer.changed_at]
    assert {s.segment for s in after} == {customer.new_segment}
    assert {s.customer_sk for s in before}.isdisjoint({s.customer_sk for s in after})
    # Every sale, not only this customer's: its version's [valid_from, valid_to) holds its timestamp.
    misplaced = (
        fact.join(versions.select("customer_sk", "valid_from", "valid_to"), "customer_sk")
        .where("transaction_ts >= valid_from and valid_to is not null and transaction_ts >= valid_to")
        .count()
    )
    assert misplaced == 0


def test_dbt_tests_are_asset_checks_on_gold_and_pass(gold) -> None:
    _, result = gold
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()
    }
    gold_checks = {key for key in evaluations if key[0].startswith("gold/")}
    assert ("gold/fact_sales", "unique_fact_sales_transaction_id") in gold_checks
    assert (
        "gold/fact_sales",
        "relationships_fact_sales_customer_sk__customer_sk__ref_dim_customers_",
    ) in gold_checks
    assert ("gold/fact_sales", "fact_sales_reconciles_with_silver") in gold_checks
    assert (
        "gold/metrics/daily_sales",
        "unique_combination_daily_sales_sale_date__breakdown__breakdown_value",
    ) in (gold_checks)
    assert (
        "gold/metrics/category_interest",
        "unique_combination_category_interest_event_date__category",
    ) in gold_checks
    failed = [key for key in gold_checks if not evaluations[key].passed]
    assert failed == []


def test_the_dbt_unit_tests_pass_and_the_production_build_leaves_them_to_ci(
    spark: SparkSession, settings: Settings, gold, tmp_path: Path
) -> None:
    root, result = gold
    # One dbt build per gold definition of the run: the current dimensions, the days, customer value.
    builds = list((DBT_PROJECT_DIR / "target" / "runs").glob(f"{result.run_id[:8]}-*/run_results.json"))
    assert len(builds) == 3
    ran = [
        r["unique_id"]
        for built in builds
        for r in json.loads(built.read_text())["results"]
        if not r["unique_id"].startswith("operation.")  # each build's on-run-start hook
    ]
    assert any(r.startswith("model.techmart.fact_sales") for r in ran)
    assert len(ran) == len(set(ran))  # no model or test built twice
    assert not [r for r in ran if r.startswith("unit_test.")]

    target = tmp_path / "target"
    for _ in stream_dbt(spark, ["run", "--select", "staging"], str(root), settings, target_path=target):
        pass  # the unit tests read the staging views' columns
    unit_tests = stream_dbt(
        spark, ["test", "--select", "test_type:unit"], str(root), settings, target_path=target
    )
    finished = {
        e["data"]["node_info"]["unique_id"]: e["data"]["node_info"]["node_status"]
        for e in unit_tests
        if e["info"]["name"] == "NodeFinished"
    }
    assert finished == {
        "unit_test.techmart.fact_sales.fact_sales_points_at_the_versions_in_force_at_the_sale": "pass",
        "unit_test.techmart.fact_sales.fact_sales_builds_only_the_days_of_the_window": "pass",
        "unit_test.techmart.web_funnel.web_funnel_counts_carts_without_a_purchase_as_abandoned": "pass",
        "unit_test.techmart.category_interest."
        "category_interest_ranks_categories_by_views_not_bought_in_the_session": "pass",
    }


def test_gold_tables_have_row_counts_and_versions_in_the_ui(gold) -> None:
    _, result = gold
    materializations = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    fact = materializations["gold/fact_sales"]
    assert fact["dagster/row_count"].value > 0
    assert fact["delta_version"].value == 0
    assert "gold/staging/stg_transactions" in materializations


def test_the_producer_reads_each_customers_purchases_from_silver(spark: SparkSession, gold, tmp_path) -> None:
    """`techmart stream`'s usual baskets: every completed sale of silver, by its customer."""
    root, _ = gold
    history = producer.read_history(str(root / "silver" / "transactions"))
    completed = table(spark, root, "silver", "transactions").where(F.col("status") == "completed")
    expected = completed.groupBy("customer_id").agg(
        F.count("*").alias("n"), F.sum("total_amount").alias("sum")
    )
    assert {c: len(p) for c, p in history.items()} == {r.customer_id: r.n for r in expected.collect()}
    assert sum(p.total_amount for ps in history.values() for p in ps) == pytest.approx(
        float(completed.agg(F.sum("total_amount")).first()[0])
    )
    assert producer.read_history(str(tmp_path / "no_table")) == {}


def test_the_report_holds_the_day_figures_computed_from_silver(spark: SparkSession, gold) -> None:
    root, result = gold
    day = DAYS[-1]
    completed = table(spark, root, "silver", "transactions").where("status = 'completed'")
    today = completed.where(F.col("partition_date") == F.lit(day))
    revenue, orders, customers = today.agg(
        F.sum("total_amount"), F.count("*"), F.countDistinct("customer_id")
    ).first()
    trailing = completed.where(
        F.col("partition_date").between(day - timedelta(days=7), day - timedelta(days=1))
    )
    trailing_7 = (trailing.agg(F.sum("total_amount")).first()[0] / 7).quantize(Decimal("0.01"))
    top = (
        today.groupBy("product_id")
        .agg(F.sum("total_amount").alias("revenue"))
        .orderBy(F.desc("revenue"), "product_id")
        .first()
    )
    top_name = (
        table(spark, root, "silver", "products")
        .where(F.col("product_id") == top.product_id)
        .orderBy(F.desc("valid_from"))
        .first()
        .name
    )

    report = (root / "reports" / str(day) / "report.html").read_text()
    assert (root / "reports" / str(day) / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{revenue:,.2f} MAD" in report
    assert f"<td>orders</td><td>{orders:,}</td>" in report
    assert f"<td>distinct customers</td><td>{customers:,}</td>" in report
    assert f"({trailing_7:,.2f} MAD)" in report
    assert top_name in re.search(r"<h2>Top products</h2><table>.*?</tr>.*?</tr>", report).group(0)
    assert "fraud detection has not written an alerts table yet" in report
    assert all((root / "reports" / str(d) / "report.html").exists() for d in DAYS)

    reports = {
        e.partition: e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == REPORT_KEY
    }
    assert set(reports) == {str(d) for d in DAYS}
    materialization = reports[str(day)]
    assert materialization.metadata["revenue_mad"].value == pytest.approx(float(revenue))
    assert materialization.metadata["orders"].value == orders
    assert f"{revenue:,.2f} MAD" in materialization.metadata["summary"].value


INTEREST_FIGURES = (
    "sessions",
    "product_views",
    "add_to_carts",
    "purchases",
    "viewed_not_bought",
    "viewed_not_bought_sessions",
)


def categorized_web_events(spark: SparkSession, root: Path) -> list:
    """Silver's events on a product (view, cart, purchase) with the category of the product version
    in force at the event (the first version for an event older than it), '(unknown)' without one."""
    events = table(spark, root, "silver", "web_events").where(
        F.col("event_type").isin("product_view", "add_to_cart", "purchase") & F.col("product_id").isNotNull()
    )
    versions = table(spark, root, "silver", "products").select(
        "product_id", "category", "valid_from", "valid_to"
    )
    in_force = (F.col("valid_from") <= F.col("event_ts")) & (
        F.col("valid_to").isNull() | (F.col("event_ts") < F.col("valid_to"))
    )
    pick = Window.partitionBy("event_id").orderBy(F.when(in_force, 0).otherwise(1), "valid_from")
    return (
        events.join(versions, "product_id", "left")
        .withColumn("pick", F.row_number().over(pick))
        .where("pick = 1")
        .select(
            "partition_date",
            "session_id",
            "event_type",
            F.coalesce("category", F.lit("(unknown)")).alias("category"),
        )
        .collect()
    )


def test_abandoned_carts_and_categories_viewed_not_bought_equal_silver_web_events(
    spark: SparkSession, gold
) -> None:
    """web_funnel's abandoned carts and category_interest, every day, against the same figures counted
    here in Python from silver's events; then the last day's report shows them."""
    root, result = gold
    kinds: dict[tuple, set[str]] = defaultdict(set)  # (day, session) -> its event types that day
    for e in (
        table(spark, root, "silver", "web_events")
        .select("partition_date", "session_id", "event_type")
        .collect()
    ):
        kinds[(e.partition_date, e.session_id)].add(e.event_type)
    carts, abandoned = Counter(), Counter()
    for (day, _), types in kinds.items():
        carts[day] += "add_to_cart" in types
        abandoned[day] += "add_to_cart" in types and "purchase" not in types
    funnel = {r.event_date: r for r in table(spark, root, "gold/metrics", "web_funnel").collect()}
    assert set(funnel) == set(DAYS)
    assert {d: (r.add_to_cart_sessions, r.abandoned_cart_sessions) for d, r in funnel.items()} == {
        d: (carts[d], abandoned[d]) for d in DAYS
    }
    assert all(0 < abandoned[d] < carts[d] for d in DAYS)  # the data has carts bought and carts left
    for d, r in funnel.items():
        assert float(r.cart_abandonment_rate) == pytest.approx(abandoned[d] / carts[d], abs=5e-5)

    sessions: dict[tuple, Counter] = defaultdict(Counter)  # (day, session, category) -> event types
    for e in categorized_web_events(spark, root):
        sessions[(e.partition_date, e.session_id, e.category)][e.event_type] += 1
    expected: dict[tuple, Counter] = defaultdict(Counter)  # (day, category) -> its figures
    for (day, _, category), n in sessions.items():
        bought = n["purchase"] > 0
        expected[(day, category)].update(
            {
                "sessions": 1,
                "product_views": n["product_view"],
                "add_to_carts": n["add_to_cart"],
                "purchases": n["purchase"],
                "viewed_not_bought": 0 if bought else n["product_view"],
                "viewed_not_bought_sessions": int(n["product_view"] > 0 and not bought),
            }
        )
    interest = table(spark, root, "gold/metrics", "category_interest").collect()
    assert {(r.event_date, r.category): {c: r[c] for c in INTEREST_FIGURES} for r in interest} == {
        key: {c: figures[c] for c in INTEREST_FIGURES} for key, figures in expected.items()
    }
    for day in DAYS:
        ranked = sorted(
            (r for r in interest if r.event_date == day), key=lambda r: (-r.viewed_not_bought, r.category)
        )
        assert [r.viewed_not_bought_rank for r in ranked] == list(range(1, len(ranked) + 1))

    # The last day's report: its top 5 categories with views not bought, in order, with their figures.
    day = DAYS[-1]
    ranked = sorted(
        ((category, f) for (d, category), f in expected.items() if d == day and f["viewed_not_bought"]),
        key=lambda cf: (-cf[1]["viewed_not_bought"], cf[0]),
    )
    top = [
        (rank, category, f["product_views"], f["viewed_not_bought"], f["add_to_carts"], f["purchases"])
        for rank, (category, f) in enumerate(ranked[:5], start=1)
    ]
    assert len(top) == 5
    report = (root / "reports" / str(day) / "report.html").read_text()
    section = report[report.index("<h3>Viewed but not bought</h3>") : report.index("<h2>Fraud alerts</h2>")]
    assert re.findall(r"<tr>(.*?)</tr>", section)[1:] == [
        "".join(f"<td>{v:,}</td>" if isinstance(v, int) else f"<td>{html.escape(v)}</td>" for v in row)
        for row in top
    ]
    sentence = (
        f"{abandoned[day]:,} of the {carts[day]:,} sessions that added to a cart made no purchase "
        f"({abandoned[day] / carts[day]:.1%})"
    )
    assert f"<p>{sentence}</p>" in report
    (materialization,) = (
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == REPORT_KEY and e.partition == str(day)
    )
    assert materialization.metadata["abandoned_carts"].value == abandoned[day]
    assert f"**Abandoned carts** {sentence}" in materialization.metadata["summary"].value
    assert f"| 1 | {top[0][1]} | {top[0][2]} | {top[0][3]} |" in materialization.metadata["summary"].value


def test_the_dbt_session_refuses_another_spark_version(settings: Settings) -> None:
    ran = dbt_subprocess(
        ["run-operation", "check_lakehouse_session"],
        settings,
        {"TECHMART_SPARK_VERSION": "3.4.0"},
        capture=True,
    )
    assert ran.returncode != 0
    assert f"dbt's Spark is {pyspark.__version__} but the project's pyspark is 3.4.0" in ran.stdout


def test_dbt_refuses_a_lakehouse_whose_tables_are_not_registered(settings: Settings, tmp_path: Path) -> None:
    """dbt run on its own would not find the incremental tables in the in-memory catalog."""
    from dbt.cli.main import dbtRunner

    errors: list[str] = []
    args = ["run-operation", "check_lakehouse_session", "--project-dir", str(DBT_PROJECT_DIR)]
    args += ["--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target")]
    with environment(dbt_environment(settings, str(tmp_path))):
        result = dbtRunner(
            callbacks=[lambda e: errors.append(e.info.msg) if e.info.level == "error" else None]
        ).invoke(args)
    assert not result.success
    assert any(f"The lakehouse {tmp_path} has not been registered" in e for e in errors), errors


def test_the_catalog_follows_the_lakehouse_of_the_run(spark: SparkSession, gold, tmp_path: Path) -> None:
    root, _ = gold
    manifest = yaml.safe_load(ensure_manifest().read_text())  # JSON is YAML
    # A lakehouse with no gold yet: nothing registered, so dbt creates every table at its path.
    assert register_lakehouse_tables(spark, manifest, str(tmp_path)) == []
    assert not spark.catalog.tableExists("gold.fact_sales")
    registered = register_lakehouse_tables(spark, manifest, str(root))
    assert {"silver.transactions", "gold.fact_sales", "gold.daily_sales", "gold.moroccan_holidays"} <= set(
        registered
    )
    detail = spark.sql("DESCRIBE DETAIL gold.daily_sales").first()
    assert detail.location.rstrip("/").endswith(f"{root}/gold/metrics/daily_sales")
    assert spark.table("gold.fact_sales").count() == table(spark, root, "gold", "fact_sales").count()


def materialized_partitions(result: dg.ExecuteInProcessResult) -> dict[str, list[str | None]]:
    partitions: dict[str, list[str | None]] = {}
    for event in result.get_asset_materialization_events():
        partitions.setdefault(event.asset_key.to_user_string(), []).append(event.partition)
    return partitions


# The tables that describe now, not a day: (layer, name) under the lakehouse.
CURRENT_TABLES = (
    ("gold", "dim_customers"),
    ("gold", "dim_products"),
    ("gold", "dim_date"),
    ("gold/metrics", "customer_value"),
    ("gold", "customer_profiles"),
)


def current_rows(spark: SparkSession, root: Path, layer: str, name: str) -> list[tuple]:
    """A table's rows, sorted, with doubles to 9 significant digits: a standard deviation summed in
    another order differs in its last bits."""

    def value(v: object) -> object:
        return float(f"{v:.9g}") if isinstance(v, float) else v

    return sorted(tuple(value(v) for v in row) for row in table(spark, root, layer, name).collect())


def test_a_backfill_of_the_first_day_leaves_the_current_tables_as_they_were(
    spark: SparkSession, settings: Settings, gold
) -> None:
    """Re-running the history's first day through every layer replaces that day's facts and rebuilds
    the current tables as of the latest day, equal to the range build's: customer value and the fraud
    rules' profiles are not rewound to the backfilled day."""
    root, built = gold
    last_sale = table(spark, root, "gold", "fact_sales").agg(F.max("sale_date")).first()[0]
    before = {name: current_rows(spark, root, layer, name) for layer, name in CURRENT_TABLES}
    value = table(spark, root, "gold/metrics", "customer_value")
    assert {r.as_of_date for r in value.select("as_of_date").distinct().collect()} == {last_sale}
    profiles = table(spark, root, "gold", "customer_profiles")
    assert {r.as_of for r in profiles.select("as_of").distinct().collect()} == {DAYS[-1]}

    result = dg.materialize(
        [*bronze_assets, *silver_assets, *gold_assets, customer_profiles],
        resources=resources(settings, root),
        partition_key=str(DAYS[0]),
        raise_on_error=False,
    )
    assert result.success
    after = {name: current_rows(spark, root, layer, name) for layer, name in CURRENT_TABLES}
    for name, rows in before.items():
        assert after[name] == rows, name
    # The per-day tables were written for the backfilled day; each current one once, with no partition,
    # as in the range build.
    current = {f"{layer}/{name}" for layer, name in CURRENT_TABLES}
    assert materialized_partitions(result)["gold/fact_sales"] == [str(DAYS[0])]
    for run in (built, result):
        partitions = materialized_partitions(run)
        assert {key: partitions[key] for key in current} == {key: [None] for key in current}


# Last in the module: it changes silver under the built gold tables (silver is restored afterwards).
def test_the_facts_build_alone_in_a_process_whose_catalog_lacks_the_staging_views(
    spark: SparkSession, settings: Settings, gold
) -> None:
    """A backfill under the daemon builds the staging views in one run and fact_sales in another
    process: the views, only catalog entries, are not there. The build creates them first."""
    root, _ = gold
    day = DAYS[5]
    before = sales_by_day(table(spark, root, "gold", "fact_sales"), "sale_date", "amount")
    for view in ("stg_transactions", "stg_customers", "stg_products", "stg_web_events"):
        spark.sql(f"DROP VIEW IF EXISTS staging.{view}")
    result = dg.materialize(
        gold_dbt_assets,
        selection=[FACT_SALES],
        resources=resources(settings, root),
        partition_key=str(day),
        raise_on_error=False,
    )
    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == {FACT_SALES}
    assert sales_by_day(table(spark, root, "gold", "fact_sales"), "sale_date", "amount") == before
    assert spark.catalog.tableExists("staging.stg_transactions")


def test_a_day_rebuild_replaces_exactly_that_day_and_a_planted_duplicate_fails_its_check(
    spark: SparkSession, settings: Settings, gold
) -> None:
    root, _ = gold
    day = DAYS[3]
    fact_path = str(root / "gold" / "fact_sales")
    silver_path = str(root / "silver" / "transactions")
    before = {r.transaction_id: r for r in table(spark, root, "gold", "fact_sales").collect()}
    version = DeltaTable.forPath(spark, fact_path).history(1).first().version
    silver_version = DeltaTable.forPath(spark, silver_path).history(1).first().version
    # One sale of the day disappears from silver, and another arrives twice, as if deduplication had
    # let it through: the day's rebuild must drop the first, and the unique test must fail on the second.
    gone, twice = (
        table(spark, root, "silver", "transactions").where(F.col("partition_date") == F.lit(day)).take(2)
    )
    DeltaTable.forPath(spark, silver_path).delete(F.col("transaction_id") == gone.transaction_id)
    (
        table(spark, root, "silver", "transactions")
        .where(F.col("transaction_id") == twice.transaction_id)
        .write.format("delta")
        .mode("append")
        .save(silver_path)
    )
    # A duplicate on another day of fact_sales, pointing at no customer: the day's tests read the
    # day's rows only, but a relationships test reads them all (the dimension changes every day).
    facts = table(spark, root, "gold", "fact_sales")
    (elsewhere,) = facts.where(F.col("sale_date") == F.lit(DAYS[2])).take(1)
    (
        facts.where(F.col("transaction_id") == elsewhere.transaction_id)
        .withColumn("customer_sk", F.lit(-1).cast(facts.schema["customer_sk"].dataType))
        .write.format("delta")
        .mode("append")
        .save(fact_path)
    )
    try:
        result = run_gold(settings, root, day)
    finally:
        spark.sql(f"RESTORE TABLE delta.`{silver_path}` TO VERSION AS OF {silver_version}")

    after = table(spark, root, "gold", "fact_sales").collect()
    assert Counter(r.transaction_id for r in after) == Counter(
        {t: 1 for t in before if t != gone.transaction_id}
    ) + Counter({twice.transaction_id: 1, elsewhere.transaction_id: 1})
    assert all(r == before[r.transaction_id] for r in after if r.sale_date != day and r.customer_sk != -1)
    commits = DeltaTable.forPath(spark, fact_path).history().where(f"version > {version + 1}").collect()
    assert [c.operation for c in commits] == ["WRITE"]
    assert commits[0].operationParameters["predicate"] == (
        f"((sale_date >= DATE '{day}') AND (sale_date < DATE '{day + timedelta(days=1)}'))"
    )

    evaluations = {
        dg.AssetCheckKey(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()
    }
    unique = evaluations[FACT_UNIQUE_CHECK]
    assert not unique.passed and unique.severity == dg.AssetCheckSeverity.ERROR
    # The day's duplicate only: the one planted on another day is outside the window.
    assert unique.metadata["dagster_dbt/failed_row_count"].value == 1
    assert evaluations[dg.AssetCheckKey(FACT_SALES, "not_null_fact_sales_transaction_id")].passed
    (orphans,) = (
        e for k, e in evaluations.items() if k.name.startswith("relationships_fact_sales_customer_sk")
    )
    assert not orphans.passed and orphans.metadata["dagster_dbt/failed_row_count"].value == 1
    # The failed test stops what is built on fact_sales in the same dbt build.
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert FACT_SALES in materialized and dg.AssetKey(["gold", "metrics", "daily_sales"]) not in materialized
    # The seed was loaded again by this second build, into the same external table: no old rows left.
    holidays = (DBT_PROJECT_DIR / "seeds" / "moroccan_holidays.csv").read_text().strip().splitlines()
    assert table(spark, root, "gold", "moroccan_holidays").count() == len(holidays) - 1
    # The module's later tests build on fact_sales as it was.
    spark.sql(f"RESTORE TABLE delta.`{fact_path}` TO VERSION AS OF {version}")


def test_the_schedule_asks_for_yesterday_in_casablanca() -> None:
    tick = datetime(2025, 3, 10, 6, 0, tzinfo=ZoneInfo("Africa/Casablanca"))
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        request = daily_schedule(context)
    assert request.partition_key == "2025-03-09"
    assert request.run_key == "2025-03-09"
    assert daily_schedule.job_name == DAILY_JOB
    assert daily_schedule.execution_timezone == "Africa/Casablanca"
    assert daily_schedule.cron_schedule == "0 6 * * *"
    # Just after midnight in Casablanca it is still the day before in UTC: Casablanca's calendar wins.
    late = datetime(2025, 6, 2, 0, 30, tzinfo=ZoneInfo("Africa/Casablanca"))
    assert yesterday_partition(late) == "2025-06-01"


def test_the_daily_job_covers_every_layer_and_the_lakehouse_build_all_but_the_report() -> None:
    from techmart_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    daily = defs.resolve_job_def(DAILY_JOB).asset_layer.selected_asset_keys
    build = defs.resolve_job_def(LAKEHOUSE_JOB).asset_layer.selected_asset_keys
    layers = {key.path[0] for key in daily}
    assert layers == {"bronze", "silver", "gold"}
    assert REPORT_KEY in daily and REPORT_KEY not in build
    assert daily - build == {REPORT_KEY}
    # One lineage: the dbt sources are the silver assets, not separate source assets.
    assert graph.get(FACT_SALES).parent_keys == {
        dg.AssetKey(["gold", "staging", "stg_transactions"]),
        dg.AssetKey(["gold", "dim_customers"]),
        dg.AssetKey(["gold", "dim_products"]),
        dg.AssetKey(["gold", "dim_date"]),  # date_key's relationship test is built with the facts
    }
    assert (
        dg.AssetKey(["silver", "transactions"])
        in graph.get(dg.AssetKey(["gold", "staging", "stg_transactions"])).parent_keys
    )


def test_the_dbt_profile_configures_spark_like_the_project(settings: Settings) -> None:
    env = dbt_environment(settings)
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    parameters = profile["techmart"]["outputs"]["local"]["server_side_parameters"]

    def render(value: str) -> str:
        return jinja2.Template(value).render(env_var=lambda name, default=None: env.get(name, default))

    rendered = {key: render(str(value)) for key, value in parameters.items()}
    project = spark_config(settings)
    for key in (
        "spark.master",
        "spark.jars",
        "spark.sql.extensions",
        "spark.sql.catalog.spark_catalog",
        "spark.sql.session.timeZone",
        "spark.sql.shuffle.partitions",
        "spark.databricks.delta.snapshotPartitions",
        "spark.sql.warehouse.dir",
    ):
        assert rendered[key] == project[key], key
    assert rendered["spark.sql.catalogImplementation"] == "in-memory"  # no metastore to share or lock


def test_streamed_sales_reach_fact_sales_and_the_report_of_their_day(
    spark: SparkSession, settings: Settings, gold, kafka: broker.BrokerConfig
) -> None:
    """`techmart stream`'s live sales, stamped on the history's last day, through streaming ingestion
    and that day's daily build: every one is in fact_sales and in the report. A message that reuses
    an id of an earlier drop is quarantined as a duplicate, with the day the id was first received."""
    root, _ = gold
    day = DAYS[-1]
    planned = producer.plan(
        120, seed=SMALL.seed, customers=SMALL.customers, products=SMALL.products, fraud_rate=0.02
    )
    started, noon = time.monotonic(), datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    earlier = table(spark, root, "silver", "transactions").where(F.col("partition_date") == F.lit(DAYS[0]))
    reused = earlier.first().transaction_id
    with ingesting(spark, root, kafka.bootstrap):
        sent = producer.send(
            planned, kafka.bootstrap, rate=200, clock=lambda: noon + (time.monotonic() - started) * SECOND
        )
        again = {**planned.messages[0], "transaction_id": reused}
        producer.send(producer.StreamPlan([again], []), kafka.bootstrap, rate=10, clock=lambda: noon + HOUR)
    assert (sent.sent, sent.failed) == (120, 0)

    result = dg.materialize(
        [*bronze_assets, *silver_assets, *gold_assets],
        resources=resources(settings, root),
        partition_key=str(day),
        raise_on_error=False,
    )
    assert result.success

    streamed = {str(m["transaction_id"]): m for m in planned.messages}
    facts = table(spark, root, "gold", "fact_sales").where(F.col("sale_date") == F.lit(day))
    in_facts = {r.transaction_id: r for r in facts.collect()}
    assert set(streamed) <= set(in_facts)
    assert all(in_facts[t].amount == Decimal(str(m["total_amount"])) for t, m in streamed.items())
    (duplicate,) = (
        table(spark, root, "silver", "transactions_quarantine")
        .where((F.col("partition_date") == F.lit(day)) & (F.col("record_key") == reused))
        .collect()
    )
    assert duplicate.quarantine_rule == "duplicate_transaction_id"
    assert duplicate.quarantine_reason == f"transaction_id '{reused}' already received on {DAYS[0]}"

    completed = facts.where("is_completed").agg(F.sum("amount"), F.count("*")).first()
    report = (root / "reports" / str(day) / "report.html").read_text()
    assert f"{completed[0]:,.2f} MAD" in report and f"<td>orders</td><td>{completed[1]:,}</td>" in report
