"""The vectorized purse against a plain loop that decides one tap at a time, as a card would."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.scenario import Population
from cardsim.sim.purse import HOTLISTED, INSUFFICIENT, decide


def reference(card, amount, need, pre_declined, balance0, tops_up, pop):
    balance = balance0.astype(np.int64).copy()
    accepted, reason, after, topup = [], [], [], []
    for c, a, n, hot in zip(card, amount, need, pre_declined, strict=True):
        load = 0
        if hot:
            accepted.append(False), reason.append(HOTLISTED), after.append(0), topup.append(0)
            continue
        if tops_up[c]:
            while balance[c] + load < max(n, pop.topup_threshold_fen):
                load += pop.topup_amount_fen
        balance[c] += load
        if balance[c] >= n:
            balance[c] -= a
            accepted.append(True), reason.append(0)
        else:
            accepted.append(False), reason.append(INSUFFICIENT)
        after.append(balance[c]), topup.append(load)
    return np.array(accepted, bool), np.array(reason), np.array(after), np.array(topup), balance


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_vectorized_purse_matches_one_tap_at_a_time(data: st.DataObject) -> None:
    cards = data.draw(st.integers(1, 6))
    n = data.draw(st.integers(0, 60))
    pop = Population(
        topup_threshold_fen=data.draw(st.integers(0, 500)),
        topup_amount_fen=data.draw(st.integers(1, 2_000)),
        max_balance_fen=100_000,
    )
    card = np.sort(
        np.array(data.draw(st.lists(st.integers(0, cards - 1), min_size=n, max_size=n)), np.int64)
    )
    amount = np.array(data.draw(st.lists(st.integers(0, 900), min_size=n, max_size=n)), np.int64)
    extra = np.array(data.draw(st.lists(st.integers(0, 300), min_size=n, max_size=n)), np.int64)
    need = amount + extra * data.draw(st.integers(0, 1))
    hot = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    balance0 = np.array(
        data.draw(st.lists(st.integers(0, 3_000), min_size=cards, max_size=cards)), np.int64
    )
    tops_up = np.array(data.draw(st.lists(st.booleans(), min_size=cards, max_size=cards)))
    fast = decide(card, amount, need, hot, balance0, tops_up, pop)
    ok, reason, after, topup, final = reference(card, amount, need, hot, balance0, tops_up, pop)
    np.testing.assert_array_equal(fast.accepted, ok)
    np.testing.assert_array_equal(fast.decline_reason, reason)
    np.testing.assert_array_equal(fast.topup_fen, topup)
    np.testing.assert_array_equal(fast.balance_after_fen[ok], after[ok])
    np.testing.assert_array_equal(fast.final_balance_fen, final)
    assert (fast.final_balance_fen >= 0).all()
    # Money in = money out, card by card.
    spent = np.bincount(card[ok], amount[ok], minlength=cards).astype(np.int64)
    loaded = np.bincount(card, topup, minlength=cards).astype(np.int64)
    np.testing.assert_array_equal(balance0 + loaded - spent, fast.final_balance_fen)


def test_declines_when_short_and_recovers_for_a_cheaper_tap() -> None:
    pop = Population()
    card = np.zeros(3, np.int64)
    amount = np.array([300, 500, 100])
    day = decide(card, amount, amount, np.zeros(3, bool), np.array([400]), np.array([False]), pop)
    assert day.accepted.tolist() == [True, False, True]
    assert day.final_balance_fen.tolist() == [0]
