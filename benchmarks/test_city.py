"""City day throughput: the fast model against the process-per-transaction reference, and the
Octopus-scale peak day.

Groups (`make bench` prints them side by side):
- city-vs-reference: `simulate_day` and `simulate_reference` on small-town with the same seed,
  whole runs; then the part the two models do differently, on the same records: the fast
  model's vectorized upload plan plus one SimPy event per batch, against the reference's one
  process per record, per terminal and per batch. The fast model's entries carry the speed
  ratio to the reference measured in this same run. The whole `simulate_day` also signs every
  batch and settles the day, which the reference does not do, so the whole-run ratio and the
  stage ratio answer different questions; both are recorded. `speedup_vs_reference` is the
  reference's best time over the fast model's: below 1 the fast model was the slower one.
- metro-peak: `simulate_day` on scenarios/metro-peak.toml with two workers, once, with its
  peak memory. CARDSIM_BENCH_METRO_SET takes comma-separated `key=value` overrides (as
  `--set`) to scale it down for a quick look, e.g. `population.cards=200000`.

Each benchmark puts transactions/s in extra_info. Nothing here asserts a time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from cardsim.bench import PeakRss
from cardsim.scenario import Scenario, load_scenario
from cardsim.sim.city import Day, clearing_config, simulate_day
from cardsim.sim.clearing import ClearingResult, simulate_clearing
from cardsim.sim.reference_model import day_records, run_reference, simulate_reference
from cardsim.sim.uploads import plan_uploads
from cardsim.sim.world import DAY_START_MS, World

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SEED = 1
DAY_S = 86_400.0
METRO_SET = os.environ.get("CARDSIM_BENCH_METRO_SET", "")

RESULTS: dict[str, float] = {}
"""Best seconds per benchmark of this run, for the ratios."""


def _record(benchmark: BenchmarkFixture, name: str, transactions: int, **extra: object) -> None:
    seconds = benchmark.stats.stats.min
    RESULTS[name] = seconds
    benchmark.extra_info.update(
        {"transactions": transactions, "transactions_per_s": round(transactions / seconds), **extra}
    )


@pytest.fixture(scope="module")
def small_town() -> Scenario:
    return load_scenario(SCENARIOS / "small-town.toml")


@pytest.fixture(scope="module")
def small_town_records(small_town: Scenario) -> tuple[World, np.ndarray]:
    return day_records(small_town, SEED)


# The reference runs first so that the fast model's entry can carry the ratio.


def test_reference_day(benchmark: BenchmarkFixture, small_town: Scenario) -> None:
    benchmark.group = "city-vs-reference"
    day = benchmark.pedantic(
        lambda: simulate_reference(small_town, SEED), rounds=3, iterations=1, warmup_rounds=0
    )
    _record(benchmark, "reference-day", len(day.tap_time_s), batches=len(day.arrival_s))


def test_fast_day(benchmark: BenchmarkFixture, small_town: Scenario) -> None:
    benchmark.group = "city-vs-reference"
    clock = _StageClock()
    day = benchmark.pedantic(
        lambda: clock.run(lambda: simulate_day(small_town, SEED, clock.stage)),
        rounds=3,
        iterations=1,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        "fast-day",
        len(day.log.records),
        batches=len(day.log.batches),
        last_round_stage_seconds=clock.seconds,
    )
    if "reference-day" in RESULTS:
        benchmark.extra_info["speedup_vs_reference"] = round(
            RESULTS["reference-day"] / RESULTS["fast-day"], 3
        )


def test_reference_uploads_and_clearing(
    benchmark: BenchmarkFixture, small_town: Scenario, small_town_records: tuple[World, np.ndarray]
) -> None:
    benchmark.group = "city-vs-reference"
    world, records = small_town_records
    tap_time_s, terminal = _tap_times(records)
    benchmark.pedantic(
        lambda: run_reference(tap_time_s, terminal, world.terminals.cellular, small_town, SEED),
        rounds=3,
        iterations=1,
        warmup_rounds=0,
    )
    _record(benchmark, "reference-stage", len(records))


def test_fast_uploads_and_clearing(
    benchmark: BenchmarkFixture, small_town: Scenario, small_town_records: tuple[World, np.ndarray]
) -> None:
    benchmark.group = "city-vs-reference"
    world, records = small_town_records
    tap_time_s, terminal = _tap_times(records)
    benchmark.pedantic(
        lambda: _fast_stage(tap_time_s, terminal, world, small_town),
        rounds=5,
        iterations=1,
        warmup_rounds=0,
    )
    _record(benchmark, "fast-stage", len(records))
    if "reference-stage" in RESULTS:
        benchmark.extra_info["speedup_vs_reference"] = round(
            RESULTS["reference-stage"] / RESULTS["fast-stage"], 3
        )


def test_metro_peak(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "metro-peak"
    overrides = _overrides(METRO_SET)
    scenario = load_scenario(SCENARIOS / "metro-peak.toml", overrides)
    clock = _StageClock()
    with PeakRss() as rss:
        day = benchmark.pedantic(
            lambda: clock.run(lambda: simulate_day(scenario, SEED, clock.stage, workers=2)),
            rounds=1,
            iterations=1,
        )
    _record(
        benchmark,
        "metro-peak",
        len(day.log.records),
        batches=len(day.log.batches),
        workers=2,
        peak_memory_bytes=rss.peak_bytes,
        overrides=overrides,
        stage_seconds=clock.seconds,
    )


class _StageClock:
    """Seconds per stage of the last run, from simulate_day's stage callback: they show where
    the whole-day time goes (signing and settlement are not in the reference)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage, self._since = "", 0.0

    def run(self, day: Callable[[], Day]) -> Day:
        self.seconds, self._stage, self._since = {}, "", time.perf_counter()
        result = day()
        self.stage("")
        return result

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        if self._stage:
            self.seconds[self._stage] = round(now - self._since, 4)
        self._stage, self._since = name, now


def _tap_times(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record: tap time (s after midnight) and terminal index, as simulate_day has them."""
    tap_time_s = (records["time_ms"] - DAY_START_MS) / 1000.0
    return tap_time_s, records["terminal_id"].astype(np.int64) - 1


def _fast_stage(
    tap_time_s: np.ndarray, terminal: np.ndarray, world: World, scenario: Scenario
) -> ClearingResult:
    """What simulate_day does between the records and the clearing result, minus the signing:
    the vectorized upload plan, then one SimPy process per batch (as city._clear builds it)."""
    rng = np.random.default_rng(SEED)
    uploads = plan_uploads(tap_time_s, terminal, world.terminals.cellular, scenario, rng)
    config = clearing_config(scenario)
    records = np.bincount(uploads.batch_of, minlength=len(uploads.terminal))
    horizon_s = max(DAY_S, float(uploads.uploaded_s.max(initial=0.0)))
    return simulate_clearing(uploads.uploaded_s, records, config, rng, horizon_s)


def _overrides(spec: str) -> list[str]:
    """`a.b=1,c.d=[[1.0, 2.0]]` -> ["a.b=1", "c.d=[[1.0, 2.0]]"]: a comma starts a new override
    only where a `key=` follows, so list values keep their commas."""
    return [part.strip() for part in re.split(r",(?=\s*[\w.]+\s*=)", spec) if part.strip()]
