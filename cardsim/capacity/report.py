"""`cardsim capacity` outputs: the curve as capacity.csv and capacity.json, and the answer."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from cardsim.capacity.search import CapacityPoint, Sla

CAPACITY_SCHEMA = "cardsim.capacity/1"


def answer_text(knob: str, sla: Sla, confidence: float, answer: CapacityPoint | None) -> str:
    """One line a planner can act on, including when no tried value is enough."""
    if answer is None:
        side = "upper" if sla.op == "<=" else "lower"
        return (
            f"no value of {knob} tried meets {sla} at {confidence:.0%} confidence "
            f"(the {side} bound misses at every value): try larger values or more replications"
        )
    return (
        f"smallest {knob} meeting {sla} at {confidence:.0%} confidence: {knob_text(answer.knob)} "
        f"(mean {answer.mean:.3f}, bound {answer.bound:.3f})"
    )


def knob_text(value: int | float) -> str:
    """A knob value as its field types it: an int in full (no exponent), a float in short."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def curve_table(curve: list[CapacityPoint], knob: str) -> pd.DataFrame:
    """The curve as a table: knob value, mean, half-width, bound, ok, replications."""
    frame = pd.DataFrame([asdict(p) for p in curve])
    return frame.rename(columns={"knob": knob})


def write_capacity(
    folder: Path,
    curve: list[CapacityPoint],
    knob: str,
    sla: Sla,
    confidence: float,
    answer: CapacityPoint | None,
) -> dict[str, Any]:
    """Write capacity.csv and capacity.json into `folder`; return the JSON document."""
    curve_table(curve, knob).to_csv(folder / "capacity.csv", index=False)
    doc = {
        "schema": CAPACITY_SCHEMA,
        "knob": knob,
        "sla": {"kpi": sla.kpi, "op": sla.op, "limit": sla.limit},
        "confidence": confidence,
        "answer": None if answer is None else answer.knob,
        "message": answer_text(knob, sla, confidence, answer),
        "curve": [{k: _finite(v) for k, v in asdict(p).items()} for p in curve],
    }
    (folder / "capacity.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def format_curve(curve: list[CapacityPoint], knob: str) -> list[str]:
    """Lines of the printed curve: knob, mean, half-width, bound, ok."""
    lines = [f"{knob:>20} {'mean':>14} {'half-width':>12} {'bound':>14}  ok"]
    for p in curve:
        lines.append(
            f"{knob_text(p.knob):>20} {p.mean:>14.3f} {p.half_width:>12.3f} {p.bound:>14.3f}  "
            f"{'yes' if p.ok else 'no'}"
        )
    return lines


SHOWN_KPIS = ("tap_to_cleared_p95_s", "clearing_wait_mean_s", "clearing_utilization")
"""The KPIs `cardsim sweep` prints per point unless told otherwise (all are in summary.csv)."""


def format_summary(summary: pd.DataFrame, varied: list[str], kpis: list[str]) -> list[str]:
    """Lines of the printed sweep summary: each point's varied values, then mean +/- 95 % CI
    half-width of each KPI."""
    width = max(24, *(len(k) + 2 for k in kpis))
    knobs = [max(10, len(v) + 2) for v in varied]
    header = "".join(f"{v:>{w}}" for v, w in zip(varied, knobs, strict=True))
    lines = [header + "".join(f"{k:>{width}}" for k in kpis)]
    for _, row in summary.iterrows():
        cells = "".join(f"{row[v]:>{w}g}" for v, w in zip(varied, knobs, strict=True))
        for k in kpis:
            cell = f"{short_number(row[k + '_mean'])} +/- {short_number(row[k + '_half_width'])}"
            cells += f"{cell:>{width}}"
        lines.append(cells)
    return lines


def short_number(value: float) -> str:
    """Four significant digits, without exponents for values of a thousand and more."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
