"""A day's check results, as the daily report and `techmart checks report` read them back from the
instance: the latest run that covered the day, whatever ran since for other days."""

from datetime import date

import dagster as dg
import pytest

from techmart_assets import cli
from techmart_assets.partitions import daily_partitions
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
