"""`cardsim capacity`: SLA parsing, the bound-based search, and an end-to-end curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cardsim.capacity.search import Sla, evaluate, parse_sla, smallest_meeting
from cardsim.sim.queueing import t_quantile_two_sided
from tests.test_sweep import SCENARIO, cardsim, tiny_sets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_parse_sla() -> None:
    assert parse_sla("tap_to_cleared_p95_s<=900") == Sla("tap_to_cleared_p95_s", "<=", 900.0)
    assert parse_sla(" clearing_utilization >= 0.5 ") == Sla("clearing_utilization", ">=", 0.5)
    for bad in ("tap_to_cleared_p95_s<900", "nonsense<=1", "clearing_wait_mean_s<=fast", ""):
        with pytest.raises(ValueError, match="--sla"):
            parse_sla(bad)


def test_smallest_knob_whose_upper_bound_meets_the_sla() -> None:
    samples = {
        4: np.array([20.0, 21.0, 19.0]),
        1: np.array([100.0, 110.0, 90.0]),
        2: np.array([50.0, 52.0, 48.0]),
    }
    curve = evaluate(samples, Sla("wait_s", "<=", 55.0), confidence=0.95)
    assert [p.knob for p in curve] == [1.0, 2.0, 4.0]
    # One-sided 95 % = two-sided 90 %: t(0.90, df=2) * s / sqrt(3), s = 2 at knob 2.
    margin = t_quantile_two_sided(0.90, 2) * 2.0 / math.sqrt(3)
    assert curve[1].half_width == pytest.approx(margin)
    assert curve[1].bound == pytest.approx(50.0 + margin)
    assert [p.ok for p in curve] == [False, True, True]
    answer = smallest_meeting(curve)
    assert answer is not None and answer.knob == 2.0


def test_the_bound_not_the_mean_decides() -> None:
    # Knob 2's mean (50) meets 55, but its spread puts the upper bound above it.
    samples = {2: np.array([40.0, 60.0, 50.0]), 4: np.array([20.0, 21.0, 19.0])}
    curve = evaluate(samples, Sla("wait_s", "<=", 55.0))
    assert curve[0].mean == pytest.approx(50.0) and not curve[0].ok
    answer = smallest_meeting(curve)
    assert answer is not None and answer.knob == 4.0


def test_no_value_meets_the_sla() -> None:
    samples = {1: np.array([100.0, 101.0]), 2: np.array([50.0, 51.0])}
    assert smallest_meeting(evaluate(samples, Sla("wait_s", "<=", 5.0))) is None
    # One finite replication has no bound, so it never meets an SLA.
    lone = evaluate({1: np.array([1.0, np.nan])}, Sla("wait_s", "<=", 5.0))
    assert math.isnan(lone[0].bound) and not lone[0].ok


def test_at_least_uses_the_lower_bound() -> None:
    samples = {1: np.array([0.5, 0.6, 0.55]), 2: np.array([0.9, 0.95, 0.92])}
    curve = evaluate(samples, Sla("share", ">=", 0.85))
    assert curve[1].bound == pytest.approx(curve[1].mean - curve[1].half_width)
    assert [p.ok for p in curve] == [False, True]
    assert smallest_meeting(curve).knob == 2.0  # type: ignore[union-attr]


def test_capacity_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    done = cardsim(
        "capacity",
        SCENARIO,
        *tiny_sets(),
        "--knob",
        "clearing.workers",
        "--values",
        "1,2,4",
        "--sla",
        "clearing_wait_mean_s<=30",
        "--replications",
        "3",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    assert "smallest clearing.workers meeting clearing_wait_mean_s<=30" in done.stdout
    assert "95% confidence: 4 (mean" in done.stdout
    doc = json.loads((out / "capacity.json").read_text())
    means = [p["mean"] for p in doc["curve"]]
    assert means == sorted(means, reverse=True), "more workers must wait less"
    assert [p["ok"] for p in doc["curve"]] == [False, False, True]
    # clearing.workers is an int field: its values stay ints (4, not 4.0) in every output.
    assert doc["answer"] == 4 and isinstance(doc["answer"], int)
    assert [p["knob"] for p in doc["curve"]] == [1, 2, 4]
    assert all(isinstance(p["knob"], int) for p in doc["curve"])
    csv = (out / "capacity.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv] == ["clearing.workers", "1", "2", "4"]
    assert (out / "runs.parquet").exists()
    assert (out / "capacity.png").read_bytes()[:8] == PNG_MAGIC


def test_capacity_refuses_a_non_numeric_knob(tmp_path: Path) -> None:
    done = cardsim(
        "capacity",
        SCENARIO,
        "--knob",
        "bus.upload",
        "--values",
        '"depot","cellular"',
        "--sla",
        "clearing_wait_mean_s<=30",
        "--out",
        tmp_path / "cap",
    )
    assert done.returncode == 2
    assert "must be numbers" in done.stderr and "Traceback" not in done.stderr
