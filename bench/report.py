"""BENCHMARKS.md from bench/results.json: the machine, then one table per benchmark case, then the history
(`bench/HISTORY.md`, appended as written). `make bench` runs it after the benchmarks; on its own:
`python -m bench.report [--results PATH] [--out PATH]`.

A figure's unit is the suffix of its key, and the table shows the key without it, underscores as
spaces (`plain_pyspark_s` is "plain pyspark | 12.6 s"):

    _s seconds · _ms milliseconds · _ratio a ratio (times) · _rows_per_s rows per second ·
    _per_s events per second · _mib and _gib memory (`rss_peak_mib` is "rss peak | 712 MiB")

A key that is only the suffix (`ratio`) keeps it as its name. Any other key is a plain number or
text; None shows as a dash (not measured).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jinja2

from bench.results import load, machine, results_path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR.parent / "BENCHMARKS.md"
HISTORY = BENCH_DIR / "HISTORY.md"
TEMPLATE = "BENCHMARKS.md.j2"
TIMES = "\N{MULTIPLICATION SIGN}"
NOT_MEASURED = "\N{EN DASH}"

# Longest first: `_rows_per_s` before `_per_s` before `_s`.
UNITS = (
    ("_rows_per_s", "rows/s"),
    ("_per_s", "/s"),
    ("_mib", "MiB"),
    ("_gib", "GiB"),
    ("_ms", "ms"),
    ("_ratio", TIMES),
    ("_s", "s"),
)


def split_unit(key: str) -> tuple[str, str]:
    """A figure's key as (name shown, unit)."""
    for suffix, unit in UNITS:
        if key == suffix[1:]:
            return key.replace("_", " "), unit
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " "), unit
    return key.replace("_", " "), ""


def number(value: float | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if size >= 1 else f"{value:.3f}"


def show(key: str, value: Any) -> tuple[str, str]:
    """A figure as the table's (name, value with its unit)."""
    name, unit = split_unit(key)
    if value is None:
        return name, NOT_MEASURED
    if isinstance(value, str | bool):
        return name, str(value).replace("|", "\\|")
    text = number(value)
    if not unit:
        return name, text
    return name, f"{text}{unit}" if unit in (TIMES, "/s") else f"{text} {unit}"


def describe(box: dict[str, Any]) -> dict[str, str]:
    """A machine block as the header's phrases."""
    memory = box.get("memory_gib")
    versions = box.get("versions") or {}
    return {
        "hardware": f"{box.get('cores')} cores, {f'{memory} GiB' if memory else 'unknown'} memory",
        "software": f"{box.get('platform')}, Python {box.get('python')}",
        "versions": ", ".join(f"{p} {v or 'not installed'}" for p, v in versions.items()),
    }


SCALE_CASE = "history at scale "
# The scale cases' figures shown side by side, one column per scale: how cost grows with the data.
SCALE_FIGURES = (
    "raw_mib",
    "generate_s",
    "floor_s",
    *(
        f"{layer}_{figure}"
        for layer in ("bronze", "silver", "gold")
        for figure in ("s", "rows_per_s", "peak_mib", "biggest_process_peak_mib", "vs_floor_ratio")
    ),
    "history_s",
    "history_peak_mib",
    "daily_run_s",
    "one_run_per_day_extrapolated_s",
)


def scale_table(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The history-at-scale cases as one table, scales as columns (smallest first), or None."""
    cases = sorted(
        (entry for case, entry in results.items() if case.startswith(SCALE_CASE)),
        key=lambda entry: entry["figures"].get("scale", 0),
    )
    if not cases:
        return None
    rows = []
    for key in SCALE_FIGURES:
        values = [entry["figures"].get(key) for entry in cases]
        if all(v is None for v in values):
            continue
        name = show(key, None)[0]
        # Side by side, a layer's time and its rate would both read "bronze".
        name += " rate" if key.endswith("_rows_per_s") else " time" if key.endswith("_s") else ""
        rows.append((name, [show(key, v)[1] for v in values]))
    return {"scales": [f"{entry['figures']['scale']:g}{TIMES}" for entry in cases], "rows": rows}


def render(results_path: Path, out_path: Path) -> str:
    """Write the report of `results_path` to `out_path`; returns its text."""
    results = load(results_path)
    newest = max(results.values(), key=lambda entry: entry["recorded_at"], default=None)
    header_machine = newest["machine"] if newest else machine()
    cases = [
        {
            "name": case,
            "recorded_at": entry["recorded_at"],
            "machine": None if entry["machine"] == header_machine else describe(entry["machine"]),
            "note": entry.get("note", ""),
            "rows": [show(key, value) for key, value in entry["figures"].items()],
        }
        for case, entry in results.items()
    ]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(BENCH_DIR),
        autoescape=False,  # markdown, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    text = environment.get_template(TEMPLATE).render(
        machine=describe(header_machine),
        recorded_at=newest["recorded_at"] if newest else None,
        cases=cases,
        scales=scale_table(results),
        history=HISTORY.read_text(encoding="utf-8"),
    )
    out_path.write_text(text, encoding="utf-8")
    return text


def main() -> None:
    parsed = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parsed.add_argument(
        "--results", type=Path, default=results_path(), help="the figures (bench/results.json)"
    )
    parsed.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the report (BENCHMARKS.md)")
    args = parsed.parse_args()
    render(args.results, args.out)
    print(f"wrote {args.out} from {args.results}")


if __name__ == "__main__":
    main()
