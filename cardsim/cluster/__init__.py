"""Scale-out on a Dask distributed cluster: the only package that imports `distributed`.

`connection` reaches the scheduler (short timeout, one-line errors), `tasks` wraps what runs
on a worker, `runs` executes sweep replications on the workers, `settlement` settles a log in
shards of whole terminals. The work itself is the same code that runs locally
(`cardsim.capacity.replicate`, `cardsim.settlement.shards`), so a cluster gives the same bytes
as this machine.
"""

from __future__ import annotations

from cardsim.cluster.connection import connect, worker_threads
from cardsim.cluster.runs import execute_on_cluster
from cardsim.cluster.settlement import settle_on_cluster

__all__ = ["connect", "execute_on_cluster", "settle_on_cluster", "worker_threads"]
