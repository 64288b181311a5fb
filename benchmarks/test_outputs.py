"""Writing what `cardsim settle` hands its user, at peak scale, against the earlier way.

Group booked-file-10M: booked.parquet (every booked record of the 10-million-record log, by
record id) on 1 and 2 workers, and its baseline: the booked rows copied into one record
array, ordered by a two-key lexsort and gathered field by field (what `settle` did before).
The baseline also writes with Parquet's default settings (every column dictionary-encoded),
as it did; `write_booked` writes dictionaries only for the low-cardinality columns, like the
record log, which is part of its gain and makes the file about 10 % larger. Records/s counts
booked records; `speedup_vs_record_array` is measured in the same run. Nothing here asserts a
time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.conftest import TERMINALS
from cardsim.records.layout import RECORD_DTYPE, RECORD_FIELDS
from cardsim.records.log import LogReader
from cardsim.results.settlement_files import write_booked
from cardsim.settlement.kernel import settle
from cardsim.settlement.result import Settlement

MAIN_BATCH = 1_000
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def settled(logs) -> tuple[Path, Settlement]:
    day, path = logs(MAIN_BATCH)
    return path, settle(LogReader(path), day.registry, workers=2)


def _via_record_array(path: Path, settlement: Settlement, source: LogReader) -> None:
    booked = settlement.booked
    out = np.empty(len(booked), RECORD_DTYPE)
    out_batch = np.empty(len(booked), np.int64)
    for chunk in source.chunks:
        lo, hi = np.searchsorted(booked, [chunk.first_row, chunk.first_row + chunk.rows])
        if hi > lo:
            records, batch_row = source.read_chunk(chunk)
            local = booked[lo:hi] - chunk.first_row
            out[lo:hi] = records[local]
            out_batch[lo:hi] = batch_row[local]
    order = np.lexsort((out["terminal_serial"], out["terminal_id"]))
    columns = {"row": booked[order], "batch_row": out_batch[order]}
    columns |= {n: out[n][order] for n in RECORD_FIELDS}
    pq.write_table(pa.table(columns), path)


def _record(benchmark, name: str, booked: int, **extra: object) -> None:
    seconds = benchmark.stats.stats.min
    RESULTS[name] = seconds
    benchmark.extra_info.update(
        {"booked_records": booked, "records_per_s": round(booked / seconds)}
        | {"terminals": TERMINALS}
        | extra
    )


def test_baseline_booked_via_record_array(benchmark, settled, tmp_path: Path) -> None:
    benchmark.group = "booked-file-10M"
    path, result = settled
    target = tmp_path / "booked.parquet"
    benchmark.pedantic(
        lambda: _via_record_array(target, result, LogReader(path)), rounds=3, iterations=1
    )
    _record(benchmark, "record-array", len(result.booked))


@pytest.mark.parametrize("workers", [1, 2])
def test_write_booked(benchmark, settled, tmp_path: Path, workers: int) -> None:
    benchmark.group = "booked-file-10M"
    path, result = settled
    target = tmp_path / "booked.parquet"
    benchmark.pedantic(
        lambda: write_booked(target, result, LogReader(path), workers), rounds=3, iterations=1
    )
    assert pq.read_metadata(target).num_rows == len(result.booked)
    _record(benchmark, f"booked-{workers}", len(result.booked), workers=workers)
    if "record-array" in RESULTS:
        speedup = RESULTS["record-array"] / RESULTS[f"booked-{workers}"]
        benchmark.extra_info["speedup_vs_record_array"] = round(speedup, 2)
