"""Where replications run: in this process, in a pool of worker processes, or on a Dask
cluster (`scheduler`, see cardsim/cluster/runs.py).

Results come back in completion order; the table writer restores run-id order. At most
`IN_FLIGHT_PER_WORKER * workers` runs are submitted at a time, so finished rows never pile up
in memory waiting behind a long queue of futures.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from cardsim.capacity.replicate import RunSpec, run_spec

IN_FLIGHT_PER_WORKER = 2
"""Runs queued per worker: enough to keep each busy while the parent writes a row."""

Result = tuple[int, dict[str, Any]]


def execute(
    specs: Iterable[RunSpec], workers: int = 1, scheduler: str | None = None
) -> Iterator[Result]:
    """Yield (run_id, row) for every spec, in completion order.

    With `scheduler` (tcp://host:port) the runs go to that Dask cluster and `workers` is not
    used. Local workers start with the 'spawn' method: a fresh interpreter per worker, so no
    state (random, simpy, thread pools) is inherited from the parent, and results equal a
    serial run's.
    """
    if scheduler is not None:
        # Imported here: distributed is slow to import and local runs do not need it.
        from cardsim.cluster.runs import execute_on_cluster

        yield from execute_on_cluster(specs, scheduler)
        return
    if workers <= 1:
        for spec in specs:
            yield run_spec(spec)
        return
    pending = iter(specs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        running: set[Future[Result]] = set()
        _top_up(pool, pending, running, workers * IN_FLIGHT_PER_WORKER)
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
            _top_up(pool, pending, running, workers * IN_FLIGHT_PER_WORKER)


def _top_up(
    pool: ProcessPoolExecutor, pending: Iterator[RunSpec], running: set[Future[Result]], limit: int
) -> None:
    """Submit runs until `limit` are in flight or none are left."""
    while len(running) < limit:
        spec = next(pending, None)
        if spec is None:
            return
        running.add(pool.submit(run_spec, spec))
