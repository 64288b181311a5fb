"""Frauds planted in a day are flagged at clearing: exactly the planted set, nothing else; benign
faults raise no fraud alert; the back-office checks; the hotlist exposure command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cardsim.cli import app
from cardsim.records.codes import Kind
from cardsim.records.layout import empty_records
from cardsim.records.log import RecordLog
from cardsim.scenario import load_scenario
from cardsim.settlement.backoffice import hotlist_alerts, shadow_balance_alerts
from cardsim.settlement.reasons import Alert
from cardsim.settlement.source import MemorySource
from cardsim.sim.accounting import expected, fraud_check, injected_frame
from cardsim.sim.city import decide_day
from cardsim.sim.exposure import exposure_of, parse_intervals
from cardsim.sim.fraud import FRAUD_ALERTS, alert_keys
from tests.fault_days import FAULTS, SMALL, TOWN, day

KINDS = ("clone", "rollback", "altered", "fabricated", "tampered", "revoked_key", "hotlisted")


def test_fraud_alerts_are_exactly_the_planted_frauds() -> None:
    d = day(FAULTS)
    inj = d.injection
    planted = [p.key() for p, w in zip(inj.planted, expected(d, inj), strict=True) if w]
    found = alert_keys(d.settlement.alerts, d.log.batches)
    assert sorted(found) == sorted(planted)  # no miss, no false alert, no alert twice
    assert {p.kind for p in inj.planted} == set(KINDS)
    assert all(expected(d, inj))
    frame = injected_frame(d)
    frauds = frame[frame["alert"] != ""]
    assert len(frauds) == len(inj.planted) and frauds["detected"].all()
    check = fraud_check(d)
    assert check["caught"] == check["expected_alerts"] == len(planted)
    assert check["missed"] == check["false_alerts"] == 0


def test_benign_faults_raise_no_fraud_alert() -> None:
    none = [f"fraud.{k}=0" for k in ("cloned_cards", "rolled_back_cards", "altered_records")]
    none += [f"fraud.{k}=0" for k in ("fabricated_records", "tampered_batches")]
    none += ["fraud.revoked_key_batches=0", "population.finder_use_share=0"]
    d = day(FAULTS, *none)
    faults = d.injection
    assert faults.planted == []
    assert len(faults.lost) and len(faults.torn) and len(faults.repeated) and len(faults.reordered)
    assert faults.crashes.aborted and np.isfinite(faults.terminals.jump_at_s).any()
    assert d.world.scenario.fraud.back_office_checks and len(d.lost.card) > 0
    codes = set(d.settlement.alerts["code"].tolist())
    assert codes.isdisjoint(FRAUD_ALERTS), codes & FRAUD_ALERTS
    assert codes  # gaps are reported: records lost in crashes, late uploads


def test_without_the_back_office_rollbacks_and_hotlisted_use_go_unseen() -> None:
    d = day(FAULTS, "fraud.back_office_checks=false")
    check = fraud_check(d)
    unseen = check["by_kind"]["rollback"]["planted"] + check["by_kind"]["hotlisted"]["planted"]
    assert check["missed"] == unseen > 0
    assert check["false_alerts"] == 0


def _log(rows: list[tuple[int, int, int, int, int, int]]) -> RecordLog:
    """Records (card, counter, kind, amount, balance after, time) on one terminal, one batch."""
    rec = empty_records(len(rows))
    for i, (card, counter, kind, amount, balance, time_ms) in enumerate(rows):
        rec[i] = (1, i + 1, card, counter, 16, time_ms, amount, balance, 1, kind, 0, 0, 0)
    return RecordLog(rec, np.zeros(len(rows), np.int64), np.zeros(1, dtype=[("x", "u1")]))


def _shadow(log: RecordLog, outcome: np.ndarray | None = None) -> list[tuple]:
    out = np.zeros(len(log.records), np.uint8) if outcome is None else outcome
    return shadow_balance_alerts(MemorySource(log), out, lambda r: log.batch_row[r])


def test_shadow_balance_flags_a_rollback_and_nothing_else() -> None:
    d, load = Kind.DEBIT, Kind.LOAD
    chain = [(5, 1, d, 200, 800, 0), (5, 2, load, 5000, 5800, 1), (5, 3, d, 300, 5500, 2)]
    assert _shadow(_log(chain)) == []
    rolled = [*chain, (5, 4, d, 500, 5000 + 5000, 3)]  # should show 5000
    assert [(a[0], a[2], a[3]) for a in _shadow(_log(rolled))] == [(Alert.BALANCE_ROLLBACK, 5, 4)]
    gap = [*chain, (5, 5, d, 500, 9999, 3)]  # counter 4 missing: nothing to compare
    assert _shadow(_log(gap)) == []
    clone = [*chain, (5, 4, d, 500, 5000, 3), (5, 4, d, 100, 5400, 4), (5, 5, d, 1, 1, 5)]
    assert _shadow(_log(clone)) == []  # a repeated counter is the clash check's business
    rejected = np.array([0, 0, 0, 8], np.uint8)  # the rolled-back record was not booked
    assert _shadow(_log(rolled), rejected) == []


def test_hotlist_flags_debits_stamped_after_the_report() -> None:
    d = Kind.DEBIT
    log = _log(
        [
            (9, 1, d, 100, 900, 999),
            (9, 2, d, 100, 800, 1_000),
            (9, 3, Kind.LOAD, 50, 850, 2_000),
            (4, 1, d, 1, 1, 5_000),
        ]
    )
    out = np.zeros(4, np.uint8)
    alerts = hotlist_alerts(
        MemorySource(log), out, lambda r: r * 0, np.array([9]), np.array([1_000])
    )
    assert [(a[0], a[2], a[3]) for a in alerts] == [(Alert.HOTLISTED_CARD_USED, 9, 2)]
    assert hotlist_alerts(MemorySource(log), out, lambda r: r, np.empty(0), np.empty(0)) == []


def test_intervals_parse() -> None:
    assert parse_intervals("1h,30m,90s,2d,15") == [3600.0, 1800.0, 90.0, 172_800.0, 15.0]
    for bad in ("1x", "h", "1h,1h", ""):
        with pytest.raises(ValueError):
            parse_intervals(bad)


def test_exposure_is_the_runs_kpi_and_grows_with_the_interval() -> None:
    sc = load_scenario(TOWN, [*SMALL, "population.lost_share=0.01"])
    d = decide_day(sc, 3)
    grid = [exposure_of(d, s)[1] for s in (3_600.0, 7_200.0, 14_400.0, 86_400.0)]
    assert grid == sorted(grid) and grid[-1] > grid[0] > 0
    again = decide_day(
        sc.model_copy(
            update={"terminals": sc.terminals.model_copy(update={"hotlist_refresh_s": 7_200.0})}
        ),
        3,
    )
    kpi = int(again.taps.amount_fen[again.finder & again.purse.accepted].sum())
    assert kpi == grid[1]


def test_exposure_command(tmp_path: Path) -> None:
    out = tmp_path / "exposure"
    sets = [a for o in [*SMALL, "population.lost_share=0.01"] for a in ("--set", o)]
    args = ["exposure", str(TOWN), "--intervals", "1h,4h,24h", "--replications", "2"]
    done = CliRunner().invoke(app, [*args, "--out", str(out), *sets])
    assert done.exit_code == 0, done.output
    for name in ("exposure.csv", "exposure_runs.csv", "exposure.png", "summary.json"):
        assert (out / name).exists(), name
    table = pd.read_csv(out / "exposure.csv")
    assert table["interval"].tolist() == ["1h", "4h", "24h"]
    assert table["exposure_fen_mean"].dtype == np.int64
    assert table["exposure_fen_total"].is_monotonic_increasing
    bad = CliRunner().invoke(app, [*args[:3], "1h,1x", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--intervals" in bad.output
    assert not (tmp_path / "x").exists()
    small = CliRunner().invoke(app, [*args[:3], "10s", "--out", str(tmp_path / "y")])
    assert small.exit_code == 2 and "hotlist_refresh_s" in small.output
