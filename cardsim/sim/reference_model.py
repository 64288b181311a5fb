"""A slow, obviously-correct reference for the city day's uploads and clearing queue.

The fast model (`city.simulate_day`) plans every upload with numpy (`uploads.plan_uploads`) and
hands SimPy one event per upload batch. This module runs the same day the naive way, one SimPy
process per transaction:

- each record waits until its tap time and is written into its terminal's buffer;
- each terminal makes its scheduled upload attempts: cellular terminals every
  `cellular_interval_s` from a random phase, bus validators at the depot after each shift
  (records after the last shift go up after the next day's first one). An attempt fails with
  `upload_failure_prob`, and always while the clearing centre is down; the terminal then
  retries every `retry_backoff_s`. A successful attempt takes everything in the buffer. A
  buffer that reaches `buffer_records` goes up at once, without an attempt, as in uploads.py;
- the clearing centre is a `simpy.Resource` with `clearing.workers` servers; a batch takes
  `batch_service_s + record_service_s * records` (exponential with that mean if
  `exponential_service`), first come first served, and no service starts inside an outage.

The demand and the purse decisions are the fast model's own (the same records, byte for byte),
so the two models see the same transactions. The upload and clearing draws come from the
reference's own streams, so the two agree only statistically, never draw for draw.

Where the rules differ from the fast model's on purpose (each is the plainer reading of the
terminal; tests/test_reference_model.py shows the KPIs agree all the same):
- a successful retry takes the records written while it was retrying; uploads.py leaves them
  to the next scheduled attempt, so the reference makes a few fewer batches;
- after an outage, the first retry may fail again at random; uploads.py lets it succeed;
- a terminal retrying through an outage counts its own failed attempts once; uploads.py counts
  the retry chain of each scheduled attempt separately, so it reports more failures;
- uploads at the same instant (a depot's shift end) reach the centre in the order the
  terminals began waiting for that attempt; the fast model orders them by terminal id.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from cardsim.scenario import Scenario
from cardsim.sim.city import decide_day
from cardsim.sim.clearing import delay_until
from cardsim.sim.queueing import batch_means, mean_ci95
from cardsim.sim.world import DAY_START_MS, World

DAY_S = 86_400.0
REFERENCE_SPAWN_KEY = 1_000
"""Spawn key of the reference's own SeedSequence under the run's seed. The world's streams are
the children 0..len(STREAMS)-1 of the same seed; a key far above them keeps the reference's
draws independent of the fast model's, even when STREAMS grows."""
WAIT_BATCHES = 20
"""Batch means used for the mean wait, as in kpis.py."""

Process = Generator[simpy.Event, None, None]


@dataclass
class ReferenceDay:
    """What the reference run produces: per record, per batch, and centre-wide measures."""

    tap_time_s: np.ndarray
    """Per record: when the card was tapped (s after midnight)."""
    terminal: np.ndarray
    """Per record: terminal index."""
    batch_of: np.ndarray
    """Per record: index of the batch that carried it (batches in upload order)."""
    cleared_s: np.ndarray
    """Per record: when its batch's service ended (s after midnight)."""
    batch_terminal: np.ndarray
    """Per batch: terminal index."""
    batch_records: np.ndarray
    """Per batch: number of records."""
    arrival_s: np.ndarray
    """Per batch: when it reached the clearing centre (s)."""
    start_s: np.ndarray
    """Per batch: service start (s)."""
    end_s: np.ndarray
    """Per batch: service end (s)."""
    phase_s: np.ndarray
    """Per terminal: the phase of its cellular schedule (s, in [0, cellular_interval_s))."""
    failed_attempts: int
    """Upload attempts that failed (random failures and attempts during outages)."""
    workers: int
    """Clearing workers."""
    horizon_s: float
    """Denominator of the utilisation: the day, or up to the last arrival if that is later."""
    busy_s: float
    """Worker-seconds of service inside [0, horizon_s]."""

    @property
    def wait_s(self) -> np.ndarray:
        """Per batch: service start minus arrival (s)."""
        return self.start_s - self.arrival_s

    def kpis(self) -> dict[str, Any]:
        """The clearing KPIs (and transactions, batches, failed uploads), named and rounded as
        in `kpis.kpis`."""
        waits = self.wait_s
        if len(waits) >= 2 * WAIT_BATCHES:
            wait_mean = mean_ci95(batch_means(waits, WAIT_BATCHES))[0]
        else:
            wait_mean = float(waits.mean()) if len(waits) else 0.0
        latency = self.cleared_s - self.tap_time_s
        return {
            "transactions_total": len(self.tap_time_s),
            "batches": len(self.arrival_s),
            "upload_failed_attempts": self.failed_attempts,
            "clearing_utilization": round(min(self.busy_s / (self.workers * self.horizon_s), 1), 6),
            "clearing_wait_mean_s": round(float(wait_mean), 6),
            "tap_to_cleared_p50_s": _percentile(latency, 50),
            "tap_to_cleared_p95_s": _percentile(latency, 95),
            "tap_to_cleared_p99_s": _percentile(latency, 99),
        }


def simulate_reference(scenario: Scenario, seed: int) -> ReferenceDay:
    """The city day with one SimPy process per transaction for uploads and clearing."""
    world, records = day_records(scenario, seed)
    tap_time_s = (records["time_ms"] - DAY_START_MS) / 1000.0
    terminal = records["terminal_id"].astype(np.int64) - 1
    return run_reference(tap_time_s, terminal, world.terminals.cellular, scenario, seed)


def day_records(scenario: Scenario, seed: int) -> tuple[World, np.ndarray]:
    """The world and the records `simulate_day` builds for this scenario and seed."""
    decided = decide_day(scenario, seed)
    return decided.world, decided.records


def run_reference(
    tap_time_s: np.ndarray,
    terminal: np.ndarray,
    cellular: np.ndarray,
    scenario: Scenario,
    seed: int,
) -> ReferenceDay:
    """Upload and clear the given records, one process per record, terminal and batch.

    `tap_time_s` (s after midnight, >= 0) and `terminal` (index into `cellular`) are per
    record, in any order; `cellular` says per terminal whether it uploads over cellular or at
    the depot. Random draws come from streams spawned from `seed` (see REFERENCE_SPAWN_KEY).
    """
    if scenario.terminals.upload_failure_prob >= 1.0:
        raise ValueError("upload_failure_prob must be < 1: no upload would ever succeed")
    root = np.random.SeedSequence(seed, spawn_key=(REFERENCE_SPAWN_KEY,))
    phase_rng, upload_rng, service_rng = (np.random.default_rng(s) for s in root.spawn(3))
    phase_s = phase_rng.random(len(cellular)) * scenario.terminals.cellular_interval_s
    model = _Model(
        scenario,
        np.asarray(tap_time_s, np.float64),
        np.asarray(terminal, np.int64),
        np.asarray(cellular, bool),
        phase_s,
        (upload_rng, service_rng),
    )
    model.run()
    return model.result()


class _Model:
    """One reference run: the environment, the terminals' buffers, the batches it makes."""

    def __init__(
        self,
        scenario: Scenario,
        tap_time_s: np.ndarray,
        terminal: np.ndarray,
        cellular: np.ndarray,
        phase_s: np.ndarray,
        rngs: tuple[np.random.Generator, np.random.Generator],
    ) -> None:
        self.scenario = scenario
        """Upload rules and clearing parameters."""
        self.env = simpy.Environment()
        """The one clock every process reads."""
        self.workers = simpy.Resource(self.env, capacity=scenario.clearing.workers)
        """The clearing centre's identical workers, granted first come, first served."""
        self.upload_rng, self.service_rng = rngs
        """Draws for failed attempts, and for exponential service times."""
        self.tap_time_s, self.terminal = tap_time_s.tolist(), terminal.tolist()
        """Per record (Python lists: cheaper to index one at a time)."""
        self.cellular, self.phase_s = cellular, phase_s
        """Per terminal: uploads over cellular, and the phase of its schedule (s)."""
        self.buffers: list[list[int]] = [[] for _ in range(len(cellular))]
        """Per terminal: records written and not yet uploaded, oldest first."""
        self.waiting: list[simpy.Event | None] = [None] * len(cellular)
        """Per terminal: the event its process sleeps on while its buffer is empty."""
        self.batches: list[tuple[int, list[int], float]] = []
        """Per batch: (terminal, records, arrival at the centre in s), in upload order."""
        self.start_s: list[float] = []
        """Per batch: service start (s)."""
        self.end_s: list[float] = []
        """Per batch: service end (s)."""
        self.failed_attempts = 0
        """Upload attempts that failed."""

    def run(self) -> None:
        """Start every process at time 0 and run until the last batch is cleared."""
        for index, (tap_s, where) in enumerate(zip(self.tap_time_s, self.terminal, strict=True)):
            self.env.process(self.record(index, where, tap_s))
        for where in range(len(self.buffers)):
            self.env.process(self.terminal_uploads(where))
        self.env.run()

    def record(self, index: int, where: int, tap_s: float) -> Process:
        """One transaction: at its tap time, written into its terminal's buffer."""
        yield self.env.timeout(tap_s)
        buffer = self.buffers[where]
        buffer.append(index)
        if len(buffer) >= self.scenario.terminals.buffer_records:
            # The buffer is full: it goes up now rather than overwrite a record.
            self.upload(where)
        elif (sleeping := self.waiting[where]) is not None:
            self.waiting[where] = None
            sleeping.succeed()

    def terminal_uploads(self, where: int) -> Process:
        """One terminal: at each scheduled attempt with records waiting, upload (retrying)."""
        env, buffer = self.env, self.buffers[where]
        backoff_s = self.scenario.terminals.retry_backoff_s
        while True:
            if not buffer:
                # Sleeping until a record arrives costs one event, not one per empty slot.
                self.waiting[where] = arrived = env.event()
                yield arrived
                # A full buffer may have gone up at its high-water mark meanwhile: look again.
                continue
            due_s = self.next_attempt_s(where, self.tap_time_s[buffer[0]])
            yield env.timeout(delay_until(env.now, due_s))
            while buffer and self.attempt_fails():
                self.failed_attempts += 1
                yield env.timeout(backoff_s)
            if buffer:
                self.upload(where)

    def next_attempt_s(self, where: int, written_s: float) -> float:
        """The first scheduled attempt at or after `written_s` on this terminal (s)."""
        if self.cellular[where]:
            interval_s = self.scenario.terminals.cellular_interval_s
            phase_s = float(self.phase_s[where])
            return phase_s + float(np.ceil((written_s - phase_s) / interval_s)) * interval_s
        ends_s = sorted(self.scenario.bus.shift_end_s) or [DAY_S]
        ends_s = ends_s + [end_s + DAY_S for end_s in ends_s]
        return next((end_s for end_s in ends_s if end_s >= written_s), ends_s[-1])

    def attempt_fails(self) -> bool:
        """Whether an upload attempt now fails: always during an outage, else at random."""
        if self.outage_end_s(self.env.now) is not None:
            return True
        return bool(self.upload_rng.random() < self.scenario.terminals.upload_failure_prob)

    def outage_end_s(self, t_s: float) -> float | None:
        """The end of an outage window [start, end) holding t_s, or None if the centre is up."""
        for start_s, end_s in self.scenario.clearing.outages_s:
            if start_s <= t_s < end_s:
                return end_s
        return None

    def upload(self, where: int) -> None:
        """Send the whole buffer to the clearing centre as one batch, arriving now."""
        records = self.buffers[where][:]
        self.buffers[where].clear()
        self.batches.append((where, records, self.env.now))
        self.start_s.append(np.nan)
        self.end_s.append(np.nan)
        self.env.process(self.clear(len(self.batches) - 1))

    def clear(self, batch: int) -> Process:
        """One batch at the centre: wait for a worker, wait out any outage, be served."""
        env, clearing = self.env, self.scenario.clearing
        service_s = clearing.batch_service_s + clearing.record_service_s * len(
            self.batches[batch][1]
        )
        with self.workers.request() as request:
            yield request
            # The worker is held through an outage, so the queue keeps its order.
            while (back_s := self.outage_end_s(env.now)) is not None:
                yield env.timeout(delay_until(env.now, back_s))
            self.start_s[batch] = env.now
            if clearing.exponential_service:
                service_s *= self.service_rng.standard_exponential()
            yield env.timeout(service_s)
            self.end_s[batch] = env.now

    def result(self) -> ReferenceDay:
        """The run's per-record and per-batch arrays and its utilisation."""
        n = len(self.tap_time_s)
        batch_of = np.full(n, -1, np.int64)
        for batch, (_, records, _) in enumerate(self.batches):
            batch_of[records] = batch
        arrival_s = np.array([arrived for *_, arrived in self.batches], np.float64)
        start_s, end_s = np.array(self.start_s, np.float64), np.array(self.end_s, np.float64)
        horizon_s = max(DAY_S, float(arrival_s.max(initial=0.0)))
        busy_s = float(np.sum(np.clip(end_s, 0, horizon_s) - np.clip(start_s, 0, horizon_s)))
        return ReferenceDay(
            tap_time_s=np.array(self.tap_time_s, np.float64),
            terminal=np.array(self.terminal, np.int64),
            batch_of=batch_of,
            cleared_s=end_s[batch_of] if n else np.empty(0),
            batch_terminal=np.array([where for where, *_ in self.batches], np.int64),
            batch_records=np.array([len(records) for _, records, _ in self.batches], np.int64),
            arrival_s=arrival_s,
            start_s=start_s,
            end_s=end_s,
            phase_s=self.phase_s,
            failed_attempts=self.failed_attempts,
            workers=self.scenario.clearing.workers,
            horizon_s=horizon_s,
            busy_s=busy_s,
        )


def _percentile(values: np.ndarray, q: float) -> float | None:
    """The q-th percentile of the finite values, rounded to ms as in kpis.py; None if none."""
    finite = values[np.isfinite(values)]
    return round(float(np.percentile(finite, q)), 3) if len(finite) else None
