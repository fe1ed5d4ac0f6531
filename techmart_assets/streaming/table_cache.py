"""A Delta table kept in a Python worker's memory as a lookup, read again when its version changes.

Streaming workers (the fraud detection, the live behaviour) look up a small table the batch job
writes (customer profiles, product categories) for every event. A stream-static join per micro-batch
would cost a Spark job each time; instead each worker reads the table with the `deltalake` library
(no Spark), keeps it as a dict, and checks the table's version every `refresh_s` seconds, so a new
version arrives without a restart. Until the table exists, every lookup finds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

import deltalake

Value = TypeVar("Value")


class TableCache(Generic[Value]):
    def __init__(
        self, path: str, load: Callable[[deltalake.DeltaTable], dict[str, Value]], refresh_s: float = 5.0
    ) -> None:
        self.path, self.load, self.refresh_s = path, load, refresh_s
        self.version: int | None = None
        self.checked = float("-inf")
        self.values: dict[str, Value] = {}

    def get(self, key: str | None) -> Value | None:
        now = time.monotonic()
        if now - self.checked >= self.refresh_s:
            self.checked = now
            self._refresh()
        return None if key is None else self.values.get(key)

    def _refresh(self) -> None:
        from deltalake.exceptions import TableNotFoundError

        try:
            table = deltalake.DeltaTable(self.path)
        except TableNotFoundError:
            return
        version = table.version()
        if version != self.version:
            self.values = self.load(table)
            self.version = version


# One cache per table and kind in each Python worker, kept from one micro-batch to the next.
_CACHES: dict[tuple[str, str], TableCache] = {}


def cached(path: str, load: Callable[[deltalake.DeltaTable], dict[str, Value]], refresh_s: float = 5.0):
    """The worker's cache of the table at `path` as `load` reads it (one per path and loader)."""
    key = (path, f"{load.__module__}.{load.__qualname__}")
    if key not in _CACHES:
        _CACHES[key] = TableCache(path, load, refresh_s)
    return _CACHES[key]
