"""The per-chunk pass: hash and verify each batch, check and TAC-verify every record.

A chunk holds whole batches, so chunks are independent and run on worker threads: hashing,
Ed25519 verification and the numpy SipHash all release the GIL. Each chunk writes only its own
rows and its own batches of the shared output arrays.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cardsim.records.batch import signature_ok
from cardsim.records.codes import FIRST_PAYEE, Domain, Kind
from cardsim.records.keys import TAC_FIELDS, KeyRegistry, compute_tacs
from cardsim.records.layout import HEADER_SIZE, KNOWN_FLAGS, MAX_AMOUNT_FEN, RECORD_SIZE
from cardsim.records.log import Chunk
from cardsim.settlement.grouping import Sums, merge_sums
from cardsim.settlement.identity import gap_alerts
from cardsim.settlement.positions import flow_sums
from cardsim.settlement.reasons import Reason
from cardsim.settlement.sorting import sort_keys
from cardsim.settlement.source import ChunkSource


class BatchPlan:
    """What the batch pre-pass decided, read by every chunk, with per-batch values unpacked
    once so that the per-batch loop does no numpy indexing."""

    def __init__(
        self, batches: np.ndarray, headers: np.ndarray, verify: np.ndarray, registry: KeyRegistry
    ) -> None:
        self.batches = batches
        self.headers = _rows_as_bytes(headers.view(np.uint8).reshape(len(headers), HEADER_SIZE))
        self.verify = verify
        """bool per batch: verify its signature (not a repeat candidate, not pending, key ok)."""
        self.registry = registry
        self.signatures = _rows_as_bytes(batches["signature"])
        self._key_ids = batches["key_id"].tolist()
        self._verify = verify.tolist()

    def key(self, b: int) -> Ed25519PublicKey | None:
        """The public key to verify batch b with, or None if its signature is not checked now.

        Loaded on the worker threads as their batches come, not all up front: the serial part
        of a settlement is what limits its speed-up on more threads.
        """
        return self.registry.public_key(self._key_ids[b]) if self._verify[b] else None


def _rows_as_bytes(rows: np.ndarray) -> list[bytes]:
    """Each row of a 2-d uint8 array as bytes (sliced from one bytes object: fast)."""
    width = rows.shape[1]
    blob = np.ascontiguousarray(rows).tobytes()
    return [blob[i : i + width] for i in range(0, len(blob), width)]


class LogState:
    """What the kernel keeps for the whole log: one status byte per record, and per batch its
    digest, checks and place in the log."""

    def __init__(self, rows: int, n_batches: int) -> None:
        self.status = np.zeros(rows, np.uint8)
        """Record-level outcome so far: 0, MALFORMED_RECORD or BAD_TAC."""
        self.digest = np.zeros((n_batches, 32), np.uint8)
        self.structure_ok = np.zeros(n_batches, bool)
        self.signature_ok = np.zeros(n_batches, bool)
        self.start = np.full(n_batches, -1, np.int64)
        self.length = np.zeros(n_batches, np.int64)


Fields = Mapping[str, np.ndarray]
"""Record fields by name: contiguous columns, or views into a record array."""


@dataclass
class ChunkResult:
    """What one chunk hands to the global phase besides its rows of `LogState`."""

    rows: int
    flows: Sums
    """Amounts of the chunk's bookable records summed per (payee, kind, domain)."""
    card_keys: np.ndarray | None
    """card_id << 32 | card_counter of the bookable records, in row order (the card pass sorts
    all chunks' keys at once); None if a card id is >= 2^32."""
    inner_gaps: list[tuple[int, ...]]
    """TERMINAL_SERIAL_GAP alerts for serials skipped inside accepted batches."""


def process_chunk(source: ChunkSource, chunk: Chunk, plan: BatchPlan, out: LogState) -> ChunkResult:
    """Run the chunk pass over one chunk, writing its rows and batches into `out`."""
    records, batch_row, columns = source.read_chunk_columns(chunk)
    return process_rows(records, batch_row, columns, chunk.first_row, plan, out)


def process_rows(
    records: np.ndarray,
    batch_row: np.ndarray,
    columns: Fields,
    first_row: int,
    plan: BatchPlan,
    out: LogState,
) -> ChunkResult:
    """The chunk pass over consecutive log rows from `first_row` that hold whole batches."""
    n = len(records)
    if n == 0:
        return ChunkResult(0, flow_sums(*(np.empty(0, np.uint32),) * 4), None, [])
    starts = np.flatnonzero(np.r_[True, batch_row[1:] != batch_row[:-1]])
    ends = np.r_[starts[1:], n]
    bids = batch_row[starts]
    out.start[bids] = starts + first_row
    out.length[bids] = ends - starts
    structure = _structure_ok(columns, batch_row, starts, ends, plan.batches)
    out.structure_ok[bids] = structure
    _hash_and_verify(records, bids, starts, ends, structure, plan, out)
    return check_records(
        records,
        columns,
        batch_row,
        out.signature_ok[batch_row],
        first_row,
        plan.registry.master_key,
        out,
    )


ROW_COST = 1
"""Relative cost of a record in the chunk pass (read, checks, TAC): about 0.4 us here."""
BATCH_COST = 300
"""Relative cost of a batch (hash set-up and one Ed25519 verification): about 110 us here."""


def part_bounds(batch_row: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Split a chunk's rows into `parts` runs [start, stop) of whole batches, of about equal
    cost (some may be empty).

    Cost counts batches as well as rows, so that a chunk of many small batches, whose time
    goes to signature checks, splits as evenly as one of a few large batches.
    """
    n = len(batch_row)
    if n == 0 or parts == 1:
        return [(0, n)] + [(n, n)] * (parts - 1)
    starts = np.flatnonzero(np.r_[True, batch_row[1:] != batch_row[:-1]])
    cost_before = starts * ROW_COST + np.arange(len(starts)) * BATCH_COST
    total = n * ROW_COST + len(starts) * BATCH_COST
    first = np.searchsorted(cost_before, total * np.arange(1, parts) // parts)
    cuts = np.where(first < len(starts), starts[np.minimum(first, len(starts) - 1)], n)
    bounds = [0, *cuts.tolist(), n]
    return list(itertools.pairwise(bounds))


class SharedRead:
    """One chunk, read once for all of its parts, which run as separate tasks: the first part
    to start reads it, the last to finish lets it go."""

    def __init__(self, source: ChunkSource, chunk: Chunk, parts: int) -> None:
        self._source, self._chunk, self._parts = source, chunk, parts
        self._lock = threading.Lock()
        self._data: tuple[np.ndarray, np.ndarray, Fields] | None = None
        self._bounds: list[tuple[int, int]] = []
        self._left = parts

    def process_part(self, p: int, plan: BatchPlan, out: LogState) -> ChunkResult:
        """The chunk pass over part p of the chunk (see `part_bounds`)."""
        with self._lock:
            if self._data is None:
                self._data = self._source.read_chunk_columns(self._chunk)
                self._bounds = part_bounds(self._data[1], self._parts)
            records, batch_row, columns = self._data
            start, stop = self._bounds[p]
        try:
            return process_rows(
                records[start:stop],
                batch_row[start:stop],
                {name: column[start:stop] for name, column in columns.items()},
                self._chunk.first_row + start,
                plan,
                out,
            )
        finally:
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._data = None


def merge_parts(parts: list[ChunkResult]) -> ChunkResult:
    """One chunk's result from the results of its parts, in row order."""
    if len(parts) == 1:
        return parts[0]
    runs = [p.card_keys for p in parts if p.rows]
    keys = [k for k in runs if k is not None]
    return ChunkResult(
        sum(p.rows for p in parts),
        merge_sums([p.flows for p in parts]),
        np.concatenate(keys) if keys and len(keys) == len(runs) else None,
        [gap for p in parts for gap in p.inner_gaps],
    )


def check_records(
    records: np.ndarray,
    columns: Fields,
    batch_row: np.ndarray,
    in_good_batch: np.ndarray,
    first_row: int,
    master_key: bytes,
    out: LogState,
) -> ChunkResult:
    """Field and TAC checks on the records of good batches; their flows, card keys and gaps.

    `records` are consecutive log rows starting at `first_row`; `columns` holds the same
    fields as arrays (contiguous ones are faster to scan than the 64-byte records).
    """
    n = len(records)
    status = _record_status(records, columns, in_good_batch, master_key)
    out.status[first_row : first_row + n] = status
    bookable = in_good_batch & (status == 0)
    everything = bool(bookable.all())

    def ok(name: str) -> np.ndarray:
        return columns[name] if everything else columns[name][bookable]

    return ChunkResult(
        n,
        flow_sums(ok("payee"), ok("kind"), ok("domain"), ok("amount_fen")),
        _card_key_run(ok("card_id"), ok("card_counter")),
        _inner_gaps(columns, batch_row, in_good_batch),
    )


def _hash_and_verify(
    records: np.ndarray,
    bids: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    structure: np.ndarray,
    plan: BatchPlan,
    out: LogState,
) -> None:
    """Digest every batch of the chunk; verify the signature of those the plan says to.

    The digest is `batch_digest`, written out over one memoryview of the chunk's bytes:
    slicing it costs far less per batch than making a numpy view of each batch's records.
    """
    raw = np.ascontiguousarray(records).view(np.uint8).data
    # Names bound once and one result array written at the end: this loop runs under the GIL
    # between the hashing and verifying that release it, so other threads wait on its steps.
    sha256, headers, key_of = hashlib.sha256, plan.headers, plan.key
    digests: list[bytes] = []
    checked: list[int] = []
    verdicts: list[bool] = []
    for b, s, e, ok in zip(
        bids.tolist(),
        (starts * RECORD_SIZE).tolist(),
        (ends * RECORD_SIZE).tolist(),
        structure.tolist(),
        strict=True,
    ):
        h = sha256(headers[b])
        h.update(raw[s:e])
        digest = h.digest()
        digests.append(digest)
        key = key_of(b) if ok else None
        if key is not None:
            checked.append(b)
            verdicts.append(signature_ok(key, plan.signatures[b], digest))
    out.signature_ok[checked] = verdicts
    out.digest[bids] = np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 32)


def _card_keys(card: np.ndarray, counter: np.ndarray) -> np.ndarray | None:
    """Sorted card_id << 32 | card_counter keys; None if a card id is >= 2^32."""
    key = _card_key_run(card, counter)
    return None if key is None else sort_keys(key)


def _card_key_run(card: np.ndarray, counter: np.ndarray) -> np.ndarray | None:
    """card_id << 32 | card_counter per record, unsorted; None if a card id is >= 2^32."""
    if len(card) and int(card.max()) >= 2**32:
        return None
    key = card << np.uint64(32)
    key |= counter
    return key


def _inner_gaps(
    columns: Fields, batch_row: np.ndarray, in_good_batch: np.ndarray
) -> list[tuple[int, ...]]:
    serial = columns["terminal_serial"]
    # uint32 steps: exact where serials ascend, which accepted batches guarantee.
    step = np.subtract(serial[1:], serial[:-1])
    jump = np.flatnonzero((step > 1) & (batch_row[1:] == batch_row[:-1]) & in_good_batch[1:])
    return gap_alerts(columns["terminal_id"][jump], serial[jump], serial[jump + 1])


def _structure_ok(
    records: Fields,
    batch_row: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    batches: np.ndarray,
) -> np.ndarray:
    """Per batch of the chunk: do header and records agree (count, terminal, serial order)?"""
    bids = batch_row[starts]
    serial = records["terminal_serial"]
    bad_row = records["terminal_id"] != batches["terminal_id"][batch_row]
    bad_row[1:] |= (serial[1:] <= serial[:-1]) & (batch_row[1:] == batch_row[:-1])
    return (
        ((ends - starts) == batches["record_count"][bids])
        & ~np.logical_or.reduceat(bad_row, starts)
        & (serial[starts] == batches["first_serial"][bids])
        & (serial[ends - 1] == batches["last_serial"][bids])
    )


def malformed(records: Fields | np.ndarray) -> np.ndarray:
    """Rows with a field outside what docs/record-format.md allows."""
    amount, balance = records["amount_fen"], records["balance_after_fen"]
    return ~(
        (records["domain"] >= min(Domain))
        & (records["domain"] <= max(Domain))
        & (records["kind"] >= min(Kind))
        & (records["kind"] <= max(Kind))
        & ((records["flags"] & ~np.uint16(KNOWN_FLAGS)) == 0)
        & (records["reserved"] == 0)
        & (amount >= 0)
        & (amount <= MAX_AMOUNT_FEN)
        & (balance >= 0)
        & (balance <= MAX_AMOUNT_FEN)
        & (records["payee"] >= FIRST_PAYEE)
        & (records["card_id"] >= 1)
    )


def _record_status(
    records: np.ndarray, columns: Fields, in_good_batch: np.ndarray, master_key: bytes
) -> np.ndarray:
    status = np.zeros(len(records), np.uint8)
    bad_form = malformed(columns)
    status[in_good_batch & bad_form] = Reason.MALFORMED_RECORD
    check = in_good_batch & ~bad_form
    if check.all():
        forged = compute_tacs(master_key, columns) != columns["tac"]
        status[forged] = Reason.BAD_TAC
    elif check.any():
        idx = np.flatnonzero(check)
        picked = {name: columns[name][idx] for name in TAC_FIELDS}
        forged = compute_tacs(master_key, picked) != columns["tac"][idx]
        status[idx[forged]] = Reason.BAD_TAC
    return status
