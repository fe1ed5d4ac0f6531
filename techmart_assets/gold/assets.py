"""Gold assets beyond dbt: the daily sales report, built from the gold tables for each day."""

import base64
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
from dagster._check import CheckError
from dagster_pyspark import PySparkResource

from techmart_assets.gold.report import CheckResult, gather, summary_markdown, write_report
from techmart_assets.partitions import daily_partitions, run_days
from techmart_assets.quality.history import checks_of_day
from techmart_assets.resources import SPARK_BATCH_POOL, LakehouseResource

REPORT_KEY = dg.AssetKey(["gold", "daily_sales_report"])
REPORT_INPUTS = [
    dg.AssetKey(["gold", "metrics", "daily_sales"]),
    dg.AssetKey(["gold", "metrics", "product_performance"]),
    dg.AssetKey(["gold", "metrics", "web_funnel"]),
    dg.AssetKey(["gold", "metrics", "category_interest"]),
]
# The layers whose check results the report's data-quality section lists.
CHECKED_LAYERS = ("bronze", "silver", "gold")


def whole_graph(context: dg.AssetExecutionContext):
    """The code location's whole asset graph: a backfill's run of the report alone has a job of one
    asset, so its own graph has no checks. A run outside a code location (`dg.materialize`) has only
    its job's."""
    try:
        return context.repository_def.asset_graph
    except CheckError:
        return context.job_def.asset_layer.asset_graph


def day_check_results(context: dg.AssetExecutionContext, day: date) -> list[CheckResult]:
    """Each check on the lakehouse's tables with its result for `day`: the evaluation of the latest
    run that covered the day (a backfilled day shows its own results, not today's)."""
    graph = whole_graph(context)
    return [
        CheckResult(c.asset, c.check, c.status, c.description)
        for c in checks_of_day(context.instance, graph, day, CHECKED_LAYERS)
    ]


@dg.asset(
    key=REPORT_KEY,
    deps=REPORT_INPUTS,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=SPARK_BATCH_POOL,
    # Each day of a range run records its own materialization, with that day's figures.
    output_required=False,
    group_name="gold",
    kinds={"spark", "html"},
    description=(
        "The daily sales report: the day's revenue against the trailing 7 and 28 days, top products "
        "and categories, payment methods and channels, the day's customer behaviour (the web funnel, "
        "abandoned carts, the top categories viewed but not bought), fraud alerts and a data-quality "
        "summary. Written to reports/YYYY-MM-DD/report.html with chart.png."
    ),
)
def daily_sales_report(
    context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource
) -> Iterator[dg.AssetMaterialization]:
    session = spark.spark_session
    days = run_days(context)
    for day in days:
        checks = day_check_results(context, day)
        figures = gather(
            session,
            day,
            gold=lakehouse.layer_path("gold"),
            silver=lakehouse.layer_path("silver"),
            fraud_alerts_path=lakehouse.table_path("gold", "fraud_alerts"),
        )
        figures.checks = checks
        folder = Path(lakehouse.reports) / day.isoformat()
        report, chart_path, chart = write_report(figures, folder)
        context.log.info(f"report for {day}: {report}")
        summary = summary_markdown(figures)
        if day == days[-1]:
            # The chart inline for the last day only: a range of days would fill the event log with images.
            encoded = base64.b64encode(chart).decode()
            summary += f"\n\n![daily revenue and categories](data:image/png;base64,{encoded})"
        totals = figures.totals
        yield dg.AssetMaterialization(
            asset_key=REPORT_KEY,
            partition=day.isoformat(),
            metadata={
                "summary": dg.MetadataValue.md(summary),
                "report": dg.MetadataValue.path(str(report)),
                "chart": dg.MetadataValue.path(str(chart_path)),
                "revenue_mad": float(totals.revenue) if totals else 0.0,
                "orders": totals.orders if totals else 0,
                "abandoned_carts": figures.abandoned_carts or 0,
                "fraud_alerts": figures.fraud_alerts if figures.fraud_alerts is not None else 0,
                "quarantined_rows": sum(int(r["rows"]) for r in figures.quarantine),
                "failing_checks": sum(c.status in ("failed", "warning") for c in checks),
            },
        )
