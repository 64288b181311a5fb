"""Settlement throughput against the crypto floor and the baselines, all in one run.

Groups (`make bench` prints them side by side):
- scaling-10M: two workers against one, in paired rounds (`cardsim bench --workers 2`), and
  the machine's ceiling for it: two one-worker processes settling side by side against one.
- settle-10M: the kernel on 1 and 2 workers, the crypto floor on 1 and 2 threads (SHA-256
  over every batch plus one Ed25519 verification per batch), the TAC check alone (compiled,
  and its numpy baseline), and the one-signature-per-record baseline.
- netting-10M: the kernel's integer netting against a pandas group-by.
- batch-size-sweep: the kernel and the floor at batch sizes 64, 256, 1,024 and 4,096.

Each benchmark puts records/s in extra_info; ratios are computed from measurements of this
same run and stored in extra_info too. Nothing here asserts a time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.conftest import RECORDS, TERMINALS
from cardsim.bench import crypto_floor_s, measure
from cardsim.records.keys import TAC_FIELDS, KeyRegistry, compute_tacs, compute_tacs_vectorized
from cardsim.records.log import LogReader
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.positions import flow_sums, net_positions

MAIN_BATCH = 1_000
SWEEP = [64, 256, 1_024, 4_096]
TAC_BLOCK = 1 << 18
"""Records per TAC-check call in the TAC benchmarks (about one Parquet row group)."""
SIGNED_SAMPLE = 100_000
"""Records signed and verified one by one for the per-record baseline. At ~10,000 verifies/s
a full 10-million-record run would take 17 minutes; the rate per record does not depend on
how many there are, so a sample of this size measures it to within noise."""

RESULTS: dict[str, float] = {}


def _record(benchmark, name: str, records: int, **extra: object) -> None:
    seconds = benchmark.stats.stats.min
    RESULTS[name] = seconds
    benchmark.extra_info.update(
        {
            "records": records,
            "records_per_s": round(records / seconds),
            "terminals": TERMINALS,
            **extra,
        }
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_crypto_floor(benchmark, logs, workers: int) -> None:
    benchmark.group = "settle-10M"
    day, _ = logs(MAIN_BATCH)
    benchmark.pedantic(
        lambda: crypto_floor_s(day.log, day.registry, workers), rounds=3, iterations=1
    )
    _record(benchmark, f"floor-{workers}", len(day.log.records), workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_settle(benchmark, logs, workers: int, tmp_path: Path) -> None:
    benchmark.group = "settle-10M"
    day, path = logs(MAIN_BATCH)
    result = benchmark.pedantic(
        lambda: settle(LogReader(path), day.registry, workers=workers),
        rounds=3,
        iterations=1,
        warmup_rounds=0,
    )
    assert int(result.positions["net_fen"].sum()) == 0
    # Memory in a fresh process: here the allocator would reuse what the rounds left behind.
    keys = tmp_path / "keys.json"
    day.registry.save(keys)
    [(_, peak)] = _settle_in_processes(path, keys, 1, workers)
    raw = day.log.records.nbytes
    _record(
        benchmark,
        f"settle-{workers}",
        len(day.log.records),
        workers=workers,
        peak_memory_bytes=peak,
        peak_memory_to_raw=round(peak / raw, 3),
    )
    floor = RESULTS.get(f"floor-{workers}")
    if floor:
        benchmark.extra_info["ratio_to_floor"] = round(floor / RESULTS[f"settle-{workers}"], 3)


SCALING_ROUNDS = 5


def test_two_workers_vs_one(benchmark, logs) -> None:
    """The speed-up of two workers over one, as `cardsim bench --workers 2` measures it: each
    round settles on one worker and then on two, back to back, and does the same with the
    floor; the speed-up is the median of the rounds' ratios, so that a busy spell of the
    shared machine slows both sides of a pair rather than one side of the comparison."""
    benchmark.group = "scaling-10M"
    day, path = logs(MAIN_BATCH)
    result = benchmark.pedantic(
        lambda: measure(path, day.log, day.registry, 2, rounds=SCALING_ROUNDS),
        rounds=1,
        iterations=1,
    )
    figures = result.as_json()
    benchmark.extra_info.update(
        {
            key: figures[key]
            for key in (
                "records",
                "records_per_s",
                "seconds_rounds",
                "one_worker_seconds",
                "speedup_vs_one_worker",
                "speedup_rounds",
                "floor_speedup_vs_one_thread",
                "floor_speedup_rounds",
                "ratio_to_floor",
            )
        }
    )


CEILING_ROUNDS = 3


def _settle_in_processes(
    path: Path, keys: Path, processes: int, workers: int = 1
) -> list[tuple[float, int]]:
    """Seconds and peak memory growth of each of `processes` fresh processes settling the log
    side by side on `workers` threads (each warms up first; all start together)."""
    command = [sys.executable, "-m", "benchmarks.settle_once", str(path), str(keys), str(workers)]
    root = Path(__file__).resolve().parents[1]
    running = [
        subprocess.Popen(
            command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    for p in running:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in running:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    figures = [p.communicate()[0].split() for p in running]
    return [(float(seconds), int(peak)) for seconds, peak in figures]


def test_two_processes_ceiling(benchmark, logs, tmp_path: Path) -> None:
    """What this machine allows two workers at best: two processes, each settling the whole
    log on one worker at the same time, against one process alone, in paired rounds. They
    share no GIL and no serial step, so 2 x alone / together is the speed-up that the cores,
    caches and memory give this workload; two threads in one settlement cannot beat it."""
    benchmark.group = "scaling-10M"
    day, path = logs(MAIN_BATCH)
    keys = tmp_path / "keys.json"
    day.registry.save(keys)
    alone: list[float] = []
    together: list[float] = []

    def rounds() -> None:
        for _ in range(CEILING_ROUNDS):
            alone.append(_settle_in_processes(path, keys, 1)[0][0])
            together.append(max(t for t, _ in _settle_in_processes(path, keys, 2)))

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    ceilings = [2 * a / t for a, t in zip(alone, together, strict=True)]
    benchmark.extra_info.update(
        {
            "records": len(day.log.records),
            "records_per_s": round(2 * len(day.log.records) / statistics.median(together)),
            "one_process_seconds": [round(a, 4) for a in alone],
            "two_processes_seconds": [round(t, 4) for t in together],
            "ceiling_speedup": round(statistics.median(ceilings), 3),
            "ceiling_rounds": [round(c, 3) for c in ceilings],
        }
    )


def test_tac_check_alone(benchmark, logs) -> None:
    """The compiled TAC check as the kernel runs it: on contiguous columns, as read from
    Parquet (copied out of the record array before timing), one thread."""
    benchmark.group = "settle-10M"
    day, _ = logs(MAIN_BATCH)
    records, master = day.log.records, day.registry.master_key
    blocks = [
        {
            name: np.ascontiguousarray(records[start : start + TAC_BLOCK][name])
            for name in TAC_FIELDS
        }
        for start in range(0, len(records), TAC_BLOCK)
    ]
    benchmark.pedantic(
        lambda: [compute_tacs(master, block) for block in blocks], rounds=3, iterations=1
    )
    _record(benchmark, "tac", len(records))


def test_baseline_tac_check_numpy(benchmark, logs) -> None:
    """The TAC check with numpy ufuncs over blocks of rows, as the kernel did before its
    compiled loop: the baseline of test_tac_check_alone."""
    benchmark.group = "settle-10M"
    day, _ = logs(MAIN_BATCH)
    records, master = day.log.records, day.registry.master_key

    def numpy_tacs() -> None:
        for start in range(0, len(records), TAC_BLOCK):
            compute_tacs_vectorized(master, records[start : start + TAC_BLOCK])

    benchmark.pedantic(numpy_tacs, rounds=1, iterations=1)
    _record(benchmark, "tac-numpy", len(records))
    if "tac" in RESULTS:
        benchmark.extra_info["compiled_speedup"] = round(RESULTS["tac-numpy"] / RESULTS["tac"], 2)


def test_baseline_one_signature_per_record_100k_sample(benchmark, logs) -> None:
    benchmark.group = "settle-10M"
    day, _ = logs(MAIN_BATCH)
    records = day.log.records[:SIGNED_SAMPLE]
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    public = key.public_key()
    messages = [r.tobytes() for r in records]
    signatures = [key.sign(m) for m in messages]

    def verify_each() -> None:
        for message, signature in zip(messages, signatures, strict=True):
            public.verify(signature, message)

    benchmark.pedantic(verify_each, rounds=1, iterations=1)
    _record(
        benchmark,
        "per-record",
        len(records),
        measured_on_records=len(records),
        projected_seconds_for_log=round(
            benchmark.stats.stats.min * len(day.log.records) / len(records), 1
        ),
    )


def test_netting_numpy(benchmark, logs) -> None:
    benchmark.group = "netting-10M"
    rec = logs(MAIN_BATCH)[0].log.records
    cols = [np.ascontiguousarray(rec[n]) for n in ("payee", "kind", "domain", "amount_fen")]
    positions = benchmark.pedantic(
        lambda: net_positions(flow_sums(*cols), FeeSchedule()), rounds=3, iterations=1
    )
    RESULTS["netting-numpy-net"] = float(positions["net_fen"].sum())
    _record(benchmark, "netting-numpy", len(rec))


def test_baseline_pandas_groupby_netting(benchmark, logs) -> None:
    benchmark.group = "netting-10M"
    rec = logs(MAIN_BATCH)[0].log.records
    frame = pd.DataFrame({n: rec[n] for n in ("payee", "kind", "domain", "amount_fen")})

    def pandas_netting() -> pd.Series:
        flows = frame.groupby(["payee", "kind", "domain"], sort=True)["amount_fen"].sum()
        return flows.groupby(level="payee").sum()

    benchmark.pedantic(pandas_netting, rounds=3, iterations=1)
    _record(benchmark, "netting-pandas", len(rec))


@pytest.mark.parametrize("batch_size", SWEEP)
def test_batch_size_sweep(benchmark, logs, batch_size: int) -> None:
    benchmark.group = "batch-size-sweep"
    # 10 M records over 20,000 terminals is ~500 a terminal: a batch cannot exceed a terminal's
    # day, so larger batch sizes get fewer terminals (two full batches each at least).
    terminals = min(TERMINALS, max(1, RECORDS // (2 * batch_size)))
    day, path = logs(batch_size, terminals)
    registry: KeyRegistry = day.registry
    benchmark.pedantic(lambda: settle(LogReader(path), registry), rounds=2, iterations=1)
    begin = time.perf_counter()
    floor_s = crypto_floor_s(day.log, registry, 1)
    floor_s = min(floor_s, time.perf_counter() - begin)
    _record(
        benchmark,
        f"sweep-{batch_size}",
        len(day.log.records),
        batch_size=batch_size,
        batches=len(day.log.batches),
        floor_records_per_s=round(len(day.log.records) / floor_s),
        ratio_to_floor=round(floor_s / benchmark.stats.stats.min, 3),
    )
