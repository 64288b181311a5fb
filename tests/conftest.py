"""Shared fixtures: small synthetic days built from one seed each."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from cardsim.synthetic import SyntheticDay, SyntheticSpec, generate

# The same examples on every run, so that a red CI run can be reproduced and a green one
# means the same thing each time; HYPOTHESIS_PROFILE=explore draws fresh examples.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TINY_TOWN = (
    "population.cards=1500",
    "bike.trips=100",
    "hospital.patients=100",
    "issuance.applications=30",
    "pos.shops.purchases=100",
    "pos.supermarkets.purchases=100",
    "pos.pharmacies.purchases=50",
    "pos.taxis.purchases=50",
    "pos.parking.purchases=50",
)
"""`--set` overrides for small-town: every domain, a run in a fraction of a second."""


def small_day(
    seed: int = 1, records: int = 600, terminals: int = 12, batch_size: int = 20, **kwargs: object
) -> SyntheticDay:
    """A clean or dirty day small enough for the reference settler."""
    spec = SyntheticSpec(
        records=records, terminals=terminals, batch_size=batch_size, seed=seed, **kwargs
    )  # type: ignore[arg-type]
    return generate(spec)


@pytest.fixture
def clean_day() -> SyntheticDay:
    """No repeats, no tampering, no forgery."""
    return small_day(repeat_fraction=0.0, tampered_batches=0, forged_records=0)


@pytest.fixture
def dirty_day() -> SyntheticDay:
    """Repeats, tampered batches and forged records."""
    return small_day(repeat_fraction=0.1, tampered_batches=2, forged_records=2)
