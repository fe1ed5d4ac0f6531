"""The Dagster UI as a person uses it: `dagster dev` (webserver and daemon) on the project's
definitions, driven by a real headless Chromium (Debian's package, through Playwright).

Screenshots land in `test-artifacts/` (the asset graph, a check's report, the launch dialog).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.test_utils import freeze_time
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pyspark.sql import SparkSession

from techmart_assets.gold.assets import REPORT_KEY
from techmart_assets.quality.history import checks_of_day
from techmart_assets.settings import PROJECT_ROOT
from techmart_assets_tests.support import DAYS, dagster_process, free_port_pair, table
from techmart_assets_tests.test_backfills import CURRENT, GRAPH, PARTITIONED

CHROMIUM = "/usr/bin/chromium"
# Without the network flags Chromium's own connections are refused by this closed network, many at once.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
WEEK = [d.isoformat() for d in DAYS[:7]]
PRODUCTS = dg.AssetKey(["bronze", "products"])


@dataclass(frozen=True)
class Ui:
    url: str
    home: Path
    lakehouse: Path
    log: Path

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return json.load(response).get("dagster_webserver_version") is not None
    except (OSError, urllib.error.URLError, ValueError):
        return False


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, raw_data: Path) -> Iterator[Ui]:
    """`dagster dev` in the project root, on a new instance and an empty lakehouse of generated drops."""
    port = free_port_pair()
    command = ["dagster", "dev", "--host", "127.0.0.1", "--port", str(port)]
    # Dagster's freshness daemon evaluates every 30 s by default: 10 s keeps the test short.
    env = {"FRESHNESS_DAEMON_INTERVAL_SECONDS": "10"}
    with dagster_process(tmp_path_factory.mktemp("ui"), raw_data, command, env) as started:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while not _answers(url):
            assert started.process.poll() is None, started.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not answer in 240 s"
            time.sleep(2)
        yield Ui(url, started.home, started.lakehouse, started.log)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make setup` installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.set_default_timeout(60_000)
    yield page
    page.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def _choose_days(page: Page, days: str) -> None:
    """In the open launch dialog: past the default last 90 days, the days typed as the UI writes them."""
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Show all partitions").click()
    field = dialog.get_by_role("textbox").first
    field.fill(days)
    field.press("Enter")


def _wait_for(condition, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        tail = log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what} not within {seconds:g} s; dagster dev: {tail}"
        time.sleep(3)


def test_the_asset_graph_shows_the_layers_and_their_lineage(ui: Ui, page: Page) -> None:
    page.goto(f"{ui.url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    # The groups, collapsed, with their asset counts; no welcome pop-up over them.
    for group, count in (("bronze", "4"), ("silver", "8"), ("gold", "16"), ("streaming", "5")):
        expect(page.get_by_text(group, exact=True).last).to_be_visible()
        expect(page.get_by_text(count, exact=True).first).to_be_visible()
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    _screenshot(page, "asset-graph.png")


def _freshness_shows(ui: Ui, page: Page, state: str) -> None:
    """Reload the report's page until its freshness says `state`, a regular expression (the daemon's
    first evaluation can take minutes after `dagster dev` starts: it waits for the code location)."""
    deadline = time.monotonic() + 300
    while True:
        page.goto(f"{ui.url}/assets/gold/daily_sales_report")
        expect(page.get_by_text("Freshness policy").first).to_be_visible()
        try:  # the state arrives after the heading
            expect(page.get_by_text(re.compile(f"^({state})$")).first).to_be_visible(timeout=15_000)
            return
        except AssertionError:
            pass
        if time.monotonic() > deadline:
            with ui.instance() as instance:
                record = instance.get_freshness_state_records([REPORT_KEY]).get(REPORT_KEY)
            raise AssertionError(f"freshness {record}; page: {page.inner_text('body')[:1500]}")
        time.sleep(10)


def test_a_report_older_than_its_deadline_shows_overdue(ui: Ui, page: Page) -> None:
    """The last report landed three days ago: the 06:30 deadline passed without one."""
    with freeze_time(datetime.now(UTC) - timedelta(days=3)), ui.instance() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(REPORT_KEY, partition=WEEK[0]))
    _freshness_shows(ui, page, "Failed|Failing")
    _screenshot(page, "freshness-overdue.png")


def test_one_partition_materialized_from_the_ui_shows_its_check(ui: Ui, page: Page) -> None:
    page.goto(f"{ui.url}/assets/bronze/products")
    page.get_by_role("button", name="Materialize…").click()
    _choose_days(page, WEEK[0])
    page.get_by_role("dialog").get_by_role("button", name="Launch 1 run").click()
    with ui.instance() as instance:
        _wait_for(lambda: instance.get_materialized_partitions(PRODUCTS) == {WEEK[0]}, 300, "the run", ui.log)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(PRODUCTS, "drop_fully_landed")]
        )
    (check,) = record.values()
    assert check.evaluation.passed
    page.goto(f"{ui.url}/assets/bronze/products?view=checks")
    expect(page.get_by_text("drop_fully_landed").first).to_be_visible()
    expect(page.get_by_text("Passed").first).to_be_visible()
    _screenshot(page, "check-report.png")


def test_a_week_backfill_of_the_graph_launched_from_the_dialog_completes(
    ui: Ui, page: Page, spark: SparkSession
) -> None:
    """Select bronze, silver and gold in the lineage view, Materialize, pick a week, Launch backfill:
    the daemon runs it, each Spark layer taking the week in one run, and every table, check and
    report of every day is there."""
    page.goto(f"{ui.url}/asset-groups")
    page.locator(".CodeMirror").first.click()  # the asset selection box (CodeMirror, no role)
    page.keyboard.type("group:bronze or group:silver or group:gold")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Materialize all").first.click()
    _choose_days(page, f"[{WEEK[0]}...{WEEK[-1]}]")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("7 partitions")).to_be_visible()
    _screenshot(page, "launch-backfill.png")
    dialog.get_by_role("button", name="Launch backfill").click()
    expect(page.get_by_text("Created backfill")).to_be_visible()

    with ui.instance() as instance:
        (backfill,) = instance.get_backfills()
        _wait_for(
            lambda: (
                instance.get_backfill(backfill.backfill_id).status
                not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING)
            ),
            20 * 60,
            "the backfill",
            ui.log,
        )
        status = instance.get_backfill(backfill.backfill_id).status
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert status == BulkActionStatus.COMPLETED_SUCCESS, _failures(instance, runs)
        materialized = {key: instance.get_materialized_partitions(key) for key in PARTITIONED}
        current = {
            key.to_user_string(): [r.run_id for r in instance.fetch_materializations(key, limit=10).records]
            for key in CURRENT
        }
        checks = {day: checks_of_day(instance, GRAPH, date.fromisoformat(day)) for day in WEEK}

    # Few runs, each the whole week: the Spark layers do not start a JVM per day. The current tables
    # have no days: each is built once, in a run of its own as soon as what it reads is done.
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    ranged = [r for r in runs if ASSET_PARTITION_RANGE_START_TAG in r.tags]
    selections = [sorted(k.to_user_string() for k in r.asset_selection) for r in runs]
    assert len(ranged) <= 6 and len(runs) - len(ranged) <= len(CURRENT), selections
    start, end = ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG
    ranges = {(r.tags[start], r.tags[end]) for r in ranged}
    assert ranges == {(WEEK[0], WEEK[-1])}
    # A run without days builds current tables only.
    assert all(set(r.asset_selection) <= set(CURRENT) for r in runs if r not in ranged)
    assert {key.to_user_string(): sorted(days) for key, days in materialized.items()} == {
        key.to_user_string(): WEEK for key in PARTITIONED
    }
    # The current tables (dimensions, customer value, profiles): once each, by the backfill.
    backfill_runs, settled = {r.run_id for r in runs}, ("passed", "warning")
    assert CURRENT and all(len(ids) == 1 and ids[0] in backfill_runs for ids in current.values()), current
    # Every check of every day was evaluated by the backfill's runs, and none failed.
    for day, results in checks.items():
        assert {c.run_id for c in results} <= backfill_runs, day
        assert [f"{c.asset}:{c.check} {c.status}" for c in results if c.status not in settled] == [], day

    # The data: each bronze row of the week is in silver or its quarantine, and gold has every sale.
    bronze = _counts_by_day(spark, ui.lakehouse, "bronze", "transactions")
    silver = _counts_by_day(spark, ui.lakehouse, "silver", "transactions")
    quarantined = _counts_by_day(spark, ui.lakehouse, "silver", "transactions_quarantine")
    assert sorted(bronze) == WEEK
    assert {d: silver.get(d, 0) + quarantined.get(d, 0) for d in WEEK} == bronze
    assert _counts_by_day(spark, ui.lakehouse, "gold", "fact_sales", "sale_date") == silver
    for day in WEEK:
        assert (ui.lakehouse / "reports" / day / "report.html").is_file()


def test_a_checks_results_read_per_partition(ui: Ui, page: Page) -> None:
    """After the week's backfill (one range run per layer), silver's reconciliation has a result of
    its own for each day: the check's Partitions tab counts them, its history lists them by day."""
    page.goto(f"{ui.url}/assets/silver/transactions?view=checks")
    page.get_by_text("reconciliation", exact=True).first.click()
    page.get_by_role("tab", name="Partitions").last.click()
    expect(page.get_by_text(f"Passed ({len(WEEK)})", exact=True)).to_be_visible()
    expect(page.get_by_text("Failed (0)", exact=True)).to_be_visible()
    _screenshot(page, "check-partitions.png")
    page.get_by_role("tab", name="Execution history").click()
    for day in WEEK:
        expect(page.get_by_role("row").filter(has_text=day)).to_have_count(1)
    _screenshot(page, "check-history.png")


def test_a_fresh_report_shows_passing(ui: Ui, page: Page) -> None:
    """A report materialized now (the backfill's, or this one) is fresh until the next deadline."""
    with ui.instance() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(REPORT_KEY, partition=WEEK[-1]))
    _freshness_shows(ui, page, "Passed|Passing")


def _counts_by_day(
    spark: SparkSession, root: Path, layer: str, name: str, column: str = "partition_date"
) -> dict:
    rows = table(spark, root, layer, name).groupBy(column).count().collect()
    return {str(r[column]): r["count"] for r in rows}


def _failures(instance: dg.DagsterInstance, runs) -> list[str]:
    """The step failures of the runs, for the assertion message."""
    failures = []
    for run in runs:
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        for record in records:
            error = record.event_log_entry.dagster_event.event_specific_data.error
            while error.cause:
                error = error.cause
            failures.append(f"{run.run_id[:8]} {record.event_log_entry.step_key}: {error.message[:800]}")
    return failures
