"""The clearing centre's front end, and the queueing theory it is checked against.

Theory tests (Erlang C, Student t, batch means) live here too: they exist to validate this
simulation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.sim.clearing import (
    ClearingConfig,
    ClearingResult,
    backlog_at,
    delay_until,
    poisson_arrivals,
    simulate_clearing,
)
from cardsim.sim.queueing import (
    batch_means,
    erlang_c,
    mean_ci,
    mean_ci95,
    normal_quantile,
    t_quantile_two_sided,
)

# ---------------------------------------------------------------------------------------------
# Queueing theory


def erlang_c_textbook(servers: int, arrival: float, service: float) -> tuple[float, float]:
    """The factorial-sum formula, obviously correct for small c (it overflows for large c)."""
    a = arrival / service
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return p_wait, p_wait / (servers * service - arrival)


@given(
    lam=st.floats(0.01, 10.0),
    rho=st.floats(0.01, 0.99),
)
def test_erlang_c_with_one_server_is_mm1(lam: float, rho: float) -> None:
    mu = lam / rho
    p_wait, wait_s = erlang_c(1, lam, mu)
    assert p_wait == pytest.approx(lam / mu, rel=1e-12)
    assert wait_s == pytest.approx((lam / mu) / (mu - lam), rel=1e-9)


def test_erlang_c_two_servers_by_hand() -> None:
    # c = 2, lambda = 1.6, mu = 1: a = 1.6, rho = 0.8.
    # Erlang B: B1 = 1.6 / 2.6 = 8/13; B2 = 1.6 B1 / (2 + 1.6 B1) = (64/65) / (194/65) = 32/97.
    # C = 2 B2 / (2 - 1.6 (1 - B2)) = (64/97) / (2 - 1.6 * 65/97) = (64/97) / (90/97) = 32/45
    # (also 2 rho^2 / (1 + rho) = 1.28 / 1.8). Wq = C / (c mu - lambda) = (32/45) / 0.4 = 16/9.
    p_wait, wait_s = erlang_c(2, 1.6, 1.0)
    assert p_wait == pytest.approx(32 / 45, rel=1e-12)
    assert wait_s == pytest.approx(16 / 9, rel=1e-12)


@given(servers=st.integers(1, 12), rho=st.floats(0.05, 0.98), mu=st.floats(0.1, 5.0))
def test_erlang_c_agrees_with_the_textbook_formula(servers: int, rho: float, mu: float) -> None:
    lam = rho * servers * mu
    got, expected = erlang_c(servers, lam, mu), erlang_c_textbook(servers, lam, mu)
    assert got == pytest.approx(expected, rel=1e-9)


def test_erlang_c_is_stable_for_many_servers() -> None:
    # a^c / c! overflows a double near c = 170; the recursion does not care.
    p_wait, wait_s = erlang_c(500, 480.0, 1.0)
    assert 0.0 < p_wait < 1.0
    assert 0.0 < wait_s < 1.0


@pytest.mark.parametrize(("servers", "lam", "mu"), [(1, 1.0, 1.0), (1, 2.0, 1.0), (3, 3.0, 1.0)])
def test_erlang_c_rejects_saturated_queues(servers: int, lam: float, mu: float) -> None:
    with pytest.raises(ValueError, match="utilisation"):
        erlang_c(servers, lam, mu)


def test_erlang_c_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError):
        erlang_c(0, 0.5, 1.0)
    with pytest.raises(ValueError):
        erlang_c(1, 0.5, 0.0)


@pytest.mark.parametrize(
    ("confidence", "df", "expected"),
    [  # Published two-sided critical values (e.g. NIST/SEMATECH handbook, table 1.3.6.7.2).
        (0.95, 1, 12.706204736),
        (0.95, 2, 4.302652730),
        (0.95, 5, 2.570581836),
        (0.95, 10, 2.228138852),
        (0.95, 30, 2.042272456),
        (0.99, 1, 63.656741163),
        (0.99, 10, 3.169272673),
        (0.99, 30, 2.749995654),
        (0.95, 100, 1.983971519),
        (0.95, 1000, 1.962339081),
    ],
)
def test_t_quantiles_match_tables(confidence: float, df: int, expected: float) -> None:
    assert t_quantile_two_sided(confidence, df) == pytest.approx(expected, abs=1e-8)


def test_t_quantile_tends_to_the_normal() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959963985, abs=1e-9)
    assert t_quantile_two_sided(0.95, 10**7) == pytest.approx(1.959963985, abs=1e-6)


def test_mean_ci95_on_known_data() -> None:
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445105: 2.776445105 * sqrt(2.5 / 5) = 1.963243.
    mean, half = mean_ci95(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert mean == 3.0
    assert half == pytest.approx(1.9632431, abs=1e-6)
    mean99, half99 = mean_ci(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 0.99)
    assert mean99 == 3.0
    assert half99 == pytest.approx(4.604094871 * math.sqrt(0.5), abs=1e-6)
    with pytest.raises(ValueError):
        mean_ci95(np.array([1.0]))


def test_batch_means_drop_the_remainder_at_the_start() -> None:
    np.testing.assert_array_equal(batch_means(np.arange(10.0), 3), [2.0, 5.0, 8.0])
    np.testing.assert_array_equal(batch_means(np.arange(4.0), 1), [1.5])
    with pytest.raises(ValueError):
        batch_means(np.arange(2.0), 3)


# ---------------------------------------------------------------------------------------------
# Simulation against theory


def mmc_replication(
    lam: float,
    mu: float,
    servers: int,
    horizon_s: float,
    warmup_s: float,
    seed: np.random.SeedSequence,
) -> tuple[float, float]:
    """Mean wait and fraction that waited, over batches arriving after the warm-up."""
    rng = np.random.default_rng(seed)
    arrival_s = poisson_arrivals(lam, horizon_s, rng)
    config = ClearingConfig(
        workers=servers, batch_service_s=1 / mu, record_service_s=0.0, exponential=True
    )
    result = simulate_clearing(
        arrival_s, np.zeros(arrival_s.size, np.int64), config, rng, horizon_s
    )
    kept = arrival_s >= warmup_s
    return float(np.mean(result.wait_s[kept])), float(np.mean(result.wait_s[kept] > 0))


MMC_REPLICATIONS = 16
"""Independent replications per case (SeedSequence.spawn), each from an empty system."""
MMC_HORIZON_S = 5000.0
"""Arrivals per replication span this long; the run itself goes on until the queue drains."""


@pytest.mark.parametrize(
    ("lam", "mu", "servers", "warmup_s"),
    [(0.5, 1.0, 1, 200.0), (1.6, 1.0, 2, 300.0), (3.6, 1.0, 4, 500.0)],
)
def test_mmc_waits_match_erlang_c(lam: float, mu: float, servers: int, warmup_s: float) -> None:
    """Tolerance: Erlang C must lie inside the 99 % t interval over 16 replications (df 15).

    So that a wide interval cannot pass by being useless, the half-width must also be under
    20 % of the theoretical mean wait and under 0.03 in P(wait). The warm-up (200-500 s, many
    relaxation times even at rho = 0.9 with c = 4) drops the empty-start bias.
    """
    p_theory, wait_theory_s = erlang_c(servers, lam, mu)
    seeds = np.random.SeedSequence(2009).spawn(MMC_REPLICATIONS)
    stats = np.array(
        [mmc_replication(lam, mu, servers, MMC_HORIZON_S, warmup_s, seed) for seed in seeds]
    )
    wait_mean_s, wait_half_s = mean_ci(stats[:, 0], 0.99)
    p_mean, p_half = mean_ci(stats[:, 1], 0.99)
    assert abs(wait_mean_s - wait_theory_s) <= wait_half_s
    assert abs(p_mean - p_theory) <= p_half
    assert wait_half_s < 0.20 * wait_theory_s
    assert p_half < 0.03


def test_littles_law() -> None:
    """L = lambda W. From empty to empty it is an identity (area under the queue-length path
    equals the sum of waits), checked to rounding. On a window it is only approximate, because
    batches straddling the edges count in one side but not the other: tolerance 2 % on a
    20,000 s window with ~30,000 batches, whose edge effects are a few seconds of waiting."""
    rng = np.random.default_rng(7)
    horizon_s, warmup_s = 20_000.0, 1000.0
    arrival_s = poisson_arrivals(1.6, horizon_s, rng)
    config = ClearingConfig(workers=2, batch_service_s=1.0, record_service_s=0.0, exponential=True)
    result = simulate_clearing(
        arrival_s, np.zeros(arrival_s.size, np.int64), config, rng, horizon_s
    )

    last_s = float(result.end_s.max())
    area = result.mean_queue_length(0.0, last_s) * last_s
    assert area == pytest.approx(float(np.sum(result.wait_s)), rel=1e-9)

    in_window = (arrival_s >= warmup_s) & (arrival_s < horizon_s)
    rate_per_s = np.count_nonzero(in_window) / (horizon_s - warmup_s)
    little = rate_per_s * float(np.mean(result.wait_s[in_window]))
    assert result.mean_queue_length(warmup_s, horizon_s) == pytest.approx(little, rel=0.02)


# ---------------------------------------------------------------------------------------------
# Exact small cases


def deterministic(
    workers: int = 1, outages_s: tuple[tuple[float, float], ...] = ()
) -> ClearingConfig:
    return ClearingConfig(
        workers=workers, batch_service_s=2.0, record_service_s=0.5, outages_s=outages_s
    )


def test_one_worker_deterministic_times_by_hand() -> None:
    # Input unsorted on purpose. Service = 2 + 0.5 * records: 2, 2, 3, 4 s for indices 0..3.
    # Order: idx2 (t=0), then idx1 and idx3 tied at t=1 (input order), then idx0 (t=10).
    # idx2: 0 -> 3; idx1: 3 -> 5; idx3: 5 -> 9; idx0: 10 -> 12.
    arrival_s = np.array([10.0, 1.0, 0.0, 1.0])
    records = np.array([0, 0, 2, 4])
    result = simulate_clearing(arrival_s, records, deterministic(), np.random.default_rng(0), 12.0)
    np.testing.assert_array_equal(result.start_s, [10.0, 3.0, 0.0, 5.0])
    np.testing.assert_array_equal(result.end_s, [12.0, 5.0, 3.0, 9.0])
    np.testing.assert_array_equal(result.wait_s, [0.0, 2.0, 0.0, 4.0])
    assert result.busy_s == 11.0
    assert result.utilization == pytest.approx(11.0 / 12.0)
    # Two wait from t=1; one starts at 3, the other at 5. Arrive-and-start instants net to zero.
    np.testing.assert_array_equal(result.queue_times_s, [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(result.queue_lengths, [2, 1, 0])
    assert result.mean_queue_length(0.0, 12.0) == pytest.approx(6.0 / 12.0)
    assert result.mean_queue_length(2.0, 4.0) == pytest.approx(1.5)
    assert backlog_at(result, arrival_s, records, 0.5) == 2
    assert backlog_at(result, arrival_s, records, 3.0) == 4  # idx2 cleared exactly at 3
    assert backlog_at(result, arrival_s, records, 9.0) == 0


def test_two_workers_share_the_queue() -> None:
    # Service 2 s each. Workers take t=0 batches a and b; c (t=0) waits for the first to free at 2.
    arrival_s = np.array([0.0, 0.0, 0.0, 1.0])
    result = simulate_clearing(
        arrival_s, np.zeros(4, np.int64), deterministic(workers=2), np.random.default_rng(0), 10.0
    )
    np.testing.assert_array_equal(result.start_s, [0.0, 0.0, 2.0, 2.0])
    np.testing.assert_array_equal(result.end_s, [2.0, 2.0, 4.0, 4.0])
    assert result.utilization == pytest.approx(8.0 / 20.0)


def test_utilization_counts_only_the_horizon() -> None:
    result = simulate_clearing(
        np.array([0.0]), np.array([16]), deterministic(), np.random.default_rng(0), 5.0
    )
    assert result.end_s[0] == 10.0  # the run drains past the horizon
    assert result.busy_s == 5.0
    assert result.utilization == 1.0


def test_outage_holds_new_services_until_it_ends() -> None:
    # One worker, 2 s per batch, outage [5, 9). idx1 starts at 4 and finishes through the
    # outage (by design); idx2 (t=6) and idx3 (t=7) wait for 9; idx4 arrives exactly at the
    # outage start and waits too; idx5 arrives exactly at its end and queues behind them.
    arrival_s = np.array([0.0, 4.0, 6.0, 7.0, 5.0, 9.0])
    config = deterministic(outages_s=((5.0, 9.0),))
    result = simulate_clearing(
        arrival_s, np.zeros(6, np.int64), config, np.random.default_rng(0), 20.0
    )
    np.testing.assert_array_equal(result.start_s, [0.0, 4.0, 11.0, 13.0, 9.0, 15.0])
    np.testing.assert_array_equal(result.end_s, [2.0, 6.0, 13.0, 15.0, 11.0, 17.0])


def test_touching_outages_merge() -> None:
    config = deterministic(outages_s=((9.0, 12.0), (5.0, 9.0)))
    assert config.merged_outages_s() == ((5.0, 12.0),)
    result = simulate_clearing(
        np.array([8.0]), np.zeros(1, np.int64), config, np.random.default_rng(0), 20.0
    )
    assert result.start_s[0] == 12.0


def test_outage_ends_exactly_even_at_awkward_times() -> None:
    # 19179.2 + (61731.6 - 19179.2) == 61731.59999999999 in floating point: a naive timeout
    # would start the batch one ulp inside the outage. No delay lands exactly on 61731.6 from
    # 19179.2 (the sums straddle it), so the start is the next double above.
    arrival_s, end_s = 19179.2, 61731.6
    assert arrival_s + (end_s - arrival_s) < end_s
    config = ClearingConfig(
        workers=1, batch_service_s=1.0, record_service_s=0.0, outages_s=((19000.0, end_s),)
    )
    result = simulate_clearing(
        np.array([arrival_s]), np.zeros(1, np.int64), config, np.random.default_rng(0), 1.0
    )
    assert result.start_s[0] == math.nextafter(end_s, math.inf)


def test_batches_waiting_out_an_outage_resume_together() -> None:
    # Found by Hypothesis: from 1.58 the clock can only land one ulp past 18.333..., from 2.0
    # exactly on it. With a wake-up per batch the later batch started an ulp earlier; with one
    # shared wake-up per outage end both start at the same reading, in FIFO order.
    end_s = 18.333333333333332
    config = ClearingConfig(
        workers=2, batch_service_s=0.0, record_service_s=0.0, outages_s=((1 / 3, end_s),)
    )
    result = simulate_clearing(
        np.array([2.0, 1.58]), np.zeros(2, np.int64), config, np.random.default_rng(0), 1.0
    )
    assert 1.58 + delay_until(1.58, end_s) > end_s == 2.0 + delay_until(2.0, end_s)
    assert result.start_s[0] == result.start_s[1]
    assert end_s <= result.start_s[0] <= math.nextafter(end_s, math.inf)


@given(
    now_s=st.floats(0.0, 1e6),
    gap_s=st.floats(0.0, 1e6),
)
def test_delay_until_never_falls_short(now_s: float, gap_s: float) -> None:
    target_s = now_s + gap_s
    landed_s = now_s + delay_until(now_s, target_s)
    assert target_s <= landed_s <= math.nextafter(target_s, math.inf)


def test_delay_until_is_exact_when_it_can_be() -> None:
    assert 1.0 + delay_until(1.0, 3.5) == 3.5
    assert 1e6 + delay_until(1e6, math.nextafter(1e6, 2e6)) == math.nextafter(1e6, 2e6)
    # Here the plain difference falls one ulp short and no delay lands exactly: one ulp over.
    assert 9429.7 + (51054.9 - 9429.7) < 51054.9
    assert 9429.7 + delay_until(9429.7, 51054.9) == math.nextafter(51054.9, math.inf)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": 0, "batch_service_s": 1.0, "record_service_s": 0.0},
        {"workers": 1, "batch_service_s": -1.0, "record_service_s": 0.0},
        {"workers": 1, "batch_service_s": 1.0, "record_service_s": 0.0, "outages_s": ((3, 3),)},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ClearingConfig(**kwargs)  # type: ignore[arg-type]


def test_inputs_are_checked() -> None:
    config, rng = deterministic(), np.random.default_rng(0)
    with pytest.raises(ValueError, match="same length"):
        simulate_clearing(np.zeros(2), np.zeros(3, np.int64), config, rng, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        simulate_clearing(np.array([-1.0]), np.zeros(1, np.int64), config, rng, 1.0)
    with pytest.raises(ValueError, match="integers"):
        simulate_clearing(np.zeros(1), np.array([0.5]), config, rng, 1.0)
    with pytest.raises(ValueError, match="horizon"):
        simulate_clearing(np.zeros(1), np.zeros(1, np.int64), config, rng, 0.0)


def test_poisson_arrivals() -> None:
    rng = np.random.default_rng(3)
    arrival_s = poisson_arrivals(2.0, 10_000.0, rng)
    assert np.all(np.diff(arrival_s) >= 0)
    assert arrival_s[0] >= 0.0 and arrival_s[-1] < 10_000.0
    assert abs(arrival_s.size - 20_000) < 5 * math.sqrt(20_000)  # five standard deviations
    assert poisson_arrivals(0.0, 100.0, rng).size == 0


# ---------------------------------------------------------------------------------------------
# Properties


@st.composite
def clearing_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, ClearingConfig, float]:
    size = draw(st.integers(0, 40))
    arrival_s = np.array(draw(st.lists(st.floats(0.0, 100.0), min_size=size, max_size=size)))
    records = np.array(draw(st.lists(st.integers(0, 20), min_size=size, max_size=size)), np.int64)
    starts = draw(st.lists(st.floats(0.0, 120.0), max_size=3))
    lengths = draw(st.lists(st.floats(0.1, 30.0), min_size=len(starts), max_size=len(starts)))
    config = ClearingConfig(
        workers=draw(st.integers(1, 4)),
        batch_service_s=draw(st.floats(0.0, 5.0)),
        record_service_s=draw(st.floats(0.0, 1.0)),
        exponential=draw(st.booleans()),
        outages_s=tuple((s, s + n) for s, n in zip(starts, lengths, strict=True)),
    )
    return arrival_s, records, config, draw(st.floats(1.0, 500.0))


def concurrency_max(result: ClearingResult) -> int:
    """Most batches in service at once (an end at t frees the worker before a start at t)."""
    times = np.concatenate((result.end_s, result.start_s))
    steps = np.concatenate((-np.ones(result.end_s.size), np.ones(result.start_s.size)))
    order = np.lexsort((steps, times))
    return int(np.max(np.cumsum(steps[order]), initial=0))


@settings(max_examples=150, deadline=None)
@given(case=clearing_cases(), seed=st.integers(0, 2**32))
def test_clearing_invariants(
    case: tuple[np.ndarray, np.ndarray, ClearingConfig, float], seed: int
) -> None:
    arrival_s, records, config, horizon_s = case
    result = simulate_clearing(arrival_s, records, config, np.random.default_rng(seed), horizon_s)
    # Every batch is served exactly once: one finite start and end each, never more at once
    # than there are workers, and busy time adds up.
    assert np.all(np.isfinite(result.start_s)) and np.all(np.isfinite(result.end_s))
    assert np.all(result.wait_s >= 0)
    assert np.all(result.start_s >= arrival_s)
    assert np.all(result.end_s >= result.start_s)
    assert 0.0 <= result.utilization <= 1.0
    assert concurrency_max(result) <= config.workers
    # First come, first served: starts follow arrival order (ties in input order).
    order = np.argsort(arrival_s, kind="stable")
    assert np.all(np.diff(result.start_s[order]) >= 0)
    for start_s, end_s in config.merged_outages_s():
        assert not np.any((result.start_s >= start_s) & (result.start_s < end_s))
    assert np.all(result.queue_lengths >= 0)
    assert result.queue_lengths[-1:].sum() == 0  # the queue drains


def test_same_seed_same_result() -> None:
    config = ClearingConfig(
        workers=3,
        batch_service_s=0.5,
        record_service_s=0.01,
        exponential=True,
        outages_s=((600.0, 900.0),),
    )

    def run(seed: int) -> ClearingResult:
        rng = np.random.default_rng(seed)
        arrival_s = poisson_arrivals(4.0, 3600.0, rng)
        records = rng.integers(0, 200, arrival_s.size)
        return simulate_clearing(arrival_s, records, config, rng, 3600.0)

    first, again, other = run(11), run(11), run(12)
    for name in ("start_s", "end_s", "wait_s", "queue_times_s", "queue_lengths"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.busy_s == again.busy_s
    assert not np.array_equal(first.end_s[:100], other.end_s[:100])
