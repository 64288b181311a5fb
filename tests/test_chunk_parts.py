"""Splitting chunks into parts for worker threads: whole batches, balanced by cost, and the
same settlement on any number of workers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.errors import InputError
from cardsim.records.log import LogReader, write_log
from cardsim.settlement.chunk import BATCH_COST, ROW_COST, SharedRead, part_bounds
from cardsim.settlement.kernel import TASKS_PER_WORKER, chunk_parts, settle
from tests.conftest import small_day


def _batch_rows(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), max_size=60), st.integers(1, 20))
def test_parts_cover_the_rows_and_cut_only_between_batches(sizes: list[int], parts: int) -> None:
    batch_row = _batch_rows(sizes)
    bounds = part_bounds(batch_row, parts)
    assert len(bounds) == parts
    assert bounds[0][0] == 0 and bounds[-1][1] == len(batch_row)
    for (_, stop), (start, _) in itertools.pairwise(bounds):
        assert stop == start
    for start, stop in bounds:
        assert start <= stop
        if 0 < start < len(batch_row):
            assert batch_row[start - 1] != batch_row[start]


def _cost(batch_row: np.ndarray) -> int:
    return len(batch_row) * ROW_COST + len(np.unique(batch_row)) * BATCH_COST


def test_equal_batches_split_into_equal_parts() -> None:
    batch_row = _batch_rows([10] * 1_000)
    sizes = [stop - start for start, stop in part_bounds(batch_row, 4)]
    assert sizes == [2_500] * 4


def test_many_small_batches_weigh_as_much_as_their_signatures() -> None:
    # 1,000 one-record batches, then one batch of 1,000 records: halving by rows would give
    # every signature check to one part; by cost each part gets about half of the work.
    batch_row = _batch_rows([1] * 1_000 + [1_000])
    (a, cut), (_, b) = part_bounds(batch_row, 2)
    first, second = _cost(batch_row[a:cut]), _cost(batch_row[cut:b])
    assert abs(first - second) <= 2 * (BATCH_COST + ROW_COST)  # a cut moves one batch at most
    assert 400 < cut < 700


def test_no_rows_give_empty_parts() -> None:
    assert part_bounds(np.empty(0, np.int64), 3) == [(0, 0)] * 3


def test_settlement_is_the_same_on_any_number_of_workers(tmp_path: Path) -> None:
    day = small_day(
        seed=5,
        records=4_000,
        terminals=30,
        batch_size=25,
        repeat_fraction=0.05,
        tampered_batches=3,
        forged_records=3,
    )
    n = len(day.log.batches)
    write_log(tmp_path / "log", day.log, partitions=[0, n // 3, 2 * n // 3])
    reader = LogReader(tmp_path / "log")
    assert len(reader.chunks) == 3
    one = settle(reader, day.registry, workers=1)
    assert len(one.alerts) > 0 and (one.outcome != 0).any()
    for workers in (2, 3, 5):
        many = settle(LogReader(tmp_path / "log"), day.registry, workers=workers)
        assert np.array_equal(many.outcome, one.outcome)
        assert np.array_equal(many.alerts, one.alerts)
        assert np.array_equal(many.positions, one.positions)


def test_few_chunks_split_so_every_thread_has_several_tasks() -> None:
    assert chunk_parts(1, 2) == [16]
    assert sum(chunk_parts(3, 4)) >= TASKS_PER_WORKER * 4


def test_many_chunks_split_only_at_the_end() -> None:
    parts = chunk_parts(39, 2)
    assert parts[:35] == [1] * 35 and parts[35:] == [2] * 4
    assert chunk_parts(0, 2) == []


def _three_chunk_log(tmp_path: Path) -> tuple[Path, object]:
    day = small_day(seed=6, records=3_000, terminals=30, batch_size=25)
    n = len(day.log.batches)
    write_log(tmp_path / "log", day.log, partitions=[0, n // 3, 2 * n // 3])
    return tmp_path / "log", day.registry


def test_a_failing_part_ends_the_pass_without_running_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, registry = _three_chunk_log(tmp_path)
    started = []
    real = SharedRead.process_part

    def failing(self: SharedRead, p: int, plan: object, out: object) -> object:
        started.append(p)
        if len(started) == 1:
            raise InputError(path, "corrupt Parquet data")
        return real(self, p, plan, out)  # type: ignore[arg-type]

    monkeypatch.setattr(SharedRead, "process_part", failing)
    with pytest.raises(InputError):
        settle(LogReader(path), registry, workers=2)  # type: ignore[arg-type]
    parts = sum(chunk_parts(3, 2))
    assert len(started) < parts


def test_a_log_replaced_while_it_is_read_is_refused(tmp_path: Path) -> None:
    path, registry = _three_chunk_log(tmp_path)
    reader = LogReader(path)
    other = small_day(seed=7, records=3_000, terminals=30, batch_size=25)
    write_log(path, other.log)  # replaced by rename, as every writer here does
    with pytest.raises(InputError, match="changed while it was being read"):
        settle(reader, registry)  # type: ignore[arg-type]
