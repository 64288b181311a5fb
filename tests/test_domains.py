"""Fare and acceptance rules of the city's domains, each on a tiny hand-made case."""

from __future__ import annotations

import numpy as np

from cardsim.records.codes import Domain, Kind
from cardsim.scenario import Bus, Scenario
from cardsim.sim import bus as bus_mod
from cardsim.sim.city import simulate_day
from cardsim.sim.lost import LostCards
from cardsim.sim.pos import ONLINE_FLAG, category_taps
from cardsim.sim.world import CARD_TYPES

TINY = {
    "population": {"cards": 1_500},
    "bike": {"trips": 100},
    "hospital": {"patients": 100},
    "issuance": {"applications": 40},
}


def test_concessions_by_card_type() -> None:
    bus = Bus(flat_fare_fen=200)
    types = np.array([CARD_TYPES.index(t) for t in CARD_TYPES])
    fares = bus_mod.concession_fares_fen(np.full(4, 200), types, bus)
    assert fares.tolist() == [200, 200, 100, 0]  # full-function, standard, student, senior


def test_distance_fares_grow_with_route_length_and_round_to_ten_fen() -> None:
    bus = Bus(fare="distance", base_fare_fen=100, per_km_fen=30, routes=10, mean_ride_km=5.0)
    rng = np.random.default_rng(0)
    short = bus_mod.base_fares_fen(bus, np.zeros(20_000, int), rng)
    long = bus_mod.base_fares_fen(bus, np.full(20_000, 9), rng)
    assert (short % 10 == 0).all() and (short >= 100).all()
    assert long.mean() > short.mean() * 1.5


def test_transfer_discount_within_the_window_only() -> None:
    bus = Bus(
        flat_fare_fen=200,
        transfer_window_s=5_400,
        transfer_discount_fen=100,
        concessions={"student": 0, "senior": 0},
    )
    rng = np.random.default_rng(1)
    taps = bus_mod.bus_taps(bus, np.arange(50), np.zeros(50, np.int8), np.arange(5), 1.0, 1.0, rng)
    order = np.lexsort((taps.time_s, taps.card))
    card, time_s, fare = taps.card[order], taps.time_s[order], taps.amount_fen[order]
    follows = np.r_[False, (card[1:] == card[:-1]) & (np.diff(time_s) <= 5_400)]
    assert (fare[follows] == 100).all()
    assert (fare[~follows] == 200).all()


def test_online_purchases_may_exceed_the_offline_limit() -> None:
    sc = Scenario(
        name="t",
        pos={
            "offline_limit_fen": 1_000,
            "shops": {"purchases": 20_000, "median_fen": 5_000, "online_share": 0.5},
        },
    )
    card_type = np.zeros(100, np.int8)  # all full-function
    taps = category_taps(
        sc.pos.shops, np.arange(3), card_type, sc.pos, 1.0, 1.0, 100_000, np.random.default_rng(2)
    )
    online = (taps.flags & ONLINE_FLAG) != 0
    assert online.any() and (~online).any()
    assert (taps.amount_fen[~online] <= 1_000).all()
    assert (taps.amount_fen[online] > 1_000).any()


def test_hotlist_applies_from_the_next_refresh() -> None:
    lost = LostCards(
        card=np.array([3]), lost_s=np.array([1_000.0]), hotlisted_s=np.array([3_600.0])
    )
    card = np.array([3, 3, 3, 4])
    time_s = np.array([500.0, 2_000.0, 4_000.0, 4_000.0])
    assert lost.holder_gone(card, time_s, 10).tolist() == [False, True, True, False]
    assert lost.hotlisted_at(card, time_s, 10).tolist() == [False, False, True, False]


def test_a_day_keeps_every_domain_rule() -> None:
    day = simulate_day(Scenario(name="t", **TINY), 3)
    rec = day.log.records
    new_cards = rec["card_id"] > 1_500
    # New cards pay only after they became usable (issuance ran earlier that day).
    assert day.cards_issued > 0
    if new_cards.any():
        assert (day.tap_time_s[new_cards] > 8.5 * 3600).all()
    # Insurance shares only at hospitals; loads only at top-up terminals.
    assert set(rec["domain"][rec["kind"] == Kind.INSURANCE_SHARE]) <= {Domain.HOSPITAL}
    assert set(rec["domain"][rec["kind"] == Kind.LOAD]) == {Domain.TOPUP}
    # Balances never negative, never above the cap.
    assert (rec["balance_after_fen"] >= 0).all()
    assert (rec["balance_after_fen"] <= 100_000).all()
    # Each card's counters are consecutive in time order.
    order = np.lexsort((rec["card_counter"], rec["card_id"]))
    card, counter = rec["card_id"][order], rec["card_counter"][order].astype(np.int64)
    same = card[1:] == card[:-1]
    assert (np.diff(counter)[same] == 1).all()
    # Finders' purchases are accepted only before the hotlist reached the shops.
    finder = day.finder & day.purse.accepted
    hot = day.lost.hotlisted_at(day.taps.card, day.taps.time_s, len(day.world.cards))
    assert not (finder & hot).any()


def test_mmc_mode_feeds_poisson_uploads_to_the_clearing_queue() -> None:
    sc = Scenario(
        name="t",
        **TINY,
        clearing={
            "mode": "mmc",
            "workers": 2,
            "mmc_arrival_rate_per_s": 0.5,
            "mmc_service_rate_per_s": 1.0,
        },
    )
    day = simulate_day(sc, 4)
    arrivals = len(day.clearing.start_s)
    assert abs(arrivals - 0.5 * 86_400) < 5 * np.sqrt(0.5 * 86_400)
    assert 0.2 < day.clearing.utilization < 0.3
