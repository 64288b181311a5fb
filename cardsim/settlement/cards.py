"""Card-side fraud signals among booked records: counter gaps and counter clashes (clones).

Both need the booked records grouped by card. Card ids below 2^32 (the norm) pack with the
counter into one uint64 key; each chunk collects its keys on its worker thread, and the global
phase radix-sorts all of them at once (settlement/sorting.py) and finds gaps and clashes in one
compiled pass. Rows are read back from the log only for the rare clash, and the pending
rows' card counters only when a gap may hold them (a late record is not a missing one). With
a ledger, the counters closed days booked join the clash check: one merge of two sorted key
arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from cardsim.records.keys import TAC_FIELDS, compute_tacs
from cardsim.records.layout import RECORD_FIELDS
from cardsim.settlement.booked_index import BookedIndex
from cardsim.settlement.chunk import malformed
from cardsim.settlement.gaps import still_missing
from cardsim.settlement.reasons import PENDING, Alert
from cardsim.settlement.sorting import sort_runs
from cardsim.settlement.source import ChunkSource, fetch, ranges
from cardsim.settlement.threads import thread_map

_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def counter_alerts(
    source: ChunkSource,
    outcome: np.ndarray,
    runs: list[np.ndarray] | None,
    batch_of: Callable[[np.ndarray], np.ndarray],
    master_key: bytes,
    workers: int = 1,
    closed: BookedIndex | None = None,
) -> list[tuple]:
    """Gaps in each card's counters, and counters booked twice (a cloned card).

    A gap is a run of counters that no booked record of the card holds, nor a pending one
    that the card made (well-formed, with a valid TAC); a clash compares booked records only,
    today's with each other and with those of the `closed` days. `runs` are the chunks' card
    keys (card_id << 32 | card_counter, each run in any order) of exactly the booked records,
    or None to rebuild them from the log and `outcome`.
    """
    if runs is None:
        card, counter = _booked_by_card(source, outcome)
        same_card = card[1:] == card[:-1]
        gap = np.flatnonzero(same_card & (counter[1:] > counter[:-1] + 1))
        clash = np.flatnonzero(same_card & (counter[1:] == counter[:-1]))
        gap_card, before, after = card[gap], counter[gap], counter[gap + 1]
        clash_cards = card[clash]
        reused = _reused_cards(card, counter, closed)
    else:
        key = merge_runs(runs, workers)
        gap, clash = _events(key, workers)
        gap_card = key[gap] >> np.uint64(32)
        before, after = key[gap] & _LOW32, key[gap + 1] & _LOW32
        clash_cards = key[clash] >> np.uint64(32)
        reused = _reused_keys(key, closed)
    gap_card, first, last = _not_pending(
        source,
        outcome,
        master_key,
        gap_card.astype(np.uint64),
        before.astype(np.int64) + 1,
        after.astype(np.int64) - 1,
        closed,
    )
    alerts = [
        (Alert.CARD_COUNTER_GAP, -1, c, f, g, -1, -1)
        for c, f, g in zip(gap_card.tolist(), first.tolist(), last.tolist(), strict=True)
    ]
    if len(clash_cards) or len(reused):
        cards = np.union1d(clash_cards.astype(np.uint64), reused)
        alerts += _clashes(source, outcome, cards, batch_of, closed)
    return alerts


def _reused_keys(key: np.ndarray, closed: BookedIndex | None) -> np.ndarray:
    """Cards of the sorted booked keys that use a counter a closed day booked."""
    if closed is None or not len(closed.card_ids):
        return np.empty(0, np.uint64)
    # Every card here is below 2^32, so only the closed pairs that pack into keys can match.
    return np.unique(key[_in_sorted(key, closed.card_keys())] >> _S32)


def _reused_cards(card: np.ndarray, counter: np.ndarray, closed: BookedIndex | None) -> np.ndarray:
    """Cards of the booked (card, counter) pairs, sorted by card then counter, that use a
    counter a closed day booked."""
    if closed is None or not len(closed.card_ids) or not len(card):
        return np.empty(0, np.uint64)
    if int(card.max()) < 2**32:
        return _reused_keys(card.astype(np.uint64) << _S32 | counter.astype(np.uint64), closed)
    return np.unique(card[pairs_booked_before(card, counter, closed)]).astype(np.uint64)


def pairs_booked_before(card: np.ndarray, counter: np.ndarray, closed: BookedIndex) -> np.ndarray:
    """Whether each (card, counter) is among the closed days' pairs, for card ids of any size:
    each card becomes its rank among these cards, so (rank, counter) packs into one uint64 key.
    """
    cards = np.unique(card)
    known_card, known_counter = closed_pairs_of(cards, closed)
    known = np.searchsorted(cards, known_card).astype(np.uint64) << _S32 | known_counter
    rank = np.searchsorted(cards, card).astype(np.uint64)
    return np.isin(rank << _S32 | counter.astype(np.uint64), known)


def closed_pairs_of(cards: np.ndarray, closed: BookedIndex | None) -> tuple[np.ndarray, np.ndarray]:
    """The closed days' (card_id, card_counter) pairs of these cards (ascending, distinct), as
    uint64 arrays: a binary search per card in the closed pairs, which are sorted by card."""
    if closed is None or not len(closed.card_ids) or not len(cards):
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    lo = np.searchsorted(closed.card_ids, cards, side="left")
    count = np.searchsorted(closed.card_ids, cards, side="right") - lo
    picked = ranges(lo, count)
    return closed.card_ids[picked], closed.card_counters[picked].astype(np.uint64)


@njit(nogil=True, cache=True)
def _in_sorted(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    """For ascending keys, whether each is in ascending `known`: one merge pass, where a
    binary search per key would cost a cache miss per step on a peak day's ten million."""
    hit = np.zeros(len(keys), np.bool_)
    j = 0
    for i in range(len(keys)):
        while j < len(known) and known[j] < keys[i]:
            j += 1
        hit[i] = j < len(known) and known[j] == keys[i]
    return hit


def _not_pending(
    source: ChunkSource,
    outcome: np.ndarray,
    master_key: bytes,
    card: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    closed: BookedIndex | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(card, first, last) of the runs of each gap first..last that no pending record of the
    card's own making holds, nor a record a `closed` day booked.

    A pending record (uploaded after the cut-off) is booked on a later clearing day: its
    counter is late, not missing. Its batch is not checked today, so only a record that the
    card made (well-formed, TAC valid) fills a gap: a fabricated one must not hide a missing
    counter. Nor is a counter a closed day booked: a terminal uploading late books a card's
    earlier counters today, after a closed day booked its later ones. Pending rows are read
    back only when there are gaps.
    """
    cards = np.unique(card)
    pending = np.flatnonzero(outcome == PENDING) if len(card) else np.empty(0, np.int64)
    spent_card, spent_counter = closed_pairs_of(cards, closed)
    if not len(pending) and not len(spent_card):
        return card, first, last
    cols = _made_by_card(source, master_key, pending, cards)
    held_card = np.concatenate((cols["card_id"].astype(np.uint64), spent_card))
    held_counter = np.concatenate((cols["card_counter"].astype(np.uint64), spent_counter))
    # Cards become their rank among the gap cards, so (rank, counter) packs into one uint64
    # key whatever the card id's size.
    rank = np.searchsorted(cards, held_card).astype(np.uint64)
    held = np.unique(rank << _S32 | held_counter)
    base = np.searchsorted(cards, card).astype(np.uint64) << _S32
    gap, run_first, run_last = still_missing(base, first, last, held)
    return card[gap], run_first, run_last


def _made_by_card(
    source: ChunkSource, master_key: bytes, rows: np.ndarray, cards: np.ndarray
) -> dict[str, np.ndarray]:
    """card_id and card_counter of the given log rows that belong to `cards`, are well-formed
    and carry a valid TAC."""
    mine = rows[np.isin(fetch(source, ["card_id"], rows)["card_id"], cards)]
    cols = fetch(source, list(RECORD_FIELDS), mine)
    good = ~malformed(cols)
    good[good] = (
        compute_tacs(master_key, {n: cols[n][good] for n in TAC_FIELDS}) == cols["tac"][good]
    )
    return {"card_id": cols["card_id"][good], "card_counter": cols["card_counter"][good]}


def merge_runs(runs: list[np.ndarray], workers: int = 1) -> np.ndarray:
    """One sorted array of every key of the runs (each run in any order); `workers` threads
    share the radix sort."""
    return sort_runs(runs, workers)


def _events(keys: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """`_key_events` of all keys, the keys split among `workers` threads (each part also
    reads the first key of the next, so no pair is missed)."""
    n = len(keys)
    if workers <= 1 or n < 1 << 20:
        return _key_events(keys)
    cuts = [n * p // workers for p in range(workers + 1)]
    parts = thread_map(
        workers, lambda p: _key_events(keys[cuts[p] : cuts[p + 1] + 1]), range(workers)
    )
    return (
        np.concatenate([gap + cut for (gap, _), cut in zip(parts, cuts, strict=False)]),
        np.concatenate([clash + cut for (_, clash), cut in zip(parts, cuts, strict=False)]),
    )


@njit(nogil=True, cache=True)
def _key_events(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In sorted card keys, the i where keys i and i + 1 are one card with counters apart by
    more than one (a gap), and where they are equal (a clash). One pass to count, one to fill.
    """
    gaps = clashes = 0
    for i in range(len(keys) - 1):
        if keys[i] >> _S32 == keys[i + 1] >> _S32:
            step = keys[i + 1] - keys[i]
            gaps += step > 1
            clashes += step == 0
    gap = np.empty(gaps, np.int64)
    clash = np.empty(clashes, np.int64)
    gaps = clashes = 0
    for i in range(len(keys) - 1):
        if keys[i] >> _S32 == keys[i + 1] >> _S32:
            step = keys[i + 1] - keys[i]
            if step > 1:
                gap[gaps] = i
                gaps += 1
            elif step == 0:
                clash[clashes] = i
                clashes += 1
    return gap, clash


def _booked_by_card(source: ChunkSource, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = fetch(source, ["card_id", "card_counter"], np.flatnonzero(outcome == 0))
    order = np.lexsort((cols["card_counter"], cols["card_id"]))
    return cols["card_id"][order], cols["card_counter"][order].astype(np.int64)


def _clashes(
    source: ChunkSource,
    outcome: np.ndarray,
    cards: np.ndarray,
    batch_of: Callable[[np.ndarray], np.ndarray],
    closed: BookedIndex | None = None,
) -> list[tuple]:
    """Every booked record whose (card, counter) an earlier log row or a closed day already
    had."""
    booked = np.flatnonzero(outcome == 0)
    cols = fetch(source, ["card_id", "card_counter", "terminal_id"], booked)
    mine = np.isin(cols["card_id"], cards)
    rows = booked[mine]
    card, counter, tid = (cols[n][mine] for n in ("card_id", "card_counter", "terminal_id"))
    order = np.lexsort((rows, counter, card))
    rows, card, counter, tid = rows[order], card[order], counter[order], tid[order]
    again = np.zeros(len(rows), bool)
    again[1:] = (card[1:] == card[:-1]) & (counter[1:] == counter[:-1])
    if closed is not None and len(closed.card_ids) and len(rows):
        again |= pairs_booked_before(card, counter, closed)
    clash = np.flatnonzero(again)
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
