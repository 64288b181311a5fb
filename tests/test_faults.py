"""Faults: crashes, full buffers, partitions, repeated and reordered uploads, bad clocks, torn
transactions and clearing-centre crashes. Each is checked against the same day without it,
and the run's accounting identity is checked on the faults scenario."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cardsim.cli import app
from cardsim.errors import InputError
from cardsim.runner import run_summary
from cardsim.scenario import load_scenario
from cardsim.settlement.reasons import PENDING, Alert, Reason
from cardsim.sim.accounting import accounting, injected_frame, injection_summary
from cardsim.sim.city import simulate_day
from cardsim.sim.fraud import alert_keys
from cardsim.sim.torn import RECOVERED
from cardsim.sim.world import DAY_START_MS
from tests.fault_days import FAULTS, SMALL, TOWN, booked, card_tx, day, rids

CRASHES = ("fraud.back_office_checks=false", "faults.terminal_crash_share=0.2")
"""The faults scenario with more terminal crashes (and frauds, checked in test_fraud.py)."""


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cardsim run` on the faults scenario, in this process (the CLI's imports are slow)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    sets = [a for o in SMALL for a in ("--set", o)]
    done = CliRunner().invoke(app, ["run", str(FAULTS), "--out", str(out), "--seed", "7", *sets])
    assert done.exit_code == 0, done.output
    assert ", 0 missed, 0 false alerts" in done.output
    return out


def test_faults_scenario_accounts_for_every_record(faults_run: Path) -> None:
    doc = json.loads((faults_run / "summary.json").read_text())
    a = doc["accounting"]
    assert a["every_record_in_one_place"]
    assert (
        a["records_written"] == a["booked"] + a["rejected"] + a["pending"] + a["lost_at_terminal"]
    )
    assert a["double_counted"] == 0
    assert a["lost_at_terminal"] > 0 and a["repeated_copies"] > 0 and a["pending"] > 0
    assert a["log_rows"] == a["booked"] + a["rejected"] + a["pending"] + a["repeated_copies"]
    assert doc["conservation"]["money_conserved"]
    kinds = set(pd.read_csv(faults_run / "injected.csv")["kind"])
    assert {"terminal_crash", "lost_at_terminal", "torn", "repeated_upload"} <= kinds


def test_the_identity_can_fail() -> None:
    d = day(FAULTS)
    assert accounting(d)["every_record_in_one_place"]
    lost_one = dataclasses.replace(d, records_written=d.records_written + 1)
    assert not accounting(lost_one)["every_record_in_one_place"]


def test_same_seed_same_day_with_faults() -> None:
    one = day(FAULTS)
    two = simulate_day(load_scenario(FAULTS, list(SMALL)), 7, workers=2)
    assert one.log.records.tobytes() == two.log.records.tobytes()
    assert one.log.batches.tobytes() == two.log.batches.tobytes()
    assert np.array_equal(one.settlement.alerts, two.settlement.alerts)
    assert injected_frame(one).to_csv() == injected_frame(two).to_csv()
    assert json.dumps(run_summary(one, 7)) == json.dumps(run_summary(two, 7))


def test_injection_machinery_alone_changes_nothing() -> None:
    clean = day(TOWN)
    inert = day(TOWN, "faults.clearing_restart_s=300")  # injection on, but nothing happens
    assert inert.injection is not None and clean.injection is None
    assert clean.log.records.tobytes() == inert.log.records.tobytes()
    assert clean.log.batches.tobytes() == inert.log.batches.tobytes()
    assert np.array_equal(clean.settlement.outcome, inert.settlement.outcome)
    assert np.array_equal(clean.settlement.alerts, inert.settlement.alerts)


def test_a_crash_loses_the_unuploaded_buffer_unless_it_persists() -> None:
    volatile = day(FAULTS, *CRASHES)
    kept = day(FAULTS, *CRASHES, "faults.persisted_buffer=true")
    lost = volatile.injection.lost
    assert len(lost) > 0 and volatile.injection.at_risk == len(lost)
    assert kept.injection.at_risk == len(lost) and len(kept.injection.lost) == 0
    assert not np.isin(rids(lost), rids(volatile.log.records)).any()
    assert np.isin(rids(lost), rids(booked(kept))).all()
    assert accounting(kept)["lost_at_terminal"] == 0
    assert accounting(volatile)["every_record_in_one_place"]
    assert accounting(kept)["every_record_in_one_place"]


def test_lost_records_show_as_serial_gaps() -> None:
    d = day(FAULTS, *CRASHES)
    gaps = d.settlement.alerts[d.settlement.alerts["code"] == Alert.TERMINAL_SERIAL_GAP]
    rec = booked(d)
    seen = 0
    for r in d.injection.lost:
        t, s = int(r["terminal_id"]), int(r["terminal_serial"])
        mine = rec["terminal_serial"][rec["terminal_id"] == t]
        if not ((mine < s).any() and (mine > s).any()):
            continue  # a hole shows only between records accepted today (later ones: T+1)
        hole = gaps[gaps["terminal_id"] == t]
        assert ((hole["first"] <= s) & (hole["last"] >= s)).any(), (t, s)
        seen += 1
    assert seen > 0


def test_torn_debits_are_booked_exactly_once() -> None:
    clean = day(TOWN)
    torn_day = day(TOWN, "faults.torn_share=0.05")
    torn = torn_day.injection.torn
    assert torn.recovered.sum() > 20 and (~torn.recovered).sum() > 0
    log = torn_day.log.records
    recovered = log[(log["flags"] & RECOVERED) != 0]
    assert len(recovered) == torn.recovered.sum()
    assert _pairs(recovered["card_id"], recovered["card_counter"]) == _pairs(
        torn.card[torn.recovered] + 1, torn.counter[torn.recovered]
    )
    # Every card transaction of the clean day is in the torn day's log once, as the card made
    # it (its payee, time and amount), except those still on cards; and nothing else is.
    held = _pairs(torn.card[~torn.recovered] + 1, torn.counter[~torn.recovered])
    expected = [t for t in card_tx(clean.log.records) if (t[0], t[1]) not in held]
    assert card_tx(log) == expected
    codes = set(torn_day.settlement.alerts["code"].tolist())
    assert Alert.CARD_COUNTER_CLASH not in codes and Alert.RECORD_CONFLICT not in codes
    assert accounting(torn_day)["awaiting_recovery_on_card"] == (~torn.recovered).sum()
    assert accounting(torn_day)["debits_awaiting_recovery_fen"] > 0


def _pairs(card: np.ndarray, counter: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(card.tolist(), counter.tolist(), strict=True))


def test_depot_terminals_with_full_buffers_refuse_taps() -> None:
    clean = day(TOWN)
    full = day(TOWN, "terminals.buffer_records=12", "faults.refuse_when_full=true")
    refused = full.injection.refused_taps
    assert refused > 0
    assert len(clean.taps) - len(full.taps) == refused
    bus = full.world.terminals.groups["bus"] + 1
    rec = full.log.records[np.isin(full.log.records["terminal_id"], bus)]
    shift = np.searchsorted(
        full.world.scenario.bus.shift_end_s, (rec["time_ms"] - DAY_START_MS) / 1000
    )
    per_shift = np.unique(np.c_[rec["terminal_id"], shift], axis=0, return_counts=True)[1]
    assert per_shift.max() <= 12
    assert injection_summary(full)["faults"]["taps_refused_buffer_full"] == refused


def test_partitions_delay_uploads_and_lose_nothing() -> None:
    clean = day(TOWN)
    cut = day(TOWN, "faults.partition_share=1.0", "faults.partition_mean_s=7200")
    windows = cut.injection.terminals.partition_s
    b = cut.log.batches
    start = DAY_START_MS + windows[b["terminal_id"].astype(np.int64) - 1, 0] * 1000
    end = DAY_START_MS + windows[b["terminal_id"].astype(np.int64) - 1, 1] * 1000
    assert not ((b["uploaded_ms"] >= start) & (b["uploaded_ms"] < end)).any()
    assert cut.uploads.failed_attempts > clean.uploads.failed_attempts
    assert card_tx(cut.log.records) == card_tx(clean.log.records)
    assert set(rids(booked(cut)).tolist()) | set(
        rids(cut.log.records[cut.settlement.outcome == PENDING]).tolist()
    ) == set(rids(clean.log.records).tolist())


def test_repeated_and_reordered_uploads_count_once() -> None:
    clean = day(TOWN)
    messy = day(TOWN, "faults.repeat_upload_share=0.2", "faults.reorder_share=0.2")
    inj = messy.injection
    assert len(inj.repeated) > 10 and len(inj.reordered) > 10
    dup = messy.settlement.outcome == Reason.DUPLICATE_BATCH
    assert dup.sum() == sum(
        int(
            messy.log.batches["record_count"][
                (messy.log.batches["terminal_id"] == t) & (messy.log.batches["batch_serial"] == s)
            ][0]
        )
        for t, s in inj.repeated
    )
    # Every record once; a batch overtaken by a next upload after the cut-off waits (T+1).
    assert set(rids(messy.log.records).tolist()) == set(rids(clean.log.records).tolist())
    late = set(rids(clean.log.records).tolist()) - set(rids(booked(messy)).tolist())
    pending = messy.log.records[messy.settlement.outcome == PENDING]
    assert late <= set(rids(pending).tolist())
    assert accounting(messy)["double_counted"] == 0
    assert alert_keys(messy.settlement.alerts, messy.log.batches) == []


def test_bad_clocks_change_the_time_field_only() -> None:
    clean = day(TOWN)
    skewed = day(TOWN, "faults.clock_skew_share=1.0", "faults.clock_jump_s=3600")
    a, b = clean.log.records, skewed.log.records
    for name in a.dtype.names or ():
        if name not in ("time_ms", "tac"):
            assert np.array_equal(a[name], b[name]), name
    assert (a["time_ms"] != b["time_ms"]).mean() > 0.5
    assert np.array_equal(clean.log.batches["uploaded_ms"], skewed.log.batches["uploaded_ms"])
    assert np.array_equal(clean.settlement.outcome, skewed.settlement.outcome)
    order = np.lexsort((b["terminal_serial"], b["terminal_id"]))
    t, tid = b["time_ms"][order], b["terminal_id"][order]
    assert ((np.diff(t) < 0) & (tid[1:] == tid[:-1])).any()  # clocks went backwards


def test_clearing_crash_loses_nothing_and_counts_nothing_twice() -> None:
    clean = day(TOWN)
    c = clean.clearing
    busy = np.flatnonzero((c.start_s > 40_000) & (c.end_s > c.start_s))[0]
    crash_s = float(c.start_s[busy] + c.end_s[busy]) / 2
    crashed = day(
        TOWN,
        f"faults.clearing_crash_s=[{crash_s!r}]",
        "faults.clearing_restart_s=600",
        "faults.ack_loss_s=300",
    )
    report = crashed.injection.crashes
    assert len(report.aborted) >= 1 and len(report.ack_lost) >= 1
    b = crashed.log.batches
    name = list(zip(b["terminal_id"].tolist(), b["batch_serial"].tolist(), strict=True))
    for t, s, _ in report.aborted:  # journaled once, from the retry after the restart
        assert name.count((t, s)) == 1
        assert b["uploaded_ms"][name.index((t, s))] >= DAY_START_MS + (crash_s + 600) * 1000
    dup_batches = np.unique(
        crashed.log.batch_row[crashed.settlement.outcome == Reason.DUPLICATE_BATCH]
    )
    assert len(dup_batches) == len(report.ack_lost)
    assert sorted(rids(booked(crashed)).tolist()) == sorted(rids(booked(clean)).tolist())
    assert int(booked(crashed)["amount_fen"].sum()) == int(booked(clean)["amount_fen"].sum())
    assert accounting(crashed)["double_counted"] == 0


def test_fault_fields_are_checked() -> None:
    with pytest.raises(InputError, match=r"faults\.torn_share"):
        load_scenario(FAULTS, ["faults.torn_share=2"])
    with pytest.raises(InputError, match=r"fraud\.cloned_cards"):
        load_scenario(FAULTS, ["fraud.cloned_cards=-1"])
