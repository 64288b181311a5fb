"""Terminal and network faults: crashes, full buffers, partitions and bad clocks.

Each fault draws from its own sub-stream of the run's seed, spawned under FAULTS_KEY, so that
switching one fault on or off never shifts another's draws, and the world's streams never see
them: with every fault off a run is, byte for byte, what it was before faults existed.

- A crash loses the records a terminal had not uploaded yet, unless its buffer is persisted.
  The terminal's serial counter lives in non-volatile memory, so the records after the crash
  carry higher serials and the clearing centre sees the hole (TERMINAL_SERIAL_GAP).
- A depot terminal (no link until the shift ends) with `refuse_when_full` refuses taps once
  its buffer holds `buffer_records`; it counts taps, including the few the purse then declines.
- A partition cuts a cellular terminal off: its upload attempts fail until the partition ends,
  then the retry lands within one backoff of the end, as after a clearing outage.
- A bad clock drifts, jumps forward, then steps back; only the records' time field changes.
  Uploads, serials and the clearing centre's clock are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.scenario import Faults, Scenario
from cardsim.sim.uploads import Blocked

FAULTS_KEY = 2_000
"""Spawn key of the faults' SeedSequence under the run's seed (the world's streams are the
children 0..len(STREAMS)-1, the reference model uses 1_000)."""
FRAUD_KEY = 2_001
"""Spawn key of the frauds' SeedSequence."""
FAULT_STREAMS = ("buffer", "torn", "crash", "partition", "clock", "repeat", "reorder", "clearing")
"""One sub-stream per fault; the order is part of the determinism contract (append only)."""
DAYTIME_S = (6 * 3600.0, 22 * 3600.0)
"""Crashes, partitions and clock jumps happen while the city is busy."""


def sub_streams(seed: int, key: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    """Independent generators, one per name, from child `key` of the run's SeedSequence."""
    root = np.random.SeedSequence(seed, spawn_key=(key,))
    return {n: np.random.default_rng(s) for n, s in zip(names, root.spawn(len(names)), strict=True)}


@dataclass
class TerminalFaults:
    """What goes wrong with each terminal today (np.inf: never)."""

    crash_s: np.ndarray
    """When the terminal crashes, s after midnight."""
    partition_s: np.ndarray
    """(start_s, end_s) of the terminal's network partition, shape (terminals, 2)."""
    drift: np.ndarray
    """Clock drift as a fraction (50 ppm = 5e-5); 0 for a good clock."""
    jump_at_s: np.ndarray
    jump_s: np.ndarray
    """The clock jumps forward by jump_s at jump_at_s..."""
    step_at_s: np.ndarray
    step_s: np.ndarray
    """...and steps back by step_s at step_at_s (after the jump)."""


def draw_terminal_faults(
    faults: Faults, cellular: np.ndarray, streams: dict[str, np.random.Generator]
) -> TerminalFaults:
    """Which terminals crash, lose their network or keep bad time, and when."""
    n = len(cellular)
    rng = streams["crash"]
    crash = np.where(
        rng.random(n) < faults.terminal_crash_share, rng.uniform(*DAYTIME_S, n), np.inf
    )
    rng = streams["partition"]
    cut = (rng.random(n) < faults.partition_share) & cellular
    start = rng.uniform(*DAYTIME_S, n)
    length = rng.exponential(faults.partition_mean_s, n)
    partition = np.where(cut[:, None], np.c_[start, start + length], np.inf)
    rng = streams["clock"]
    bad = rng.random(n) < faults.clock_skew_share
    drift = rng.uniform(-1.0, 1.0, n) * faults.clock_drift_ppm * 1e-6
    jump_at = rng.uniform(*DAYTIME_S, n)
    jump = rng.uniform(0.0, faults.clock_jump_s, n)
    step_at = rng.uniform(jump_at, 86_400.0)
    step = rng.uniform(0.0, faults.clock_jump_s, n)
    return TerminalFaults(
        crash,
        partition,
        np.where(bad, drift, 0.0),
        np.where(bad, jump_at, np.inf),
        np.where(bad, jump, 0.0),
        np.where(bad, step_at, np.inf),
        np.where(bad, step, 0.0),
    )


def refused_when_full(
    terminal: np.ndarray, time_s: np.ndarray, depot: np.ndarray, scenario: Scenario
) -> np.ndarray:
    """Per tap: refused because its depot terminal already holds a full buffer this shift.

    The buffer empties at each shift-end upload; a tap at exactly a shift end still goes into
    that upload, as in uploads.scheduled_attempt_s.
    """
    refused = np.zeros(len(terminal), bool)
    idx = np.flatnonzero(depot[terminal])
    if len(idx) == 0:
        return refused
    ends = np.array(sorted(scenario.bus.shift_end_s) or [86_400.0])
    slot = np.searchsorted(ends, time_s[idx]).astype(np.int64)
    group = terminal[idx].astype(np.int64) * (len(ends) + 1) + slot
    order = np.lexsort((time_s[idx], group))
    key = group[order]
    first = np.r_[True, key[1:] != key[:-1]]
    rank = np.arange(len(key)) - np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))
    refused[idx[order[rank >= scenario.terminals.buffer_records]]] = True
    return refused


def partition_delay(partition_s: np.ndarray, retry_backoff_s: float) -> Blocked:
    """The uploads hook: an attempt inside its terminal's partition succeeds after it ends."""

    def blocked(
        terminal: np.ndarray, done_s: np.ndarray, failures: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        start, end = partition_s[terminal, 0], partition_s[terminal, 1]
        cut = (done_s >= start) & (done_s < end)
        waited = np.ceil((end[cut] - done_s[cut]) / retry_backoff_s)
        done_s, failures = done_s.copy(), failures.copy()
        done_s[cut] += waited * retry_backoff_s
        failures[cut] += waited.astype(np.int64)
        return done_s, failures

    return blocked


def at_risk_in_crash(
    crash_s: np.ndarray, terminal: np.ndarray, written_s: np.ndarray, uploaded_s: np.ndarray
) -> np.ndarray:
    """Per record: still in its terminal's buffer when the terminal crashed."""
    crash = crash_s[terminal]
    return (written_s < crash) & (uploaded_s > crash)


def clock_offset_ms(f: TerminalFaults, terminal: np.ndarray, written_s: np.ndarray) -> np.ndarray:
    """How far each record's terminal clock is off when it writes the record, whole ms."""
    offset = (
        f.drift[terminal] * written_s
        + np.where(written_s >= f.jump_at_s[terminal], f.jump_s[terminal], 0.0)
        - np.where(written_s >= f.step_at_s[terminal], f.step_s[terminal], 0.0)
    )
    return np.round(offset * 1000.0).astype(np.int64)


def with_crash_downtime(scenario: Scenario) -> Scenario:
    """The scenario as terminals and the clearing front end see it: each clearing crash adds
    its restart time to the outages (uploads fail and retry, no batch is checked)."""
    f = scenario.faults
    windows = tuple((t, t + f.clearing_restart_s) for t in f.clearing_crash_s)
    if not windows:
        return scenario
    clearing = scenario.clearing.model_copy(
        update={"outages_s": scenario.clearing.outages_s + windows}
    )
    return scenario.model_copy(update={"clearing": clearing})
