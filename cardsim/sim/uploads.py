"""Store-and-forward terminals: when each record reaches the clearing centre, in which batch.

A cellular terminal attempts an upload every `cellular_interval_s` (each terminal with its own
phase); a bus validator at the depot after each shift. An attempt fails with probability
`upload_failure_prob`, and always while the clearing centre is down; the terminal then retries
every `retry_backoff_s` until one succeeds, which is where the recovery burst after an outage
comes from. A successful upload takes everything waiting; a buffer that reaches
`buffer_records` is uploaded at once (its high-water mark) so no record is ever overwritten.
Only attempts that have records waiting are drawn: the work follows the records, not the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cardsim.scenario import Scenario

NEXT_DAY_S = 86_400.0
Blocked = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(terminal, done_s, failures) -> later done_s and more failures: a terminal's own network
trouble (sim/faults.py partitions), applied before the clearing centre's outages."""


@dataclass
class Uploads:
    """Batches of one day: records are grouped by terminal, then by upload."""

    batch_of: np.ndarray
    """Batch index of each record (records sorted by terminal, then time)."""
    terminal: np.ndarray
    """Per batch: terminal index."""
    uploaded_s: np.ndarray
    """Per batch: when it reached the clearing centre (s after the day's midnight)."""
    failed_attempts: int


def first_success_s(
    attempt_s: np.ndarray,
    scenario: Scenario,
    rng: np.random.Generator,
    terminal: np.ndarray | None = None,
    blocked: Blocked | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """When a chain of attempts starting at `attempt_s` first succeeds, and failures on the way.

    `blocked`, given each attempt's `terminal`, delays attempts the terminal cannot make."""
    term, clearing = scenario.terminals, scenario.clearing
    tries = rng.geometric(1.0 - term.upload_failure_prob, len(attempt_s)) - 1
    done = attempt_s + tries * term.retry_backoff_s
    failures = tries.copy()
    if blocked is not None and terminal is not None:
        done, failures = blocked(terminal, done, failures)
    for start, end in sorted(clearing.outages_s):
        down = (done >= start) & (done < end)
        # Retries keep failing until the centre is back; the first one after `end` lands
        # somewhere within one backoff of it.
        waited = np.ceil((end - done[down]) / term.retry_backoff_s)
        failures[down] += waited.astype(np.int64)
        done[down] += waited * term.retry_backoff_s
    return done, failures


def scheduled_attempt_s(
    time_s: np.ndarray,
    terminal: np.ndarray,
    cellular: np.ndarray,
    phase_s: np.ndarray,
    scenario: Scenario,
) -> np.ndarray:
    """The first scheduled attempt at or after each record's time, on its terminal."""
    interval = scenario.terminals.cellular_interval_s
    phase = phase_s[terminal]
    cell = phase + np.ceil((time_s - phase) / interval) * interval
    ends = np.array(sorted(scenario.bus.shift_end_s) or [NEXT_DAY_S], np.float64)
    ends = np.r_[ends, ends + NEXT_DAY_S]
    depot = ends[np.minimum(np.searchsorted(ends, time_s), len(ends) - 1)]
    return np.where(cellular[terminal], cell, depot)


def plan_uploads(
    time_s: np.ndarray,
    terminal: np.ndarray,
    cellular: np.ndarray,
    scenario: Scenario,
    rng: np.random.Generator,
    blocked: Blocked | None = None,
) -> Uploads:
    """Batch every record. Input records must be sorted by (terminal, time). `blocked`: see
    first_success_s."""
    phase = rng.random(len(cellular)) * scenario.terminals.cellular_interval_s
    if len(time_s) == 0:
        return Uploads(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), 0)
    attempt = scheduled_attempt_s(time_s, terminal, cellular, phase, scenario)
    # Sorted input makes each terminal's attempts non-decreasing: slots are runs, no sort.
    slot_of = _runs(terminal, attempt)
    first_of_slot = np.r_[True, slot_of[1:] != slot_of[:-1]]
    slot_terminal = terminal[first_of_slot]
    slot_attempt = attempt[first_of_slot]
    done, failures = first_success_s(slot_attempt, scenario, rng, slot_terminal, blocked)
    # A terminal still retrying when its next attempt is due uploads both lots together, and
    # those attempts belong to the one retry chain already counted.
    offset = slot_terminal * 4 * NEXT_DAY_S
    chained = np.maximum.accumulate(done + offset) - offset
    inside = np.r_[
        False, (slot_terminal[1:] == slot_terminal[:-1]) & (slot_attempt[1:] < chained[:-1])
    ]
    failures[inside] = np.maximum(
        0,
        np.ceil(
            (chained[inside] - np.r_[0.0, chained[:-1]][inside])
            / scenario.terminals.retry_backoff_s
        ),
    ).astype(np.int64)
    done = chained
    upload_s = done[slot_of]
    batch_of = _split_full_buffers(_runs(terminal, upload_s), scenario.terminals.buffer_records)
    first = np.r_[True, batch_of[1:] != batch_of[:-1]] if len(batch_of) else np.empty(0, bool)
    last = np.r_[first[1:], True] if len(batch_of) else first
    uploaded = upload_s[first]
    # A buffer that filled up went out as soon as its last record was written.
    full = np.bincount(batch_of) >= scenario.terminals.buffer_records
    uploaded[full] = np.minimum(uploaded[full], time_s[last][full])
    return Uploads(batch_of, terminal[first], uploaded, int(failures.sum()))


def _runs(terminal: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Run number of each entry, a new run wherever the terminal or the value changes."""
    if len(terminal) == 0:
        return np.empty(0, np.int64)
    change = np.r_[True, (terminal[1:] != terminal[:-1]) | (value[1:] != value[:-1])]
    return np.cumsum(change) - 1


def _split_full_buffers(batch_of: np.ndarray, capacity: int) -> np.ndarray:
    """Cut batches into pieces of at most `capacity` records (in order)."""
    if len(batch_of) == 0:
        return batch_of
    starts = np.r_[0, np.flatnonzero(np.diff(batch_of)) + 1]
    position = np.arange(len(batch_of)) - np.repeat(starts, np.diff(np.r_[starts, len(batch_of)]))
    piece = position // capacity
    return _runs(batch_of, piece)
