"""Settling in shards of whole terminals gives exactly the kernel's settlement, in one process.

The cluster runs the same plan, shard settlement and merge across machines
(tests/test_dask.py); here every shard runs in turn, so arbitrary dirty logs are cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardsim.errors import InputError
from cardsim.records.log import LogReader, RecordLog, write_log
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import Alert, Reason
from cardsim.settlement.result import Settlement
from cardsim.settlement.shards import (
    ShardSource,
    batch_extents,
    merge_shards,
    partition_log,
    plan_for,
    plan_shards,
    settle_in_shards,
    settle_shard,
)
from cardsim.settlement.source import as_source
from cardsim.synthetic import SyntheticDay
from tests import mutations
from tests.conftest import small_day
from tests.ledger_days import index_of
from tests.test_properties import dirty_days


def assert_same(a: Settlement, b: Settlement) -> None:
    for name in ("outcome", "booked", "alerts", "positions"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def terminal_of_shard(day: SyntheticDay, shards: int) -> list[set[int]]:
    source = as_source(day.log)
    plans = plan_shards(source.batches, *batch_extents(source), shards)
    return [set(source.batches["terminal_id"][p.batch_rows].tolist()) for p in plans]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dirty_days(), st.integers(1, 5))
def test_shards_agree_with_the_kernel_on_dirty_logs(case, shards: int) -> None:
    day, cutoff = case
    whole = settle(day.log, day.registry, cutoff_ms=cutoff)
    sharded = settle_in_shards(day.log, day.registry, cutoff_ms=cutoff, shards=shards)
    assert_same(whole, sharded)


def test_shards_agree_with_the_kernel_after_a_closed_day() -> None:
    """Records and card counters booked on a closed day: the merge's card pass sees them."""
    day = small_day(3, 300, 6, 10, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    n = len(day.log.batches)
    for a, b in ((0, n // 2), (1, n - 1)):
        mutations.clone(
            day, int(mutations.rows_of(day.log, a)[0]), int(mutations.rows_of(day.log, b)[0])
        )
    first = mutations.take_batches(day.log, list(range(n // 2)))
    second = mutations.take_batches(day.log, [*range(n // 2, n), 0])
    closed = index_of(first, settle(first, day.registry))
    whole = settle(second, day.registry, booked_before=closed)
    assert (whole.alerts["code"] == Alert.CARD_COUNTER_CLASH).sum() == 2
    assert_same(whole, settle_in_shards(second, day.registry, shards=3, booked_before=closed))


def cross_shard_clone() -> SyntheticDay:
    """A card cloned onto a terminal of the other shard, re-sent records on one terminal,
    repeated uploads, tampered batches and forged records."""
    day = small_day(seed=7, records=800, terminals=8, batch_size=20, repeat_fraction=0.05)
    first, second = terminal_of_shard(day, 2)
    log = day.log
    # Only batches uploaded once and booked whole, so that the clone itself is booked.
    key = log.batches["terminal_id"].astype(np.int64) << 32 | log.batches["batch_serial"]
    once = np.unique(key, return_counts=True)[1][np.searchsorted(np.unique(key), key)] == 1
    booked = settle(log, day.registry).outcome == 0
    usable = booked & once[log.batch_row]
    tid = log.records["terminal_id"]
    source_row = int(np.flatnonzero(usable & np.isin(tid, list(first)))[0])
    target_row = int(np.flatnonzero(usable & np.isin(tid, list(second)))[-1])
    mutations.clone(day, source_row, target_row)
    mutations.resend_records(day, int(log.batch_row[source_row]), alter=True)
    return day


def test_a_clone_across_shards_is_found_by_the_merge() -> None:
    day = cross_shard_clone()
    whole = settle(day.log, day.registry)
    clashes = whole.alerts[whole.alerts["code"] == Alert.CARD_COUNTER_CLASH]
    assert len(clashes) >= 1
    shard_sets = terminal_of_shard(day, 2)
    clash_terminal = int(clashes["terminal_id"][0])
    assert clash_terminal in shard_sets[1]
    assert_same(whole, settle_in_shards(day.log, day.registry, shards=2))


def test_card_alerts_of_one_shard_alone_would_be_wrong() -> None:
    # The reason the merge runs the card pass: a shard sees only part of a card's taps, so
    # its own counter pass would report gaps that are not there and miss clashes.
    day = cross_shard_clone()
    source = as_source(day.log)
    plans = plan_shards(source.batches, *batch_extents(source), 2)
    alone = settle(
        RecordLog(*_shard_log(source, plans[0])), day.registry
    )  # the first shard as if it were a whole log
    whole = settle(day.log, day.registry)
    gap = int(Alert.CARD_COUNTER_GAP)
    assert np.count_nonzero(alone.alerts["code"] == gap) > np.count_nonzero(
        whole.alerts["code"] == gap
    )


def _shard_log(source, plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shard = ShardSource(source, plan)
    parts = [shard.read_chunk(c) for c in shard.chunks]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        shard.batches,
    )


def test_a_resent_batch_of_forged_records_settles() -> None:
    # Overlapping uploads whose records all fail their TAC leave no record to deduplicate.
    day = small_day(seed=5, records=1, terminals=1, batch_size=1, tampered_batches=0)
    mutations.forge(day, 0)
    mutations.resend_records(day, 0, alter=False)
    whole = settle(day.log, day.registry)
    assert whole.outcome.tolist() == [Reason.BAD_TAC, Reason.BAD_TAC]
    assert_same(whole, settle_in_shards(day.log, day.registry, shards=2))


def test_shards_hold_whole_terminals_and_share_the_work() -> None:
    day = small_day(seed=3, records=6000, terminals=40, batch_size=30)
    source = as_source(day.log)
    starts, lengths = batch_extents(source)
    plans = plan_shards(source.batches, starts, lengths, 3)
    assert len(plans) == 3
    rows = np.sort(np.concatenate([p.batch_rows for p in plans]))
    np.testing.assert_array_equal(rows, np.arange(len(source.batches)))
    terminals = [set(source.batches["terminal_id"][p.batch_rows].tolist()) for p in plans]
    assert not (terminals[0] & terminals[1]) and not (terminals[1] & terminals[2])
    records = [p.records for p in plans]
    assert sum(records) == len(day.log.records)
    assert max(records) < 1.5 * min(records)


def test_more_shards_than_terminals_leaves_the_extra_ones_out() -> None:
    day = small_day(seed=2, records=100, terminals=2, batch_size=10)
    assert len(terminal_of_shard(day, 8)) == 2
    assert_same(settle(day.log, day.registry), settle_in_shards(day.log, day.registry, shards=8))


def test_a_sharded_log_read_from_disk_settles_like_the_kernel(tmp_path: Path) -> None:
    day = cross_shard_clone()
    write_log(tmp_path / "log", day.log)
    whole = settle(LogReader(tmp_path / "log"), day.registry)
    reader = LogReader(tmp_path / "log")
    extents = batch_extents(reader)
    plans = plan_shards(reader.batches, *extents, 3)
    results = [settle_shard(ShardSource(reader, p), day.registry) for p in plans]
    assert_same(whole, merge_shards(reader, extents, plans, results, day.registry.master_key))


def test_rows_out_of_batch_order_are_an_input_error(tmp_path: Path) -> None:
    day = small_day(seed=4, records=200, terminals=3, batch_size=20)
    log = day.log
    log.batch_row = log.batch_row[::-1].copy()
    log.records = log.records[::-1].copy()
    write_log(tmp_path / "log", RecordLog(log.records, log.batch_row, log.batches))
    with pytest.raises(InputError, match="batch_row decreases"):
        batch_extents(LogReader(tmp_path / "log"))


def _partitioned(day: SyntheticDay, path: Path, shards: int) -> LogReader:
    laid_out, firsts = partition_log(day.log, shards)
    write_log(path, laid_out, firsts)
    return LogReader(path)


def test_a_partitioned_log_keeps_each_terminals_uploads_in_order(tmp_path: Path) -> None:
    day = cross_shard_clone()
    reader = _partitioned(day, tmp_path / "log", 2)
    assert reader.partitions is not None and len(reader.partitions) == 2
    old, new = day.log.batches, reader.batches
    for terminal in np.unique(old["terminal_id"]).tolist():
        before = old[old["terminal_id"] == terminal]
        after = new[new["terminal_id"] == terminal]
        np.testing.assert_array_equal(before, after)
    # Whole terminals per partition, and the partitions are the shards of the original log.
    cut = reader.partitions[1]
    halves = [set(new["terminal_id"][:cut].tolist()), set(new["terminal_id"][cut:].tolist())]
    assert halves == terminal_of_shard(day, 2)
    assert reader.batches["terminal_id"].tolist() != day.log.batches["terminal_id"].tolist()


def test_a_partitioned_log_books_the_same_records(tmp_path: Path) -> None:
    day = cross_shard_clone()
    reader = _partitioned(day, tmp_path / "log", 2)
    before, after = settle(day.log, day.registry), settle(reader, day.registry)
    np.testing.assert_array_equal(before.positions, after.positions)
    booked = [
        np.sort(s.records[r.booked]) for s, r in ((day.log, before), (reader.read_all(), after))
    ]
    np.testing.assert_array_equal(*booked)
    codes = [np.sort(r.alerts["code"]) for r in (before, after)]
    np.testing.assert_array_equal(*codes)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_shards_of_a_partitioned_log_read_only_their_row_groups(
    tmp_path: Path, shards: int
) -> None:
    day = small_day(seed=3, records=6000, terminals=40, batch_size=30)
    reader = _partitioned(day, tmp_path / "log", 3)
    extents = batch_extents(reader)
    plans = plan_for(reader, extents, shards)
    assert len(plans) == shards
    groups = [{g for c in ShardSource(reader, p).chunks for g in c.row_groups} for p in plans]
    assert sum(len(g) for g in groups) == len(set().union(*groups))
    for plan in plans:
        np.testing.assert_array_equal(
            plan.batch_rows, np.arange(plan.batch_rows[0], plan.batch_rows[-1] + 1)
        )
    assert_same(settle(reader, day.registry), settle_in_shards(reader, day.registry, shards=shards))


def test_a_bad_partitions_entry_is_an_input_error(tmp_path: Path) -> None:
    day = small_day(seed=2, records=100, terminals=2, batch_size=10)
    write_log(tmp_path / "log", day.log, [0, 999])
    with pytest.raises(InputError, match=r"cardsim\.partitions"):
        LogReader(tmp_path / "log")
