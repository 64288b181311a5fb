"""Buses: offline validators, flat or distance fares, concessions, transfer discounts."""

from __future__ import annotations

import numpy as np

from cardsim.records.codes import Kind
from cardsim.scenario import Bus
from cardsim.sim.demand import COMMUTER, draw_times_s, poisson_count, profile
from cardsim.sim.taps import TIME_BITS, Taps, make_taps, order_key
from cardsim.sim.world import CARD_TYPES


def base_fares_fen(bus: Bus, route: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Full fares before concessions: flat, or base + per started km rounded to 10 fen.

    Routes differ in length: route r's rides average mean_ride_km * (0.5 + r / routes).
    """
    n = len(route)
    if bus.fare == "flat":
        return np.full(n, bus.flat_fare_fen, np.int64)
    km = rng.exponential(bus.mean_ride_km * (0.5 + route / bus.routes), n)
    fare = bus.base_fare_fen + np.ceil(km) * bus.per_km_fen
    return (np.round(fare / 10) * 10).astype(np.int64)


def concession_fares_fen(fares: np.ndarray, card_type: np.ndarray, bus: Bus) -> np.ndarray:
    """Fares after the card type's discount (basis points of the fare, rounded down)."""
    bp = np.array([getattr(bus.concessions, t) for t in CARD_TYPES], np.int64)
    return fares * (10_000 - bp[card_type]) // 10_000


def bus_taps(
    bus: Bus,
    cards: np.ndarray,
    card_type: np.ndarray,
    vehicles: np.ndarray,
    volume: float,
    peak_multiplier: float,
    rng: np.random.Generator,
    earliest_s: np.ndarray | None = None,
) -> Taps:
    """The day's bus rides of `cards` (ascending indices), `bus.rides_per_card` each on
    average, returned sorted by (card, time) so that transfers are neighbours.

    `earliest_s` (per card) delays rides until a newly issued card is usable.
    """
    n = poisson_count(len(cards) * bus.rides_per_card * volume, rng)
    rider = rng.integers(0, len(cards), n) if len(cards) else np.empty(0, np.int64)
    time_s = draw_times_s(n, profile(COMMUTER, peak_multiplier), rng)
    if earliest_s is not None:
        start = earliest_s[rider]
        time_s = start + rng.random(n) * np.maximum(86_400.0 - start, 0.0)
        keep = np.isfinite(time_s) & (time_s < 86_400.0)
        rider, time_s = rider[keep], time_s[keep]
        n = len(rider)
    key = np.sort(order_key(rider, time_s))
    rider, time_s = key >> TIME_BITS, (key & ((1 << TIME_BITS) - 1)) / 1000.0
    card = cards[rider]
    vehicle = rng.integers(0, len(vehicles), n)
    fares = concession_fares_fen(
        base_fares_fen(bus, vehicle % bus.routes, rng), card_type[card], bus
    )
    transfer = np.r_[
        False, (card[1:] == card[:-1]) & (time_s[1:] - time_s[:-1] <= bus.transfer_window_s)
    ]
    fares -= np.minimum(np.where(transfer, bus.transfer_discount_fen, 0), fares)
    return make_taps(card, time_s, vehicles[vehicle], Kind.DEBIT, fares)
