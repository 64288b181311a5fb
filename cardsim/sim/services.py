"""Domains where queues or stock matter: bike docks, hospital windows, issuance windows.

Each wraps a SimPy model (bike.py, hospital.py, issuance.py) and turns its outcome into taps
with the fare rules applied: rental fees by duration, hospital bills split between the
medical-insurance fund and the card's purse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.records.codes import Kind
from cardsim.sim.bike import BikeConfig, BikeResult, rental_fee_fen, simulate_bikes
from cardsim.sim.demand import CLINIC, DAYTIME, draw_times_s, poisson_count, profile
from cardsim.sim.hospital import HospitalConfig, HospitalResult, simulate_hospital, split_bill_fen
from cardsim.sim.issuance import IssuanceConfig, IssuanceResult, simulate_issuance
from cardsim.sim.pos import lognormal_fen
from cardsim.sim.taps import Taps, concat_taps, make_taps
from cardsim.sim.world import CARD_TYPES, World

FULL_FUNCTION = CARD_TYPES.index("full_function")


@dataclass
class BikeDay:
    """The rental system's day: its taps and what the docks did."""

    taps: Taps
    result: BikeResult
    declined_min_balance: int


def bike_day(world: World, rng: np.random.Generator) -> BikeDay:
    """Rental requests through the dock model; the fee is taken at return, by duration.

    Renting needs `min_balance_fen` on the card, checked against the morning balance (an
    offline dock cannot know later top-ups).
    """
    sc, cards = world.scenario, world.cards
    n = poisson_count(sc.bike.trips * sc.demand.volume_multiplier, rng)
    card = rng.integers(0, len(cards), n)
    allowed = cards.balance_fen[card] >= sc.bike.min_balance_fen
    card = card[allowed]
    m = len(card)
    request = draw_times_s(m, profile(DAYTIME, sc.demand.peak_multiplier), rng)
    origin = rng.integers(0, sc.bike.stations, m)
    destination = rng.integers(0, sc.bike.stations, m)
    ride = rng.exponential(sc.bike.mean_ride_s, m)
    config = BikeConfig(
        stations=sc.bike.stations,
        docks=sc.bike.docks,
        initial_fill=sc.bike.initial_fill,
        neighbour_retry=sc.bike.neighbour_retry,
        walk_s=sc.bike.walk_s,
    )
    result = simulate_bikes(request, origin, destination, ride, config, rng)
    done = result.rented & (result.return_s < 86_400.0)
    fee = rental_fee_fen(result.duration_s()[done], free_s=sc.bike.free_s)
    docks = world.terminals.groups["bike"]
    taps = make_taps(
        card[done],
        result.return_s[done],
        docks[result.return_station[done]],
        Kind.DEBIT,
        fee,
        need_fen=fee,
    )
    return BikeDay(taps, result, int((~allowed).sum()))


@dataclass
class HospitalDay:
    """Every hospital's patients: taps (insurance shares and self-pay) and the window model."""

    taps: Taps
    results: list[HospitalResult]


def hospital_day(world: World, rng: np.random.Generator) -> HospitalDay:
    """Patients through registration, consultation and pharmacy at each hospital."""
    sc, h = world.scenario, world.scenario.hospital
    cap = sc.population.max_balance_fen - sc.population.topup_amount_fen
    parts: list[Taps] = []
    results = []
    config = HospitalConfig(
        registration_windows=h.registration_windows,
        consultation_rooms=h.consultation_rooms,
        pharmacy_windows=h.pharmacy_windows,
        auth_latency_mean_s=h.auth_latency_mean_s,
        auth_failure_prob=h.auth_failure_prob,
    )
    for k in range(h.hospitals):
        n = poisson_count(h.patients * sc.demand.volume_multiplier / h.hospitals, rng)
        card = rng.integers(0, len(world.cards), n)
        arrival = np.sort(draw_times_s(n, profile(CLINIC, 1.0), rng))
        result = simulate_hospital(arrival, config, rng)
        results.append(result)
        insured = world.cards.card_type[card] == FULL_FUNCTION
        bill = np.minimum(lognormal_fen(n, h.bill_median_fen, h.bill_sigma, rng), cap)
        fee = np.full(n, h.registration_fee_fen, np.int64)
        registration = world.terminals.groups["hospital_registration"][k]
        pharmacy = world.terminals.groups["hospital_pharmacy"][k]
        parts += _payment(
            card,
            result.registration_paid_s,
            fee,
            result.registration_auth_ok & insured,
            registration,
            h.insured_share_bp,
        )
        went = result.visits_pharmacy & (result.pharmacy_paid_s < 86_400.0)
        parts += _payment(
            card[went],
            result.pharmacy_paid_s[went],
            bill[went],
            result.pharmacy_auth_ok[went] & insured[went],
            pharmacy,
            h.insured_share_bp,
        )
    return HospitalDay(concat_taps(parts), results)


def _payment(
    card: np.ndarray,
    time_s: np.ndarray,
    bill: np.ndarray,
    insured: np.ndarray,
    terminal: int,
    share_bp: int,
) -> list[Taps]:
    """One payment: the insured share (paid by the fund) and the self-pay part (the purse)."""
    keep = time_s < 86_400.0
    card, time_s, bill, insured = card[keep], time_s[keep], bill[keep], insured[keep]
    fund, own = split_bill_fen(bill, share_bp, insured)
    paid = fund > 0
    return [
        make_taps(
            card[paid],
            time_s[paid],
            np.full(paid.sum(), terminal),
            Kind.INSURANCE_SHARE,
            fund[paid],
            need_fen=np.zeros(paid.sum(), np.int64),
            purse=False,
        ),
        make_taps(card, time_s, np.full(len(card), terminal), Kind.DEBIT, own),
    ]


def issuance_day(world: World, rng: np.random.Generator) -> IssuanceResult:
    """The day's applicants through issuance windows and the personalisation bureau."""
    iss = world.scenario.issuance
    n = poisson_count(iss.applications * world.scenario.demand.volume_multiplier, rng)
    config = IssuanceConfig(
        centres=iss.centres,
        windows_per_centre=iss.windows_per_centre,
        service_mean_s=iss.service_mean_s,
        personalisation_per_hour=iss.personalisation_per_hour,
        activation_delay_s=iss.activation_delay_s,
    )
    open_s, close_s = config.open_s, config.close_s
    arrivals = np.sort(open_s + rng.random(n) * (close_s - open_s))
    return simulate_issuance(arrivals, config, rng)
