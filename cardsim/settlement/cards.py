"""Card-side fraud signals among booked records: counter gaps and counter clashes (clones).

Both need the booked records grouped by card. Card ids below 2^32 (the norm) pack with the
counter into one uint64 key; each chunk sorts its own keys on its worker thread and the global
phase only merges the sorted runs. Rows are read back from the log only for the rare clash.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cardsim.settlement.reasons import Alert
from cardsim.settlement.source import ChunkSource, fetch

_LOW32 = np.uint64(0xFFFFFFFF)


def counter_alerts(
    source: ChunkSource,
    outcome: np.ndarray,
    runs: list[np.ndarray] | None,
    batch_of: Callable[[np.ndarray], np.ndarray],
    workers: int = 1,
) -> list[tuple]:
    """Gaps in each card's counters, and counters booked twice (a cloned card).

    `runs` are the chunks' sorted keys of exactly the booked records, or None to rebuild
    them from the log and `outcome`.
    """
    if runs is None:
        card, counter = _booked_by_card(source, outcome)
    else:
        key = merge_runs(runs, workers)
        card, counter = key >> np.uint64(32), (key & _LOW32).astype(np.int64)
    same_card = card[1:] == card[:-1]
    gap = np.flatnonzero(same_card & (counter[1:] > counter[:-1] + 1))
    alerts = [
        (
            Alert.CARD_COUNTER_GAP,
            -1,
            int(card[i]),
            int(counter[i]) + 1,
            int(counter[i + 1]) - 1,
            -1,
            -1,
        )
        for i in gap.tolist()
    ]
    clash = np.flatnonzero(same_card & (counter[1:] == counter[:-1]))
    if len(clash):
        alerts += _clashes(source, outcome, card[clash], batch_of)
    return alerts


def merge_runs(runs: list[np.ndarray], workers: int = 1) -> np.ndarray:
    """One sorted array from sorted runs; the key space is split so `workers` threads merge.

    numpy's stable sort finds the runs and merges them; it releases the GIL, so each thread
    merges one slice of the key space at full speed.
    """
    if not runs:
        return np.empty(0, np.uint64)
    total = sum(len(r) for r in runs)
    if workers <= 1 or total < 1 << 20:
        return np.sort(np.concatenate(runs), kind="stable")
    sample = max(runs, key=len)
    pivots = sample[(np.arange(1, workers) * len(sample)) // workers]
    cuts = [np.r_[0, np.searchsorted(r, pivots), len(r)] for r in runs]
    slices = [
        np.concatenate([r[c[p] : c[p + 1]] for r, c in zip(runs, cuts, strict=True)])
        for p in range(workers)
    ]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(lambda a: np.sort(a, kind="stable"), slices)))


def _booked_by_card(source: ChunkSource, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = fetch(source, ["card_id", "card_counter"], np.flatnonzero(outcome == 0))
    order = np.lexsort((cols["card_counter"], cols["card_id"]))
    return cols["card_id"][order], cols["card_counter"][order].astype(np.int64)


def _clashes(
    source: ChunkSource,
    outcome: np.ndarray,
    cards: np.ndarray,
    batch_of: Callable[[np.ndarray], np.ndarray],
) -> list[tuple]:
    """Every booked record whose (card, counter) an earlier log row already had."""
    booked = np.flatnonzero(outcome == 0)
    cols = fetch(source, ["card_id", "card_counter", "terminal_id"], booked)
    mine = np.isin(cols["card_id"], cards)
    rows = booked[mine]
    card, counter, tid = (cols[n][mine] for n in ("card_id", "card_counter", "terminal_id"))
    order = np.lexsort((rows, counter, card))
    rows, card, counter, tid = rows[order], card[order], counter[order], tid[order]
    clash = np.flatnonzero((card[1:] == card[:-1]) & (counter[1:] == counter[:-1])) + 1
    return [
        (Alert.CARD_COUNTER_CLASH, t, c, k, k, b, r)
        for t, c, k, b, r in zip(
            tid[clash].tolist(),
            card[clash].tolist(),
            counter[clash].tolist(),
            batch_of(rows[clash]).tolist(),
            rows[clash].tolist(),
            strict=True,
        )
    ]
