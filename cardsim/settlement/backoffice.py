"""Back-office checks run after settlement: the shadow balance and the hotlist.

Both look only at booked records, so they never reject anything: they raise alerts.

Shadow balance. A card's records, in counter order, must chain: each balance is the previous
one plus the record's effect on the purse. A break means the card's stored value was rolled
back (restored from an earlier memory image) or otherwise tampered with inside the card, whose
TAC still verifies. Only consecutive counters, each booked exactly once, are compared: a
counter gap (a record lost or still to come) leaves nothing to compare, and a counter booked
twice is a clone, which CARD_COUNTER_CLASH already reports.

Hotlist. A booked debit of a card the clearing centre listed at `listed_ms`, stamped at or
after it, was accepted by a terminal that had not received the hotlist yet: value the issuer
is exposed to. The stamp is the terminal's clock, the only time a record carries, so a
terminal clock that runs ahead can make a genuine tap from just before the report look like a
hotlisted use (docs/faults-and-fraud.md measures how often).

Pure: arrays in, alert tuples out; no clock, no simulation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cardsim.records.codes import CARD_CREDITS, CARD_DEBITS, Kind
from cardsim.settlement.reasons import BOOKED, Alert
from cardsim.settlement.source import ChunkSource, fetch

PURSE_SIGN = np.zeros(max(Kind) + 1, np.int64)
"""Effect of one fen of each kind on the card's purse: -1 debits, +1 credits, 0 otherwise."""
PURSE_SIGN[list(CARD_DEBITS)] = -1
PURSE_SIGN[list(CARD_CREDITS)] = 1

_COLUMNS = ["terminal_id", "terminal_serial", "card_id", "card_counter", "time_ms", "kind"]


def shadow_balance_alerts(
    source: ChunkSource,
    outcome: np.ndarray,
    batch_of: Callable[[np.ndarray], np.ndarray],
) -> list[tuple]:
    """BALANCE_ROLLBACK for each booked record whose balance breaks its card's chain."""
    rows = np.flatnonzero(outcome == BOOKED)
    cols = fetch(source, [*_COLUMNS, "amount_fen", "balance_after_fen"], rows)
    order = np.lexsort((cols["card_counter"], cols["card_id"]))
    card = cols["card_id"][order]
    counter = cols["card_counter"][order].astype(np.int64)
    balance = cols["balance_after_fen"][order]
    effect = PURSE_SIGN[cols["kind"][order]] * cols["amount_fen"][order]
    same_card = card[1:] == card[:-1]
    twice = np.r_[same_card & (counter[1:] == counter[:-1]), False]
    twice[1:] |= twice[:-1]  # both rows of a repeated counter
    pair = same_card & (counter[1:] == counter[:-1] + 1) & ~twice[1:] & ~twice[:-1]
    broken = np.flatnonzero(pair & (balance[1:] != balance[:-1] + effect[1:])) + 1
    hit = order[broken]
    return _alerts(Alert.BALANCE_ROLLBACK, cols, rows, hit, "card_counter", batch_of)


def hotlist_alerts(
    source: ChunkSource,
    outcome: np.ndarray,
    batch_of: Callable[[np.ndarray], np.ndarray],
    card_id: np.ndarray,
    listed_ms: np.ndarray,
) -> list[tuple]:
    """HOTLISTED_CARD_USED for each booked debit of a listed card stamped at or after listing.

    `card_id` and `listed_ms` (clearing-centre clock) describe the hotlist, one row per card.
    """
    if len(card_id) == 0:
        return []
    rows = np.flatnonzero(outcome == BOOKED)
    cols = fetch(source, ["card_id"], rows)
    order = np.argsort(card_id, kind="stable")
    cards, listed = np.asarray(card_id, np.uint64)[order], np.asarray(listed_ms)[order]
    at = np.minimum(np.searchsorted(cards, cols["card_id"]), len(cards) - 1)
    on_list = cards[at] == cols["card_id"]
    rows = rows[on_list]
    cols = fetch(source, _COLUMNS, rows)
    when = listed[at[on_list]]
    debit = PURSE_SIGN[cols["kind"]] < 0
    hit = np.flatnonzero(debit & (cols["time_ms"] >= when))
    return _alerts(Alert.HOTLISTED_CARD_USED, cols, rows, hit, "terminal_serial", batch_of)


def _alerts(
    code: Alert,
    cols: dict[str, np.ndarray],
    rows: np.ndarray,
    hit: np.ndarray,
    where: str,
    batch_of: Callable[[np.ndarray], np.ndarray],
) -> list[tuple]:
    """Alert tuples (code, terminal, card, first, last, batch_row, row) for rows `hit`."""
    return [
        (code, t, c, k, k, b, r)
        for t, c, k, b, r in zip(
            cols["terminal_id"][hit].tolist(),
            cols["card_id"][hit].tolist(),
            cols[where][hit].tolist(),
            batch_of(rows[hit]).tolist(),
            rows[hit].tolist(),
            strict=True,
        )
    ]
