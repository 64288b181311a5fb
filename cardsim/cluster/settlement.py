"""Settling a log on a Dask cluster: one shard of whole terminals per worker.

The client reads only the batch table and the batch_row column (to know where each batch's
records sit), plans the shards, and sends each worker the log's path, its batches' row ranges
and the keys those batches name. Workers read their own rows from the shared log, run the
kernel's per-terminal steps (signatures, TACs, repeated uploads, dedupe, gaps, chains) on all
their threads, and send back one outcome byte per record, their alerts, flow sums and sorted
card keys, directly to the client. The client runs the card pass and the netting once
(`cardsim.settlement.shards`), so the result equals a local `cardsim settle` of the same log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from distributed import as_completed

from cardsim.cluster.connection import connect, worker_threads
from cardsim.cluster.tasks import run_task, unwrap
from cardsim.errors import InputError
from cardsim.records.keys import KeyRegistry
from cardsim.records.log import LogReader
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.result import Settlement
from cardsim.settlement.shards import (
    ShardPlan,
    ShardResult,
    ShardSource,
    batch_extents,
    merge_shards,
    plan_for,
    registry_for,
    settle_shard,
)


def settle_on_cluster(
    address: str,
    reader: LogReader,
    registry: KeyRegistry,
    fees: FeeSchedule | None = None,
    cutoff_ms: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Settlement:
    """Settle the log `reader` opened, in shards on the cluster at `address`.

    Each worker gets its shard's row ranges and the keys its batches name, sent to it directly;
    `workers` threads do the client's card pass. `progress` is called with a shard's record
    count as each shard finishes.
    """
    extents = batch_extents(reader)
    log = str(reader.path.resolve())
    expected = (reader.rows, len(reader.batches))
    with connect(address) as client:
        threads = worker_threads(client, address)
        plans = plan_for(reader, extents, len(threads))
        job = uuid.uuid4().hex[:12]
        futures = []
        for i, (plan, (worker, n_threads)) in enumerate(zip(plans, threads.items(), strict=False)):
            keys = registry_for(registry, reader.batches[plan.batch_rows])
            [keys_there] = client.scatter([keys], workers=[worker], direct=True, hash=False)
            task = (log, keys_there, cutoff_ms, plan, expected, n_threads)
            futures.append(
                client.submit(
                    run_task,
                    settle_shard_task,
                    *task,
                    key=f"cardsim-shard-{job}-{i}",
                    workers=[worker],
                    allow_other_workers=True,
                    pure=False,
                )
            )
        records = {f.key: p.records for f, p in zip(futures, plans, strict=True)}
        for future in as_completed(futures, loop=client.loop):
            if future.status == "error":
                future.result()  # raises the worker's exception here
            if progress:
                progress(records[future.key])
        # Straight from the workers: the outcome bytes and card keys skip the scheduler.
        results: list[ShardResult] = [unwrap(r) for r in client.gather(futures, direct=True)]
    return merge_shards(reader, extents, plans, results, registry.master_key, fees, workers)


def settle_shard_task(
    log: str,
    registry: KeyRegistry,
    cutoff_ms: int | None,
    plan: ShardPlan,
    expected: tuple[int, int],
    threads: int,
) -> ShardResult:
    """On a worker: open the log, check it is the client's log, settle one shard."""
    reader = LogReader(log)
    if (reader.rows, len(reader.batches)) != expected:
        raise InputError(
            log,
            f"this worker sees {reader.rows:,} records in {len(reader.batches):,} batches, the "
            f"client {expected[0]:,} in {expected[1]:,}: workers must see the same log",
        )
    return settle_shard(ShardSource(reader, plan), registry, cutoff_ms, threads)
