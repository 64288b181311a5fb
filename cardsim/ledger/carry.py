"""Records carried from one clearing day to the next.

Batches received after a day's cut-off are pending: they belong to the next day. The day's
input file will not hold them again, so the ledger keeps them, as a record log of their own
(`LEDGER/carry/NNNN/`), and the next day settles that log followed by its own uploads, as one
log read chunk by chunk (`ChainedSource`): carried batches first, since they arrived first.
"""

from __future__ import annotations

import numpy as np

from cardsim.records.layout import RECORD_DTYPE, RECORD_FIELDS
from cardsim.records.log import Chunk, RecordLog
from cardsim.settlement.reasons import PENDING
from cardsim.settlement.source import ChunkSource, fetch


class ChainedSource:
    """Several logs read as one: rows and batch rows of each part follow the previous part's."""

    def __init__(self, parts: list[ChunkSource]) -> None:
        self.parts = parts
        self.batches = np.concatenate([p.batches for p in parts])
        self.rows = sum(p.rows for p in parts)
        self.chunks: list[Chunk] = []
        self._origin: dict[Chunk, tuple[ChunkSource, Chunk, int]] = {}
        rows = batches = 0
        for part in parts:
            for chunk in part.chunks:
                if chunk.rows == 0:
                    continue  # nothing to read; keeps every chained chunk distinct
                mine = Chunk(chunk.row_groups, chunk.first_row + rows, chunk.rows)
                self.chunks.append(mine)
                self._origin[mine] = (part, chunk, batches)
            rows += part.rows
            batches += len(part.batches)

    def read_chunk(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """Records and (chained) batch rows of one chunk."""
        part, own, offset = self._origin[chunk]
        records, batch_row = part.read_chunk(own)
        return records, batch_row + offset

    def read_chunk_columns(
        self, chunk: Chunk
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Records, batch rows and every field as a column."""
        part, own, offset = self._origin[chunk]
        records, batch_row, columns = part.read_chunk_columns(own)
        return records, batch_row + offset, columns

    def read_columns(self, chunk: Chunk, names: list[str]) -> dict[str, np.ndarray]:
        """Some fields (or batch_row) of one chunk."""
        part, own, offset = self._origin[chunk]
        columns = part.read_columns(own, names)
        if "batch_row" in columns:
            columns["batch_row"] = columns["batch_row"] + offset
        return columns


def pending_log(source: ChunkSource, outcome: np.ndarray) -> RecordLog:
    """The records left pending, with their batches, as a log of their own. (A pending batch
    without records carries no money and is not kept.)"""
    rows = np.flatnonzero(outcome == PENDING)
    columns = fetch(source, [*RECORD_FIELDS, "batch_row"], rows)
    records = np.zeros(len(rows), RECORD_DTYPE)
    for name in RECORD_FIELDS:
        records[name] = columns[name]
    kept = np.unique(columns["batch_row"])
    return RecordLog(records, np.searchsorted(kept, columns["batch_row"]), source.batches[kept])
