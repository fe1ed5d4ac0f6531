"""The daily report on hand-made figures and tables: what a reader sees, days with nothing in them, and
what `gather` reads from the gold metrics."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from techmart_assets.gold.report import (
    CheckResult,
    DayTotals,
    ReportFigures,
    gather,
    render_chart,
    render_html,
    summary_markdown,
)

DAY = date(2025, 6, 30)


def category_row(
    rank: int, category: str, views: int, not_bought: int, carts: int, purchases: int
) -> dict[str, object]:
    """A row of the report's viewed-but-not-bought table, as `gather` makes it."""
    return {
        "rank": rank,
        "category": category,
        "product views": views,
        "views not bought": not_bought,
        "added to cart": carts,
        "purchases": purchases,
    }


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
        abandoned_carts=30,
        viewed_not_bought=[
            category_row(1, "Laptops", 50, 41, 6, 2),
            category_row(2, "Audio & <Hi-Fi>", 30, 28, 3, 0),
        ],
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
        "Customer behaviour",
        "Web conversion funnel",
        "Abandoned carts",
        "Viewed but not bought",
        "Fraud alerts",
        "Quarantined rows",
        "Check results of the day",
    ):
        assert f">{heading}<" in page
    assert "<td>checkout</td><td>20</td><td>10.0%</td>" in page
    assert "<p>3</p>" in page
    assert '<img src="chart.png"' in page


def test_the_customer_behaviour_section_shows_abandoned_carts_and_the_categories_viewed_not_bought() -> None:
    summary = summary_markdown(figures())
    behaviour = summary[summary.index("### Customer behaviour") : summary.index("### Top products")]
    # 30 of the 40 sessions with a cart bought nothing: 75 %.
    abandoned = "30 of the 40 sessions that added to a cart made no purchase (75.0%)"
    assert f"- **Abandoned carts** {abandoned}" in behaviour
    assert "**Web conversion** 5.0% of 200 sessions" in behaviour
    assert "product views of the category in sessions that made no purchase of that category" in behaviour
    assert behaviour.index("| 1 | Laptops | 50 | 41 | 6 | 2 |") < behaviour.index(
        "| 2 | Audio & <Hi-Fi> | 30 | 28 | 3 | 0 |"
    )

    page = render_html(figures(), "chart.png")
    section = re.search(r"<h2>Customer behaviour</h2>(.*?)<h2>", page).group(1)
    assert section.index("<h3>Web conversion funnel</h3>") < section.index("<h3>Abandoned carts</h3>")
    assert f"<p>{abandoned}</p>" in section
    assert "<p>Top 5 categories by views not bought (product views of the category in sessions" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section[section.index("Viewed but not bought") :])
    assert rows[1:] == [
        "<td>1</td><td>Laptops</td><td>50</td><td>41</td><td>6</td><td>2</td>",
        "<td>2</td><td>Audio &amp; &lt;Hi-Fi&gt;</td><td>30</td><td>28</td><td>3</td><td>0</td>",
    ]


def test_abandoned_carts_on_a_day_without_carts_or_built_before_they_were_counted() -> None:
    no_carts = figures(
        funnel={
            "sessions": 5,
            "page_view": 5,
            "product_view": 2,
            "add_to_cart": 0,
            "checkout": 0,
            "purchase": 0,
        },
        abandoned_carts=0,
        viewed_not_bought=[],
    )
    assert "**Abandoned carts** none: no session added to a cart" in summary_markdown(no_carts)
    page = render_html(no_carts, "chart.png")
    assert "<p>none: no session added to a cart</p>" in page
    assert "<p>No category was viewed and not bought.</p>" in page
    assert no_carts.abandoned_share() is None
    # A day whose web_funnel row was written before the column existed: said, not shown as zero.
    earlier = figures(abandoned_carts=None)
    assert "**Abandoned carts** not counted for this day" in summary_markdown(earlier)
    assert earlier.abandoned_share() is None


def test_a_day_without_sales_or_web_events_says_so() -> None:
    empty = figures(
        totals=None,
        funnel=None,
        abandoned_carts=None,
        viewed_not_bought=[],
        top_products=[],
        quarantine=[],
        checks=[],
        fraud_alerts=0,
    )
    assert "No completed sale this day." in summary_markdown(empty)
    assert "### Customer behaviour\nNo web events this day." in summary_markdown(empty)
    page = render_html(empty, "chart.png")
    assert "No completed sale this day." in page and "No web events this day." in page
    assert "Abandoned carts" not in page and "Viewed but not bought" not in page
    assert "No row was quarantined this day." in page
    assert render_chart(empty)[:8] == b"\x89PNG\r\n\x1a\n"


FUNNEL_COLUMNS = (
    "event_date date, sessions bigint, page_view_sessions bigint, product_view_sessions bigint, "
    "add_to_cart_sessions bigint, checkout_sessions bigint, purchase_sessions bigint"
)
INTEREST_COLUMNS = (
    "event_date date, category string, sessions bigint, product_views bigint, add_to_carts bigint, "
    "purchases bigint, viewed_not_bought bigint, viewed_not_bought_sessions bigint, "
    "viewed_not_bought_rank int"
)


def write_table(spark: SparkSession, path: Path, rows: list[tuple], schema: str) -> None:
    spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(str(path))


def test_gather_reads_the_days_abandoned_carts_and_its_top_five_categories_viewed_not_bought(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Gold tables written by hand: the day's row of web_funnel and category_interest, not the day
    before's; five categories out of seven, in rank order; none with every view bought."""
    gold, before = tmp_path / "gold", DAY - timedelta(days=1)
    write_table(
        spark,
        gold / "metrics" / "web_funnel",
        [(before, 90, 90, 60, 25, 12, 8, 17), (DAY, 200, 180, 120, 40, 20, 10, 30)],
        f"{FUNNEL_COLUMNS}, abandoned_cart_sessions bigint",
    )
    # (category, sessions, views, carts, purchases, viewed not bought, sessions not bought, rank),
    # in no particular order; the rank is category_interest's.
    today = [
        ("Tablets", 3, 4, 1, 1, 0, 0, 7),
        ("Audio", 12, 20, 3, 2, 9, 6, 2),
        ("Laptops", 15, 25, 6, 4, 14, 9, 1),
        ("Cameras", 2, 2, 0, 0, 2, 2, 5),
        ("Gaming", 6, 7, 1, 0, 7, 5, 3),
        ("Smartphones", 9, 12, 4, 3, 5, 4, 4),
        ("Wearables", 1, 1, 0, 0, 1, 1, 6),
    ]
    write_table(
        spark,
        gold / "metrics" / "category_interest",
        [(DAY, *row) for row in today] + [(before, "Wearables", 40, 80, 0, 0, 80, 40, 1)],
        INTEREST_COLUMNS,
    )

    found = gather(spark, DAY, str(gold), str(tmp_path / "silver"), str(gold / "fraud_alerts"))
    assert found.abandoned_carts == 30 and found.funnel["add_to_cart"] == 40
    assert found.abandoned_share() == 0.75
    assert found.viewed_not_bought == [
        category_row(1, "Laptops", 25, 14, 6, 4),
        category_row(2, "Audio", 20, 9, 3, 2),
        category_row(3, "Gaming", 7, 7, 1, 0),
        category_row(4, "Smartphones", 12, 5, 4, 3),
        category_row(5, "Cameras", 2, 2, 0, 0),
    ]
    assert found.totals is None and found.fraud_alerts is None  # no other table in this lakehouse

    # A day where every viewed category was bought lists none; a web_funnel written before it counted
    # abandoned carts has no such column: the figure is unknown, not zero.
    after = DAY + timedelta(days=1)
    write_table(spark, gold / "metrics" / "web_funnel", [(after, 10, 10, 4, 0, 0, 0)], FUNNEL_COLUMNS)
    write_table(
        spark,
        gold / "metrics" / "category_interest",
        [(after, "Tablets", 2, 3, 1, 1, 0, 0, 1)],
        INTEREST_COLUMNS,
    )
    later = gather(spark, after, str(gold), str(tmp_path / "silver"), str(gold / "fraud_alerts"))
    assert later.funnel["sessions"] == 10
    assert later.abandoned_carts is None and later.viewed_not_bought == []
