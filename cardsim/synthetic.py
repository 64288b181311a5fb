"""A synthetic peak-day record log for benchmarks and tests: no simulation, just numbers.

Terminals of every domain, batch sizes around a target, about 1 % of batches uploaded twice,
and a few batches tampered after signing and records forged by a merchant, so that every
path of the settlement kernel is exercised at full scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsim.records.batch import BATCH_DTYPE, batch_digest, header_array, sign_digest
from cardsim.records.codes import FIRST_PAYEE, Domain, Kind
from cardsim.records.keys import KeyRegistry, TerminalKey, compute_tacs
from cardsim.records.layout import ZERO_DIGEST, empty_records
from cardsim.records.log import RecordLog

DAY_START_MS = 1_782_864_000_000
"""2026-07-01 00:00 Asia/Shanghai expressed in ms since the Unix epoch (UTC)."""
DAY_MS = 86_400_000

DOMAIN_SHARE = {
    Domain.BUS: 0.55,
    Domain.BIKE: 0.10,
    Domain.HOSPITAL: 0.05,
    Domain.POS: 0.25,
    Domain.TOPUP: 0.05,
}
"""Share of terminals per domain; bus validators dominate a city's reader count."""


@dataclass(frozen=True)
class SyntheticSpec:
    """How big and how dirty the synthetic log is."""

    records: int
    terminals: int = 20_000
    batch_size: int = 1_000
    cards: int | None = None
    """Distinct cards; default records // 4 (about four taps per card a day)."""
    repeat_fraction: float = 0.01
    """Share of batches uploaded a second time (retries after a lost acknowledgement)."""
    tampered_batches: int = 3
    forged_records: int = 3
    seed: int = 0


@dataclass
class SyntheticDay:
    """The log, the registry that checks it, and what was injected."""

    log: RecordLog
    registry: KeyRegistry
    tampered_batches: list[int]
    """Batch rows altered after signing (their signature no longer verifies)."""
    forged_ids: list[tuple[int, int]]
    """(terminal_id, terminal_serial) of records altered before signing (bad TAC)."""
    terminal_keys: list[Ed25519PrivateKey]
    """Private key of terminal i + 1 at index i (never written to disk)."""

    def resign(self, b: int) -> None:
        """Sign batch row b again over its current header and records, as its terminal would."""
        log = self.log
        rows = np.flatnonzero(log.batch_row == b)
        digest = batch_digest(header_array(log.batches[b : b + 1])[0], log.records[rows])
        key = self.terminal_keys[int(log.batches["key_id"][b]) - 1]
        log.batches["signature"][b] = np.frombuffer(sign_digest(key, digest), np.uint8)


def generate(spec: SyntheticSpec) -> SyntheticDay:
    """Build the log. Deterministic in spec (one seed, independent sub-streams)."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(4)]
    terminals = max(1, min(spec.terminals, spec.records))
    keys = _terminal_keys(terminals, streams[0])
    registry = KeyRegistry(master_key=streams[0].bytes(16))
    for tid, key in enumerate(keys, start=1):
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        registry.add(TerminalKey(key_id=tid, terminal_id=tid, public_key=public))
    records = _records(spec, terminals, streams[1])
    records["tac"] = compute_tacs(registry.master_key, records)
    forged = np.sort(
        streams[3].choice(len(records), size=min(len(records), spec.forged_records), replace=False)
    )
    # A dishonest merchant inflates the amount after the card made its TAC, then signs.
    records["amount_fen"][forged] += 100
    forged_ids = [
        (int(records["terminal_id"][r]), int(records["terminal_serial"][r]))
        for r in forged.tolist()
    ]
    log = _batches(records, spec.batch_size, keys, streams[2])
    tampered = _tamper(log, spec.tampered_batches, streams[3])
    log = _repeat(log, spec.repeat_fraction, streams[3])
    return SyntheticDay(log, registry, tampered, forged_ids, keys)


def _terminal_keys(n: int, rng: np.random.Generator) -> list[Ed25519PrivateKey]:
    return [Ed25519PrivateKey.from_private_bytes(rng.bytes(32)) for _ in range(n)]


def _records(spec: SyntheticSpec, terminals: int, rng: np.random.Generator) -> np.ndarray:
    n = spec.records
    domains = np.array(list(DOMAIN_SHARE), np.uint8)
    term_domain = rng.choice(domains, size=terminals, p=list(DOMAIN_SHARE.values()))
    tid = np.sort(rng.integers(1, terminals + 1, size=n, dtype=np.uint32))
    rec = empty_records(n)
    rec["terminal_id"] = tid
    rec["domain"] = term_domain[tid - 1]
    rec["payee"] = FIRST_PAYEE + (tid % 997)
    times = DAY_START_MS + rng.integers(0, DAY_MS, n)
    rec["time_ms"] = times[np.lexsort((times, tid))]
    first = np.searchsorted(tid, tid, side="left")
    rec["terminal_serial"] = np.arange(n) - first + 1
    cards = spec.cards or max(1, n // 4)
    rec["card_id"] = rng.integers(1, cards + 1, size=n, dtype=np.uint64)
    order = np.lexsort((rec["time_ms"], rec["card_id"]))
    card_sorted = rec["card_id"][order]
    counter = np.arange(n) - np.searchsorted(card_sorted, card_sorted, side="left") + 1
    rec["card_counter"][order] = counter
    _amounts(rec, rng)
    return rec


def _amounts(rec: np.ndarray, rng: np.random.Generator) -> None:
    n, domain = len(rec), rec["domain"]
    rec["kind"] = Kind.DEBIT
    rec["amount_fen"] = rng.choice(np.array([100, 150, 200]), size=n)
    pos = domain == Domain.POS
    rec["amount_fen"][pos] = np.minimum(
        rng.lognormal(7.5, 1.0, pos.sum()).astype(np.int64), 500_000
    )
    rec["kind"][pos & (rng.random(n) < 0.03)] = Kind.REFUND
    hospital = domain == Domain.HOSPITAL
    rec["amount_fen"][hospital] = rng.integers(500, 60_000, hospital.sum())
    rec["kind"][hospital & (rng.random(n) < 0.4)] = Kind.INSURANCE_SHARE
    bike = domain == Domain.BIKE
    rec["amount_fen"][bike] = rng.choice(np.array([0, 0, 100, 200, 300]), size=bike.sum())
    topup = domain == Domain.TOPUP
    rec["kind"][topup] = Kind.LOAD
    rec["amount_fen"][topup] = rng.choice(np.array([5_000, 10_000, 20_000]), size=topup.sum())
    rec["balance_after_fen"] = rng.integers(0, 100_000, n)


def _batches(
    records: np.ndarray, batch_size: int, keys: list[Ed25519PrivateKey], rng: np.random.Generator
) -> RecordLog:
    """Cut each terminal's records into batches, chain and sign them, order by upload time."""
    tid = records["terminal_id"]
    starts = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
    ends = np.r_[starts[1:], len(records)]
    cuts: list[tuple[int, int]] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        pos = s
        while pos < e:
            size = int(rng.integers(max(1, batch_size // 2), batch_size * 3 // 2 + 1))
            cuts.append((pos, min(e, pos + size)))
            pos += size
    batches = np.zeros(len(cuts), BATCH_DTYPE)
    prev: dict[int, tuple[int, bytes]] = {}
    for b, (s, e) in enumerate(cuts):
        t = int(tid[s])
        serial, prev_digest = prev.get(t, (0, ZERO_DIGEST))
        row = batches[b]
        row["terminal_id"], row["batch_serial"], row["key_id"] = t, serial + 1, t
        row["first_serial"] = records["terminal_serial"][s]
        row["last_serial"] = records["terminal_serial"][e - 1]
        row["record_count"] = e - s
        row["prev_digest"] = np.frombuffer(prev_digest, np.uint8)
        digest = batch_digest(header_array(batches[b : b + 1])[0], records[s:e])
        row["signature"] = np.frombuffer(sign_digest(keys[t - 1], digest), np.uint8)
        row["uploaded_ms"] = records["time_ms"][e - 1] + int(rng.integers(1_000, 600_000))
        prev[t] = (serial + 1, digest)
    return _in_upload_order(records, batches, np.array(cuts, np.int64))


def _in_upload_order(records: np.ndarray, batches: np.ndarray, cuts: np.ndarray) -> RecordLog:
    order = np.argsort(batches["uploaded_ms"], kind="stable")
    lengths = cuts[order, 1] - cuts[order, 0]
    offsets = np.cumsum(lengths) - lengths
    rows = np.repeat(cuts[order, 0] - offsets, lengths) + np.arange(lengths.sum())
    return RecordLog(records[rows], np.repeat(np.arange(len(order)), lengths), batches[order])


def _tamper(log: RecordLog, count: int, rng: np.random.Generator) -> list[int]:
    """Alter one record in each of `count` batches after they were signed."""
    n_b = len(log.batches)
    picks = np.sort(rng.choice(n_b, size=min(n_b, count), replace=False))
    starts = np.searchsorted(log.batch_row, picks)
    for b, s in zip(picks.tolist(), starts.tolist(), strict=True):
        row = s + int(rng.integers(0, log.batches["record_count"][b]))
        log.records["amount_fen"][row] += 100
    return picks.tolist()


def _repeat(log: RecordLog, fraction: float, rng: np.random.Generator) -> RecordLog:
    """Upload a share of the batches a second time, an hour later."""
    n_b = len(log.batches)
    repeats = np.sort(rng.choice(n_b, size=int(n_b * fraction), replace=False))
    if not len(repeats):
        return log
    chosen = np.isin(log.batch_row, repeats)
    again = RecordLog(
        log.records[chosen],
        np.searchsorted(repeats, log.batch_row[chosen]),
        log.batches[repeats].copy(),
    )
    again.batches["uploaded_ms"] += 3_600_000
    return log.concat(again)
