"""From decided taps to the signed record log a real clearing centre would receive.

Accepted taps and the top-ups before them become 64-byte records: card counters in each
card's time order, terminal serials in each terminal's time order, TACs under per-card keys,
then batches as the terminals uploaded them, chained and signed with each terminal's key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardsim.records.batch import BATCH_DTYPE, batch_digest, header_array, sign_digest
from cardsim.records.keys import compute_tacs
from cardsim.records.layout import ZERO_DIGEST, empty_records
from cardsim.records.log import RecordLog
from cardsim.sim.uploads import Uploads
from cardsim.sim.world import DAY_START_MS, Terminals


@dataclass
class Transactions:
    """Accepted card transactions, one per future record (column arrays)."""

    card: np.ndarray
    time_s: np.ndarray
    terminal: np.ndarray
    kind: np.ndarray
    amount_fen: np.ndarray
    balance_after_fen: np.ndarray
    flags: np.ndarray
    order: np.ndarray
    """Tie-break within a card at equal times (a top-up comes before the tap it pays for)."""


def card_counters(tx: Transactions, counter0: np.ndarray) -> np.ndarray:
    """Each card's counter after each of its transactions, in the card's time order."""
    by_card = np.lexsort((tx.order, tx.time_s, tx.card))
    card = tx.card[by_card]
    first = np.r_[True, card[1:] != card[:-1]] if len(card) else np.empty(0, bool)
    rank = np.arange(len(card)) - np.maximum.accumulate(np.where(first, np.arange(len(card)), 0))
    counters = np.empty(len(card), np.int64)
    counters[by_card] = counter0[card] + rank + 1
    return counters


def build_records(tx: Transactions, counter: np.ndarray, terminals: Terminals) -> np.ndarray:
    """Records (without TACs) sorted by (terminal, time), with terminal serials from 1."""
    by_terminal = np.lexsort((tx.order, tx.card, tx.time_s, tx.terminal))
    rec = empty_records(len(by_terminal))
    term = tx.terminal[by_terminal]
    first = np.r_[True, term[1:] != term[:-1]] if len(term) else np.empty(0, bool)
    rec["terminal_id"] = term + 1
    rec["terminal_serial"] = (
        np.arange(len(term)) - np.maximum.accumulate(np.where(first, np.arange(len(term)), 0)) + 1
    )
    rec["card_id"] = tx.card[by_terminal] + 1
    rec["card_counter"] = counter[by_terminal]
    rec["payee"] = terminals.payee[term]
    rec["time_ms"] = DAY_START_MS + np.round(tx.time_s[by_terminal] * 1000).astype(np.int64)
    rec["amount_fen"] = tx.amount_fen[by_terminal]
    rec["balance_after_fen"] = tx.balance_after_fen[by_terminal]
    rec["domain"] = terminals.domain[term]
    rec["kind"] = tx.kind[by_terminal]
    rec["flags"] = tx.flags[by_terminal]
    return rec


def sign_log(
    records: np.ndarray, uploads: Uploads, master_key: bytes, keys: list[Ed25519PrivateKey]
) -> tuple[RecordLog, np.ndarray]:
    """TACs, batch headers chained per terminal, signatures; batches in upload order.

    Returns the log and, per log row, the row of `records` it came from.
    """
    records["tac"] = compute_tacs(master_key, records)
    starts = np.flatnonzero(np.r_[True, uploads.batch_of[1:] != uploads.batch_of[:-1]])
    ends = np.r_[starts[1:], len(records)]
    batches = np.zeros(len(starts), BATCH_DTYPE)
    batches["terminal_id"] = uploads.terminal + 1
    batches["key_id"] = uploads.terminal + 1
    batches["first_serial"] = records["terminal_serial"][starts]
    batches["last_serial"] = records["terminal_serial"][ends - 1]
    batches["record_count"] = ends - starts
    batches["uploaded_ms"] = DAY_START_MS + np.round(uploads.uploaded_s * 1000).astype(np.int64)
    previous: dict[int, tuple[int, bytes]] = {}
    for b, (s, e, t) in enumerate(
        zip(starts.tolist(), ends.tolist(), uploads.terminal.tolist(), strict=True)
    ):
        serial, prev_digest = previous.get(t, (0, ZERO_DIGEST))
        batches["batch_serial"][b] = serial + 1
        batches["prev_digest"][b] = np.frombuffer(prev_digest, np.uint8)
        digest = batch_digest(header_array(batches[b : b + 1])[0], records[s:e])
        batches["signature"][b] = np.frombuffer(sign_digest(keys[t], digest), np.uint8)
        previous[t] = (serial + 1, digest)
    order = np.lexsort((batches["terminal_id"], batches["uploaded_ms"]))
    lengths = (ends - starts)[order]
    offsets = np.cumsum(lengths) - lengths
    rows = np.repeat(starts[order] - offsets, lengths) + np.arange(lengths.sum())
    log = RecordLog(records[rows], np.repeat(np.arange(len(order)), lengths), batches[order])
    return log, rows
