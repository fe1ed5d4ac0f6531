"""Gold assets beyond dbt: the daily sales report, built from the gold tables for each day."""

import base64
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster_pyspark import PySparkResource

from techmart_assets.gold.report import CheckResult, gather, summary_markdown, write_report
from techmart_assets.partitions import daily_partitions, run_days
from techmart_assets.resources import LakehouseResource

REPORT_KEY = dg.AssetKey(["gold", "daily_sales_report"])
REPORT_INPUTS = [
    dg.AssetKey(["gold", "metrics", "daily_sales"]),
    dg.AssetKey(["gold", "metrics", "product_performance"]),
    dg.AssetKey(["gold", "metrics", "web_funnel"]),
]
# The layers whose check results the report's data-quality section lists.
CHECKED_LAYERS = ("bronze", "silver", "gold")


def latest_check_results(context: dg.AssetExecutionContext) -> list[CheckResult]:
    """The latest result of every asset check on the lakehouse's tables, as the UI shows them."""
    keys = [
        key
        for key in context.job_def.asset_layer.asset_graph.asset_check_keys
        if key.asset_key.path[0] in CHECKED_LAYERS
    ]
    records = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    results = []
    for key in sorted(keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = records.get(key)
        evaluation = record.evaluation if record else None
        if evaluation is None:
            status = "not run" if record is None else record.status.value.lower()
            description = ""
        elif evaluation.passed:
            status, description = "passed", evaluation.description or ""
        else:
            warn = evaluation.severity == dg.AssetCheckSeverity.WARN
            status, description = ("warning" if warn else "failed"), evaluation.description or ""
        if record is not None and record.status.value == "PLANNED":  # its run has not finished
            status = "running"
        results.append(CheckResult(key.asset_key.to_user_string(), key.name, status, description))
    return results


@dg.asset(
    key=REPORT_KEY,
    deps=REPORT_INPUTS,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Each day of a range run records its own materialization, with that day's figures.
    output_required=False,
    group_name="gold",
    kinds={"spark", "html"},
    description=(
        "The daily sales report: the day's revenue against the trailing 7 and 28 days, top products "
        "and categories, payment methods and channels, the web funnel, fraud alerts and a data-quality "
        "summary. Written to reports/YYYY-MM-DD/report.html with chart.png."
    ),
)
def daily_sales_report(
    context: dg.AssetExecutionContext, spark: PySparkResource, lakehouse: LakehouseResource
) -> Iterator[dg.AssetMaterialization]:
    session = spark.spark_session
    checks = latest_check_results(context)
    days = run_days(context)
    for day in days:
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
                "fraud_alerts": figures.fraud_alerts if figures.fraud_alerts is not None else 0,
                "quarantined_rows": sum(int(r["rows"]) for r in figures.quarantine),
                "failing_checks": sum(c.status in ("failed", "warning") for c in checks),
            },
        )
