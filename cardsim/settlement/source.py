"""Where the kernel reads records from: a log folder on disk or a log already in memory."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cardsim.records.log import Chunk, LogReader, RecordLog, row_groups


class ChunkSource(Protocol):
    """A log split into chunks of whole batches."""

    batches: np.ndarray
    rows: int
    chunks: list[Chunk]

    def read_chunk(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """Records and batch rows of one chunk."""
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


def as_source(log: LogReader | RecordLog) -> ChunkSource:
    """Wrap an in-memory log; a LogReader is already a source."""
    return MemorySource(log) if isinstance(log, RecordLog) else log
