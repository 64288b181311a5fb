"""Output folders appear complete or not at all, also when they replace an existing one: the
folder is at every instant absent, the old one or the new one, and files of the old folder
that the new output does not write (a run's log) are never lost."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cardsim.results.atomic import atomic_folder, recover_folder


class Crash(BaseException):
    """Stands for SIGKILL: nothing after it runs, no cleanup."""


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def fill(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


OLD = {"summary.json": b"old", "booked.parquet": b"old booked", "records/records.parquet": b"log"}
NEW = {"summary.json": b"new", "booked.parquet": b"new booked", "alerts.parquet": b"alerts"}
MERGED = NEW | {"records/records.parquet": b"log"}


def write(path: Path) -> None:
    with atomic_folder(path) as tmp:
        fill(tmp, NEW)


def test_new_folder_appears_whole(tmp_path: Path) -> None:
    write(tmp_path / "out")
    assert tree(tmp_path / "out") == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_folder_keeps_what_the_output_does_not_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    fill(out, OLD)
    write(out)
    assert tree(out) == MERGED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_entries_are_not_kept(tmp_path: Path) -> None:
    """A new log makes the old log's settlement wrong: those names go with the old folder."""
    out = tmp_path / "out"
    fill(out, OLD | {"settlement.csv": b"old day", "notes.txt": b"mine"})
    with atomic_folder(out, stale=["settlement.csv", "summary.json"]) as tmp:
        fill(tmp, {"records/records.parquet": b"new log"})
    kept = {"booked.parquet": b"old booked", "notes.txt": b"mine"}
    assert tree(out) == kept | {"records/records.parquet": b"new log"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_error_while_writing_leaves_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    fill(out, OLD)
    with pytest.raises(ValueError), atomic_folder(out) as tmp:
        fill(tmp, {"summary.json": b"half"})
        raise ValueError("bad input")
    assert tree(out) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_symlinked_output_folder_stays_a_symlink(tmp_path: Path) -> None:
    real, out = tmp_path / "real", tmp_path / "out"
    fill(real, OLD)
    out.symlink_to(real, target_is_directory=True)
    for _ in range(2):
        write(out)
        assert out.is_symlink() and tree(real) == MERGED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]


def test_file_system_without_hard_links_copies(tmp_path: Path, monkeypatch: Any) -> None:
    out = tmp_path / "out"
    fill(out, OLD)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", refuse)
    write(out)
    assert tree(out) == MERGED


@pytest.mark.parametrize("existing", [False, True])
def test_crash_at_any_step_of_the_swap(tmp_path: Path, monkeypatch: Any, existing: bool) -> None:
    """Crash at the k-th file-system call that builds or swaps the folder, for every k: the
    folder is absent, the old one or the new one, and the next call puts things right."""
    steps = 0
    for crash_at in range(100):
        case = tmp_path / str(crash_at)
        out = case / "out"
        if existing:
            fill(out, OLD)
        else:
            case.mkdir()
        crashed = _crashing(monkeypatch, crash_at, write, out)
        seen = tree(out) if out.exists() else None
        assert seen in ([None, MERGED, OLD] if existing else [None, NEW]), (crash_at, seen)
        recover_folder(out)
        if existing:  # the log is never lost: the old folder or the new one is in place
            assert tree(out) in (OLD, MERGED), crash_at
        write(out)  # and the command run again finishes cleanly
        assert tree(out) == (MERGED if existing else NEW)
        assert sorted(p.name for p in case.iterdir()) == ["out"], crash_at
        if not crashed:
            steps = crash_at
            break
    assert steps >= (8 if existing else 1)


def _crashing(monkeypatch: Any, crash_at: int, action: Callable[[Path], None], out: Path) -> bool:
    """Run `action` with a Crash at its call number crash_at (from 0) that changes the file
    system: rename, link, unlink or rmdir, so also in the middle of deleting a tree; True
    if it crashed."""
    calls = 0

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > crash_at:
                raise Crash
            return real(*args, **kwargs)

        return call

    with monkeypatch.context() as patch:
        for name in ("rename", "replace", "link", "unlink", "rmdir"):
            patch.setattr(os, name, counted(getattr(os, name)))
        try:
            action(out)
        except Crash:
            return True
    return False
