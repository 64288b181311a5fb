"""The process-per-transaction reference against the fast city model, and its own rules.

The agreement test runs both models over the same seeds of a scaled-down small-town and
compares each clearing KPI's 95 % confidence intervals over the seeds. The hand-checked tests
pin the reference's upload and clearing rules on a few records, whole logs at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.scenario import Scenario, load_scenario
from cardsim.sim.city import simulate_day
from cardsim.sim.kpis import kpis
from cardsim.sim.queueing import mean_ci
from cardsim.sim.reference_model import ReferenceDay, day_records, run_reference, simulate_reference
from cardsim.sim.world import DAY_START_MS

SMALL_TOWN = Path(__file__).resolve().parents[1] / "scenarios" / "small-town.toml"
TINY_TOWN = (
    "population.cards=2000",
    "bike.trips=200",
    "hospital.patients=150",
    "demand.volume_multiplier=0.1",
)
"""About 2,300 records and 1,900 batches a day: both models run in under half a second."""
STRESSED = (
    "clearing.workers=1",
    "clearing.batch_service_s=15.0",
    "clearing.exponential_service=true",
    "clearing.outages_s=[[36000.0, 39600.0]]",
    "terminals.upload_failure_prob=0.1",
)
"""A centre that queues (about 25 % busy, one worker, exponential service), an hour's outage
with its recovery burst, and frequent upload retries: the rules the ordinary day barely uses."""
SEEDS = range(8)
CONFIDENCE = 0.95
CLEARING_KPIS = (
    "clearing_utilization",
    "clearing_wait_mean_s",
    "tap_to_cleared_p50_s",
    "tap_to_cleared_p95_s",
    "tap_to_cleared_p99_s",
    "batches",
)


@pytest.mark.parametrize("variant", [(), STRESSED], ids=["tiny-town", "tiny-town-stressed"])
def test_reference_and_fast_model_agree_on_clearing_kpis(variant: tuple[str, ...]) -> None:
    """Tolerance: for each KPI, |mean_fast - mean_reference| <= h_fast + h_reference, where h is
    the half-width of the 95 % Student t interval of that model's per-seed values (8 seeds),
    i.e. the two intervals overlap. The models share each seed's transactions and draw their
    uploads and service times independently."""
    scenario = load_scenario(SMALL_TOWN, [*TINY_TOWN, *variant])
    fast: dict[str, list[float]] = {name: [] for name in CLEARING_KPIS}
    reference: dict[str, list[float]] = {name: [] for name in CLEARING_KPIS}
    for seed in SEEDS:
        fast_kpis = kpis(simulate_day(scenario, seed))
        reference_kpis = simulate_reference(scenario, seed).kpis()
        for name in CLEARING_KPIS:
            fast[name].append(float(fast_kpis[name]))
            reference[name].append(float(reference_kpis[name]))
    report, failures = [], []
    for name in CLEARING_KPIS:
        mean_f, half_f = mean_ci(np.array(fast[name]), CONFIDENCE)
        mean_r, half_r = mean_ci(np.array(reference[name]), CONFIDENCE)
        line = f"{name}: fast {mean_f:.6g} ± {half_f:.3g}, reference {mean_r:.6g} ± {half_r:.3g}"
        report.append(line)
        if abs(mean_f - mean_r) > half_f + half_r:
            failures.append(line)
    assert not failures, "\n".join(report)


def test_reference_sees_the_fast_models_transactions() -> None:
    scenario = load_scenario(SMALL_TOWN, TINY_TOWN)
    day = simulate_day(scenario, 3)
    _, records = day_records(scenario, 3)
    fast = np.sort(day.log.records, order=["terminal_id", "terminal_serial"])
    fast["tac"] = 0  # TACs are computed when the fast model signs its log; uploads do not use them
    assert np.array_equal(fast, np.sort(records, order=["terminal_id", "terminal_serial"]))
    assert np.array_equal(
        np.sort(day.tap_time_s), np.sort((records["time_ms"] - DAY_START_MS) / 1000.0)
    )


def test_reference_is_deterministic() -> None:
    scenario = load_scenario(SMALL_TOWN, [*TINY_TOWN, *STRESSED])
    first, second = simulate_reference(scenario, 5), simulate_reference(scenario, 5)
    for name in ("batch_of", "arrival_s", "start_s", "end_s", "cleared_s"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert first.kpis() == second.kpis()


# ---------------------------------------------------------------------------------------------
# The reference's rules, checked by hand on a few records


def _run(
    times_s: list[float], where: list[int], cellular: list[bool], **sections: dict
) -> ReferenceDay:
    """Run the reference on hand-made records; one worker, 1 s + 0.5 s a record, no failures."""
    sections.setdefault("clearing", {})
    sections["clearing"] = {
        "workers": 1,
        "batch_service_s": 1.0,
        "record_service_s": 0.5,
        **sections["clearing"],
    }
    sections["terminals"] = {"upload_failure_prob": 0.0, **sections.get("terminals", {})}
    scenario = Scenario.model_validate({"name": "hand-checked", **sections})
    return run_reference(np.array(times_s), np.array(where), np.array(cellular), scenario, 1)


def _log(day: ReferenceDay) -> list[tuple[int, list[int], float, float, float]]:
    """Per batch: (terminal, records, arrival, start, end)."""
    return [
        (int(t), np.flatnonzero(day.batch_of == b).tolist(), float(a), float(s), float(e))
        for b, (t, a, s, e) in enumerate(
            zip(day.batch_terminal, day.arrival_s, day.start_s, day.end_s, strict=True)
        )
    ]


def test_depot_terminal_uploads_after_each_shift_and_one_worker_clears() -> None:
    day = _run([100.0, 200.0, 1_500.0], [0, 0, 0], [False], bus={"shift_end_s": [1_000, 2_000]})
    assert _log(day) == [
        (0, [0, 1], 1_000.0, 1_000.0, 1_002.0),
        (0, [2], 2_000.0, 2_000.0, 2_001.5),
    ]
    assert day.cleared_s.tolist() == [1_002.0, 1_002.0, 2_001.5]
    assert day.failed_attempts == 0
    assert day.busy_s == 3.5
    assert day.kpis()["clearing_utilization"] == round(3.5 / 86_400.0, 6)
    assert day.kpis()["clearing_wait_mean_s"] == 0.0


def test_records_after_the_last_shift_go_up_after_the_next_days_first() -> None:
    day = _run([84_000.0, 85_000.0], [0, 0], [False], bus={"shift_end_s": [1_000, 84_600]})
    assert day.arrival_s.tolist() == [84_600.0, 87_400.0]
    assert day.horizon_s == 87_400.0


def test_simultaneous_uploads_queue_for_the_one_worker() -> None:
    # Both validators upload at 1,000 s; the one that began waiting first is served first.
    day = _run([150.0, 100.0], [0, 1], [False, False], bus={"shift_end_s": [1_000]})
    assert _log(day) == [
        (1, [1], 1_000.0, 1_000.0, 1_001.5),
        (0, [0], 1_000.0, 1_001.5, 1_003.0),
    ]
    assert day.wait_s.tolist() == [0.0, 1.5]


def test_outage_fails_attempts_and_delays_service_but_not_a_full_buffer() -> None:
    day = _run(
        [100.0, 995.0, 996.0],
        [0, 0, 0],
        [False],
        bus={"shift_end_s": [1_000]},
        terminals={"buffer_records": 2, "retry_backoff_s": 60.0},
        clearing={"outages_s": [[990.0, 1_030.0]]},
    )
    # The buffer fills at 995 s and goes up at once; its service waits for the outage's end.
    # The depot attempt at 1,000 s fails (the centre is down); the retry at 1,060 s succeeds.
    assert _log(day) == [
        (0, [0, 1], 995.0, 1_030.0, 1_032.0),
        (0, [2], 1_060.0, 1_060.0, 1_061.5),
    ]
    assert day.failed_attempts == 1


def test_cellular_terminal_uploads_at_its_phase_and_retries_every_backoff() -> None:
    day = _run(
        [10.0, 20.0, 5_000.0],
        [0, 0, 0],
        [True],
        terminals={"cellular_interval_s": 300.0, "upload_failure_prob": 0.5},
    )
    phase_s = float(day.phase_s[0])
    assert 0.0 <= phase_s < 300.0
    slots_s = [phase_s + np.ceil((t - phase_s) / 300.0) * 300.0 for t in (10.0, 5_000.0)]
    retries = [round((a - s) / 60.0) for a, s in zip(day.arrival_s, slots_s, strict=True)]
    assert day.batch_of.tolist() == [0, 0, 1]
    assert day.arrival_s.tolist() == [s + 60.0 * r for s, r in zip(slots_s, retries, strict=True)]
    assert day.failed_attempts == sum(retries)


def test_an_upload_that_can_never_succeed_is_refused() -> None:
    with pytest.raises(ValueError, match="upload_failure_prob"):
        _run([1.0], [0], [True], terminals={"upload_failure_prob": 1.0})


@settings(max_examples=40, deadline=None)
@given(
    taps=st.lists(st.tuples(st.floats(0, 86_000), st.integers(0, 3)), min_size=1, max_size=60),
    failure=st.floats(0.0, 0.5),
    outage_start_s=st.floats(0, 80_000),
    exponential=st.booleans(),
)
def test_every_record_is_cleared_once_after_its_tap_and_no_service_starts_in_an_outage(
    taps: list[tuple[float, int]], failure: float, outage_start_s: float, exponential: bool
) -> None:
    outage = (outage_start_s, outage_start_s + 3_600.0)
    day = _run(
        [t for t, _ in taps],
        [k for _, k in taps],
        [True, False, True, True],
        terminals={"upload_failure_prob": failure, "buffer_records": 5},
        clearing={"outages_s": [list(outage)], "exponential_service": exponential},
    )
    assert (day.batch_of >= 0).all()
    assert (np.bincount(day.batch_of) == day.batch_records).all()
    assert (day.batch_records <= 5).all()
    assert (day.batch_terminal[day.batch_of] == day.terminal).all()
    assert (day.arrival_s[day.batch_of] >= day.tap_time_s).all()
    assert (day.start_s >= day.arrival_s).all() and (day.end_s >= day.start_s).all()
    assert not ((day.start_s >= outage[0]) & (day.start_s < outage[1])).any()
    # One worker, first come first served: services start in arrival order.
    assert (np.diff(day.start_s) >= 0).all()
    assert 0.0 <= day.kpis()["clearing_utilization"] <= 1.0
