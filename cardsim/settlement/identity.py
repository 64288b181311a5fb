"""Exactly once: each record id (terminal_id, terminal_serial) is booked at most once.

Records arrive in batches whose serials ascend, so ordering the accepted batches by
(terminal, first serial) usually yields every record id in ascending order: one O(n) check
then proves there is nothing to drop. Only when that check fails does the kernel sort.
"""

from __future__ import annotations

import numpy as np

from cardsim.settlement.chunk import Columns
from cardsim.settlement.reasons import Alert, Reason


def batch_ordered_rows(cols: Columns, batches: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """Rows of the accepted batches, batches ordered by (terminal_id, first_serial, batch row)."""
    idx = np.flatnonzero(accepted & (cols.length > 0))
    order = idx[np.lexsort((idx, batches["first_serial"][idx], batches["terminal_id"][idx]))]
    lengths = cols.length[order]
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(cols.start[order] - offsets, lengths) + np.arange(lengths.sum())


def drop_repeats(
    cols: Columns, outcome: np.ndarray, ordered: np.ndarray, batch_row: np.ndarray
) -> tuple[np.ndarray, list[tuple]]:
    """Mark repeated record ids in `outcome`; return booked rows sorted by record id, and alerts.

    The first occurrence in log order wins. A later copy with the same content is a
    DUPLICATE_RECORD; with different content it is a RECORD_CONFLICT and raises an alert.
    """
    rows = ordered[outcome[ordered] == 0]
    rid = cols.rid[rows]
    if len(rid) < 2 or bool(np.all(rid[1:] > rid[:-1])):
        return rows, []
    rows = np.flatnonzero(outcome == 0)
    rows = rows[np.argsort(cols.rid[rows], kind="stable")]
    rid = cols.rid[rows]
    repeat = np.r_[False, rid[1:] == rid[:-1]]
    first = rows[np.maximum.accumulate(np.where(~repeat, np.arange(len(rows)), 0))]
    same = np.ones(len(rows), bool)
    for column in (
        cols.card_id,
        cols.counter,
        cols.amount,
        cols.kind,
        cols.domain,
        cols.payee,
        cols.tac,
    ):
        same &= column[rows] == column[first]
    dup, conflict = rows[repeat & same], rows[repeat & ~same]
    outcome[dup] = Reason.DUPLICATE_RECORD
    outcome[conflict] = Reason.RECORD_CONFLICT
    alerts = [
        (
            Alert.RECORD_CONFLICT,
            int(cols.rid[r] >> np.uint64(32)),
            int(cols.card_id[r]),
            int(cols.rid[r] & np.uint64(0xFFFFFFFF)),
            int(cols.rid[r] & np.uint64(0xFFFFFFFF)),
            int(batch_row[r]),
            int(r),
        )
        for r in conflict.tolist()
    ]
    return rows[~repeat], alerts


def serial_gaps(cols: Columns, ordered: np.ndarray) -> list[tuple]:
    """Terminal serials missing between the records received in accepted batches."""
    rid = cols.rid[ordered]
    if len(rid) > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        rid = np.unique(rid)
    if len(rid) < 2:
        return []
    tid = rid >> np.uint64(32)
    serial = (rid & np.uint64(0xFFFFFFFF)).astype(np.int64)
    gap = np.flatnonzero((tid[1:] == tid[:-1]) & (serial[1:] > serial[:-1] + 1))
    return [
        (
            Alert.TERMINAL_SERIAL_GAP,
            int(tid[i]),
            -1,
            int(serial[i]) + 1,
            int(serial[i + 1]) - 1,
            -1,
            -1,
        )
        for i in gap.tolist()
    ]
