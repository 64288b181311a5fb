"""What is still missing from gaps in numbered sequences (a card's counters, a terminal's
serials) once some numbers inside them are known to be held elsewhere: by a pending record, or
by a record a closed day booked."""

from __future__ import annotations

import numpy as np

from cardsim.settlement.source import ranges

_LOW32 = np.uint64(0xFFFFFFFF)


def still_missing(
    base: np.ndarray, first: np.ndarray, last: np.ndarray, held: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of each gap i, numbers first[i]..last[i] of sequence `base[i]` (a uint64 with
    the sequence in its high 32 bits), that no key of `held` (ascending uint64 keys, sequence
    << 32 | number) holds: (gap index, run first, run last), in gap order, each gap on its
    own. All gaps are cut in one vectorized pass: a late upload can open thousands.
    """
    lo = np.searchsorted(held, base | first.astype(np.uint64), side="left")
    count = np.searchsorted(held, base | last.astype(np.uint64), side="right") - lo
    inside = ranges(lo, count)
    # Fences of each gap: the numbers on either side and the held ones inside. A gap's runs
    # still missing lie between its consecutive fences.
    gap = np.arange(len(first))
    owner = np.concatenate((gap, np.repeat(gap, count), gap))
    fence = np.concatenate((first - 1, (held[inside] & _LOW32).astype(np.int64), last + 1))
    order = np.lexsort((fence, owner))
    owner, fence = owner[order], fence[order]
    run = np.flatnonzero((owner[1:] == owner[:-1]) & (fence[1:] > fence[:-1] + 1))
    return owner[run], fence[run] + 1, fence[run + 1] - 1
