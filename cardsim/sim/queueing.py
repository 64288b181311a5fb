"""Queueing theory and output analysis used to check the simulations: Erlang C for M/M/c,
Student t confidence intervals and batch means.

Pure numpy and the standard library: no simpy, no scipy, no clock, no random state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

_BISECTION_STEPS = 200
"""Enough halvings to pin a quantile to the last bit of a double (the loop stops early)."""

_EXACT_T_MAX_DF = 1000
"""Up to this many degrees of freedom the t distribution is inverted exactly; beyond, the
Cornish-Fisher expansion is used (its error there is far below 1e-9)."""


def erlang_c(
    servers: int, arrival_rate_per_s: float, service_rate_per_s: float
) -> tuple[float, float]:
    """Probability that an arrival waits and its mean wait in queue (s) in an M/M/c queue.

    `servers` identical servers, Poisson arrivals at `arrival_rate_per_s`, exponential service
    at `service_rate_per_s` per server. Raises ValueError unless the utilisation
    rho = arrival / (servers * service) is below 1.

    The textbook formula sums a^k / k! terms that overflow for large c; the Erlang B recursion
    B(k) = a B(k-1) / (k + a B(k-1)) stays in [0, 1], and C = c B / (c - a (1 - B)).
    """
    if servers < 1:
        raise ValueError(f"servers must be >= 1, got {servers}")
    if not arrival_rate_per_s >= 0.0 or not service_rate_per_s > 0.0:
        raise ValueError("arrival rate must be >= 0 and service rate > 0 (per second)")
    offered = arrival_rate_per_s / service_rate_per_s
    rho = offered / servers
    if rho >= 1.0:
        raise ValueError(f"utilisation {rho:.4f} >= 1: the queue has no steady state")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    p_wait = servers * blocking / (servers - offered * (1.0 - blocking))
    wait_s = p_wait / (servers * service_rate_per_s - arrival_rate_per_s)
    return p_wait, wait_s


def normal_quantile(p: float) -> float:
    """The standard normal quantile z with Phi(z) = p, for 0 < p < 1, by bisection on erf."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    return _bisect(lambda z: 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))), p, -40.0, 40.0)


def t_quantile_two_sided(confidence: float, df: int) -> float:
    """The t such that P(|T| <= t) = confidence for Student's T with `df` degrees of freedom.

    For df <= 1000 the closed-form CDF for integer df (Abramowitz and Stegun 26.7.3-4, a finite
    trigonometric series) is inverted by bisection, so the value is exact to double precision
    for any confidence, not only tabulated ones. Beyond, the four-term Cornish-Fisher expansion
    around the normal quantile (A&S 26.7.5) is used.
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if df > _EXACT_T_MAX_DF:
        return _cornish_fisher_t(normal_quantile(0.5 + confidence / 2.0), df)
    high = 1.0
    while _t_central_probability(high, df) < confidence:
        high *= 2.0
    return _bisect(lambda t: _t_central_probability(t, df), confidence, 0.0, high)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Sample mean and the half-width of its Student t confidence interval.

    Assumes the values are independent (replication means or batch means, not raw waits from
    one run). Needs at least two values.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size < 2:
        raise ValueError("need a 1-D array of at least 2 values for a confidence interval")
    if not np.all(np.isfinite(data)):
        raise ValueError("values must be finite")
    quantile = t_quantile_two_sided(confidence, data.size - 1)
    half_width = quantile * float(np.std(data, ddof=1)) / math.sqrt(data.size)
    return float(np.mean(data)), half_width


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Sample mean and the 95 % Student t half-width (see `mean_ci`)."""
    return mean_ci(values, 0.95)


def batch_means(values: np.ndarray, batches: int) -> np.ndarray:
    """Means of `batches` consecutive equal-sized batches of one long (autocorrelated) series.

    When the length is not a multiple of `batches`, the remainder is dropped from the start,
    where any leftover initialisation bias is largest.
    """
    data = np.asarray(values, dtype=np.float64)
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    if data.ndim != 1 or data.size < batches:
        raise ValueError(f"need a 1-D array of at least {batches} values, got {data.shape}")
    size = data.size // batches
    tail = data[data.size - size * batches :]
    return tail.reshape(batches, size).mean(axis=1)


def _t_central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for integer df, from the finite series of A&S 26.7.3 (odd) and 26.7.4 (even)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return sin * total
    if df == 1:
        return 2.0 * theta / math.pi
    term = math.cos(theta)
    total = term
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + sin * total)


def _cornish_fisher_t(z: float, df: int) -> float:
    """Cornish-Fisher expansion of the t quantile in powers of 1/df (A&S 26.7.5)."""
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def _bisect(cdf: Callable[[float], float], target: float, low: float, high: float) -> float:
    """The x in [low, high] with cdf(x) = target, for a non-decreasing cdf."""
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if cdf(middle) < target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)
