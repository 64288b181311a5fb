"""A whole sweep: every grid point times every replication, streamed to a long table, then
summarized per point (mean and confidence half-width of every numeric KPI).

Run ids number the runs point-major: run_id = point * replications + replication, so a run id
alone (with the same command line) names one replication that `run_by_id` can redo.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cardsim.capacity.executor import execute
from cardsim.capacity.grid import Axis, grid_points, point_overrides, point_params
from cardsim.capacity.replicate import RunSpec, replication_seeds, run_spec
from cardsim.capacity.tables import RUNS_PARQUET, RunTableWriter, summarize

SUMMARY_SCHEMA = "cardsim.sweep-summary/1"


@dataclass(frozen=True)
class SweepSpec:
    """What to run: a scenario, its fixed overrides, the varied axes and the replications."""

    scenario_path: Path
    overrides: tuple[str, ...]
    axes: tuple[Axis, ...]
    replications: int
    seed: int = 0
    warmup_s: float = 0.0
    """Tap-to-cleared percentiles count only records tapped at or after this (s after midnight)."""
    confidence: float = 0.95
    """Two-sided confidence of the summary's half-widths."""

    @property
    def runs(self) -> int:
        """Grid points times replications."""
        return len(grid_points(self.axes)) * self.replications


def plan_runs(spec: SweepSpec) -> Iterator[RunSpec]:
    """Every run in run-id order; replication r has the same seed at every point."""
    seeds = replication_seeds(spec.seed, spec.replications)
    for p, point in enumerate(grid_points(spec.axes)):
        extra = point_overrides(spec.axes, point)
        params = tuple(point_params(spec.axes, point).items())
        for r, seed in enumerate(seeds):
            yield RunSpec(
                run_id=p * spec.replications + r,
                point=p,
                replication=r,
                seed=seed,
                scenario_path=str(spec.scenario_path),
                overrides=(*spec.overrides, *extra),
                params=params,
                warmup_s=spec.warmup_s,
            )


def run_by_id(spec: SweepSpec, run_id: int) -> dict[str, Any]:
    """Redo one run alone: the same row the sweep wrote for `run_id`."""
    if not 0 <= run_id < spec.runs:
        raise ValueError(f"run id {run_id} is outside 0..{spec.runs - 1}")
    planned = next(run for run in plan_runs(spec) if run.run_id == run_id)
    return run_spec(planned)[1]


def run_sweep(
    spec: SweepSpec,
    folder: Path,
    workers: int = 1,
    progress: Callable[[], None] | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Run the sweep into `folder`: runs.csv, runs.parquet, summary.csv, summary.json (last).

    Runs go to `workers` local processes, or to the Dask cluster at `scheduler`; the files are
    the same bytes either way. `progress` is called once per finished run. Returns the
    summary.json document.
    """
    writer = RunTableWriter(folder)
    try:
        for run_id, row in execute(plan_runs(spec), workers, scheduler):
            writer.add(run_id, row)
            if progress:
                progress()
    finally:
        writer.close()
    writer.check_complete(spec.runs)
    params = [axis.key for axis in spec.axes]
    # Only the KPI columns come back into memory, a few numbers per run.
    table = pq.read_table(folder / RUNS_PARQUET).to_pandas()
    summary = summarize(table, params, spec.confidence)
    summary.to_csv(folder / "summary.csv", index=False)
    doc = summary_document(
        spec, [{str(k): v for k, v in r.items()} for r in summary.to_dict("records")]
    )
    (folder / "summary.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


def summary_document(spec: SweepSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json: the plan (seeds included) and per point each KPI's mean and half-width."""
    return {
        "schema": SUMMARY_SCHEMA,
        "scenario": str(spec.scenario_path),
        "overrides": list(spec.overrides),
        "vary": {axis.key: list(axis.values) for axis in spec.axes},
        "replications": spec.replications,
        "seed": spec.seed,
        "replication_seeds": replication_seeds(spec.seed, spec.replications),
        "warmup_s": spec.warmup_s,
        "confidence": spec.confidence,
        "points": [{k: _json_cell(v) for k, v in row.items()} for row in rows],
    }


def _json_cell(value: Any) -> Any:
    """numpy scalars to Python; NaN (no interval) to null, since JSON has no NaN."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
