"""Queueing theory and output analysis used to check the simulations: Erlang C for M/M/c,
Student t confidence intervals and batch means.

numpy and scipy.stats: no simpy, no clock, no random state.
"""

from __future__ import annotations

import math

import numpy as np


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
    """The standard normal quantile z with Phi(z) = p, for 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    from scipy import stats  # imported here: it takes ~0.4 s, which every command would pay

    return float(stats.norm.ppf(p))


def t_quantile_two_sided(confidence: float, df: int) -> float:
    """The t such that P(|T| <= t) = confidence for Student's T with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2.0, df))


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
