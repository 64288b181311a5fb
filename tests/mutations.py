"""Ways to dirty a log the way real terminals, networks and fraudsters do, for tests."""

from __future__ import annotations

import numpy as np

from cardsim.records.keys import TerminalKey, compute_tacs
from cardsim.records.log import RecordLog
from cardsim.synthetic import SyntheticDay


def rows_of(log: RecordLog, b: int) -> np.ndarray:
    """Log rows of batch b."""
    return np.flatnonzero(log.batch_row == b)


def take_batches(log: RecordLog, order: list[int]) -> RecordLog:
    """A log holding the given batch rows in the given order (repeats allowed)."""
    parts = [rows_of(log, b) for b in order]
    rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
    batch_row = np.repeat(np.arange(len(order)), [len(p) for p in parts])
    return RecordLog(log.records[rows], batch_row, log.batches[order].copy())


def repeat_batch(day: SyntheticDay, b: int) -> None:
    """The terminal uploads batch b again (a retry after a lost acknowledgement)."""
    day.log = take_batches(day.log, [*range(len(day.log.batches)), b])


def resend_records(day: SyntheticDay, b: int, alter: bool) -> None:
    """The terminal re-sends batch b's records under a new batch serial, maybe altered."""
    log = day.log
    extra = take_batches(log, [b])
    extra.batches["batch_serial"] += 1000
    if alter and len(extra.records):
        extra.records["balance_after_fen"][0] += 1
        extra.records["tac"] = compute_tacs(day.registry.master_key, extra.records)
    day.log = log.concat(extra)
    day.resign(len(day.log.batches) - 1)


def drop_batch(day: SyntheticDay, b: int) -> None:
    """Batch b never arrives (lost terminal, full buffer)."""
    day.log = take_batches(day.log, [i for i in range(len(day.log.batches)) if i != b])


def flip_byte(day: SyntheticDay, row: int, offset: int) -> None:
    """One byte of one record changes in transit (no re-signing)."""
    raw = day.log.records.view(np.uint8).reshape(len(day.log.records), -1)
    raw[row, offset] ^= 0x5A


def forge(day: SyntheticDay, row: int) -> None:
    """A merchant inflates one amount and signs the batch with its own valid key."""
    day.log.records["amount_fen"][row] += 700
    day.resign(int(day.log.batch_row[row]))


def revoke(day: SyntheticDay, b: int) -> None:
    """The key that signed batch b is revoked."""
    key_id = int(day.log.batches["key_id"][b])
    k = day.registry.terminals[key_id]
    day.registry.terminals[key_id] = TerminalKey(key_id, k.terminal_id, k.public_key, True)


def clone(day: SyntheticDay, source_row: int, target_row: int) -> None:
    """A cloned card: target_row now carries source_row's card and counter, validly MACed."""
    rec = day.log.records
    rec["card_id"][target_row] = rec["card_id"][source_row]
    rec["card_counter"][target_row] = rec["card_counter"][source_row]
    rec["tac"][target_row] = compute_tacs(
        day.registry.master_key, rec[target_row : target_row + 1]
    )[0]
    day.resign(int(day.log.batch_row[target_row]))


def malformed(day: SyntheticDay, row: int) -> None:
    """A terminal writes a kind the format does not know (validly MACed and signed)."""
    rec = day.log.records
    rec["kind"][row] = 9
    rec["tac"][row] = compute_tacs(day.registry.master_key, rec[row : row + 1])[0]
    day.resign(int(day.log.batch_row[row]))


def shuffle_batches(day: SyntheticDay, seed: int) -> None:
    """Uploads arrive in another order."""
    order = np.random.default_rng(seed).permutation(len(day.log.batches)).tolist()
    day.log = take_batches(day.log, order)
