"""`cardsim run`: simulate a day and write everything it produced into one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cardsim.records.log import write_log
from cardsim.report import write_report, write_series
from cardsim.results.atomic import atomic_folder
from cardsim.results.settlement_files import write_settlement
from cardsim.scenario import Scenario
from cardsim.settlement.source import MemorySource
from cardsim.sim.accounting import accounting, injected_frame, injection_summary
from cardsim.sim.city import Day, simulate_day
from cardsim.sim.kpis import by_domain, by_hour, conservation, kpis

RUN_SCHEMA = "cardsim.run-summary/1"
STAGES = (
    "city",
    "demand",
    "purses",
    "records",
    "signing",
    "clearing",
    "settlement",
    "writing",
    "report",
)


def run_summary(day: Day, seed: int) -> dict[str, Any]:
    """summary.json of a run: no clock readings or paths, so equal runs give equal bytes."""
    doc = {
        "schema": RUN_SCHEMA,
        "cardsim_version": version("cardsim"),
        "seed": seed,
        "scenario": day.world.scenario.model_dump(mode="json"),
        "kpis": kpis(day),
        "conservation": conservation(day),
        "accounting": accounting(day),
    }
    if day.injection is not None:
        doc["injection"] = injection_summary(day)
    return doc


def run(
    scenario: Scenario,
    seed: int,
    out: Path,
    stage: Callable[[str], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Simulate and write DIR/records/, keys.json, settlement files, tables, series/,
    plots/, report.html and summary.json (last)."""
    day = simulate_day(scenario, seed, stage, workers)
    if stage:
        stage("writing")
    doc = run_summary(day, seed)
    from cardsim.results.outputs import log_outputs  # it reads this module's schema

    with atomic_folder(out, stale=log_outputs()) as tmp:
        write_log(tmp / "records", day.log)
        day.params.save(tmp / "records")
        day.world.registry.save(tmp / "keys.json")
        by_domain(day).to_csv(tmp / "by_domain.csv", index=False)
        by_hour(day).to_csv(tmp / "by_hour.csv", index=False)
        if day.injection is not None:
            injected_frame(day).to_csv(tmp / "injected.csv", index=False)
        settled = write_settlement(tmp, day.settlement, MemorySource(day.log), booked=False)
        doc["settlement"] = {k: settled[k] for k in ("records", "outcomes", "alerts", "checks")}
        text = json.dumps(doc, indent=1) + "\n"
        write_series(day, tmp)
        if stage:
            stage("report")
        # Built from the folder's files (summary.json is still to come), as `cardsim report`
        # would rebuild it, so both give the same bytes.
        write_report(tmp, json.loads(text))
        (tmp / "summary.json").write_text(text)
    return doc
