"""A day's check results, as the daily report and `techmart checks report` read them back from the
instance: the latest result of the day, whatever ran since for other days. Checks partitioned by day
(the lakehouse's own) get a result per day of a range run; checks without partitions (dbt's), the
latest run that covered the day."""

from datetime import date

import dagster as dg
import pytest

from techmart_assets import cli
from techmart_assets.partitions import daily_partitions
from techmart_assets.quality import checks
from techmart_assets.quality.checks import CheckSpec
from techmart_assets.quality.history import checks_of_day, report_markdown

KEY = dg.AssetKey(["silver", "toy"])
CHILD = dg.AssetKey(["gold", "toy"])
BAD_DAYS: set[str] = set()
SINGLE_RUN = dg.BackfillPolicy.single_run()
RANGE = {
    "dagster/asset_partition_range_start": "2024-11-01",
    "dagster/asset_partition_range_end": "2024-11-03",
}


@dg.asset(
    key=KEY,
    partitions_def=daily_partitions,
    check_specs=[
        dg.AssetCheckSpec("no_bad_rows", asset=KEY, blocking=True),
        dg.AssetCheckSpec("volume", asset=KEY),
    ],
    backfill_policy=SINGLE_RUN,
)
def toy(context: dg.AssetExecutionContext):
    days = context.partition_keys
    yield dg.MaterializeResult()
    bad = sorted(BAD_DAYS & set(days))
    yield dg.AssetCheckResult(check_name="no_bad_rows", passed=not bad, metadata={"bad_days": ", ".join(bad)})
    yield dg.AssetCheckResult(
        check_name="volume", passed=False, severity=dg.AssetCheckSeverity.WARN, description="thin day"
    )


@dg.asset(key=CHILD, deps=[KEY], partitions_def=daily_partitions, backfill_policy=SINGLE_RUN)
def child() -> None:
    pass


GRAPH = dg.Definitions(assets=[toy, child]).resolve_asset_graph()

DAILY_KEY, DAILY_CHILD = dg.AssetKey(["silver", "daily_toy"]), dg.AssetKey(["gold", "daily_toy"])
NO_BAD_ROWS = CheckSpec("no_bad_rows", "no bad rows on the day", blocking=True)
STOCK = [False]  # the toy reports through Dagster's own AssetCheckResult path instead


@dg.asset(
    key=DAILY_KEY,
    partitions_def=daily_partitions,
    check_specs=[NO_BAD_ROWS.spec(DAILY_KEY)],
    backfill_policy=SINGLE_RUN,
)
def daily_toy(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult()
    results = {
        day: [
            dg.AssetCheckResult(check_name="no_bad_rows", passed=day not in BAD_DAYS, metadata={"day": day})
        ]
        for day in context.partition_keys
    }
    if STOCK[0]:
        yield from results[context.partition_key]
    else:
        yield from checks.evaluate_days(context, DAILY_KEY, results)


@dg.asset(key=DAILY_CHILD, deps=[DAILY_KEY], partitions_def=daily_partitions, backfill_policy=SINGLE_RUN)
def daily_child() -> None:
    pass


DAILY_GRAPH = dg.Definitions(assets=[daily_toy, daily_child]).resolve_asset_graph()


def _daily(instance, day: str):
    (found,) = checks_of_day(instance, DAILY_GRAPH, date.fromisoformat(day), ("silver",))
    return found


def _by_name(instance, day: str) -> dict[str, object]:
    return {c.check: c for c in checks_of_day(instance, GRAPH, date.fromisoformat(day), ("silver",))}


def test_each_day_keeps_the_results_of_the_run_that_covered_it() -> None:
    with dg.instance_for_test() as instance:
        BAD_DAYS.clear()
        BAD_DAYS.add("2024-11-01")
        failed = dg.materialize(
            [toy, child], instance=instance, partition_key="2024-11-01", raise_on_error=False
        )
        BAD_DAYS.clear()
        dg.materialize([toy, child], instance=instance, partition_key="2024-11-02")

        first, second = _by_name(instance, "2024-11-01"), _by_name(instance, "2024-11-02")
        assert first["no_bad_rows"].status == "failed" and first["no_bad_rows"].run_id == failed.run_id
        assert first["no_bad_rows"].metadata == {"bad_days": "2024-11-01"}
        # The blocking check stopped the gold asset of that run.
        assert first["no_bad_rows"].blocked == ("gold/toy",)
        assert second["no_bad_rows"].status == "passed" and second["no_bad_rows"].blocked == ()
        assert first["volume"].status == second["volume"].status == "warning"
        assert _by_name(instance, "2024-11-05")["no_bad_rows"].status == "not run"

        # A range run over both days (a backfill) is now the latest for each.
        rerun = dg.materialize(
            [toy, child],
            instance=instance,
            tags=RANGE,
        )
        for day in ("2024-11-01", "2024-11-02", "2024-11-03"):
            assert _by_name(instance, day)["no_bad_rows"].run_id == rerun.run_id
            assert _by_name(instance, day)["no_bad_rows"].status == "passed"


def test_the_markdown_puts_failures_first_with_their_metadata() -> None:
    with dg.instance_for_test() as instance:
        BAD_DAYS.clear()
        BAD_DAYS.add("2024-11-01")
        dg.materialize([toy, child], instance=instance, partition_key="2024-11-01", raise_on_error=False)
        day = date(2024, 11, 1)
        text = report_markdown(day, checks_of_day(instance, GRAPH, day, ("silver",)))
    lines = text.splitlines()
    assert lines[0] == "# Asset checks of 2024-11-01"
    assert lines[2] == "1 failed, 1 warning"
    table = [line for line in lines if line.startswith("| silver/toy")]
    assert table[0].startswith("| silver/toy | no_bad_rows | failed | ERROR | gold/toy |")
    assert "## silver/toy: no_bad_rows (failed)" in text and "- **bad_days**: 2024-11-01" in text


def test_the_command_refuses_a_date_it_cannot_read(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["checks", "report", "--date", "1 Nov"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_a_range_run_records_each_day_its_own_result() -> None:
    with dg.instance_for_test() as instance:
        BAD_DAYS.clear()
        BAD_DAYS.add("2024-11-02")
        failed = dg.materialize([daily_toy, daily_child], instance=instance, tags=RANGE, raise_on_error=False)
        assert not failed.success  # the blocking check failed on one day: the child did not run
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(DAILY_KEY, "no_bad_rows"), limit=10
        )
        # Each day's result points at that day's materialization (what the UI's partition view needs).
        materialized = {
            r.partition_key: r.storage_id
            for r in instance.fetch_materializations(DAILY_KEY, limit=10).records
        }
        assert {
            r.partition: r.evaluation.target_materialization_data.storage_id for r in records
        } == materialized
        assert sorted((r.partition, r.status.value) for r in records) == [
            ("2024-11-01", "SUCCEEDED"),
            ("2024-11-02", "FAILED"),
            ("2024-11-03", "SUCCEEDED"),
        ]
        assert [_daily(instance, d).status for d in RANGE.values()] == ["passed", "passed"]
        bad = _daily(instance, "2024-11-02")
        assert bad.status == "failed" and bad.metadata == {"day": "2024-11-02"}
        assert bad.blocked == ("gold/daily_toy",)

        # The day re-run alone: its own result changes, the range's other days keep theirs.
        BAD_DAYS.clear()
        fixed = dg.materialize([daily_toy, daily_child], instance=instance, partition_key="2024-11-02")
        assert _daily(instance, "2024-11-02").status == "passed"
        assert _daily(instance, "2024-11-02").run_id == fixed.run_id
        assert _daily(instance, "2024-11-01").run_id == failed.run_id
        assert _daily(instance, "2024-11-04").status == "not run"


def _one_partition_evaluation(stock: bool):
    STOCK[0] = stock
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize([daily_toy], instance=instance, partition_key="2024-11-05")
            (evaluation,) = result.get_asset_check_evaluations()
            (materialization,) = instance.fetch_materializations(DAILY_KEY, limit=10).records
            assert evaluation.target_materialization_data.storage_id == materialization.storage_id
            return evaluation, result.run_id
    finally:
        STOCK[0] = False


def test_a_day_evaluation_is_the_one_dagster_records_for_a_one_partition_run() -> None:
    """`evaluate_days` builds evaluations itself (Dagster gives a range step's none a partition): on a
    one-partition run it must record exactly what Dagster's own path records."""
    BAD_DAYS.clear()
    ours, our_run = _one_partition_evaluation(stock=False)
    stock, stock_run = _one_partition_evaluation(stock=True)
    fields = (
        "asset_key",
        "check_name",
        "passed",
        "metadata",
        "severity",
        "description",
        "blocking",
        "partition",
    )
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(stock, f) for f in fields}
    assert ours.partition == "2024-11-05"
    assert ours.target_materialization_data.run_id == our_run
    assert stock.target_materialization_data.run_id == stock_run


CURRENT_KEY = dg.AssetKey(["gold", "current_toy"])
CURRENT_PASSES = [True]


@dg.asset(key=CURRENT_KEY, check_specs=[dg.AssetCheckSpec("in_shape", asset=CURRENT_KEY)])
def current_toy():
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="in_shape", passed=CURRENT_PASSES[0])


def test_a_current_table_shows_its_latest_result_on_every_day() -> None:
    """A table without days (a dimension) is checked as it is: every day shows the latest evaluation,
    by a run with days or without."""
    graph = dg.Definitions(assets=[current_toy]).resolve_asset_graph()
    with dg.instance_for_test() as instance:
        assert [c.status for c in checks_of_day(instance, graph, date(2024, 11, 1), ("gold",))] == ["not run"]
        CURRENT_PASSES[0] = False
        dg.materialize([current_toy], instance=instance, tags=RANGE, raise_on_error=False)
        CURRENT_PASSES[0] = True
        latest = dg.materialize([current_toy], instance=instance)
        for day in (date(2024, 11, 1), date(2025, 6, 1)):
            (found,) = checks_of_day(instance, graph, day, ("gold",))
            assert (found.status, found.run_id) == ("passed", latest.run_id)
