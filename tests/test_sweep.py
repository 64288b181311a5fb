"""`cardsim sweep`: the grid, the streamed long table, seeds, re-runs, workers, the summary."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cardsim.capacity.grid import parse_vary
from cardsim.capacity.replicate import KPI_NAMES, replication_seeds, run_one
from cardsim.capacity.report import short_number
from cardsim.capacity.tables import RUNS_CSV, RunTableWriter, summarize
from cardsim.sim.queueing import t_quantile_two_sided
from tests.conftest import TINY_TOWN

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "small-town.toml"
TINY = (*TINY_TOWN, "clearing.batch_service_s=5")
"""A town small enough for a run in about 0.2 s, with batches slow enough to queue."""
GRID = ("--vary", "clearing.workers=1,2", "--vary", "demand.peak_multiplier=1,3.5")
REPLICATIONS = 2


def cardsim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def tiny_sets() -> list[str]:
    return [part for item in TINY for part in ("--set", item)]


def sweep(out: Path | None, *extra: str) -> subprocess.CompletedProcess[str]:
    target = ["--out", str(out)] if out else []
    return cardsim(
        "sweep", SCENARIO, *tiny_sets(), *GRID, "--replications", str(REPLICATIONS), *target, *extra
    )


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "serial"
    done = sweep(out, "--workers", "1")
    assert done.returncode == 0, done.stderr
    return out


def test_grid_size_and_columns(serial: Path) -> None:
    runs = pd.read_parquet(serial / "runs.parquet")
    assert list(runs.columns) == [
        "run_id",
        "point",
        "replication",
        "seed",
        "clearing.workers",
        "demand.peak_multiplier",
        *KPI_NAMES,
    ]
    assert runs["run_id"].tolist() == list(range(8))
    assert runs["point"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert runs["clearing.workers"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert runs["demand.peak_multiplier"].tolist() == [1.0, 1.0, 3.5, 3.5] * 2
    # Common random numbers: replication r has the same seed at every point.
    assert runs["seed"].tolist() == replication_seeds(0, REPLICATIONS) * 4
    csv = pd.read_csv(serial / RUNS_CSV)
    pd.testing.assert_frame_equal(csv, runs, check_dtype=False)
    summary = pd.read_csv(serial / "summary.csv")
    assert len(summary) == 4
    assert {"clearing_wait_mean_s_mean", "clearing_wait_mean_s_half_width"} <= set(summary)
    doc = json.loads((serial / "summary.json").read_text())
    assert doc["replication_seeds"] == replication_seeds(0, REPLICATIONS)
    assert len(doc["points"]) == 4


def test_varied_numbers_are_typed_as_their_scenario_field() -> None:
    def cells(spec: str) -> list[tuple[type, float | str]]:
        return [(type(v), v) for v in parse_vary(spec, SCENARIO).values]

    assert cells("clearing.workers=1,2.0") == [(int, 1), (int, 2)]  # an int field
    assert cells("demand.peak_multiplier=1,2") == [(float, 1.0), (float, 2.0)]  # a float field
    # A key of no known type: as TOML reads it, one column type per axis (floats if mixed).
    assert cells("no.such_field=1,2") == [(int, 1), (int, 2)]
    assert cells("no.such_field=1,2.5") == [(float, 1.0), (float, 2.5)]
    assert cells("clearing.mode=city,mmc") == [(str, "city"), (str, "mmc")]


def test_replication_seeds_are_independent_streams() -> None:
    seeds = replication_seeds(7, 5)
    assert len(set(seeds)) == 5
    # Adding replications keeps the earlier ones: child r does not depend on R.
    assert replication_seeds(7, 3) == seeds[:3]
    assert replication_seeds(8, 5) != seeds


def test_one_run_redone_alone_gives_the_identical_row(serial: Path) -> None:
    rows = pq.read_table(serial / "runs.parquet").to_pylist()
    done = sweep(None, "--only", "5")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == rows[5]
    row = rows[5]
    point = ["clearing.workers=2", "demand.peak_multiplier=1"]
    figures = run_one(SCENARIO, TINY, point, row["seed"])
    assert figures == {k: row[k] for k in KPI_NAMES}


def test_two_workers_give_the_same_bytes_as_one(serial: Path, tmp_path: Path) -> None:
    done = sweep(tmp_path / "parallel", "--workers", "2", "--show", "clearing_wait_mean_s")
    assert done.returncode == 0, done.stderr
    # The printed summary: a header, then one line per point with its values and mean +/- CI.
    summary = pd.read_csv(serial / "summary.csv")
    table = done.stdout.splitlines()[1:-1]
    assert table[0].split() == [
        "clearing.workers",
        "demand.peak_multiplier",
        "clearing_wait_mean_s",
    ]
    for line, (_, point) in zip(table[1:], summary.iterrows(), strict=True):
        knobs = [float(v) for v in line.split()[:2]]
        assert knobs == [point["clearing.workers"], point["demand.peak_multiplier"]]
        mean, half = point["clearing_wait_mean_s_mean"], point["clearing_wait_mean_s_half_width"]
        assert line.endswith(f"{short_number(mean)} +/- {short_number(half)}")
    for name in ("runs.csv", "runs.parquet", "summary.csv", "summary.json"):
        assert (tmp_path / "parallel" / name).read_bytes() == (serial / name).read_bytes(), name


@pytest.mark.parametrize(
    "vary",
    ["clearing.wrkers=1,2", "clearing.workers=0,2", "clearing.workers", "clearing.workers=1,,2"],
)
def test_bad_vary_fails_in_one_line_before_any_run(vary: str, tmp_path: Path) -> None:
    done = cardsim("sweep", SCENARIO, "--vary", vary, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.startswith("cardsim: error:")
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_writer_restores_run_id_order(tmp_path: Path) -> None:
    writer = RunTableWriter(tmp_path)
    for run_id in (2, 0, 3, 1):
        writer.add(run_id, {"run_id": run_id, "x": float(run_id) / 2, "p": None})
    writer.close()
    writer.check_complete(4)
    assert (tmp_path / RUNS_CSV).read_text() == "run_id,x,p\n0,0.0,\n1,0.5,\n2,1.0,\n3,1.5,\n"
    table = pd.read_parquet(tmp_path / "runs.parquet")
    assert table["run_id"].tolist() == [0, 1, 2, 3]


def test_summary_mean_and_half_width_on_a_hand_made_table() -> None:
    table = pd.DataFrame(
        {
            "run_id": range(7),
            "point": [0, 0, 0, 1, 1, 1, 2],
            "replication": [0, 1, 2, 0, 1, 2, 0],
            "seed": [11, 12, 13, 11, 12, 13, 11],
            "knob": [1, 1, 1, 2, 2, 2, 3],
            "wait_s": [1.0, 2.0, 3.0, 10.0, None, 14.0, 5.0],
        }
    )
    summary = summarize(table, ["knob"]).set_index("point")
    t2 = t_quantile_two_sided(0.95, 2)
    assert t2 == pytest.approx(4.302652729911275)
    assert summary.loc[0, "wait_s_mean"] == pytest.approx(2.0)
    assert summary.loc[0, "wait_s_half_width"] == pytest.approx(t2 * 1.0 / math.sqrt(3))
    # A missing value (an empty percentile) is left out, not counted as zero.
    t1 = t_quantile_two_sided(0.95, 1)
    assert summary.loc[1, "wait_s_mean"] == pytest.approx(12.0)
    assert summary.loc[1, "wait_s_half_width"] == pytest.approx(
        t1 * np.std([10, 14], ddof=1) / 2**0.5
    )
    assert summary.loc[2, "wait_s_mean"] == 5.0
    assert math.isnan(summary.loc[2, "wait_s_half_width"])
    assert summary["replications"].tolist() == [3, 3, 1]
    assert "seed_mean" not in summary and "knob_mean" not in summary


def test_warmup_cuts_only_the_latency_percentiles() -> None:
    point = ["clearing.workers=2"]
    whole = run_one(SCENARIO, TINY, point, 5)
    warm = run_one(SCENARIO, TINY, point, 5, warmup_s=12 * 3600.0)
    latency = {f"tap_to_cleared_p{q}_s" for q in (50, 95, 99)}
    assert {k: v for k, v in warm.items() if k not in latency} == {
        k: v for k, v in whole.items() if k not in latency
    }
    # Depot uploads at 14:30 and 23:30 make latency depend on the tap hour, so the cut shows.
    assert warm["tap_to_cleared_p50_s"] != whole["tap_to_cleared_p50_s"]
