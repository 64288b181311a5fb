"""Sweep replications on a Dask cluster, streamed back as they finish.

The same bound as the local process pool: at most IN_FLIGHT_PER_WORKER runs per worker thread
are submitted at a time, so finished rows never pile up behind a long queue, and the table
writer restores run-id order. Each run is `run_spec` on a worker: the same code, seed and
scenario as a local run, so the same row.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from distributed import Client, Future, as_completed

from cardsim.capacity.executor import IN_FLIGHT_PER_WORKER
from cardsim.capacity.replicate import RunSpec, run_spec
from cardsim.cluster.connection import connect, worker_threads
from cardsim.cluster.tasks import run_task, unwrap

Result = tuple[int, dict[str, Any]]


def execute_on_cluster(specs: Iterable[RunSpec], address: str) -> Iterator[Result]:
    """Yield (run_id, row) for every spec, run on the cluster at `address`, as runs finish."""
    with connect(address) as client:
        limit = IN_FLIGHT_PER_WORKER * max(1, sum(worker_threads(client, address).values()))
        pending = iter(specs)
        # Names this sweep's tasks on the dashboard and keeps them apart from other clients'.
        sweep = uuid.uuid4().hex[:12]
        first = [_submit(client, spec, sweep) for spec in itertools.islice(pending, limit)]
        running = as_completed(first, loop=client.loop)
        for future in running:
            result: Result = unwrap(future.result())
            future.release()
            yield result
            spec = next(pending, None)
            if spec is not None:
                running.add(_submit(client, spec, sweep))


def _submit(client: Client, spec: RunSpec, sweep: str) -> Future:
    """Send one run to the cluster."""
    # Workers may start in another folder: name the scenario by its absolute path.
    spec = dataclasses.replace(spec, scenario_path=str(Path(spec.scenario_path).resolve()))
    return client.submit(
        run_task,
        run_spec,
        spec,
        key=f"cardsim-run-{sweep}-{spec.run_id}",
        pure=False,
    )
