"""Stable codes carried inside records: the payment domain and the kind of money movement.

Values are part of the on-disk format (docs/record-format.md); never renumber them.
Zero is deliberately invalid so that a zeroed or truncated row cannot pass as a real one.
"""

from __future__ import annotations

from enum import IntEnum


class Domain(IntEnum):
    """Where the card was used."""

    BUS = 1
    BIKE = 2
    HOSPITAL = 3
    POS = 4
    TOPUP = 5


class Kind(IntEnum):
    """What the record does to money. See docs/record-format.md for the ledger legs."""

    DEBIT = 1
    """The card pays the payee (a fare, a purchase, a rental fee, the self-pay part of a bill)."""
    LOAD = 2
    """Money is loaded onto the card; the payee is the top-up agent that took the cash."""
    REFUND = 3
    """The payee gives money back to the card."""
    DEPOSIT_HOLD = 4
    """A deposit moves from the card to the payee (bike rental)."""
    DEPOSIT_RELEASE = 5
    """A held deposit moves back to the card."""
    INSURANCE_SHARE = 6
    """The medical-insurance fund pays the payee; the card's purse does not change."""


class Participant(IntEnum):
    """Participant ids reserved for the clearing system itself. Payees use ids >= FIRST_PAYEE."""

    ISSUER_FLOAT = 0
    """The card issuer, which holds the money loaded onto cards."""
    FEE_INCOME = 1
    """Fees charged to payees, collected by the issuer / clearing centre."""
    INSURANCE_FUND = 2
    """The medical-insurance fund that pays hospitals their insured share."""


FIRST_PAYEE = 16
"""Lowest participant id a terminal may name as payee."""

CARD_DEBITS = frozenset({Kind.DEBIT, Kind.DEPOSIT_HOLD})
"""Kinds that lower the card balance."""
CARD_CREDITS = frozenset({Kind.LOAD, Kind.REFUND, Kind.DEPOSIT_RELEASE})
"""Kinds that raise the card balance."""
