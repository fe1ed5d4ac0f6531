"""What a silver transformation returns: accepted rows, quarantined rows, and what it cached."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame


@dataclass
class SilverBatch:
    accepted: DataFrame
    quarantined: DataFrame
    # Intermediate frames that both outputs read; persisted so each write does not recompute them.
    persisted: list[DataFrame] = field(default_factory=list)


def shared(frame: DataFrame, persisted: list[DataFrame]) -> DataFrame:
    """Mark `frame` to be computed once and reused by every output built from it.

    Kept on local disk, not on the heap: a chunk's frames are larger than a small driver's storage
    memory, and partly unrolled cache blocks fought the step's own work for it (garbage collection
    took a fifth of silver's time at ten times the reference data).
    """
    persisted.append(frame.persist(StorageLevel.DISK_ONLY))
    return frame


def release(persisted: list[DataFrame]) -> None:
    """Drop what `shared` cached, once every output has been written."""
    for frame in persisted:
        frame.unpersist()
