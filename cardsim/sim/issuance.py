"""Card issuance: applicants queue at service windows, then a central bureau prints the cards.

Each applicant picks a centre uniformly at random and joins its queue, served first come,
first served by `windows_per_centre` identical windows (a `simpy.Resource` per centre).
Windows serve only during opening hours, `days` days running. The queue keeps its order
overnight (a numbered ticket stays valid): whoever is still waiting at close is first in line
at the next opening. A service that has started before close is finished, even past close,
because a clerk does not send someone away mid-application; so service *starts* always fall
inside opening hours, service ends may not.

After the window, the card joins one FIFO queue at the personalisation bureau, which works
around the clock at a fixed pace of one card every 3600 / personalisation_per_hour seconds,
so no hour ever holds more than personalisation_per_hour prints. The card can pay
`activation_delay_s` after it is printed.

The horizon is the end of the last day, `days` * 86400 s: anything that would happen after it
is reported as np.inf.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy

from cardsim.sim.clearing import Wakeups, delay_until

DAY_S = 86_400.0
"""Seconds in a simulated day."""


@dataclass(frozen=True)
class IssuanceConfig:
    """Centres, windows, opening hours and the bureau's pace for an issuance campaign."""

    centres: int
    """Issuance centres; applicants pick one uniformly at random."""
    windows_per_centre: int
    """Service windows per centre (the capacity of its resource)."""
    service_mean_s: float
    """Mean of the exponential service time at a window, in seconds."""
    open_s: float = 8.5 * 3600
    """Daily opening time, seconds since midnight."""
    close_s: float = 17 * 3600
    """Daily closing time, seconds since midnight; no service starts at or after it."""
    personalisation_per_hour: float = 2000.0
    """Cards the central bureau prints per hour, around the clock."""
    activation_delay_s: float = 0.0
    """Time from printing until the card can first pay, in seconds."""
    days: int = 1
    """How many days the windows keep opening (multi-day campaigns); also sets the horizon."""

    def __post_init__(self) -> None:
        if self.centres < 1 or self.windows_per_centre < 1 or self.days < 1:
            raise ValueError("centres, windows_per_centre and days must all be >= 1")
        if not (self.service_mean_s > 0 and math.isfinite(self.service_mean_s)):
            raise ValueError(f"service_mean_s must be finite and > 0, got {self.service_mean_s}")
        if not 0.0 <= self.open_s < self.close_s <= DAY_S:
            raise ValueError("need 0 <= open_s < close_s <= 86400 (seconds since midnight)")
        if not (self.personalisation_per_hour > 0 and math.isfinite(self.personalisation_per_hour)):
            raise ValueError("personalisation_per_hour must be finite and > 0")
        if not (self.activation_delay_s >= 0 and math.isfinite(self.activation_delay_s)):
            raise ValueError("activation_delay_s must be finite and >= 0 seconds")

    @property
    def horizon_s(self) -> float:
        """End of the last day of the campaign, in seconds."""
        return self.days * DAY_S

    @property
    def print_s(self) -> float:
        """Seconds the bureau spends on one card."""
        return 3600.0 / self.personalisation_per_hour

    def opening_windows_s(self) -> np.ndarray:
        """(days, 2) array of [open, close) times in seconds, one row per day."""
        midnights_s = np.arange(self.days, dtype=np.float64) * DAY_S
        return np.column_stack((midnights_s + self.open_s, midnights_s + self.close_s))

    def next_start_s(self, t_s: float) -> float:
        """The earliest time >= t_s at which a window may start a service; inf if none left."""
        for day in range(max(int(t_s // DAY_S), 0), self.days):
            if t_s < day * DAY_S + self.close_s:
                return max(t_s, self.opening_s(day))
        return math.inf

    def opening_s(self, day: int) -> float:
        """When the windows open on `day` (0-based), in seconds."""
        return day * DAY_S + self.open_s


@dataclass
class IssuanceResult:
    """Per-applicant outcomes, indexed like the input applications."""

    centre: np.ndarray
    """Centre each applicant chose (int64)."""
    served_s: np.ndarray
    """Service end at the window, in seconds (np.inf if not within the horizon)."""
    window_wait_s: np.ndarray
    """Service start minus application time, in seconds (np.inf if never started); measured
    from the simulation clock at application, so exactly 0 for someone served on arrival."""
    usable_s: np.ndarray
    """When the card can first pay, in seconds (np.inf if not within the horizon)."""
    start_s: np.ndarray
    """Service start at the window, in seconds (np.inf if never started)."""
    printed_s: np.ndarray
    """When the bureau finished the card, in seconds (np.inf if not within the horizon)."""

    def issued_by(self, t_s: float) -> int:
        """Cards usable at time t_s (usable_s <= t_s)."""
        return int(np.count_nonzero(self.usable_s <= t_s))


def simulate_issuance(
    applications_s: np.ndarray, config: IssuanceConfig, rng: np.random.Generator
) -> IssuanceResult:
    """Run the campaign for the given application times (seconds, >= 0, any order).

    `rng` draws, in this order and per input index, each applicant's centre and service time,
    so the draws never depend on the order of events.
    """
    arrivals = np.asarray(applications_s, dtype=np.float64)
    if arrivals.ndim != 1 or not np.all(np.isfinite(arrivals)) or np.any(arrivals < 0):
        raise ValueError("applications_s must be a 1-D array of finite seconds >= 0")
    centre = rng.integers(0, config.centres, size=arrivals.size, dtype=np.int64)
    service_s = rng.exponential(config.service_mean_s, size=arrivals.size)
    run = _Campaign(config, centre, service_s)
    run.env.process(run.source(arrivals))
    # Run to the end rather than to the horizon, so events exactly at the horizon count.
    run.env.run()
    horizon_s = config.horizon_s
    usable_s = run.printed_s + config.activation_delay_s
    return IssuanceResult(
        centre=centre,
        served_s=np.where(run.served_s <= horizon_s, run.served_s, np.inf),
        window_wait_s=run.start_s - run.arrived_s,
        usable_s=np.where(usable_s <= horizon_s, usable_s, np.inf),
        start_s=run.start_s,
        printed_s=np.where(run.printed_s <= horizon_s, run.printed_s, np.inf),
    )


class _Campaign:
    """One simulation: the environment, windows, bureau, and the per-applicant times."""

    def __init__(self, config: IssuanceConfig, centre: np.ndarray, service_s: np.ndarray) -> None:
        self.config = config
        """The campaign being simulated."""
        self.env = simpy.Environment()
        """The clock and event queue; all times below are read from it."""
        self.windows = [
            simpy.Resource(self.env, config.windows_per_centre) for _ in range(config.centres)
        ]
        """Each centre's windows, granted first come, first served."""
        self.bureau = simpy.Resource(self.env, capacity=1)
        """The personalisation bureau: one card at a time at a fixed pace."""
        self.wakeups = Wakeups(self.env)
        """One shared wake-up per opening."""
        self.centre = centre.tolist()
        """Chosen centre per applicant."""
        self.service_s = service_s.tolist()
        """Window service time per applicant."""
        self.arrived_s = np.full(centre.size, np.nan)
        """The clock at each application (its time, or one ulp above; see delay_until)."""
        self.start_s = np.full(centre.size, np.inf)
        """Service start at the window (inf until it happens)."""
        self.served_s = np.full(centre.size, np.inf)
        """Service end at the window (inf until it happens)."""
        self.printed_s = np.full(centre.size, np.inf)
        """Print end at the bureau (inf until it happens)."""

    def source(self, arrival_s: np.ndarray) -> Generator[simpy.Event, None, None]:
        """Release applicants in arrival order (ties in input order), one process each."""
        env = self.env
        for index in np.argsort(arrival_s, kind="stable").tolist():
            yield env.timeout(delay_until(env.now, float(arrival_s[index])))
            env.process(self.applicant(index))

    def applicant(self, index: int) -> Generator[simpy.Event, None, None]:
        """One applicant: queue for a window, wait for opening hours, be served, get the card."""
        env, config = self.env, self.config
        self.arrived_s[index] = env.now
        with self.windows[self.centre[index]].request() as request:
            yield request
            # Holding the window while closed keeps FIFO order across the night: the ones at
            # the head of the queue are the ones served at the next opening.
            if config.next_start_s(env.now) == math.inf:
                return  # the campaign is over; the applicant is never served
            while (wake := self._opening_wake()) is not None:
                yield wake
            self.start_s[index] = env.now
            yield env.timeout(self.service_s[index])
            self.served_s[index] = env.now
        with self.bureau.request() as request:
            yield request
            yield env.timeout(config.print_s)
            self.printed_s[index] = env.now

    def _opening_wake(self) -> simpy.Event | None:
        """None if a window may start a service now, else the event at the next opening.

        Called only while some opening is left. Right at an opening, the shared wake-up of
        those who waited for it may still be pending (it can land one ulp late): wait for it.
        """
        now_s = self.env.now
        start_s = self.config.next_start_s(now_s)
        if start_s > now_s:
            return self.wakeups.until(start_s)
        return self.wakeups.pending(self.config.opening_s(int(now_s // DAY_S)))
