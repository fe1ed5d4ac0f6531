"""The scale benchmark's smoke run: two days at a tiny scale through its real commands (generate, the
floor, the range run), its figures checked against the data it built. The daily run and the
single-day runs it can add cost a JVM each and are left to `make bench`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from techmart_assets.settings import PROJECT_ROOT
from techmart_assets_tests.support import drop_rows

FIRST, LAST = date(2025, 12, 1), date(2025, 12, 3)
CASE = "history at scale 0.02"


def test_the_scale_benchmark_measures_every_layer(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {**os.environ, "TECHMART_BENCH_RESULTS": str(results), "TECHMART_BENCH_DIR": str(tmp_path)}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.history_scale", "--scales", "0.02", "--keep"),
            *("--sample-days", "0", "--no-daily-run", "--start", str(FIRST), "--end", str(LAST)),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(results.read_text())[CASE]["figures"]
    (work,) = tmp_path.glob("techmart-scale-0.02-*")
    raw = work / "lakehouse" / "raw_data"

    built_days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days)]  # the last: the daily run's
    sources = ("transactions", "products", "customers", "web_events")
    lines = sum(drop_rows(raw, source, day) for source in sources for day in built_days)
    assert figures["days"] == 3
    assert figures["bronze_input_rows"] == lines
    assert 0 < figures["gold_input_rows"] < figures["silver_input_rows"] == figures["bronze_input_rows"]
    for layer in ("bronze", "silver", "gold"):
        assert figures[f"{layer}_s"] > 0
        assert figures[f"{layer}_rows_per_s"] == figures[f"{layer}_input_rows"] / figures[f"{layer}_s"]
        # The JVM alone holds more than 100 MiB; a bounded default stays far below 8 GiB.
        assert 100 < figures[f"{layer}_peak_mib"] < 8 * 1024
    assert figures["floor_s"] > 0 and figures["raw_mib"] > 0
    assert "daily_run_s" not in figures and "one_run_per_day_extrapolated_s" not in figures
