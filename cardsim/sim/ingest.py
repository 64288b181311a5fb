"""The clearing centre's intake under faults: repeated and reordered uploads, and crashes in
the middle of checking batches, with the journal replayed on restart.

Journal semantics. The front end checks a batch, appends it whole to its journal (with the
batch digest and a checksum) and only then acknowledges it. A crash leaves three kinds of
batches behind:

- journaled and acknowledged: safe; the restart replays the journal and redoes nothing;
- journaled within `ack_loss_s` of the crash, acknowledgement lost: the terminal sends the same
  bytes again, and the replayed journal knows the digest, so the copy is a DUPLICATE_BATCH;
- being checked at the crash: the partial journal entry fails its checksum and is dropped on
  replay; the terminal was never acknowledged, so it sends the batch again after the restart.

The log a run writes is that journal (each upload as it was finally received), so every batch
accepted before a crash is booked exactly once: none is lost, none is counted twice. The queue
serves every attempt, aborted ones included, so the workers' time before a crash is what it was.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from cardsim.records.log import RecordLog
from cardsim.scenario import Scenario
from cardsim.sim.clearing import ClearingConfig, ClearingResult, simulate_clearing
from cardsim.sim.world import DAY_START_MS

DAY_S = 86_400.0


def batch_rows(batch_row: np.ndarray, n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    """First log row and record count of each batch (records are grouped by batch)."""
    count = np.bincount(batch_row, minlength=n_batches).astype(np.int64)
    return np.cumsum(count) - count, count


def arrange(
    log: RecordLog, rows: np.ndarray, source: np.ndarray, uploaded_ms: np.ndarray
) -> tuple[RecordLog, np.ndarray]:
    """A new log of uploads: copies of `log`'s batches `source` (repeats allowed) received at
    `uploaded_ms`, in arrival order (ties: terminal id, then the order given). `rows` maps log
    rows to whatever they came from, and is carried along."""
    order = np.lexsort((np.arange(len(source)), log.batches["terminal_id"][source], uploaded_ms))
    src = np.asarray(source, np.int64)[order]
    first, count = batch_rows(log.batch_row, len(log.batches))
    lengths = count[src]
    offsets = np.cumsum(lengths) - lengths
    take = np.repeat(first[src] - offsets, lengths) + np.arange(int(lengths.sum()))
    batches = log.batches[src].copy()
    batches["uploaded_ms"] = np.asarray(uploaded_ms, np.int64)[order]
    batch_row = np.repeat(np.arange(len(src)), lengths)
    return RecordLog(log.records[take], batch_row, batches), rows[take]


@dataclass
class CrashReport:
    """What the clearing centre's crashes did to which uploads (rows of the final log)."""

    aborted: list[tuple[int, int, float]] = field(default_factory=list)
    """(terminal_id, batch_serial, crash_s): checks cut short; the batch came again."""
    ack_lost: list[tuple[int, int, float]] = field(default_factory=list)
    """(terminal_id, batch_serial, crash_s): journaled, acknowledgement lost, sent again."""


def replay_crashes(
    log: RecordLog,
    rows: np.ndarray,
    scenario: Scenario,
    config: ClearingConfig,
    rng: np.random.Generator,
    retry_rng: np.random.Generator,
) -> tuple[RecordLog, np.ndarray, ClearingResult, np.ndarray, CrashReport]:
    """Every crash of `scenario.faults`, earliest first: the journal as a log, the front end's
    queue over every attempt, when each journal row was cleared, and what happened.

    The queue serves attempts, the journal keeps those that were not cut short. An aborted
    attempt keeps its place and its worker until the crash (the outage then lets it run out,
    inside the downtime, so the schedule before the crash never changes). `config` must count
    each restart as an outage. Crashes are simulated on copies of `rng`; the final queue draws
    from `rng` itself, as a day without crashes would.
    """
    f = scenario.faults
    n = len(log.batches)
    source, at = np.arange(n), log.batches["uploaded_ms"].copy()
    aborted = np.zeros(n, bool)
    report = CrashReport()
    backoff_s = scenario.terminals.retry_backoff_s
    for crash_s in sorted(f.clearing_crash_s):
        source, at, aborted = _in_order(log, source, at, aborted)
        result = _queue(at, log.batches["record_count"][source], config, copy.deepcopy(rng))
        hit = np.flatnonzero(~aborted & (result.start_s < crash_s) & (result.end_s > crash_s))
        ended = ~aborted & (result.end_s <= crash_s) & (result.end_s > crash_s - f.ack_loss_s)
        acked = np.flatnonzero(ended)
        report.aborted += _names(log, source[hit], crash_s)
        report.ack_lost += _names(log, source[acked], crash_s)
        aborted[hit] = True
        again = np.r_[hit, acked]
        back_s = crash_s + f.clearing_restart_s
        source = np.r_[source, source[again]]
        at = np.r_[at, _retry_ms(back_s, backoff_s, len(again), retry_rng)]
        aborted = np.r_[aborted, np.zeros(len(again), bool)]
    source, at, aborted = _in_order(log, source, at, aborted)
    result = _queue(at, log.batches["record_count"][source], config, rng)
    journal = np.flatnonzero(~aborted)
    log, rows = arrange(log, rows, source[journal], at[journal])
    return log, rows, result, result.end_s[journal][log.batch_row], report


def _in_order(
    log: RecordLog, source: np.ndarray, at: np.ndarray, aborted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attempts in arrival order, ties by terminal id then as listed (as `arrange` orders)."""
    order = np.lexsort((np.arange(len(source)), log.batches["terminal_id"][source], at))
    return source[order], at[order], aborted[order]


def _queue(
    uploaded_ms: np.ndarray, records: np.ndarray, config: ClearingConfig, rng: np.random.Generator
) -> ClearingResult:
    arrival = (uploaded_ms - DAY_START_MS) / 1000.0
    return simulate_clearing(
        arrival,
        records.astype(np.int64),
        config,
        rng,
        max(DAY_S, float(arrival.max(initial=0.0))),
    )


def _retry_ms(back_s: float, backoff_s: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Terminals retry every backoff: the first retry after the restart lands within one."""
    return DAY_START_MS + np.round((back_s + rng.uniform(0.0, backoff_s, n)) * 1000).astype(
        np.int64
    )


def _names(log: RecordLog, batches: np.ndarray, crash_s: float) -> list[tuple[int, int, float]]:
    b = log.batches[batches]
    return [
        (t, s, crash_s)
        for t, s in zip(b["terminal_id"].tolist(), b["batch_serial"].tolist(), strict=True)
    ]


def repeat_and_reorder(
    log: RecordLog,
    rows: np.ndarray,
    repeat: np.ndarray,
    reorder: np.ndarray,
    retry_backoff_s: float,
) -> tuple[RecordLog, np.ndarray]:
    """Batches `repeat` arrive a second time one backoff later (the same bytes: the terminal
    never saw the acknowledgement); batches `reorder` arrive 1 ms after the terminal's next
    batch (a retry overtaken). Both masks are over `log`'s batches."""
    b = log.batches
    uploaded = b["uploaded_ms"].copy()
    nxt = next_of_terminal(b)
    late = np.flatnonzero(reorder & (nxt >= 0))
    uploaded[late] = b["uploaded_ms"][nxt[late]] + 1
    again = np.flatnonzero(repeat)
    source = np.r_[np.arange(len(b)), again]
    times = np.r_[uploaded, uploaded[again] + round(retry_backoff_s * 1000)]
    return arrange(log, rows, source, times)


def next_of_terminal(batches: np.ndarray) -> np.ndarray:
    """Per batch, the same terminal's batch with the next batch serial, or -1."""
    order = np.lexsort((batches["batch_serial"], batches["terminal_id"]))
    tid = batches["terminal_id"][order]
    nxt = np.full(len(batches), -1, np.int64)
    same = np.flatnonzero(tid[1:] == tid[:-1])
    nxt[order[same]] = order[same + 1]
    return nxt
