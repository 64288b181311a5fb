"""Time-of-day demand: non-homogeneous Poisson arrivals drawn with numpy, no simulation.

Taps on a validator do not contend with each other, so they are drawn all at once: an hourly
intensity profile per domain, scaled by the scenario's peak multiplier, gives each tap a time.
"""

from __future__ import annotations

import numpy as np

HOUR_S = 3_600.0

# Relative hourly intensities (hour 0..23), shaped after published transit and retail
# load curves: commuter peaks 7-9 h and 17-19 h, daytime shopping, morning-heavy clinics.
COMMUTER = np.array(
    [
        0.1,
        0.05,
        0.02,
        0.02,
        0.1,
        0.5,
        1.5,
        4.0,
        4.5,
        2.0,
        1.3,
        1.2,
        1.3,
        1.2,
        1.2,
        1.4,
        2.2,
        4.0,
        4.2,
        2.0,
        1.2,
        0.8,
        0.5,
        0.25,
    ]
)
DAYTIME = np.array(
    [
        0.2,
        0.1,
        0.05,
        0.05,
        0.05,
        0.1,
        0.3,
        0.8,
        1.2,
        1.5,
        1.8,
        2.2,
        2.3,
        2.0,
        1.8,
        1.8,
        2.0,
        2.4,
        2.6,
        2.5,
        2.0,
        1.4,
        0.8,
        0.4,
    ]
)
CLINIC = np.array(
    [
        0,
        0,
        0,
        0,
        0,
        0,
        0.2,
        2.0,
        3.0,
        3.0,
        2.6,
        2.0,
        0.8,
        1.5,
        2.2,
        2.0,
        1.5,
        0.8,
        0.3,
        0.2,
        0.1,
        0,
        0,
        0,
    ],
    dtype=float,
)
PEAK_HOURS = (7, 8, 17, 18)


def profile(base: np.ndarray, peak_multiplier: float) -> np.ndarray:
    """Hourly weights with the commuter peak hours scaled, normalised to sum to 1."""
    weights = base.astype(float).copy()
    weights[list(PEAK_HOURS)] *= peak_multiplier
    return weights / weights.sum()


def draw_times_s(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n arrival times in seconds after midnight, hour chosen by weight, uniform within it."""
    hours = rng.choice(len(weights), size=n, p=weights)
    return (hours + rng.random(n)) * HOUR_S


def poisson_count(mean: float, rng: np.random.Generator) -> int:
    """A Poisson-distributed total around `mean` (the day's volume is itself random)."""
    return int(rng.poisson(max(mean, 0.0)))
