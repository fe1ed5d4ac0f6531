"""The benchmarks' record and report: figures recorded by case, BENCHMARKS.md rendered from them with the
machine and the history; the README keeps no measurements of its own and links the report."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bench import report, results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "results.json"
    monkeypatch.setenv("TECHMART_BENCH_RESULTS", str(path))
    return path


def test_record_merges_cases_by_name(results_file: Path) -> None:
    results.record("bronze_backfill", {"dagster_s": 20.0, "ratio": 1.6})
    results.record("event_storage", {"pooled_sqlite_s": 1.7, "p99_s": float("nan")}, note="best of 2")
    results.record("bronze_backfill", {"dagster_s": 14.6, "ratio": 1.25})

    recorded = json.loads(results_file.read_text())
    assert list(recorded) == ["bronze_backfill", "event_storage"]
    assert recorded["bronze_backfill"]["figures"] == {"dagster_s": 14.6, "ratio": 1.25}
    assert recorded["event_storage"]["figures"]["p99_s"] is None
    assert recorded["event_storage"]["note"] == "best of 2"
    entry = recorded["event_storage"]
    assert entry["machine"]["cores"] == os.cpu_count()
    assert set(entry["machine"]["versions"]) == {"dagster", "pyspark", "delta-spark", "dbt-core"}
    assert entry["recorded_at"].endswith("+00:00")
    assert [p.name for p in results_file.parent.iterdir()] == ["results.json"]


def test_report_renders_machine_cases_and_history(results_file: Path, tmp_path: Path) -> None:
    results.record(
        "bronze_backfill",
        {
            "plain_pyspark_s": 10.6,
            "dagster_s": 13.3,
            "ratio": 1.2547,
            "ratio_of": "Dagster / plain PySpark",
            "bookkeeping_s": 1.6,
        },
        note="best of 3 after 1 warm-up round",
    )
    results.record(
        "fraud_stream at 1,000/s",
        {
            "achieved_per_s": 999.6,
            "latency_p99_s": 3.51,
            "recall": 1.0,
            "alerts": 1419,
            "detection_batch_median_ms": 920.0,
            "generator_rows_per_s": 83_125.4,
            "rss_peak_mib": 712.4,
            "not_measured_s": None,
        },
    )
    out = tmp_path / "BENCHMARKS.md"

    text = report.render(results_file, out)

    assert out.read_text() == text
    assert f"- **Machine**: {os.cpu_count()} cores, " in text
    assert "- **Versions**: dagster " in text
    for row in (
        "| plain pyspark | 10.6 s |",
        "| dagster | 13.3 s |",
        "| ratio | 1.25\N{MULTIPLICATION SIGN} |",
        "| ratio of | Dagster / plain PySpark |",
        "| bookkeeping | 1.60 s |",
        "| achieved | 999.6/s |",
        "| latency p99 | 3.51 s |",
        "| recall | 1.00 |",
        "| alerts | 1,419 |",
        "| detection batch median | 920.0 ms |",
        "| generator | 83,125 rows/s |",
        "| rss peak | 712.4 MiB |",
        "| not measured | \N{EN DASH} |",
    ):
        assert row in text, row
    headings = ("### bronze_backfill", "### fraud_stream at 1,000/s", "## History")
    assert [text.index(h) for h in headings] == sorted(text.index(h) for h in headings)
    assert "best of 3 after 1 warm-up round" in text
    assert text.rstrip().endswith(report.HISTORY.read_text().rstrip())


def test_report_without_results_says_how_to_get_them(results_file: Path, tmp_path: Path) -> None:
    text = report.render(results_file, tmp_path / "BENCHMARKS.md")

    assert f"- **Machine**: {os.cpu_count()} cores, " in text
    assert "No results recorded yet; run `make bench`." in text
    assert "## History" in text


def test_readme_links_the_report_and_holds_no_timings() -> None:
    readme = (ROOT / "README.md").read_text()

    assert "(BENCHMARKS.md)" in readme
    assert "make bench" in readme.split("## Performance notes", 1)[1]
    timed_rows = [line for line in readme.splitlines() if re.search(r"\| .*\d+\.\d+ s .*\|", line)]
    assert timed_rows == []
    assert not re.search(r"\bp99 \d+\.\d+ s|\bratio \d\.\d+|\bin \d+ s\b", readme)


def test_committed_report_is_rendered_from_the_committed_results(tmp_path: Path) -> None:
    rendered = report.render(results.DEFAULT_PATH, tmp_path / "BENCHMARKS.md")
    committed = (ROOT / "BENCHMARKS.md").read_text()

    # The header's machine is the current one when nothing is recorded yet; the rest must agree.
    assert rendered.split("## Results", 1)[1] == committed.split("## Results", 1)[1]


def test_the_scale_cases_are_also_shown_side_by_side(results_file: Path, tmp_path: Path) -> None:
    results.record("history at scale 10", {"scale": 10.0, "bronze_s": 170.0, "bronze_peak_mib": 2_800.0})
    results.record("history at scale 1", {"scale": 1.0, "bronze_s": 20.0, "silver_s": 45.5})

    text = report.render(results_file, tmp_path / "BENCHMARKS.md")

    table = text.split("### The history at each scale, side by side", 1)[1].split("###", 1)[0]
    assert "| figure | 1\N{MULTIPLICATION SIGN} | 10\N{MULTIPLICATION SIGN} |" in table
    assert "| bronze time | 20.0 s | 170.0 s |" in table
    assert "| bronze peak | \N{EN DASH} | 2,800 MiB |" in table
    assert "| silver time | 45.5 s | \N{EN DASH} |" in table
