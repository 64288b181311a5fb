"""Service levels and the capacity search: the smallest knob value whose SLA holds at a
stated confidence, judged on the confidence bound of the KPI mean, not on the mean itself.

For `kpi <= limit` the bound is the one-sided upper bound mean + t * s / sqrt(R); for
`kpi >= limit` the lower bound mean - t * s / sqrt(R); t is Student's at `confidence` one-sided,
i.e. the two-sided quantile at 2 * confidence - 1. The band mean +/- half-width is therefore a
two-sided (2 * confidence - 1) interval whose relevant edge is the bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cardsim.capacity.replicate import KPI_NAMES
from cardsim.sim.queueing import mean_ci

_SLA = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Sla:
    """A service level on one KPI, e.g. tap_to_cleared_p95_s <= 900."""

    kpi: str
    op: Literal["<=", ">="]
    limit: float
    """In the KPI's own unit (seconds for `_s`, fen for `_fen`)."""

    def __str__(self) -> str:
        return f"{self.kpi}{self.op}{self.limit:g}"


def parse_sla(text: str) -> Sla:
    """Parse `KPI<=LIMIT` or `KPI>=LIMIT`; ValueError says what is wrong and what is allowed."""
    match = _SLA.match(text)
    if not match:
        raise ValueError(
            f"--sla {text!r}: use KPI<=LIMIT or KPI>=LIMIT, e.g. clearing_wait_mean_s<=60"
        )
    kpi, op, limit = match.groups()
    if kpi not in KPI_NAMES:
        raise ValueError(f"--sla {text!r}: unknown KPI {kpi}; known: {', '.join(KPI_NAMES)}")
    try:
        value = float(limit)
    except ValueError:
        raise ValueError(f"--sla {text!r}: {limit!r} is not a number") from None
    return Sla(kpi, "<=" if op == "<=" else ">=", value)


@dataclass(frozen=True)
class CapacityPoint:
    """The KPI at one knob value, over its replications."""

    knob: int | float
    """As the scenario field types it: an int for a whole-number field."""
    mean: float
    half_width: float
    """One-sided margin at the confidence (NaN with fewer than two finite replications)."""
    bound: float
    """mean + half_width for <=, mean - half_width for >= (NaN when unknown)."""
    ok: bool
    """The bound meets the SLA: the SLA holds at the stated confidence."""
    replications: int


def evaluate(
    samples: Mapping[int | float, np.ndarray], sla: Sla, confidence: float = 0.95
) -> list[CapacityPoint]:
    """The capacity curve: one point per knob value (ascending) from its replications' KPIs.

    Non-finite values (a percentile of an empty day) are left out; a point with fewer than
    two finite values has no bound and does not meet the SLA.
    """
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    curve = []
    for knob in sorted(samples):
        values = np.asarray(samples[knob], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if len(finite) >= 2:
            mean, half = mean_ci(finite, 2.0 * confidence - 1.0)
        else:
            mean, half = (float(finite[0]) if len(finite) else math.nan), math.nan
        bound = mean + half if sla.op == "<=" else mean - half
        ok = bool(bound <= sla.limit if sla.op == "<=" else bound >= sla.limit)
        # numpy scalars (table group keys) to Python, keeping an int knob an int
        value = knob.item() if isinstance(knob, np.generic) else knob
        curve.append(CapacityPoint(value, mean, half, bound, ok, len(values)))
    return curve


def smallest_meeting(curve: list[CapacityPoint]) -> CapacityPoint | None:
    """The point with the smallest knob value whose SLA holds, or None when none does."""
    meeting = [point for point in curve if point.ok]
    return min(meeting, key=lambda point: point.knob) if meeting else None
