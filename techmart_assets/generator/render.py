"""Vectorised text rendering: rows are assembled from NUL-padded fixed-width byte pieces, then the padding
is squeezed out. This is what lets the generator write millions of CSV/JSON lines without a Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

# A piece is either one constant for every row or a numpy bytes array ("S" dtype) with one value per row.
Piece = bytes | np.ndarray

# Rows are packed a chunk at a time so the packing buffer stays in cache.
_CHUNK = 8192


def table(values: Sequence[str]) -> np.ndarray:
    """A lookup table: index it with integer codes to get one piece value per row."""
    return np.array([v.encode() for v in values], dtype=f"S{max([1, *(len(v) for v in values)])}")


@cache
def _groups() -> dict[str, np.ndarray]:
    # Numbers are rendered four digits at a time through these tables rather than digit by digit.
    return {
        "pad1": table([f"{i:01d}" for i in range(10)]),
        "pad2": table([f"{i:02d}" for i in range(100)]),
        "pad3": table([f"{i:03d}" for i in range(1000)]),
        "pad4": table([f"{i:04d}" for i in range(10000)]),
        "plain": table([str(i) for i in range(10000)]),
        "lead": table([""] + [str(i) for i in range(1, 10000)]),
    }


@cache
def _times_of_day() -> np.ndarray:
    return table([f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(86400)])


def _group_sizes(width: int) -> list[int]:
    return ([width % 4] if width % 4 else []) + [4] * (width // 4)


def zero_padded(values: np.ndarray, width: int) -> list[np.ndarray]:
    """Non-negative integers as exactly `width` digits with leading zeros (the numeric part of ids)."""
    groups = _groups()
    pieces = []
    divisor = 10**width
    for size in _group_sizes(width):
        divisor //= 10**size
        pieces.append(groups[f"pad{size}"][(values // divisor) % 10**size])
    return pieces


@cache
def _json_group(prefix: str, size: int, first: bool) -> np.ndarray:
    # The first digit group carries the opening quote and prefix (or the word null), the last one the
    # closing quote, so a nullable id costs no more pieces than a plain one.
    if first:
        return table([f'"{prefix}{i:0{size}d}' for i in range(10**size)] + ["null"])
    return table([f'{i:0{size}d}"' for i in range(10**size)] + [""])


def json_id(prefix: str, values: np.ndarray, width: int, null: np.ndarray) -> list[np.ndarray]:
    """JSON strings `"<prefix><width digits>"`, or null where `null` is set (width > 4)."""
    pieces = zero_padded(values, width)
    first = _group_sizes(width)[0]
    pieces[0] = _json_group(prefix, first, True)[np.where(null, 10**first, values // 10 ** (width - first))]
    pieces[-1] = _json_group("", 4, False)[np.where(null, 10**4, values % 10**4)]
    for piece in pieces[1:-1]:
        piece[null] = b""
    return pieces


def plain_int(values: np.ndarray) -> list[np.ndarray]:
    """Non-negative integers below 10**8 without leading zeros."""
    if values.size and values.max() >= 10**8:
        raise ValueError("plain_int renders integers below 10**8 only")
    groups = _groups()
    high, low = values // 10000, values % 10000
    return [groups["lead"][high], np.where(high > 0, groups["pad4"][low], groups["plain"][low])]


def money(cents: np.ndarray) -> list[Piece]:
    """Non-negative amounts held in cents, with two decimals: 8647.86."""
    return [*plain_int(cents // 100), b".", _groups()["pad2"][cents % 100]]


def digits(values: np.ndarray, width: int) -> list[np.ndarray]:
    """Non-negative integers as `width` single-digit pieces, most significant first."""
    return [_groups()["pad1"][(values // 10**k) % 10] for k in range(width - 1, -1, -1)]


def iso_date(epoch_days: np.ndarray) -> Piece:
    """Days since 1970-01-01 as YYYY-MM-DD (a constant when they are all the same day)."""
    distinct = np.unique(epoch_days)
    if len(distinct) == 1:
        return str(np.datetime64(int(distinct[0]), "D")).encode()
    dates = table([str(np.datetime64(int(d), "D")) for d in distinct])
    return dates[np.searchsorted(distinct, epoch_days)]


def iso_ts(epoch_seconds: np.ndarray) -> list[Piece]:
    """UTC timestamps as ISO-8601 with a Z suffix: 2024-03-05T14:22:31Z."""
    return [iso_date(epoch_seconds // 86400), _times_of_day()[epoch_seconds % 86400]]


def _merge_constants(pieces: Sequence[Piece]) -> list[Piece]:
    # Fewer, wider fields pack faster.
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _pack(pieces: Sequence[Piece], index: slice | np.ndarray, count: int) -> np.ndarray:
    """The pieces of the `count` selected rows side by side, one fixed-width record per row (NULs kept)."""
    columns = [p if isinstance(p, bytes) else p[index] for p in pieces]
    widths = [len(c) if isinstance(c, bytes) else c.dtype.itemsize for c in columns]
    names = [f"f{i}" for i in range(len(columns))]
    records = np.empty(count, dtype=np.dtype({"names": names, "formats": [f"S{w}" for w in widths]}))
    for name, column in zip(names, columns, strict=True):
        records[name] = column
    return records


def _squeeze(records: np.ndarray) -> bytes:
    return records.tobytes().translate(None, b"\x00")


class Rows:
    """Text rows under construction: one list of pieces per cell (a CSV field or a JSON member).

    Cells after the first are preceded by `sep`. Individual rows can be edited before rendering, which
    is how dirty data is injected: a cell can get another value or disappear with its separator, and a
    whole line can be replaced.
    """

    def __init__(self, count: int, cells: Sequence[Sequence[Piece]], sep: bytes = b"", end: bytes = b"\n"):
        self.count = count
        self.sep = sep
        self.end = end
        self.cells: list[list[Piece]] = [
            [p for p in ([sep] if i and sep else []) + list(cell) if not (isinstance(p, bytes) and not p)]
            for i, cell in enumerate(cells)
        ]
        self._replaced: dict[int, bytes] = {}

    def _column(self, cell: int, width: int) -> np.ndarray:
        """`cell` as one bytes array at least `width` wide."""
        pieces = _merge_constants(self.cells[cell])
        packed_width = sum(len(p) if isinstance(p, bytes) else p.dtype.itemsize for p in pieces)
        packed = _pack(pieces, slice(0, self.count), self.count) if pieces else np.zeros(self.count, "S1")
        return packed.view(f"S{max(1, packed_width)}").astype(f"S{max(1, packed_width, width)}")

    def set(self, cell: int, rows: Sequence[int], values: Sequence[str]) -> None:
        """Give `cell` of each of `rows` a new value (separator added)."""
        if not len(rows):
            return
        prefix = self.sep if cell else b""
        encoded = [prefix + v.encode() for v in values]
        column = self._column(cell, max(len(v) for v in encoded))
        column[np.asarray(rows, dtype=np.int64)] = encoded
        self.cells[cell] = [column]

    def drop(self, cells: Sequence[int], rows: Sequence[int]) -> None:
        """Remove `cells` (value and separator) from each of `rows`."""
        if not len(rows):
            return
        for cell in cells:
            column = self._column(cell, 0)
            column[np.asarray(rows, dtype=np.int64)] = b""
            self.cells[cell] = [column]

    def replace_lines(self, rows: Sequence[int], contents: Sequence[bytes]) -> None:
        """Make each of `rows` read its `contents` (without the line end)."""
        self._replaced.update(zip((int(r) for r in rows), contents, strict=True))

    def _pieces(self) -> list[Piece]:
        return _merge_constants([p for cell in self.cells for p in cell] + [self.end])

    def lines(self, rows: Sequence[int]) -> list[bytes]:
        """The current text of `rows`, without line ends."""
        if not len(rows):
            return []
        rows = np.asarray(rows, dtype=np.int64)
        text = _squeeze(_pack(self._pieces(), rows, len(rows)))[: -len(self.end)].split(self.end)
        return [self._replaced.get(int(r), line) for r, line in zip(rows.tolist(), text, strict=True)]

    def render(self) -> bytes:
        """The text of all rows, each followed by the line end."""
        pieces = self._pieces()
        chunks = []
        start = 0
        for stop in [*sorted(self._replaced), self.count]:
            for first in range(start, stop, _CHUNK):
                last = min(first + _CHUNK, stop)
                chunks.append(_squeeze(_pack(pieces, slice(first, last), last - first)))
            if stop < self.count:
                chunks.append(self._replaced[stop] + self.end)
            start = stop + 1
        return b"".join(chunks)
