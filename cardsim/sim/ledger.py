"""From decided taps to the signed record log a real clearing centre would receive.

Accepted taps and the top-ups before them become 64-byte records: card counters in each
card's time order, terminal serials in each terminal's time order, TACs under per-card keys,
then batches as the terminals uploaded them, chained and signed with each terminal's key.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardsim.records.batch import BATCH_DTYPE, header_array
from cardsim.records.keys import compute_tacs
from cardsim.records.layout import RECORD_SIZE, SIGNATURE_CONTEXT, ZERO_DIGEST, empty_records
from cardsim.records.log import RecordLog
from cardsim.sim.taps import order_key
from cardsim.sim.uploads import Uploads
from cardsim.sim.world import DAY_START_MS, Terminals


@dataclass
class Transactions:
    """Accepted card transactions, one per future record, in card then time order."""

    card: np.ndarray
    time_s: np.ndarray
    terminal: np.ndarray
    kind: np.ndarray
    amount_fen: np.ndarray
    balance_after_fen: np.ndarray
    flags: np.ndarray


def card_counters(tx: Transactions, counter0: np.ndarray) -> np.ndarray:
    """Each card's counter after each of its transactions (`tx` is in card, then time order)."""
    card = tx.card
    first = np.r_[True, card[1:] != card[:-1]] if len(card) else np.empty(0, bool)
    rank = np.arange(len(card)) - np.maximum.accumulate(np.where(first, np.arange(len(card)), 0))
    return counter0[card] + rank + 1


def build_records(tx: Transactions, counter: np.ndarray, terminals: Terminals) -> np.ndarray:
    """Records (without TACs) sorted by (terminal, time), with terminal serials from 1.

    Fields are written in `tx` order (sequential writes) and the rows then moved once.
    Stable: at equal times a terminal's records stay in card order (`tx` order).
    """
    rec = empty_records(len(tx.card))
    rec["terminal_id"] = tx.terminal + 1
    rec["card_id"] = tx.card + 1
    rec["card_counter"] = counter
    rec["payee"] = terminals.payee[tx.terminal]
    rec["time_ms"] = DAY_START_MS + np.round(tx.time_s * 1000).astype(np.int64)
    rec["amount_fen"] = tx.amount_fen
    rec["balance_after_fen"] = tx.balance_after_fen
    rec["domain"] = terminals.domain[tx.terminal]
    rec["kind"] = tx.kind
    rec["flags"] = tx.flags
    # np.take moves 64-byte rows about twice as fast as fancy indexing does.
    rec = np.take(rec, np.argsort(order_key(tx.terminal, tx.time_s), kind="stable"))
    term = rec["terminal_id"]
    index = np.arange(len(term))
    first = np.r_[True, term[1:] != term[:-1]] if len(term) else np.empty(0, bool)
    rec["terminal_serial"] = index - np.maximum.accumulate(np.where(first, index, 0)) + 1
    return rec


def sign_log(
    records: np.ndarray,
    uploads: Uploads,
    master_key: bytes,
    keys: list[Ed25519PrivateKey],
    workers: int = 1,
    after_tacs: Callable[[np.ndarray], None] | None = None,
) -> tuple[RecordLog, np.ndarray]:
    """TACs, batch headers chained per terminal, signatures; batches in upload order.

    `after_tacs` may change records between the cards' TACs and the terminals' signatures
    (a merchant altering what its terminal signs: sim/fraud.py).

    Each terminal's chain is sequential, but terminals are independent, so `workers` threads
    sign disjoint sets of terminals (Ed25519 signing and SHA-256 release the GIL).
    Returns the log and, per log row, the row of `records` it came from.
    """
    _fill_tacs(records, master_key, workers)
    if after_tacs is not None:
        after_tacs(records)
    starts = np.flatnonzero(np.r_[True, uploads.batch_of[1:] != uploads.batch_of[:-1]])
    ends = np.r_[starts[1:], len(records)]
    batches = _batch_table(records, uploads, starts, ends)
    fixed = header_array(batches).view(np.uint8).reshape(len(batches), -1)[:, :32].tobytes()
    body = records.view(np.uint8).reshape(-1).data
    signatures: list[bytes] = [b""] * len(batches)
    previous: list[bytes] = [ZERO_DIGEST] * len(batches)
    # Batches are in (terminal, upload) order: split them between threads at terminal changes.
    cuts = [0, *_terminal_cuts(uploads.terminal, workers), len(batches)]
    parts = [range(a, b) for a, b in itertools.pairwise(cuts)]
    size = RECORD_SIZE

    def sign_part(part: range) -> None:
        prev_terminal, prev_digest = -1, ZERO_DIGEST
        for b in part:
            t = int(uploads.terminal[b])
            if t != prev_terminal:
                prev_terminal, prev_digest = t, ZERO_DIGEST
            # The canonical header is its 32 fixed bytes followed by the previous digest.
            h = hashlib.sha256(fixed[b * 32 : b * 32 + 32] + prev_digest)
            h.update(body[starts[b] * size : ends[b] * size])
            digest = h.digest()
            previous[b] = prev_digest
            signatures[b] = keys[t].sign(SIGNATURE_CONTEXT + digest)
            prev_digest = digest

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(sign_part, parts))
    batches["signature"] = np.frombuffer(b"".join(signatures), np.uint8).reshape(-1, 64)
    batches["prev_digest"] = np.frombuffer(b"".join(previous), np.uint8).reshape(-1, 32)
    order = np.lexsort((batches["terminal_id"], batches["uploaded_ms"]))
    lengths = (ends - starts)[order]
    offsets = np.cumsum(lengths) - lengths
    rows = np.repeat(starts[order] - offsets, lengths) + np.arange(lengths.sum())
    log = RecordLog(
        np.take(records, rows), np.repeat(np.arange(len(order)), lengths), batches[order]
    )
    return log, rows


def _fill_tacs(records: np.ndarray, master_key: bytes, workers: int) -> None:
    """Every record's TAC, the rows split between threads (the SipHash ufuncs drop the GIL)."""
    bounds = np.linspace(0, len(records), max(1, workers) + 1).astype(np.int64)

    def part(k: int) -> None:
        rows = slice(bounds[k], bounds[k + 1])
        records["tac"][rows] = compute_tacs(master_key, records[rows])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(part, range(len(bounds) - 1)))


def _batch_table(
    records: np.ndarray, uploads: Uploads, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Header fields known before signing; batch serials count from 1 per terminal."""
    batches = np.zeros(len(starts), BATCH_DTYPE)
    terminal = uploads.terminal
    first = np.r_[True, terminal[1:] != terminal[:-1]] if len(terminal) else np.empty(0, bool)
    index = np.arange(len(terminal))
    batches["batch_serial"] = index - np.maximum.accumulate(np.where(first, index, 0)) + 1
    batches["terminal_id"] = terminal + 1
    batches["key_id"] = terminal + 1
    batches["first_serial"] = records["terminal_serial"][starts]
    batches["last_serial"] = records["terminal_serial"][ends - 1]
    batches["record_count"] = ends - starts
    batches["uploaded_ms"] = DAY_START_MS + np.round(uploads.uploaded_s * 1000).astype(np.int64)
    return batches


def _terminal_cuts(terminal: np.ndarray, workers: int) -> list[int]:
    """Batch indices, at terminal boundaries, splitting the batches into `workers` parts."""
    if len(terminal) == 0:
        return []
    change = np.flatnonzero(np.r_[True, terminal[1:] != terminal[:-1]])
    cuts = []
    for k in range(1, workers):
        i = int(np.searchsorted(change, k * len(terminal) // workers))
        if 0 < i < len(change):
            cuts.append(int(change[i]))
    return sorted(set(cuts))
