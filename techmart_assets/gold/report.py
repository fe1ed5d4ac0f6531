"""The daily sales report: a day's figures from the gold tables, as HTML with a chart, and as UI metadata.

The figures are read from the gold metrics (`daily_sales`, `product_performance`, `web_funnel`,
`category_interest`), the fraud alerts table once the streaming job has written one, the silver
quarantines, and the latest results of the lakehouse's asset checks. `gather` reads them with Spark;
`render_html` and `render_chart` turn them into `reports/YYYY-MM-DD/report.html` and `chart.png`.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from matplotlib.figure import Figure
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from techmart_assets.delta import is_delta_table
from techmart_assets.metadata import markdown_table

TOP_PRODUCTS = 5
TOP_CATEGORIES = 5
BREAKDOWNS = ("category", "channel", "payment_method")
FUNNEL_STEPS = ("page_view", "product_view", "add_to_cart", "checkout", "purchase")
QUARANTINED_SOURCES = ("transactions", "customers", "products", "web_events")
VIEWED_NOT_BOUGHT = (
    "views not bought (product views of the category in sessions that made no purchase of that "
    "category that day)"
)


@dataclass(frozen=True)
class DayTotals:
    revenue: Decimal
    orders: int
    units: int
    mean_basket: Decimal
    distinct_customers: int


@dataclass(frozen=True)
class CheckResult:
    asset: str
    check: str
    status: str  # passed, warning, failed, skipped
    description: str


@dataclass
class ReportFigures:
    day: date
    totals: DayTotals | None
    trailing_7: Decimal | None  # mean daily revenue of the 7 days before `day`
    trailing_28: Decimal | None
    history: list[tuple[date, Decimal]]  # daily revenue, the 28 days before and the day itself
    top_products: list[dict[str, object]]
    breakdowns: dict[str, list[dict[str, object]]]
    funnel: dict[str, int] | None
    # Sessions with an add_to_cart and no purchase; None: no web events, or the day's web_funnel row
    # was built before it had the column.
    abandoned_carts: int | None
    # The day's top categories by views not bought (category_interest), those with any.
    viewed_not_bought: list[dict[str, object]]
    fraud_alerts: int | None  # None: no fraud alerts table yet
    quarantine: list[dict[str, object]]
    checks: list[CheckResult] = field(default_factory=list)

    def change_vs(self, trailing: Decimal | None) -> float | None:
        if self.totals is None or not trailing:
            return None
        return float(self.totals.revenue / trailing - 1)

    def abandoned_share(self) -> float | None:
        """Abandoned carts against the sessions that added to a cart."""
        if self.abandoned_carts is None or not self.funnel or not self.funnel["add_to_cart"]:
            return None
        return self.abandoned_carts / self.funnel["add_to_cart"]


def _day_rows(spark: SparkSession, path: str, column: str, first: date, last: date):
    if not is_delta_table(spark, path):
        return None
    frame = spark.read.format("delta").load(path)
    return frame.where(F.col(column).between(F.lit(first), F.lit(last)))


def _ranked(
    frame: DataFrame | None, rank: str, limit: int, columns: dict[str, str], where: Column | None = None
) -> list[dict[str, object]]:
    """The rows ranked 1..`limit` by the rank column `rank` (and matching `where`), in rank order, as
    {"rank": ..., label: column value for each of `columns`}; none without a table."""
    if frame is None:
        return []
    ranked = frame.where(F.col(rank) <= limit)
    if where is not None:
        ranked = ranked.where(where)
    return [
        {"rank": r[rank], **{label: r[column] for label, column in columns.items()}}
        for r in ranked.orderBy(rank).collect()
    ]


def gather(spark: SparkSession, day: date, gold: str, silver: str, fraud_alerts_path: str) -> ReportFigures:
    """Every figure of the day's report, read from the Delta tables under `gold` and `silver`."""
    first = day - timedelta(days=28)
    sales = _day_rows(spark, f"{gold}/metrics/daily_sales", "sale_date", first, day)
    totals_by_day = {}
    breakdowns: dict[str, list[dict[str, object]]] = {b: [] for b in BREAKDOWNS}
    if sales is not None:
        for row in sales.collect():
            if row.breakdown == "total":
                totals_by_day[row.sale_date] = row
            elif row.sale_date == day:
                breakdowns[row.breakdown].append(
                    {
                        row.breakdown: row.breakdown_value,
                        "revenue": row.revenue,
                        "orders": row.orders,
                        "units": row.units,
                    }
                )
    for rows in breakdowns.values():
        rows.sort(key=lambda r: r["revenue"], reverse=True)

    today = totals_by_day.get(day)
    totals = (
        DayTotals(today.revenue, today.orders, today.units, today.mean_basket, today.distinct_customers)
        if today
        else None
    )

    def trailing_mean(days: int) -> Decimal | None:
        window = [day - timedelta(days=i) for i in range(1, days + 1)]
        revenues = [totals_by_day[d].revenue if d in totals_by_day else Decimal(0) for d in window]
        return (sum(revenues, Decimal(0)) / days).quantize(Decimal("0.01")) if totals_by_day else None

    products = _day_rows(spark, f"{gold}/metrics/product_performance", "sale_date", day, day)
    top_products = _ranked(
        products,
        "revenue_rank",
        TOP_PRODUCTS,
        {"product": "product_name", "category": "category", "units": "units", "revenue": "revenue"},
    )

    funnel_rows = _day_rows(spark, f"{gold}/metrics/web_funnel", "event_date", day, day)
    funnel_row = funnel_rows.first() if funnel_rows is not None else None
    funnel = (
        {
            "sessions": funnel_row.sessions,
            **{step: funnel_row[f"{step}_sessions"] for step in FUNNEL_STEPS},
        }
        if funnel_row
        else None
    )
    # A day built before web_funnel counted abandoned carts has no such column, or null in it.
    abandoned = funnel_row.asDict().get("abandoned_cart_sessions") if funnel_row else None

    interest = _day_rows(spark, f"{gold}/metrics/category_interest", "event_date", day, day)
    viewed_not_bought = _ranked(
        interest,
        "viewed_not_bought_rank",
        TOP_CATEGORIES,
        {
            "category": "category",
            "product views": "product_views",
            "views not bought": "viewed_not_bought",
            "added to cart": "add_to_carts",
            "purchases": "purchases",
        },
        where=F.col("viewed_not_bought") > 0,
    )

    alerts = _day_rows(spark, fraud_alerts_path, "partition_date", day, day)
    quarantine = []
    for source in QUARANTINED_SOURCES:
        rejected = _day_rows(spark, f"{silver}/{source}_quarantine", "partition_date", day, day)
        if rejected is not None:
            for r in (
                rejected.groupBy("quarantine_rule")
                .count()
                .orderBy(F.desc("count"), "quarantine_rule")
                .collect()
            ):
                quarantine.append({"source": source, "rule": r["quarantine_rule"], "rows": r["count"]})

    return ReportFigures(
        day=day,
        totals=totals,
        trailing_7=trailing_mean(7),
        trailing_28=trailing_mean(28),
        history=[(d, totals_by_day[d].revenue) for d in sorted(totals_by_day)],
        top_products=top_products,
        breakdowns=breakdowns,
        funnel=funnel,
        abandoned_carts=abandoned,
        viewed_not_bought=viewed_not_bought,
        fraud_alerts=alerts.count() if alerts is not None else None,
        quarantine=quarantine,
    )


def _mad(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.2f} MAD"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def summary_markdown(figures: ReportFigures) -> str:
    """The report's headline figures as markdown, for the materialization's metadata."""
    t = figures.totals
    lines = [f"## TechMart daily sales, {figures.day}"]
    if t is None:
        lines.append("No completed sale this day.")
    else:
        lines += [
            f"- **Revenue** {_mad(t.revenue)} ({_percent(figures.change_vs(figures.trailing_7))} vs the "
            f"7-day mean {_mad(figures.trailing_7)}, {_percent(figures.change_vs(figures.trailing_28))} "
            f"vs the 28-day mean {_mad(figures.trailing_28)})",
            f"- **Orders** {t.orders:,}, **units** {t.units:,}, **mean basket** {_mad(t.mean_basket)}, "
            f"**customers** {t.distinct_customers:,}",
        ]
    lines.append(f"- **Fraud alerts** {_fraud_text(figures)}")
    failed = [c for c in figures.checks if c.status in ("failed", "warning")]
    lines.append(
        f"- **Data quality** {sum(r['rows'] for r in figures.quarantine):,} rows quarantined; "
        f"{len(figures.checks)} checks, {len(failed)} failing or warning"
    )
    lines += ["", "### Customer behaviour"]
    if figures.funnel and figures.funnel["sessions"]:
        rate = figures.funnel["purchase"] / figures.funnel["sessions"]
        lines += [
            f"- **Web conversion** {rate:.1%} of {figures.funnel['sessions']:,} sessions",
            f"- **Abandoned carts** {_abandoned_text(figures)}",
        ]
        if figures.viewed_not_bought:
            lines += [
                "",
                f"Top {TOP_CATEGORIES} categories by {VIEWED_NOT_BOUGHT}:",
                "",
                markdown_table(figures.viewed_not_bought, list(figures.viewed_not_bought[0])),
            ]
    else:
        lines.append("No web events this day.")
    if figures.top_products:
        lines += ["", "### Top products", markdown_table(figures.top_products, list(figures.top_products[0]))]
    return "\n".join(lines)


def _abandoned_text(figures: ReportFigures) -> str:
    carts = figures.funnel["add_to_cart"] if figures.funnel else 0
    if not carts:
        return "none: no session added to a cart"
    if figures.abandoned_carts is None:
        return "not counted for this day (its web_funnel row predates the figure: rebuild the day)"
    return (
        f"{figures.abandoned_carts:,} of the {carts:,} sessions that added to a cart made no purchase "
        f"({figures.abandoned_share():.1%})"
    )


def _fraud_text(figures: ReportFigures) -> str:
    if figures.fraud_alerts is None:
        return "none: fraud detection has not written an alerts table yet"
    return f"{figures.fraud_alerts:,}"


def render_chart(figures: ReportFigures) -> bytes:
    """PNG: daily revenue over the 28 days before the day (the day highlighted), revenue by category."""
    # The object-oriented API, not pyplot: no global figure state and no display backend needed.
    fig = Figure(figsize=(11, 3.8), dpi=100)
    trend, categories = fig.subplots(1, 2)
    if figures.history:
        days = [d for d, _ in figures.history]
        revenue = [float(v) for _, v in figures.history]
        trend.plot(days, revenue, marker="o", markersize=3, color="#4C72B0")
        if figures.day in days:
            trend.plot([figures.day], [revenue[days.index(figures.day)]], "o", color="#DD8452", markersize=8)
        if figures.trailing_28:
            trend.axhline(float(figures.trailing_28), linestyle="--", color="grey", label="28-day mean")
            trend.legend(loc="upper left", fontsize=8)
        trend.tick_params(axis="x", labelrotation=45, labelsize=7)
    trend.set_title("Daily revenue (MAD), last 28 days")
    rows = figures.breakdowns["category"]
    categories.barh([str(r["category"]) for r in rows][::-1], [float(r["revenue"]) for r in rows][::-1])
    categories.set_title(f"Revenue by category, {figures.day} (MAD)")
    categories.tick_params(labelsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _html_table(rows: list[dict[str, object]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"

    def cell(value: object) -> str:
        if isinstance(value, Decimal):
            return f"{value:,.2f}"
        if isinstance(value, int):
            return f"{value:,}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(figures: ReportFigures, chart_name: str) -> str:
    t = figures.totals
    headline = (
        "<p>No completed sale this day.</p>"
        if t is None
        else _html_table(
            [
                {"figure": "revenue", "value": _mad(t.revenue)},
                {
                    "figure": "vs 7-day mean",
                    "value": f"{_percent(figures.change_vs(figures.trailing_7))} "
                    f"({_mad(figures.trailing_7)})",
                },
                {
                    "figure": "vs 28-day mean",
                    "value": f"{_percent(figures.change_vs(figures.trailing_28))} "
                    f"({_mad(figures.trailing_28)})",
                },
                {"figure": "orders", "value": f"{t.orders:,}"},
                {"figure": "units", "value": f"{t.units:,}"},
                {"figure": "mean basket", "value": _mad(t.mean_basket)},
                {"figure": "distinct customers", "value": f"{t.distinct_customers:,}"},
            ],
            "",
        )
    )
    funnel_rows = []
    if figures.funnel:
        sessions = figures.funnel["sessions"] or 1
        funnel_rows = [
            {"step": step, "sessions": count, "of all sessions": f"{count / sessions:.1%}"}
            for step, count in ((step, figures.funnel[step]) for step in FUNNEL_STEPS)
        ]
    checks = [
        {"asset": c.asset, "check": c.check, "status": c.status, "detail": c.description}
        for c in figures.checks
    ]
    sections = [
        f"<h1>TechMart daily sales report, {figures.day}</h1>",
        f'<img src="{html.escape(chart_name)}" alt="daily revenue and revenue by category">',
        "<h2>The day</h2>",
        headline,
        "<h2>Top products</h2>",
        _html_table(figures.top_products, "No product sold."),
        *[
            part
            for breakdown in BREAKDOWNS
            for part in (
                f"<h2>By {breakdown.replace('_', ' ')}</h2>",
                _html_table(figures.breakdowns[breakdown], "No completed sale."),
            )
        ],
        "<h2>Customer behaviour</h2>",
        "<h3>Web conversion funnel</h3>",
        _html_table(funnel_rows, "No web events this day."),
        *(
            [
                "<h3>Abandoned carts</h3>",
                f"<p>{html.escape(_abandoned_text(figures))}</p>",
                "<h3>Viewed but not bought</h3>",
                f"<p>Top {TOP_CATEGORIES} categories by {html.escape(VIEWED_NOT_BOUGHT)}.</p>",
                _html_table(figures.viewed_not_bought, "No category was viewed and not bought."),
            ]
            if figures.funnel
            else []
        ),
        "<h2>Fraud alerts</h2>",
        f"<p>{html.escape(_fraud_text(figures))}</p>",
        "<h2>Data quality</h2>",
        "<h3>Quarantined rows</h3>",
        _html_table(figures.quarantine, "No row was quarantined this day."),
        "<h3>Check results of the day</h3>",
        _html_table(checks, "No check result recorded."),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}img{max-width:100%}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>TechMart {figures.day}</title>'
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def write_report(figures: ReportFigures, folder: Path) -> tuple[Path, Path, bytes]:
    """`folder/report.html` and `folder/chart.png`; returns their paths and the PNG's bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    chart = render_chart(figures)
    chart_path = folder / "chart.png"
    chart_path.write_bytes(chart)
    report_path = folder / "report.html"
    report_path.write_text(render_html(figures, chart_path.name), encoding="utf-8")
    return report_path, chart_path, chart
