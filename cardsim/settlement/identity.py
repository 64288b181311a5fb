"""Exactly once: each record id (terminal_id, terminal_serial) is booked at most once.

Records arrive in batches whose serials ascend (the chunk pass checked that), so if the
accepted batches of each terminal cover disjoint serial ranges, no record id can repeat: one
check per batch proves there is nothing to drop, and serial gaps are the gaps between those
ranges plus the jumps inside batches. Only when ranges overlap does the kernel sort records.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cardsim.settlement.reasons import Alert, Reason
from cardsim.settlement.source import ChunkSource, fetch, record_ids


def gap_alerts(terminal: np.ndarray, before: np.ndarray, after: np.ndarray) -> list[tuple]:
    """TERMINAL_SERIAL_GAP alerts: on each terminal, serials strictly between before and after
    are missing."""
    return [
        (Alert.TERMINAL_SERIAL_GAP, int(t), -1, int(b) + 1, int(a) - 1, -1, -1)
        for t, b, a in zip(terminal.tolist(), before.tolist(), after.tolist(), strict=True)
    ]


def disjoint_ranges(batches: np.ndarray, accepted: np.ndarray) -> tuple[bool, list[tuple]]:
    """Do accepted batches cover disjoint serial ranges per terminal? If so, also the gaps
    between consecutive ranges (TERMINAL_SERIAL_GAP alerts)."""
    idx = np.flatnonzero(accepted & (batches["record_count"] > 0))
    order = idx[np.lexsort((idx, batches["first_serial"][idx], batches["terminal_id"][idx]))]
    tid = batches["terminal_id"][order].astype(np.int64)
    first = batches["first_serial"][order].astype(np.int64)
    last = batches["last_serial"][order].astype(np.int64)
    same = tid[1:] == tid[:-1]
    if bool(np.any(same & (first[1:] <= last[:-1]))):
        return False, []
    gap = np.flatnonzero(same & (first[1:] > last[:-1] + 1))
    return True, gap_alerts(tid[gap], last[gap], first[gap + 1])


CONTENT = [
    "terminal_id",
    "terminal_serial",
    "card_id",
    "card_counter",
    "payee",
    "amount_fen",
    "kind",
    "domain",
    "tac",
]
"""Columns read back to compare repeated records; the TAC is a MAC over all 56 other bytes."""


def drop_repeats(
    source: ChunkSource, outcome: np.ndarray, batch_of: Callable[[np.ndarray], np.ndarray]
) -> tuple[dict[str, np.ndarray], list[tuple]]:
    """Mark repeated record ids in `outcome`; return the columns of the rows taken out of
    booking (for the netting to subtract), and the alerts.

    The first occurrence in log order wins. A later copy with the same content is a
    DUPLICATE_RECORD; with different content it is a RECORD_CONFLICT and raises an alert.
    """
    candidates = np.flatnonzero(outcome == 0)
    cols = fetch(source, CONTENT, candidates)
    order = np.argsort(record_ids(cols), kind="stable")
    cols = {n: c[order] for n, c in cols.items()}
    rows = candidates[order]
    rid = record_ids(cols)
    repeat = np.zeros(len(rid), bool)  # also right when no record is left to compare
    repeat[1:] = rid[1:] == rid[:-1]
    first = np.maximum.accumulate(np.where(~repeat, np.arange(len(rows)), 0))
    same = np.ones(len(rows), bool)
    for column in cols.values():
        same &= column == column[first]
    outcome[rows[repeat & same]] = Reason.DUPLICATE_RECORD
    conflict = repeat & ~same
    outcome[rows[conflict]] = Reason.RECORD_CONFLICT
    alerts = [
        (Alert.RECORD_CONFLICT, t, c, s, s, b, r)
        for t, c, s, b, r in zip(
            cols["terminal_id"][conflict].tolist(),
            cols["card_id"][conflict].tolist(),
            cols["terminal_serial"][conflict].tolist(),
            batch_of(rows[conflict]).tolist(),
            rows[conflict].tolist(),
            strict=True,
        )
    ]
    return {n: c[repeat] for n, c in cols.items()}, alerts


def serial_gaps(source: ChunkSource, accepted_rows: np.ndarray) -> list[tuple]:
    """Terminal serials missing between the distinct record ids of the accepted batches."""
    rid = np.sort(record_ids(fetch(source, ["terminal_id", "terminal_serial"], accepted_rows)))
    rid = rid[np.r_[True, rid[1:] != rid[:-1]]] if len(rid) else rid
    tid, serial = split_rid(rid)
    gap = np.flatnonzero((tid[1:] == tid[:-1]) & (serial[1:] > serial[:-1] + 1))
    return gap_alerts(tid[gap], serial[gap], serial[gap + 1])


def split_rid(rid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(terminal_id, terminal_serial) as int64 arrays from packed record ids."""
    return ((rid >> np.uint64(32)).astype(np.int64), (rid & np.uint64(0xFFFFFFFF)).astype(np.int64))
