"""Small city days with faults and frauds, simulated once per set of overrides and shared by
the tests that need them (a few seconds each)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from cardsim.scenario import load_scenario
from cardsim.settlement.reasons import BOOKED
from cardsim.sim.city import Day, simulate_day

ROOT = Path(__file__).resolve().parents[1]
TOWN = ROOT / "scenarios" / "small-town.toml"
FAULTS = ROOT / "scenarios" / "faults-and-fraud.toml"
SMALL = (
    "population.cards=3000",
    "bike.trips=300",
    "hospital.patients=200",
    "issuance.applications=60",
    "pos.shops.merchants=40",
    "pos.shops.purchases=1500",
    "pos.supermarkets.purchases=1000",
    "pos.pharmacies.purchases=300",
    "pos.taxis.merchants=30",
    "pos.taxis.purchases=800",
    "pos.parking.purchases=400",
    "terminals.cellular_interval_s=3600",
)
"""Overrides that keep a day to a second or two: fewer cards and purchases, and cellular
uploads every hour rather than every five minutes (fewer batches to sign and verify)."""


@lru_cache(maxsize=16)
def day(scenario: Path, *overrides: str, seed: int = 7) -> Day:
    """The day of `scenario` with SMALL and `overrides` applied (cached: do not mutate)."""
    return simulate_day(load_scenario(scenario, [*SMALL, *overrides]), seed)


def rids(records: np.ndarray) -> np.ndarray:
    """terminal_id << 32 | terminal_serial of each record."""
    rid = records["terminal_id"].astype(np.uint64) << np.uint64(32)
    return rid | records["terminal_serial"].astype(np.uint64)


def booked(d: Day) -> np.ndarray:
    """The booked records of a day."""
    return d.log.records[d.settlement.outcome == BOOKED]


def card_tx(records: np.ndarray) -> list[tuple[int, ...]]:
    """Card transactions as the card saw them, whichever terminal wrote them, sorted."""
    fields = ("card_id", "card_counter", "kind", "amount_fen", "payee", "domain", "time_ms")
    return sorted(zip(*(records[f].tolist() for f in fields), strict=True))
