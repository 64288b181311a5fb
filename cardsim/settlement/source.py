"""Where the kernel reads records from: a log folder on disk or a log already in memory."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cardsim.records.layout import RECORD_DTYPE, RECORD_FIELDS
from cardsim.records.log import Chunk, LogReader, RecordLog, row_groups
from cardsim.settlement.threads import thread_map


class ChunkSource(Protocol):
    """A log split into chunks of whole batches."""

    batches: np.ndarray
    rows: int
    chunks: list[Chunk]

    def read_chunk(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """Records and batch rows of one chunk."""
        ...

    def read_columns(self, chunk: Chunk, names: list[str]) -> dict[str, np.ndarray]:
        """Some record fields (or batch_row) of one chunk."""
        ...

    def read_chunk_columns(
        self, chunk: Chunk
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Records, batch rows, and every record field as an array."""
        ...


class MemorySource:
    """A RecordLog split on batch boundaries, as if it had been written to disk."""

    def __init__(self, log: RecordLog) -> None:
        self.log = log
        self.batches = log.batches
        self.rows = len(log.records)
        self.chunks = [
            Chunk((i,), start, stop - start)
            for i, (start, stop) in enumerate(row_groups(log.batch_row))
        ]
        if len(log.batch_row) > 1 and np.any(np.diff(log.batch_row) < 0):
            raise ValueError("records must be grouped by batch_row, ascending")

    def read_chunk(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's rows (views, no copy)."""
        stop = chunk.first_row + chunk.rows
        return self.log.records[chunk.first_row : stop], self.log.batch_row[chunk.first_row : stop]

    def read_chunk_columns(
        self, chunk: Chunk
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Records, batch rows and field views of one chunk."""
        records, batch_row = self.read_chunk(chunk)
        return records, batch_row, {n: records[n] for n in RECORD_FIELDS}

    def read_columns(self, chunk: Chunk, names: list[str]) -> dict[str, np.ndarray]:
        """Fields of the chunk's rows (views)."""
        records, batch_row = self.read_chunk(chunk)
        return {n: batch_row if n == "batch_row" else records[n] for n in names}


def fetch(
    source: ChunkSource, names: list[str], rows: np.ndarray | None = None, workers: int = 1
) -> dict[str, np.ndarray]:
    """Columns of the given log rows (ascending, distinct), or of every row, read chunk by
    chunk on `workers` threads.

    The kernel keeps one status byte per record; whatever it needs of the records later
    (rare: alerts, overlapping uploads) it reads back from the log through here.
    """

    def read(chunk: Chunk) -> dict[str, np.ndarray] | None:
        if rows is None:
            return source.read_columns(chunk, names)
        lo, hi = rows_in(chunk, rows)
        return read_rows(source, chunk, names, rows[lo:hi]) if hi > lo else None

    parts = [p for p in thread_map(workers, read, source.chunks) if p is not None]
    if not parts:
        # Empty columns keep their record dtypes: callers combine them (record ids are uint64).
        return {n: np.empty(0, column_dtype(n)) for n in names}
    return {n: np.concatenate([p[n] for p in parts]) for n in names}


def rows_in(chunk: Chunk, rows: np.ndarray) -> tuple[int, int]:
    """The slice [lo, hi) of the ascending log `rows` that falls in the chunk."""
    lo, hi = np.searchsorted(rows, [chunk.first_row, chunk.first_row + chunk.rows])
    return int(lo), int(hi)


def read_rows(
    source: ChunkSource, chunk: Chunk, names: list[str], rows: np.ndarray
) -> dict[str, np.ndarray]:
    """Columns of some of the chunk's rows (log rows, ascending, distinct)."""
    columns = source.read_columns(chunk, names)
    if len(rows) == chunk.rows:
        return columns
    local = rows - chunk.first_row
    return {n: columns[n][local] for n in names}


def column_dtype(name: str) -> np.dtype:
    """The dtype of a record field (native byte order) or of batch_row, as columns come."""
    if name in RECORD_FIELDS:
        return RECORD_DTYPE[name].newbyteorder("=")
    return np.dtype(np.int64)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, start + length) for each pair (no Python loop)."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def record_ids(columns: dict[str, np.ndarray]) -> np.ndarray:
    """terminal_id << 32 | terminal_serial: a record's identity as one sortable uint64."""
    rid = columns["terminal_id"].astype(np.uint64) << np.uint64(32)
    rid |= columns["terminal_serial"]
    return rid


def as_source(log: LogReader | RecordLog | ChunkSource) -> ChunkSource:
    """Wrap an in-memory log; a LogReader (or any ChunkSource) is already a source."""
    return MemorySource(log) if isinstance(log, RecordLog) else log
