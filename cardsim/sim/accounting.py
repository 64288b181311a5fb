"""Where every record ended, where every fen went, and whether the planted frauds were caught.

A record's identity is (terminal_id, terminal_serial). Repeated uploads put several copies of
one record in the log; the record's place is its best copy's: booked if any copy was booked,
else pending if any copy is pending, else rejected (with the reason of its first copy). Then

    records_written = booked + rejected + pending + lost_at_terminal

where records_written counts what the terminals wrote (planted frauds included) and
lost_at_terminal what terminal crashes destroyed before upload; and no identity may be booked
twice (`double_counted`). Torn debits still on a card at midnight are no record yet: they are
reported beside the identity (`awaiting_recovery_on_card`), and in the money.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cardsim.settlement.backoffice import PURSE_SIGN
from cardsim.settlement.identity import disjoint_ranges
from cardsim.settlement.reasons import BOOKED, PENDING, outcome_name
from cardsim.sim.fraud import ALTERED_BY_FEN, alert_keys
from cardsim.sim.world import DAY_START_MS

if TYPE_CHECKING:
    from cardsim.sim.city import Day
    from cardsim.sim.injection import Injection

PLACES = ("booked", "pending", "rejected")
"""Places of a record in the log, in order of preference among its copies."""


def identities(day: Day) -> tuple[np.ndarray, np.ndarray, int]:
    """Best copy (log row) of each record id, its place (index into PLACES), and how many
    copies beyond the first were booked (0 unless something counted twice)."""
    rec, outcome = day.log.records, day.settlement.outcome
    place = np.where(outcome == BOOKED, 0, np.where(outcome == PENDING, 1, 2)).astype(np.uint64)
    batches = day.log.batches
    if day.injection is None and disjoint_ranges(batches, np.ones(len(batches), bool))[0]:
        # Each batch's serials lie in its signed range, and no two ranges meet: no repeats.
        return np.arange(len(rec)), place.astype(np.int64), 0
    key = (_rids(rec) << np.uint64(2)) | place
    order = np.argsort(key, kind="stable")
    k = key[order]
    first = np.r_[True, (k[1:] >> np.uint64(2)) != (k[:-1] >> np.uint64(2))]
    twice = int(np.count_nonzero((k[1:] == k[:-1]) & ((k[1:] & np.uint64(3)) == 0)))
    return order[first], (k[first] & np.uint64(3)).astype(np.int64), twice


def _rids(records: np.ndarray) -> np.ndarray:
    """terminal_id << 32 | terminal_serial per record (settlement.source.record_ids)."""
    rid = records["terminal_id"].astype(np.uint64) << np.uint64(32)
    return rid | records["terminal_serial"].astype(np.uint64)


def accounting(day: Day) -> dict[str, Any]:
    """summary.json `accounting`: the identity above, checked."""
    best, place, twice = identities(day)
    counts = np.bincount(place, minlength=3)
    inj = day.injection
    lost = len(inj.lost) if inj else 0
    written = day.records_written
    reasons = day.settlement.outcome[best[place == 2]]
    codes, n = np.unique(reasons, return_counts=True)
    money = purse_money(day)
    doc = {
        "records_written": written,
        "booked": int(counts[0]),
        "rejected": int(counts[2]),
        "pending": int(counts[1]),
        "lost_at_terminal": lost,
        "awaiting_recovery_on_card": int((~inj.torn.recovered).sum()) if inj else 0,
        "log_rows": len(day.log.records),
        "repeated_copies": len(day.log.records) - len(best),
        "double_counted": twice,
        "rejected_by_reason": {outcome_name(int(c)): int(k) for c, k in zip(codes, n, strict=True)},
        "debits_lost_at_terminal_fen": money["lost"],
        "debits_awaiting_recovery_fen": money["on_card"],
    }
    doc["every_record_in_one_place"] = written == int(counts.sum()) + lost and twice == 0
    return doc


def purse_money(day: Day) -> dict[str, int]:
    """Money onto cards (`loads`) and card debits by place: booked, pending, rejected, lost at
    a terminal, on a card awaiting recovery. Genuine purse moves only, each record once: a
    clone's or a fabricated record's money never was on a card, an altered amount is counted
    as the card paid it."""
    rec, outcome = day.log.records, day.settlement.outcome
    inj = day.injection
    if inj is None:
        effect = PURSE_SIGN[rec["kind"]] * rec["amount_fen"]
        place = np.where(outcome == BOOKED, 0, np.where(outcome == PENDING, 1, 2))
        lost = on_card = 0
    else:
        best, place, _ = identities(day)
        genuine = _genuine(day, inj, best)
        rows, place = best[genuine], place[genuine]
        effect = PURSE_SIGN[rec["kind"][rows]] * _true_amounts(rec[rows], inj)
        lost_effect = PURSE_SIGN[inj.lost["kind"]] * inj.lost["amount_fen"]
        effect = np.r_[effect, lost_effect]
        place = np.r_[place, np.full(len(lost_effect), 3)]
        lost = int(-lost_effect[lost_effect < 0].sum())
        on_card = int(inj.torn.amount_fen[~inj.torn.recovered].sum())
    debit = np.where(effect < 0, -effect, 0)
    out = {name: int(debit[place == i].sum()) for i, name in enumerate(PLACES)}
    return out | {"loads": int(effect[effect > 0].sum()), "lost": lost, "on_card": on_card}


def _genuine(day: Day, inj: Injection, rows: np.ndarray) -> np.ndarray:
    """Per given log row: a genuine card transaction (not a clone's, fabricated or rogue)."""
    rec = day.log.records[rows]
    fake = [
        (p.terminal_id << 32) | p.terminal_serial
        for p in inj.planted
        if p.kind in ("clone", "fabricated")
    ]
    rid = _rids(rec)
    return ~np.isin(rid, np.array(fake, np.uint64)) & (rec["terminal_id"] != inj.rogue_terminal_id)


def _true_amounts(rec: np.ndarray, inj: Injection) -> np.ndarray:
    """Amounts as the cards paid them: records altered on the way get their amount back."""
    amount = rec["amount_fen"].copy()
    rid = _rids(rec)
    for p in inj.planted:
        if p.kind == "altered":
            amount[rid == np.uint64((p.terminal_id << 32) | p.terminal_serial)] -= ALTERED_BY_FEN
    for terminal_id, serial, genuine in inj.genuine_fen:
        amount[rid == np.uint64((terminal_id << 32) | serial)] = genuine
    return amount


def clean_rids(day: Day, inj: Injection) -> np.ndarray:
    """Record ids with a copy the clearing centre could check today: uploaded by the cut-off
    in a batch neither tampered with nor signed by a revoked key."""
    b = day.log.batches
    tampered = {(p.terminal_id, p.batch_serial) for p in inj.planted if p.kind == "tampered"}
    bad = np.array(
        [
            (t, s) in tampered
            for t, s in zip(b["terminal_id"].tolist(), b["batch_serial"].tolist(), strict=True)
        ],
        bool,
    )
    ok = (
        (b["uploaded_ms"] <= day.params.cutoff_ms)
        & ~bad
        & (b["terminal_id"] != inj.rogue_terminal_id)
    )
    return np.unique(_rids(day.log.records[ok[day.log.batch_row]]))


def expected(day: Day, inj: Injection) -> list[bool]:
    """Per planted fraud: must the clearing centre flag it today?"""
    rids = clean_rids(day, inj)
    b = day.log.batches
    on_time = {
        (t, s)
        for t, s, u in zip(
            b["terminal_id"].tolist(),
            b["batch_serial"].tolist(),
            b["uploaded_ms"].tolist(),
            strict=True,
        )
        if u <= day.params.cutoff_ms
    }
    out = []
    for p in inj.planted:
        if p.kind in ("tampered", "revoked_key"):
            out.append((p.terminal_id, p.batch_serial) in on_time)
            continue
        mine = np.uint64((p.terminal_id << 32) | p.terminal_serial)
        partner = p.partner_rid < 0 or bool(np.isin(np.uint64(p.partner_rid), rids))
        out.append(bool(np.isin(mine, rids)) and partner)
    return out


def fraud_check(day: Day) -> dict[str, Any]:
    """Planted frauds against fraud alerts: caught, missed, and alerts with no fraud behind."""
    inj = day.injection
    assert inj is not None
    found = alert_keys(day.settlement.alerts, day.log.batches)
    want = expected(day, inj)
    keys = [p.key() for p in inj.planted]
    must = {k for k, w in zip(keys, want, strict=True) if w}
    seen = set(found)
    by_kind: dict[str, dict[str, int]] = {}
    for p, k, w in zip(inj.planted, keys, want, strict=True):
        row = by_kind.setdefault(p.kind, {"planted": 0, "expected": 0, "caught": 0, "value_fen": 0})
        row["planted"] += 1
        row["expected"] += int(w)
        row["caught"] += int(w and k in seen)
        row["value_fen"] += p.value_fen
    return {
        "planted": len(keys),
        "expected_alerts": len(must),
        "fraud_alerts": len(found),
        "caught": len(must & seen),
        "missed": len(must - seen),
        "false_alerts": len(seen - set(keys)) + len(found) - len(seen),
        "by_kind": dict(sorted(by_kind.items())),
    }


def injected_frame(day: Day) -> pd.DataFrame:
    """injected.csv: every planted fraud with its expected alert, and every fault event."""
    inj = day.injection
    assert inj is not None
    seen = set(alert_keys(day.settlement.alerts, day.log.batches))
    rows = []
    for p, want in zip(inj.planted, expected(day, inj), strict=True):
        rows.append(
            _row(
                p.kind,
                alert=p.alert.name,
                expected=want,
                detected=p.key() in seen,
                terminal_id=p.terminal_id,
                terminal_serial=p.terminal_serial,
                batch_serial=p.batch_serial,
                card_id=p.card_id,
                card_counter=p.card_counter,
                amount_fen=p.value_fen,
            )
        )
    rows += fault_rows(day, inj)
    return pd.DataFrame(rows, columns=list(_row("").keys()))


def _row(kind: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": kind,
        "alert": "",
        "expected": False,
        "detected": False,
        "terminal_id": -1,
        "terminal_serial": -1,
        "batch_serial": -1,
        "card_id": -1,
        "card_counter": -1,
        "amount_fen": 0,
        "time_s": -1.0,
        "end_s": -1.0,
        "detail": "",
    }
    return row | fields


def fault_rows(day: Day, inj: Injection) -> list[dict[str, Any]]:
    """The benign events: none of them may raise a fraud alert."""
    f, rows = inj.terminals, []
    for t in np.flatnonzero(np.isfinite(f.crash_s)).tolist():
        rows.append(_row("terminal_crash", terminal_id=t + 1, time_s=round(float(f.crash_s[t]), 3)))
    for r in inj.lost:
        rows.append(
            _row(
                "lost_at_terminal",
                terminal_id=int(r["terminal_id"]),
                terminal_serial=int(r["terminal_serial"]),
                card_id=int(r["card_id"]),
                card_counter=int(r["card_counter"]),
                amount_fen=int(r["amount_fen"]),
                time_s=(int(r["time_ms"]) - DAY_START_MS) / 1000.0,
            )
        )
    for t in np.flatnonzero(np.isfinite(f.partition_s[:, 0])).tolist():
        start, end = (round(float(x), 3) for x in f.partition_s[t])
        rows.append(_row("partition", terminal_id=t + 1, time_s=start, end_s=end))
    for t in np.flatnonzero(np.isfinite(f.jump_at_s)).tolist():
        detail = (
            f"drift {f.drift[t] * 1e6:+.1f} ppm; +{f.jump_s[t]:.3f} s at {f.jump_at_s[t]:.3f} s; "
            f"-{f.step_s[t]:.3f} s at {f.step_at_s[t]:.3f} s"
        )
        rows.append(_row("clock_skew", terminal_id=t + 1, detail=detail))
    torn = inj.torn
    for i in range(len(torn)):
        rows.append(
            _row(
                "torn",
                terminal_id=int(torn.terminal[i]) + 1,
                card_id=int(torn.card[i]) + 1,
                card_counter=int(torn.counter[i]),
                amount_fen=int(torn.amount_fen[i]),
                time_s=float(torn.time_s[i]),
                detail="recovered at the next tap" if torn.recovered[i] else "on the card",
            )
        )
    for kind, batches in (("repeated_upload", inj.repeated), ("reordered_upload", inj.reordered)):
        rows += [_row(kind, terminal_id=t, batch_serial=s) for t, s in batches]
    for kind, events in (
        ("clearing_check_aborted", inj.crashes.aborted),
        ("clearing_ack_lost", inj.crashes.ack_lost),
    ):
        rows += [_row(kind, terminal_id=t, batch_serial=s, time_s=c) for t, s, c in events]
    return rows


def injection_summary(day: Day) -> dict[str, Any]:
    """summary.json `injection`: what went wrong, and the frauds caught."""
    inj = day.injection
    assert inj is not None
    f = inj.terminals
    return {
        "faults": {
            "taps_refused_buffer_full": inj.refused_taps,
            "terminals_crashed": int(np.isfinite(f.crash_s).sum()),
            "records_in_buffer_at_crash": inj.at_risk,
            "records_lost_at_terminal": len(inj.lost),
            "terminals_partitioned": int(np.isfinite(f.partition_s[:, 0]).sum()),
            "terminals_with_bad_clocks": int(np.isfinite(f.jump_at_s).sum()),
            "torn_transactions": len(inj.torn),
            "torn_recovered": int(inj.torn.recovered.sum()),
            "uploads_repeated": len(inj.repeated),
            "uploads_reordered": len(inj.reordered),
            "clearing_crashes": len(day.world.scenario.faults.clearing_crash_s),
            "clearing_checks_aborted": len(inj.crashes.aborted),
            "clearing_acks_lost": len(inj.crashes.ack_lost),
        },
        "fraud": fraud_check(day),
    }
