"""How cardsim's code runs as a Dask task: the allocator setting it needs on a worker, and
InputErrors carried back to the client as data.

An InputError cannot cross the wire as itself (its constructor takes two arguments), so a task
returns (value, None) or (None, (path, message)) and the client raises it again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from typing import Any

from cardsim.errors import InputError

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""glibc's adaptive mmap threshold at its maximum: numpy arrays below it reuse heap memory."""
_M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc malloc.h)."""

Reported = tuple[Any, tuple[str, str] | None]
"""A task's value, or the (path, message) of the InputError it raised."""


@functools.cache
def tune_allocator() -> bool:
    """Raise glibc's mmap threshold once per worker process; True if it was changed.

    Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, to hand freed memory back to the
    system. Setting it also turns off glibc's adaptive mmap threshold, so every array above
    128 KiB becomes a fresh mapping whose pages fault in on first touch: settling a shard was
    about 40 % slower than in a plain process. A fixed 32 MiB threshold restores the plain
    speed and keeps the trimming. Nothing changes outside glibc, or when the worker's
    environment sets MALLOC_MMAP_THRESHOLD_ itself.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def run_task(fn: Callable[..., Any], *args: Any) -> Reported:
    """Run `fn(*args)` on a worker; an InputError comes back as data, not as an exception."""
    tune_allocator()
    try:
        return fn(*args), None
    except InputError as exc:
        return None, (exc.path, exc.message)


def unwrap(reported: Reported) -> Any:
    """The task's value, or its InputError raised again here."""
    value, error = reported
    if error is not None:
        raise InputError(*error)
    return value
