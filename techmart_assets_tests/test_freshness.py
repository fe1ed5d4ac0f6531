"""Freshness as the UI shows it: Dagster's freshness daemon, on the project's definitions served by a
real code server, marks gold and the report overdue when the 06:30 deadline passed without a run,
and fresh again once they materialize."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.test_utils import freeze_time
from dagster._daemon.freshness import FreshnessDaemon
from dagster_graphql.test.utils import define_out_of_process_workspace

from techmart_assets.definitions import defs
from techmart_assets.freshness import DAILY_FRESHNESS
from techmart_assets.gold.assets import REPORT_KEY
from techmart_assets.instance_storage import write_instance_config
from techmart_assets.settings import PROJECT_ROOT

FACT_SALES = dg.AssetKey(["gold", "fact_sales"])
BRONZE = dg.AssetKey(["bronze", "transactions"])
REPORT = REPORT_KEY.to_user_string()


def test_policies_are_on_what_readers_open_and_nowhere_else() -> None:
    graph = defs.resolve_asset_graph()
    fresh = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).freshness_policy}
    readers_open = {"gold/fact_sales", "gold/dim_customers", "gold/metrics/daily_sales", REPORT}
    assert readers_open <= fresh
    assert all(k.startswith("gold/") and "/staging/" not in k for k in fresh)
    assert graph.get(REPORT_KEY).freshness_policy == DAILY_FRESHNESS


def test_a_missed_deadline_shows_overdue_until_the_next_materialization(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    write_instance_config(home)
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        define_out_of_process_workspace(str(PROJECT_ROOT / "workspace.yaml"), None, instance) as workspace,
    ):
        daemon = FreshnessDaemon()

        def states() -> dict[str, FreshnessState]:
            list(daemon.run_iteration(workspace))
            records = instance.get_freshness_state_records([REPORT_KEY, FACT_SALES, BRONZE])
            return {k.to_user_string(): r.freshness_state for k, r in records.items()}

        # Never materialized: nothing to judge yet.
        assert states()[REPORT_KEY.to_user_string()] == FreshnessState.UNKNOWN
        # Last materialized three days ago: the last 06:30 deadline passed without a run.
        with freeze_time(datetime.now(UTC) - timedelta(days=3)):
            for key in (REPORT_KEY, FACT_SALES):
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="2025-12-30"))
        overdue = states()
        assert overdue[REPORT_KEY.to_user_string()] == FreshnessState.FAIL
        assert overdue[FACT_SALES.to_user_string()] == FreshnessState.FAIL
        assert BRONZE.to_user_string() not in overdue or overdue[BRONZE.to_user_string()] in (
            FreshnessState.NOT_APPLICABLE,
        )
        # The late run lands: fresh again until the next deadline.
        instance.report_runless_asset_event(dg.AssetMaterialization(REPORT_KEY, partition="2026-12-01"))
        after = states()
        assert after[REPORT_KEY.to_user_string()] == FreshnessState.PASS
        assert after[FACT_SALES.to_user_string()] == FreshnessState.FAIL
