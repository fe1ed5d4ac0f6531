"""The benchmarks' record: each benchmark calls `record` with its figures, which land in
`bench/results.json` (or $TECHMART_BENCH_RESULTS), one entry per case, for `bench.report` to render.

A figure's unit is its key's suffix (`dagster_s`, `ratio`, `p99_s`, `rows_per_s`, `peak_mib`; see
`bench.report` for the list); a figure is a number, a short string, or None for "not measured".
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).resolve().parent / "results.json"
PACKAGES = ("dagster", "pyspark", "delta-spark", "dbt-core")

Figure = float | int | str | None


def results_path() -> Path:
    return Path(os.environ.get("TECHMART_BENCH_RESULTS") or DEFAULT_PATH)


def memory_gib() -> float | None:
    """Total memory from /proc/meminfo (Linux), None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        return None
    return None


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What a figure depends on besides the code: cores, memory, platform, Python, the stack's versions."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {package: version(package) for package in PACKAGES},
    }


def load(path: Path | None = None) -> dict[str, dict[str, Any]]:
    path = path or results_path()
    return json.loads(path.read_text()) if path.exists() else {}


def record(case: str, figures: Mapping[str, Figure], *, note: str = "") -> None:
    """Put `case`'s figures into the results file (replacing that case's previous entry, keeping the
    others), with the time and the machine. The file is replaced whole, never left half-written."""
    path = results_path()
    results = load(path)
    results[case] = {
        "figures": {name: None if _is_nan(value) else value for name, value in figures.items()},
        "note": note,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would make the committed record private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _is_nan(value: Figure) -> bool:
    # A percentile of no alerts is NaN, which JSON cannot hold.
    return isinstance(value, float) and math.isnan(value)
