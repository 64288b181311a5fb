"""Exact integer group-by sums without floats and without sorting when keys are dense."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

DENSE_RANGE_MAX = 1 << 22
"""Widest key range summed through a direct-address table (32 MiB of int64) before sorting."""


@dataclass(frozen=True)
class Sums:
    """Distinct keys (ascending uint64) with the sum of amounts and the count of items each."""

    keys: np.ndarray
    fen: np.ndarray
    count: np.ndarray

    def negated(self) -> Sums:
        """The same groups taken away: amounts and counts negated."""
        return Sums(self.keys, -self.fen, -self.count)


def group_sums(keys: np.ndarray, values: np.ndarray, counts: np.ndarray | None = None) -> Sums:
    """Sum int64 `values` (and `counts`, default one per item) per distinct key."""
    values = values.astype(np.int64, copy=False)
    counts = np.ones(len(keys), np.int64) if counts is None else counts
    if len(keys) == 0:
        return Sums(np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64))
    low = keys.min()
    span = int(keys.max() - low) + 1
    if span <= DENSE_RANGE_MAX:
        found, fen, count = _dense_sums((keys - low).astype(np.intp), values, counts, span)
        return Sums(found.astype(np.uint64) + low, fen, count)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return Sums(
        sorted_keys[starts],
        np.add.reduceat(values[order], starts),
        np.add.reduceat(counts[order], starts),
    )


@njit(nogil=True, cache=True)
def _dense_sums(
    dense: np.ndarray, values: np.ndarray, counts: np.ndarray, span: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums per offset in [0, span) through a direct-address table: the offsets that occur,
    ascending, with their sums. Compiled without the GIL: worker threads sum their chunks'
    flows side by side (numpy's add.at holds it)."""
    fen = np.zeros(span, np.int64)
    count = np.zeros(span, np.int64)
    seen = np.zeros(span, np.bool_)
    for i in range(len(dense)):
        fen[dense[i]] += values[i]
        count[dense[i]] += counts[i]
        seen[dense[i]] = True
    found = np.flatnonzero(seen)
    return found, fen[found], count[found]


def merge_sums(parts: list[Sums]) -> Sums:
    """Combine several Sums into one, dropping groups whose count fell to zero."""
    if not parts:
        return group_sums(np.empty(0, np.uint64), np.empty(0, np.int64))
    merged = group_sums(
        np.concatenate([p.keys for p in parts]),
        np.concatenate([p.fen for p in parts]),
        np.concatenate([p.count for p in parts]),
    )
    keep = merged.count != 0
    return Sums(merged.keys[keep], merged.fen[keep], merged.count[keep])
