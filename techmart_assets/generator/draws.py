"""Vectorised random draws shared by the generators."""

from __future__ import annotations

from datetime import date

import numpy as np


def day_rng(seed: int, day: date) -> np.random.Generator:
    """Each day draws from its own stream, so a day's data depends only on the seed and earlier state."""
    return np.random.default_rng([seed, day.toordinal()])


def setup_rng(seed: int, purpose: int) -> np.random.Generator:
    """Streams for what is drawn once before the first day (populations, day totals)."""
    return np.random.default_rng([seed, 0, purpose])


def categorical(rng: np.random.Generator, probs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """One code per row, drawn from `probs[group]` for the row's group (probs: groups x codes)."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(groups))
    return np.minimum((u[:, None] >= cum[groups]).sum(axis=1), probs.shape[1] - 1)


def choice(rng: np.random.Generator, probs: np.ndarray, size: int) -> np.ndarray:
    """`size` codes drawn from one distribution."""
    cum = np.cumsum(probs)
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(size), side="right"), len(probs) - 1)


def weighted_pick(rng: np.random.Generator, cum_weights: np.ndarray, limit: int, size: int) -> np.ndarray:
    """`size` indices below `limit`, drawn in proportion to the weights whose running sum is `cum_weights`."""
    u = rng.random(size) * cum_weights[limit - 1]
    return np.minimum(np.searchsorted(cum_weights[:limit], u, side="right"), limit - 1)
