"""The fast settlement kernel: verify -> dedupe -> counters -> book -> net, all in numpy.

Pure: no simulation, no clock; the cut-off is an argument. Work per record is vectorized over
whole chunks; Python loops run once per batch or once per alert, never once per record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cardsim.records.batch import header_array, signature_ok
from cardsim.records.keys import KeyRegistry
from cardsim.records.log import LogReader, RecordLog
from cardsim.settlement.batches import UNSEEN, chain_alerts, duplicate_candidates, pre_status
from cardsim.settlement.cards import counter_alerts
from cardsim.settlement.chunk import BatchPlan, Columns, process_chunk
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.identity import batch_ordered_rows, drop_repeats, serial_gaps
from cardsim.settlement.positions import net_positions
from cardsim.settlement.reasons import Alert, Reason
from cardsim.settlement.result import Settlement, make_alerts
from cardsim.settlement.source import ChunkSource, as_source

Progress = Callable[[int], None]
"""Called with the number of records just finished."""


def settle(
    log: LogReader | RecordLog,
    registry: KeyRegistry,
    fees: FeeSchedule | None = None,
    cutoff_ms: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> Settlement:
    """Settle one log: every record ends booked, rejected with a Reason, or pending.

    Batches uploaded after `cutoff_ms` (clearing-centre clock, ms) are pending. `workers`
    threads share the chunk pass.
    """
    source = as_source(log)
    batches = source.batches
    headers = header_array(batches)
    candidate = duplicate_candidates(batches, headers)
    pre = pre_status(batches, registry, cutoff_ms)
    plan = BatchPlan(batches, headers, (candidate == UNSEEN) & (pre == 0), registry)
    cols = Columns(source.rows, len(batches))
    _chunk_pass(source, plan, cols, workers, progress)
    _hash_empty_batches(headers, cols)
    status = _batch_status(plan, candidate, pre, cols)
    batch_row = _batch_row_of_each_record(cols, source.rows)
    outcome = status[batch_row]
    outcome[outcome == 0] = cols.status[outcome == 0]
    accepted = status == 0
    ordered = batch_ordered_rows(cols, batches, accepted)
    booked, alerts = drop_repeats(cols, outcome, ordered, batch_row)
    alerts += _batch_reject_alerts(batches, status)
    alerts += _forged(cols, outcome, batch_row)
    alerts += chain_alerts(batches, accepted, cols.digest)
    alerts += serial_gaps(cols, ordered)
    alerts += counter_alerts(cols, booked, batch_row)
    positions = net_positions(
        cols.payee[booked],
        cols.kind[booked],
        cols.domain[booked],
        cols.amount[booked],
        fees or FeeSchedule(),
    )
    return Settlement(outcome, booked, make_alerts(alerts), positions)


def _chunk_pass(
    source: ChunkSource, plan: BatchPlan, cols: Columns, workers: int, progress: Progress | None
) -> None:
    if workers <= 1:
        for chunk in source.chunks:
            done = process_chunk(source, chunk, plan, cols)
            if progress:
                progress(done)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(process_chunk, source, c, plan, cols) for c in source.chunks]
        for future in futures:
            done = future.result()
            if progress:
                progress(done)


def _hash_empty_batches(headers: np.ndarray, cols: Columns) -> None:
    for b in np.flatnonzero(cols.length == 0).tolist():
        cols.digest[b] = np.frombuffer(hashlib.sha256(headers[b].tobytes()).digest(), np.uint8)


def _batch_status(
    plan: BatchPlan, candidate: np.ndarray, pre: np.ndarray, cols: Columns
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
        if signature_ok(key, plan.batches["signature"][b].tobytes(), digest):
            # One Ed25519 signature valid for two different messages would be a forgery.
            raise AssertionError(f"batch {b}: signature verifies for two different digests")
        status[b] = Reason.BAD_SIGNATURE
    return status


def _batch_row_of_each_record(cols: Columns, rows: int) -> np.ndarray:
    present = np.flatnonzero(cols.length > 0)
    batch_row = np.repeat(present, cols.length[present])
    if len(batch_row) != rows:
        raise AssertionError("chunk pass did not cover every record")
    return batch_row


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


def _forged(cols: Columns, outcome: np.ndarray, batch_row: np.ndarray) -> list[tuple]:
    rows = np.flatnonzero(outcome == Reason.BAD_TAC)
    rid = cols.rid[rows]
    tid, serial = rid >> np.uint64(32), rid & np.uint64(0xFFFFFFFF)
    return [
        (Alert.FORGED_RECORD, t, c, s, s, b, r)
        for t, c, s, b, r in zip(
            tid.tolist(),
            cols.card_id[rows].tolist(),
            serial.tolist(),
            batch_row[rows].tolist(),
            rows.tolist(),
            strict=True,
        )
    ]
