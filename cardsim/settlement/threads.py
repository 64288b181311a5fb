"""Running one function over many items on a few threads.

The settlement's heavy steps (compiled kernels, Parquet reads, numpy gathers) release the GIL,
so threads share them without copying the data they work on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


def thread_map(workers: int, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """[fn(item) for item in items], in order, on up to `workers` threads (inline for one
    worker or one item)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
