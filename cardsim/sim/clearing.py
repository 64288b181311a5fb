"""The clearing centre's front end: terminal upload batches queue for identical workers.

Each worker is one SimPy process taking batches first come, first served in arrival order
(ties in input order). Service takes
`batch_service_s + record_service_s * records`, either exactly or exponentially distributed
with that mean. During an outage window the centre starts no service; queued batches wait
until the window ends.

All reported times are readings of the SimPy clock. SimPy advances it by adding delays in
floating point, so an instant that cannot be reached exactly (see `delay_until`) is reported
one ulp late, never early: no start falls inside an outage or before its arrival.
"""

from __future__ import annotations

import bisect
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy


@dataclass(frozen=True)
class ClearingConfig:
    """How many workers the front end has, how long a batch takes, and when it is down.

    Outage windows are half-open, [start_s, end_s): a service may start exactly at end_s. A
    service already running when an outage starts is allowed to finish, because a worker that
    has read a batch commits it; losing or restarting it would need a retry model the
    terminals' store-and-forward side does not have yet. Overlapping or touching windows are
    merged.
    """

    workers: int
    """Identical workers serving batches in parallel."""
    batch_service_s: float
    """Fixed cost per batch (connection, signature check), in seconds."""
    record_service_s: float
    """Cost per record in the batch, in seconds."""
    exponential: bool = False
    """If true, each service time is exponential with the deterministic time as its mean."""
    outages_s: tuple[tuple[float, float], ...] = ()
    """(start_s, end_s) windows in which no service starts."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not (self.batch_service_s >= 0.0 and self.record_service_s >= 0.0):
            raise ValueError("batch_service_s and record_service_s must be >= 0 seconds")
        for start_s, end_s in self.outages_s:
            if not (np.isfinite(start_s) and np.isfinite(end_s) and start_s < end_s):
                raise ValueError(f"outage ({start_s}, {end_s}) must be finite with start < end")

    def merged_outages_s(self) -> tuple[tuple[float, float], ...]:
        """The outage windows sorted by start, with overlapping or touching ones merged."""
        merged: list[tuple[float, float]] = []
        for start_s, end_s in sorted(self.outages_s):
            if merged and start_s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end_s))
            else:
                merged.append((start_s, end_s))
        return tuple(merged)


@dataclass
class ClearingResult:
    """Per-batch times (indexed like the input arrays) and centre-wide measures."""

    start_s: np.ndarray
    """Service start per batch, in seconds."""
    end_s: np.ndarray
    """Service end per batch: when its records are cleared, in seconds."""
    wait_s: np.ndarray
    """Service start minus arrival, in seconds: start_s - arrival_s, except that it is measured
    from the simulation clock at arrival, so it is exactly 0 for a batch served on arrival even
    when the clock could only land one ulp past arrival_s (see `delay_until`)."""
    busy_s: float
    """Worker-seconds spent serving inside [0, horizon_s] (services after it are clipped)."""
    utilization: float
    """busy_s / (workers * horizon_s), in [0, 1]."""
    queue_times_s: np.ndarray
    """Times at which the number of waiting batches changed, ascending, in seconds."""
    queue_lengths: np.ndarray
    """Batches waiting (arrived, service not started) right after each of queue_times_s."""

    def mean_queue_length(self, start_s: float, end_s: float) -> float:
        """Time-average number of waiting batches over [start_s, end_s] (0 before any arrival)."""
        if not end_s > start_s:
            raise ValueError(f"need end_s > start_s, got [{start_s}, {end_s}]")
        times = self.queue_times_s
        inside = times[(times > start_s) & (times < end_s)]
        edges = np.concatenate(([start_s], inside, [end_s]))
        last_change = np.searchsorted(times, edges[:-1], side="right") - 1
        levels = np.where(last_change >= 0, self.queue_lengths[np.maximum(last_change, 0)], 0)
        return float(np.sum(levels * np.diff(edges)) / (end_s - start_s))


def poisson_arrivals(rate_per_s: float, horizon_s: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival times (s) of a homogeneous Poisson process on [0, horizon_s).

    Draws the count, then places that many uniform points: the same law as summing exponential
    gaps, with no loop and no overshoot to trim.
    """
    if not (rate_per_s >= 0.0 and horizon_s >= 0.0 and np.isfinite(rate_per_s * horizon_s)):
        raise ValueError("rate_per_s and horizon_s must be finite and >= 0")
    count = int(rng.poisson(rate_per_s * horizon_s))
    return np.sort(rng.uniform(0.0, horizon_s, size=count))


def simulate_clearing(
    arrival_s: np.ndarray,
    records: np.ndarray,
    config: ClearingConfig,
    rng: np.random.Generator,
    horizon_s: float,
) -> ClearingResult:
    """Run the front end until every batch is cleared.

    `arrival_s` (seconds, >= 0, any order) and `records` (per batch, >= 0) are parallel arrays;
    results are indexed the same way. `rng` draws the service times (only when
    `config.exponential`). `horizon_s` is only the denominator of the utilisation: the run goes
    on until the queue drains, and the caller chooses what counts as backlog at a cut-off.
    """
    arrivals = np.asarray(arrival_s, dtype=np.float64)
    counts = np.asarray(records)
    _check_inputs(arrivals, counts, horizon_s)
    service_s = config.batch_service_s + config.record_service_s * counts.astype(np.float64)
    if config.exponential:
        # Drawn per input index before the run, so a batch's time never depends on event order.
        service_s = service_s * rng.standard_exponential(arrivals.size)
    run = _Run(config, service_s, arrivals)
    run.env.run()
    start_s, end_s = run.start_s, run.end_s
    busy_s = float(np.sum(np.clip(end_s, 0, horizon_s) - np.clip(start_s, 0, horizon_s)))
    times_s, lengths = _queue_path(run.arrived_s, start_s)
    return ClearingResult(
        start_s=start_s,
        end_s=end_s,
        wait_s=start_s - run.arrived_s,
        busy_s=busy_s,
        # A sum of thousands of durations can overshoot workers * horizon_s by an ulp or two.
        utilization=min(busy_s / (config.workers * horizon_s), 1.0),
        queue_times_s=times_s,
        queue_lengths=lengths,
    )


def backlog_at(
    result: ClearingResult, arrival_s: np.ndarray, records: np.ndarray, t_s: float
) -> int:
    """Records that had arrived by t_s (arrival <= t_s) but were not cleared at t_s (end > t_s)."""
    pending = (np.asarray(arrival_s) <= t_s) & (result.end_s > t_s)
    return int(np.sum(np.asarray(records, dtype=np.int64)[pending]))


def delay_until(now_s: float, t_s: float) -> float:
    """A timeout delay (s) after which SimPy's clock reads t_s, or the next double above it.

    SimPy sets the clock to now_s + delay in floating point, and a plain t_s - now_s can land
    one ulp short of t_s: a batch would seem to start inside an outage or before it arrived.
    The smallest delay that does not fall short lands exactly on t_s whenever any delay can,
    else on the next double above; it is found by bisection. Stepping the delay one ulp at a
    time looped for minutes when the delay is far smaller than the clock (now_s ~ 5e4 s,
    delays ~ 1e-3 s, as in a city day's clearing).
    """
    delay_s = t_s - now_s
    if delay_s <= 0.0:
        return 0.0
    if now_s + delay_s == t_s:
        return delay_s  # the common case: the subtraction round-trips
    # fl(now_s + d) never decreases as d grows: bisect between a delay that falls short (0)
    # and one that does not (twice the difference overshoots whatever the rounding).
    short_s, enough_s = 0.0, (delay_s if now_s + delay_s >= t_s else 2.0 * delay_s)
    while True:
        middle_s = short_s + (enough_s - short_s) / 2.0
        if not short_s < middle_s < enough_s:
            return enough_s
        if now_s + middle_s >= t_s:
            enough_s = middle_s
        else:
            short_s = middle_s


class Wakeups:
    """Shared wake-up events, one per target instant.

    Processes that wait for the same instant (an outage's end, a window's opening) from
    different clock readings would each land on the target or one ulp past it (see
    `delay_until`), and a later batch could then start an ulp before an earlier one. One event
    per target makes them all resume at the same reading, in the order they began waiting.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        """The environment whose clock the events fire on."""
        self._events: dict[float, simpy.Event] = {}
        """Wake-up event per target instant (looked up by key, never iterated)."""

    def until(self, t_s: float) -> simpy.Event:
        """The event that fires when the clock reaches t_s (created on first request)."""
        event = self.pending(t_s)
        if event is None:
            event = self.env.timeout(delay_until(self.env.now, t_s))
            self._events[t_s] = event
        return event

    def pending(self, t_s: float) -> simpy.Event | None:
        """The wake-up for t_s if one is scheduled and has not fired yet, else None.

        At exactly t_s a wake-up landing one ulp later may still be pending: whoever arrives
        then must wait for it too, or it would start before those already waiting.
        """
        event = self._events.get(t_s)
        return event if event is not None and not event.processed else None


class _Outages:
    """Lookup of merged, sorted outage windows."""

    def __init__(self, windows_s: tuple[tuple[float, float], ...]) -> None:
        self.starts_s = [start for start, _ in windows_s]
        """Window starts, ascending."""
        self.ends_s = [end for _, end in windows_s]
        """Window ends, matching starts_s."""

    def latest_end_s(self, t_s: float) -> float | None:
        """The end of the last window that started at or before t_s, or None if none has."""
        index = bisect.bisect_right(self.starts_s, t_s) - 1
        return self.ends_s[index] if index >= 0 else None


class _Run:
    """One simulation: the environment, the workers, and the per-batch times it writes.

    Each worker is one SimPy process that takes the next batch in arrival order whenever it is
    free, so batches are served first come, first served exactly as from one FIFO queue: the
    k-th batch to arrive goes to the k-th worker to come free. That costs one service timeout
    per batch (plus a wake-up when a worker sits idle), not a process and a resource request
    per batch, which is what makes a city day's tens of thousands of uploads cheap.
    """

    def __init__(self, config: ClearingConfig, service_s: np.ndarray, arrival_s: np.ndarray):
        self.env = simpy.Environment()
        """The clock and event queue; all times below are read from it."""
        self.outages = _Outages(config.merged_outages_s())
        """When no service may start."""
        self.wakeups = Wakeups(self.env)
        """One shared wake-up per outage end."""
        self.service_s = service_s.tolist()
        """Service time per batch (Python floats: cheaper to index one at a time)."""
        self.order = np.argsort(arrival_s, kind="stable").tolist()
        """Batch indices in arrival order (ties in input order): the queue."""
        self.arrival_s = arrival_s.tolist()
        """Arrival time per batch."""
        self.next = 0
        """Position in `order` of the next batch no worker has taken."""
        self.arrived_s = np.full(service_s.size, np.nan)
        """The arrival per batch: its arrival_s, or the clock when an idle worker woke for it
        (one ulp above at most; see delay_until)."""
        self.start_s = np.full(service_s.size, np.nan)
        """Service start per batch."""
        self.end_s = np.full(service_s.size, np.nan)
        """Service end per batch."""
        for _ in range(config.workers):
            self.env.process(self.worker())

    def worker(self) -> Generator[simpy.Event, None, None]:
        """Serve the oldest batch not yet taken, again and again, until none is left."""
        env = self.env
        while self.next < len(self.order):
            index = self.order[self.next]
            self.next += 1
            arrival_s = self.arrival_s[index]
            if arrival_s > env.now:  # idle until the batch arrives
                yield env.timeout(delay_until(env.now, arrival_s))
                arrival_s = env.now
            self.arrived_s[index] = arrival_s
            # A worker that took a batch holds it through an outage: the batches at the head
            # of the queue are exactly the ones that start when the centre comes back, in
            # the order their workers began waiting.
            while (wake := self._outage_wake()) is not None:
                yield wake
            self.start_s[index] = env.now
            yield env.timeout(self.service_s[index])
            self.end_s[index] = env.now

    def _outage_wake(self) -> simpy.Event | None:
        """None if a service may start now, else the event at which the centre is back up."""
        end_s = self.outages.latest_end_s(self.env.now)
        if end_s is None:
            return None
        if self.env.now < end_s:
            return self.wakeups.until(end_s)
        return self.wakeups.pending(end_s)


def _queue_path(arrival_s: np.ndarray, start_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The number waiting as a step function: +1 at each arrival, -1 at each service start.

    Events at the same instant are netted, and instants where the number did not change (a
    batch that started on arrival) are left out.
    """
    if arrival_s.size == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    times_s = np.concatenate((arrival_s, start_s))
    steps = np.concatenate((np.ones(arrival_s.size, np.int64), -np.ones(start_s.size, np.int64)))
    order = np.argsort(times_s, kind="stable")
    times_s, level = times_s[order], np.cumsum(steps[order])
    last_of_instant = np.flatnonzero(np.append(np.diff(times_s) != 0, True))
    times_s, level = times_s[last_of_instant], level[last_of_instant]
    changed = np.diff(level, prepend=0) != 0
    return times_s[changed], level[changed]


def _check_inputs(arrival_s: np.ndarray, records: np.ndarray, horizon_s: float) -> None:
    """Reject inputs the simulation would silently mis-handle."""
    if arrival_s.ndim != 1 or records.shape != arrival_s.shape:
        raise ValueError("arrival_s and records must be 1-D arrays of the same length")
    if not np.all(np.isfinite(arrival_s)) or np.any(arrival_s < 0):
        raise ValueError("arrival_s must be finite seconds since midnight (>= 0)")
    if records.size and (not np.issubdtype(records.dtype, np.integer) or np.any(records < 0)):
        raise ValueError("records must be non-negative integers")
    if not (horizon_s > 0 and np.isfinite(horizon_s)):
        raise ValueError(f"horizon_s must be finite and > 0, got {horizon_s}")
