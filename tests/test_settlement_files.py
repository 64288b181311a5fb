"""The files `cardsim settle` writes, against plain re-derivations from the log in memory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardsim.records import log as log_module
from cardsim.records.layout import RECORD_FIELDS
from cardsim.records.log import LogReader, write_log
from cardsim.results.settlement_files import rejects_frame, write_booked
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import BOOKED, Reason
from cardsim.settlement.source import MemorySource, fetch
from tests.conftest import small_day


@pytest.fixture
def settled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A dirty day in many small chunks, settled."""
    monkeypatch.setattr(log_module, "ROW_GROUP_RECORDS", 60)
    day = small_day(
        seed=11, records=900, terminals=7, batch_size=15, repeat_fraction=0.1, tampered_batches=2
    )
    write_log(tmp_path / "records", day.log)
    reader = LogReader(tmp_path / "records")
    assert len(reader.chunks) > 5
    return day, reader, settle(reader, day.registry)


def _booked_by_hand(day, result) -> pd.DataFrame:
    """The booked records of the in-memory log, by record id, with a Python sort."""
    rows = [int(r) for r in np.flatnonzero(result.outcome == BOOKED)]
    records = day.log.records
    rows.sort(key=lambda r: (int(records["terminal_id"][r]), int(records["terminal_serial"][r])))
    frame = pd.DataFrame({"row": np.array(rows, np.int64)})
    frame["batch_row"] = day.log.batch_row[rows].astype(np.int64)
    for name in RECORD_FIELDS:
        frame[name] = records[name][rows]
    return frame


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_booked_file_holds_the_booked_records_by_record_id(settled, tmp_path, workers) -> None:
    day, reader, result = settled
    # The log's rows are not in record-id order: the file's order comes from the sort.
    rid = fetch(reader, ["terminal_id", "terminal_serial"], result.booked)
    assert not pd.MultiIndex.from_arrays(list(rid.values())).is_monotonic_increasing
    write_booked(tmp_path / "booked.parquet", result, reader, workers)
    written = pd.read_parquet(tmp_path / "booked.parquet")
    pd.testing.assert_frame_equal(written, _booked_by_hand(day, result))


def test_booked_file_is_the_same_bytes_on_any_number_of_workers(settled, tmp_path) -> None:
    _, reader, result = settled
    blobs = set()
    for workers in (1, 2, 4):
        path = tmp_path / f"booked-{workers}.parquet"
        write_booked(path, result, reader, workers)
        blobs.add(path.read_bytes())
    assert len(blobs) == 1


def test_booked_file_of_a_log_in_memory(settled, tmp_path) -> None:
    day, _, result = settled
    write_booked(tmp_path / "booked.parquet", result, MemorySource(day.log), 2)
    written = pd.read_parquet(tmp_path / "booked.parquet")
    pd.testing.assert_frame_equal(written, _booked_by_hand(day, result))


@pytest.mark.parametrize("workers", [1, 2])
def test_rejects_list_every_record_not_booked(settled, workers) -> None:
    day, reader, result = settled
    frame = rejects_frame(result, reader, workers)
    rows = np.flatnonzero(result.outcome != BOOKED)
    assert len(rows) > 0
    assert frame["row"].tolist() == rows.tolist()
    assert frame["reason"].tolist() == result.outcome[rows].tolist()
    for name in ("terminal_id", "terminal_serial", "card_id", "amount_fen"):
        assert frame[name].tolist() == day.log.records[name][rows].tolist()
    assert frame["batch_row"].tolist() == day.log.batch_row[rows].tolist()
    assert frame["row"].dtype == frame["batch_row"].dtype == np.int64
    assert frame["terminal_id"].dtype == day.log.records.dtype["terminal_id"]
    assert frame["amount_fen"].dtype == np.int64


def test_files_of_a_day_with_nothing_booked_or_nothing_rejected(settled, tmp_path) -> None:
    """Empty tables keep the columns and types they have when they have rows."""
    _, reader, result = settled
    nothing_booked = dataclasses.replace(
        result,
        outcome=np.full_like(result.outcome, Reason.BAD_SIGNATURE),
        booked=np.empty(0, np.int64),
    )
    nothing_rejected = dataclasses.replace(result, outcome=np.zeros_like(result.outcome))
    write_booked(tmp_path / "full.parquet", result, reader, 2)
    write_booked(tmp_path / "empty.parquet", nothing_booked, reader, 2)
    full, empty = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("full", "empty"))
    assert len(empty) == 0
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    some, none = (rejects_frame(r, reader, 2) for r in (result, nothing_rejected))
    assert len(none) == 0 and len(some) > 0
    assert none.dtypes.drop("reason_name").to_dict() == some.dtypes.drop("reason_name").to_dict()
