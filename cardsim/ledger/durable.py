"""The few primitives everything durable here is built on.

SQLite in WAL mode with synchronous=FULL: a commit returns only once its WAL frames are on
disk, and a crash at any instant leaves either the whole transaction or none of it. Files and
folders that become visible by a rename are fsynced first, and their parent folder after, so
that the rename never outlives the data it points to.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import threading
from pathlib import Path

from cardsim.errors import InputError

SUMS_FILE = "SHA256SUMS"
"""Manifest of a report folder, in the format of `sha256sum` (checkable with `sha256sum -c`)."""

KILL_HOOK_ENV = "CARDSIM_KILL_AFTER_COMMITS"
"""Fault injection for crash tests: "N" or "N:DELAY_MS" makes the process SIGKILL itself
DELAY_MS after its N-th durable commit (N = 0: after opening its journal; no delay: at once)."""


def open_database(path: Path) -> sqlite3.Connection:
    """A SQLite database in WAL mode with synchronous=FULL, held exclusively by this process.

    The exclusive lock is taken at once, so a second process working on the same state gets
    a one-line error instead of interleaving its commits.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        db.close()
        if "locked" in str(exc):
            raise InputError(path, "in use by another process; try again once it is done") from None
        raise
    if mode.lower() != "wal":
        db.close()
        raise InputError(path, f"cannot use write-ahead logging here (journal mode {mode})")
    return db


def remove_database(path: Path) -> None:
    """Delete a closed database with its WAL and shared-memory files (WAL first: a database
    file without its WAL is a consistent older state, never the other way round)."""
    for suffix in ("-wal", "-shm", ""):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the entries of a folder (new, renamed or removed names) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder`, deepest first, `folder` itself last."""
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in sorted(files):
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest(folder: Path, names: list[str] | None = None) -> str:
    """`sha256sum`-style lines for the files of a folder (or the given names), sorted by name."""
    chosen = sorted(names if names is not None else _files(folder))
    return "".join(f"{file_sha256(folder / name)}  {name}\n" for name in chosen)


def fingerprint(inputs: dict[str, object]) -> str:
    """Hex SHA-256 of a JSON document describing what a command's result depends on."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_file() and p.name != SUMS_FILE]


class CrashHook:
    """Counts durable commits and, when armed by KILL_HOOK_ENV, SIGKILLs the process after
    the chosen one: a crash at a reproducible point, for the kill/restart tests."""

    def __init__(self, after_commits: int | None = None, delay_ms: int = 0) -> None:
        self.after_commits = after_commits
        self.delay_ms = delay_ms
        self.commits = 0
        """Durable commits made by this process so far."""

    @classmethod
    def from_env(cls) -> CrashHook:
        """Armed from KILL_HOOK_ENV when set, else a hook that only counts."""
        spec = os.environ.get(KILL_HOOK_ENV, "").strip()
        if not spec:
            return cls()
        count, _, delay = spec.partition(":")
        try:
            return cls(int(count), int(delay or 0))
        except ValueError:
            raise InputError(KILL_HOOK_ENV, f"{spec!r}: use N or N:DELAY_MS") from None

    def opened(self) -> None:
        """The journal is open: the zero-th commit point."""
        self._maybe_arm()

    def committed(self) -> None:
        """One more durable commit."""
        self.commits += 1
        self._maybe_arm()

    def _maybe_arm(self) -> None:
        if self.after_commits is None or self.commits != self.after_commits:
            return
        pid = os.getpid()
        if self.delay_ms == 0:  # exactly at this commit, before anything else happens
            os.kill(pid, signal.SIGKILL)
        timer = threading.Timer(self.delay_ms / 1000, os.kill, (pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()
