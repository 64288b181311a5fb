"""End-to-end `cardsim run`: outputs, determinism to the byte, re-settlement, conservation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--set",
    "population.cards=3000",
    "--set",
    "bike.trips=300",
    "--set",
    "hospital.patients=200",
    "--set",
    "issuance.applications=60",
]
KPIS = [
    "transactions_total",
    "records_booked",
    "records_rejected",
    "declines_total",
    "cards_issued",
    "clearing_utilization",
    "clearing_wait_mean_s",
    "clearing_wait_mean_s_ci95",
    "tap_to_cleared_p50_s",
    "tap_to_cleared_p95_s",
    "tap_to_cleared_p99_s",
    "backlog_at_cutoff_records",
    "net_positions_sum_fen",
]


def cardsim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "town"
    done = cardsim(
        "run", ROOT / "scenarios" / "small-town.toml", "--out", out, "--seed", "7", *SMALL
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("seed 7")
    return out


def test_run_writes_every_output(town: Path) -> None:
    for name in (
        "records/records.parquet",
        "records/batches.parquet",
        "records/settlement-params.json",
        "keys.json",
        "settlement.csv",
        "rejects.parquet",
        "alerts.parquet",
        "by_domain.csv",
        "by_hour.csv",
        "summary.json",
    ):
        assert (town / name).exists(), name
    summary = json.loads((town / "summary.json").read_text())
    assert summary["schema"] == "cardsim.run-summary/1"
    assert summary["seed"] == 7
    assert summary["scenario"]["population"]["cards"] == 3000
    for key in KPIS:
        assert key in summary["kpis"], key
    assert summary["kpis"]["net_positions_sum_fen"] == 0
    assert summary["kpis"]["transactions_total"] > 5000
    assert summary["kpis"]["cards_issued"] > 0
    hours = pd.read_csv(town / "by_hour.csv")
    assert len(hours) == 24
    domains = set(pd.read_csv(town / "by_domain.csv")["domain"])
    assert domains == {"bus", "bike", "hospital", "pos", "topup"}


def test_conservation_holds_and_is_reported(town: Path) -> None:
    c = json.loads((town / "summary.json").read_text())["conservation"]
    assert c["money_conserved"] and c["records_in_one_place"] and c["net_positions_sum_to_zero"]
    assert c["money_loaded_fen"] == (
        c["closing_balances_fen"]
        + c["debits_booked_fen"]
        + c["debits_pending_fen"]
        + c["debits_rejected_fen"]
    )


def test_settle_on_a_run_gives_the_runs_settlement(town: Path, tmp_path: Path) -> None:
    done = cardsim(
        "settle", town / "records", "--keys", town / "keys.json", "--out", tmp_path / "again"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again" / "settlement.csv").read_bytes() == (
        town / "settlement.csv"
    ).read_bytes()
    run_counts = json.loads((town / "summary.json").read_text())["settlement"]["records"]
    again = json.loads((tmp_path / "again" / "summary.json").read_text())["records"]
    assert run_counts == again


def test_same_scenario_and_seed_give_identical_bytes(town: Path, tmp_path: Path) -> None:
    out = tmp_path / "twin"
    done = cardsim(
        "run",
        ROOT / "scenarios" / "small-town.toml",
        "--out",
        out,
        "--seed",
        "7",
        *SMALL,
        "--workers",
        "2",
    )
    assert done.returncode == 0, done.stderr
    mine = sorted(p.relative_to(town) for p in town.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert mine == theirs
    for name in mine:
        assert (town / name).read_bytes() == (out / name).read_bytes(), name


def test_another_seed_gives_another_day(town: Path, tmp_path: Path) -> None:
    out = tmp_path / "other"
    done = cardsim(
        "run", ROOT / "scenarios" / "small-town.toml", "--out", out, "--seed", "8", *SMALL
    )
    assert done.returncode == 0, done.stderr
    assert (out / "settlement.csv").read_bytes() != (town / "settlement.csv").read_bytes()


def test_bad_scenario_fails_cleanly(tmp_path: Path) -> None:
    done = cardsim(
        "run",
        ROOT / "scenarios" / "small-town.toml",
        "--out",
        tmp_path / "o",
        "--set",
        "clearing.workers=zero",
    )
    assert done.returncode == 2
    assert "clearing.workers" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
