"""A slow, obviously-correct settler in plain Python: one record at a time, dicts and loops.

Used only by tests, to check the fast kernel on arbitrary logs. It follows the rules of
docs/settlement.md in the order they are written there, without any of the kernel's shortcuts.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

from cardsim.records.batch import batch_digest, header_array, signature_ok
from cardsim.records.codes import FIRST_PAYEE, Domain, Kind, Participant
from cardsim.records.keys import KeyRegistry
from cardsim.records.layout import CARD_KEY_TAG, KNOWN_FLAGS, MAX_AMOUNT_FEN, TAC_COVERED_BYTES
from cardsim.records.log import RecordLog
from cardsim.records.siphash import siphash24, siphash24_128
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.reasons import BOOKED, PENDING, Alert, Reason
from cardsim.settlement.result import POSITION_DTYPE, Settlement, make_alerts


def reference_settle(
    log: RecordLog, registry: KeyRegistry, fees: FeeSchedule, cutoff_ms: int | None = None
) -> Settlement:
    """Settle a log record by record. Same inputs and result as settlement.kernel.settle."""
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, b in enumerate(log.batch_row.tolist()):
        rows_of[b].append(row)
    outcome = [BOOKED] * len(log.records)
    alerts: list[tuple[int, ...]] = []
    accepted: list[int] = []
    seen: dict[tuple[bytes, bytes, bytes], int] = {}
    headers = header_array(log.batches)
    digests = {}
    for b in range(len(log.batches)):
        rows = rows_of[b]
        digests[b] = batch_digest(headers[b].tobytes(), log.records[rows])
        status = _batch_status(log, registry, b, rows, headers, digests[b], seen, cutoff_ms)
        if status is None:
            accepted.append(b)
            continue
        for row in rows:
            outcome[row] = status
        if status == Reason.BAD_SIGNATURE:
            batch = log.batches[b]
            alerts.append(
                (
                    Alert.TAMPERED_BATCH,
                    int(batch["terminal_id"]),
                    -1,
                    int(batch["first_serial"]),
                    int(batch["last_serial"]),
                    b,
                    -1,
                )
            )
        if status == Reason.REVOKED_KEY:
            alerts.append(
                (Alert.REVOKED_KEY_USED, int(log.batches[b]["terminal_id"]), -1, -1, -1, b, -1)
            )
    _check_records(log, registry, accepted, rows_of, outcome, alerts)
    alerts += _batch_alerts(log, accepted, digests)
    alerts += _serial_gaps(log, accepted, rows_of)
    booked = [r for r, o in enumerate(outcome) if o == BOOKED]
    pending = [r for r, o in enumerate(outcome) if o == PENDING]
    made = [r for r in pending if _made_by_card(registry.master_key, log.records[r])]
    alerts += _card_alerts(log, booked, made)
    return Settlement(
        np.array(outcome, dtype=np.uint8),
        np.array(booked, dtype=np.int64),
        make_alerts(alerts),
        _positions(log, booked, fees),
    )


def _batch_status(
    log: RecordLog,
    registry: KeyRegistry,
    b: int,
    rows: list[int],
    headers: np.ndarray,
    digest: bytes,
    seen: dict[tuple[bytes, bytes, bytes], int],
    cutoff_ms: int | None,
) -> int | None:
    """The outcome every record of batch b gets, or None when the batch is accepted."""
    batch = log.batches[b]
    identity = (headers[b].tobytes(), batch["signature"].tobytes(), digest)
    if identity in seen:
        return Reason.DUPLICATE_BATCH
    seen[identity] = b
    if cutoff_ms is not None and int(batch["uploaded_ms"]) > cutoff_ms:
        return PENDING
    key = registry.terminals.get(int(batch["key_id"]))
    if key is None:
        return Reason.UNKNOWN_KEY
    if key.revoked:
        return Reason.REVOKED_KEY
    if key.terminal_id != int(batch["terminal_id"]):
        return Reason.KEY_TERMINAL_MISMATCH
    serials = [int(log.records[r]["terminal_serial"]) for r in rows]
    if (
        len(rows) != int(batch["record_count"])
        or not rows
        or any(int(log.records[r]["terminal_id"]) != int(batch["terminal_id"]) for r in rows)
        or any(a >= b for a, b in itertools.pairwise(serials))
        or serials[0] != int(batch["first_serial"])
        or serials[-1] != int(batch["last_serial"])
    ):
        return Reason.MALFORMED_BATCH
    if not signature_ok(registry.public_key(key.key_id), batch["signature"].tobytes(), digest):
        return Reason.BAD_SIGNATURE
    return None


def _record_malformed(rec: np.void) -> bool:
    return not (
        int(rec["domain"]) in set(Domain)
        and int(rec["kind"]) in set(Kind)
        and int(rec["flags"]) & ~KNOWN_FLAGS == 0
        and int(rec["reserved"]) == 0
        and 0 <= int(rec["amount_fen"]) <= MAX_AMOUNT_FEN
        and 0 <= int(rec["balance_after_fen"]) <= MAX_AMOUNT_FEN
        and int(rec["payee"]) >= FIRST_PAYEE
        and int(rec["card_id"]) >= 1
    )


def _tac(master: bytes, rec: np.void) -> int:
    card_key = siphash24_128(
        master, int(rec["card_id"]).to_bytes(8, "little") + CARD_KEY_TAG.to_bytes(8, "little")
    )
    return siphash24(card_key, rec.tobytes()[:TAC_COVERED_BYTES])


def _check_records(
    log: RecordLog,
    registry: KeyRegistry,
    accepted: list[int],
    rows_of: dict[int, list[int]],
    outcome: list[int],
    alerts: list[tuple[int, ...]],
) -> None:
    """Per-record checks in accepted batches, then exactly-once by record id in log order."""
    first_seen: dict[tuple[int, int], bytes] = {}
    for b in accepted:
        for row in rows_of[b]:
            rec = log.records[row]
            tid, serial = int(rec["terminal_id"]), int(rec["terminal_serial"])
            if _record_malformed(rec):
                outcome[row] = Reason.MALFORMED_RECORD
            elif _tac(registry.master_key, rec) != int(rec["tac"]):
                outcome[row] = Reason.BAD_TAC
                alerts.append(
                    (Alert.FORGED_RECORD, tid, int(rec["card_id"]), serial, serial, b, row)
                )
    for row in sorted(r for b in accepted for r in rows_of[b]):
        if outcome[row] != BOOKED:
            continue
        rec = log.records[row]
        rid = (int(rec["terminal_id"]), int(rec["terminal_serial"]))
        if rid not in first_seen:
            first_seen[rid] = rec.tobytes()
        elif first_seen[rid] == rec.tobytes():
            outcome[row] = Reason.DUPLICATE_RECORD
        else:
            outcome[row] = Reason.RECORD_CONFLICT
            alerts.append(
                (
                    Alert.RECORD_CONFLICT,
                    rid[0],
                    int(rec["card_id"]),
                    rid[1],
                    rid[1],
                    int(log.batch_row[row]),
                    row,
                )
            )


def _batch_alerts(log: RecordLog, accepted: list[int], digests: dict[int, bytes]) -> list:
    """Missing batch serials, broken digest chains and equivocating batches, per terminal."""
    alerts = []
    by_terminal: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for b in accepted:
        batch = log.batches[b]
        by_terminal[int(batch["terminal_id"])][int(batch["batch_serial"])].append(b)
    for tid, by_serial in by_terminal.items():
        serials = sorted(by_serial)
        for s in serials:
            if len({digests[b] for b in by_serial[s]}) > 1:
                alerts.append((Alert.BATCH_CONFLICT, tid, -1, s, s, -1, -1))
        for prev, cur in itertools.pairwise(serials):
            if cur > prev + 1:
                alerts.append((Alert.BATCH_SERIAL_GAP, tid, -1, prev + 1, cur - 1, -1, -1))
            elif digests[by_serial[prev][0]] != _prev_digest(log, by_serial[cur][0]):
                alerts.append((Alert.BATCH_CHAIN_BREAK, tid, -1, cur, cur, by_serial[cur][0], -1))
    return alerts


def _prev_digest(log: RecordLog, b: int) -> bytes:
    return bytes(log.batches[b]["prev_digest"].tobytes())


def _serial_gaps(log: RecordLog, accepted: list[int], rows_of: dict[int, list[int]]) -> list:
    serials: dict[int, set[int]] = defaultdict(set)
    for b in accepted:
        for row in rows_of[b]:
            serials[int(log.records[row]["terminal_id"])].add(
                int(log.records[row]["terminal_serial"])
            )
    alerts = []
    for tid, present in serials.items():
        ordered = sorted(present)
        for prev, cur in itertools.pairwise(ordered):
            if cur > prev + 1:
                alerts.append((Alert.TERMINAL_SERIAL_GAP, tid, -1, prev + 1, cur - 1, -1, -1))
    return alerts


def _made_by_card(master: bytes, rec: np.void) -> bool:
    """A pending record fills a gap only if the card made it: well-formed, TAC valid."""
    return not _record_malformed(rec) and _tac(master, rec) == int(rec["tac"])


def _card_alerts(log: RecordLog, booked: list[int], pending: list[int]) -> list:
    """Clashes between booked records; gaps: counters that no booked record holds, nor one of
    the `pending` rows (those the card made)."""
    counters: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for row in booked:
        rec = log.records[row]
        counters[int(rec["card_id"])].append((int(rec["card_counter"]), row))
    late: dict[int, set[int]] = defaultdict(set)
    for row in pending:
        late[int(log.records[row]["card_id"])].add(int(log.records[row]["card_counter"]))
    alerts = []
    for card, seen in counters.items():
        seen.sort()
        for (prev, _), (cur, row) in itertools.pairwise(seen):
            if cur == prev:
                rec = log.records[row]
                alerts.append(
                    (
                        Alert.CARD_COUNTER_CLASH,
                        int(rec["terminal_id"]),
                        card,
                        cur,
                        cur,
                        int(log.batch_row[row]),
                        row,
                    )
                )
            elif cur > prev + 1:
                alerts += [
                    (Alert.CARD_COUNTER_GAP, -1, card, first, last, -1, -1)
                    for first, last in _missing(prev + 1, cur - 1, late[card])
                ]
    return alerts


def _missing(first: int, last: int, held: set[int]) -> list[tuple[int, int]]:
    """The runs of first..last that are not in `held`, as (first, last) pairs."""
    runs = []
    for k in sorted(k for k in held if first <= k <= last):
        if k > first:
            runs.append((first, k - 1))
        first = k + 1
    if first <= last:
        runs.append((first, last))
    return runs


def _positions(log: RecordLog, booked: list[int], fees: FeeSchedule) -> np.ndarray:
    """Double-entry legs of every booked record, then fees on gross debits per payee and domain."""
    received: dict[int, int] = defaultdict(int)
    paid: dict[int, int] = defaultdict(int)
    gross: dict[tuple[int, int], int] = defaultdict(int)
    for p in Participant:
        received[int(p)] += 0
    for row in booked:
        rec = log.records[row]
        kind, amount, payee = Kind(int(rec["kind"])), int(rec["amount_fen"]), int(rec["payee"])
        payer, receiver = {
            Kind.DEBIT: (Participant.ISSUER_FLOAT, payee),
            Kind.DEPOSIT_HOLD: (Participant.ISSUER_FLOAT, payee),
            Kind.LOAD: (payee, Participant.ISSUER_FLOAT),
            Kind.REFUND: (payee, Participant.ISSUER_FLOAT),
            Kind.DEPOSIT_RELEASE: (payee, Participant.ISSUER_FLOAT),
            Kind.INSURANCE_SHARE: (Participant.INSURANCE_FUND, payee),
        }[kind]
        paid[int(payer)] += amount
        received[int(receiver)] += amount
        if kind == Kind.DEBIT:
            gross[(payee, int(rec["domain"]))] += amount
    fee: dict[int, int] = defaultdict(int)
    for (payee, domain), total in gross.items():
        charged = (total * fees.rate(payee, domain) + 5000) // 10000
        fee[payee] += charged
        fee[int(Participant.FEE_INCOME)] -= charged
    people = sorted(set(received) | set(paid) | set(fee))
    rows = [(p, received[p], paid[p], fee[p], received[p] - paid[p] - fee[p]) for p in people]
    return np.array(rows, dtype=POSITION_DTYPE)
