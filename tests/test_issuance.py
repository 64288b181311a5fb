"""Card issuance: windows with opening hours, then the personalisation bureau."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.sim.issuance import DAY_S, IssuanceConfig, IssuanceResult, simulate_issuance

HOUR_S = 3600.0


def busy_config(**overrides: object) -> IssuanceConfig:
    """Two small centres with a long queue: most applicants wait overnight at least once."""
    fields: dict[str, object] = {
        "centres": 2,
        "windows_per_centre": 2,
        "service_mean_s": 900.0,
        "personalisation_per_hour": 60.0,
        "activation_delay_s": 1800.0,
        "days": 3,
    }
    fields.update(overrides)
    return IssuanceConfig(**fields)  # type: ignore[arg-type]


def busy_day(seed: int, config: IssuanceConfig, applicants: int = 400) -> IssuanceResult:
    rng = np.random.default_rng(seed)
    applications_s = rng.uniform(0.0, config.days * DAY_S, applicants)
    return simulate_issuance(applications_s, config, rng)


def test_tiny_campaign_by_hand() -> None:
    # One centre, one window, bureau at 2 cards/h (1800 s each), cards usable 600 s after print.
    # The draws are, in order: the centre per applicant, then the service time per applicant.
    config = IssuanceConfig(
        centres=1,
        windows_per_centre=1,
        service_mean_s=600.0,
        personalisation_per_hour=2.0,
        activation_delay_s=600.0,
    )
    applications_s = np.array([9 * HOUR_S, 0.0, 0.0])
    result = simulate_issuance(applications_s, config, np.random.default_rng(5))
    twin = np.random.default_rng(5)
    np.testing.assert_array_equal(result.centre, twin.integers(0, 1, 3))
    s0, s1, s2 = twin.exponential(600.0, 3)
    # idx1 and idx2 applied at midnight and wait for the 08:30 opening, in input order.
    start1 = config.open_s
    served1 = start1 + s1
    start2, served2 = served1, served1 + s2
    start0 = max(9 * HOUR_S, served2)
    served0 = start0 + s0
    printed1 = served1 + 1800.0
    printed2 = max(served2, printed1) + 1800.0
    printed0 = max(served0, printed2) + 1800.0
    np.testing.assert_array_equal(result.start_s, [start0, start1, start2])
    np.testing.assert_array_equal(result.served_s, [served0, served1, served2])
    np.testing.assert_array_equal(result.window_wait_s, [start0 - 9 * HOUR_S, start1, start2])
    np.testing.assert_array_equal(result.printed_s, [printed0, printed1, printed2])
    np.testing.assert_array_equal(result.usable_s, np.array([printed0, printed1, printed2]) + 600)
    assert result.issued_by(printed1 + 600.0) == 1
    assert result.issued_by(DAY_S) == 3


def test_the_queue_carries_over_to_the_next_opening() -> None:
    # One window, 50 applicants at midnight, ~2 h each: a few are served on day one; the one at
    # the head of the queue at close starts exactly at the second day's opening.
    config = IssuanceConfig(centres=1, windows_per_centre=1, service_mean_s=7200.0, days=2)
    result = simulate_issuance(np.zeros(50), config, np.random.default_rng(1))
    day_two_open_s = DAY_S + config.open_s
    started = result.start_s[np.isfinite(result.start_s)]
    assert np.any(started < config.close_s)
    assert day_two_open_s in started
    # First come, first served across the night: starts follow input order (all tied at 0).
    assert np.all(np.diff(started) > 0)
    # Whoever is still waiting after the last close is never served.
    never = ~np.isfinite(result.start_s)
    assert np.any(never)
    assert np.all(np.isinf(result.served_s[never]))
    assert np.all(np.isinf(result.window_wait_s[never]))
    assert np.all(np.isinf(result.usable_s[never]))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), windows=st.integers(1, 3))
def test_nobody_is_served_outside_opening_hours(seed: int, windows: int) -> None:
    config = busy_config(windows_per_centre=windows)
    result = busy_day(seed, config, applicants=200)
    opening_s = config.opening_windows_s()
    for start_s in result.start_s[np.isfinite(result.start_s)]:
        assert np.any((opening_s[:, 0] <= start_s) & (start_s < opening_s[:, 1])), start_s


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_no_card_is_usable_before_its_service_ends(seed: int) -> None:
    config = busy_config()
    result = busy_day(seed, config, applicants=200)
    usable = np.isfinite(result.usable_s)
    assert np.all(np.isfinite(result.served_s[usable]))
    # Printing takes 60 s (60 cards/h) and activation 1800 s after that.
    assert np.all(result.usable_s[usable] >= result.served_s[usable] + config.print_s + 1800.0)
    assert np.all(result.printed_s[usable] >= result.served_s[usable] + config.print_s)
    assert np.all(result.window_wait_s[np.isfinite(result.window_wait_s)] >= 0)
    assert np.all(result.usable_s[usable] <= config.horizon_s)
    assert result.issued_by(config.horizon_s) == np.count_nonzero(usable)


def test_personalisation_never_exceeds_its_hourly_rate() -> None:
    # 40 windows feed a 60-card/h bureau: it runs flat out for days.
    config = busy_config(centres=4, windows_per_centre=10, service_mean_s=300.0)
    result = busy_day(3, config, applicants=3000)
    printed_s = np.sort(result.printed_s[np.isfinite(result.printed_s)])
    assert printed_s.size > 1000
    # Any 61 consecutive prints span at least an hour, so no hour-long window holds 61.
    # Tolerance 1e-6 s for the clock's rounding over thousands of 60 s steps.
    assert np.all(printed_s[60:] - printed_s[:-60] >= HOUR_S - 1e-6)
    per_clock_hour = np.bincount((printed_s // HOUR_S).astype(np.int64))
    assert per_clock_hour.max() <= 60
    assert per_clock_hour.max() == 60  # the bureau is the bottleneck, so it hits the rate


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    windows=st.integers(1, 3),
    centres=st.integers(1, 3),
    applicants=st.integers(1, 150),
)
def test_more_windows_never_increase_waits(
    seed: int, windows: int, centres: int, applicants: int
) -> None:
    """Same arrivals, same draws (centre and service time per applicant): one more window per
    centre never delays anyone's service start. FIFO multi-server queues are monotone in the
    number of servers (Kiefer-Wolfowitz), and waiting for the next opening is a non-decreasing
    map of time, so it holds per applicant, hence for the mean. Tolerance 1e-6 s for rounding
    of sums taken in different orders."""
    fewer = busy_config(centres=centres, windows_per_centre=windows)
    more = busy_config(centres=centres, windows_per_centre=windows + 1)
    few, many = busy_day(seed, fewer, applicants), busy_day(seed, more, applicants)
    np.testing.assert_array_equal(few.centre, many.centre)
    assert np.all(many.window_wait_s <= few.window_wait_s + 1e-6)
    both = np.isfinite(few.window_wait_s)  # then finite with more windows too
    if np.any(both):
        assert np.mean(many.window_wait_s[both]) <= np.mean(few.window_wait_s[both]) + 1e-6
    assert np.count_nonzero(np.isfinite(many.served_s)) >= np.count_nonzero(
        np.isfinite(few.served_s)
    )


def test_cards_after_the_horizon_are_infinite() -> None:
    # One day, a 1 card/h bureau: at most ~15 cards between the first service and midnight.
    config = IssuanceConfig(
        centres=1, windows_per_centre=3, service_mean_s=300.0, personalisation_per_hour=1.0
    )
    result = simulate_issuance(np.zeros(100), config, np.random.default_rng(2))
    assert np.count_nonzero(np.isfinite(result.served_s)) > 50
    issued = np.count_nonzero(np.isfinite(result.usable_s))
    assert 0 < issued <= math.ceil((DAY_S - config.open_s) / HOUR_S)
    assert result.issued_by(DAY_S) == issued


def test_same_seed_same_result() -> None:
    config = busy_config()
    first, again, other = busy_day(9, config), busy_day(9, config), busy_day(10, config)
    for name in ("centre", "start_s", "served_s", "window_wait_s", "printed_s", "usable_s"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.served_s, other.served_s)


@pytest.mark.parametrize(
    "overrides",
    [
        {"centres": 0},
        {"windows_per_centre": 0},
        {"days": 0},
        {"service_mean_s": 0.0},
        {"open_s": 17 * HOUR_S, "close_s": 8 * HOUR_S},
        {"close_s": 25 * HOUR_S},
        {"personalisation_per_hour": 0.0},
        {"activation_delay_s": -1.0},
    ],
)
def test_config_rejects_nonsense(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        busy_config(**overrides)


def test_applications_are_checked() -> None:
    with pytest.raises(ValueError, match="applications_s"):
        simulate_issuance(np.array([-1.0]), busy_config(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="applications_s"):
        simulate_issuance(np.array([np.nan]), busy_config(), np.random.default_rng(0))


def test_next_start_follows_the_opening_hours() -> None:
    config = busy_config(days=2)
    assert config.next_start_s(0.0) == config.open_s
    assert config.next_start_s(10 * HOUR_S) == 10 * HOUR_S
    assert config.next_start_s(config.close_s) == DAY_S + config.open_s
    assert config.next_start_s(DAY_S + config.close_s) == math.inf
    assert config.next_start_s(5 * DAY_S) == math.inf
