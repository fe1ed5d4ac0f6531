"""Finding a source's daily drops for a range of days: files, their dates and their headers."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from pyarrow import fs

_DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HEADER_BYTES = 64 * 1024
_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class DropFile:
    day: date
    path: str  # as Spark reads it (a local path or the original URI)
    header: tuple[str, ...] | None = None  # CSV only
    size: int = 0  # bytes


def _filesystem(root: str) -> tuple[fs.FileSystem, str, str]:
    """The filesystem holding `root`, the path inside it, and the prefix that turns it back into a URI."""
    if "://" in root:
        filesystem, inner = fs.FileSystem.from_uri(root)
        scheme = root.split("://", 1)[0]
        return filesystem, inner, f"{scheme}://"
    return fs.LocalFileSystem(), root, ""


def read_header(filesystem: fs.FileSystem, path: str) -> tuple[str, ...]:
    with filesystem.open_input_stream(path) as stream:
        first = stream.read(_HEADER_BYTES).split(b"\n", 1)[0]
    return tuple(name.strip().strip('"') for name in first.decode("utf-8").rstrip("\r").split(","))


def list_drops(
    source_root: str, extension: str, first: date, last: date, with_header: bool
) -> list[DropFile]:
    """Every `<source_root>/YYYY-MM-DD/*.<extension>` with first <= day <= last, in day order."""
    filesystem, inner, prefix = _filesystem(source_root)
    info = filesystem.get_file_info(inner)
    if info.type == fs.FileType.NotFound:
        return []
    drops: list[DropFile] = []
    for day_dir in filesystem.get_file_info(fs.FileSelector(inner)):
        if day_dir.type != fs.FileType.Directory or not _DAY_FOLDER.match(day_dir.base_name):
            continue
        day = date.fromisoformat(day_dir.base_name)
        if not first <= day <= last:
            continue
        for f in filesystem.get_file_info(fs.FileSelector(day_dir.path)):
            if f.type == fs.FileType.File and f.base_name.endswith(f".{extension}") and f.size > 0:
                header = read_header(filesystem, f.path) if with_header else None
                drops.append(DropFile(day=day, path=f"{prefix}{f.path}", header=header, size=f.size))
    return sorted(drops, key=lambda d: (d.day, d.path))


def data_lines(drops: list[DropFile], header_lines: int) -> int:
    """Non-blank lines of the drop files, headers excepted, counted without any parser.

    A line of only whitespace is blank, as Spark's CSV and JSON readers skip it.
    """
    if not drops:
        return 0
    # One listing's drops share a filesystem: resolve it once, not per file (a remote one is a client).
    filesystem, _, prefix = _filesystem(drops[0].path)
    total = 0
    for drop in drops:
        carry = b""
        with filesystem.open_input_stream(drop.path.removeprefix(prefix)) as stream:
            while block := stream.read(_CHUNK_BYTES):
                lines = (carry + block).split(b"\n")
                carry = lines.pop()
                total += sum(1 for line in lines if line.strip())
        total += 1 if carry.strip() else 0
    return total - header_lines * len(drops)


def bytes_per_day(drops: list[DropFile]) -> dict[date, int]:
    sizes: dict[date, int] = defaultdict(int)
    for drop in drops:
        sizes[drop.day] += drop.size
    return dict(sizes)


def group_by_header(drops: list[DropFile]) -> dict[tuple[str, ...], list[str]]:
    """Files that share a header can be read in one pass; a source that gained a column has two groups."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for drop in drops:
        groups[drop.header or ()].append(drop.path)
    return dict(groups)
