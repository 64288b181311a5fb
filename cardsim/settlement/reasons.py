"""Stable codes for what happened to each record and for every alert raised at clearing.

The numbers are part of cardsim's output format: never renumber, only append.
"""

from __future__ import annotations

from enum import IntEnum

BOOKED = 0
"""Outcome value of a booked record."""
PENDING = 255
"""Outcome value of a record held for a later day (uploaded after the cut-off)."""


class Reason(IntEnum):
    """Why a record was rejected. Batch-level reasons apply to every record of the batch."""

    DUPLICATE_BATCH = 1
    """The same signed batch was uploaded before: counted once, this copy dropped."""
    UNKNOWN_KEY = 2
    """The batch names a key id that is not in the key registry."""
    REVOKED_KEY = 3
    """The batch is signed with a revoked terminal key."""
    KEY_TERMINAL_MISMATCH = 4
    """The key id belongs to another terminal."""
    MALFORMED_BATCH = 5
    """The header disagrees with the records (count, first/last serial, terminal, order)."""
    BAD_SIGNATURE = 6
    """The batch signature does not verify: header or records were altered."""
    MALFORMED_RECORD = 7
    """A field is outside what the format allows (domain, kind, amount, flags, payee...)."""
    BAD_TAC = 8
    """The card's TAC does not match: the record was fabricated or altered."""
    DUPLICATE_RECORD = 9
    """The same record (same id and content) was already accepted from another batch."""
    RECORD_CONFLICT = 10
    """A record with this id but different content was already accepted."""


RECORD_REASONS = (
    Reason.MALFORMED_RECORD,
    Reason.BAD_TAC,
    Reason.DUPLICATE_RECORD,
    Reason.RECORD_CONFLICT,
)
"""The reasons given record by record, inside an accepted batch; the others reject whole
batches."""


class Alert(IntEnum):
    """What the clearing centre flags for investigation. `first`/`last` columns say where."""

    TAMPERED_BATCH = 1
    """A batch failed its signature check (first/last: its serial range)."""
    REVOKED_KEY_USED = 2
    """A batch arrived signed with a revoked key."""
    FORGED_RECORD = 3
    """A record failed its TAC (first/last: its terminal serial)."""
    RECORD_CONFLICT = 4
    """A record id arrived twice with different content (first/last: the terminal serial)."""
    TERMINAL_SERIAL_GAP = 5
    """Terminal serials first..last are missing: records not (yet) received."""
    BATCH_SERIAL_GAP = 6
    """Batch serials first..last of a terminal are missing."""
    BATCH_CHAIN_BREAK = 7
    """A batch's previous-digest does not match the terminal's previous batch (first: serial)."""
    BATCH_CONFLICT = 8
    """Two validly signed batches share a batch serial with different content."""
    CARD_COUNTER_GAP = 9
    """Card transaction counters first..last are missing for this card."""
    CARD_COUNTER_CLASH = 10
    """Two booked records carry the same card counter: a cloned card (first/last: counter)."""
    BALANCE_ROLLBACK = 11
    """A booked record's balance is not the card's previous balance plus this record's effect:
    the card's stored value was rolled back (first/last: counter). Back-office check."""
    HOTLISTED_CARD_USED = 12
    """A booked debit from a card reported lost, stamped at or after the report (first/last:
    terminal serial). Back-office check."""


def outcome_name(code: int) -> str:
    """Human name of a per-record outcome value."""
    if code == BOOKED:
        return "BOOKED"
    if code == PENDING:
        return "PENDING"
    return Reason(code).name
