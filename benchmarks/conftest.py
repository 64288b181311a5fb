"""Shared logs for the benchmarks: generated once per session, written to disk, read back by
the settlement exactly as `cardsim settle` would.

Sizes come from the issue: 10 million records from 20,000 terminals, batches around 1,000;
CARDSIM_BENCH_RECORDS scales them down for a quick look (the README quotes full-size runs only).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cardsim.records.log import use_system_allocator, write_log
from cardsim.synthetic import SyntheticDay, SyntheticSpec, generate

# As the cardsim command does: what the benchmarks measure is what it runs.
use_system_allocator()

RECORDS = int(os.environ.get("CARDSIM_BENCH_RECORDS", "10000000"))
TERMINALS = int(os.environ.get("CARDSIM_BENCH_TERMINALS", "20000"))


class Logs:
    """Synthetic days by batch size, each also written to disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.days: dict[tuple[int, int], tuple[SyntheticDay, Path]] = {}

    def get(self, batch_size: int, terminals: int = TERMINALS) -> tuple[SyntheticDay, Path]:
        """The day (and its log folder) for this batch size; only one is kept in memory."""
        key = (batch_size, terminals)
        if key not in self.days:
            self.days.clear()
            spec = SyntheticSpec(
                records=RECORDS, terminals=terminals, batch_size=batch_size, seed=batch_size
            )
            day = generate(spec)
            path = self.root / f"log-{batch_size}-{terminals}"
            write_log(path, day.log)
            self.days[key] = (day, path)
        return self.days[key]


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], tuple]]:
    store = Logs(tmp_path_factory.mktemp("bench-logs"))
    yield store.get
