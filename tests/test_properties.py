"""Property tests: on arbitrary dirty logs the fast kernel and the reference settler agree,
and the invariants hold (every record in one place, net positions sum to zero)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import BOOKED, PENDING, Reason
from cardsim.settlement.reference import reference_settle
from cardsim.synthetic import SyntheticDay
from tests import mutations
from tests.conftest import small_day

MUTATIONS = [
    "repeat",
    "resend",
    "resend_altered",
    "drop",
    "flip",
    "forge",
    "revoke",
    "clone",
    "malformed",
    "shuffle",
]


@st.composite
def dirty_days(draw: st.DrawFn):
    day = small_day(
        seed=draw(st.integers(0, 10_000)),
        records=draw(st.integers(1, 300)),
        terminals=draw(st.integers(1, 6)),
        batch_size=draw(st.integers(1, 40)),
        repeat_fraction=0.0,
        tampered_batches=0,
        forged_records=0,
    )
    for name in draw(st.lists(st.sampled_from(MUTATIONS), max_size=6)):
        if len(day.log.records) == 0:
            break
        _mutate(day, name, draw)
    cutoff = None
    if len(day.log.batches) and draw(st.booleans()):
        cutoff = int(np.quantile(day.log.batches["uploaded_ms"], draw(st.floats(0, 1))))
    return day, cutoff


def _mutate(day: SyntheticDay, name: str, draw: st.DrawFn) -> None:
    b = draw(st.integers(0, len(day.log.batches) - 1))
    row = draw(st.integers(0, len(day.log.records) - 1))
    if name == "repeat":
        mutations.repeat_batch(day, b)
    elif name in ("resend", "resend_altered"):
        mutations.resend_records(day, b, alter=name == "resend_altered")
    elif name == "drop":
        mutations.drop_batch(day, b)
    elif name == "flip":
        mutations.flip_byte(day, row, draw(st.integers(0, 63)))
    elif name == "forge":
        mutations.forge(day, row)
    elif name == "revoke":
        mutations.revoke(day, b)
    elif name == "clone":
        mutations.clone(day, draw(st.integers(0, len(day.log.records) - 1)), row)
    elif name == "malformed":
        mutations.malformed(day, row)
    else:
        mutations.shuffle_batches(day, draw(st.integers(0, 99)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dirty_days(), st.integers(1, 2))
def test_kernel_agrees_with_reference(case, workers: int) -> None:
    day, cutoff = case
    fast = settle(day.log, day.registry, cutoff_ms=cutoff, workers=workers)
    slow = reference_settle(day.log, day.registry, FeeSchedule(), cutoff)
    np.testing.assert_array_equal(fast.outcome, slow.outcome)
    np.testing.assert_array_equal(fast.booked, slow.booked)
    np.testing.assert_array_equal(fast.alerts, slow.alerts)
    np.testing.assert_array_equal(fast.positions, slow.positions)
    assert int(fast.positions["net_fen"].sum()) == 0
    known = {BOOKED, PENDING} | {int(r) for r in Reason}
    assert set(np.unique(fast.outcome).tolist()) <= known
    counts = fast.counts()
    assert counts["booked"] + counts["rejected"] + counts["pending"] == len(day.log.records)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(0, 99))
def test_any_number_of_uploads_settles_the_same(seed: int, copies: int, order: int) -> None:
    day = small_day(seed=seed, records=200, terminals=4, batch_size=15)
    once = settle(day.log, day.registry)
    n_b = len(day.log.batches)
    uploads = list(range(n_b)) * copies
    rng = np.random.default_rng(order)
    # Later copies arrive in any order, but after the first one of each batch.
    uploads = list(range(n_b)) + rng.permutation(uploads[n_b:]).tolist()
    day.log = mutations.take_batches(day.log, uploads)
    many = settle(day.log, day.registry)
    np.testing.assert_array_equal(many.positions, once.positions)
    assert many.counts()["booked"] == once.counts()["booked"]
    np.testing.assert_array_equal(many.outcome[: len(once.outcome)], once.outcome)
    assert (many.outcome[len(once.outcome) :] == Reason.DUPLICATE_BATCH).all()
    np.testing.assert_array_equal(
        many.alerts[["code", "terminal_id", "card_id", "first", "last"]],
        once.alerts[["code", "terminal_id", "card_id", "first", "last"]],
    )
