"""Hospital windows: stage ordering and capacity on any day, waits against queueing theory,
authorisation failure rates, and the exact insurance split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cardsim.sim.hospital import (
    HospitalConfig,
    simulate_hospital,
    split_bill_fen,
)

BUSY = HospitalConfig(registration_windows=2, consultation_rooms=5, pharmacy_windows=2)
"""Small enough that every counter queues at one patient a minute."""


def poisson_arrivals(seed: int, n: int, mean_gap_s: float) -> np.ndarray:
    """n Poisson arrivals with mean inter-arrival time mean_gap_s, starting at 8:00."""
    return 8 * 3600.0 + np.cumsum(np.random.default_rng(seed).exponential(mean_gap_s, n))


def max_concurrent(start_s: np.ndarray, end_s: np.ndarray) -> int:
    """Most intervals [start, end) open at once; an end at t frees its slot before a start at t."""
    times = np.concatenate((start_s, end_s))
    steps = np.concatenate((np.ones(start_s.size, int), -np.ones(end_s.size, int)))
    order = np.lexsort((steps, times))
    return int(np.cumsum(steps[order]).max(initial=0))


def erlang_c_wait_s(servers: int, arrival_rate: float, service_mean_s: float) -> float:
    """Mean queueing wait of M/M/c (Erlang C), s."""
    load = arrival_rate * service_mean_s
    rho = load / servers
    head = sum(load**k / math.factorial(k) for k in range(servers))
    tail = load**servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (head + tail)
    return p_wait * service_mean_s / (servers - load)


def test_stages_follow_each_other_and_counters_are_never_overbooked() -> None:
    arrival_s = poisson_arrivals(seed=1, n=3000, mean_gap_s=60.0)
    r = simulate_hospital(arrival_s, BUSY, np.random.default_rng(2))
    visits = r.visits_pharmacy
    assert (r.registration_wait_s >= 0).all() and (r.consultation_wait_s >= 0).all()
    assert (r.pharmacy_wait_s[visits] >= 0).all() and np.isnan(r.pharmacy_wait_s[~visits]).all()
    registration_start_s = arrival_s + r.registration_wait_s
    consultation_start_s = r.registration_paid_s + r.consultation_wait_s
    assert (r.registration_paid_s >= registration_start_s).all()
    assert (r.leave_s >= consultation_start_s).all()
    # Pharmacy: paid when leaving; queued after the consultation ended, which is after it began.
    np.testing.assert_array_equal(r.pharmacy_paid_s[visits], r.leave_s[visits])
    assert np.isnan(r.pharmacy_paid_s[~visits]).all()
    assert (
        r.pharmacy_paid_s[visits] - r.pharmacy_wait_s[visits] >= consultation_start_s[visits]
    ).all()
    assert not r.pharmacy_auth_ok[~visits].any()
    assert 0 < visits.sum() < visits.size
    # Every counter queues somewhere in this day, and none ever serves more than its windows.
    assert (r.registration_wait_s > 0).any() and (r.consultation_wait_s > 0).any()
    assert (r.pharmacy_wait_s[visits] > 0).any()
    assert max_concurrent(registration_start_s, r.registration_paid_s) <= BUSY.registration_windows


def test_consultation_rooms_are_never_overbooked_without_pharmacy() -> None:
    # With nobody going on to the pharmacy, leaving is the end of the consultation.
    config = HospitalConfig(1, 3, 1, pharmacy_share=0.0)
    arrival_s = poisson_arrivals(seed=3, n=2000, mean_gap_s=120.0)
    r = simulate_hospital(arrival_s, config, np.random.default_rng(4))
    assert not r.visits_pharmacy.any()
    start_s = r.registration_paid_s + r.consultation_wait_s
    assert max_concurrent(start_s, r.leave_s) == config.consultation_rooms


# Tolerances for the theory checks. At load 0.5 with 60,000 patients the relative standard error
# of the mean registration wait, measured over 10 seeds, is about 3 % for one window and 4 % for
# three (shorter waits, relatively noisier), so the tolerances below are about 3.5 standard
# errors; the seeds are fixed, so the test is deterministic either way.
WARM_UP = 1000
"""Patients dropped at the start: the queue starts empty, not in steady state."""


@pytest.mark.parametrize("windows, mean_gap_s, tolerance", [(1, 180.0, 0.10), (3, 60.0, 0.15)])
def test_registration_wait_matches_erlang_c(
    windows: int, mean_gap_s: float, tolerance: float
) -> None:
    # Zero authorisation latency makes registration service exactly exponential (M/M/c);
    # many rooms and windows downstream keep the later stages cheap and irrelevant here.
    config = HospitalConfig(windows, 400, 400, registration_mean_s=90.0, auth_latency_mean_s=0.0)
    arrival_s = poisson_arrivals(seed=11, n=60_000, mean_gap_s=mean_gap_s)
    r = simulate_hospital(arrival_s, config, np.random.default_rng(12))
    theory_s = erlang_c_wait_s(windows, 1 / mean_gap_s, config.registration_mean_s)
    measured_s = float(r.registration_wait_s[WARM_UP:].mean())
    assert measured_s == pytest.approx(theory_s, rel=tolerance)


def test_auth_failure_rate_is_near_the_configured_probability() -> None:
    config = HospitalConfig(50, 400, 50, auth_failure_prob=0.1, pharmacy_share=0.5)
    n = 20_000
    r = simulate_hospital(poisson_arrivals(5, n, 10.0), config, np.random.default_rng(6))
    visits = r.visits_pharmacy
    # Binomial: 4 standard errors of the failure share.
    for ok, count in ((r.registration_auth_ok, n), (r.pharmacy_auth_ok[visits], visits.sum())):
        assert ok.dtype == np.bool_
        sigma = math.sqrt(0.1 * 0.9 / count)
        assert abs((1 - ok.mean()) - 0.1) < 4 * sigma
    assert abs(visits.mean() - 0.5) < 4 * math.sqrt(0.25 / n)


def test_no_failures_and_everyone_at_pharmacy_at_the_extremes() -> None:
    config = HospitalConfig(2, 2, 2, auth_failure_prob=0.0, pharmacy_share=1.0)
    r = simulate_hospital(poisson_arrivals(7, 500, 300.0), config, np.random.default_rng(8))
    assert r.registration_auth_ok.all() and r.pharmacy_auth_ok.all() and r.visits_pharmacy.all()


def test_same_seed_same_result_and_another_seed_differs() -> None:
    # Whole-minute arrivals make simultaneous arrivals common.
    arrival_s = np.round(poisson_arrivals(seed=9, n=1500, mean_gap_s=40.0) / 60.0) * 60.0
    runs = [simulate_hospital(arrival_s, BUSY, np.random.default_rng(s)) for s in (10, 10, 11)]
    first, again, other = runs
    for name in vars(first):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.leave_s, other.leave_s)


def test_one_window_serves_in_arrival_order_and_results_follow_input_order() -> None:
    # Shuffled input with whole-minute times: if outputs were not aligned with the input, the
    # registration starts of a single first-come-first-served window would not follow arrivals.
    config = HospitalConfig(1, 3, 1)
    arrival_s = np.round(poisson_arrivals(seed=13, n=600, mean_gap_s=100.0) / 60.0) * 60.0
    arrival_s = arrival_s[np.random.default_rng(14).permutation(arrival_s.size)]
    r = simulate_hospital(arrival_s, config, np.random.default_rng(15))
    start_s = arrival_s + r.registration_wait_s
    # Ties at one instant queue in input order, so a stable sort gives the service order.
    order = np.argsort(arrival_s, kind="stable")
    assert (np.diff(start_s[order]) >= 0).all()
    assert (start_s[order][1:] >= r.registration_paid_s[order][:-1]).all()
    assert np.unique(arrival_s).size < arrival_s.size


def test_input_and_config_validation() -> None:
    with pytest.raises(ValueError):
        HospitalConfig(0, 1, 1)
    with pytest.raises(ValueError):
        HospitalConfig(1, 1, 1, auth_failure_prob=1.5)
    with pytest.raises(ValueError):
        simulate_hospital(np.array([np.nan]), BUSY, np.random.default_rng(0))
    empty = simulate_hospital(np.zeros(0), BUSY, np.random.default_rng(0))
    assert empty.leave_s.shape == (0,)


def test_split_bill_hand_example() -> None:
    insurance, self_pay = split_bill_fen(
        np.array([12345, 12345, 100, 0]),
        np.array([7000, 7000, 10000, 5000]),
        np.array([True, False, True, True]),
    )
    assert insurance.tolist() == [8641, 0, 100, 0]
    assert self_pay.tolist() == [3704, 12345, 0, 0]


@pytest.mark.parametrize(
    "bill, share_bp",
    [(np.array([100.0]), 5000), (np.array([100]), 10001), (np.array([-1]), 5000)],
)
def test_split_bill_rejects_bad_input(bill: np.ndarray, share_bp: int) -> None:
    with pytest.raises(ValueError):
        split_bill_fen(bill, share_bp, np.array([True]))


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(0, 50),
    scalar_share=st.booleans(),
)
def test_split_bill_property(data: st.DataObject, n: int, scalar_share: bool) -> None:
    bill = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 10**14)))
    auth_ok = data.draw(hnp.arrays(np.bool_, n))
    share_bp: int | np.ndarray
    if scalar_share:
        share_bp = data.draw(st.integers(0, 10_000))
    else:
        share_bp = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 10_000)))
    insurance, self_pay = split_bill_fen(bill, share_bp, auth_ok)
    assert insurance.dtype == np.int64 and self_pay.dtype == np.int64
    np.testing.assert_array_equal(insurance + self_pay, bill)
    assert ((insurance >= 0) & (insurance <= bill)).all()
    assert (insurance[~auth_ok] == 0).all()
    # The exact rule, computed independently with Python's unbounded integers.
    expected = [
        b * int(np.broadcast_to(share_bp, n)[k]) // 10_000 if ok else 0
        for k, (b, ok) in enumerate(zip(bill.tolist(), auth_ok.tolist(), strict=True))
    ]
    assert insurance.tolist() == expected
