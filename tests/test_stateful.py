"""A Hypothesis state machine over a tiny honest city: cards are issued, topped up, spend and
get refunds at offline terminals, which upload (and re-upload) signed batches, crash with or
without a persisted buffer, while the clearing centre settles the inbox at random moments.

After every step: every record sits in exactly one place (a terminal buffer, lost in a crash,
or uploaded and then booked once, pending, or rejected as a copy), net positions sum to zero,
and money is conserved: the cards' balances equal what the issuer's float booked plus what is
still on its way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from cardsim.records.batch import BATCH_DTYPE, batch_digest, header_array, sign_digest
from cardsim.records.codes import CARD_CREDITS, CARD_DEBITS, FIRST_PAYEE, Domain, Kind
from cardsim.records.keys import KeyRegistry, TerminalKey, compute_tacs
from cardsim.records.layout import ZERO_DIGEST, empty_records
from cardsim.records.log import RecordLog
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import BOOKED, PENDING, Alert, Reason
from cardsim.settlement.result import Settlement
from cardsim.synthetic import DAY_START_MS

TERMINAL_DOMAINS = (Domain.TOPUP, Domain.BUS, Domain.POS, Domain.POS)
FRAUD_ALERTS = {
    Alert.TAMPERED_BATCH,
    Alert.REVOKED_KEY_USED,
    Alert.FORGED_RECORD,
    Alert.RECORD_CONFLICT,
    Alert.BATCH_CHAIN_BREAK,
    Alert.BATCH_CONFLICT,
    Alert.CARD_COUNTER_CLASH,
}
COPY_REASONS = {Reason.DUPLICATE_BATCH, Reason.DUPLICATE_RECORD}


@dataclass
class Terminal:
    """An offline terminal: its key, its serial counters and the records not yet uploaded."""

    terminal_id: int
    domain: Domain
    key: Ed25519PrivateKey
    persisted: bool
    next_serial: int = 1
    batch_serial: int = 0
    prev_digest: bytes = ZERO_DIGEST
    buffer: list[np.ndarray] = field(default_factory=list)


def _effect(records: np.ndarray) -> int:
    """How much the records moved card balances, in fen."""
    kind, amount = records["kind"], records["amount_fen"]
    up = np.isin(kind, [int(k) for k in CARD_CREDITS])
    down = np.isin(kind, [int(k) for k in CARD_DEBITS])
    return int(amount[up].sum()) - int(amount[down].sum())


class CityDay(RuleBasedStateMachine):
    cards = Bundle("cards")

    def __init__(self) -> None:
        super().__init__()
        self.registry = KeyRegistry(master_key=hashlib.sha256(b"stateful issuer").digest()[:16])
        self.terminals: list[Terminal] = []
        self.balance: dict[int, int] = {}
        self.counter: dict[int, int] = {}
        self.clock_ms = DAY_START_MS
        self.inbox: list[tuple[np.ndarray, np.ndarray]] = []
        self.lost: list[np.ndarray] = []
        self.result: Settlement | None = None
        self.cutoff_ms: int | None = None

    @initialize(
        target=cards,
        persisted=st.lists(st.booleans(), min_size=4, max_size=4),
        count=st.integers(1, 4),
    )
    def open_day(self, persisted: list[bool], count: int) -> MultipleResults[int]:
        """Terminals installed, and a few cards in use, already loaded at the top-up desk."""
        for i, (domain, keep) in enumerate(zip(TERMINAL_DOMAINS, persisted, strict=True)):
            tid = i + 1
            key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(bytes([tid])).digest())
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self.registry.add(TerminalKey(key_id=tid, terminal_id=tid, public_key=public))
            self.terminals.append(Terminal(tid, domain, key, keep))
        issued = [self.issue() for _ in range(count)]
        for card in issued:
            self._tap(self.terminals[0], card, Kind.LOAD, 20_000)
        return multiple(*issued)

    # -- the card side ------------------------------------------------------------------------

    @rule(target=cards)
    def issue(self) -> int:
        card = len(self.balance) + 1
        self.balance[card], self.counter[card] = 0, 0
        return card

    @rule(card=cards, amount=st.sampled_from([5_000, 10_000, 20_000]))
    def top_up(self, card: int, amount: int) -> None:
        self._tap(self.terminals[0], card, Kind.LOAD, amount)

    @rule(card=cards, which=st.integers(1, 3), amount=st.integers(1, 30_000))
    def purchase(self, card: int, which: int, amount: int) -> None:
        if self.balance[card] >= amount:  # the card refuses to go below zero
            self._tap(self.terminals[which], card, Kind.DEBIT, amount)

    @rule(card=cards, which=st.integers(2, 3), amount=st.integers(1, 5_000))
    def refund(self, card: int, which: int, amount: int) -> None:
        self._tap(self.terminals[which], card, Kind.REFUND, amount)

    def _tap(self, terminal: Terminal, card: int, kind: Kind, amount: int) -> None:
        self.clock_ms += 1_000
        self.counter[card] += 1
        self.balance[card] += -amount if kind in CARD_DEBITS else amount
        rec = empty_records(1)
        rec["terminal_id"], rec["terminal_serial"] = terminal.terminal_id, terminal.next_serial
        rec["card_id"], rec["card_counter"] = card, self.counter[card]
        rec["payee"] = FIRST_PAYEE + terminal.terminal_id
        rec["time_ms"], rec["amount_fen"] = self.clock_ms, amount
        rec["balance_after_fen"] = self.balance[card]
        rec["domain"], rec["kind"] = terminal.domain, kind
        rec["tac"] = compute_tacs(self.registry.master_key, rec)
        terminal.next_serial += 1
        terminal.buffer.append(rec)

    # -- terminals and the network -------------------------------------------------------------

    @rule(which=st.integers(0, 3))
    def upload(self, which: int) -> None:
        terminal = self.terminals[which]
        if not terminal.buffer:
            return
        records = np.concatenate(terminal.buffer)
        terminal.buffer = []
        batch = np.zeros(1, BATCH_DTYPE)
        terminal.batch_serial += 1
        batch["terminal_id"], batch["key_id"] = terminal.terminal_id, terminal.terminal_id
        batch["batch_serial"] = terminal.batch_serial
        batch["first_serial"] = records["terminal_serial"][0]
        batch["last_serial"] = records["terminal_serial"][-1]
        batch["record_count"] = len(records)
        batch["prev_digest"] = np.frombuffer(terminal.prev_digest, np.uint8)
        digest = batch_digest(header_array(batch)[0], records)
        batch["signature"] = np.frombuffer(sign_digest(terminal.key, digest), np.uint8)
        terminal.prev_digest = digest
        self._receive(batch, records)

    @precondition(lambda self: bool(self.inbox))
    @rule(data=st.data())
    def upload_again(self, data: st.DataObject) -> None:
        """A retry after a lost acknowledgement: the same signed batch arrives again."""
        batch, records = data.draw(st.sampled_from(self.inbox))
        self._receive(batch.copy(), records)

    def _receive(self, batch: np.ndarray, records: np.ndarray) -> None:
        self.clock_ms += 60_000
        batch["uploaded_ms"] = self.clock_ms
        self.inbox.append((batch, records))
        self.result = None

    @rule(which=st.integers(0, 3))
    def crash(self, which: int) -> None:
        """Power loss: a terminal without a persisted buffer loses its unuploaded records."""
        terminal = self.terminals[which]
        if not terminal.persisted and terminal.buffer:
            self.lost.extend(terminal.buffer)
            terminal.buffer = []

    # -- the clearing centre -------------------------------------------------------------------

    @rule(cut=st.one_of(st.none(), st.integers(0, 5)))
    def settle_day(self, cut: int | None) -> None:
        """Settle the whole inbox, with a cut-off `cut` uploads before the latest, or none."""
        uploads = sorted(int(b["uploaded_ms"][0]) for b, _ in self.inbox)
        self.cutoff_ms = None if cut is None or cut >= len(uploads) else uploads[-1 - cut] - 1
        self.result = settle(self._log(), self.registry, cutoff_ms=self.cutoff_ms)

    @precondition(lambda self: self.result is not None)
    @rule()
    def restart_clearing(self) -> None:
        """The clearing centre restarts and settles its durable inbox again: same answer."""
        assert self.result is not None
        again = settle(self._log(), self.registry, cutoff_ms=self.cutoff_ms)
        assert np.array_equal(again.outcome, self.result.outcome)
        assert np.array_equal(again.positions, self.result.positions)
        assert np.array_equal(again.alerts, self.result.alerts)

    def _log(self) -> RecordLog:
        if not self.inbox:
            return RecordLog(empty_records(0), np.empty(0, np.int64), np.zeros(0, BATCH_DTYPE))
        batches = np.concatenate([b for b, _ in self.inbox])
        records = np.concatenate([r for _, r in self.inbox])
        rows = np.repeat(np.arange(len(self.inbox)), [len(r) for _, r in self.inbox])
        return RecordLog(records, rows, batches)

    # -- invariants ----------------------------------------------------------------------------

    def _settled(self) -> Settlement:
        """The settlement of the inbox as it stands (settled afresh after every upload)."""
        if self.result is None:
            self.cutoff_ms = None
            self.result = settle(self._log(), self.registry)
        return self.result

    @invariant()
    def every_record_in_one_place(self) -> None:
        buffered = [r for t in self.terminals for r in t.buffer]
        uploaded = {
            (int(r["terminal_id"]), int(r["terminal_serial"])) for _, rs in self.inbox for r in rs
        }
        places = [_ids(buffered), _ids(self.lost), uploaded]
        generated = sum(len(p) for p in places)
        assert len(set().union(*places)) == generated == sum(self.counter.values())
        self._settled_once(self._settled(), uploaded)

    def _settled_once(self, result: Settlement, uploaded: set[tuple[int, int]]) -> None:
        log = self._log()
        ids = list(
            zip(
                log.records["terminal_id"].tolist(),
                log.records["terminal_serial"].tolist(),
                strict=True,
            )
        )
        booked = [i for i, o in zip(ids, result.outcome.tolist(), strict=True) if o == BOOKED]
        assert len(booked) == len(set(booked)), "a record was booked twice"
        waiting = {i for i, o in zip(ids, result.outcome.tolist(), strict=True) if o == PENDING}
        assert set(booked) | waiting == uploaded, "an uploaded record is neither booked nor pending"
        assert not set(booked) & waiting
        rejected = set(result.outcome.tolist()) - {BOOKED, PENDING}
        assert rejected <= {int(r) for r in COPY_REASONS}, f"honest records rejected: {rejected}"
        raised = {int(a) for a in result.alerts["code"].tolist()}
        assert not raised & {int(a) for a in FRAUD_ALERTS}, f"false fraud alerts: {raised}"

    @invariant()
    def money_is_conserved(self) -> None:
        positions = self._settled().positions
        assert int(positions["net_fen"].sum()) == 0
        issuer = int(positions["net_fen"][positions["participant"] == 0].sum())
        log = self._log()
        pending = log.records[self._settled().outcome == PENDING]
        buffered = [r for t in self.terminals for r in t.buffer]
        in_flight = sum(_effect(r) for r in [pending, *buffered, *self.lost])
        assert sum(self.balance.values()) == issuer + in_flight


def _ids(records: list[np.ndarray]) -> set[tuple[int, int]]:
    return {(int(r["terminal_id"][0]), int(r["terminal_serial"][0])) for r in records}


CityDay.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCityDay = CityDay.TestCase


def test_state_machine_catches_a_double_booking() -> None:
    """The invariant is not vacuous: a settlement that books a copy fails it."""
    machine = CityDay()
    machine.open_day([True] * 4, 1)
    machine.upload(0)
    machine.inbox.append(machine.inbox[0])
    result = settle(machine._log(), machine.registry)
    result.outcome[:] = BOOKED
    machine.result = result
    try:
        machine.every_record_in_one_place()
    except AssertionError as exc:
        assert "booked twice" in str(exc)
    else:
        raise AssertionError("a double booking went unnoticed")
