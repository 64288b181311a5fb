"""Step functions (a level that changes at instants) reduced to fixed time bins.

Queue lengths, busy workers and bike stock are all step functions of time. Plotting millions
of changes would be slow and unreadable, so they are summarised per bin: the time average and
the maximum inside each bin, or the level sampled on a grid.
"""

from __future__ import annotations

import numpy as np


def steps_from_deltas(times_s: np.ndarray, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A step function from +/- changes: (change times ascending, level right after each).

    Changes at the same instant are netted (only the level after the last one counts), so a
    worker released and taken again at one instant never shows as idle.
    """
    if len(times_s) == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    order = np.argsort(times_s, kind="stable")
    times = np.asarray(times_s, np.float64)[order]
    levels = np.cumsum(np.asarray(deltas, np.int64)[order])
    last_of_instant = np.flatnonzero(np.append(np.diff(times) != 0, True))
    return times[last_of_instant], levels[last_of_instant]


def level_at(
    times_s: np.ndarray, levels: np.ndarray, at_s: np.ndarray, initial: int = 0
) -> np.ndarray:
    """The level at each of `at_s`: after the last change at or before it, else `initial`."""
    index = np.searchsorted(times_s, at_s, side="right") - 1
    safe = np.maximum(index, 0)
    found = levels[safe] if len(levels) else np.zeros(len(at_s), np.int64)
    return np.where(index >= 0, found, initial)


def bin_average(
    times_s: np.ndarray, levels: np.ndarray, edges_s: np.ndarray, initial: int = 0
) -> np.ndarray:
    """Time average of the level over each bin [edges_s[k], edges_s[k + 1])."""
    times = np.asarray(times_s, np.float64)
    # Area under the step function from times[0] up to each change, then up to each edge.
    index = np.searchsorted(times, edges_s, side="right") - 1
    safe = np.maximum(index, 0)
    if len(times):
        area_at = np.concatenate(([0.0], np.cumsum(levels[:-1] * np.diff(times))))
        after = area_at[safe] + levels[safe] * (edges_s - times[safe])
        before = initial * (edges_s - times[0])
        area = np.where(index >= 0, after, before)
    else:
        area = initial * (edges_s - edges_s[0])
    return np.diff(area) / np.diff(edges_s)


def bin_maximum(
    times_s: np.ndarray, levels: np.ndarray, edges_s: np.ndarray, initial: int = 0
) -> np.ndarray:
    """Highest level reached inside each bin [edges_s[k], edges_s[k + 1])."""
    peak = level_at(times_s, levels, edges_s[:-1], initial).astype(np.int64)
    inside = (times_s >= edges_s[0]) & (times_s < edges_s[-1])
    bins = np.searchsorted(edges_s, times_s[inside], side="right") - 1
    np.maximum.at(peak, bins, levels[inside])
    return peak
