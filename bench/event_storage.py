"""Event storage benchmark: Dagster's bookkeeping of a history backfill on a SQLite Dagster home.

A single-run backfill of the whole history records a planned and a materialized event per day and
asset, whatever the assets do. This times that bookkeeping alone (--assets no-op assets over the
shared daily partitions, as one range run) on a fresh Dagster home with Dagster's stock
`SqliteEventLogStorage` and with the project's `PooledSqliteEventLogStorage` (the one
`dagster.yaml` configures), alternating, best of --repeat, and prints both times and their ratio.
Each round checks that the run recorded every day of every asset.

Run with `.venv/bin/python -m bench.event_storage`; homes are made under $TECHMART_BENCH_DIR if set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dagster as dg
import yaml

from bench.common import figure_key, parser, partition_bookkeeping
from bench.results import record
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END, daily_partitions

STORAGES = {
    "Dagster's SQLite": None,
    "pooled SQLite": {"module": "techmart_assets.instance_storage", "class": "PooledSqliteEventLogStorage"},
}


def timed_backfill(home: Path, storage: dict[str, str] | None, assets: int) -> float:
    config: dict[str, object] = {"telemetry": {"enabled": False}}
    if storage is not None:
        config["event_log_storage"] = {**storage, "config": {"base_dir": str(home / "history" / "runs")}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        seconds = partition_bookkeeping(assets, instance)
        days = len(
            daily_partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(HISTORY_START, REFERENCE_HISTORY_END)
            )
        )
        for i in range(assets):
            recorded = instance.get_materialized_partitions(dg.AssetKey(f"noop_{i}"))
            assert len(recorded) == days, (storage, i, len(recorded), days)
        return seconds
    finally:
        instance.dispose()


def main() -> None:
    arguments = parser(__doc__, warmup=False)
    arguments.add_argument("--assets", type=int, default=4, help="no-op assets (bronze has 4)")
    args = arguments.parse_args()
    times: dict[str, list[float]] = {name: [] for name in STORAGES}
    for round_ in range(args.repeat):
        for name, storage in STORAGES.items():
            with tempfile.TemporaryDirectory(
                prefix="techmart-bench-", dir=os.environ.get("TECHMART_BENCH_DIR")
            ) as tmp:
                seconds = timed_backfill(Path(tmp), storage, args.assets)
            times[name].append(seconds)
            print(f"round {round_ + 1}: {name} {seconds:.1f} s", flush=True)
    best = {name: min(t) for name, t in times.items()}
    baseline, candidate = STORAGES
    print(
        f"\nbookkeeping of a range run over {HISTORY_START}..{REFERENCE_HISTORY_END} for {args.assets} "
        f"no-op assets on a fresh SQLite Dagster home (best of {args.repeat})"
    )
    for name, seconds in best.items():
        print(f"  {name:18s} {seconds:7.1f} s")
    print(f"  ratio              {best[candidate] / best[baseline]:7.2f}   ({candidate} / {baseline})")
    record(
        "event_storage",
        {
            **{f"{figure_key(name)}_s": seconds for name, seconds in best.items()},
            "ratio": best[candidate] / best[baseline],
            "ratio_of": f"{candidate} / {baseline}",
        },
        note=(
            f"bookkeeping of a range run over {HISTORY_START}..{REFERENCE_HISTORY_END} for {args.assets} "
            f"no-op assets on a fresh SQLite Dagster home (best of {args.repeat})"
        ),
    )


if __name__ == "__main__":
    main()
