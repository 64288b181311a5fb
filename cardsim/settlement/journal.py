"""What the settlement journal keeps of one finished chunk, and how it is put back.

The chunk pass is the expensive part of settling (hashing, signatures, TACs). A chunk holds
whole batches and writes only its own rows and batches of the kernel's `LogState`, so what it
decided is small and self-contained: one status byte per record, the digest and checks of
its batches, its flow sums, its sorted card keys and its serial-gap alerts. A `ChunkEntry`
holds exactly that; replaying it restores the `LogState` slices and the `ChunkResult`, and
the global phase (repeats across chunks, the card merge, netting) then runs as it always does.
So a settlement resumed from a journal is, byte for byte, the uninterrupted one.

Pure: no I/O beyond bytes in and out. Where entries are stored durably is the caller's
choice (cardsim/ledger/settle_journal.py keeps them in SQLite).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cardsim.records.log import Chunk
from cardsim.settlement.chunk import ChunkResult, LogState
from cardsim.settlement.grouping import Sums

ENTRY_FORMAT = "cardsim.journal-chunk/1"
"""Tag stored in every encoded entry; an entry of another format is never replayed."""

ALERT_WIDTH = 7
"""Fields of one alert tuple (code, terminal_id, card_id, first, last, batch_row, row)."""


class ChunkJournal(Protocol):
    """Where the kernel's chunk pass records finished chunks and finds them again."""

    def replay(self, index: int, chunk: Chunk, cols: LogState) -> ChunkResult | None:
        """Chunk `index`'s result restored into `cols`, or None when it was not committed."""
        ...

    def commit(self, index: int, chunk: Chunk, result: ChunkResult, cols: LogState) -> None:
        """Make chunk `index`'s result durable before the pass goes on."""
        ...


class JournalMismatch(ValueError):
    """An entry that does not belong to this chunk or is damaged: it must not be replayed."""


@dataclass(frozen=True)
class ChunkEntry:
    """One finished chunk: its rows' status bytes, its batches' checks, and its result."""

    first_row: int
    rows: int
    status: np.ndarray
    """uint8 per row of the chunk (0, MALFORMED_RECORD or BAD_TAC)."""
    batch_ids: np.ndarray
    """int64: the batch rows whose records are in this chunk."""
    digest: np.ndarray
    structure_ok: np.ndarray
    signature_ok: np.ndarray
    start: np.ndarray
    length: np.ndarray
    flow_keys: np.ndarray
    flow_fen: np.ndarray
    flow_count: np.ndarray
    card_keys: np.ndarray | None
    inner_gaps: np.ndarray
    """int64, shape (gaps, ALERT_WIDTH)."""


def capture(chunk: Chunk, result: ChunkResult, cols: LogState) -> ChunkEntry:
    """The entry of a chunk the pass has just finished."""
    lo, hi = chunk.first_row, chunk.first_row + chunk.rows
    # A batch belongs to the chunk that holds its first record; empty batches to none.
    bids = np.flatnonzero((cols.start >= lo) & (cols.start < hi) & (cols.length > 0))
    gaps = np.array(result.inner_gaps, np.int64).reshape(-1, ALERT_WIDTH)
    return ChunkEntry(
        lo,
        chunk.rows,
        cols.status[lo:hi].copy(),
        bids,
        cols.digest[bids],
        cols.structure_ok[bids],
        cols.signature_ok[bids],
        cols.start[bids],
        cols.length[bids],
        result.flows.keys,
        result.flows.fen,
        result.flows.count,
        result.card_keys,
        gaps,
    )


def restore(entry: ChunkEntry, chunk: Chunk, cols: LogState) -> ChunkResult:
    """Write the entry's slices back into `cols` and return the chunk's result."""
    if (entry.first_row, entry.rows) != (chunk.first_row, chunk.rows):
        raise JournalMismatch(
            f"entry covers rows {entry.first_row}+{entry.rows}, "
            f"chunk is rows {chunk.first_row}+{chunk.rows}"
        )
    lo, hi = chunk.first_row, chunk.first_row + chunk.rows
    cols.status[lo:hi] = entry.status
    b = entry.batch_ids
    cols.digest[b] = entry.digest
    cols.structure_ok[b] = entry.structure_ok
    cols.signature_ok[b] = entry.signature_ok
    cols.start[b] = entry.start
    cols.length[b] = entry.length
    gaps = [tuple(int(v) for v in row) for row in entry.inner_gaps.tolist()]
    flows = Sums(entry.flow_keys, entry.flow_fen, entry.flow_count)
    return ChunkResult(entry.rows, flows, entry.card_keys, gaps)


_ARRAYS = (
    "status",
    "batch_ids",
    "digest",
    "structure_ok",
    "signature_ok",
    "start",
    "length",
    "flow_keys",
    "flow_fen",
    "flow_count",
    "inner_gaps",
)


def encode(entry: ChunkEntry) -> bytes:
    """The entry as bytes: a SHA-256 of the body, then an uncompressed .npz body."""
    arrays = {name: getattr(entry, name) for name in _ARRAYS}
    arrays["format"] = np.frombuffer(ENTRY_FORMAT.encode(), np.uint8)
    arrays["rows"] = np.array([entry.first_row, entry.rows], np.int64)
    if entry.card_keys is not None:
        arrays["card_keys"] = entry.card_keys
    body = io.BytesIO()
    np.savez(body, allow_pickle=False, **arrays)
    raw = body.getvalue()
    return hashlib.sha256(raw).digest() + raw


def decode(blob: bytes) -> ChunkEntry:
    """An entry from `encode`'s bytes; JournalMismatch if damaged or of another format."""
    checksum, raw = blob[:32], blob[32:]
    if hashlib.sha256(raw).digest() != checksum:
        raise JournalMismatch("entry checksum does not match")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        if npz["format"].tobytes().decode() != ENTRY_FORMAT:
            raise JournalMismatch("entry of another format")
        first_row, rows = (int(v) for v in npz["rows"])
        arrays = {name: npz[name] for name in _ARRAYS}
        card_keys = npz["card_keys"] if "card_keys" in npz.files else None
    return ChunkEntry(first_row, rows, card_keys=card_keys, **arrays)
