"""Output folders appear complete or not at all, also when they replace an existing one, and
files of the old folder that the new output does not write (a run's log) are never lost."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cardsim.errors import InputError
from cardsim.results.atomic import atomic_folder, check_output_folder, recover_folder


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
REWRITTEN = {"summary.json": b"old", "booked.parquet": b"old booked"}
"""An old output whose every name the new one writes again: nothing is kept."""
RUN_SUMMARY = json.dumps({"schema": "cardsim.run/1"}).encode()


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
    log = (out / "records" / "records.parquet").stat().st_ino
    write(out)
    assert tree(out) == MERGED
    assert (out / "records" / "records.parquet").stat().st_ino == log  # never moved or copied
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_entries_of_a_cardsim_output_are_not_kept(tmp_path: Path) -> None:
    """A new log makes the old log's settlement wrong: those names go with the old folder,
    but only where cardsim wrote the folder; a user's own folder keeps every file."""
    for name, summary in (("cardsim", RUN_SUMMARY), ("user", b"{}")):
        out = tmp_path / name
        old = {"summary.json": summary, "settlement.csv": b"old day", "notes.txt": b"mine"}
        fill(out, old)
        with atomic_folder(out, stale=["settlement.csv", "summary.json"]) as tmp:
            fill(tmp, {"records/records.parquet": b"new log"})
        left = {"notes.txt": b"mine"} if name == "cardsim" else old
        assert tree(out) == left | {"records/records.parquet": b"new log"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cardsim", "user"]


def test_a_kept_summary_stays_when_the_output_writes_none(tmp_path: Path) -> None:
    out = tmp_path / "out"
    fill(out, {"summary.json": b"the user's"})
    with atomic_folder(out) as tmp:
        fill(tmp, {"records/records.parquet": b"log"})
    assert tree(out) == {"summary.json": b"the user's", "records/records.parquet": b"log"}


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
    for old, final in ((OLD, MERGED), (REWRITTEN, NEW)):  # moved in, and swapped
        fill(real, old)
        out.symlink_to(real, target_is_directory=True)
        for _ in range(2):
            write(out)
            assert out.is_symlink() and tree(real) == final
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]
        shutil.rmtree(real)
        out.unlink()


def test_user_made_names_beside_the_output_are_left_alone(tmp_path: Path) -> None:
    fill(tmp_path / ".out.old", {"thesis.txt": b"mine"})
    fill(tmp_path / ".[o]ut.cardsim-trash-1", {"a": b"mine"})
    for _ in range(2):
        write(tmp_path / "out")
        write(tmp_path / "[o]ut")
    assert tree(tmp_path / ".out.old") == {"thesis.txt": b"mine"}
    assert tree(tmp_path / ".[o]ut.cardsim-trash-1") == {}  # this one is cardsim's own name
    assert tree(tmp_path / "out") == tree(tmp_path / "[o]ut") == NEW


OLD_RUN = {
    "summary.json": RUN_SUMMARY,
    "settlement.csv": b"old day",
    "injected.csv": b"old faults",
    "notes.txt": b"mine",
}
NEW_RUN = {"summary.json": json.dumps({"schema": "cardsim.run/1", "n": 2}).encode()}
NEW_RUN |= {"settlement.csv": b"new day"}
RUN_STALE = ["summary.json", "settlement.csv", "injected.csv"]


def write_run(path: Path) -> None:
    with atomic_folder(path, stale=RUN_STALE) as tmp:
        fill(tmp, NEW_RUN)


def test_a_run_over_a_run_folder_with_a_users_file(tmp_path: Path, monkeypatch: Any) -> None:
    """The old run's files go (also the ones the new run does not write), the user's stays,
    at every kill point; the re-run ends with exactly the new run and the user's file."""
    final = NEW_RUN | {"notes.txt": b"mine"}
    for crash_at in range(100):
        out = tmp_path / str(crash_at) / "out"
        fill(out, OLD_RUN)
        crashed = _crashing(monkeypatch, crash_at, write_run, out)
        seen = tree(out)
        assert seen["notes.txt"] == b"mine", crash_at
        assert "summary.json" not in seen or seen in (OLD_RUN, final), (crash_at, seen)
        write_run(out)
        assert tree(out) == final, crash_at
        if not crashed:
            assert crash_at >= 4
            break


def test_odd_old_entries_are_replaced(tmp_path: Path) -> None:
    """A file where the new output writes a folder and back, a summary.json that is a
    folder: replaced, while the user's file stays."""
    out = tmp_path / "out"
    fill(out, {"booked.parquet/x": b"a folder", "alerts.parquet": b"a file", "mine": b"m"})
    fill(out, {"summary.json/y": b"a folder"})
    with atomic_folder(out) as tmp:
        fill(tmp, {"summary.json": b"new", "booked.parquet": b"file", "alerts.parquet/z": b"dir"})
    assert tree(out) == {
        "summary.json": b"new",
        "booked.parquet": b"file",
        "alerts.parquet/z": b"dir",
        "mine": b"m",
    }


def test_the_working_folder_is_never_renamed_away(tmp_path: Path, monkeypatch: Any) -> None:
    out = tmp_path / "out"
    fill(out, REWRITTEN)
    monkeypatch.chdir(out)
    write(Path("."))
    assert Path.cwd() == out and tree(Path(".")) == NEW


def test_paths_that_cannot_be_outputs_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    for bad in (tmp_path / "loop", tmp_path / "gone" / "out", Path("/")):
        with pytest.raises(InputError):
            check_output_folder(bad)


@pytest.mark.parametrize("old", [None, REWRITTEN, OLD], ids=["new", "swapped", "moved-in"])
def test_crash_at_any_step(tmp_path: Path, monkeypatch: Any, old: dict | None) -> None:
    """Crash at the k-th file-system change, for every k. Swapped: the folder is absent, the
    old one or the new one. Moved in: the kept log is always there, and with summary.json
    the folder is the old one or the new one. The next call puts things right."""
    final = MERGED if old is OLD else NEW
    steps = 0
    for crash_at in range(100):
        case = tmp_path / str(crash_at)
        out = case / "out"
        case.mkdir()
        if old is not None:
            fill(out, old)
        crashed = _crashing(monkeypatch, crash_at, write, out)
        seen = tree(out) if out.exists() else None
        if old is OLD:
            assert seen is not None and seen["records/records.parquet"] == b"log", crash_at
            assert "summary.json" not in seen or seen in (OLD, MERGED), (crash_at, seen)
        else:
            assert seen in (None, old, final), (crash_at, seen)
        recover_folder(out)
        if old is REWRITTEN:
            assert tree(out) in (REWRITTEN, NEW), crash_at
        write(out)  # the command run again finishes cleanly
        assert tree(out) == final
        assert sorted(p.name for p in case.iterdir()) == ["out"], crash_at
        if not crashed:
            steps = crash_at
            break
    assert steps >= (1 if old is None else 4)


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
