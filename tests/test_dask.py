"""Scale-out on Dask: a real cluster (a scheduler and two worker processes on loopback) writes
the same bytes as this machine, for a sweep and for a settlement sharded by terminal."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardsim.capacity.grid import parse_vary
from cardsim.capacity.sweep import SweepSpec, run_sweep
from cardsim.cluster.settlement import settle_on_cluster
from cardsim.cluster.tasks import run_task, tune_allocator, unwrap
from cardsim.errors import InputError
from cardsim.records.log import LogReader, write_log
from cardsim.results.settlement_files import write_settlement
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import Alert
from cardsim.synthetic import SyntheticDay
from tests.test_shards import cross_shard_clone
from tests.test_sweep import SCENARIO, TINY

SWEEP_FILES = ("runs.csv", "runs.parquet", "summary.csv", "summary.json")
SETTLE_FILES = (
    "settlement.csv",
    "rejects.parquet",
    "alerts.parquet",
    "booked.parquet",
    "summary.json",
)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a LocalCluster: two worker processes, one thread each, on loopback."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


def cardsim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_same_files(a: Path, b: Path, names: tuple[str, ...]) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def tiny_spec() -> SweepSpec:
    axes = (
        parse_vary("clearing.workers=1,2", SCENARIO),
        parse_vary("demand.peak_multiplier=1,3.5", SCENARIO),
    )
    return SweepSpec(SCENARIO, TINY, axes, replications=2, seed=3)


@pytest.fixture(scope="module")
def swept_here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sweep run in this process."""
    folder = tmp_path_factory.mktemp("swept-here")
    run_sweep(tiny_spec(), folder, workers=1)
    return folder


def test_a_sweep_on_the_cluster_writes_the_local_bytes(
    scheduler: str, swept_here: Path, tmp_path: Path
) -> None:
    spec = tiny_spec()
    finished: list[int] = []
    run_sweep(spec, tmp_path, progress=lambda: finished.append(1), scheduler=scheduler)
    assert len(finished) == spec.runs
    assert_same_files(swept_here, tmp_path, SWEEP_FILES)


@pytest.fixture(scope="module")
def dirty_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticDay, Path, Path]:
    """Repeats, re-sent records, tampering, forgeries and a card cloned across shards."""
    day = cross_shard_clone()
    root = tmp_path_factory.mktemp("dask-log")
    write_log(root / "records", day.log)
    day.registry.save(root / "keys.json")
    return day, root / "records", root / "keys.json"


def test_a_sharded_settlement_writes_the_local_bytes(
    scheduler: str, dirty_log: tuple[SyntheticDay, Path, Path], tmp_path: Path
) -> None:
    day, log, _ = dirty_log
    reader = LogReader(log)
    local = settle(reader, day.registry)
    shipped: list[int] = []
    sharded = settle_on_cluster(scheduler, reader, day.registry, progress=shipped.append)
    assert sum(shipped) == reader.rows and len(shipped) == 2
    codes = set(local.alerts["code"].tolist())
    assert {Alert.CARD_COUNTER_CLASH, Alert.RECORD_CONFLICT, Alert.FORGED_RECORD} <= codes
    for name, result in (("local", local), ("cluster", sharded)):
        (tmp_path / name).mkdir()
        write_settlement(tmp_path / name, result, reader, {"log": str(log)})
    assert_same_files(tmp_path / "local", tmp_path / "cluster", SETTLE_FILES)


def test_cli_settle_and_sweep_with_scheduler_write_the_local_bytes(
    scheduler: str, dirty_log: tuple[SyntheticDay, Path, Path], swept_here: Path, tmp_path: Path
) -> None:
    day, log, keys = dirty_log
    done = cardsim(
        "settle", log, "--keys", keys, "--out", tmp_path / "settled", "--scheduler", scheduler
    )
    assert done.returncode == 0, done.stderr
    reader = LogReader(log)
    (tmp_path / "local").mkdir()
    extra = {"log": str(log), "cutoff_ms": None}
    write_settlement(tmp_path / "local", settle(reader, day.registry), reader, extra)
    assert_same_files(tmp_path / "local", tmp_path / "settled", SETTLE_FILES)

    spec = tiny_spec()
    sets = [part for item in spec.overrides for part in ("--set", item)]
    grid = [part for axis in spec.axes for part in ("--vary", f"{axis.key}={','.join(axis.raw)}")]
    args = ["--replications", str(spec.replications), "--seed", str(spec.seed)]
    out = tmp_path / "swept"
    done = cardsim("sweep", SCENARIO, *sets, *grid, *args, "--out", out, "--scheduler", scheduler)
    assert done.returncode == 0, done.stderr
    assert f"{spec.runs} runs on the Dask cluster at {scheduler}" in done.stderr
    assert_same_files(swept_here, out, SWEEP_FILES)


def test_a_partitioned_log_settles_on_the_cluster_to_the_local_bytes(
    scheduler: str, dirty_log: tuple[SyntheticDay, Path, Path], tmp_path: Path
) -> None:
    day, log, keys = dirty_log
    parted = tmp_path / "parted"
    (parted / "notes").mkdir(parents=True)
    (parted / "notes" / "a.txt").write_text("mine")  # a user's file in the folder is kept
    done = cardsim("partition", log, "--shards", "2", "--out", parted)
    assert done.returncode == 0, done.stderr
    assert (parted / "notes" / "a.txt").read_text() == "mine"
    reader = LogReader(parted)
    assert reader.partitions is not None and len(reader.partitions) == 2
    done = cardsim(
        "settle", parted, "--keys", keys, "--out", tmp_path / "settled", "--scheduler", scheduler
    )
    assert done.returncode == 0, done.stderr
    done = cardsim("settle", parted, "--keys", keys, "--out", tmp_path / "local")
    assert done.returncode == 0, done.stderr
    assert_same_files(tmp_path / "local", tmp_path / "settled", SETTLE_FILES)
    assert (
        settle(reader, day.registry).booked.size == settle(LogReader(log), day.registry).booked.size
    )


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_scheduler_is_one_line_and_exit_2(
    dirty_log: tuple[SyntheticDay, Path, Path], tmp_path: Path
) -> None:
    _, log, keys = dirty_log
    address = f"tcp://127.0.0.1:{closed_port()}"
    out = tmp_path / "out"
    done = cardsim("settle", log, "--keys", keys, "--out", out, "--scheduler", address)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"cardsim: error: --scheduler: cannot reach a Dask scheduler at {address}"
    )
    assert not out.exists()


CAPACITY = ["--knob", "clearing.workers", "--values", "1,2", "--sla", "clearing_wait_mean_s<=10"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ["sweep", "--vary", "clearing.workers=1,2", "--scheduler", "nowhere"],
            "--scheduler: 'nowhere' is not a scheduler address",
        ),
        (
            ["capacity", *CAPACITY, "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
            "--scheduler: the cluster's workers do the runs: drop --workers",
        ),
    ],
)
def test_a_bad_scheduler_option_names_it(command: list[str], message: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = cardsim(command[0], SCENARIO, *command[1:], "--out", out)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert not out.exists()


def test_input_errors_raised_on_a_worker_come_back_as_input_errors() -> None:
    def bad(path: str) -> None:
        raise InputError(path, "scenario file not found")

    reported = run_task(bad, "/nowhere.toml")
    with pytest.raises(InputError, match=r"^/nowhere.toml: scenario file not found$"):
        unwrap(reported)
    assert unwrap(run_task(len, "abc")) == 3


def test_the_allocator_is_tuned_only_under_dasks_trimming(monkeypatch: pytest.MonkeyPatch) -> None:
    tune = tune_allocator.__wrapped__  # the uncached function: each call decides afresh
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert tune() is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert tune() is False, "a threshold the worker's environment sets is left alone"
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert tune() is sys.platform.startswith("linux")
