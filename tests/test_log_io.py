"""The log on disk: round trips, row groups on batch boundaries, and bad files named clearly."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cardsim.errors import InputError
from cardsim.records import log as log_module
from cardsim.records.keys import load_registry
from cardsim.records.layout import RECORD_DTYPE, RECORD_FIELDS
from cardsim.records.log import BATCHES_FILE, RECORDS_FILE, LogReader, write_log
from cardsim.settlement.kernel import settle
from tests.conftest import small_day

BLOCK = log_module.ASSEMBLY_BLOCK


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(log_module, "ROW_GROUP_RECORDS", 50)
    day = small_day(seed=5, records=400, terminals=5, batch_size=12)
    write_log(tmp_path / "records", day.log)
    day.registry.save(tmp_path / "keys.json")
    return day, tmp_path


def test_round_trip_is_exact(written) -> None:
    day, folder = written
    back = LogReader(folder / "records").read_all()
    assert back.records.tobytes() == day.log.records.tobytes()
    np.testing.assert_array_equal(back.batch_row, day.log.batch_row)
    assert back.batches.tobytes() == day.log.batches.tobytes()
    assert load_registry(folder / "keys.json").to_json() == day.registry.to_json()


@pytest.mark.parametrize("block", [1, 7, 50, 4096])
def test_records_assembled_in_blocks_are_exact(
    written, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    day, folder = written
    monkeypatch.setattr(log_module, "ASSEMBLY_BLOCK", block)
    back = LogReader(folder / "records").read_all()
    assert back.records.tobytes() == day.log.records.tobytes()


@pytest.mark.parametrize("n", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 5])
def test_assemble_matches_field_by_field(n: int) -> None:
    rng = np.random.default_rng(n)
    raw = rng.integers(0, 256, n * RECORD_DTYPE.itemsize, dtype=np.uint8)
    expected = raw.view(RECORD_DTYPE)
    columns = {name: np.ascontiguousarray(expected[name]) for name in RECORD_FIELDS}
    assert log_module.assemble(columns, n).tobytes() == expected.tobytes()
    if n:  # a column one value short is refused, not broadcast over its last block
        short = {**columns, "payee": columns["payee"][:-1]}
        with pytest.raises(AssertionError, match="every column"):
            log_module.assemble(short, n)


def test_row_groups_end_on_batch_boundaries(written) -> None:
    _, folder = written
    reader = LogReader(folder / "records")
    assert len(reader.chunks) > 3
    for chunk in reader.chunks:
        _, batch_row = reader.read_chunk(chunk)
        assert chunk.rows == len(batch_row)
    ends = [reader.read_chunk(c)[1] for c in reader.chunks]
    for before, after in itertools.pairwise(ends):
        assert before[-1] < after[0]


def test_batches_spanning_row_groups_are_read_together(tmp_path: Path) -> None:
    day = small_day(seed=6, records=300, terminals=3, batch_size=40)
    path = tmp_path / "records"
    write_log(path, day.log)
    table = pq.read_table(path / RECORDS_FILE)
    pq.write_table(table, path / RECORDS_FILE, row_group_size=7)
    reader = LogReader(path)
    assert sum(c.rows for c in reader.chunks) == len(day.log.records)
    assert all(len(c.row_groups) >= 1 for c in reader.chunks)
    on_disk = settle(reader, day.registry)
    in_memory = settle(day.log, day.registry)
    np.testing.assert_array_equal(on_disk.outcome, in_memory.outcome)
    np.testing.assert_array_equal(on_disk.positions, in_memory.positions)


def _expect(path: Path, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        reader = LogReader(path.parent if path.name.endswith(".parquet") else path)
        for chunk in reader.chunks:
            reader.read_chunk(chunk)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_folder(tmp_path: Path) -> None:
    _expect(tmp_path / "nope", "no such folder (expected a record log folder")
    (tmp_path / "file").write_text("")
    _expect(tmp_path / "file", "not a record log folder")


def test_missing_file(written) -> None:
    _, folder = written
    (folder / "records" / BATCHES_FILE).unlink()
    _expect(folder / "records", "file not found")


def test_truncated_parquet(written) -> None:
    _, folder = written
    path = folder / "records" / RECORDS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _expect(path, "Parquet")


def test_corrupt_bytes_in_the_middle(written) -> None:
    _, folder = written
    path = folder / "records" / RECORDS_FILE
    data = bytearray(path.read_bytes())
    for i in range(100, len(data) // 2, 97):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError):
        reader = LogReader(folder / "records")
        for chunk in reader.chunks:
            reader.read_chunk(chunk)


def test_wrong_columns(written) -> None:
    _, folder = written
    path = folder / "records" / RECORDS_FILE
    table = pq.read_table(path).drop_columns(["tac"])
    pq.write_table(table, path)
    _expect(path, "missing column tac")


def test_wrong_type(written) -> None:
    _, folder = written
    path = folder / "records" / RECORDS_FILE
    table = pq.read_table(path)
    i = table.schema.get_field_index("amount_fen")
    table = table.set_column(i, "amount_fen", table.column(i).cast(pa.float64()))
    pq.write_table(table, path)
    _expect(path, "column amount_fen has type double, expected int64")


def test_nulls_are_refused(written) -> None:
    _, folder = written
    path = folder / "records" / RECORDS_FILE
    table = pq.read_table(path)
    i = table.schema.get_field_index("card_id")
    values = table.column(i).to_pylist()
    values[3] = None
    table = table.set_column(i, pa.field("card_id", pa.uint64()), pa.array(values, pa.uint64()))
    pq.write_table(table, path)
    _expect(path, "null")


def test_unordered_batch_rows(written) -> None:
    _, folder = written
    path = folder / "records" / RECORDS_FILE
    table = pq.read_table(path)
    pq.write_table(table.take(np.arange(table.num_rows)[::-1]), path, row_group_size=10**6)
    _expect(path, "batch_row")


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ("not json", "not a readable JSON key file"),
        ('{"schema": "other"}', 'field "schema"'),
        ('{"schema": "cardsim.keys/1", "issuer": {"master_key_hex": "00"}}', "master_key_hex"),
        (
            '{"schema": "cardsim.keys/1", "issuer": {"master_key_hex": "'
            + "00" * 16
            + '"}, "terminals": [{"key_id": 1}]}',
            "terminals[0].terminal_id",
        ),
        (
            '{"schema": "cardsim.keys/1", "issuer": {"master_key_hex": "'
            + "00" * 16
            + '"}, "terminals": [{"key_id": 1, "terminal_id": 1, "public_key_hex": "zz"}]}',
            "terminals[0].public_key_hex",
        ),
    ],
)
def test_bad_key_files(tmp_path: Path, doc: str, fragment: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(doc)
    with pytest.raises(InputError) as info:
        load_registry(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_key_file_round_trip(written) -> None:
    day, folder = written
    doc = json.loads((folder / "keys.json").read_text())
    assert doc["schema"] == "cardsim.keys/1"
    assert len(doc["terminals"]) == len(day.registry.terminals)


@pytest.mark.parametrize(
    ("chosen", "call", "expected"),
    [
        (None, "main", "system"),
        ("mimalloc", "main", "mimalloc"),
        (None, "import", None),
    ],
)
def test_the_command_gives_arrow_the_system_allocator_unless_a_pool_is_chosen(
    chosen: str | None, call: str, expected: str | None
) -> None:
    """Reading a log frees and reallocates the same buffers chunk after chunk: the cardsim
    command keeps them with the system allocator, a pool the user names wins, and importing
    cardsim as a library changes nothing."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    pool = "print(pyarrow.default_memory_pool().backend_name)"
    lines = ["import sys, pyarrow", pool, "import cardsim.cli"]
    if call == "main":  # the command, as `cardsim --help` runs it
        lines += ["sys.argv = ['cardsim', '--help']", "try:", "    cardsim.cli.main()"]
        lines += ["except SystemExit:", "    pass"]
    lines.append(pool)
    code = "\n".join(lines)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    printed = out.stdout.strip().splitlines()
    assert printed[-1] == (expected or printed[0])  # None: the pool Arrow started with
