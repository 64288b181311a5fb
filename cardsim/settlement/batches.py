"""Batch-level decisions: repeated uploads, cut-off, keys, structure, and per-terminal chains.

Everything here runs once per batch (tens of thousands a day), never once per record.
"""

from __future__ import annotations

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


def chain_alerts(batches: np.ndarray, accepted: np.ndarray, digests: np.ndarray) -> list[tuple]:
    """Missing batch serials, broken previous-digest links and equivocation, per terminal."""
    idx = np.flatnonzero(accepted)
    order = idx[np.lexsort((idx, batches["batch_serial"][idx], batches["terminal_id"][idx]))]
    tid = batches["terminal_id"][order].astype(np.int64)
    serial = batches["batch_serial"][order].astype(np.int64)
    alerts: list[tuple] = []
    if not len(order):
        return alerts
    starts = np.r_[True, (tid[1:] != tid[:-1]) | (serial[1:] != serial[:-1])]
    heads = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1
    differs = np.any(digests[order] != digests[order[heads[group]]], axis=1)
    for g in np.unique(group[differs]).tolist():
        h = heads[g]
        alerts.append((Alert.BATCH_CONFLICT, tid[h], -1, serial[h], serial[h], -1, -1))
    for a, c in zip(heads[:-1].tolist(), heads[1:].tolist(), strict=True):
        if tid[a] != tid[c]:
            continue
        if serial[c] > serial[a] + 1:
            alerts.append(
                (Alert.BATCH_SERIAL_GAP, tid[a], -1, serial[a] + 1, serial[c] - 1, -1, -1)
            )
        elif not np.array_equal(digests[order[a]], batches["prev_digest"][order[c]]):
            alerts.append(
                (Alert.BATCH_CHAIN_BREAK, tid[c], -1, serial[c], serial[c], int(order[c]), -1)
            )
    return alerts
