"""The per-chunk pass: hash and verify each batch, check and TAC-verify every record.

A chunk holds whole batches, so chunks are independent and run on worker threads: hashing,
Ed25519 verification and the numpy SipHash all release the GIL. Each chunk writes only its own
rows and its own batches of the shared output arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.records.batch import batch_digest, signature_ok
from cardsim.records.codes import FIRST_PAYEE, Domain, Kind
from cardsim.records.keys import KeyRegistry, compute_tacs
from cardsim.records.layout import KNOWN_FLAGS, MAX_AMOUNT_FEN
from cardsim.records.log import Chunk
from cardsim.settlement.reasons import Reason
from cardsim.settlement.source import ChunkSource


@dataclass
class BatchPlan:
    """What the batch pre-pass decided, read by every chunk."""

    batches: np.ndarray
    headers: np.ndarray
    verify: np.ndarray
    """bool per batch: verify its signature (not a repeat candidate, not pending, key fine)."""
    registry: KeyRegistry


class Columns:
    """The compact per-record and per-batch state kept for the whole log after its chunk pass."""

    def __init__(self, rows: int, n_batches: int) -> None:
        self.rid = np.zeros(rows, np.uint64)
        """terminal_id << 32 | terminal_serial: the record's identity as one sortable key."""
        self.card_id = np.zeros(rows, np.uint64)
        self.counter = np.zeros(rows, np.uint32)
        self.amount = np.zeros(rows, np.int64)
        self.kind = np.zeros(rows, np.uint8)
        self.domain = np.zeros(rows, np.uint8)
        self.payee = np.zeros(rows, np.uint32)
        self.tac = np.zeros(rows, np.uint64)
        self.status = np.zeros(rows, np.uint8)
        """Record-level outcome so far: 0, MALFORMED_RECORD or BAD_TAC."""
        self.digest = np.zeros((n_batches, 32), np.uint8)
        self.structure_ok = np.zeros(n_batches, bool)
        self.signature_ok = np.zeros(n_batches, bool)
        self.start = np.full(n_batches, -1, np.int64)
        self.length = np.zeros(n_batches, np.int64)


def process_chunk(source: ChunkSource, chunk: Chunk, plan: BatchPlan, out: Columns) -> int:
    """Run the chunk pass over one chunk, writing into `out`; returns the rows done."""
    records, batch_row = source.read_chunk(chunk)
    n = len(records)
    if n == 0:
        return 0
    starts = np.flatnonzero(np.r_[True, batch_row[1:] != batch_row[:-1]])
    ends = np.r_[starts[1:], n]
    bids = batch_row[starts]
    out.start[bids] = starts + chunk.first_row
    out.length[bids] = ends - starts
    structure = _structure_ok(records, batch_row, starts, ends, plan.batches)
    out.structure_ok[bids] = structure
    for b, s, e, ok in zip(
        bids.tolist(), starts.tolist(), ends.tolist(), structure.tolist(), strict=True
    ):
        digest = batch_digest(plan.headers[b], records[s:e])
        out.digest[b] = np.frombuffer(digest, np.uint8)
        if ok and plan.verify[b]:
            key = plan.registry.public_key(int(plan.batches["key_id"][b]))
            out.signature_ok[b] = signature_ok(key, plan.batches["signature"][b].tobytes(), digest)
    rows = slice(chunk.first_row, chunk.first_row + n)
    out.status[rows] = _record_status(
        records, out.signature_ok[batch_row], plan.registry.master_key
    )
    _keep_columns(records, out, rows)
    return n


def _structure_ok(
    records: np.ndarray,
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


def malformed(records: np.ndarray) -> np.ndarray:
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


def _record_status(records: np.ndarray, in_good_batch: np.ndarray, master_key: bytes) -> np.ndarray:
    status = np.zeros(len(records), np.uint8)
    bad_form = malformed(records)
    status[in_good_batch & bad_form] = Reason.MALFORMED_RECORD
    check = in_good_batch & ~bad_form
    if check.all():
        forged = compute_tacs(master_key, records) != records["tac"]
        status[forged] = Reason.BAD_TAC
    elif check.any():
        idx = np.flatnonzero(check)
        forged = compute_tacs(master_key, records[idx]) != records["tac"][idx]
        status[idx[forged]] = Reason.BAD_TAC
    return status


def _keep_columns(records: np.ndarray, out: Columns, rows: slice) -> None:
    rid = records["terminal_id"].astype(np.uint64)
    rid <<= np.uint64(32)
    rid |= records["terminal_serial"]
    out.rid[rows] = rid
    out.card_id[rows] = records["card_id"]
    out.counter[rows] = records["card_counter"]
    out.amount[rows] = records["amount_fen"]
    out.kind[rows] = records["kind"]
    out.domain[rows] = records["domain"]
    out.payee[rows] = records["payee"]
    out.tac[rows] = records["tac"]
