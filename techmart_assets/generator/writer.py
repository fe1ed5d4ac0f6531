"""The output folder: one file per source and day under OUT/<source>/<date>/, plus labels.csv."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

from techmart_assets.generator.anomalies import LABEL_COLUMNS, Label
from techmart_assets.generator.render import Rows
from techmart_assets.sources import SOURCES

LABELS_FILE = "labels.csv"
SUMMARY_FILE = "_generation.json"


class DropWriter:
    """Writes the daily drops, counting rows and files per source; skips a source on a day without rows."""

    def __init__(self, out: Path):
        self.out = out
        self.rows = dict.fromkeys(SOURCES, 0)
        self.files = dict.fromkeys(SOURCES, 0)
        self.labels = 0

    def __enter__(self) -> DropWriter:
        # Start from scratch so that no file of an earlier run with other dates survives.
        for source in SOURCES:
            shutil.rmtree(self.out / source, ignore_errors=True)
        for name in (LABELS_FILE, SUMMARY_FILE):
            (self.out / name).unlink(missing_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self._labels = (self.out / LABELS_FILE).open("w", newline="", encoding="utf-8")
        self._label_writer = csv.writer(self._labels, lineterminator="\n")
        self._label_writer.writerow(LABEL_COLUMNS)
        return self

    def __exit__(self, *exc: object) -> None:
        self._labels.close()

    @staticmethod
    def relative_path(source: str, day: date) -> str:
        return f"{source}/{day.isoformat()}/{source}-{day.isoformat()}.{SOURCES[source].extension}"

    def write(self, source: str, day: date, rows: Rows, header: bytes | None = None) -> None:
        """Write `rows` (after a header: the source's columns unless given) as the day's file of `source`."""
        if not rows.count:
            return
        if header is None:
            header = (
                (",".join(SOURCES[source].columns) + "\n").encode()
                if SOURCES[source].file_format == "csv"
                else b""
            )
        path = self.out / self.relative_path(source, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(header + rows.render())
        self.rows[source] += rows.count
        self.files[source] += 1

    def add_labels(self, labels: list[Label]) -> None:
        self._label_writer.writerows(label.row() for label in labels)
        self.labels += len(labels)
