"""The clearing-day ledger: which days are closed, their reports' hashes, what they booked.

A folder:

    LEDGER/ledger.sqlite     closed days, booked record ids, card counters and batch
                             serials per day, reversals (WAL, FULL)
    LEDGER/days/NNNN/        each closed day's report, with SHA256SUMS
    LEDGER/carry/NNNN/       records pending at day NNNN's cut-off, settled on day NNNN + 1

Closing a day is one SQLite transaction (the day row with its report's SHA-256, the day's
booked ids and TACs, the card counters and batch serials they came with, its reversals) and
nothing else: the report and carry folders are written and fsynced under temporary names first
and renamed into place after the commit, so `days/NNNN/` exists only for a closed day. A crash
between the commit and the renames is finished when the ledger is next opened. Nothing ever
writes into a closed day's folder; its report's hash is checked whenever the ledger reads from
it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardsim.errors import InputError
from cardsim.ledger.durable import (
    SUMS_FILE,
    CrashHook,
    file_sha256,
    fsync_dir,
    open_database,
    remove_database,
)
from cardsim.settlement.booked_index import BookedIndex

LEDGER_SCHEMA = "cardsim.ledger/3"
_SCHEMA_1 = "cardsim.ledger/1"
"""The schema before the ledger kept each day's card counters and batch serials."""
_SCHEMA_2 = "cardsim.ledger/2"
"""The schema before the ledger kept the digests of each day's accepted batches."""
_CROSS_DAY_FROM = "cross_day_checks_from_day"
_CHAIN_FROM = "chain_checks_from_day"
DB_FILE = "ledger.sqlite"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS day (
    day INTEGER PRIMARY KEY,
    cutoff_ms INTEGER NOT NULL,
    report_sha256 TEXT NOT NULL,
    inputs TEXT NOT NULL,
    carried_out INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS booked (
    day INTEGER PRIMARY KEY REFERENCES day(day),
    rids BLOB NOT NULL,
    tacs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS booked_cards (
    day INTEGER PRIMARY KEY REFERENCES day(day),
    card_ids BLOB NOT NULL,
    card_counters BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS booked_batches (
    day INTEGER PRIMARY KEY REFERENCES day(day),
    batch_keys BLOB NOT NULL,
    seen_rids BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS booked_chains (
    day INTEGER PRIMARY KEY REFERENCES day(day),
    batch_keys BLOB NOT NULL,
    digests BLOB NOT NULL,
    head_keys BLOB NOT NULL,
    head_prevs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS reversal (
    terminal_id INTEGER NOT NULL,
    terminal_serial INTEGER NOT NULL,
    original_day INTEGER NOT NULL REFERENCES day(day),
    day INTEGER NOT NULL REFERENCES day(day),
    PRIMARY KEY (terminal_id, terminal_serial)
);
"""


def _upgrade(db: sqlite3.Connection, schema: str) -> None:
    """A schema-1 ledger kept no card counters or batch serials, a schema-2 one no batch
    digests: the days it closed take no part in the checks that need them (later days' card
    pass and batch serial gaps; the hash chain of batches across days), which start with the
    open day; summary.json says from which day. Record ids still cut terminal serial gaps."""
    db.execute("BEGIN")
    (next_day,) = db.execute("SELECT COALESCE(MAX(day), 0) + 1 FROM day").fetchone()
    news = [_CROSS_DAY_FROM, _CHAIN_FROM] if schema == _SCHEMA_1 else [_CHAIN_FROM]
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(key, str(next_day)) for key in news])
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (LEDGER_SCHEMA,))
    db.execute("COMMIT")


@dataclass(frozen=True)
class ClosedDay:
    """One closed clearing day, as the ledger recorded it when it closed."""

    day: int
    cutoff_ms: int
    """Receipt-time cut-off: batches received later went to the next day."""
    report_sha256: str
    """SHA-256 of the report's SHA256SUMS, which lists every file of the report."""
    inputs: str
    """Fingerprint of what the day was closed from (to recognise a repeated command)."""
    carried_out: int
    """Records pending at the cut-off, kept in carry/NNNN/ for the next day."""


class ClearingLedger:
    """A ledger folder, opened by one process at a time."""

    def __init__(self, folder: Path, db: sqlite3.Connection, hook: CrashHook) -> None:
        self.folder = folder
        self.db = db
        self.hook = hook

    @classmethod
    def open(cls, folder: Path, hook: CrashHook | None = None) -> ClearingLedger:
        """Open (or create) a ledger and finish any close a crash interrupted."""
        if folder.exists() and not folder.is_dir():
            raise InputError(folder, "not a ledger folder")
        db = open_database(folder / DB_FILE)
        db.executescript(_TABLES)
        schema = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if schema is None:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("schema", LEDGER_SCHEMA), (_CROSS_DAY_FROM, "1"), (_CHAIN_FROM, "1")],
            )
        elif schema[0] in (_SCHEMA_1, _SCHEMA_2):
            _upgrade(db, schema[0])
        elif schema[0] != LEDGER_SCHEMA:
            raise InputError(
                folder / DB_FILE, f"ledger schema {schema[0]}, expected {LEDGER_SCHEMA}"
            )
        ledger = cls(folder, db, hook or CrashHook())
        ledger._recover()
        return ledger

    def cross_day_checks_from(self) -> int:
        """The first day whose card counters and batch serials the ledger keeps: 1, unless an
        earlier cardsim made the ledger and closed the days before it."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (_CROSS_DAY_FROM,)).fetchone()
        return int(row[0])

    def chain_checks_from(self) -> int:
        """The first day whose batch digests the ledger keeps (the hash chain of a terminal's
        batches is checked across days from there): 1, unless an earlier cardsim made it."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (_CHAIN_FROM,)).fetchone()
        return int(row[0])

    def closed_days(self) -> list[ClosedDay]:
        """Every closed day, in order."""
        rows = self.db.execute(
            "SELECT day, cutoff_ms, report_sha256, inputs, carried_out FROM day ORDER BY day"
        ).fetchall()
        return [ClosedDay(*row) for row in rows]

    def last(self) -> ClosedDay | None:
        """The latest closed day, if any."""
        days = self.closed_days()
        return days[-1] if days else None

    def closed(self, day: int) -> ClosedDay | None:
        """Day `day` if it is closed."""
        return next((d for d in self.closed_days() if d.day == day), None)

    def next_day(self) -> int:
        """The open day: the one after the last closed day (days count from 1)."""
        last = self.last()
        return 1 if last is None else last.day + 1

    def report_dir(self, day: int) -> Path:
        """The folder of a day's report."""
        return self.folder / "days" / f"{day:04d}"

    def carry_dir(self, day: int) -> Path:
        """The log of records pending at a day's cut-off."""
        return self.folder / "carry" / f"{day:04d}"

    def journal_path(self, day: int) -> Path:
        """The settlement journal of a day being closed."""
        return self.folder / f".journal-{day:04d}"

    def booked_index(self) -> BookedIndex:
        """Every record id booked on a closed day, with its TAC, the card counter it spent and
        its batch's serial and digest."""
        rows = self.db.execute("SELECT rids, tacs FROM booked ORDER BY day").fetchall()
        cards = self.db.execute(
            "SELECT card_ids, card_counters FROM booked_cards ORDER BY day"
        ).fetchall()
        batches = self.db.execute(
            "SELECT batch_keys, seen_rids FROM booked_batches ORDER BY day"
        ).fetchall()
        chains = self.db.execute(
            "SELECT batch_keys, digests, head_keys, head_prevs FROM booked_chains ORDER BY day"
        ).fetchall()
        return BookedIndex.of_days(
            [(np.frombuffer(r, "<u8"), np.frombuffer(t, "<u8")) for r, t in rows],
            [(np.frombuffer(c, "<u8"), np.frombuffer(k, "<u4")) for c, k in cards],
            [np.frombuffer(b, "<u8") for b, _ in batches],
            [np.frombuffer(r, "<u8") for _, r in batches],
            [(np.frombuffer(k, "<u8"), _digests(d)) for k, d, _, _ in chains],
            [(np.frombuffer(k, "<u8"), _digests(p)) for _, _, k, p in chains],
        )

    def booked_day(self, rids: np.ndarray) -> np.ndarray:
        """The closed day that booked each record id (0: none)."""
        out = np.zeros(len(rids), np.int64)
        for day, blob in self.db.execute("SELECT day, rids FROM booked ORDER BY day"):
            out[np.isin(rids, np.frombuffer(blob, np.uint64))] = day
        return out

    def reversed_on(self, terminal_id: int, terminal_serial: int) -> int:
        """The day that already booked a reversal of this record (0: none)."""
        row = self.db.execute(
            "SELECT day FROM reversal WHERE terminal_id = ? AND terminal_serial = ?",
            (terminal_id, terminal_serial),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def verified(self, day: int, name: str) -> Path:
        """A file of a closed day's report, after checking it against the recorded hash."""
        closed = self.closed(day)
        if closed is None:
            raise AssertionError(f"day {day} is not closed")
        folder = self.report_dir(day)
        sums = folder / SUMS_FILE
        if not sums.is_file() or file_sha256(sums) != closed.report_sha256:
            raise InputError(sums, f"does not match the hash recorded when day {day} closed")
        listed = {
            name: digest
            for digest, name in (line.split("  ", 1) for line in sums.read_text().splitlines())
        }
        if listed.get(name) != file_sha256(folder / name):
            raise InputError(folder / name, f"changed since day {day} closed")
        return folder / name

    def commit_day(
        self,
        closed: ClosedDay,
        booked: BookedIndex,
        reversals: list[tuple[int, int, int]],
    ) -> None:
        """The commit point of closing a day: its row, booked ids and TACs, the card counters
        and batch serials and digests they came with, and reversals (terminal_id, terminal_serial,
        original_day), in one transaction; then the report and carry folders, already complete
        under temporary names, are put in place."""
        rids, tacs = booked.rids, booked.tacs
        self.db.execute("BEGIN")
        self.db.execute(
            "INSERT INTO day VALUES (?, ?, ?, ?, ?)",
            (closed.day, closed.cutoff_ms, closed.report_sha256, closed.inputs, closed.carried_out),
        )
        self.db.execute(
            "INSERT INTO booked VALUES (?, ?, ?)",
            (closed.day, rids.astype("<u8").tobytes(), tacs.astype("<u8").tobytes()),
        )
        self.db.execute(
            "INSERT INTO booked_cards VALUES (?, ?, ?)",
            (
                closed.day,
                booked.card_ids.astype("<u8").tobytes(),
                booked.card_counters.astype("<u4").tobytes(),
            ),
        )
        self.db.execute(
            "INSERT INTO booked_batches VALUES (?, ?, ?)",
            (
                closed.day,
                booked.batch_keys.astype("<u8").tobytes(),
                booked.seen_rids.astype("<u8").tobytes(),
            ),
        )
        self.db.execute(
            "INSERT INTO booked_chains VALUES (?, ?, ?, ?, ?)",
            (
                closed.day,
                booked.chain_keys.astype("<u8").tobytes(),
                booked.chain_digests.tobytes(),
                booked.head_keys.astype("<u8").tobytes(),
                booked.head_prevs.tobytes(),
            ),
        )
        self.db.executemany(
            "INSERT INTO reversal VALUES (?, ?, ?, ?)",
            [(t, s, original, closed.day) for t, s, original in reversals],
        )
        self.db.execute("COMMIT")
        self.hook.committed()
        self._put_in_place(closed)

    def close(self) -> None:
        """Let go of the ledger (another process may open it)."""
        self.db.close()

    def partial(self, final: Path) -> Path:
        """The temporary name a day's folder is built under."""
        return final.with_name(f".{final.name}.partial")

    def _put_in_place(self, closed: ClosedDay) -> None:
        for final, needed in (
            (self.report_dir(closed.day), True),
            (self.carry_dir(closed.day), closed.carried_out > 0),
        ):
            if final.is_dir() or not needed:
                continue
            partial = self.partial(final)
            if not partial.is_dir():
                raise InputError(final, f"missing: day {closed.day} closed, but its folder is gone")
            partial.rename(final)
            fsync_dir(final.parent)

    def _recover(self) -> None:
        """Finish closes a crash interrupted after their commit."""
        for closed in self.closed_days():
            if self.journal_path(closed.day).exists():
                remove_database(self.journal_path(closed.day))
            report = self.report_dir(closed.day)
            if not report.is_dir():
                sums = self.partial(report) / SUMS_FILE
                if not sums.is_file() or file_sha256(sums) != closed.report_sha256:
                    raise InputError(report, f"missing: day {closed.day} closed, report gone")
            self._put_in_place(closed)


def _digests(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, np.uint8).reshape(-1, 32)


def report_sha256(folder: Path) -> str:
    """The hash a closed day's report is known by: SHA-256 of its SHA256SUMS file."""
    return hashlib.sha256((folder / SUMS_FILE).read_bytes()).hexdigest()
