"""The journal of one `cardsim settle`: finished chunks in SQLite, so a crash loses at most
the chunk in progress.

One SQLite database next to the output folder (`.OUT.journal`), WAL mode, synchronous=FULL.
Each finished chunk is one transaction: its `ChunkEntry` (cardsim/settlement/journal.py) under
its chunk number. A restart with the same inputs replays the committed chunks and computes
the rest; the global phase always runs again from the replayed data, so the output is the
uninterrupted one, byte for byte. The inputs are pinned by a fingerprint (the log's and key
file's bytes, cut-off, fees, version): a journal made for other inputs is never replayed.

The end is ordered so that a crash anywhere leaves either no output or a complete one:
the output is written into a temporary folder and fsynced, its manifest is committed to the
journal ("sealed"), the folder is renamed into place, and only then is the journal deleted.
A restart that finds a sealed journal and an output folder matching the seal is done.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cardsim.ledger.durable import (
    CrashHook,
    file_sha256,
    fingerprint,
    fsync_dir,
    fsync_tree,
    manifest,
    open_database,
    remove_database,
)
from cardsim.records.log import BATCHES_FILE, RECORDS_FILE, Chunk
from cardsim.results.atomic import MARKER, atomic_folder, recover_folder
from cardsim.settlement.chunk import ChunkResult, LogState
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.journal import JournalMismatch, capture, decode, encode, restore
from cardsim.settlement.result import Settlement

JOURNAL_SCHEMA = "cardsim.settle-journal/1"

NEW = "new journal"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunk (k INTEGER PRIMARY KEY, entry BLOB NOT NULL);
"""


def journal_path(out: Path) -> Path:
    """Where the journal of a settlement into `out` lives: beside it, hidden."""
    return out.parent / f".{out.name}.journal"


class SettleJournal:
    """A `ChunkJournal` (the kernel's protocol) kept in SQLite."""

    def __init__(self, db: sqlite3.Connection, path: Path, hook: CrashHook, note: str) -> None:
        self.db = db
        self.path = path
        self.hook = hook
        self.note = note
        """What opening found: a fresh journal, chunks to resume from, or a discarded one."""
        self.replayed = 0
        self.committed = 0

    @classmethod
    def open(cls, path: Path, inputs: str, hook: CrashHook | None = None) -> SettleJournal:
        """Open the journal for these inputs (a fingerprint), starting over if it holds
        another settlement's chunks or cannot be read."""
        hook = hook or CrashHook()
        note = NEW
        if path.exists():
            found, why = _read_existing(path, inputs)
            if found is not None:
                return cls._ready(found, path, hook, _resume_note(found))
            note = f"discarded a journal {why}"
            remove_database(path)
        db = open_database(path)
        db.executescript(_TABLES)
        db.execute("BEGIN")
        db.execute("INSERT INTO meta VALUES ('schema', ?), ('inputs', ?)", (JOURNAL_SCHEMA, inputs))
        db.execute("COMMIT")
        return cls._ready(db, path, hook, note)

    @classmethod
    def _ready(
        cls, db: sqlite3.Connection, path: Path, hook: CrashHook, note: str
    ) -> SettleJournal:
        journal = cls(db, path, hook, note)
        hook.opened()
        return journal

    def replay(self, index: int, chunk: Chunk, cols: LogState) -> ChunkResult | None:
        """The committed result of chunk `index`, restored into `cols`; None if not there."""
        row = self.db.execute("SELECT entry FROM chunk WHERE k = ?", (index,)).fetchone()
        if row is None:
            return None
        try:
            result = restore(decode(row[0]), chunk, cols)
        except JournalMismatch:
            return None  # damaged: computed again and committed over it
        self.replayed += 1
        return result

    def commit(self, index: int, chunk: Chunk, result: ChunkResult, cols: LogState) -> None:
        """One transaction: chunk `index` is done, with everything it decided."""
        blob = encode(capture(chunk, result, cols))
        self.db.execute("BEGIN")
        self.db.execute("INSERT OR REPLACE INTO chunk VALUES (?, ?)", (index, blob))
        self.db.execute("COMMIT")
        self.committed += 1
        self.hook.committed()

    def seal(self, folder: Path) -> None:
        """The finished output is in `folder` (not yet in place): make it durable and commit
        its manifest, so that a restart can tell a complete output from a stale one."""
        fsync_tree(folder)
        self.db.execute("BEGIN")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('output', ?)", (manifest(folder),))
        self.db.execute("COMMIT")
        self.hook.committed()

    def sealed_output_in(self, out: Path) -> bool:
        """Is `out` already the output this journal sealed (a crash after the rename)?"""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'output'").fetchone()
        if row is None or not out.is_dir():
            return False
        names = [line.split("  ", 1)[1] for line in row[0].splitlines()]
        if not all((out / name).is_file() for name in names):
            return False
        return manifest(out, names) == row[0]

    def close(self) -> None:
        """Let go of the journal, keeping it for the next run to resume from."""
        self.db.close()

    def remove(self) -> None:
        """The output is in place: the journal is no longer needed."""
        self.db.close()
        remove_database(self.path)


def _read_existing(path: Path, inputs: str) -> tuple[sqlite3.Connection | None, str | None]:
    """The open database and None if it is this settlement's journal, else why not."""
    try:
        db = open_database(path)
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        return None, "that could not be read"
    if rows.get("schema") == JOURNAL_SCHEMA and rows.get("inputs") == inputs:
        return db, None
    db.close()
    return None, "made for other inputs"


def _resume_note(db: sqlite3.Connection) -> str:
    done = db.execute("SELECT count(*) FROM chunk").fetchone()[0]
    return f"resuming: {done} chunk{'' if done == 1 else 's'} already done"


def settle_inputs(log: Path, keys: Path, cutoff_ms: int | None, fees: FeeSchedule) -> str:
    """Fingerprint of everything a `cardsim settle LOG --out DIR` output depends on."""
    return fingerprint(
        {
            "schema": JOURNAL_SCHEMA,
            "cardsim": version("cardsim"),
            "log": str(log),
            "records": file_sha256(log / RECORDS_FILE),
            "batches": file_sha256(log / BATCHES_FILE),
            "keys": file_sha256(keys),
            "cutoff_ms": cutoff_ms,
            "fees": fees.to_json(),
        }
    )


def settle_durably(
    out: Path,
    inputs: str,
    run: Callable[[SettleJournal], Settlement],
    write: Callable[[Path, Settlement], dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Settle into `out` through a journal: `run` settles (replaying what the journal holds),
    `write` fills a temporary folder; returns the summary document. A crash at any point is
    recovered by calling this again with the same inputs."""
    recover_folder(out)  # an output swap a crash interrupted: old folder back, or gone
    journal = SettleJournal.open(journal_path(out), inputs, CrashHook.from_env())
    if journal.note != NEW:
        say(f"journal {journal.path}: {journal.note}")
    if journal.sealed_output_in(out):
        say(f"{out} was already complete")
        journal.remove()
        return dict(json.loads((out / MARKER).read_text()))
    try:
        result = run(journal)
        with atomic_folder(out) as tmp:
            doc = write(tmp, result)
            journal.seal(tmp)
    except BaseException:
        journal.close()
        raise
    fsync_dir(out.parent)
    journal.remove()
    return doc
