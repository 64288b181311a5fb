"""Sorting uint64 keys in linear time: a compiled radix sort that threads can share.

The card pass sorts every booked record's `card_id << 32 | card_counter` key, ten million a
peak day. A comparison sort (numpy's) costs about 80 ns a key here, most of the card pass; a
radix sort touches each key a few times. `sort_runs` takes the keys as the chunks produced
them (runs in any order), splits them by their top 11 varying bits into 2,048 buckets (each
run counted and scattered on its own, so runs go to threads), then sorts each bucket, now small
enough to stay in cache, with least-significant-digit passes that skip digits on which all of
the bucket's keys agree. Keys are plain values, so stability does not arise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numba import njit

from cardsim.settlement.threads import thread_map

TOP_BITS = 11
"""Bits of the bucket digit: 2,048 buckets (a 16 KiB count table per run)."""
DIGIT_BITS = 8
"""Bits per least-significant-digit pass inside a bucket (a 2 KiB count table)."""
INSERTION_MAX = 32
"""Buckets up to this many keys are insertion-sorted (fewer steps than a counting pass)."""


def sort_keys(keys: np.ndarray) -> np.ndarray:
    """A sorted copy of a uint64 array (ascending)."""
    return sort_runs([keys])


def sort_runs(runs: Sequence[np.ndarray], workers: int = 1) -> np.ndarray:
    """Every key of every run (uint64 arrays, each in any order), in one ascending array.

    `workers` threads share the work: the compiled steps release the GIL.
    """
    runs = [np.ascontiguousarray(r, dtype=np.uint64) for r in runs]
    total = sum(len(r) for r in runs)
    out = np.empty(total, np.uint64)
    if total == 0:
        return out
    agree_and, agree_or = np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0)
    for r in runs:
        if len(r):
            a, o = _span(r)
            agree_and, agree_or = agree_and & a, agree_or | o
    varying = int(agree_and ^ agree_or)
    shift = max(0, varying.bit_length() - TOP_BITS)
    counts = thread_map(workers, lambda r: _histogram(r, shift), runs)
    # Run k's keys of bucket d go after every run's keys of the buckets below d and after the
    # keys of bucket d from runs before k.
    table = np.array(counts, np.int64).reshape(len(runs), 1 << TOP_BITS)
    sizes = table.sum(axis=0)
    bounds = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=bounds[1:])
    offsets = bounds[:-1] + np.cumsum(table, axis=0) - table
    thread_map(
        workers, lambda k: _scatter(runs[k], shift, offsets[k].copy(), out), range(len(runs))
    )
    if shift:
        parts = _balanced(bounds, workers)
        thread_map(workers, lambda p: _sort_buckets(out, bounds, p[0], p[1]), parts)
    return out


def _balanced(bounds: np.ndarray, workers: int) -> list[tuple[int, int]]:
    """Contiguous bucket ranges [first, last) holding about equal numbers of keys."""
    buckets = len(bounds) - 1
    targets = bounds[-1] * np.arange(1, workers) // max(1, workers)
    cuts = [0, *np.searchsorted(bounds, targets).tolist(), buckets]
    cuts = [min(max(c, 0), buckets) for c in cuts]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


@njit(nogil=True, cache=True)
def _span(keys: np.ndarray) -> tuple[np.uint64, np.uint64]:
    """Bitwise AND and OR of all keys: bits where both differ vary among the keys."""
    a = keys[0]
    o = keys[0]
    for x in keys:
        a &= x
        o |= x
    return a, o


@njit(nogil=True, cache=True)
def _histogram(keys: np.ndarray, shift: int) -> np.ndarray:
    counts = np.zeros(1 << TOP_BITS, np.int64)
    s = np.uint64(shift)
    mask = np.uint64((1 << TOP_BITS) - 1)
    for x in keys:
        counts[(x >> s) & mask] += 1
    return counts


@njit(nogil=True, cache=True)
def _scatter(keys: np.ndarray, shift: int, offsets: np.ndarray, out: np.ndarray) -> None:
    """Each key to the next free slot of its bucket; `offsets` (this run's) advance."""
    s = np.uint64(shift)
    mask = np.uint64((1 << TOP_BITS) - 1)
    for x in keys:
        d = (x >> s) & mask
        out[offsets[d]] = x
        offsets[d] += 1


@njit(nogil=True, cache=True)
def _sort_buckets(data: np.ndarray, bounds: np.ndarray, first: int, last: int) -> None:
    """Sort data[bounds[b]:bounds[b + 1]] in place for every bucket b in [first, last)."""
    largest = 0
    for b in range(first, last):
        largest = max(largest, bounds[b + 1] - bounds[b])
    scratch = np.empty(largest, np.uint64)
    counts = np.empty(1 << DIGIT_BITS, np.int64)
    for b in range(first, last):
        lo, hi = bounds[b], bounds[b + 1]
        if hi - lo <= INSERTION_MAX:
            _insertion_sort(data, lo, hi)
        else:
            _lsd_sort(data, lo, hi, scratch, counts)


@njit
def _insertion_sort(data: np.ndarray, lo: int, hi: int) -> None:
    for i in range(lo + 1, hi):
        x = data[i]
        j = i - 1
        while j >= lo and data[j] > x:
            data[j + 1] = data[j]
            j -= 1
        data[j + 1] = x


@njit
def _lsd_sort(data: np.ndarray, lo: int, hi: int, scratch: np.ndarray, counts: np.ndarray) -> None:
    """Least-significant-digit radix sort of data[lo:hi], skipping digits that never vary."""
    n = hi - lo
    a, o = _span(data[lo:hi])
    varying = a ^ o
    mask = np.uint64((1 << DIGIT_BITS) - 1)
    src = data[lo:hi]
    dst = scratch[:n]
    in_data = True
    for shift in range(0, 64, DIGIT_BITS):
        s = np.uint64(shift)
        if (varying >> s) & mask == 0:
            continue
        counts[:] = 0
        for x in src:
            counts[(x >> s) & mask] += 1
        total = 0
        for d in range(1 << DIGIT_BITS):
            c = counts[d]
            counts[d] = total
            total += c
        for x in src:
            d = (x >> s) & mask
            dst[counts[d]] = x
            counts[d] += 1
        src, dst = dst, src
        in_data = not in_data
    if not in_data:
        data[lo:hi] = src
