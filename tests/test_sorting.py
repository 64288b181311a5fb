"""The compiled radix sort and the card pass's gap and clash scan, against numpy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.settlement.cards import _events, _key_events, merge_runs
from cardsim.settlement.sorting import INSERTION_MAX, sort_keys, sort_runs

_U64 = st.integers(0, 2**64 - 1)


@st.composite
def _runs(draw: st.DrawFn) -> list[np.ndarray]:
    """Runs of keys from a few value ranges: tiny ones (many equal keys, few varying bits),
    card keys (counter low, card high) and the full 64 bits."""
    width = draw(st.sampled_from([1, 3, 12, 40, 64]))
    values = st.integers(0, 2**width - 1)
    if draw(st.booleans()):
        values = st.builds(lambda c, k: c << 32 | k, st.integers(1, 2**20), st.integers(0, 300))
    runs = draw(st.lists(st.lists(values, max_size=300), max_size=6))
    return [np.array(r, np.uint64) for r in runs]


@settings(max_examples=80, deadline=None)
@given(_runs(), st.integers(1, 3))
def test_sort_runs_matches_numpy(runs: list[np.ndarray], workers: int) -> None:
    expected = np.sort(np.concatenate(runs)) if runs else np.empty(0, np.uint64)
    got = sort_runs(runs, workers)
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(merge_runs(runs, workers), expected)


def test_sort_keys_large_buckets_and_inputs() -> None:
    """Buckets far above the insertion-sort size, keys differing only in high or low bits,
    and inputs that are not uint64 or not contiguous."""
    rng = np.random.default_rng(5)
    n = 3 * INSERTION_MAX * 2**11
    for keys in (
        rng.integers(0, 2**64, n, dtype=np.uint64),
        rng.integers(0, 2**8, n, dtype=np.uint64) << np.uint64(56),
        rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
        | rng.integers(0, 2**20, n, dtype=np.uint64),
        rng.integers(0, 2**3, n, dtype=np.uint64),
        np.full(n, 7, np.uint64),
    ):
        np.testing.assert_array_equal(sort_keys(keys), np.sort(keys))
    small = rng.integers(0, 1000, 999)
    np.testing.assert_array_equal(sort_keys(small[::3]), np.sort(small[::3]).astype(np.uint64))
    assert len(sort_runs([])) == 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 12)), max_size=80))
def test_key_events_match_a_plain_scan(pairs: list[tuple[int, int]]) -> None:
    keys = np.sort(np.array([c << 32 | k for c, k in pairs], np.uint64))
    gap, clash = _key_events(keys)
    card, counter = keys >> np.uint64(32), keys & np.uint64(0xFFFFFFFF)
    same = card[1:] == card[:-1]
    np.testing.assert_array_equal(gap, np.flatnonzero(same & (counter[1:] > counter[:-1] + 1)))
    np.testing.assert_array_equal(clash, np.flatnonzero(same & (counter[1:] == counter[:-1])))


def test_key_events_split_among_threads_miss_no_pair() -> None:
    rng = np.random.default_rng(9)
    n = (1 << 20) + 7
    keys = np.sort(rng.integers(1, 3000, n, dtype=np.uint64) << np.uint64(32)) | np.uint64(5)
    keys[::3] += np.uint64(2)  # gaps and clashes everywhere, also across the split points
    keys.sort()
    whole = _key_events(keys)
    for workers in (2, 3):
        for got, expected in zip(_events(keys, workers), whole, strict=True):
            np.testing.assert_array_equal(got, expected)
    assert len(whole[0]) and len(whole[1])
