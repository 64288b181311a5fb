"""Records as the terminals wrote them, before signing, with what faults and frauds track.

Records are sorted by (terminal, time written) and every terminal numbers its records 1, 2,
3... in that order. A fraud that slips a record in after another one shifts the serials of that
terminal's later records; records lost in a crash keep theirs, so the clearing centre sees the
hole. Uploads batch records by `batch_of`, an index into the upload plan's batches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from cardsim.sim.uploads import Uploads


@dataclass
class Written:
    """Parallel per-record arrays."""

    records: np.ndarray
    written_s: np.ndarray
    """When the terminal wrote the record (s after midnight): it decides the upload."""
    batch_of: np.ndarray
    """Upload-plan batch of each record."""
    lost: np.ndarray
    """Lost in a terminal crash: never uploaded."""
    tag: np.ndarray
    """Index of the planted fraud this record is, or -1."""
    partner: np.ndarray
    """Index of the planted fraud this genuine record is the counterpart of (the record a
    clone copies, the record before a rolled-back one), or -1."""

    @classmethod
    def start(cls, records: np.ndarray, written_s: np.ndarray, uploads: Uploads) -> Written:
        """Fresh tracking for the day's records and their upload plan."""
        n = len(records)
        none = np.full(n, -1, np.int64)
        return cls(records, written_s, uploads.batch_of, np.zeros(n, bool), none, none.copy())

    def __len__(self) -> int:
        return len(self.records)

    def take(self, keep: np.ndarray) -> Written:
        """The records where `keep` holds."""
        return Written(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def insert_after(self, anchor: np.ndarray, new: np.ndarray, tag: np.ndarray) -> Written:
        """`new` records (on their anchor's terminal), each right after its anchor row, in the
        anchor's batch, written at the same moment; serials are renumbered."""
        order = np.argsort(anchor, kind="stable")
        anchor, new, tag = np.asarray(anchor, np.int64)[order], new[order], np.asarray(tag)[order]
        at = anchor + 1
        out = Written(
            np.insert(self.records, at, new),
            np.insert(self.written_s, at, self.written_s[anchor]),
            np.insert(self.batch_of, at, self.batch_of[anchor]),
            np.insert(self.lost, at, False),
            np.insert(self.tag, at, tag),
            np.insert(self.partner, at, -1),
        )
        out.number_serials()
        return out

    def number_serials(self) -> None:
        """Serials 1, 2, 3... per terminal, in row order (rows are grouped by terminal)."""
        term = self.records["terminal_id"]
        index = np.arange(len(term))
        first = np.r_[True, term[1:] != term[:-1]] if len(term) else np.empty(0, bool)
        self.records["terminal_serial"] = (
            index - np.maximum.accumulate(np.where(first, index, 0)) + 1
        )


def compact(written: Written, uploads: Uploads) -> tuple[Written, Uploads, np.ndarray]:
    """Drop upload batches left without records (all lost), renumbering `batch_of`; also
    returns the old index of each batch kept."""
    used, batch_of = np.unique(written.batch_of, return_inverse=True)
    written.batch_of = batch_of.astype(np.int64).reshape(-1)
    kept = Uploads(
        written.batch_of, uploads.terminal[used], uploads.uploaded_s[used], uploads.failed_attempts
    )
    return written, kept, used
