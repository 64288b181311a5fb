"""One replication: its seed, its run, its KPIs (never its records).

Replication r of a sweep uses the same seed at every grid point (common random numbers), so
differences between points come from the parameters, not from luck of the draw. Seeds come from
`SeedSequence(seed).spawn(R)`, independent streams by construction: replication r's seed does
not depend on R, so adding replications keeps the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardsim.scenario import load_scenario
from cardsim.sim.city import Day, simulate_day
from cardsim.sim.kpis import kpis

KPI_NAMES = (
    "transactions_total",
    "taps_total",
    "records_booked",
    "records_rejected",
    "records_pending",
    "declines_total",
    "declines_insufficient_balance",
    "declines_hotlisted",
    "cards_issued",
    "cards_lost",
    "hotlist_exposure_fen",
    "bike_failed_rentals",
    "bike_failed_return_attempts",
    "hospital_registration_wait_mean_s",
    "upload_failed_attempts",
    "batches",
    "clearing_utilization",
    "clearing_wait_mean_s",
    "clearing_wait_mean_s_ci95",
    "tap_to_cleared_p50_s",
    "tap_to_cleared_p95_s",
    "tap_to_cleared_p99_s",
    "backlog_at_cutoff_records",
    "net_positions_sum_fen",
)
"""The KPIs `cardsim.sim.kpis.kpis` reports, in its order (a test pins the two together), so
an SLA naming an unknown KPI fails before any run."""

LATENCY_PERCENTILES = (50, 95, 99)
"""The tap-to-cleared percentiles that a warm-up cut recomputes."""


def replication_seeds(seed: int, replications: int) -> list[int]:
    """One int seed per replication from independent SeedSequence children (uint32 each)."""
    children = np.random.SeedSequence(seed).spawn(replications)
    return [int(child.generate_state(1)[0]) for child in children]


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker process needs to run one replication of one grid point."""

    run_id: int
    point: int
    replication: int
    seed: int
    scenario_path: str
    overrides: tuple[str, ...]
    """Base `--set` overrides followed by the point's overrides (later ones win)."""
    params: tuple[tuple[str, Any], ...]
    """The varied parameters as (dotted key, cell value), in axis order."""
    warmup_s: float = 0.0


def run_one(
    scenario_path: str | Path,
    overrides: list[str] | tuple[str, ...],
    point: list[str] | tuple[str, ...],
    replication_seed: int,
    warmup_s: float = 0.0,
) -> dict[str, Any]:
    """Simulate one day at one grid point with one replication seed; return its KPIs.

    `point` holds the point's `key=value` overrides, applied after `overrides`. With
    `warmup_s` > 0 the tap-to-cleared percentiles (s) count only records tapped at or after
    `warmup_s` seconds after midnight; every other KPI covers the whole day.
    """
    scenario = load_scenario(scenario_path, [*overrides, *point])
    day = simulate_day(scenario, replication_seed)
    figures = kpis(day)
    if warmup_s > 0:
        figures.update(warm_latency(day, warmup_s))
    return figures


def warm_latency(day: Day, warmup_s: float) -> dict[str, float | None]:
    """Tap-to-cleared percentiles (s, rounded to ms like `kpis`) of records tapped >= warmup_s.

    None when no such record was cleared, as `kpis` reports an empty day.
    """
    latency = day.cleared_s - day.tap_time_s
    keep = (day.tap_time_s >= warmup_s) & np.isfinite(latency)
    values = latency[keep]
    return {
        f"tap_to_cleared_p{q}_s": round(float(np.percentile(values, q)), 3) if len(values) else None
        for q in LATENCY_PERCENTILES
    }


def run_spec(spec: RunSpec) -> tuple[int, dict[str, Any]]:
    """Run one planned replication and return (run_id, its long-table row).

    A top-level function so that worker processes can unpickle it by name.
    """
    figures = run_one(spec.scenario_path, spec.overrides, (), spec.seed, spec.warmup_s)
    row: dict[str, Any] = {
        "run_id": spec.run_id,
        "point": spec.point,
        "replication": spec.replication,
        "seed": spec.seed,
    }
    row.update(dict(spec.params))
    row.update(figures)
    return spec.run_id, row
