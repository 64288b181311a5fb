"""Runs still missing from gaps once some numbers inside them are held elsewhere."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.settlement.gaps import still_missing

gap_lists = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 6)), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(gap_lists, st.sets(st.tuples(st.integers(0, 3), st.integers(0, 50)), max_size=40))
def test_still_missing_is_each_gap_minus_what_is_held(gaps: list, held: set) -> None:
    # Non-overlapping gaps per sequence: keep each (sequence, start) once, drop overlaps.
    taken: set[tuple[int, int]] = set()
    chosen = []
    for seq, start, width in gaps:
        numbers = {(seq, n) for n in range(start, start + width + 1)}
        if not numbers & taken:
            taken |= numbers
            chosen.append((seq, start, start + width))
    base = np.array([s << 32 for s, _, _ in chosen], np.uint64)
    first = np.array([f for _, f, _ in chosen], np.int64)
    last = np.array([g for _, _, g in chosen], np.int64)
    keys = np.array(sorted(s << 32 | n for s, n in held), np.uint64)
    gap, run_first, run_last = still_missing(base, first, last, keys)
    got = {
        (chosen[i][0], n)
        for i, f, g in zip(gap, run_first, run_last, strict=True)
        for n in range(f, g + 1)
    }
    assert got == {p for p in taken if p not in held}
    # Runs are maximal: no two runs of one gap touch.
    for i in range(len(gap) - 1):
        assert not (gap[i] == gap[i + 1] and run_last[i] + 1 >= run_first[i + 1])
