"""The capacity curve as a PNG: KPI mean against the knob, the confidence band, the SLA line."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

from cardsim.capacity.search import CapacityPoint, Sla


def unit_of(name: str) -> str:
    """The unit a cardsim name ends with (names carry units last)."""
    for suffix, unit in (("_s", "s"), ("_fen", "fen"), ("_records", "records")):
        if name.endswith(suffix):
            return unit
    if name.endswith("utilization"):
        return "share of capacity"
    return "count"


def plot_capacity(
    curve: list[CapacityPoint],
    sla: Sla,
    knob: str,
    confidence: float,
    answer: CapacityPoint | None,
    path: Path,
) -> None:
    """Write the curve to `path` (PNG): mean with its band, the SLA limit, the answer marked."""
    x = np.array([p.knob for p in curve])
    mean = np.array([p.mean for p in curve])
    half = np.array([p.half_width for p in curve])
    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=100)
    try:
        ax.fill_between(
            x,
            mean - half,
            mean + half,
            alpha=0.25,
            label=f"band: {confidence:.0%} one-sided bounds",
        )
        ax.plot(x, mean, marker="o", label=f"mean of {curve[0].replications} replications")
        ax.axhline(sla.limit, color="red", linestyle="--", label=f"SLA {sla}")
        if answer is not None:
            ax.axvline(
                answer.knob, color="green", linestyle=":", label=f"answer {knob}={answer.knob:g}"
            )
        ax.set_xlabel(f"{knob} ({unit_of(knob)})")
        ax.set_ylabel(f"{sla.kpi} ({unit_of(sla.kpi)})")
        ax.set_title(f"capacity: {sla.kpi} vs {knob}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        # No date or software stamp in the PNG metadata, so equal curves give equal bytes.
        fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
