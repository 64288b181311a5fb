"""Settle a log once when told to, and print the seconds it took and its peak memory growth.

`python -m benchmarks.settle_once LOG KEYS [WORKERS]`: the process loads the compiled kernels
first (`cardsim.bench.warm_up`, on the log's first batches), prints "ready", waits for a line
on stdin, then settles the log and prints "SECONDS PEAK_BYTES". A parent holding several such
processes sends the line to all of them once all are ready, so that their timed settlements
run side by side; a fresh process also measures memory with no allocator state left over
from earlier runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cardsim.bench import PeakRss, warm_up
from cardsim.records.keys import load_registry
from cardsim.records.log import LogReader, use_system_allocator
from cardsim.settlement.kernel import settle


def main(log: str, keys: str, workers: str = "1") -> None:
    """Warm up, say ready, wait for the go line, settle once and print seconds and memory."""
    use_system_allocator()  # as the cardsim command does
    registry = load_registry(keys)
    warm_up(Path(log), registry)
    print("ready", flush=True)
    sys.stdin.readline()
    with PeakRss() as rss:
        begin = time.perf_counter()
        settle(LogReader(log), registry, workers=int(workers))
        seconds = time.perf_counter() - begin
    print(f"{seconds:.6f} {rss.peak_bytes}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
