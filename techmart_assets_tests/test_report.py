"""The daily report's rendering on hand-made figures: what a reader sees, and days with nothing in them."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from techmart_assets.gold.report import (
    CheckResult,
    DayTotals,
    ReportFigures,
    render_chart,
    render_html,
    summary_markdown,
)

DAY = date(2025, 6, 30)


def figures(**changes) -> ReportFigures:
    values = dict(
        day=DAY,
        totals=DayTotals(Decimal("120000.00"), 12, 15, Decimal("10000.00"), 11),
        trailing_7=Decimal("100000.00"),
        trailing_28=Decimal("150000.00"),
        history=[(DAY - timedelta(days=i), Decimal(100000 + i)) for i in range(28, -1, -1)],
        top_products=[
            {
                "rank": 1,
                "product": "Phone <X>",
                "category": "Smartphones",
                "units": 3,
                "revenue": Decimal("9000.00"),
            }
        ],
        breakdowns={
            "category": [
                {"category": "Smartphones", "revenue": Decimal("90000.00"), "orders": 9, "units": 10}
            ],
            "channel": [{"channel": "web", "revenue": Decimal("120000.00"), "orders": 12, "units": 15}],
            "payment_method": [],
        },
        funnel={
            "sessions": 200,
            "page_view": 180,
            "product_view": 120,
            "add_to_cart": 40,
            "checkout": 20,
            "purchase": 10,
        },
        fraud_alerts=None,
        quarantine=[{"source": "transactions", "rule": "missing_key", "rows": 2}],
        checks=[CheckResult("silver/transactions", "quarantine_rate", "warning", "6.0% quarantined")],
    )
    values.update(changes)
    return ReportFigures(**values)


def test_the_summary_compares_the_day_with_the_trailing_means() -> None:
    summary = summary_markdown(figures())
    assert "**Revenue** 120,000.00 MAD (+20.0% vs the 7-day mean 100,000.00 MAD" in summary
    assert "-20.0% vs the 28-day mean 150,000.00 MAD" in summary
    assert "**Web conversion** 5.0% of 200 sessions" in summary
    assert "**Fraud alerts** none: fraud detection has not written an alerts table yet" in summary
    assert "2 rows quarantined; 1 checks, 1 failing or warning" in summary


def test_the_html_escapes_names_and_lists_every_section() -> None:
    page = render_html(figures(fraud_alerts=3), "chart.png")
    assert "Phone &lt;X&gt;" in page and "Phone <X>" not in page
    for heading in (
        "Top products",
        "By category",
        "By channel",
        "By payment method",
        "Web conversion funnel",
        "Fraud alerts",
        "Quarantined rows",
        "Check results of the day",
    ):
        assert f">{heading}<" in page
    assert "<td>checkout</td><td>20</td><td>10.0%</td>" in page
    assert "<p>3</p>" in page
    assert '<img src="chart.png"' in page


def test_a_day_without_sales_or_web_events_says_so() -> None:
    empty = figures(totals=None, funnel=None, top_products=[], quarantine=[], checks=[], fraud_alerts=0)
    assert "No completed sale this day." in summary_markdown(empty)
    page = render_html(empty, "chart.png")
    assert "No completed sale this day." in page and "No web events this day." in page
    assert "No row was quarantined this day." in page
    assert render_chart(empty)[:8] == b"\x89PNG\r\n\x1a\n"
