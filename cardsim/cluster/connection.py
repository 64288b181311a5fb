"""Reaching a Dask scheduler: a short connect timeout, and one-line errors naming the option.

Work sent to workers names files by absolute path: workers read the scenario, the log and the
keys themselves (a shared file system, as Dask clusters usually have), so no data passes
through the scheduler.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client
from distributed.comm import parse_address
from distributed.comm.addressing import parse_host_port

from cardsim.errors import InputError

OPTION = "--scheduler"
CONNECT_TIMEOUT_S = 5
"""How long to try reaching the scheduler: a wrong address should fail fast."""
WORKERS_TIMEOUT_S = 60
"""How long to wait for a first worker when the scheduler has none."""


@contextmanager
def connect(address: str) -> Iterator[Client]:
    """A client of the scheduler at `address` (tcp://host:port), closed on exit.

    An unreachable or malformed address is an InputError naming --scheduler and the address.
    """
    check_address(address)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise _unreachable(address, exc) from None
    try:
        yield client
    finally:
        client.close()


def check_address(address: str) -> None:
    """Fail fast, before any client exists, on a malformed address or a closed port.

    A client that fails to start lingers and blocks for twice its timeout when collected,
    so the usual mistakes (a typo, no scheduler running) are caught with a plain socket.
    """
    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
    except ValueError as exc:
        raise InputError(
            OPTION, f"{address!r} is not a scheduler address ({exc}); use tcp://HOST:PORT"
        ) from None
    if scheme not in ("tcp", "tls"):
        return
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise _unreachable(address, exc) from None


def _unreachable(address: str, exc: BaseException) -> InputError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(
        OPTION,
        f"cannot reach a Dask scheduler at {address} ({reason}; waited at most "
        f"{CONNECT_TIMEOUT_S} s): start one with `dask scheduler` and pass the address it prints",
    )


def worker_threads(client: Client, address: str) -> dict[str, int]:
    """Threads of every worker by worker address, in address order; waits for a first one."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except TimeoutError:
        raise InputError(
            OPTION,
            f"no Dask worker joined the scheduler at {address} within {WORKERS_TIMEOUT_S} s "
            f"(start some with `dask worker {address}`)",
        ) from None
    return dict(sorted(client.nthreads().items()))
