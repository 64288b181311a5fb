"""End-to-end runs of the `cardsim` command, as a user or a script would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from cardsim.cli import app
from cardsim.records.keys import load_registry
from cardsim.records.log import RECORDS_FILE, LogReader
from cardsim.settlement.kernel import settle


def cardsim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench") / "run"
    done = cardsim(
        "bench",
        "--records",
        "20000",
        "--terminals",
        "200",
        "--batch-size",
        "64",
        "--out",
        out,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def test_bench_json_has_the_contract_fields(bench_out: tuple[Path, dict]) -> None:
    out, figures = bench_out
    for key in ("records", "records_per_s", "floor_records_per_s", "ratio_to_floor"):
        assert figures[key] > 0
    assert figures["net_positions_sum_fen"] == 0
    assert figures["booked"] + figures["rejected"] + figures["pending"] == figures["records"]
    assert (out / "records" / RECORDS_FILE).exists()
    assert (out / "keys.json").exists()


def test_bench_table_is_readable(tmp_path: Path) -> None:
    done = cardsim("bench", "--records", "3000", "--terminals", "20")
    assert done.returncode == 0, done.stderr
    assert "ratio to floor" in done.stdout
    assert "records/s" in done.stdout
    assert "wrote" not in done.stdout  # no --out: the log was a scratch folder's
    done = cardsim("bench", "--records", "3000", "--terminals", "20", "--out", tmp_path / "b")
    assert done.stdout.splitlines()[-1] == f"wrote {tmp_path}/b/records/ and {tmp_path}/b/keys.json"


def test_version() -> None:
    done = cardsim("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("cardsim ") and len(done.stdout.splitlines()) == 1


def test_bench_on_two_workers_pairs_each_round_with_one_worker() -> None:
    done = cardsim(
        "bench", "--records", "3000", "--terminals", "20", "--workers", "2", "--rounds", "2"
    )
    assert done.returncode == 0, done.stderr
    assert "speed-up vs one worker" in done.stdout
    done = cardsim(
        "bench",
        *("--records", "3000", "--terminals", "20", "--workers", "2", "--rounds", "3", "--json"),
    )
    figures = json.loads(done.stdout)
    assert figures["rounds"] == 3
    assert len(figures["seconds_rounds"]) == len(figures["speedup_rounds"]) == 3
    assert figures["speedup_vs_one_worker"] == pytest.approx(
        sorted(figures["speedup_rounds"])[1], abs=1e-3
    )
    assert len(figures["floor_speedup_rounds"]) == 3 and figures["floor_speedup_vs_one_thread"] > 0
    one = cardsim("bench", "--records", "3000", "--terminals", "20", "--json")
    assert "speedup_vs_one_worker" not in json.loads(one.stdout)


def test_settle_writes_every_file_and_matches_the_library(bench_out, tmp_path: Path) -> None:
    out, figures = bench_out
    target = tmp_path / "settled"
    done = cardsim("settle", out / "records", "--keys", out / "keys.json", "--out", target)
    assert done.returncode == 0, done.stderr
    for name in (
        "settlement.csv",
        "rejects.parquet",
        "alerts.parquet",
        "booked.parquet",
        "summary.json",
    ):
        assert (target / name).exists(), name
    summary = json.loads((target / "summary.json").read_text())
    assert summary["checks"] == {
        "every_record_in_one_place": True,
        "net_positions_sum_to_zero": True,
    }
    assert summary["records"]["booked"] == figures["booked"]
    positions = pd.read_csv(target / "settlement.csv")
    assert positions["net_fen"].sum() == 0
    assert positions["net_fen"].dtype == np.int64
    direct = settle(LogReader(out / "records"), load_registry(out / "keys.json"))
    np.testing.assert_array_equal(positions["net_fen"].to_numpy(), direct.positions["net_fen"])
    booked = pd.read_parquet(target / "booked.parquet")
    assert len(booked) == summary["records"]["booked"]
    assert booked.set_index(["terminal_id", "terminal_serial"]).index.is_monotonic_increasing
    rejects = pd.read_parquet(target / "rejects.parquet")
    assert len(rejects) == summary["records"]["rejected"] + summary["records"]["pending"]
    assert set(rejects["reason_name"]) <= {"DUPLICATE_BATCH", "BAD_SIGNATURE", "BAD_TAC"}
    alerts = pd.read_parquet(target / "alerts.parquet")
    assert {"FORGED_RECORD", "TAMPERED_BATCH"} <= set(alerts["alert"])


def test_two_workers_write_identical_files(bench_out, tmp_path: Path) -> None:
    out, _ = bench_out
    for workers in ("1", "2"):
        done = cardsim(
            "settle",
            out / "records",
            "--keys",
            out / "keys.json",
            "--out",
            tmp_path / workers,
            "--workers",
            workers,
        )
        assert done.returncode == 0, done.stderr
    for name in ("settlement.csv", "summary.json"):
        one = (tmp_path / "1" / name).read_text()
        two = (tmp_path / "2" / name).read_text()
        assert one == two
    for name in ("booked.parquet", "alerts.parquet", "rejects.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "1" / name), pd.read_parquet(tmp_path / "2" / name)
        )


def _assert_clean_failure(done: subprocess.CompletedProcess[str], fragment: str, out: Path) -> None:
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cardsim: error: ")
    assert fragment in lines[0]
    assert not out.exists()


def test_missing_log(tmp_path: Path, bench_out) -> None:
    out, _ = bench_out
    done = cardsim(
        "settle", tmp_path / "nope", "--keys", out / "keys.json", "--out", tmp_path / "o"
    )
    _assert_clean_failure(done, "no such folder", tmp_path / "o")


@pytest.mark.parametrize("corrections", ["missing.csv", "folder"])
def test_unreadable_corrections(tmp_path: Path, bench_out, corrections: str) -> None:
    out, _ = bench_out
    (tmp_path / "folder").mkdir()
    done = cardsim(
        "settle", out / "records", "--keys", out / "keys.json", "--ledger", tmp_path / "ledger",
        "--cutoff-ms", "1", "--corrections", tmp_path / corrections,
    )  # fmt: skip
    fragment = "corrections file not found" if corrections == "missing.csv" else "not a file"
    _assert_clean_failure(done, fragment, tmp_path / "ledger")


def test_corrupt_log(tmp_path: Path, bench_out) -> None:
    out, _ = bench_out
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("records.parquet", "batches.parquet"):
        data = (out / "records" / name).read_bytes()
        (broken / name).write_bytes(data[: len(data) * 2 // 3] if name == RECORDS_FILE else data)
    done = cardsim("settle", broken, "--keys", out / "keys.json", "--out", tmp_path / "o")
    _assert_clean_failure(done, "records.parquet", tmp_path / "o")


def test_malformed_keys(tmp_path: Path, bench_out) -> None:
    out, _ = bench_out
    keys = tmp_path / "keys.json"
    keys.write_text('{"schema": "cardsim.keys/1", "issuer": {}}')
    done = cardsim("settle", out / "records", "--keys", keys, "--out", tmp_path / "o")
    _assert_clean_failure(done, "keys.json", tmp_path / "o")


def test_bad_option(tmp_path: Path, bench_out) -> None:
    out, _ = bench_out
    done = cardsim(
        "settle",
        out / "records",
        "--keys",
        out / "keys.json",
        "--out",
        tmp_path / "o",
        "--fee-bp",
        "tram=5",
    )
    _assert_clean_failure(done, "DOMAIN one of bus, bike, hospital, pos, topup", tmp_path / "o")


def _help(*command: str) -> str:
    done = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    return done.output


def test_help_shows_no_python_types() -> None:
    commands = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"run", "settle", "sweep", "capacity", "bench"} <= set(commands)
    for command in [(), *((name,) for name in commands)]:
        text = _help(*command)
        for python_type in ("<bool>", "<list", "[str]"):
            assert python_type not in text, f"cardsim {' '.join(command)} --help: {python_type}"
    # Values are named for what they hold; a flag stands alone.
    sweep = " ".join(_help("sweep").split())
    assert "--vary KEY.PATH=V1,V2,..." in sweep and "--set KEY.PATH=VALUE" in sweep
    capacity = " ".join(_help("capacity").split())
    assert '--sla "KPI<=LIMIT"' in capacity and "--values V1,V2,..." in capacity
    assert "--help Show this message and exit." in capacity


def test_settling_an_output_folder_points_at_its_records(bench_out, tmp_path: Path) -> None:
    out, _ = bench_out
    done = cardsim("settle", out, "--keys", out / "keys.json", "--out", tmp_path / "s")
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"use {out / 'records'}")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
