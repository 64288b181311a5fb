"""Frauds planted in the day, each of which the clearing centre must flag exactly once.

- clone: a copy of a card pays at a shop under a counter the genuine card also used:
  CARD_COUNTER_CLASH, identified by (card, counter);
- rollback: a card's stored value restored, its last record shows `rollback_fen` too much:
  BALANCE_ROLLBACK (card, counter);
- altered: a merchant inflates a record after the card's TAC and signs the batch with its own
  key: FORGED_RECORD (terminal, serial);
- fabricated: a merchant invents a record for a real card, with a TAC it cannot compute:
  FORGED_RECORD (terminal, serial);
- tampered: a batch altered after signing, on its way to the centre: TAMPERED_BATCH
  (terminal, batch serial);
- revoked key: a stolen terminal, its key revoked, uploads batches: REVOKED_KEY_USED
  (terminal, batch serial);
- hotlisted: a finder spends a lost card before the terminal gets the hotlist:
  HOTLISTED_CARD_USED (terminal, serial).

Targets are chosen among records that reach the clearing centre well before the cut-off, on
cards and in batches no other fraud touches, so that each fraud raises its one alert and the
set of fraud alerts can be compared with the set planted. Every draw comes from the frauds'
own sub-streams (faults.FRAUD_KEY).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsim.records.codes import CARD_DEBITS, Domain, Kind
from cardsim.records.keys import TerminalKey
from cardsim.records.layout import empty_records
from cardsim.records.log import RecordLog
from cardsim.scenario import Fraud
from cardsim.settlement.reasons import Alert
from cardsim.sim.ledger import sign_log
from cardsim.sim.lost import LostCards
from cardsim.sim.pos import lognormal_fen
from cardsim.sim.uploads import Uploads
from cardsim.sim.world import DAY_START_MS, World
from cardsim.sim.written import Written

FRAUD_STREAMS = ("clone", "rollback", "altered", "fabricated", "tampered", "revoked")
"""One sub-stream per fraud (append only)."""
FRAUD_ALERTS = frozenset(
    {
        Alert.TAMPERED_BATCH,
        Alert.REVOKED_KEY_USED,
        Alert.FORGED_RECORD,
        Alert.RECORD_CONFLICT,
        Alert.BATCH_CHAIN_BREAK,
        Alert.BATCH_CONFLICT,
        Alert.CARD_COUNTER_CLASH,
        Alert.BALANCE_ROLLBACK,
        Alert.HOTLISTED_CARD_USED,
    }
)
"""Alerts that say someone cheated. The others (serial, batch and counter gaps) say records
are missing or late, which faults cause too; the investigation starts elsewhere."""
BY_CARD = frozenset({Alert.CARD_COUNTER_CLASH, Alert.BALANCE_ROLLBACK})
"""Alerts identified by (card, counter); record alerts by (terminal, serial); batch alerts by
(terminal, batch serial)."""
BY_BATCH = frozenset(
    {Alert.TAMPERED_BATCH, Alert.REVOKED_KEY_USED, Alert.BATCH_CONFLICT, Alert.BATCH_CHAIN_BREAK}
)
ALTERED_BY_FEN = 700
"""A merchant adds 7 yuan to a record."""
TAMPERED_BY_FEN = 1_000
"""A batch in transit gets one amount raised by 10 yuan."""
ROGUE_RECORDS = 20
"""Records in each batch a stolen terminal uploads."""
CUTOFF_MARGIN_S = 3_600.0
"""Planted records reach the clearing centre at least this long before the cut-off."""


@dataclass
class Planted:
    """One planted fraud and the identity of the alert it must raise."""

    kind: str
    alert: Alert
    value_fen: int
    """Money at stake: what the fraudster gains or tries to."""
    terminal_id: int = -1
    batch_serial: int = -1
    terminal_serial: int = -1
    card_id: int = -1
    card_counter: int = -1
    partner_rid: int = -1
    """Record id (terminal_id << 32 | serial) of the genuine counterpart, if any."""
    tac: int = 0
    """The made-up TAC of a fabricated record."""

    def key(self) -> tuple[str, int, int]:
        """(alert name, card or terminal, counter or serial or batch serial): see alert_keys."""
        if self.alert in BY_CARD:
            return self.alert.name, self.card_id, self.card_counter
        if self.alert in BY_BATCH:
            return self.alert.name, self.terminal_id, self.batch_serial
        return self.alert.name, self.terminal_id, self.terminal_serial


def alert_keys(alerts: np.ndarray, batches: np.ndarray) -> list[tuple[str, int, int]]:
    """The identity of each fraud alert, comparable with Planted.key()."""
    keys = []
    for a in alerts[np.isin(alerts["code"], list(FRAUD_ALERTS))]:
        code = Alert(int(a["code"]))
        if code in BY_CARD:
            keys.append((code.name, int(a["card_id"]), int(a["first"])))
        elif code in (Alert.TAMPERED_BATCH, Alert.REVOKED_KEY_USED):
            serial = int(batches["batch_serial"][int(a["batch_row"])])
            keys.append((code.name, int(a["terminal_id"]), serial))
        else:
            keys.append((code.name, int(a["terminal_id"]), int(a["first"])))
    return keys


def identify(w: Written, planted: list[Planted]) -> None:
    """Fill in the identities of planted records once serials are final (in place)."""
    rec = w.records
    for row in np.flatnonzero(w.tag >= 0).tolist():
        p = planted[int(w.tag[row])]
        p.terminal_id, p.terminal_serial = (
            int(rec["terminal_id"][row]),
            int(rec["terminal_serial"][row]),
        )
        p.card_id, p.card_counter = int(rec["card_id"][row]), int(rec["card_counter"][row])
    for row in np.flatnonzero(w.partner >= 0).tolist():
        rid = (int(rec["terminal_id"][row]) << 32) | int(rec["terminal_serial"][row])
        planted[int(w.partner[row])].partner_rid = rid


@dataclass
class Plan:
    """Who may be touched: records that arrive in time on untouched cards."""

    ok: np.ndarray
    """Per record: a planted record may sit here or be altered, cloned or rolled back."""
    cards_used: set[int]


def finders(records: np.ndarray, lost: LostCards) -> np.ndarray:
    """Per record: a debit made by the finder of a lost card (after the loss: the holder can
    no longer tap). Uses the true tap time, so call it before clocks are skewed."""
    lost_ms = np.full(int(records["card_id"].max(initial=0)) + 1, np.iinfo(np.int64).max)
    lost_ms[lost.card + 1] = DAY_START_MS + np.round(lost.lost_s * 1000).astype(np.int64)
    debit = np.isin(records["kind"], list(CARD_DEBITS))
    return debit & (records["time_ms"] >= lost_ms[records["card_id"]])


def plant_records(
    w: Written,
    uploads: Uploads,
    world: World,
    spec: Fraud,
    lost: LostCards,
    reordered: np.ndarray,
    cutoff_s: float,
    streams: dict[str, np.random.Generator],
) -> tuple[Written, list[Planted]]:
    """Clones, rollbacks, altered and fabricated records, and the finders' debits, tagged and
    identified. Lost cards and records lost in crashes are left alone (finders aside)."""
    planted: list[Planted] = []
    finder = finders(w.records, lost)
    in_time = uploads.uploaded_s[w.batch_of] <= cutoff_s - CUTOFF_MARGIN_S
    plan = Plan(in_time & ~w.lost & ~reordered[w.batch_of] & ~finder, set())
    plan.cards_used.update((lost.card + 1).tolist())
    for row in np.flatnonzero(finder).tolist():
        w.tag[row] = len(planted)
        planted.append(Planted("hotlisted", Alert.HOTLISTED_CARD_USED, _fen(w, row)))
    _rollbacks(w, plan, spec, planted, streams["rollback"])
    _altered(w, plan, world, spec.altered_records, planted, streams["altered"])
    new, anchor, tags = _clones(w, plan, world, spec.cloned_cards, planted, streams["clone"])
    more = _fabricated(w, plan, world, spec.fabricated_records, planted, streams["fabricated"])
    new, anchor, tags = (
        np.concatenate([a, b]) for a, b in zip((new, anchor, tags), more, strict=True)
    )
    if len(new):
        w = w.insert_after(anchor, new, tags)
    identify(w, planted)
    return w, planted


def corrupt(records: np.ndarray, tag: np.ndarray, planted: list[Planted]) -> None:
    """After the cards' TACs: merchants inflate altered records, and fabricated records carry
    the TAC their maker guessed (the sign_log hook, in place)."""
    for row in np.flatnonzero(tag >= 0).tolist():
        p = planted[int(tag[row])]
        if p.kind == "altered":
            records["amount_fen"][row] += ALTERED_BY_FEN
        elif p.kind == "fabricated":
            records["tac"][row] = p.tac


def _fen(w: Written, row: int) -> int:
    return int(w.records["amount_fen"][row])


def _pick(candidates: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[rng.integers(len(candidates))]) if len(candidates) else -1


def _rollbacks(
    w: Written, plan: Plan, spec: Fraud, planted: list[Planted], rng: np.random.Generator
) -> None:
    """A card's last record of the day shows more than the shadow balance allows."""
    rec = w.records
    order = np.lexsort((rec["card_counter"], rec["card_id"]))
    card, counter = rec["card_id"][order], rec["card_counter"][order].astype(np.int64)
    last = np.r_[card[1:] != card[:-1], True]
    prev_ok = np.r_[False, (card[1:] == card[:-1]) & (counter[1:] == counter[:-1] + 1)]
    both = np.r_[False, plan.ok[order][:-1]] & plan.ok[order]
    pick = np.flatnonzero(last & prev_ok & both & (rec["kind"][order] == Kind.DEBIT))
    for _ in range(spec.rolled_back_cards):
        pick = pick[~np.isin(card[pick], list(plan.cards_used))]
        i = _pick(pick, rng)
        if i < 0:
            raise ValueError("no card left to roll back: lower fraud.rolled_back_cards")
        row, before = int(order[i]), int(order[i - 1])
        rec["balance_after_fen"][row] += spec.rollback_fen
        w.tag[row], w.partner[before] = len(planted), len(planted)
        plan.ok[[row, before]] = False
        plan.cards_used.add(int(card[i]))
        planted.append(Planted("rollback", Alert.BALANCE_ROLLBACK, spec.rollback_fen))


def _altered(
    w: Written, plan: Plan, world: World, n: int, planted: list[Planted], rng: np.random.Generator
) -> None:
    """Merchants inflate records of their own terminals (changed after signing's TACs)."""
    pos = world.terminals.domain[w.records["terminal_id"].astype(np.int64) - 1] == Domain.POS
    for _ in range(n):
        row = _pick(np.flatnonzero(plan.ok & pos & (w.records["kind"] == Kind.DEBIT)), rng)
        if row < 0:
            raise ValueError("no record left to alter: lower fraud.altered_records")
        w.tag[row] = len(planted)
        plan.ok[row] = False
        planted.append(Planted("altered", Alert.FORGED_RECORD, ALTERED_BY_FEN))


def _anchors(w: Written, plan: Plan, terminals: np.ndarray) -> np.ndarray:
    """Rows after which a planted record may be written: in time, on the given terminals."""
    return np.flatnonzero(plan.ok & np.isin(w.records["terminal_id"], terminals + 1))


def _clones(
    w: Written, plan: Plan, world: World, n: int, planted: list[Planted], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each clone pays at a shop under the counter of one of the genuine card's debits."""
    rec, shops = w.records, world.terminals.groups["pos_shops"]
    new = empty_records(n)
    anchor = np.empty(n, np.int64)
    for k in range(n):
        genuine = np.flatnonzero(plan.ok & (rec["kind"] == Kind.DEBIT))
        genuine = genuine[~np.isin(rec["card_id"][genuine], list(plan.cards_used))]
        g, a = _pick(genuine, rng), _pick(_anchors(w, plan, shops), rng)
        if g < 0 or a < 0:
            raise ValueError("no card left to clone: lower fraud.cloned_cards")
        before = int(rec["balance_after_fen"][g] + rec["amount_fen"][g])
        amount = min(int(lognormal_fen(1, 3_000, 0.6, rng)[0]), before)
        new[k] = rec[a]
        for name, value in (
            ("card_id", rec["card_id"][g]),
            ("card_counter", rec["card_counter"][g]),
            ("amount_fen", amount),
            ("balance_after_fen", before - amount),
            ("kind", Kind.DEBIT),
            ("flags", 0),
        ):
            new[name][k] = value
        anchor[k] = a
        w.partner[g] = len(planted)
        plan.ok[[g, a]] = False
        plan.cards_used.add(int(rec["card_id"][g]))
        planted.append(Planted("clone", Alert.CARD_COUNTER_CLASH, amount))
    return new, anchor, np.arange(len(planted) - n, len(planted))


def _fabricated(
    w: Written, plan: Plan, world: World, n: int, planted: list[Planted], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records a merchant makes up for real cards, written among its terminal's own."""
    rec = w.records
    pos = np.flatnonzero(world.terminals.domain == Domain.POS)
    new = empty_records(n)
    anchor = np.empty(n, np.int64)
    for k in range(n):
        a = _pick(_anchors(w, plan, pos), rng)
        if a < 0:
            raise ValueError("no merchant record left: lower fraud.fabricated_records")
        amount = int(lognormal_fen(1, 5_000, 0.6, rng)[0])
        new[k] = rec[a]
        new["card_id"][k] = 1 + rng.integers(len(world.cards))
        new["card_counter"][k] = 1 + rng.integers(1_000)
        new["amount_fen"][k] = amount
        new["balance_after_fen"][k] = rng.integers(0, 20_000)
        new["kind"][k], new["flags"][k] = Kind.DEBIT, 0
        anchor[k] = a
        plan.ok[a] = False
        tac = int(rng.integers(0, 2**63, dtype=np.int64))
        planted.append(Planted("fabricated", Alert.FORGED_RECORD, amount, tac=tac))
    return new, anchor, np.arange(len(planted) - n, len(planted))


def tamper(
    log: RecordLog,
    touchable: np.ndarray,
    n: int,
    planted: list[Planted],
    rng: np.random.Generator,
) -> list[tuple[int, int, int]]:
    """Raise one amount in each of `n` batches after signing (in place). `touchable`: per log
    batch, may be tampered with. Returns (terminal_id, serial, genuine amount) per change."""
    first = np.searchsorted(log.batch_row, np.arange(len(log.batches)))
    changed = []
    for _ in range(n):
        b = _pick(np.flatnonzero(touchable & (log.batches["record_count"] > 0)), rng)
        if b < 0:
            raise ValueError("no batch left to tamper with: lower fraud.tampered_batches")
        touchable[b] = False
        row = int(first[b])
        rec = log.records
        changed.append(
            (
                int(rec["terminal_id"][row]),
                int(rec["terminal_serial"][row]),
                int(rec["amount_fen"][row]),
            )
        )
        rec["amount_fen"][row] += TAMPERED_BY_FEN
        head = log.batches[b]
        planted.append(
            Planted(
                "tampered",
                Alert.TAMPERED_BATCH,
                TAMPERED_BY_FEN,
                int(head["terminal_id"]),
                int(head["batch_serial"]),
            )
        )
    return changed


def stolen_terminal(
    world: World, n: int, planted: list[Planted], rng: np.random.Generator
) -> tuple[RecordLog, np.ndarray]:
    """Batches from a stolen terminal whose key the centre has revoked (its key is added to
    the registry as revoked). Returns the log and its records' write times (s)."""
    t = len(world.terminals.domain)  # a terminal index past the city's own
    key = Ed25519PrivateKey.from_private_bytes(rng.bytes(32))
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    world.registry.add(TerminalKey(t + 1, t + 1, public, revoked=True))
    m = n * ROGUE_RECORDS
    rec = empty_records(m)
    written_s = np.sort(rng.uniform(8 * 3600.0, 20 * 3600.0, m))
    rec["terminal_id"] = t + 1
    rec["terminal_serial"] = np.arange(1, m + 1)
    rec["card_id"] = 1 + rng.integers(len(world.cards), size=m)
    rec["card_counter"] = 1 + rng.integers(1_000, size=m)
    rec["payee"] = world.terminals.payee[world.terminals.groups["pos_shops"][0]]
    rec["time_ms"] = DAY_START_MS + np.round(written_s * 1000).astype(np.int64)
    rec["amount_fen"] = lognormal_fen(m, 5_000, 0.6, rng)
    rec["balance_after_fen"] = rng.integers(0, 20_000, m)
    rec["domain"], rec["kind"] = Domain.POS, Kind.DEBIT
    batch_of = np.repeat(np.arange(n), ROGUE_RECORDS)
    uploaded = written_s[(np.arange(n) + 1) * ROGUE_RECORDS - 1] + 60.0
    uploads = Uploads(batch_of, np.full(n, t), uploaded, 0)
    tacs = rng.integers(0, 2**63, size=m, dtype=np.int64).astype(np.uint64)

    def guessed(records: np.ndarray) -> None:
        records["tac"] = tacs

    log, rows = sign_log(
        rec, uploads, world.registry.master_key, [*world.terminal_keys, key], 1, guessed
    )
    for b in range(n):
        value = int(log.records["amount_fen"][log.batch_row == b].sum())
        head = log.batches[b]
        planted.append(
            Planted(
                "revoked_key",
                Alert.REVOKED_KEY_USED,
                value,
                int(head["terminal_id"]),
                int(head["batch_serial"]),
            )
        )
    return log, written_s[rows]
