"""Store-and-forward uploads: outages, retries, full buffers, depot schedules."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.scenario import Scenario
from cardsim.sim.uploads import plan_uploads


def _plan(times: list[float], where: list[int], cellular: list[bool], **sections: dict):
    order = np.lexsort((times, where))
    t = np.array(times, float)[order]
    term = np.array(where, np.int64)[order]
    sc = Scenario(name="t", **sections)
    return t, term, plan_uploads(t, term, np.array(cellular), sc, np.random.default_rng(3))


def test_nothing_uploads_during_an_outage_and_the_burst_follows_it() -> None:
    times = list(np.linspace(30_000, 50_000, 200))
    _, _, up = _plan(
        times,
        [0] * 200,
        [True],
        clearing={"outages_s": [[36_000.0, 43_200.0]]},
        terminals={"upload_failure_prob": 0.0, "retry_backoff_s": 60.0},
    )
    assert not np.any((up.uploaded_s >= 36_000) & (up.uploaded_s < 43_200))
    after = up.uploaded_s[(up.uploaded_s >= 43_200) & (up.uploaded_s < 43_260)]
    assert len(after) == 1  # everything buffered during the outage goes up in one burst
    assert up.failed_attempts > 0


def test_full_buffer_uploads_at_its_high_water_mark() -> None:
    t, _, up = _plan(
        [float(i) for i in range(10)],
        [0] * 10,
        [True],
        terminals={"buffer_records": 4, "cellular_interval_s": 3_600.0, "upload_failure_prob": 0.0},
    )
    sizes = np.bincount(up.batch_of)
    assert sizes.max() <= 4
    assert up.uploaded_s[0] == t[3]


def test_depot_validators_upload_after_each_shift() -> None:
    _, _, up = _plan(
        [100.0, 40_000.0, 60_000.0, 86_000.0],
        [0] * 4,
        [False],
        bus={"shift_end_s": [52_200.0, 84_600.0]},
        terminals={"upload_failure_prob": 0.0},
    )
    assert up.uploaded_s.tolist() == [52_200.0, 84_600.0, 52_200.0 + 86_400.0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 86_000), st.integers(0, 4)), max_size=80), st.floats(0.0, 0.5)
)
def test_every_record_goes_up_once_after_it_was_written(taps, failure: float) -> None:
    times = [t for t, _ in taps]
    terminals = [k for _, k in taps]
    t, term, up = _plan(
        times,
        terminals,
        [True, True, False, True, False],
        terminals={"upload_failure_prob": failure, "buffer_records": 7},
    )
    assert len(up.batch_of) == len(t)
    assert (np.diff(up.batch_of) >= 0).all()
    uploaded = up.uploaded_s[up.batch_of]
    assert (uploaded >= t).all()
    assert (up.terminal[up.batch_of] == term).all()
    assert (np.bincount(up.batch_of, minlength=len(up.terminal)) <= 7).all()
