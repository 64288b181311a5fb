"""Card-side fraud signals among booked records: counter gaps and counter clashes (clones)."""

from __future__ import annotations

import numpy as np

from cardsim.settlement.chunk import Columns
from cardsim.settlement.reasons import Alert

_LOW32 = np.uint64(0xFFFFFFFF)


def counter_alerts(cols: Columns, booked: np.ndarray, batch_row: np.ndarray) -> list[tuple]:
    """Gaps in each card's counters, and counters booked twice (a cloned card)."""
    if len(booked) < 2:
        return []
    card, counter = cols.card_id[booked], cols.counter[booked]
    if int(card.max()) < 2**32:
        # Card ids this small are the norm: one packed key sorts by value alone, far faster
        # than sorting row indices, and rows are looked up only for the rare clash.
        key = (card << np.uint64(32)) | counter
        sorted_key = np.sort(key)
        s_card, s_counter = sorted_key >> np.uint64(32), (sorted_key & _LOW32).astype(np.int64)
        clashing = np.unique(sorted_key[1:][sorted_key[1:] == sorted_key[:-1]])
        suspects = booked[np.isin(key, clashing)] if len(clashing) else booked[:0]
    else:
        order = np.lexsort((counter, card))
        s_card, s_counter = card[order], counter[order].astype(np.int64)
        suspects = booked
    same_card = s_card[1:] == s_card[:-1]
    gap = np.flatnonzero(same_card & (s_counter[1:] > s_counter[:-1] + 1))
    alerts = [
        (
            Alert.CARD_COUNTER_GAP,
            -1,
            int(s_card[i]),
            int(s_counter[i]) + 1,
            int(s_counter[i + 1]) - 1,
            -1,
            -1,
        )
        for i in gap.tolist()
    ]
    return alerts + _clashes(cols, suspects, batch_row)


def _clashes(cols: Columns, rows: np.ndarray, batch_row: np.ndarray) -> list[tuple]:
    """Among `rows`, every booked record whose (card, counter) an earlier log row already had."""
    rows = rows[np.lexsort((rows, cols.counter[rows], cols.card_id[rows]))]
    card, counter = cols.card_id[rows], cols.counter[rows]
    clash = np.flatnonzero((card[1:] == card[:-1]) & (counter[1:] == counter[:-1])) + 1
    return [
        (
            Alert.CARD_COUNTER_CLASH,
            int(cols.rid[r] >> np.uint64(32)),
            int(card[i]),
            int(counter[i]),
            int(counter[i]),
            int(batch_row[r]),
            int(r),
        )
        for i, r in zip(clash.tolist(), rows[clash].tolist(), strict=True)
    ]
