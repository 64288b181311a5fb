"""What settling a log produces, shared by the fast kernel and the reference settler."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.settlement.reasons import BOOKED, PENDING

ALERT_DTYPE = np.dtype(
    [
        ("code", "u1"),
        ("terminal_id", "<i8"),
        ("card_id", "<i8"),
        ("first", "<i8"),
        ("last", "<i8"),
        ("batch_row", "<i8"),
        ("row", "<i8"),
    ]
)
"""One alert. Columns that do not apply to the alert's code hold -1."""

POSITION_DTYPE = np.dtype(
    [
        ("participant", "<i8"),
        ("received_fen", "<i8"),
        ("paid_fen", "<i8"),
        ("fee_fen", "<i8"),
        ("net_fen", "<i8"),
    ]
)
"""A participant's day: money received and paid through booked records, fees, and the net."""


@dataclass
class Settlement:
    """The day's settlement of one log."""

    outcome: np.ndarray
    """uint8 per log row: 0 booked, 255 pending, else a Reason value."""
    booked: np.ndarray
    """Log rows of the booked records, ascending."""
    alerts: np.ndarray
    """ALERT_DTYPE rows in canonical order (every column ascending, code first)."""
    positions: np.ndarray
    """POSITION_DTYPE rows by participant id; net_fen sums to zero."""
    batch_digests: np.ndarray | None = None
    """(batches, 32) uint8: each batch's digest (records/batch.py `batch_digest`), for the
    ledger's hash chain across days; zeros for a batch refused before it was read. Only the
    fast kernel fills it."""

    def counts(self) -> dict[str, int]:
        """Records booked, rejected and pending; they add up to the rows of the log."""
        booked = int(np.count_nonzero(self.outcome == BOOKED))
        pending = int(np.count_nonzero(self.outcome == PENDING))
        return {
            "records": len(self.outcome),
            "booked": booked,
            "pending": pending,
            "rejected": len(self.outcome) - booked - pending,
        }


def make_alerts(rows: list[tuple[int, ...]] | np.ndarray) -> np.ndarray:
    """An ALERT_DTYPE array in canonical order from tuples or a structured array."""
    alerts = np.array(rows, dtype=ALERT_DTYPE) if isinstance(rows, list) else rows
    order = np.lexsort(tuple(alerts[n] for n in reversed(ALERT_DTYPE.names or ())))
    return alerts[order]
