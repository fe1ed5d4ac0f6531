"""What the benchmarks share: the reference data set, fresh lakehouses, timing, the ratio report."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_pyspark.resources import spark_session_from_config
from pyspark.sql import SparkSession

from techmart_assets.generator import GenerationSummary, GeneratorConfig, generate
from techmart_assets.instance_storage import write_instance_config
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END, daily_partitions
from techmart_assets.resources import build_lakehouse_resource, build_spark_resource, spark_config
from techmart_assets.settings import Settings

RANGE_TAGS = {
    "dagster/asset_partition_range_start": HISTORY_START,
    "dagster/asset_partition_range_end": REFERENCE_HISTORY_END,
}
# As `techmart build` runs: a range run's per-day DEBUG events would otherwise be timed as console output.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def parser(doc: str, warmup: bool = True) -> argparse.ArgumentParser:
    """The benchmarks' command line; `warmup`: they time sides with `compare`, which warms up first."""
    parsed = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parsed.add_argument("--repeat", type=int, default=2, help="timed rounds of each side; the best is kept")
    if warmup:
        parsed.add_argument(
            "--warmup", type=int, default=1, help="untimed rounds of each side first (see `compare`)"
        )
    return parsed


@dataclass(frozen=True)
class Workspace:
    work: Path
    raw: Path
    summary: GenerationSummary
    spark: SparkSession


@contextmanager
def reference_workspace() -> Iterator[Workspace]:
    """A temporary folder (under $TECHMART_BENCH_DIR if set) with the reference data set, and Spark."""
    with tempfile.TemporaryDirectory(
        prefix="techmart-bench-", dir=os.environ.get("TECHMART_BENCH_DIR")
    ) as tmp:
        work = Path(tmp)
        print("generating the reference data set …", flush=True)
        summary = generate(GeneratorConfig(), work / "raw_data")
        spark = spark_session_from_config(spark_config(Settings.from_env()))
        try:
            yield Workspace(work, work / "raw_data", summary, spark)
        finally:
            spark.stop()


@contextmanager
def project_instance() -> Iterator[dg.DagsterInstance]:
    """A fresh Dagster home as `make setup` makes it, the project's `dagster.yaml` (its event log
    storage included), so the Dagster side pays what a user's run pays to record its events."""
    with tempfile.TemporaryDirectory(
        prefix="techmart-bench-home-", dir=os.environ.get("TECHMART_BENCH_DIR")
    ) as home:
        write_instance_config(Path(home))
        instance = dg.DagsterInstance.from_config(home)
        try:
            yield instance
        finally:
            instance.dispose()


def materialize_range(assets: list, root: Path) -> None:
    """The history as one range run of `assets` on a fresh project instance, as `techmart build` runs it."""
    with project_instance() as instance:
        result = dg.materialize(
            assets, resources=resources(root), tags=RANGE_TAGS, run_config=QUIET, instance=instance
        )
        assert result.success


def resources(root: Path) -> dict[str, object]:
    return {
        "spark": build_spark_resource(Settings.from_env()),
        "lakehouse": build_lakehouse_resource(Settings.from_env(), str(root)),
    }


def fresh_lakehouse(work: Path, name: str, links: dict[str, Path]) -> Path:
    """A new lakehouse root whose `links` (e.g. raw_data, bronze) point at shared inputs."""
    root = work / name
    root.mkdir()
    for child, target in links.items():
        (root / child).symlink_to(target)
    return root


def compare(
    work: Path,
    links: dict[str, Path],
    sides: dict[str, Callable[[Path], None]],
    repeat: int,
    warmup: int = 1,
    verify: Callable[[dict[str, Path]], None] | None = None,
) -> dict[str, float]:
    """Best time of each side over `repeat` timed rounds, alternating which side goes first, after
    `warmup` untimed rounds of each side: a process's first runs are slower whichever side runs them
    (the JVM compiles as it goes), and without them the side that ran in the earlier slots lost.

    `verify`, given each side's lakehouse of the last round, checks that they wrote the same thing
    (after the timing: its own Spark work would slow the run after it).
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(-warmup, repeat):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        roots = {}
        for name in order:
            side = name.split()[0].lower()
            roots[name] = root = fresh_lakehouse(work, f"lakehouse-{side}-{i + warmup}", links)
            started = time.perf_counter()
            sides[name](root)
            elapsed = time.perf_counter() - started
            if i >= 0:
                times[name].append(elapsed)
            label = f"run {i + 1}" if i >= 0 else "warm-up"
            print(f"  {name:14s} {label:>7s}: {elapsed:6.1f} s", flush=True)
        if verify is not None and i == repeat - 1:
            verify(roots)
        for root in roots.values():
            shutil.rmtree(root)
    return {name: min(t) for name, t in times.items()}


def report(
    title: str, best: dict[str, float], baseline: str, candidate: str, goal: str, bookkeeping: float
) -> dict[str, float | str]:
    """Print the comparison; returns its figures for `bench.results.record` (each side's time, the
    ratio and its goal, the bookkeeping and the ratio without it)."""
    ratio = best[candidate] / best[baseline]
    print(f"\n{title}")
    for name, seconds in best.items():
        print(f"  {name:14s} {seconds:7.1f} s")
    print(f"  ratio          {ratio:7.2f}   ({candidate} / {baseline}; goal {goal})")
    print(
        f"  of which Dagster's per-partition bookkeeping (no-op assets, same partitions): "
        f"{bookkeeping:.1f} s; ratio without it {(best[candidate] - bookkeeping) / best[baseline]:.2f}"
    )
    return {
        **{f"{figure_key(name)}_s": seconds for name, seconds in best.items()},
        "ratio": ratio,
        "ratio_of": f"{candidate} / {baseline}",
        "ratio_goal": goal,
        "bookkeeping_s": bookkeeping,
        "without_bookkeeping_ratio": (best[candidate] - bookkeeping) / best[baseline],
    }


def figure_key(name: str) -> str:
    """A side's or step's name as a figure's key: `Dagster+dbt` -> `dagster_dbt`, `Dagster's SQLite` ->
    `dagster_sqlite`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("'s ", " ")).strip("_")


def partition_bookkeeping(assets: int, instance: dg.DagsterInstance | None = None) -> float:
    """Dagster's own cost of recording a range run over the history for `assets` no-op assets, on
    `instance` (by default a fresh project instance, as the benchmarks' Dagster sides use).

    One materialization per day and asset is recorded whatever the asset does; this is the part
    of the Dagster side's time that no code of ours can remove.
    """

    def noop(name: str) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())
        def _asset() -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata={"rows": 0})

        return _asset

    if instance is None:
        with project_instance() as fresh:
            return partition_bookkeeping(assets, fresh)
    started = time.perf_counter()
    assert dg.materialize(
        [noop(f"noop_{i}") for i in range(assets)], tags=RANGE_TAGS, run_config=QUIET, instance=instance
    ).success
    return time.perf_counter() - started
