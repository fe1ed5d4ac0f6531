"""The history at scale: how time and memory grow with the data.

For each `--scales` factor of the reference data set (50,000 transactions over three years), as a
user runs it, each command in its own processes on a fresh lakehouse and Dagster home:

1. `techmart generate --scale S`;
2. the floor: pyarrow reads the same raw drops and writes their rows as Parquet, in this process
   (CSV parsed, JSON lines kept as lines), the machine's speed for those bytes;
3. `techmart build` of the history but its last day, as one range run;
4. `techmart build --with-report` of the last day, as the daily schedule runs it (unless
   `--no-daily-run`);
5. `--sample-days` single-day runs of the tables, each its own process, extrapolated to one run per
   day over the history (sampled and extrapolated: said so in the figures' names).

For each layer it prints time (the range run's steps, from Dagster's step stats), rows per second
(the layer's input rows: raw lines for bronze, bronze rows for silver, silver rows for gold), the
peak memory of the biggest process and of all processes together while the layer ran (sampled
every quarter second), and the layer's time against the floor. The figures go to
`bench/results.json` (`bench.report` renders them into BENCHMARKS.md).

Run with `make bench` (scales 1, 10, 50) or `make bench-scale` (200: about 28 GB of drops).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psutil
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.results import record
from techmart_assets.delta import total_rows
from techmart_assets.instance_storage import write_instance_config
from techmart_assets.partitions import HISTORY_START, REFERENCE_HISTORY_END
from techmart_assets.settings import Settings
from techmart_assets.sources import SOURCES

TECHMART = str(Path(sys.executable).with_name("techmart"))
LAYERS = ("bronze", "silver", "gold")
# The tables whose rows each layer reads: raw lines are counted as the bronze rows they became.
LAYER_INPUT = {"bronze": "bronze", "silver": "bronze", "gold": "silver"}
MIB = 1024**2


@dataclass
class Samples:
    """Resident memory of a process tree over time: (seconds since start, all processes, biggest one)."""

    started: float
    points: list[tuple[float, int, int]] = field(default_factory=list)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> tuple[int, int]:
        """(peak of all processes together, peak of the biggest process) between two wall times."""
        inside = [(total, biggest) for t, total, biggest in self.points if since <= t <= until]
        if not inside:
            return 0, 0
        return max(total for total, _ in inside), max(biggest for _, biggest in inside)


@contextmanager
def sampled(process: subprocess.Popen, every: float = 0.25) -> Iterator[Samples]:
    """Sample the resident memory of `process` and its descendants until the block ends."""
    samples = Samples(time.time())
    stop = threading.Event()
    root = psutil.Process(process.pid)

    def sample() -> None:
        while not stop.wait(every):
            sizes = []
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        sizes.append(proc.memory_info().rss)
                    except psutil.Error:  # ended between the listing and the reading
                        continue
            except psutil.Error:
                return
            if sizes:
                samples.points.append((time.time(), sum(sizes), max(sizes)))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class Command:
    seconds: float
    samples: Samples


def run(args: Sequence[str], env: dict[str, str], log: Path) -> Command:
    """Run a `techmart` command to completion with its memory sampled; its output goes to `log`."""
    with open(log, "ab") as out:
        out.write(f"\n$ techmart {' '.join(args)}\n".encode())
        out.flush()
        started = time.perf_counter()
        process = subprocess.Popen([TECHMART, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        with sampled(process) as samples:
            code = process.wait()
        seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"techmart {' '.join(args)} failed with exit code {code}; see {log}")
    return Command(seconds, samples)


def floor(raw: Path, out: Path) -> tuple[float, int, int]:
    """pyarrow reads every drop file and writes its rows as Parquet: (seconds, bytes read, rows)."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    read = rows = 0
    for source in SOURCES.values():
        files = sorted((raw / source.name).glob(f"*/*.{source.extension}"))
        writer: pq.ParquetWriter | None = None
        for path in files:
            read += path.stat().st_size
            if source.file_format == "csv":
                table = pacsv.read_csv(
                    path,
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict.fromkeys(source.columns, pa.string())
                    ),
                    parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
                )
            else:  # one string per line: the floor of reading them, whatever each one holds
                table = pacsv.read_csv(
                    path,
                    read_options=pacsv.ReadOptions(column_names=["line"]),
                    parse_options=pacsv.ParseOptions(delimiter="\x1e", quote_char=False, escape_char=False),
                    convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}),
                )
            if writer is None or writer.schema != table.schema:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(
                    out / f"{source.name}-{len(list(out.glob('*')))}.parquet", table.schema
                )
            writer.write_table(table)
            rows += table.num_rows
        if writer is not None:
            writer.close()
    return time.perf_counter() - started, read, rows


def table_rows(root: Path, layer: str) -> int:
    """Rows of the layer's tables under `root` (quarantines and gold's metrics left out)."""
    names = ["fact_sales"] if layer == "gold" else list(SOURCES)
    return total_rows([str(root / layer / name) for name in names])


def layer_of(step_key: str) -> str:
    for layer in LAYERS:
        if step_key.startswith(layer):
            return layer
    return "gold"  # dbt's step and the report


def step_windows(home: Path) -> dict[str, tuple[float, float, float]]:
    """Per layer, from the latest run's step stats: (seconds in its steps, first start, last end)."""
    # The project's event log storage finds its folder through DAGSTER_HOME.
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        run = instance.get_runs(limit=1)[0]
        windows: dict[str, tuple[float, float, float]] = {}
        for stats in instance.get_run_step_stats(run.run_id):
            if stats.start_time is None or stats.end_time is None:
                continue
            layer = layer_of(stats.step_key)
            seconds, first, last = windows.get(layer, (0.0, stats.start_time, stats.end_time))
            windows[layer] = (
                seconds + stats.end_time - stats.start_time,
                min(first, stats.start_time),
                max(last, stats.end_time),
            )
        return windows
    finally:
        instance.dispose()


def scale_run(
    scale: float, first: date, last: date, sample_days: int, daily_run: bool, work: Path
) -> dict[str, object]:
    lake, home = work / "lakehouse", work / "home"
    write_instance_config(home)
    env = {**os.environ, "TECHMART_LAKEHOUSE": str(lake), "DAGSTER_HOME": str(home)}
    log = work / "commands.log"
    figures: dict[str, object] = {"scale": scale, "days": (last - first).days + 1}

    span = ["--start", first.isoformat(), "--end", last.isoformat()]
    generated = run(["generate", "--scale", str(scale), *span], env, log)
    raw_bytes = sum(f.stat().st_size for f in (lake / "raw_data").rglob("*") if f.is_file())
    figures |= {
        "raw_mib": round(raw_bytes / MIB, 1),
        "generate_s": generated.seconds,
        "generate_peak_mib": generated.samples.peak()[0] / MIB,
    }
    print(f"  generated {raw_bytes / MIB:,.0f} MiB in {generated.seconds:.1f} s", flush=True)

    floor_s, floor_bytes, floor_rows = floor(lake / "raw_data", work / "floor")
    figures |= {"floor_s": floor_s, "floor_rows_per_s": floor_rows / floor_s}
    print(f"  floor: pyarrow read {floor_bytes / MIB:,.0f} MiB, wrote {floor_rows:,} rows in {floor_s:.1f} s")

    before_last = last - timedelta(days=1)
    history = run(["build", "--start", first.isoformat(), "--end", before_last.isoformat()], env, log)
    windows = step_windows(home)
    figures |= {
        "history_s": history.seconds,
        "history_peak_mib": history.samples.peak()[0] / MIB,
        "history_biggest_process_peak_mib": history.samples.peak()[1] / MIB,
    }
    print(f"  history ({first}..{before_last}) in one run: {history.seconds:.1f} s", flush=True)
    for layer in LAYERS:
        if layer not in windows:
            continue
        seconds, since, until = windows[layer]
        rows = table_rows(lake, LAYER_INPUT[layer])
        total, biggest = history.samples.peak(since, until)
        figures |= {
            f"{layer}_s": seconds,
            f"{layer}_input_rows": rows,
            f"{layer}_rows_per_s": rows / seconds,
            f"{layer}_peak_mib": total / MIB,
            f"{layer}_biggest_process_peak_mib": biggest / MIB,
            f"{layer}_vs_floor_ratio": seconds / floor_s,
        }
        print(
            f"    {layer:7s} {seconds:8.1f} s  {rows / seconds:12,.0f} rows/s  peak {total / MIB:7,.0f} MiB "
            f"(biggest process {biggest / MIB:,.0f} MiB)  {seconds / floor_s:5.1f}x the floor",
            flush=True,
        )

    if daily_run:
        daily = run(["build", "--start", str(last), "--end", str(last), "--with-report"], env, log)
        figures |= {"daily_run_s": daily.seconds, "daily_run_peak_mib": daily.samples.peak()[0] / MIB}
        print(f"  daily run ({last}, bronze to report, its own process): {daily.seconds:.1f} s", flush=True)

    if sample_days:
        days = [before_last - timedelta(days=i) for i in range(sample_days)]
        single = [run(["build", "--start", d.isoformat(), "--end", d.isoformat()], env, log) for d in days]
        mean = sum(c.seconds for c in single) / len(single)
        estimate = mean * ((before_last - first).days + 1)
        figures |= {
            "one_run_per_day_sampled_mean_s": mean,
            "one_run_per_day_extrapolated_s": estimate,
            "one_run_per_day_vs_range_run_ratio": estimate / history.seconds,
        }
        print(
            f"  one run per day instead: {mean:.1f} s a day (mean of {len(single)}), "
            f"extrapolated {estimate / 60:,.0f} min for the history ({estimate / history.seconds:.0f}x)"
        )
    return figures


def main() -> None:
    parsed = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parsed.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0, 50.0])
    parsed.add_argument("--start", type=date.fromisoformat, default=date.fromisoformat(HISTORY_START))
    parsed.add_argument("--end", type=date.fromisoformat, default=date.fromisoformat(REFERENCE_HISTORY_END))
    parsed.add_argument("--sample-days", type=int, default=2, help="single-day runs to extrapolate from")
    parsed.add_argument("--no-daily-run", action="store_true", help="skip the last day's daily run")
    parsed.add_argument("--keep", action="store_true", help="keep each scale's folder (printed)")
    parsed.add_argument("--no-record", action="store_true", help="print only; leave bench/results.json")
    args = parsed.parse_args()
    settings = Settings.from_env()
    for scale in args.scales:
        print(
            f"\nscale {scale:g} ({args.start}..{args.end}, driver heap {settings.spark_driver_memory})",
            flush=True,
        )
        work = Path(
            tempfile.mkdtemp(prefix=f"techmart-scale-{scale:g}-", dir=os.environ.get("TECHMART_BENCH_DIR"))
        )
        try:
            figures = scale_run(scale, args.start, args.end, args.sample_days, not args.no_daily_run, work)
        finally:
            if args.keep:
                print(f"  kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        figures["driver_heap"] = settings.spark_driver_memory
        if not args.no_record:
            record(
                f"history at scale {scale:g}",
                figures,
                note=f"{args.start}..{args.end}; each command in its own processes; one run of each "
                "(the one-run-per-day figures are sampled and extrapolated)",
            )


if __name__ == "__main__":
    main()
