"""Output folders appear complete or not at all: built under a temporary name, then renamed."""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from cardsim.errors import InputError
from cardsim.ledger.durable import fsync_dir, fsync_tree

MARKER = "summary.json"
"""Written last by every command: its presence means the folder is complete."""


def check_output_folder(path: str | Path) -> None:
    """Fail in one line, before any work, when `path` cannot become an output folder: it is
    a file, or the folder it would be created in cannot be written (tried for real). A swap
    of folders a crash interrupted is finished first (`recover_folder`)."""
    given, path = path, _target(Path(path))
    recover_folder(path)
    if path.exists() and not path.is_dir():
        raise InputError(given, "exists and is not a folder; give a folder path for the output")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(given, f"{parent} is not a folder, so the output cannot be created")
    try:
        tempfile.TemporaryDirectory(dir=parent, prefix=f".{path.name}.check").cleanup()
    except OSError as exc:
        raise InputError(
            given, f"cannot write an output folder in {parent}: {exc.strerror}"
        ) from None


@contextmanager
def atomic_folder(path: str | Path, stale: Collection[str] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path`, on error it is removed.

    What an existing `path` holds and the new output does not write is kept (a run's folder
    can gain a settlement without losing its log), except the names in `stale` when `path` is
    itself a cardsim output (its summary.json names a cardsim schema): a new log drops the old
    log's settlement. The new files are fsynced before any of them is visible. When nothing
    is kept, the new folder takes the old one's place by two renames (the old one aside, then
    deleted), so a process killed at any instant, or a power cut, leaves `path` absent, the
    old folder or the new one; a kill between the renames is undone by the next call
    (`recover_folder`). When something is kept, it is never moved or copied: the old
    summary.json goes first, the new files move in one by one, the new summary.json last, so
    a folder without summary.json is not a finished output. A symlink to a folder stays: the
    folder it points to is replaced.
    """
    path = _target(Path(path))
    recover_folder(path)
    tmp = _sibling(path, "partial")
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    fsync_tree(tmp)  # on disk before it is visible: a power cut must not leave it half-written
    drop = set(stale) if _is_output(path) else set()
    kept = [p for p in _entries(path) if p.name not in drop and not _lexists(tmp / p.name)]
    if kept:
        _move_in(path, tmp, [p for p in _entries(path) if p.name in drop])
    else:
        _swap(path, tmp)


def recover_folder(path: str | Path) -> None:
    """Finish what a kill inside `atomic_folder`'s swap left: with `path` in place, the old
    folder beside it is stale; without it, the old folder is the last complete one and goes
    back. Old folders are deleted only after a rename into a trash folder, so a half-deleted
    one is never taken for complete."""
    path = _target(Path(path))
    for trash in path.parent.glob(glob.escape(f".{path.name}.cardsim-trash-") + "*"):
        _remove(trash)
    old = _sibling(path, "cardsim-old")
    if old.is_dir() and not old.is_symlink():
        if _lexists(path):
            _discard(old)
        else:
            old.rename(path)


def _swap(path: Path, new: Path) -> None:
    old = _sibling(path, "cardsim-old")
    if _lexists(path):
        path.rename(old)
    new.rename(path)
    fsync_dir(path.parent)
    _discard(old)


def _move_in(path: Path, new: Path, drop: list[Path]) -> None:
    if (new / MARKER).exists():  # the old one must not stand beside half of the new files
        (path / MARKER).unlink(missing_ok=True)
    for item in drop:
        _delete(item)
    for item in sorted(new.iterdir(), key=lambda p: (p.name == MARKER, p.name)):
        target = path / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        item.replace(target)
    new.rmdir()
    fsync_dir(path)


def _is_output(path: Path) -> bool:
    """Is `path` a folder a cardsim command wrote (its summary.json names a cardsim schema)?"""
    try:
        doc = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and str(doc.get("schema", "")).startswith("cardsim.")


def _entries(path: Path) -> list[Path]:
    return sorted(path.iterdir()) if path.is_dir() else []


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _target(path: Path) -> Path:
    """The folder an output path names: absolute, through a symlink to a folder."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        path = path.resolve()
    if not path.name:
        raise InputError(path, "cannot be an output folder; give a folder inside it")
    return path


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}")


def _discard(folder: Path) -> None:
    """Delete a folder after renaming it into a fresh trash folder."""
    if not folder.is_dir():
        return
    name = folder.name.removesuffix(".cardsim-old")
    trash = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{name}.cardsim-trash-"))
    folder.rename(trash / "old")
    _remove(trash)


def _delete(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item)
    else:
        item.unlink()


def _remove(folder: Path) -> None:
    """Delete a folder tree if possible, write-protected subfolders included; what cannot be
    deleted stays under a name the next call for the same output deletes again."""
    for root, dirs, _files in os.walk(folder):
        for sub in [Path(root)] + [Path(root) / d for d in dirs]:
            try:
                if not sub.is_symlink():
                    sub.chmod(sub.stat().st_mode | stat.S_IRWXU)
            except OSError:
                pass  # not ours to change: rmtree below leaves what it cannot delete
    shutil.rmtree(folder, ignore_errors=True)
