"""Capacity planning: parameter sweeps with replications, summaries with confidence intervals,
and the search for the smallest knob value that meets a service level.

The CLI (`cardsim sweep`, `cardsim capacity`) is a thin layer over these modules:
`grid` (what to vary), `replicate` (one run's seed and KPIs), `executor` (where runs execute),
`tables` (the streamed long table and the per-point summary), `sweep` (the whole grid),
`search` (SLA bounds and the answer) and `plot` (the capacity curve).
"""

from __future__ import annotations

from cardsim.capacity.grid import Axis, parse_vary
from cardsim.capacity.replicate import KPI_NAMES, replication_seeds, run_one
from cardsim.capacity.search import CapacityPoint, Sla, evaluate, parse_sla, smallest_meeting
from cardsim.capacity.sweep import SweepSpec, run_sweep

__all__ = [
    "KPI_NAMES",
    "Axis",
    "CapacityPoint",
    "Sla",
    "SweepSpec",
    "evaluate",
    "parse_sla",
    "parse_vary",
    "replication_seeds",
    "run_one",
    "run_sweep",
    "smallest_meeting",
]
