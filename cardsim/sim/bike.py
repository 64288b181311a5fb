"""Public bike rental with docks: one SimPy process per trip, one Container per station.

Stations lie on a ring (the neighbour of station i is (i + 1) % stations). A rider who finds her
origin empty may walk to the next stations; a rider who finds her destination full rides on to
the next station until a dock is free, so a bike is never lost. The card-side fee is a pure
function of the rental duration (`rental_fee_fen`), applied by the caller.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

HOUR_S = 3600.0
"""Length of one billed hour, s."""

DEFAULT_TIERS_FEN = (100, 200, 300)
"""Price of the 1st, 2nd, 3rd... started hour after the free period, fen; the last repeats."""

MAX_RENTAL_S = 366 * 86_400.0
"""Longest rental `rental_fee_fen` prices, s; anything longer is a data error, not a fare."""

MAX_TRIPS = 10_000_000
"""Trips per call; the per-trip Python state would not fit comfortably in memory beyond this."""


@dataclass(frozen=True)
class BikeConfig:
    """The dock network: a ring of equal stations, and how riders react to empty or full ones."""

    stations: int
    """Stations on the ring."""
    docks: int
    """Docks per station: its capacity in bikes."""
    initial_fill: float = 0.6
    """Share of docks holding a bike at the start; bikes per station = round(fill * docks)."""
    neighbour_retry: bool = True
    """Whether a rider who finds a station empty walks to the next one and tries again."""
    walk_s: float = 300.0
    """Time to walk (when renting) or ride (when returning) to the next station, s."""
    max_attempts: int = 3
    """Stations tried in total when renting, the origin included."""

    def __post_init__(self) -> None:
        if self.stations < 1 or self.docks < 1:
            raise ValueError("stations and docks must be at least 1")
        if not 0.0 <= self.initial_fill <= 1.0:
            raise ValueError(f"initial_fill must be in [0, 1], got {self.initial_fill}")
        if not (np.isfinite(self.walk_s) and self.walk_s >= 0.0):
            raise ValueError(f"walk_s must be finite and >= 0, got {self.walk_s}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    @property
    def initial_bikes(self) -> int:
        """Bikes at each station at the start (Python's round: halves go to the even number)."""
        return round(self.initial_fill * self.docks)

    @property
    def rent_attempts(self) -> int:
        """Stations a rider tries before giving up."""
        return self.max_attempts if self.neighbour_retry else 1


@dataclass
class BikeResult:
    """Per-trip outcomes (arrays in input order) and per-station stock histories."""

    rented: np.ndarray
    """bool: the rider got a bike."""
    rent_station: np.ndarray
    """int64: station the bike was taken from, -1 if not rented."""
    rent_s: np.ndarray
    """float64: time the bike was taken, s since midnight; nan if not rented."""
    return_station: np.ndarray
    """int64: station the bike was docked at, -1 if not rented."""
    return_s: np.ndarray
    """float64: time the bike was docked, s since midnight; nan if not rented."""
    failed_rent_attempts: np.ndarray
    """int64: stations found empty while trying to rent."""
    failed_return_attempts: np.ndarray
    """int64: stations found full while trying to return."""
    stock_times_s: list[np.ndarray]
    """Per station, float64: times its stock changed, s, in the order the changes happened."""
    stock_levels: list[np.ndarray]
    """Per station, int64: bikes docked there right after each change."""

    def duration_s(self) -> np.ndarray:
        """Rental duration return_s - rent_s per trip, s; nan where not rented."""
        return self.return_s - self.rent_s


class _Network:
    """Simulation state of one run: the stations' containers, the logs and the per-trip outputs.

    Outputs are Python lists while the simulation runs, since element writes to lists are much
    cheaper than to numpy arrays; they become arrays once, in `result`.
    """

    def __init__(self, env: simpy.Environment, config: BikeConfig, trips: int) -> None:
        self.env = env
        self.config = config
        self.stock = [
            simpy.Container(env, capacity=config.docks, init=config.initial_bikes)
            for _ in range(config.stations)
        ]
        self.log_times_s: list[list[float]] = [[] for _ in range(config.stations)]
        self.log_levels: list[list[int]] = [[] for _ in range(config.stations)]
        self.rent_station = [-1] * trips
        self.rent_s = [np.nan] * trips
        self.return_station = [-1] * trips
        self.return_s = [np.nan] * trips
        self.failed_rent = [0] * trips
        self.failed_return = [0] * trips

    def _record(self, station: int) -> None:
        self.log_times_s[station].append(self.env.now)
        self.log_levels[station].append(int(self.stock[station].level))

    def dispatch(
        self, trips: Iterator[tuple[int, float, int, int, float]]
    ) -> Generator[simpy.Event, object, None]:
        """Start each trip's process at its request time, in the given order.

        Starting processes as their time comes, rather than all at once with a delay each,
        keeps the event heap as small as the number of riders under way.
        """
        env = self.env
        for i, request_s, origin, destination, ride_s in trips:
            if request_s > env.now:
                yield env.timeout(request_s - env.now)
            env.process(self.trip(i, origin, destination, ride_s))

    def trip(
        self, i: int, origin: int, destination: int, ride_s: float
    ) -> Generator[simpy.Event, object, None]:
        """One rider from her request: rent (maybe walking on), ride, return (maybe riding on)."""
        env, config = self.env, self.config
        station = origin
        for attempt in range(config.rent_attempts):
            if attempt:
                yield env.timeout(config.walk_s)
                station = (station + 1) % config.stations
            # Level check and get run in the same step, so no other rider can slip in between;
            # the get therefore never blocks and need not be waited for.
            if self.stock[station].level > 0:
                break
            self.failed_rent[i] += 1
        else:
            return
        self.stock[station].get(1)
        self._record(station)
        self.rent_station[i], self.rent_s[i] = station, env.now
        yield env.timeout(ride_s)
        station = destination
        # Terminates: the rider holds a bike, so some dock is free at every instant, and once
        # the other (finitely many) riders are done she finds it within one lap of the ring.
        while self.stock[station].level >= config.docks:
            self.failed_return[i] += 1
            yield env.timeout(config.walk_s)
            station = (station + 1) % config.stations
        self.stock[station].put(1)
        self._record(station)
        self.return_station[i], self.return_s[i] = station, env.now

    def result(self) -> BikeResult:
        """Freeze the outputs into arrays."""
        rent_station = np.array(self.rent_station, dtype=np.int64)
        return BikeResult(
            rented=rent_station >= 0,
            rent_station=rent_station,
            rent_s=np.array(self.rent_s, dtype=np.float64),
            return_station=np.array(self.return_station, dtype=np.int64),
            return_s=np.array(self.return_s, dtype=np.float64),
            failed_rent_attempts=np.array(self.failed_rent, dtype=np.int64),
            failed_return_attempts=np.array(self.failed_return, dtype=np.int64),
            stock_times_s=[np.array(t, dtype=np.float64) for t in self.log_times_s],
            stock_levels=[np.array(v, dtype=np.int64) for v in self.log_levels],
        )


def _check_trips(
    request_s: np.ndarray,
    origin: np.ndarray,
    destination: np.ndarray,
    ride_s: np.ndarray,
    stations: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the trip arrays once, here, and return them as 1-D float64 / int64 arrays."""
    request = np.asarray(request_s, dtype=np.float64)
    ride = np.asarray(ride_s, dtype=np.float64)
    start = np.asarray(origin)
    end = np.asarray(destination)
    n = request.shape[0] if request.ndim == 1 else -1
    if any(a.shape != (n,) for a in (request, ride, start, end)):
        raise ValueError("request_s, origin, destination and ride_s must be 1-D, equal length")
    if n > MAX_TRIPS:
        raise ValueError(f"at most {MAX_TRIPS} trips per call, got {n}; split the day")
    if not (np.isfinite(request).all() and np.isfinite(ride).all() and (ride >= 0).all()):
        raise ValueError("request_s must be finite and ride_s finite and >= 0")
    for name, a in (("origin", start), ("destination", end)):
        if n and not (np.issubdtype(a.dtype, np.integer) and a.min() >= 0 and a.max() < stations):
            raise ValueError(f"{name} must hold integer stations in [0, {stations})")
    return request, start.astype(np.int64), end.astype(np.int64), ride


def simulate_bikes(
    request_s: np.ndarray,
    origin: np.ndarray,
    destination: np.ndarray,
    ride_s: np.ndarray,
    config: BikeConfig,
    rng: np.random.Generator,
) -> BikeResult:
    """Simulate one set of rental requests against the dock network.

    Arguments are per trip: the request time (s since midnight), origin and destination
    stations, and the riding time ride_s (s, the same whichever station she rents from).
    `rng` only orders requests made at the same instant, so that no trip is favoured by its
    position in the input; all other ties are broken by SimPy's event counter. Results are in
    input order.
    """
    request, start, end, ride = _check_trips(
        request_s, origin, destination, ride_s, config.stations
    )
    n: int = request.shape[0]
    env = simpy.Environment(initial_time=float(request.min()) if n else 0.0)
    network = _Network(env, config, n)
    # Requests are served in time order; at equal times in this (random) order.
    order = np.lexsort((rng.permutation(n), request))
    args = zip(
        order.tolist(),
        request[order].tolist(),
        start[order].tolist(),
        end[order].tolist(),
        ride[order].tolist(),
        strict=True,
    )
    env.process(network.dispatch(iter(args)))
    env.run()
    return network.result()


def rental_fee_fen(
    duration_s: np.ndarray,
    free_s: float = HOUR_S,
    tiers_fen: Sequence[int] = DEFAULT_TIERS_FEN,
    hour_s: float = HOUR_S,
) -> np.ndarray:
    """The rental fee per trip, int64 fen, from the rental duration in seconds.

    The first `free_s` seconds (default one hour) are free. After that every started hour of
    `hour_s` seconds is billed: the k-th started hour costs tiers_fen[k - 1] and every hour past
    the list costs its last entry. The defaults, (100, 200, 300), make the 2nd hour of a rental
    1 yuan, the 3rd 2 yuan and each further hour 3 yuan: 3600 s is free, 3601 s to 7200 s cost
    100 fen, up to 10800 s 300 fen, up to 14400 s 600 fen. A nan duration (no rental) costs 0.
    """
    duration = np.asarray(duration_s, dtype=np.float64)
    tiers = np.asarray(tiers_fen, dtype=np.int64)
    if tiers.ndim != 1 or tiers.size == 0 or (tiers < 0).any():
        raise ValueError("tiers_fen must be a non-empty sequence of non-negative fen")
    if not (free_s >= 0 and hour_s > 0):
        raise ValueError("free_s must be >= 0 and hour_s > 0")
    rented = ~np.isnan(duration)
    if ((duration[rented] < 0) | (duration[rented] > MAX_RENTAL_S)).any():
        raise ValueError(f"durations must be in [0, {MAX_RENTAL_S}] s (nan for no rental)")
    over_s = np.where(rented, np.maximum(duration - free_s, 0.0), 0.0)
    hours = np.ceil(over_s / hour_s).astype(np.int64)
    # Price of the first k hours for k = 0..len(tiers), then the last tier for each extra hour.
    cumulative = np.concatenate(([0], np.cumsum(tiers)))
    within = np.minimum(hours, tiers.size)
    return cumulative[within] + (hours - within) * tiers[-1]
