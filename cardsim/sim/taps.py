"""Card taps: every attempted card transaction of the day, before the purse decides.

Each domain module returns a `Taps` table; the purse pass (sim/purse.py) then accepts or
declines each tap in card order, and the accepted ones become records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from cardsim.records.codes import Kind

TIME_BITS = 27
"""Bits of a millisecond time of day in packed sort keys (2^27 ms is 37 hours)."""


def order_key(major: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """One int64 per entry that sorts by (major, time in ms): a card or a terminal index."""
    key = np.asarray(major, np.int64) << TIME_BITS
    key |= np.round(np.asarray(time_s) * 1000.0).astype(np.int64)
    return key


@dataclass
class Taps:
    """Column arrays, one entry per attempted transaction."""

    card: np.ndarray
    """Card index (card id - 1)."""
    time_s: np.ndarray
    terminal: np.ndarray
    """Terminal index (terminal id - 1)."""
    kind: np.ndarray
    amount_fen: np.ndarray
    need_fen: np.ndarray
    """Balance the purse must hold to accept (the amount, or a rental's minimum balance)."""
    purse: np.ndarray
    """False for records the purse does not pay (the insurance share of a hospital bill)."""
    flags: np.ndarray

    def __len__(self) -> int:
        return len(self.card)

    def take(self, index: np.ndarray) -> Taps:
        """The taps at `index` (a boolean mask or positions)."""
        return Taps(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def make_taps(
    card: np.ndarray,
    time_s: np.ndarray,
    terminal: np.ndarray,
    kind: int | np.ndarray,
    amount_fen: np.ndarray,
    need_fen: np.ndarray | None = None,
    purse: bool | np.ndarray = True,
    flags: int | np.ndarray = 0,
) -> Taps:
    """A Taps table with defaults: need = amount, paid by the purse, no flags."""
    n = len(card)
    amount = np.asarray(amount_fen, np.int64)
    return Taps(
        card=np.asarray(card, np.int64),
        # Whole milliseconds, as records carry them, so that every ordering agrees.
        time_s=np.round(np.asarray(time_s, np.float64) * 1000.0) / 1000.0,
        terminal=np.asarray(terminal, np.int64),
        kind=np.broadcast_to(np.asarray(kind, np.uint8), (n,)).copy(),
        amount_fen=amount,
        need_fen=amount.copy() if need_fen is None else np.asarray(need_fen, np.int64),
        purse=np.broadcast_to(np.asarray(purse, bool), (n,)).copy(),
        flags=np.broadcast_to(np.asarray(flags, np.uint16), (n,)).copy(),
    )


def concat_taps(parts: list[Taps]) -> Taps:
    """All parts in one table."""
    if not parts:
        return make_taps(*(np.empty(0),) * 3, Kind.DEBIT, np.empty(0))
    return Taps(
        **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Taps)}
    )
