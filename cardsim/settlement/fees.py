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
    payee_bp: dict[int, int] = field(default_factory=dict)
    """Rates agreed with individual payees (merchant categories), overriding the domain's."""

    def __post_init__(self) -> None:
        for rate in [*self.bp.values(), *self.payee_bp.values()]:
            if not 0 <= rate <= 10_000:
                raise ValueError(f"fee rates must be 0..10000 bp, got {rate}")

    def rate(self, payee: int, domain: int) -> int:
        """The rate for one payee in one domain."""
        return self.payee_bp.get(payee, self.bp.get(Domain(domain), 0))

    def rates(self, payees: np.ndarray) -> np.ndarray:
        """Rates per (payee, domain): shape (len(payees), max(Domain) + 1), int64."""
        out = np.tile(self.table(), (len(payees), 1))
        for i, payee in enumerate(payees.tolist()):
            if payee in self.payee_bp:
                out[i, :] = self.payee_bp[payee]
        return out

    def to_json(self) -> dict[str, dict[str, int]]:
        """The schedule as written into a log folder's settlement-params.json."""
        return {
            "domain_bp": {Domain(d).name.lower(): r for d, r in sorted(self.bp.items())},
            "payee_bp": {str(p): r for p, r in sorted(self.payee_bp.items())},
        }

    def table(self) -> np.ndarray:
        """Rates indexed by domain value (int64, length max(Domain) + 1)."""
        out = np.zeros(max(Domain) + 1, dtype=np.int64)
        for domain, rate in self.bp.items():
            out[int(domain)] = rate
        return out


def fee_fen(gross_fen: int | np.ndarray, bp: int | np.ndarray) -> int | np.ndarray:
    """The fee in fen on a gross amount at a rate in basis points, rounded half up."""
    return (gross_fen * bp + 5000) // 10000
