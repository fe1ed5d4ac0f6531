"""What a silver transformation returns: accepted rows, quarantined rows, and what it cached."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame


@dataclass
class SilverBatch:
    accepted: DataFrame
    quarantined: DataFrame
    # Intermediate frames that both outputs read; persisted so each write does not recompute them.
    persisted: list[DataFrame] = field(default_factory=list)


def shared(frame: DataFrame, persisted: list[DataFrame]) -> DataFrame:
    """Mark `frame` to be computed once and reused by every output built from it."""
    persisted.append(frame.persist())
    return frame


def release(persisted: list[DataFrame]) -> None:
    """Drop what `shared` cached, once every output has been written."""
    for frame in persisted:
        frame.unpersist()
