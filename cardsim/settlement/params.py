"""A log folder may carry the day's settlement parameters, so that anyone re-settling it gets
the run's own settlement: `LOG/settlement-params.json` with the cut-off and the fee schedule."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cardsim.errors import InputError
from cardsim.records.codes import Domain
from cardsim.settlement.fees import FeeSchedule

PARAMS_FILE = "settlement-params.json"
PARAMS_SCHEMA = "cardsim.settlement-params/1"


@dataclass(frozen=True)
class SettlementParams:
    """Cut-off (clearing-centre clock, ms since the epoch; None = settle everything) and fees."""

    cutoff_ms: int | None = None
    fees: FeeSchedule = field(default_factory=FeeSchedule)

    def save(self, folder: Path) -> None:
        """Write settlement-params.json into a log folder."""
        doc = {"schema": PARAMS_SCHEMA, "cutoff_ms": self.cutoff_ms, **self.fees.to_json()}
        (folder / PARAMS_FILE).write_text(json.dumps(doc, indent=1) + "\n")


def load_params(folder: Path) -> SettlementParams | None:
    """The folder's parameters, or None when it has none; a bad file is an InputError."""
    path = folder / PARAMS_FILE
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        if doc.get("schema") != PARAMS_SCHEMA:
            raise ValueError(f'field "schema" must be "{PARAMS_SCHEMA}"')
        cutoff = doc.get("cutoff_ms")
        if cutoff is not None and (not isinstance(cutoff, int) or isinstance(cutoff, bool)):
            raise ValueError('field "cutoff_ms" must be an integer or null')
        domain_bp = {Domain[k.upper()]: _rate(v) for k, v in doc.get("domain_bp", {}).items()}
        payee_bp = {int(k): _rate(v) for k, v in doc.get("payee_bp", {}).items()}
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise InputError(path, f"bad settlement parameters: {exc}") from None
    return SettlementParams(cutoff, FeeSchedule(domain_bp, payee_bp))


def _rate(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
        raise ValueError(f"fee rates must be whole basis points 0..10000, got {value!r}")
    return value
