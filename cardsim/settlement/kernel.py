"""The fast settlement kernel: verify -> dedupe -> counters -> book -> net, all in numpy.

Pure: no simulation, no clock; the cut-off is an argument. Work per record is vectorized over
whole chunks; Python loops run once per batch or once per alert, never once per record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cardsim.records.batch import header_array, signature_ok
from cardsim.records.keys import KeyRegistry
from cardsim.records.layout import RECORD_FIELDS
from cardsim.records.log import LogReader, RecordLog
from cardsim.settlement.batches import (
    UNSEEN,
    chain_alerts,
    duplicate_candidates,
    pre_status,
    serial_groups,
)
from cardsim.settlement.booked_index import (
    BookedIndex,
    drop_booked_before,
    gaps_after_closed_days,
    gaps_left,
    links_to_closed_days,
)
from cardsim.settlement.cards import counter_alerts
from cardsim.settlement.chunk import (
    BatchPlan,
    ChunkResult,
    LogState,
    SharedRead,
    check_records,
    merge_parts,
    process_chunk,
)
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.grouping import Sums, merge_sums
from cardsim.settlement.identity import disjoint_ranges, drop_repeats, serial_gaps
from cardsim.settlement.journal import ChunkJournal
from cardsim.settlement.positions import flow_sums, net_positions
from cardsim.settlement.reasons import BOOKED, Alert, Reason
from cardsim.settlement.result import Settlement, make_alerts
from cardsim.settlement.source import ChunkSource, as_source, fetch, ranges

Progress = Callable[[int], None]
"""Called with the number of records just finished."""

TASKS_PER_WORKER = 8
"""With several workers, a log of few chunks has its chunks split into parts of whole batches,
so that each thread gets this many tasks at least: with one task a chunk, a small log (or one
of few, small batches, whose time goes to signature checks) would leave threads idle. In a log
of many chunks only the last few are split (each part costs a little: splitting every chunk of
the 10-million-record bench log in two measured slower)."""


def settle(
    log: LogReader | RecordLog | ChunkSource,
    registry: KeyRegistry,
    fees: FeeSchedule | None = None,
    cutoff_ms: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    journal: ChunkJournal | None = None,
    booked_before: BookedIndex | None = None,
) -> Settlement:
    """Settle one log: every record ends booked, rejected with a Reason, or pending.

    Batches uploaded after `cutoff_ms` (clearing-centre clock, ms) are pending. `workers`
    threads share the chunk pass. A `journal` makes each finished chunk durable and replays
    the chunks it already holds; `booked_before` holds the records booked on closed days,
    which are not booked again, and the card counters they spent, which a record booked today
    must not spend again.
    """
    source = as_source(log)
    phase = terminal_phase(source, registry, cutoff_ms, workers, progress, journal, booked_before)
    whole = [run for run in phase.runs or [] if run is not None]
    runs = whole if phase.runs is not None and len(whole) == len(phase.runs) else None
    alerts = phase.alerts + counter_alerts(
        source, phase.outcome, runs, phase.batch_of, registry.master_key, workers, booked_before
    )
    positions = net_positions(phase.flows, fees or FeeSchedule())
    booked = np.flatnonzero(phase.outcome == BOOKED)
    return Settlement(phase.outcome, booked, make_alerts(alerts), positions, phase.digests)


@dataclass
class TerminalPhase:
    """Everything settlement decides terminal by terminal, before the card pass and netting."""

    outcome: np.ndarray
    """Per log row: BOOKED, PENDING or a Reason."""
    alerts: list[tuple]
    """Alert rows of every check except the card pass."""
    flows: Sums
    """Booked amounts per flow key."""
    runs: list[np.ndarray | None] | None
    """Per chunk the booked card keys (None for a chunk that could not make them), or None
    when records were dropped after the chunk pass and the keys must be rebuilt."""
    batch_of: Callable[[np.ndarray], np.ndarray]
    """Log row -> batch row."""
    digests: np.ndarray
    """(batches, 32) uint8: each batch's digest (zeros for a batch refused before reading)."""


def terminal_phase(
    source: ChunkSource,
    registry: KeyRegistry,
    cutoff_ms: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    journal: ChunkJournal | None = None,
    booked_before: BookedIndex | None = None,
) -> TerminalPhase:
    """Signatures, TACs, repeated uploads, record dedupe, serial gaps and batch chains: every
    rule that compares only records of one terminal, so a shard of whole terminals can run it
    alone (settlement/shards.py)."""
    batches = source.batches
    headers = header_array(batches)
    candidate = duplicate_candidates(batches, headers)
    pre = pre_status(batches, registry, cutoff_ms)
    plan = BatchPlan(batches, headers, (candidate == UNSEEN) & (pre == 0), registry)
    cols = LogState(source.rows, len(batches))
    parts = _chunk_pass(source, plan, cols, workers, progress, journal)
    _hash_empty_batches(headers, cols)
    status = _batch_status(plan, candidate, pre, cols)
    parts += _late_batches(source, plan, cols, status, candidate)
    outcome = _outcome(cols, status)
    batch_of = _batch_locator(cols)
    accepted = status == 0
    earlier, alerts = drop_booked_before(
        source, outcome, cols, batches, accepted, batch_of, booked_before
    )
    disjoint, gaps = disjoint_ranges(batches, accepted)
    alerts += gaps + gaps_after_closed_days(batches, accepted, booked_before)
    flows = merge_sums([p.flows for p in parts] + [earlier.negated()])
    runs: list[np.ndarray | None] | None = [p.card_keys for p in parts]
    runs = None if len(earlier.keys) else runs
    if disjoint:
        alerts += [gap for p in parts for gap in p.inner_gaps]
    else:
        gone, conflicts = drop_repeats(source, outcome, batch_of)
        alerts += conflicts + serial_gaps(source, _rows_of(cols, accepted))
        dropped = flow_sums(gone["payee"], gone["kind"], gone["domain"], gone["amount_fen"])
        flows = merge_sums([flows, dropped.negated()])
        runs = None if len(dropped.keys) else runs
    alerts += _batch_reject_alerts(batches, status)
    alerts += _forged(source, outcome, batch_of)
    groups = serial_groups(batches, accepted, cols.digest)
    alerts += chain_alerts(batches, groups, cols.digest)
    alerts += links_to_closed_days(batches, groups, cols.digest, booked_before)
    alerts = gaps_left(alerts, booked_before)
    return TerminalPhase(outcome, alerts, flows, runs, batch_of, cols.digest)


def _chunk_pass(
    source: ChunkSource,
    plan: BatchPlan,
    cols: LogState,
    workers: int,
    progress: Progress | None,
    journal: ChunkJournal | None = None,
) -> list[ChunkResult]:
    """Every chunk's result, in chunk order: replayed from the journal, or computed and then
    committed to it, in chunk order and from the calling thread."""
    results: list[ChunkResult | None] = [None] * len(source.chunks)
    todo = []
    for k, chunk in enumerate(source.chunks):
        results[k] = journal.replay(k, chunk, cols) if journal else None
        if results[k] is None:
            todo.append(k)
        elif progress:
            progress(chunk.rows)

    def finished(k: int, result: ChunkResult) -> None:
        if journal:
            journal.commit(k, source.chunks[k], result, cols)
        results[k] = result
        if progress:
            progress(result.rows)

    if workers <= 1:
        for k in todo:
            finished(k, process_chunk(source, source.chunks[k], plan, cols))
    else:
        _parallel_pass(source, todo, plan, cols, workers, finished)
    return [r for r in results if r is not None]


def _parallel_pass(
    source: ChunkSource,
    todo: list[int],
    plan: BatchPlan,
    cols: LogState,
    workers: int,
    finished: Callable[[int, ChunkResult], None],
) -> None:
    """The chunk pass on `workers` threads, in parts (`chunk_parts`); each chunk's merged
    result goes to `finished` in chunk order, from the calling thread."""
    parts = chunk_parts(len(todo), workers)
    reads = [SharedRead(source, source.chunks[k], n) for k, n in zip(todo, parts, strict=True)]
    # Part p of the i-th chunk is queued just before part 0 of the (i + p * workers)-th, so
    # a thread taking a later part finds its chunk already read rather than waiting on it.
    order = sorted((i + p * workers, i, p) for i, n in enumerate(parts) for p in range(n))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {(i, p): pool.submit(reads[i].process_part, p, plan, cols) for _, i, p in order}
        try:
            for i, k in enumerate(todo):
                done = [futures.pop((i, p)).result() for p in range(parts[i])]
                finished(k, merge_parts(done))
        except BaseException:
            # A bad chunk (or a failed journal commit) ends the pass now, not after the rest.
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def chunk_parts(chunks: int, workers: int) -> list[int]:
    """How many parts each of `chunks` chunks is split into on `workers` threads: enough for
    TASKS_PER_WORKER tasks a thread, and the last 2 * workers chunks in halves at least, so
    that the threads finish together."""
    each = max(1, -(-TASKS_PER_WORKER * workers // max(1, chunks)))
    tail = max(0, chunks - 2 * workers)
    return [each if i < tail else max(each, 2) for i in range(chunks)]


def _hash_empty_batches(headers: np.ndarray, cols: LogState) -> None:
    for b in np.flatnonzero(cols.length == 0).tolist():
        cols.digest[b] = np.frombuffer(hashlib.sha256(headers[b].tobytes()).digest(), np.uint8)


def _batch_status(
    plan: BatchPlan, candidate: np.ndarray, pre: np.ndarray, cols: LogState
) -> np.ndarray:
    """The outcome each batch imposes on its records (0 = accepted, records decide)."""
    status = pre.copy()
    status[(status == 0) & ~cols.structure_ok] = Reason.MALFORMED_BATCH
    status[(status == 0) & plan.verify & ~cols.signature_ok] = Reason.BAD_SIGNATURE
    seen: set[tuple[int, bytes]] = set()
    for b in np.flatnonzero(candidate != UNSEEN).tolist():
        original = int(candidate[b])
        digest = cols.digest[b].tobytes()
        if digest == cols.digest[original].tobytes() or (original, digest) in seen:
            status[b] = Reason.DUPLICATE_BATCH
            continue
        seen.add((original, digest))
        if status[b] != 0:
            continue
        key = plan.registry.public_key(int(plan.batches["key_id"][b]))
        # Usually a corrupted copy of a good batch; but the first upload may have been the
        # corrupted one, and then this later copy is the genuine batch.
        if signature_ok(key, plan.signatures[b], digest):
            cols.signature_ok[b] = True
        else:
            status[b] = Reason.BAD_SIGNATURE
    return status


def _late_batches(
    source: ChunkSource, plan: BatchPlan, cols: LogState, status: np.ndarray, candidate: np.ndarray
) -> list[ChunkResult]:
    """Record checks for repeat candidates that turned out to be genuine (rare)."""
    late = np.flatnonzero((candidate != UNSEEN) & (status == 0) & (cols.length > 0)).tolist()
    results = []
    for b in late:
        first, n = int(cols.start[b]), int(cols.length[b])
        chunk = next(c for c in source.chunks if c.first_row <= first < c.first_row + c.rows)
        records, batch_row = source.read_chunk(chunk)
        part = slice(first - chunk.first_row, first - chunk.first_row + n)
        results.append(
            check_records(
                records[part],
                {name: records[part][name] for name in RECORD_FIELDS},
                batch_row[part],
                np.ones(n, bool),
                first,
                plan.registry.master_key,
                cols,
            )
        )
    return results


def _outcome(cols: LogState, status: np.ndarray) -> np.ndarray:
    """Record-level outcomes, overwritten by the batch outcome wherever a batch was refused."""
    if int(cols.length.sum()) != len(cols.status):
        raise AssertionError("chunk pass did not cover every record")
    outcome = cols.status.copy()
    for b in np.flatnonzero((status != 0) & (cols.length > 0)).tolist():
        outcome[cols.start[b] : cols.start[b] + cols.length[b]] = status[b]
    return outcome


def _batch_locator(cols: LogState) -> Callable[[np.ndarray], np.ndarray]:
    """A function from log rows to their batch rows (batches are stored in ascending order)."""
    present = np.flatnonzero(cols.length > 0)
    starts = cols.start[present]

    def batch_of(rows: np.ndarray) -> np.ndarray:
        return present[np.searchsorted(starts, rows, side="right") - 1]

    return batch_of


def _rows_of(cols: LogState, accepted: np.ndarray) -> np.ndarray:
    """All log rows of the accepted batches."""
    idx = np.flatnonzero(accepted & (cols.length > 0))
    return ranges(cols.start[idx], cols.length[idx])


def _batch_reject_alerts(batches: np.ndarray, status: np.ndarray) -> list[tuple]:
    alerts: list[tuple] = []
    for b in np.flatnonzero(status == Reason.BAD_SIGNATURE).tolist():
        alerts.append(
            (
                Alert.TAMPERED_BATCH,
                int(batches["terminal_id"][b]),
                -1,
                int(batches["first_serial"][b]),
                int(batches["last_serial"][b]),
                b,
                -1,
            )
        )
    for b in np.flatnonzero(status == Reason.REVOKED_KEY).tolist():
        alerts.append((Alert.REVOKED_KEY_USED, int(batches["terminal_id"][b]), -1, -1, -1, b, -1))
    return alerts


def _forged(
    source: ChunkSource, outcome: np.ndarray, batch_of: Callable[[np.ndarray], np.ndarray]
) -> list[tuple]:
    rows = np.flatnonzero(outcome == Reason.BAD_TAC)
    cols = fetch(source, ["terminal_id", "terminal_serial", "card_id"], rows)
    return [
        (Alert.FORGED_RECORD, t, c, s, s, b, r)
        for t, s, c, b, r in zip(
            cols["terminal_id"].tolist(),
            cols["terminal_serial"].tolist(),
            cols["card_id"].tolist(),
            batch_of(rows).tolist(),
            rows.tolist(),
            strict=True,
        )
    ]
