"""Exactly once across days: records booked on closed days are never booked again.

A clearing day that is closed is final, but terminals keep retrying: a batch whose
acknowledgement was lost is uploaded again the next day, or a record re-sent in a new batch.
The ledger hands the kernel a `BookedIndex`, the record ids booked on every closed day with
their TACs, and such a record is treated as if its closed-day copy were the first row of the
log: same id and same TAC (a MAC over all the record's other bytes) is a DUPLICATE_RECORD,
same id with another TAC a RECORD_CONFLICT with its alert. Both are decided by content, never
by a terminal's clock.

As in the kernel's own repeat check, the work is per batch first: only accepted batches whose
serial range meets an id of the index have their records read back and looked up.

The index also holds the card counters the closed days' records spent, for the card pass
(settlement/cards.py): a card spends each counter once, on whichever day; the serials of the
batches closed days accepted, so that serials they hold are not missing today; and those
batches' digests, so that each terminal's hash chain of batches is checked across days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cardsim.settlement.batches import SerialGroups, batch_keys
from cardsim.settlement.chunk import LogState
from cardsim.settlement.gaps import still_missing
from cardsim.settlement.grouping import Sums
from cardsim.settlement.positions import flow_sums
from cardsim.settlement.reasons import BOOKED, Alert, Reason
from cardsim.settlement.sorting import sort_keys
from cardsim.settlement.source import ChunkSource, fetch, ranges, record_ids

_READ = [
    "terminal_id",
    "terminal_serial",
    "card_id",
    "tac",
    "payee",
    "kind",
    "domain",
    "amount_fen",
]


def _no_digests() -> np.ndarray:
    return np.empty((0, 32), np.uint8)


@dataclass(frozen=True)
class BookedIndex:
    """Record ids (terminal_id << 32 | terminal_serial) booked on closed days, ascending and
    distinct, each with the TAC it was booked with; and the card counters those records spent.
    """

    rids: np.ndarray
    tacs: np.ndarray
    card_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    card_counters: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    """(card_id, card_counter) of the records booked on closed days, sorted by card, then
    counter, and distinct. A card spends each counter once, so a record booked today with one
    of these is a cloned card's (the card pass's CARD_COUNTER_CLASH)."""
    batch_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    """terminal_id << 32 | batch_serial of the batches closed days accepted (booked records
    from, or rejected only some records of), ascending and distinct."""
    seen_rids: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    """Record ids of accepted batches that closed days rejected record by record (malformed,
    bad TAC), ascending and distinct: they arrived, so their serials are not missing."""
    chain_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    """terminal_id << 32 | batch_serial of the accepted batches whose digest the ledger kept,
    ascending (a key repeats for a batch retried on another day, or a terminal that signed
    two batches under one serial)."""
    chain_digests: np.ndarray = field(default_factory=_no_digests)
    """(len(chain_keys), 32) uint8: the digest of the batch under each chain key."""
    head_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    """Keys of the accepted batches whose predecessor (batch serial one lower) their own day
    did not accept, ascending: when it arrives later, it must be the batch they name."""
    head_prevs: np.ndarray = field(default_factory=_no_digests)
    """(len(head_keys), 32) uint8: the prev_digest each of those batches names."""

    @classmethod
    def empty(cls) -> BookedIndex:
        """No day closed yet."""
        return cls(np.empty(0, np.uint64), np.empty(0, np.uint64))

    @classmethod
    def of_days(
        cls,
        days: list[tuple[np.ndarray, np.ndarray]],
        cards: list[tuple[np.ndarray, np.ndarray]] | None = None,
        batches: list[np.ndarray] | None = None,
        seen: list[np.ndarray] | None = None,
        chains: list[tuple[np.ndarray, np.ndarray]] | None = None,
        heads: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> BookedIndex:
        """The union of several days' (rids, tacs), (card_ids, card_counters), batch keys,
        seen record ids, (batch keys, digests) and (head keys, prev digests); a record id
        booked twice is an error."""
        if not days:
            return cls.empty()
        rids = np.concatenate([d[0] for d in days]).astype(np.uint64)
        tacs = np.concatenate([d[1] for d in days]).astype(np.uint64)
        order = np.argsort(rids, kind="stable")
        rids, tacs = rids[order], tacs[order]
        if len(rids) > 1 and bool(np.any(rids[1:] == rids[:-1])):
            raise AssertionError("a record id was booked on two days")
        return cls(
            rids,
            tacs,
            *_distinct_pairs(cards or []),
            _keys(batches),
            _keys(seen),
            *_by_key(chains or []),
            *_by_key(heads or []),
        )

    def card_keys(self) -> np.ndarray:
        """card_id << 32 | card_counter of the pairs whose card id is below 2^32, ascending
        (a prefix of the pairs: they are sorted by card)."""
        below = int(np.searchsorted(self.card_ids, np.uint64(2**32)))
        return (self.card_ids[:below] << np.uint64(32)) | self.card_counters[:below].astype(
            np.uint64
        )

    def __len__(self) -> int:
        return len(self.rids)

    def lookup(self, rids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: was it booked on a closed day, and with which TAC (0 when not)."""
        if not len(self.rids):
            return np.zeros(len(rids), bool), np.zeros(len(rids), np.uint64)
        pos = np.minimum(np.searchsorted(self.rids, rids), len(self.rids) - 1)
        found = self.rids[pos] == rids
        return found, np.where(found, self.tacs[pos], np.uint64(0))


def _keys(days: list[np.ndarray] | None) -> np.ndarray:
    """Several days' uint64 keys, ascending and distinct."""
    return np.unique(np.concatenate([np.empty(0, np.uint64), *(days or [])]).astype(np.uint64))


def day_chains(
    accepted: np.ndarray, digests: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """What `of_days` takes (`chains`, `heads`) of one day whose accepted batches are the
    rows `accepted` of the batch table, `digests` their digests."""
    keys = batch_keys(accepted)
    # Batches whose predecessor the day did not accept: a later day may bring it.
    head = (accepted["batch_serial"] > 0) & ~np.isin(keys - np.uint64(1), keys)
    return [(keys, digests)], [(keys[head], accepted["prev_digest"][head])]


def _by_key(days: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Several days' (batch key, digest) pairs, sorted by key."""
    keys = np.concatenate([np.empty(0, np.uint64), *(k for k, _ in days)]).astype(np.uint64)
    digests = np.concatenate([_no_digests(), *(d for _, d in days)])
    order = np.argsort(keys, kind="stable")
    return keys[order], digests[order]


def _distinct_pairs(cards: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The (card, counter) pairs of all days, sorted and distinct. Card ids below 2^32 (the
    norm) pack with the counter into one key for the radix sort (settlement/sorting.py): on a
    peak day's ten million pairs np.lexsort alone takes about three times as long."""
    card = np.concatenate([c[0] for c in cards] or [np.empty(0)]).astype(np.uint64)
    counter = np.concatenate([c[1] for c in cards] or [np.empty(0)]).astype(np.uint32)
    if len(card) and int(card.max()) < 2**32:
        keys = sort_keys(card << np.uint64(32) | counter.astype(np.uint64))
        card, counter = keys >> np.uint64(32), (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    else:
        order = np.lexsort((counter, card))
        card, counter = card[order], counter[order]
    new = np.ones(len(card), bool)
    new[1:] = (card[1:] != card[:-1]) | (counter[1:] != counter[:-1])
    return card[new], counter[new]


def gaps_left(alerts: list[tuple], index: BookedIndex | None) -> list[tuple]:
    """The alerts with each TERMINAL_SERIAL_GAP and BATCH_SERIAL_GAP cut by the record ids and
    batch serials closed days booked: a terminal that uploads late sends serials below ones a
    closed day already booked, and those are not missing."""
    if index is None:
        return alerts
    held = {
        Alert.TERMINAL_SERIAL_GAP: (index.rids, index.seen_rids),
        Alert.BATCH_SERIAL_GAP: (index.batch_keys,),
    }
    out = [a for a in alerts if a[0] not in held]
    for code, key_sets in held.items():
        gaps = np.array([a for a in alerts if a[0] == code], np.int64).reshape(-1, 7)
        terminal, first, last = gaps[:, 1], gaps[:, 3], gaps[:, 4]
        for keys in key_sets:  # a gap minus A, then minus B, is the gap minus A and B
            if len(keys) and len(terminal):
                base = terminal.astype(np.uint64) << np.uint64(32)
                gap, first, last = still_missing(base, first, last, keys)
                terminal = terminal[gap]
        out += [
            (code, t, -1, f, g, -1, -1)
            for t, f, g in zip(terminal.tolist(), first.tolist(), last.tolist(), strict=True)
        ]
    return out


def gaps_after_closed_days(
    batches: np.ndarray, accepted: np.ndarray, index: BookedIndex | None
) -> list[tuple]:
    """Serials missing between the last that closed days hold of a terminal and the first it
    sends today. A day finds gaps between its own batches, so a batch lost at the boundary of
    two days would otherwise be reported on neither; serials below ones a closed day holds
    were that day's to report, and are not reported again."""
    if index is None:
        return []
    rows = np.flatnonzero(accepted)
    filled = rows[batches["record_count"][rows] > 0]
    return _boundary_gaps(
        Alert.BATCH_SERIAL_GAP, batches[rows], "batch_serial", (index.batch_keys,)
    ) + _boundary_gaps(
        Alert.TERMINAL_SERIAL_GAP, batches[filled], "first_serial", (index.rids, index.seen_rids)
    )


def links_to_closed_days(
    batches: np.ndarray, groups: SerialGroups, digests: np.ndarray, index: BookedIndex | None
) -> list[tuple]:
    """Each terminal's hash chain of batches across days, where today's own `chain_alerts`
    cannot see it. BATCH_CHAIN_BREAK: a batch whose predecessor (batch serial one lower) a
    closed day accepted, and today did not, names another digest; or a batch arrives after a
    closed day accepted its successor without it, and is not the one that successor names.
    BATCH_CONFLICT: a batch under a serial a closed day accepted is another batch (a retry
    is the same one)."""
    if index is None or not len(groups.keys):
        return []
    keys, heads, agree = groups.keys, groups.heads, ~groups.split
    tid, serial = groups.terminal, groups.serial
    closed, same = _closed_digest(index.chain_keys, index.chain_digests, keys, digests[heads])
    conflict = closed & ~same & agree
    prev = keys - (serial > 0).astype(np.uint64)
    prev_closed, named = _closed_digest(
        index.chain_keys, index.chain_digests, prev, batches["prev_digest"][heads]
    )
    back = prev_closed & ~named & ~_in(keys, prev) & (serial > 0)
    # A closed batch waiting for its predecessor; once a closed day holds that predecessor,
    # the link was checked on the day it arrived.
    succ = keys + (serial < 0xFFFFFFFF).astype(np.uint64)
    waiting, named = _closed_digest(index.head_keys, index.head_prevs, succ, digests[heads])
    forward = waiting & ~named & ~closed & ~_in(keys, succ) & agree & (serial < 0xFFFFFFFF)
    out: list[tuple] = [
        (Alert.BATCH_CONFLICT, tid[g], -1, serial[g], serial[g], -1, -1)
        for g in np.flatnonzero(conflict).tolist()
    ]
    out += [
        (Alert.BATCH_CHAIN_BREAK, tid[g], -1, serial[g], serial[g], int(heads[g]), -1)
        for g in np.flatnonzero(back).tolist()
    ]
    out += [  # the broken link is the closed batch's: it is not in today's input
        (Alert.BATCH_CHAIN_BREAK, tid[g], -1, serial[g] + 1, serial[g] + 1, -1, -1)
        for g in np.flatnonzero(forward).tolist()
    ]
    return out


def _in(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For ascending distinct `keys`: whether each of `wanted` is one of them."""
    if not len(keys):
        return np.zeros(len(wanted), bool)
    return keys[np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)] == wanted


def _closed_digest(
    held_keys: np.ndarray, held_digests: np.ndarray, keys: np.ndarray, digests: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per key: do the ascending `held_keys` hold it, and is digests[i] one of its digests."""
    lo = np.searchsorted(held_keys, keys, "left")
    hi = np.searchsorted(held_keys, keys, "right")
    held = hi > lo
    if not len(held_keys):
        return held, held.copy()
    same = held & np.all(held_digests[np.minimum(lo, len(held_keys) - 1)] == digests, axis=1)
    for i in np.flatnonzero(held & ~same & (hi - lo > 1)).tolist():
        same[i] = bool(np.all(held_digests[lo[i] : hi[i]] == digests[i], axis=1).any())
    return held, same


def _boundary_gaps(
    code: Alert, batches: np.ndarray, field_name: str, held: tuple[np.ndarray, ...]
) -> list[tuple]:
    if not len(batches) or not any(len(keys) for keys in held):
        return []
    keys = batches["terminal_id"].astype(np.uint64) << np.uint64(32)
    keys = np.sort(keys | batches[field_name].astype(np.uint64))
    low = keys[np.r_[True, (keys[1:] >> np.uint64(32)) != (keys[:-1] >> np.uint64(32))]]
    terminal = low >> np.uint64(32)
    before = np.full(len(low), -1, np.int64)  # the terminal's last closed serial below today's
    above = np.zeros(len(low), bool)  # a closed serial of the terminal above today's lowest
    for sorted_keys in (k for k in held if len(k)):
        pos = np.searchsorted(sorted_keys, low)
        prev = sorted_keys[np.maximum(pos - 1, 0)]
        mine = (pos > 0) & ((prev >> np.uint64(32)) == terminal)
        serial = (prev & np.uint64(0xFFFFFFFF)).astype(np.int64)
        before = np.where(mine, np.maximum(before, serial), before)
        after = sorted_keys[np.minimum(pos, len(sorted_keys) - 1)]
        above |= (pos < len(sorted_keys)) & ((after >> np.uint64(32)) == terminal)
    first = (low & np.uint64(0xFFFFFFFF)).astype(np.int64)
    gap = np.flatnonzero((before >= 0) & ~above & (first > before + 1))
    return [
        (code, t, -1, b + 1, f - 1, -1, -1)
        for t, b, f in zip(
            terminal[gap].astype(np.int64).tolist(),
            before[gap].tolist(),
            first[gap].tolist(),
            strict=True,
        )
    ]


def drop_booked_before(
    source: ChunkSource,
    outcome: np.ndarray,
    cols: LogState,
    batches: np.ndarray,
    accepted: np.ndarray,
    batch_of: Callable[[np.ndarray], np.ndarray],
    index: BookedIndex | None,
) -> tuple[Sums, list[tuple]]:
    """Mark records of accepted batches already booked on a closed day in `outcome`; return
    the flows they had contributed (for the netting to subtract) and the conflict alerts."""
    if index is None or not len(index):
        return flow_sums(*(np.empty(0, np.uint32),) * 4), []
    rows = _rows_meeting(index, cols, batches, accepted)
    rows = rows[outcome[rows] == BOOKED]
    if not len(rows):
        return flow_sums(*(np.empty(0, np.uint32),) * 4), []
    found = fetch(source, _READ, rows)
    seen, tac = index.lookup(record_ids(found))
    same = seen & (tac == found["tac"])
    conflict = seen & ~same
    outcome[rows[same]] = Reason.DUPLICATE_RECORD
    outcome[rows[conflict]] = Reason.RECORD_CONFLICT
    alerts = [
        (Alert.RECORD_CONFLICT, t, c, s, s, b, r)
        for t, c, s, b, r in zip(
            found["terminal_id"][conflict].tolist(),
            found["card_id"][conflict].tolist(),
            found["terminal_serial"][conflict].tolist(),
            batch_of(rows[conflict]).tolist(),
            rows[conflict].tolist(),
            strict=True,
        )
    ]
    gone = flow_sums(*(found[n][seen] for n in ("payee", "kind", "domain", "amount_fen")))
    return gone, alerts


def _rows_meeting(
    index: BookedIndex, cols: LogState, batches: np.ndarray, accepted: np.ndarray
) -> np.ndarray:
    """Log rows of the accepted batches whose serial range holds an id of the index."""
    b = np.flatnonzero(accepted & (cols.length > 0))
    terminal = batches["terminal_id"][b].astype(np.uint64) << np.uint64(32)
    lo = terminal | batches["first_serial"][b].astype(np.uint64)
    hi = terminal | batches["last_serial"][b].astype(np.uint64)
    meets = np.searchsorted(index.rids, lo) < np.searchsorted(index.rids, hi, side="right")
    b = b[meets]
    return ranges(cols.start[b], cols.length[b])
