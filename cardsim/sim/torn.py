"""Torn transactions: the card debited itself, but the terminal never got the TAC.

How such a debit is counted exactly once (docs/faults-and-fraud.md):

- The card has moved on: its balance is lower and its counter one higher. It keeps its last
  transaction (amount, counter, balance, the payee and the time) as PBOC e-purse cards do.
- The terminal that was tapped has no TAC, so it has no record it could upload: it keeps the
  incomplete attempt in its own list of unconfirmed taps and uses no serial for it. Nothing it
  uploads can ever book that debit.
- At the card's next tap, wherever it is, that terminal sees the unconfirmed transaction on
  the card and recovers it: it writes a record under its own terminal id and serial with flags
  bit 1 (recovered torn transaction), the original payee, domain, time, amount, counter and
  balance, and the card MACs it (as GET TRANSACTION PROVE does). The recovered record sits just
  before the new tap's own record in that terminal's log.
- So the debit appears once in the whole log, under its card counter: no counter gap, no
  clash, one booking. A card with no later tap today keeps the transaction until tomorrow's
  first tap; the run reports it as awaiting recovery on the card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.records.codes import Domain, Kind
from cardsim.records.layout import KNOWN_FLAGS
from cardsim.sim.ledger import Transactions
from cardsim.sim.world import DAY_START_MS, Terminals

RECOVERED = np.uint16(0x0002)
"""flags bit 1: a recovered torn transaction."""
assert RECOVERED & KNOWN_FLAGS


@dataclass
class Torn:
    """The day's torn debits, in transaction (card, time) order."""

    card: np.ndarray
    """Card index."""
    counter: np.ndarray
    """The card's counter after the torn debit."""
    time_s: np.ndarray
    """When the card was tapped."""
    terminal: np.ndarray
    """The terminal that missed the TAC."""
    amount_fen: np.ndarray
    recovered: np.ndarray
    """True: recovered at the card's next tap today; False: still on the card at midnight."""

    def __len__(self) -> int:
        return len(self.card)


def tear(
    tx: Transactions,
    counter: np.ndarray,
    terminals: Terminals,
    share: float,
    rng: np.random.Generator,
) -> tuple[Transactions, np.ndarray, Torn]:
    """Tear a share of bus and POS debits; move each to the card's next tap, or keep it on the
    card. Returns the transactions and counters as the terminals will write them."""
    domain = terminals.domain[tx.terminal]
    candidate = np.flatnonzero(
        (tx.kind == Kind.DEBIT) & ((domain == Domain.BUS) | (domain == Domain.POS))
    )
    torn = candidate[rng.random(len(candidate)) < share]
    has_next = np.r_[tx.card[1:] == tx.card[:-1], False][torn]
    info = Torn(
        tx.card[torn].copy(),
        counter[torn].copy(),
        tx.time_s[torn].copy(),
        tx.terminal[torn].copy(),
        tx.amount_fen[torn].copy(),
        has_next,
    )
    moved = torn[has_next]
    # Read the next tap's terminal and time before moving anything: when that tap is torn too,
    # its own recovery moves on to the tap after it, but this one is recovered where it was.
    terminal, time_s, flags = tx.terminal.copy(), tx.time_s.copy(), tx.flags.copy()
    terminal[moved], time_s[moved] = tx.terminal[moved + 1], tx.time_s[moved + 1]
    flags[moved] |= RECOVERED
    keep = np.ones(len(tx.card), bool)
    keep[torn[~has_next]] = False
    out = Transactions(
        tx.card[keep],
        time_s[keep],
        terminal[keep],
        tx.kind[keep],
        tx.amount_fen[keep],
        tx.balance_after_fen[keep],
        flags[keep],
    )
    return out, counter[keep], info


def restore_recovered(records: np.ndarray, torn: Torn, terminals: Terminals) -> None:
    """Give each recovered record the original tap's time, payee and domain (the card's copy),
    in place. Rows are found by (card, counter); their order and serials do not change."""
    rows = np.flatnonzero(records["flags"] & RECOVERED)
    keep = torn.recovered
    if len(rows) != int(keep.sum()):
        raise AssertionError("recovered records and torn transactions do not match")
    want = _key(torn.card[keep] + 1, torn.counter[keep])
    got = _key(records["card_id"][rows], records["card_counter"][rows])
    order = np.argsort(want)
    at = order[np.minimum(np.searchsorted(want[order], got), max(len(want) - 1, 0))]
    if not np.array_equal(want[at], got):
        raise AssertionError("recovered records and torn transactions do not match")
    original = torn.terminal[keep][at]
    tapped_ms = np.round(torn.time_s[keep][at] * 1000).astype(np.int64)
    records["time_ms"][rows] = DAY_START_MS + tapped_ms
    records["payee"][rows] = terminals.payee[original]
    records["domain"][rows] = terminals.domain[original]


def _key(card_id: np.ndarray, counter: np.ndarray) -> np.ndarray:
    return (np.asarray(card_id, np.int64) << 32) | np.asarray(counter, np.int64)
