"""Batch-level decisions: repeated uploads, cut-off, keys, structure, and per-terminal chains.

Everything here runs once per batch (tens of thousands a day), never once per record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.records.keys import KeyRegistry
from cardsim.records.layout import HEADER_SIZE
from cardsim.settlement.reasons import PENDING, Alert, Reason

UNSEEN = -1


def duplicate_candidates(batches: np.ndarray, headers: np.ndarray) -> np.ndarray:
    """For each batch, the first earlier batch with the same signed header and signature, or -1.

    A candidate is a true repeat only if its digest matches too (checked after hashing); until
    then it is neither verified nor TAC-checked, which is where repeated uploads save work.
    """
    first: dict[bytes, int] = {}
    out = np.full(len(batches), UNSEEN, dtype=np.int64)
    raw_headers = headers.view(np.uint8).reshape(len(headers), HEADER_SIZE)
    # One bytes object for all batches, sliced per batch: far cheaper than two numpy
    # conversions per batch.
    signed = np.concatenate([raw_headers, batches["signature"]], axis=1)
    width = signed.shape[1]
    blob = signed.tobytes()
    for b in range(len(batches)):
        out[b] = first.setdefault(blob[b * width : (b + 1) * width], b)
    out[out == np.arange(len(batches))] = UNSEEN
    return out


def pre_status(batches: np.ndarray, registry: KeyRegistry, cutoff_ms: int | None) -> np.ndarray:
    """Outcome known from the batch table alone: pending, or a key problem (0 = go on)."""
    key_ids, terminal_ids, revoked = registry.key_table()
    key_id = batches["key_id"].astype(np.int64)
    # A sentinel key that matches no batch keeps the lookups in range for unknown ids.
    key_ids, terminal_ids = np.r_[key_ids, -1], np.r_[terminal_ids, -1]
    revoked = np.r_[revoked, False]
    at = np.minimum(np.searchsorted(key_ids[:-1], key_id), len(key_ids) - 1)
    known = key_ids[at] == key_id
    status = np.zeros(len(batches), dtype=np.uint8)
    status[~known] = Reason.UNKNOWN_KEY
    status[known & revoked[at]] = Reason.REVOKED_KEY
    other_terminal = terminal_ids[at] != batches["terminal_id"]
    status[known & ~revoked[at] & other_terminal] = Reason.KEY_TERMINAL_MISMATCH
    if cutoff_ms is not None:
        status[batches["uploaded_ms"] > cutoff_ms] = PENDING
    return status


def batch_keys(batches: np.ndarray) -> np.ndarray:
    """terminal_id << 32 | batch_serial: a batch's place in its terminal's chain as one
    sortable uint64."""
    keys = batches["terminal_id"].astype(np.uint64) << np.uint64(32)
    return keys | batches["batch_serial"].astype(np.uint64)


@dataclass(frozen=True)
class SerialGroups:
    """A day's accepted batches grouped by (terminal, batch serial), ascending."""

    keys: np.ndarray
    """terminal_id << 32 | batch_serial of each group, ascending and distinct."""
    heads: np.ndarray
    """The first batch row of each group."""
    split: np.ndarray
    """Per group: its copies have different digests (a terminal signed two batches under one
    serial)."""

    @property
    def terminal(self) -> np.ndarray:
        return (self.keys >> np.uint64(32)).astype(np.int64)

    @property
    def serial(self) -> np.ndarray:
        return (self.keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def serial_groups(batches: np.ndarray, accepted: np.ndarray, digests: np.ndarray) -> SerialGroups:
    """Group the accepted batches by (terminal, batch serial)."""
    rows = np.flatnonzero(accepted)
    keys = batch_keys(batches[rows])
    order = np.lexsort((rows, keys))
    rows, keys = rows[order], keys[order]
    starts = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
    group = np.cumsum(starts) - 1
    heads = rows[starts]
    split = np.zeros(len(heads), bool)
    split[group[np.any(digests[rows] != digests[heads[group]], axis=1)]] = True
    return SerialGroups(keys[starts], heads, split)


def chain_alerts(batches: np.ndarray, groups: SerialGroups, digests: np.ndarray) -> list[tuple]:
    """Missing batch serials, broken previous-digest links and equivocation, per terminal."""
    tid, serial, heads = groups.terminal, groups.serial, groups.heads
    same = tid[1:] == tid[:-1]
    gap = same & (serial[1:] > serial[:-1] + 1)
    linked = np.all(digests[heads[:-1]] == batches["prev_digest"][heads[1:]], axis=1)
    broken = same & (serial[1:] == serial[:-1] + 1) & ~linked
    alerts: list[tuple] = [
        (Alert.BATCH_CONFLICT, tid[g], -1, serial[g], serial[g], -1, -1)
        for g in np.flatnonzero(groups.split).tolist()
    ]
    alerts += [
        (Alert.BATCH_SERIAL_GAP, tid[g], -1, serial[g] + 1, serial[g + 1] - 1, -1, -1)
        for g in np.flatnonzero(gap).tolist()
    ]
    alerts += [
        (Alert.BATCH_CHAIN_BREAK, tid[g], -1, serial[g], serial[g], int(heads[g]), -1)
        for g in (np.flatnonzero(broken) + 1).tolist()
    ]
    return alerts
