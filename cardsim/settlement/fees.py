"""Fee rates charged to payees, in basis points of their gross debits per domain."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cardsim.records.codes import Domain

DEFAULT_FEE_BP = {
    Domain.BUS: 50,
    Domain.BIKE: 0,
    Domain.HOSPITAL: 0,
    Domain.POS: 60,
    Domain.TOPUP: 0,
}
"""Defaults: transit 0.5 %, retail 0.6 % (typical Chinese card-acquiring rates), others free."""


@dataclass(frozen=True)
class FeeSchedule:
    """Basis points (1/100 of a percent) charged on a payee's gross DEBIT amount per domain.

    Fees are computed once per (payee, domain) on the day's gross, rounded half up to whole
    fen: fee = (gross_fen * bp + 5000) // 10000. Refunds do not return fees.
    """

    bp: dict[Domain, int] = field(default_factory=lambda: dict(DEFAULT_FEE_BP))

    def __post_init__(self) -> None:
        for domain, rate in self.bp.items():
            if not 0 <= rate <= 10_000:
                raise ValueError(f"fee rate for {Domain(domain).name} must be 0..10000 bp")

    def table(self) -> np.ndarray:
        """Rates indexed by domain value (int64, length max(Domain) + 1)."""
        out = np.zeros(max(Domain) + 1, dtype=np.int64)
        for domain, rate in self.bp.items():
            out[int(domain)] = rate
        return out


def fee_fen(gross_fen: int | np.ndarray, bp: int | np.ndarray) -> int | np.ndarray:
    """The fee in fen on a gross amount at a rate in basis points, rounded half up."""
    return (gross_fen * bp + 5000) // 10000
