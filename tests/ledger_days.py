"""Clearing days cut from one synthetic day, for the finality and kill/restart tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from cardsim.records.log import RecordLog, write_log
from cardsim.settlement.booked_index import BookedIndex, day_chains
from cardsim.settlement.reasons import RECORD_REASONS
from cardsim.settlement.result import Settlement
from tests.conftest import small_day
from tests.mutations import resend_records, take_batches


def rid(terminal: npt.ArrayLike, serial: npt.ArrayLike) -> np.ndarray:
    """terminal_id << 32 | terminal_serial."""
    return (np.asarray(terminal, np.uint64) << np.uint64(32)) | np.asarray(serial, np.uint64)


def index_of(log: RecordLog, result: Settlement) -> BookedIndex:
    """What the ledger keeps of a closed day that settled `log` as `result`."""
    booked = log.records[result.booked]
    ids = rid(booked["terminal_id"], booked["terminal_serial"])
    own = np.flatnonzero(np.isin(result.outcome, RECORD_REASONS))
    rows = np.unique(log.batch_row[np.r_[result.booked, own]])
    batches = log.batches[rows]
    rejected = log.records[own]
    assert result.batch_digests is not None
    return BookedIndex.of_days(
        [(ids, booked["tac"])],
        [(booked["card_id"], booked["card_counter"])],
        [rid(batches["terminal_id"], batches["batch_serial"])],
        [rid(rejected["terminal_id"], rejected["terminal_serial"])],
        *day_chains(batches, result.batch_digests[rows]),
    )


@dataclass
class Days:
    """Three days of uploads cut from one synthetic day, with what each part should become."""

    root: Path
    cutoffs: tuple[int, int, int]
    genuine: np.ndarray
    """Record ids of every distinct genuine record (all of them must end booked once)."""
    late_records: int
    """Records received before day 1's cut-off but delivered only with day 2's log."""
    again_records: int
    """Records of day 1 uploaded again on day 2 (a retried batch, a re-sent batch)."""
    day1_files: dict[str, bytes] | None = None
    """Day 1's report as it was right after closing."""
    reversed: pd.DataFrame | None = None
    """The day-1 records day 2's corrections reverse."""


def build_days(root: Path) -> Days:
    day = small_day(
        seed=21, records=900, terminals=14, batch_size=12, repeat_fraction=0.0,
        tampered_batches=0, forged_records=0,
    )  # fmt: skip
    log = day.log
    genuine = np.unique(rid(log.records["terminal_id"], log.records["terminal_serial"]))
    up = log.batches["uploaded_ms"]
    t1, t2 = (int(q) for q in np.quantile(up, [0.4, 0.8]))
    everything = np.arange(len(log.batches))
    by_t1 = everything[up <= t1]
    late = by_t1[np.random.default_rng(5).choice(len(by_t1), 4, replace=False)]
    # Day 1's file holds what arrived before it was cut, a little after the cut-off too.
    first = np.setdiff1d(everything[up <= t1 + (t2 - t1) // 5], late)
    again = first[up[first] <= t1][:2]
    second = np.setdiff1d(everything, first)
    n = len(log.batches)
    resend_records(day, int(again[0]), alter=False)  # row n: same records, new batch
    resend_records(day, int(again[1]), alter=True)  # row n + 1: first record altered
    day.log.batches["uploaded_ms"][n:] = t1 + 1
    retried = take_batches(day.log, [int(b) for b in again])
    retried.batches["uploaded_ms"] = t1 + 2  # a retry: same signed batch, received later
    write_log(root / "day1", take_batches(day.log, first.tolist()))
    write_log(root / "day2", take_batches(day.log, [*second.tolist(), n, n + 1]).concat(retried))
    write_log(root / "day3", take_batches(day.log, [int(first[0])]))
    day.registry.save(root / "keys.json")
    late_records = int(np.isin(log.batch_row, late).sum())
    again_records = 2 * int(np.isin(log.batch_row, again).sum())
    return Days(root, (t1, t2, int(up.max()) + 1), genuine, late_records, again_records)
