"""The settlement journal: a settlement resumed after any chunk equals the uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cardsim.records.log as log_module
from cardsim.errors import InputError
from cardsim.ledger.settle_journal import NEW, SettleJournal, journal_path, settle_durably
from cardsim.records.keys import KeyRegistry
from cardsim.records.log import Chunk, LogReader, RecordLog, write_log
from cardsim.settlement.chunk import ChunkResult, LogState
from cardsim.settlement.journal import JournalMismatch, capture, decode, encode, restore
from cardsim.settlement.kernel import settle
from cardsim.settlement.result import Settlement
from cardsim.settlement.source import MemorySource
from tests.conftest import small_day
from tests.mutations import clone, resend_records

ROWS_PER_CHUNK = 30


class Crash(Exception):
    """Stands for the process dying right after a commit."""


class MemoryJournal:
    """The kernel's ChunkJournal kept in a dict of encoded entries; can crash on purpose."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.entries: dict[int, bytes] = {}
        self.crash_after = crash_after
        self.commits = 0

    def replay(self, index: int, chunk: Chunk, cols: LogState) -> ChunkResult | None:
        blob = self.entries.get(index)
        return None if blob is None else restore(decode(blob), chunk, cols)

    def commit(self, index: int, chunk: Chunk, result: ChunkResult, cols: LogState) -> None:
        self.entries[index] = encode(capture(chunk, result, cols))
        self.commits += 1
        if self.commits == self.crash_after:
            raise Crash


@pytest.fixture
def many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs cut into row groups (and so chunks) of about ROWS_PER_CHUNK records."""
    monkeypatch.setattr(log_module, "ROW_GROUP_RECORDS", ROWS_PER_CHUNK)


def dirty_log() -> tuple[RecordLog, KeyRegistry]:
    """Repeats, tampering, forgery, re-sent and conflicting records, a cloned card: every
    global-phase path (repeats across chunks, card merge, read-backs) has work to do."""
    day = small_day(seed=7, records=900, repeat_fraction=0.05, tampered_batches=2, forged_records=2)
    resend_records(day, 3, alter=False)
    resend_records(day, 9, alter=True)
    clone(day, 5, 600)
    return day.log, day.registry


def same(a: Settlement, b: Settlement) -> None:
    np.testing.assert_array_equal(a.outcome, b.outcome)
    np.testing.assert_array_equal(a.booked, b.booked)
    np.testing.assert_array_equal(a.alerts, b.alerts)
    np.testing.assert_array_equal(a.positions, b.positions)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.usefixtures("many_chunks")
def test_resuming_after_any_chunk_gives_the_uninterrupted_settlement(workers: int) -> None:
    log, registry = dirty_log()
    chunks = len(MemorySource(log).chunks)
    assert chunks >= 20
    whole = settle(log, registry, cutoff_ms=None, workers=workers)
    for crash_after in sorted({1, 2, chunks // 3, chunks // 2, chunks - 1}):
        journal = MemoryJournal(crash_after)
        with pytest.raises(Crash):
            settle(log, registry, workers=workers, journal=journal)
        assert len(journal.entries) == crash_after
        journal.crash_after = None
        same(settle(log, registry, workers=workers, journal=journal), whole)
        assert journal.commits == chunks, "committed chunks must not be computed again"


@pytest.mark.usefixtures("many_chunks")
def test_a_fully_journaled_log_settles_without_the_chunk_pass() -> None:
    log, registry = dirty_log()
    journal = MemoryJournal()
    whole = settle(log, registry, journal=journal)
    commits = journal.commits
    same(settle(log, registry, journal=journal), whole)
    assert journal.commits == commits


def test_an_entry_round_trips_and_a_damaged_one_is_refused() -> None:
    log, registry = dirty_log()
    source = MemorySource(log)
    chunk = source.chunks[0]
    journal = MemoryJournal()
    settle(log, registry, journal=journal)
    blob = journal.entries[0]
    entry = decode(blob)
    assert (entry.first_row, entry.rows) == (chunk.first_row, chunk.rows)
    assert encode(entry) == blob
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 1
    with pytest.raises(JournalMismatch):
        decode(bytes(damaged))
    other = Chunk(chunk.row_groups, chunk.first_row + 1, chunk.rows)
    with pytest.raises(JournalMismatch):
        restore(entry, other, LogState(len(log.records), len(log.batches)))


def test_a_chunk_without_card_keys_round_trips() -> None:
    log, registry = dirty_log()
    journal = MemoryJournal()
    settle(log, registry, journal=journal)
    entry = decode(journal.entries[0])
    entry = type(entry)(**{**entry.__dict__, "card_keys": None})
    assert decode(encode(entry)).card_keys is None


@pytest.mark.usefixtures("many_chunks")
def test_sqlite_journal_resumes_and_refuses_other_inputs(tmp_path: Path) -> None:
    log, registry = dirty_log()
    write_log(tmp_path / "log", log)
    reader = LogReader(tmp_path / "log")
    path = tmp_path / ".out.journal"
    whole = settle(reader, registry)

    journal = SettleJournal.open(path, "inputs-a")
    assert journal.note == NEW
    commit = journal.commit

    def commit_then_die(index: int, chunk: Chunk, result: ChunkResult, cols: LogState) -> None:
        commit(index, chunk, result, cols)
        if journal.committed == 5:
            raise Crash

    journal.commit = commit_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        settle(reader, registry, journal=journal)
    journal.close()  # the process dies: no clean removal

    again = SettleJournal.open(path, "inputs-a")
    assert again.note == "resuming: 5 chunks already done"
    same(settle(reader, registry, journal=again), whole)
    assert (again.replayed, again.committed) == (5, len(reader.chunks) - 5)
    again.close()

    other = SettleJournal.open(path, "inputs-b")
    assert other.note == "discarded a journal made for other inputs"
    with pytest.raises(InputError, match="in use by another process"):
        SettleJournal.open(path, "inputs-b")
    other.remove()
    assert not path.exists()

    path.write_bytes(b"not a database at all" * 100)
    garbage = SettleJournal.open(path, "inputs-a")
    assert garbage.note == "discarded a journal that could not be read"
    garbage.remove()


def test_a_sealed_output_is_recognised(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("1\n")
    (out / "summary.json").write_text("{}\n")
    journal = SettleJournal.open(tmp_path / ".out.journal", "x")
    assert not journal.sealed_output_in(out)
    journal.seal(out)
    assert journal.sealed_output_in(out)
    (out / "a.csv").write_text("2\n")
    assert not journal.sealed_output_in(out)
    journal.remove()


class Dies(Exception):
    """Stands for the process dying while the output is being written."""


def test_output_appears_only_once_complete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    journal = journal_path(out)
    settled = Settlement(np.zeros(1, np.uint8), np.zeros(1, np.int64), np.empty(0), np.empty(0))

    def write_then_die(folder: Path, result: Settlement) -> dict[str, object]:
        (folder / "settlement.csv").write_text("half of it\n")
        raise Dies

    def write(folder: Path, result: Settlement) -> dict[str, object]:
        (folder / "settlement.csv").write_text("all of it\n")
        (folder / "summary.json").write_text('{"done": true}\n')
        return {"done": True}

    with pytest.raises(Dies):
        settle_durably(out, "x", lambda journal: settled, write_then_die, print)
    assert not out.exists() and journal.exists()
    assert settle_durably(out, "x", lambda journal: settled, write, print) == {"done": True}
    assert (out / "settlement.csv").read_text() == "all of it\n"
    assert not journal.exists()
