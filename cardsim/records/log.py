"""The record log on disk: a folder with records.parquet and batches.parquet.

records.parquet has one row per record: `batch_row` (the row of its batch in batches.parquet)
followed by every field of the 64-byte record. Rows are grouped by batch, in ascending
batch_row, each batch's records in upload order. batches.parquet has one row per upload.
docs/record-format.md is the specification; this module is the one place that reads or writes it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cardsim.errors import InputError
from cardsim.records.batch import BATCH_DTYPE
from cardsim.records.layout import RECORD_DTYPE, RECORD_FIELDS


def use_system_allocator() -> None:
    """Give Arrow's buffers the system allocator, unless ARROW_DEFAULT_MEMORY_POOL names a pool.

    The `cardsim` command calls this first (and the benchmarks, which measure what it does);
    importing cardsim as a library leaves the process's Arrow pool alone. Reading a log
    allocates and frees the same buffer sizes chunk after chunk. Arrow's default pool
    (mimalloc) soon hands freed pages back to the kernel, and on a virtual machine that
    reports free pages to its host each one is faulted in again at its next use; the system
    allocator keeps them for the next chunk. Measured on the 10 M-record bench log: two
    workers against one 1.81-1.90x instead of 1.77-1.83x, peak memory 0.15-0.25x the raw
    record bytes higher (README, Benchmarks).
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


RECORDS_FILE = "records.parquet"
BATCHES_FILE = "batches.parquet"
ROW_GROUP_RECORDS = 262_144
"""Target records per Parquet row group; groups end on batch boundaries so that they can be
settled independently and in parallel."""

PARTITIONS_KEY = b"cardsim.partitions"
"""records.parquet metadata of a partitioned log: JSON list of each partition's first batch
row (`cardsim partition`); every partition starts a row group."""

COMPRESSION = "none"
"""Uncompressed pages read about three times faster than snappy; the identity, card and TAC
columns are high-entropy and barely compress anyway."""
DICTIONARY_COLUMNS = ["batch_row", "terminal_id", "payee", "domain", "kind", "flags", "reserved"]
"""Low-cardinality columns, stored dictionary-encoded (small and fast to decode)."""

_ARROW_OF = {
    "<u4": pa.uint32(),
    "<u8": pa.uint64(),
    "<i8": pa.int64(),
    "|u1": pa.uint8(),
    "<u2": pa.uint16(),
}
RECORD_SCHEMA = pa.schema(
    [pa.field("batch_row", pa.int64(), nullable=False)]
    + [
        pa.field(n, _ARROW_OF[RECORD_DTYPE.fields[n][0].str], nullable=False)  # type: ignore[index]
        for n in RECORD_FIELDS
    ]
)
BATCH_SCHEMA = pa.schema(
    [
        pa.field("terminal_id", pa.uint32(), nullable=False),
        pa.field("batch_serial", pa.uint32(), nullable=False),
        pa.field("first_serial", pa.uint32(), nullable=False),
        pa.field("last_serial", pa.uint32(), nullable=False),
        pa.field("record_count", pa.uint32(), nullable=False),
        pa.field("key_id", pa.uint32(), nullable=False),
        pa.field("prev_digest", pa.binary(32), nullable=False),
        pa.field("signature", pa.binary(64), nullable=False),
        pa.field("uploaded_ms", pa.int64(), nullable=False),
    ]
)


@dataclass
class RecordLog:
    """A whole log in memory: records, the batch row of each record, and the batch table."""

    records: np.ndarray
    batch_row: np.ndarray
    batches: np.ndarray

    def concat(self, other: RecordLog) -> RecordLog:
        """This log followed by another (the other's batch rows renumbered)."""
        return RecordLog(
            np.concatenate([self.records, other.records]),
            np.concatenate([self.batch_row, other.batch_row + len(self.batches)]),
            np.concatenate([self.batches, other.batches]),
        )


def write_log(path: str | Path, log: RecordLog, partitions: Sequence[int] | None = None) -> None:
    """Write a log folder atomically: built under a temporary name, then renamed into place.

    `partitions` (first batch row of each partition, ascending) are recorded in the metadata,
    and each starts a row group, so a reader of one partition reads no other's rows.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pq.write_table(_batch_table(log.batches), tmp / BATCHES_FILE)
    schema, breaks = RECORD_SCHEMA, np.empty(0, np.int64)
    if partitions is not None:
        schema = schema.with_metadata({PARTITIONS_KEY: json.dumps(list(map(int, partitions)))})
        breaks = np.searchsorted(log.batch_row, np.asarray(partitions, np.int64))
    with pq.ParquetWriter(
        tmp / RECORDS_FILE,
        schema,
        compression=COMPRESSION,
        use_dictionary=DICTIONARY_COLUMNS,
    ) as writer:
        for start, stop in row_groups(log.batch_row, breaks):
            writer.write_table(
                _record_table(log.records[start:stop], log.batch_row[start:stop]),
                row_group_size=stop - start,
            )
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def row_groups(
    batch_row: np.ndarray, breaks: np.ndarray | None = None
) -> Iterator[tuple[int, int]]:
    """Row ranges of about ROW_GROUP_RECORDS rows that end on batch boundaries, and at every
    row in `breaks` (rows where a batch starts)."""
    n = len(batch_row)
    bounds = np.flatnonzero(np.diff(batch_row)) + 1
    cuts = np.empty(0, np.int64) if breaks is None else np.asarray(breaks, np.int64)
    start = 0
    while start < n:
        stop = start + ROW_GROUP_RECORDS
        cut = cuts[np.searchsorted(cuts, start, side="right") :]
        if len(cut) and cut[0] < min(stop, n):
            stop = int(cut[0])
        elif stop >= n:
            yield start, n
            return
        else:
            i = np.searchsorted(bounds, stop)
            stop = int(bounds[i]) if i < len(bounds) else n
        yield start, stop
        start = stop


def _record_table(records: np.ndarray, batch_row: np.ndarray) -> pa.Table:
    arrays = [pa.array(batch_row.astype(np.int64))]
    arrays += [pa.array(np.ascontiguousarray(records[n])) for n in RECORD_FIELDS]
    return pa.Table.from_arrays(arrays, schema=RECORD_SCHEMA)


def _batch_table(batches: np.ndarray) -> pa.Table:
    cols: list[pa.Array] = []
    for field in BATCH_SCHEMA:
        values = batches[field.name]
        if values.ndim == 2:
            raw = pa.py_buffer(np.ascontiguousarray(values).tobytes())
            cols.append(pa.FixedSizeBinaryArray.from_buffers(field.type, len(values), [None, raw]))
        else:
            cols.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(cols, schema=BATCH_SCHEMA)


@dataclass(frozen=True)
class Chunk:
    """A run of whole row groups that holds whole batches: the unit of parallel settlement."""

    row_groups: tuple[int, ...]
    first_row: int
    rows: int


class LogReader:
    """Reads a log folder, checking its schema up front so that bad files fail before any work."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if (self.path / "records" / BATCHES_FILE).exists() and not (
            self.path / BATCHES_FILE
        ).exists():
            raise InputError(
                self.path, f"a run's output folder, not a record log: use {self.path / 'records'}"
            )
        if not self.path.is_dir():
            raise InputError(
                self.path,
                f"{'not a record log folder' if self.path.exists() else 'no such folder'} "
                f"(expected a record log folder holding {RECORDS_FILE} and {BATCHES_FILE})",
            )
        self.records_path = self.path / RECORDS_FILE
        self.batches = self._read_batches()
        self._identity = _file_identity(self.records_path)
        meta = _open(self.records_path).metadata
        self._meta = meta
        _check_schema(self.records_path, meta.schema.to_arrow_schema(), RECORD_SCHEMA)
        self.rows = meta.num_rows
        self.chunks = self._plan_chunks(meta)
        self.partitions = self._partitions(meta)

    def _records_file(self) -> pq.ParquetFile:
        """The records file, memory-mapped, on the footer parsed once.

        Parsing the footer for every chunk, and freeing it, held the GIL long enough to be the
        largest part of reading that threads could not share; reading through a map saves a
        copy of every page. Each chunk opens its own map, so that the pages it touched leave
        the process's resident memory with it. A file replaced or rewritten since the footer
        was read is refused rather than read with a footer that no longer describes it.
        """
        if _file_identity(self.records_path) != self._identity:
            raise InputError(self.records_path, "changed while it was being read; read it again")
        return _open(self.records_path, self._meta)

    def _read_batches(self) -> np.ndarray:
        path = self.path / BATCHES_FILE
        table = _read_table(path)
        _check_schema(path, table.schema, BATCH_SCHEMA)
        out = np.zeros(table.num_rows, dtype=BATCH_DTYPE)
        for field in BATCH_SCHEMA:
            column = table.column(field.name)
            if column.null_count:
                raise InputError(path, f"column {field.name} has {column.null_count} null values")
            if pa.types.is_fixed_size_binary(field.type):
                raw = b"".join(
                    c.buffers()[1].to_pybytes()[c.offset * field.type.byte_width :][
                        : len(c) * field.type.byte_width
                    ]
                    for c in column.chunks
                )
                width = field.type.byte_width
                out[field.name] = np.frombuffer(raw, np.uint8).reshape(len(out), width)
            else:
                out[field.name] = column.to_numpy()
        return out

    def _partitions(self, meta: pq.FileMetaData) -> tuple[int, ...] | None:
        """First batch row of each partition of a partitioned log, else None."""
        raw = (meta.metadata or {}).get(PARTITIONS_KEY)
        if raw is None:
            return None
        try:
            firsts = tuple(int(v) for v in json.loads(raw))
        except (ValueError, TypeError):
            firsts = ()
        n = len(self.batches)
        if not firsts or firsts[0] != 0 or list(firsts) != sorted(set(firsts)) or firsts[-1] > n:
            raise InputError(
                self.records_path,
                f"metadata {PARTITIONS_KEY.decode()} must list ascending first batch rows "
                f"from 0 to at most {n}",
            )
        return firsts

    def _plan_chunks(self, meta: pq.FileMetaData) -> list[Chunk]:
        """Group row groups so that no batch is split between two chunks."""
        col = RECORD_SCHEMA.get_field_index("batch_row")
        chunks: list[Chunk] = []
        groups: list[int] = []
        first = rows = 0
        prev_max = -1
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            lo, hi = self._batch_row_range(g, rg.column(col).statistics)
            if lo < prev_max:
                raise InputError(
                    self.records_path,
                    f"row group {g}: batch_row goes backwards "
                    f"({lo} after {prev_max}); rows must be grouped by batch_row",
                )
            if groups and lo > prev_max:
                chunks.append(Chunk(tuple(groups), first, rows))
                groups, first, rows = [], first + rows, 0
            groups.append(g)
            rows += rg.num_rows
            prev_max = max(prev_max, hi)
        if groups:
            chunks.append(Chunk(tuple(groups), first, rows))
        return chunks

    def _batch_row_range(self, group: int, stats: pq.Statistics | None) -> tuple[int, int]:
        if stats is not None and stats.has_min_max:
            return int(stats.min), int(stats.max)
        column = self._records_file().read_row_group(group, columns=["batch_row"])
        values = column.column(0).to_numpy()
        return (int(values.min()), int(values.max())) if len(values) else (-1, -1)

    def read_chunk(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's records (RECORD_DTYPE) and the batch row of each."""
        records, batch_row, _ = self.read_chunk_columns(chunk)
        return records, batch_row

    def read_chunk_columns(
        self, chunk: Chunk
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Records and batch rows of one chunk, and the same fields as contiguous columns."""
        try:
            table = self._records_file().read_row_groups(list(chunk.row_groups), use_threads=False)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(
                self.records_path,
                f"corrupt Parquet data in rows {chunk.first_row}.. ({_first_line(exc)})",
            ) from None
        columns = {name: _column(self.records_path, table, name) for name in RECORD_FIELDS}
        records = assemble(columns, table.num_rows)
        batch_row = _column(self.records_path, table, "batch_row")
        _check_batch_rows(self.records_path, chunk, batch_row, len(self.batches))
        return records, batch_row, columns

    def read_columns(self, chunk: Chunk, names: list[str]) -> dict[str, np.ndarray]:
        """Some columns of one chunk (record field names or batch_row), without assembling."""
        try:
            table = self._records_file().read_row_groups(
                list(chunk.row_groups), columns=names, use_threads=False
            )
        except (OSError, pa.ArrowException) as exc:
            raise InputError(
                self.records_path,
                f"corrupt Parquet data in rows {chunk.first_row}.. ({_first_line(exc)})",
            ) from None
        return {name: _column(self.records_path, table, name) for name in names}

    def read_all(self) -> RecordLog:
        """The whole log in memory (for tests, the reference settler and small logs)."""
        parts = [self.read_chunk(c) for c in self.chunks]
        records = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, RECORD_DTYPE)
        rows = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        return RecordLog(records, rows, self.batches)


ASSEMBLY_BLOCK = 16384
"""Records assembled per block (1 MiB of records, read from 1 MiB of column slices): a block
stays in the cores' caches while every field is written into it. Whole-column writes stream
the chunk through memory once per field, and two threads doing that contend for the shared
cache and memory. Smaller blocks mean more numpy calls, each of which holds the GIL; blocks of
4,096 to 32,768 records measured alike here, all faster on two workers than whole columns."""


def assemble(columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """The n records (RECORD_DTYPE) whose fields are these columns."""
    if any(len(columns[name]) != n for name in RECORD_FIELDS):
        raise AssertionError(f"every column must hold {n} values")
    records = np.empty(n, dtype=RECORD_DTYPE)
    for start in range(0, n, ASSEMBLY_BLOCK):
        block = records[start : start + ASSEMBLY_BLOCK]
        for name in RECORD_FIELDS:
            block[name] = columns[name][start : start + ASSEMBLY_BLOCK]
    return records


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    """Device, inode, size and modification time: what changes when a file is replaced."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _open(path: Path, metadata: pq.FileMetaData | None = None) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, metadata=metadata, memory_map=True)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"not a readable Parquet file ({_first_line(exc)})") from None


def _read_table(path: Path) -> pa.Table:
    try:
        return _open(path).read()
    except InputError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"corrupt Parquet data ({_first_line(exc)})") from None


def _column(path: Path, table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        raise InputError(
            path,
            f"column {name} has {column.null_count} null values; every "
            "field of every record is required",
        )
    return column.to_numpy()


def _check_schema(path: Path, schema: pa.Schema, expected: pa.Schema) -> None:
    for field in expected:
        if field.name not in schema.names:
            raise InputError(
                path,
                f"missing column {field.name} ({field.type}); expected "
                f"columns: {', '.join(expected.names)}",
            )
        actual = schema.field(field.name).type
        if actual != field.type:
            raise InputError(path, f"column {field.name} has type {actual}, expected {field.type}")


def _check_batch_rows(path: Path, chunk: Chunk, batch_row: np.ndarray, n_batches: int) -> None:
    if len(batch_row) and (batch_row.min() < 0 or batch_row.max() >= n_batches):
        raise InputError(
            path,
            f"rows {chunk.first_row}..{chunk.first_row + chunk.rows - 1}: "
            f"batch_row outside 0..{n_batches - 1} (the rows of {BATCHES_FILE})",
        )
    if len(batch_row) > 1 and np.any(np.diff(batch_row) < 0):
        raise InputError(
            path,
            f"rows {chunk.first_row}..{chunk.first_row + chunk.rows - 1}: "
            "batch_row decreases; rows must be grouped by batch_row, ascending",
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
