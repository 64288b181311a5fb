"""`cardsim bench`: settle a synthetic peak-day log and compare with the crypto floor.

The floor is what no settlement of this log can beat on the same threads: SHA-256 over every
batch's canonical bytes plus one Ed25519 verification per batch. It is measured in the same
process, right after the settlement, so that both see the same machine load.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardsim.records.batch import header_array, signature_ok
from cardsim.records.keys import TAC_FIELDS, KeyRegistry, compute_tacs
from cardsim.records.layout import RECORD_SIZE
from cardsim.records.log import LogReader, RecordLog, write_log
from cardsim.settlement.kernel import Progress, settle
from cardsim.settlement.result import Settlement
from cardsim.settlement.threads import thread_map


class PeakRss:
    """This process's peak resident memory while inside the block, above its size at entry.

    Linux keeps the peak (VmHWM) itself, and resets it to the current size when 5 is written
    to /proc/self/clear_refs: exact, and no sampling thread competes with the settlement's
    threads for the GIL. Where that is refused, a thread samples the size every few ms.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.baseline = self.peak = _status_bytes("VmRSS")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _status_bytes("VmRSS"))

    def __enter__(self) -> PeakRss:
        self.baseline = self.peak = _status_bytes("VmRSS")
        if not _reset_peak():
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            self.peak = max(self.peak, _status_bytes("VmHWM"))
        else:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, _status_bytes("VmRSS"))

    @property
    def peak_bytes(self) -> int:
        """Largest resident size inside the block, above the size at entry."""
        return self.peak - self.baseline


def _reset_peak() -> bool:
    """Reset the kernel's record of peak resident memory to the current size, if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_bytes("VmHWM") > 0


def _status_bytes(field: str) -> int:
    """A memory figure (kB in the file) of /proc/self/status, in bytes; 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def crypto_floor_s(log: RecordLog, registry: KeyRegistry, workers: int = 1) -> float:
    """Seconds to hash every batch and verify one signature per batch, on `workers` threads.

    The loop is as lean as the kernel's own (settlement/chunk.py): headers as bytes and batch
    bounds as ints prepared untimed, records sliced from one memoryview, so that with small
    batches the floor is not inflated by Python work that the kernel does not do.
    """
    headers = header_array(log.batches)
    header_bytes = [h.tobytes() for h in headers]
    starts = np.searchsorted(log.batch_row, np.arange(len(log.batches)))
    ends = np.r_[starts[1:], len(log.records)]
    bounds = list(zip((starts * RECORD_SIZE).tolist(), (ends * RECORD_SIZE).tolist(), strict=True))
    keys = [registry.public_key(int(k)) for k in log.batches["key_id"]]
    signatures = [s.tobytes() for s in log.batches["signature"]]
    raw = np.ascontiguousarray(log.records).view(np.uint8).data

    def part(batch_ids: range) -> None:
        sha256 = hashlib.sha256
        for b in batch_ids:
            s, e = bounds[b]
            h = sha256(header_bytes[b])
            h.update(raw[s:e])
            signature_ok(keys[b], signatures[b], h.digest())

    n = len(headers)
    parts = [range(i * n // workers, (i + 1) * n // workers) for i in range(workers)]
    begin = time.perf_counter()
    thread_map(workers, part, parts)
    return time.perf_counter() - begin


def tac_floor_s(log: RecordLog, registry: KeyRegistry) -> float:
    """Seconds to recompute every record's TAC once (compiled SipHash-2-4), on one thread.

    Not part of the issue's crypto floor, but no settlement can skip it: it is reported so
    that the ratio to the floor can be read against what per-record MACs cost. Timed as the
    kernel runs it, on contiguous columns (which reading Parquet yields); the columns are
    copied out of the record array a block at a time, untimed.
    """
    seconds = 0.0
    for start in range(0, len(log.records), 1 << 18):
        block = log.records[start : start + (1 << 18)]
        columns = {name: np.ascontiguousarray(block[name]) for name in TAC_FIELDS}
        begin = time.perf_counter()
        compute_tacs(registry.master_key, columns)
        seconds += time.perf_counter() - begin
    return seconds


WARM_UP_BATCHES = 8


def warm_up(log: RecordLog | Path, registry: KeyRegistry) -> float:
    """Seconds to settle the log's first WARM_UP_BATCHES batches alone, from a log folder as
    the timed settlement reads it, which loads the compiled kernels for the arrays it sees.

    A process pays this once (numba's start-up, and compiling on a first run ever); a
    clearing centre settles many logs per process, so the timed settlement comes after it.
    `log` is the log in memory, or its folder (of which only the first chunk is read).
    """
    if isinstance(log, Path):
        reader = LogReader(log)
        if not reader.chunks:
            return 0.0
        log = RecordLog(*reader.read_chunk(reader.chunks[0]), reader.batches)
    rows = int(np.searchsorted(log.batch_row, WARM_UP_BATCHES))
    head = RecordLog(log.records[:rows], log.batch_row[:rows], log.batches[:WARM_UP_BATCHES])
    with tempfile.TemporaryDirectory() as scratch:
        write_log(Path(scratch) / "head", head)
        begin = time.perf_counter()
        settle(LogReader(Path(scratch) / "head"), registry)
        return time.perf_counter() - begin


@dataclass
class BenchResult:
    """One bench measurement: `rounds` rounds, each timing the settlement and then the floor.

    With more than one worker, each round also settles on one worker and hashes and verifies
    on one thread, right after the same on `workers`: the speed-up of a round compares two
    runs a few seconds apart, so that a busy spell of a shared machine slows both sides of a
    pair rather than one. Times and ratios are medians over the rounds. Peak memory is that of
    the first settlement on `workers`, which follows only the warm-up: a later one would
    reuse memory that the allocator kept from the runs before it.
    """

    records: int
    batches: int
    workers: int
    settle_rounds_s: list[float]
    floor_rounds_s: list[float]
    tac_s: float
    peak_rss_bytes: int
    raw_record_bytes: int
    settlement: Settlement
    warm_up_s: float = 0.0
    """Untimed settlement of one batch before the measurement (see `warm_up`)."""
    one_worker_rounds_s: list[float] = field(default_factory=list)
    """Per round, settlement on one worker (only when `workers` > 1)."""
    floor_one_thread_rounds_s: list[float] = field(default_factory=list)
    """Per round, the floor on one thread (only when `workers` > 1)."""

    @property
    def settle_s(self) -> float:
        """Median settlement seconds on `workers`."""
        return statistics.median(self.settle_rounds_s)

    @property
    def floor_s(self) -> float:
        """Median floor seconds on `workers` threads."""
        return statistics.median(self.floor_rounds_s)

    def speedups(self) -> tuple[list[float], list[float]]:
        """Per round: settlement on one worker / on `workers`; the same for the floor."""
        return (
            _ratios(self.one_worker_rounds_s, self.settle_rounds_s),
            _ratios(self.floor_one_thread_rounds_s, self.floor_rounds_s),
        )

    def as_json(self) -> dict[str, Any]:
        """The figures `cardsim bench --json` prints."""
        counts = self.settlement.counts()
        figures = {
            "records": self.records,
            "batches": self.batches,
            "workers": self.workers,
            "rounds": len(self.settle_rounds_s),
            "seconds": round(self.settle_s, 4),
            "records_per_s": round(self.records / self.settle_s),
            "floor_seconds": round(self.floor_s, 4),
            "floor_records_per_s": round(self.records / self.floor_s),
            "ratio_to_floor": round(self.floor_s / self.settle_s, 4),
            "tac_check_seconds_one_thread": round(self.tac_s, 4),
            "floor_plus_tac_records_per_s": round(
                self.records / (self.floor_s + self.tac_s / self.workers)
            ),
            "peak_memory_bytes": self.peak_rss_bytes,
            "raw_record_bytes": self.raw_record_bytes,
            "peak_memory_to_raw": round(self.peak_rss_bytes / max(1, self.raw_record_bytes), 3),
            "booked": counts["booked"],
            "rejected": counts["rejected"],
            "pending": counts["pending"],
            "alerts": len(self.settlement.alerts),
            "net_positions_sum_fen": int(self.settlement.positions["net_fen"].sum()),
            "warm_up_seconds": round(self.warm_up_s, 4),
            "seconds_rounds": [round(s, 4) for s in self.settle_rounds_s],
        }
        if self.one_worker_rounds_s:
            settle_up, floor_up = self.speedups()
            figures |= {
                "one_worker_seconds": round(statistics.median(self.one_worker_rounds_s), 4),
                "speedup_vs_one_worker": round(statistics.median(settle_up), 3),
                "speedup_rounds": [round(r, 3) for r in settle_up],
                "floor_speedup_vs_one_thread": round(statistics.median(floor_up), 3),
                "floor_speedup_rounds": [round(r, 3) for r in floor_up],
            }
        return figures


def _ratios(one: list[float], many: list[float]) -> list[float]:
    return [a / b for a, b in zip(one, many, strict=True)]


def measure(
    log_dir: Path,
    log: RecordLog,
    registry: KeyRegistry,
    workers: int,
    progress: Progress | None = None,
    rounds: int = 1,
) -> BenchResult:
    """Settle the log folder end to end (read, verify, dedupe, counters, book, net), then the
    crypto floor of the same log on the same number of threads, `rounds` times; with more
    than one worker each round pairs both with a run on one thread (see `BenchResult`). The
    compiled kernels are loaded first, untimed (`warm_up`)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    warm_up_s = warm_up(log, registry)
    settle_s: list[float] = []
    floor_s: list[float] = []
    one_s: list[float] = []
    floor_one_s: list[float] = []
    peak = 0
    for r in range(rounds):
        seconds, rss, settlement = _settle_s(log_dir, registry, workers, progress)
        settle_s.append(seconds)
        if r == 0:
            peak = rss
        if workers > 1:
            one_s.append(_settle_s(log_dir, registry, 1, progress)[0])
        floor_s.append(crypto_floor_s(log, registry, workers))
        if workers > 1:
            floor_one_s.append(crypto_floor_s(log, registry, 1))
    return BenchResult(
        len(log.records),
        len(log.batches),
        workers,
        settle_s,
        floor_s,
        tac_floor_s(log, registry),
        peak,
        log.records.nbytes,
        settlement,
        warm_up_s,
        one_s,
        floor_one_s,
    )


def _settle_s(
    log_dir: Path, registry: KeyRegistry, workers: int, progress: Progress | None
) -> tuple[float, int, Settlement]:
    """Seconds and peak memory growth of one settlement of the log folder, and its result
    (every run is measured alike, so that one worker and many pay the same)."""
    with PeakRss() as rss:
        begin = time.perf_counter()
        settlement = settle(LogReader(log_dir), registry, workers=workers, progress=progress)
        seconds = time.perf_counter() - begin
    return seconds, rss.peak_bytes, settlement
