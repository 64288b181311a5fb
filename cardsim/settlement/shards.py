"""Settling one log in shards of whole terminals: the plan, one shard's settlement, the merge.

Everything the kernel decides per batch, per record or per terminal depends on one terminal's
batches only: a repeated upload has the same signed header, so the same terminal; a record id
is (terminal_id, terminal_serial), and only records of accepted batches, which all carry their
batch's terminal, are deduplicated; serial gaps and batch chains are per terminal. So a shard
holding whole terminals settles them on its own, with the kernel's own steps, and the outcome
of every record, those alerts and the flow sums come out as the whole-log kernel gives them.

Two things cross terminals and happen once, in the merge: the card pass (a card taps many
terminals; its counter gaps and clashes need all its booked records), which runs on the
shards' sorted card keys exactly as the kernel runs on its chunks' keys; and netting, whose
fees are rounded per payee and domain over the whole day, so shards return flow sums, never
positions. A shard keeps only its own rows of each chunk it reads (`ShardSource`), in log
order, so "earlier" means what it means to the kernel.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cardsim.errors import InputError
from cardsim.records.keys import KeyRegistry
from cardsim.records.layout import RECORD_FIELDS
from cardsim.records.log import Chunk, LogReader, RecordLog, assemble
from cardsim.settlement.booked_index import BookedIndex
from cardsim.settlement.cards import counter_alerts, merge_runs
from cardsim.settlement.chunk import _card_keys
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.grouping import Sums, merge_sums

# The kernel's own steps, so that a shard is settled by exactly the code that settles a log.
from cardsim.settlement.kernel import terminal_phase
from cardsim.settlement.positions import net_positions
from cardsim.settlement.reasons import BOOKED
from cardsim.settlement.result import ALERT_DTYPE, Settlement, make_alerts
from cardsim.settlement.source import ChunkSource, as_source, fetch, ranges

BATCH_COST_RECORDS = 50
"""Balancing weight of one batch, in records: one Ed25519 verification (~100 us) costs about
what the TAC and field checks of 50 records do."""


@dataclass(frozen=True)
class ShardPlan:
    """One shard: some terminals' batches, with where their records sit in the log."""

    batch_rows: np.ndarray
    """Rows of batches.parquet in this shard, ascending (log order)."""
    starts: np.ndarray
    """First log row of each of those batches (-1 for a batch without records)."""
    lengths: np.ndarray
    """Records of each of those batches."""

    @property
    def records(self) -> int:
        """Log rows in this shard."""
        return int(self.lengths.sum())


@dataclass
class ShardResult:
    """What a shard hands to the merge: compact, never the records themselves."""

    outcome: np.ndarray
    """uint8 per shard row, in log order."""
    alerts: np.ndarray
    """ALERT_DTYPE rows in log numbering, the card pass's alerts excepted."""
    flows: Sums
    """Booked amounts per (payee, kind, domain)."""
    card_keys: np.ndarray | None
    """Sorted card_id << 32 | card_counter of booked records; None if a card id is >= 2^32."""


def batch_extents(source: ChunkSource) -> tuple[np.ndarray, np.ndarray]:
    """First log row (-1 if none) and record count of every batch, from batch_row alone.

    The rows must be grouped by ascending batch_row, as docs/record-format.md requires; this
    is checked here, chunk by chunk, with the messages the log reader uses.
    """
    n = len(source.batches)
    lengths = np.zeros(n, np.int64)
    for chunk in source.chunks:
        batch_row = source.read_columns(chunk, ["batch_row"])["batch_row"]
        _check_grouped(source, chunk, batch_row, n)
        lengths += np.bincount(batch_row, minlength=n)
    starts = np.cumsum(lengths) - lengths
    starts[lengths == 0] = -1
    return starts, lengths


def _check_grouped(source: ChunkSource, chunk: Chunk, batch_row: np.ndarray, n: int) -> None:
    where = getattr(source, "records_path", "records")
    rows = f"rows {chunk.first_row}..{chunk.first_row + chunk.rows - 1}"
    if len(batch_row) and (batch_row.min() < 0 or batch_row.max() >= n):
        raise InputError(
            where, f"{rows}: batch_row outside 0..{n - 1} (the rows of batches.parquet)"
        )
    if len(batch_row) > 1 and np.any(np.diff(batch_row) < 0):
        raise InputError(
            where, f"{rows}: batch_row decreases; rows must be grouped by batch_row, ascending"
        )


def plan_shards(
    batches: np.ndarray, starts: np.ndarray, lengths: np.ndarray, shards: int
) -> list[ShardPlan]:
    """Split the log into at most `shards` shards of whole terminals, balanced by work.

    Terminals are cut into ranges of ascending terminal_id by cumulative work (records plus
    BATCH_COST_RECORDS per batch), so the plan depends only on the log and the shard count.
    Shards that would hold no terminal are left out; there is always at least one.
    """
    terminal = batches["terminal_id"].astype(np.int64)
    ids, inverse = np.unique(terminal, return_inverse=True)
    work = np.zeros(len(ids), np.int64)
    np.add.at(work, inverse, lengths + BATCH_COST_RECORDS)
    total = int(work.sum())
    if total == 0:
        return [ShardPlan(np.arange(len(batches)), starts, lengths)]
    # A terminal goes to the shard its work's midpoint falls in.
    middle = 2 * np.cumsum(work) - work
    shard_of_terminal = np.minimum(middle * shards // (2 * total), shards - 1)
    shard_of_batch = shard_of_terminal[inverse]
    plans = []
    for s in range(shards):
        rows = np.flatnonzero(shard_of_batch == s)
        if len(rows):
            plans.append(ShardPlan(rows, starts[rows], lengths[rows]))
    return plans


def plan_partitions(
    batches: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    partitions: tuple[int, ...],
    shards: int,
) -> list[ShardPlan]:
    """Shards of whole partitions of a partitioned log (`partition_log`), balanced by work.

    Each shard is a run of consecutive partitions, so its batches, its records and its row
    groups are one contiguous range of the log and a worker reads only its own row groups.
    """
    bounds = [*partitions, len(batches)]
    work = np.array(
        [
            int(lengths[a:b].sum()) + BATCH_COST_RECORDS * (b - a)
            for a, b in itertools.pairwise(bounds)
        ],
        np.int64,
    )
    total = max(1, int(work.sum()))
    middle = 2 * np.cumsum(work) - work
    shard_of_partition = np.minimum(middle * shards // (2 * total), shards - 1)
    plans = []
    for s in range(shards):
        mine = np.flatnonzero(shard_of_partition == s)
        if len(mine):
            rows = np.arange(bounds[mine[0]], bounds[mine[-1] + 1])
            if len(rows):
                plans.append(ShardPlan(rows, starts[rows], lengths[rows]))
    return plans or [ShardPlan(np.arange(len(batches)), starts, lengths)]


def plan_for(
    source: ChunkSource, extents: tuple[np.ndarray, np.ndarray], shards: int
) -> list[ShardPlan]:
    """The plan for `shards` workers: whole partitions when the log is partitioned into at
    least that many, otherwise ranges of terminals."""
    partitions = getattr(source, "partitions", None)
    if partitions is not None and len(partitions) >= shards:
        return plan_partitions(source.batches, *extents, partitions, shards)
    return plan_shards(source.batches, *extents, shards)


def partition_log(log: RecordLog, shards: int) -> tuple[RecordLog, tuple[int, ...]]:
    """The same uploads laid out in `shards` partitions of whole terminals (`plan_shards`),
    and the first batch row of each partition.

    Within a partition batches keep their log order, so each terminal's uploads stay in
    upload order: every per-terminal rule (repeats, record ids, gaps, chains) decides as in
    the original log. Only the order between terminals changes, which decides nothing but
    which row of a card counter clash is the later one.
    """
    starts, lengths = batch_extents(as_source(log))
    plans = plan_shards(log.batches, starts, lengths, shards)
    order = np.concatenate([p.batch_rows for p in plans])
    firsts = tuple(int(v) for v in np.cumsum([0] + [len(p.batch_rows) for p in plans[:-1]]))
    new_row = np.empty(len(order), np.int64)
    new_row[order] = np.arange(len(order))
    present = lengths[order] > 0
    rows = ranges(starts[order][present], lengths[order][present])
    records = log.records[rows]
    batch_row = new_row[log.batch_row[rows]]
    return RecordLog(records, batch_row, log.batches[order]), firsts


class ShardSource:
    """One shard as a log of its own: its batches in log order, its records renumbered from 0.

    Reads go to the underlying log a chunk at a time and keep the shard's rows only, so a
    shard never needs the other shards' records in memory.
    """

    def __init__(self, base: ChunkSource, plan: ShardPlan) -> None:
        self.base = base
        self.plan = plan
        self.batches = base.batches[plan.batch_rows]
        self.rows = plan.records
        self._local_batch = np.full(len(base.batches), -1, np.int64)
        self._local_batch[plan.batch_rows] = np.arange(len(plan.batch_rows))
        present = plan.lengths > 0
        self._starts = plan.starts[present]
        self._lengths = plan.lengths[present]
        self._offsets = np.cumsum(self._lengths) - self._lengths
        """Shard row of each present batch's first record."""
        self.chunks: list[Chunk] = []
        self._spans: dict[Chunk, tuple[Chunk, int, int]] = {}
        for whole in base.chunks:
            lo, hi = np.searchsorted(self._starts, [whole.first_row, whole.first_row + whole.rows])
            if hi > lo:
                mine = Chunk(
                    whole.row_groups, int(self._offsets[lo]), int(self._lengths[lo:hi].sum())
                )
                self.chunks.append(mine)
                self._spans[mine] = (whole, int(lo), int(hi))

    def _select(self, chunk: Chunk, names: list[str]) -> dict[str, np.ndarray]:
        whole, lo, hi = self._spans[chunk]
        local = ranges(self._starts[lo:hi] - whole.first_row, self._lengths[lo:hi])
        columns = self.base.read_columns(whole, names)
        out = {name: columns[name][local] for name in names}
        if "batch_row" in out:
            out["batch_row"] = self._local_batch[out["batch_row"]]
        return out

    def read_columns(self, chunk: Chunk, names: list[str]) -> dict[str, np.ndarray]:
        """Some record fields (or batch_row, renumbered to the shard's batches) of one chunk."""
        return self._select(chunk, names)

    def read_chunk_columns(
        self, chunk: Chunk
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Records, shard batch rows and every field as a contiguous column."""
        columns = self._select(chunk, [*RECORD_FIELDS, "batch_row"])
        batch_row = columns.pop("batch_row")
        return assemble(columns, len(batch_row)), batch_row, columns

    def read_chunk(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """Records and shard batch rows of one chunk."""
        records, batch_row, _ = self.read_chunk_columns(chunk)
        return records, batch_row

    def to_log_numbering(self, alerts: np.ndarray) -> np.ndarray:
        """Alerts with shard batch rows and shard rows turned into the log's."""
        out = alerts.copy()
        has_batch = out["batch_row"] >= 0
        out["batch_row"][has_batch] = self.plan.batch_rows[out["batch_row"][has_batch]]
        has_row = out["row"] >= 0
        rows = out["row"][has_row]
        k = np.searchsorted(self._offsets, rows, side="right") - 1
        out["row"][has_row] = self._starts[k] + rows - self._offsets[k]
        return out


def registry_for(registry: KeyRegistry, batches: np.ndarray) -> KeyRegistry:
    """The keys that `batches` name, and the master key: all a shard needs to settle them.

    A key id missing from the registry stays missing, and a key of another terminal stays
    that terminal's, so every batch decision is the one the whole registry gives.
    """
    subset = KeyRegistry(master_key=registry.master_key)
    for key_id in np.unique(batches["key_id"]).tolist():
        key = registry.terminals.get(key_id)
        if key is not None:
            subset.add(key)
    return subset


def settle_shard(
    source: ShardSource,
    registry: KeyRegistry,
    cutoff_ms: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    booked_before: BookedIndex | None = None,
) -> ShardResult:
    """Settle one shard with the kernel's steps, in the kernel's order, up to but not
    including the card pass and netting (`merge_shards` does those once for the whole log).

    `booked_before` holds record ids booked on closed days, as for `kernel.settle`; ids of
    other terminals in it are simply never met. Its card counters are the card pass's: give
    it to `merge_shards` as `closed`.
    """
    phase = terminal_phase(source, registry, cutoff_ms, workers, progress, None, booked_before)
    keys = _shard_card_keys(source, phase.outcome, phase.runs, workers)
    alerts = source.to_log_numbering(make_alerts(phase.alerts))
    return ShardResult(phase.outcome, alerts, phase.flows, keys)


def _shard_card_keys(
    source: ChunkSource,
    outcome: np.ndarray,
    runs: list[np.ndarray | None] | None,
    workers: int,
) -> np.ndarray | None:
    """The shard's booked card keys as one sorted run (None if a card id is >= 2^32)."""
    if runs is None:
        # Repeats were dropped after the chunk pass: rebuild the keys from what is booked.
        cols = fetch(source, ["card_id", "card_counter"], np.flatnonzero(outcome == BOOKED))
        return _card_keys(cols["card_id"], cols["card_counter"])
    if any(run is None for run in runs):
        return None
    return merge_runs([run for run in runs if run is not None], workers)


def merge_shards(
    source: ChunkSource,
    extents: tuple[np.ndarray, np.ndarray],
    plans: list[ShardPlan],
    results: list[ShardResult],
    master_key: bytes,
    fees: FeeSchedule | None = None,
    workers: int = 1,
    closed: BookedIndex | None = None,
) -> Settlement:
    """The whole log's settlement from its shards: outcomes put back in place, the card pass
    over all booked records, netting over all flows. Equal to `kernel.settle` on the log
    (with `booked_before=closed` when the shards were settled with it)."""
    if sum(p.records for p in plans) != source.rows or len(plans) != len(results):
        raise AssertionError("shards do not cover the log")
    outcome = np.empty(source.rows, np.uint8)
    for plan, result in zip(plans, results, strict=True):
        if len(result.outcome) != plan.records:
            raise AssertionError("a shard returned the wrong number of outcomes")
        _put_back(outcome, plan, result.outcome)
    runs = [r.card_keys for r in results]
    card_runs = None if any(run is None for run in runs) else [r for r in runs if r is not None]
    card_alerts = counter_alerts(
        source, outcome, card_runs, _locator(*extents), master_key, workers, closed
    )
    alerts = np.concatenate(
        [r.alerts for r in results] + [np.array(card_alerts, dtype=ALERT_DTYPE)]
    )
    positions = net_positions(merge_sums([r.flows for r in results]), fees or FeeSchedule())
    booked = np.flatnonzero(outcome == BOOKED)
    return Settlement(outcome, booked, make_alerts(alerts), positions)


def _put_back(outcome: np.ndarray, plan: ShardPlan, shard_outcome: np.ndarray) -> None:
    """Copy a shard's outcomes to its log rows, one slice per batch (no row index array)."""
    present = plan.lengths > 0
    starts, lengths = plan.starts[present].tolist(), plan.lengths[present].tolist()
    offset = 0
    for start, length in zip(starts, lengths, strict=True):
        outcome[start : start + length] = shard_outcome[offset : offset + length]
        offset += length


def _locator(starts: np.ndarray, lengths: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Log rows to their batch rows (the kernel's locator, from the batch extents)."""
    present = np.flatnonzero(lengths > 0)
    first = starts[present]

    def batch_of(rows: np.ndarray) -> np.ndarray:
        return present[np.searchsorted(first, rows, side="right") - 1]

    return batch_of


def settle_in_shards(
    log: LogReader | RecordLog,
    registry: KeyRegistry,
    fees: FeeSchedule | None = None,
    cutoff_ms: int | None = None,
    shards: int = 2,
    workers: int = 1,
    booked_before: BookedIndex | None = None,
) -> Settlement:
    """Plan, settle every shard here one after another, and merge: what a cluster does across
    machines, in one process (for tests, and to check a plan without a cluster)."""
    source = as_source(log)
    extents = batch_extents(source)
    plans = plan_for(source, extents, shards)
    results = [
        settle_shard(
            ShardSource(source, plan),
            registry_for(registry, source.batches[plan.batch_rows]),
            cutoff_ms,
            workers,
            booked_before=booked_before,
        )
        for plan in plans
    ]
    return merge_shards(
        source, extents, plans, results, registry.master_key, fees, workers, booked_before
    )
