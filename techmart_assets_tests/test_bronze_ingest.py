"""Bronze reading on hand-made drops: nothing is dropped, malformed rows say why, new columns survive."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from techmart_assets.bronze import drops as drops_module
from techmart_assets.bronze.drops import data_lines, group_by_header, list_drops
from techmart_assets.bronze.ingest import METADATA_COLUMNS, read_source_drops
from techmart_assets.delta import days_predicate
from techmart_assets.sources import TRANSACTIONS, WEB_EVENTS

HEADER = ",".join(TRANSACTIONS.columns)
GOOD = "T1,C1,P1,1,100.00,100.00,MAD,credit_card,completed,2024-01-01T10:00:00Z,web,desktop,Rabat,Morocco,10.0.0.1"  # noqa: E501


def _write(root: Path, source: str, day: str, name: str, text: str) -> None:
    folder = root / source / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_csv_rows_are_all_kept_and_malformed_ones_explained(spark: SparkSession, tmp_path: Path) -> None:
    short = "T2,C1,P1,1"
    long = GOOD.replace("T1", "T3") + ",extra"
    quoted = GOOD.replace("T1", "T4").replace("Rabat", '"Rabat, Agdal"')
    _write(
        tmp_path, "transactions", "2024-01-01", "t.csv", "\n".join([HEADER, GOOD, short, long, quoted]) + "\n"
    )
    drops = list_drops(str(tmp_path / "transactions"), "csv", date(2024, 1, 1), date(2024, 1, 1), True)

    rows = {
        r.transaction_id: r for r in read_source_drops(spark, TRANSACTIONS, group_by_header(drops)).collect()
    }

    assert set(rows) == {"T1", "T2", "T3", "T4"}
    assert rows["T1"]._parse_error is None and rows["T1"]._raw_line is None
    assert rows["T2"]._raw_line == short
    assert rows["T2"]._parse_error == "expected 15 fields (header of t.csv), found 4"
    assert rows["T3"]._raw_line == long
    assert rows["T3"]._parse_error == "expected 15 fields (header of t.csv), found 16"
    assert rows["T4"]._parse_error is None and rows["T4"].city == "Rabat, Agdal"
    assert {r.partition_date for r in rows.values()} == {date(2024, 1, 1)}
    assert all(r._source_file.endswith("/transactions/2024-01-01/t.csv") for r in rows.values())


def test_a_column_added_on_a_later_day_is_kept_without_shifting_earlier_days(
    spark: SparkSession, tmp_path: Path
) -> None:
    _write(tmp_path, "transactions", "2024-01-01", "a.csv", f"{HEADER}\n{GOOD}\n")
    _write(
        tmp_path,
        "transactions",
        "2024-01-02",
        "b.csv",
        f"{HEADER},coupon_code\n{GOOD.replace('T1', 'T9')},WELCOME5\n",
    )
    drops = list_drops(str(tmp_path / "transactions"), "csv", date(2024, 1, 1), date(2024, 1, 2), True)

    frame = read_source_drops(spark, TRANSACTIONS, group_by_header(drops))
    rows = {r.transaction_id: r for r in frame.collect()}

    assert frame.columns == [*TRANSACTIONS.columns, "coupon_code", *METADATA_COLUMNS]
    assert rows["T9"].coupon_code == "WELCOME5" and rows["T9"].ip_address == "10.0.0.1"
    assert rows["T1"].coupon_code is None and rows["T1"].ip_address == "10.0.0.1"


def test_truncated_json_line_is_kept_with_its_raw_text(spark: SparkSession, tmp_path: Path) -> None:
    good = '{"event_id": "E1", "session_id": "S1", "customer_id": null, "event_type": "page_view"}'
    truncated = '{"event_id": "E2", "session_id": "S1", "event_ty'
    _write(tmp_path, "web_events", "2024-01-03", "w.jsonl", f"{good}\n{truncated}\n")
    drops = list_drops(str(tmp_path / "web_events"), "jsonl", date(2024, 1, 1), date(2024, 1, 5), False)

    rows = read_source_drops(spark, WEB_EVENTS, group_by_header(drops)).orderBy("event_id").collect()

    assert [r.event_id for r in rows] == [None, "E1"]
    assert rows[0]._raw_line == truncated and rows[0]._parse_error == "line is not a complete JSON object"
    assert rows[1].customer_id is None and rows[1].product_id is None and rows[1]._parse_error is None


@pytest.mark.parametrize("chunk_bytes", [7, drops_module._CHUNK_BYTES])
def test_data_lines_counts_what_the_readers_keep_whatever_the_line_endings(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    """The drop_fully_landed check's own count: blank and whitespace-only lines are not rows, a last
    line without a newline is, CRLF is one line ending, and a line cut by a read chunk counts once."""
    monkeypatch.setattr(drops_module, "_CHUNK_BYTES", chunk_bytes)
    csv_lines = [HEADER, GOOD, "", GOOD.replace("T1", "T2"), "  \t ", "T3,C1,P1,1", ""]
    _write(tmp_path, "transactions", "2024-01-01", "a.csv", "\r\n".join(csv_lines))
    _write(tmp_path, "transactions", "2024-01-02", "b.csv", f"{HEADER}\n{GOOD.replace('T1', 'T4')}")
    event = '{"event_id": "E%d", "session_id": "S1", "event_type": "page_view"}'
    _write(tmp_path, "web_events", "2024-01-01", "w.jsonl", f"{event % 1}\n\n   \n{event % 2}\n" + event % 3)

    for source, header_lines in ((TRANSACTIONS, 1), (WEB_EVENTS, 0)):
        root = str(tmp_path / source.name)
        files = list_drops(root, source.extension, date(2024, 1, 1), date(2024, 1, 2), header_lines == 1)
        rows = read_source_drops(spark, source, group_by_header(files)).count()
        assert data_lines(files, header_lines) == rows == (4 if source is TRANSACTIONS else 3)


def test_drops_outside_the_window_and_empty_files_are_not_listed(tmp_path: Path) -> None:
    for day in ("2024-01-01", "2024-01-02", "2024-01-05"):
        _write(tmp_path, "transactions", day, "t.csv", f"{HEADER}\n{GOOD}\n")
    _write(tmp_path, "transactions", "2024-01-03", "empty.csv", "")
    _write(tmp_path, "transactions", "not-a-day", "t.csv", f"{HEADER}\n")

    drops = list_drops(str(tmp_path / "transactions"), "csv", date(2024, 1, 2), date(2024, 1, 4), True)

    assert [d.day for d in drops] == [date(2024, 1, 2)]
    assert drops[0].header == TRANSACTIONS.columns


def test_days_predicate_is_a_range_when_contiguous_and_a_list_otherwise() -> None:
    assert days_predicate([date(2024, 1, 2), date(2024, 1, 1)]) == (
        "partition_date BETWEEN DATE'2024-01-01' AND DATE'2024-01-02'"
    )
    assert days_predicate([date(2024, 1, 1), date(2024, 1, 3)]) == (
        "partition_date IN (DATE'2024-01-01', DATE'2024-01-03')"
    )
