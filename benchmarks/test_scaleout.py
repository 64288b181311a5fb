"""Scale-out on Dask: the same work on a cluster of two worker processes against one, both
clusters started here on loopback (one thread per worker), in the same run.

Groups (`make bench` prints them side by side):
- scaleout-sweep: a sweep of SWEEP_RUNS replications of a trimmed small town; runs/s.
- scaleout-settle: the shared benchmark log (CARDSIM_BENCH_RECORDS, 10 million records from
  20,000 terminals by default) partitioned for two workers (`cardsim partition --shards 2`),
  settled in shards of whole terminals; records/s. One worker reads both partitions, each of
  two workers reads only its own row groups.

The two-worker entry of each group stores `speedup_vs_1_worker`, computed from this run's
one-worker figure. Workers are warmed up (cardsim imported) before timing. Nothing here
asserts a time; the two-worker results are checked equal to the one-worker ones.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conftest import TERMINALS
from cardsim.capacity.grid import parse_vary
from cardsim.capacity.sweep import SweepSpec, run_sweep
from cardsim.cluster.settlement import settle_on_cluster
from cardsim.records.log import LogReader, write_log
from cardsim.settlement.shards import partition_log

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "small-town.toml"
TOWN = (
    "population.cards=4000",
    "bike.trips=300",
    "hospital.patients=300",
    "issuance.applications=60",
    "clearing.batch_service_s=3",
)
"""The capacity example of the README: about a second a run on this machine."""
SWEEP_VARY = "clearing.workers=1,2,4"
SWEEP_REPLICATIONS = 8
SWEEP_RUNS = 3 * SWEEP_REPLICATIONS
MAIN_BATCH = 1_000
PARTITIONS = 2

SECONDS: dict[str, float] = {}
RESULTS: dict[str, object] = {}


def _warm() -> None:
    """Import and compile what a worker will run (the TAC kernel is compiled on first use),
    so that the first timed task does not pay for it."""
    import cardsim.capacity.replicate  # noqa: F401
    from cardsim.settlement.shards import settle_in_shards
    from cardsim.synthetic import SyntheticSpec, generate

    day = generate(SyntheticSpec(records=200, terminals=4, batch_size=20))
    settle_in_shards(day.log, day.registry)


@contextmanager
def cluster(workers: int) -> Iterator[str]:
    """A LocalCluster of `workers` processes with one thread each; yields its address."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as local,
        Client(local.scheduler_address, set_as_default=False) as client,
    ):
        client.run(_warm)
        yield local.scheduler_address


def _speedup(benchmark, group: str, workers: int) -> None:
    SECONDS[f"{group}-{workers}"] = benchmark.stats.stats.min
    if workers == 2 and f"{group}-1" in SECONDS:
        benchmark.extra_info["speedup_vs_1_worker"] = round(
            SECONDS[f"{group}-1"] / SECONDS[f"{group}-2"], 3
        )


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_on_dask(benchmark, workers: int) -> None:
    benchmark.group = "scaleout-sweep"
    spec = SweepSpec(
        SCENARIO, TOWN, (parse_vary(SWEEP_VARY, SCENARIO),), SWEEP_REPLICATIONS, seed=1
    )
    assert spec.runs == SWEEP_RUNS

    with cluster(workers) as address, tempfile.TemporaryDirectory() as scratch:
        rounds = iter(range(100))

        def sweep() -> bytes:
            folder = Path(scratch) / str(next(rounds))
            folder.mkdir()
            run_sweep(spec, folder, scheduler=address)
            return (folder / "runs.csv").read_bytes()

        runs_csv = benchmark.pedantic(sweep, rounds=1, iterations=1)
    if "sweep" in RESULTS:
        assert runs_csv == RESULTS["sweep"], "the sweep must not depend on the worker count"
    RESULTS["sweep"] = runs_csv
    seconds = benchmark.stats.stats.min
    benchmark.extra_info.update(
        {"workers": workers, "runs": SWEEP_RUNS, "runs_per_s": round(SWEEP_RUNS / seconds, 3)}
    )
    _speedup(benchmark, "sweep", workers)


@pytest.fixture(scope="module")
def partitioned(logs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark log laid out in PARTITIONS partitions, as `cardsim partition` writes it."""
    day, _ = logs(MAIN_BATCH)
    path = tmp_path_factory.mktemp("partitioned") / "log"
    write_log(path, *partition_log(day.log, PARTITIONS))
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_sharded_settle_on_dask(benchmark, logs, partitioned: Path, workers: int) -> None:
    benchmark.group = "scaleout-settle"
    day, _ = logs(MAIN_BATCH)
    path = partitioned
    with cluster(workers) as address:
        result = benchmark.pedantic(
            lambda: settle_on_cluster(address, LogReader(path), day.registry),
            rounds=3,
            iterations=1,
        )
    assert int(result.positions["net_fen"].sum()) == 0
    if "settle" in RESULTS:
        before = RESULTS["settle"]
        for name in ("outcome", "alerts", "positions"):
            assert np.array_equal(getattr(before, name), getattr(result, name)), name
    RESULTS["settle"] = result
    records = len(day.log.records)
    benchmark.extra_info.update(
        {
            "workers": workers,
            "records": records,
            "terminals": TERMINALS,
            "records_per_s": round(records / benchmark.stats.stats.min),
        }
    )
    _speedup(benchmark, "settle", workers)
