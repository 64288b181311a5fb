"""`cardsim settle` killed with SIGKILL at many points and restarted: the final files are the
uninterrupted run's, byte for byte, and no partial output is ever visible.

The real command runs in a subprocess on a small log cut into many chunks. Each run is armed
(CARDSIM_KILL_AFTER_COMMITS=N:DELAY_MS, seeded) to SIGKILL itself DELAY_MS after its N-th
durable commit, so the kills land while chunks are computed, inside commits, in the global
phase, while the output is written, renamed, or the journal removed. After every kill the
output folder must be absent or complete; every finished settlement must equal the reference.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cardsim.records.log as log_module
from cardsim.ledger.durable import KILL_HOOK_ENV
from cardsim.records.log import LogReader, write_log
from tests.conftest import small_day
from tests.ledger_days import build_days
from tests.mutations import clone, resend_records

KILLS_WANTED = 20
RUNS_MAX = 50
SEED = 20260701


def cardsim(*args: str | Path, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(KILL_HOOK_ENV, None)
    if kill is not None:
        env[KILL_HOOK_ENV] = kill
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dirty log of ~1,300 records in ~45 chunks, with its keys."""
    folder = tmp_path_factory.mktemp("kill")
    day = small_day(
        seed=11,
        records=1200,
        batch_size=10,
        repeat_fraction=0.05,
        tampered_batches=2,
        forged_records=2,
    )
    resend_records(day, 4, alter=False)
    resend_records(day, 8, alter=True)
    clone(day, 10, 700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_module, "ROW_GROUP_RECORDS", 24)
        write_log(folder / "records", day.log)
    day.registry.save(folder / "keys.json")
    assert len(LogReader(folder / "records").chunks) >= 40
    return folder


def test_settle_survives_sigkill_anywhere(log_dir: Path, tmp_path: Path) -> None:
    chunks = len(LogReader(log_dir / "records").chunks)
    args = ("settle", log_dir / "records", "--keys", log_dir / "keys.json", "--out")
    reference = tmp_path / "reference"
    done = cardsim(*args, reference)
    assert done.returncode == 0, done.stderr
    expected = files(reference)
    assert "summary.json" in expected

    out = tmp_path / "out"
    journal = tmp_path / ".out.journal"
    rng = np.random.default_rng(SEED)
    window = OutputWindow()
    kills = finished = resumed = runs = 0
    where = {"settling": 0, "writing the output": 0, "output in place": 0}
    # "settling": no output folder yet; "writing the output": only the temporary one;
    # "output in place": killed after the rename (it must already be complete). Half the
    # finished settlements are kept, so that later runs replace a finished folder.
    while kills < KILLS_WANTED and runs < RUNS_MAX:
        runs += 1
        left = chunks - _journaled(journal)
        after, delay_ms = _kill_point(rng, left, window)
        replacing = out.exists()  # settling into a finished folder: it must never be mixed
        run = cardsim(*args, out, kill=f"{after}:{delay_ms}")
        resumed += "resuming:" in run.stderr and "resuming: 0 chunks" not in run.stderr
        stage = _stage(out) if run.returncode == -signal.SIGKILL else "finished"
        if after == left and not replacing:
            window.learn(delay_ms, stage)
        if run.returncode == -signal.SIGKILL:
            kills += 1
            assert not out.exists() or files(out) == expected, "partial output visible"
            where[stage] += 1
            continue
        assert run.returncode == 0, run.stderr
        assert files(out) == expected
        assert not journal.exists(), "journal left behind after success"
        finished += 1
        if rng.random() < 0.5:
            shutil.rmtree(out)  # the next run settles again from nothing
    last = cardsim(*args, out)  # whatever the last kill interrupted is finished now
    assert last.returncode == 0, last.stderr
    assert files(out) == expected
    assert kills >= KILLS_WANTED, f"only {kills} kills in {runs} runs"
    assert finished >= 2 and resumed >= KILLS_WANTED // 2, (finished, resumed)
    print(f"{kills} kills ({where}), {finished} finished settlements, {resumed} resumed runs")


class OutputWindow:
    """When, after the last chunk's commit, the output is being written: learnt from earlier
    kills (too early left no output folder, too late a finished one), so that kills land
    while the files are written on a fast machine or a loaded one."""

    def __init__(self) -> None:
        self.lo_ms, self.hi_ms = 0, 3000

    def learn(self, delay_ms: int, stage: str) -> None:
        if stage == "settling":
            self.lo_ms = max(self.lo_ms, delay_ms)
        elif stage in ("output in place", "finished"):
            self.hi_ms = min(self.hi_ms, delay_ms)
        if self.lo_ms >= self.hi_ms:  # the machine's pace changed: forget
            self.lo_ms, self.hi_ms = 0, 3000

    def pick(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.lo_ms, self.hi_ms + 1))


def _kill_point(rng: np.random.Generator, left: int, window: OutputWindow) -> tuple[int, int]:
    """(commits, delay in ms) for the next run, `left` chunks from the end: mostly in the chunk
    pass; often after the last chunk (the global phase, writing the output); sometimes right
    after the output's seal (its rename and the journal's removal)."""
    stage = rng.choice(3, p=[0.5, 0.35, 0.15])
    if stage == 0:
        return int(rng.integers(0, max(left, 1))), int(rng.choice([0, 1, 3, 10]))
    if stage == 1:
        return left, window.pick(rng)
    return left + 1, int(rng.choice([0, 1, 2]))


def _journaled(journal: Path) -> int:
    """Chunks the journal holds (read between runs, while no cardsim process has it open)."""
    if not journal.exists():
        return 0
    with closing(sqlite3.connect(journal)) as db:
        return int(db.execute("SELECT count(*) FROM chunk").fetchone()[0])


def _stage(out: Path) -> str:
    """Where a kill landed, judged from what it left on disk."""
    if out.exists():
        return "output in place"
    if out.with_name(f".{out.name}.partial").exists():
        return "writing the output"
    return "settling"


def test_closing_a_day_survives_sigkill(tmp_path: Path) -> None:
    """Kills while a clearing day closes (after its journal opens, after each chunk, between
    the ledger's commit and the report's rename): the day's report appears complete or not at
    all, and ends identical to the report of a ledger that was never interrupted."""
    days = build_days(tmp_path)
    keys = days.root / "keys.json"

    def close_day(day: int, ledger: Path, kill: str | None = None) -> subprocess.CompletedProcess:
        extra: list[str | Path] = (
            ["--corrections", days.root / "corrections.csv"] if day == 2 else []
        )
        return cardsim(
            "settle", days.root / f"day{day}", "--keys", keys, "--ledger", ledger,
            "--cutoff-ms", str(days.cutoffs[day - 1]), *extra, kill=kill,
        )  # fmt: skip

    reference, ledger = tmp_path / "reference", tmp_path / "ledger"
    assert close_day(1, reference).returncode == 0
    booked = pd.read_parquet(reference / "days" / "0001" / "booked.parquet").iloc[[5, 9]]
    booked[["terminal_id", "terminal_serial"]].to_csv(days.root / "corrections.csv", index=False)
    assert close_day(2, reference).returncode == 0
    assert close_day(1, ledger).returncode == 0
    expected = files(reference / "days" / "0002")
    report = ledger / "days" / "0002"
    kills = 0
    # Day 2 (carried records, a log, corrections): killed right after opening its journal,
    # then right after the first commit of each restart: a chunk while chunks are left, else
    # the ledger's close itself (before the report's rename).
    for kill in ("0:0", "1:0", "1:0", "1:0"):
        run = close_day(2, ledger, kill)
        if run.returncode == 0:
            break
        assert run.returncode == -signal.SIGKILL, run.stderr
        kills += 1
        assert not report.exists() or files(report) == expected, "partial day report"
    finish = close_day(2, ledger)
    assert finish.returncode == 0, finish.stderr
    assert files(report) == expected
    assert not (ledger / ".journal-0002").exists()
    assert kills >= 3, kills
    print(f"{kills} kills while closing days")
