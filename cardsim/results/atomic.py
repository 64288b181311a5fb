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
REPLACING = ".cardsim-replacing.json"
"""The old MARKER while new files move into a folder: it still says cardsim wrote the folder
(so a re-run after a kill drops the same stale names), but no longer that it is complete."""


def check_output_folder(path: str | Path) -> None:
    """Fail in one line, before any work, when `path` cannot become an output folder: it is
    a file, or the folder it would be created in cannot be written (tried for real). A swap
    of folders a crash interrupted is finished first (`recover_folder`)."""
    given, path = path, _target(Path(path))
    try:
        recover_folder(path)
    except OSError as exc:
        raise InputError(given, f"cannot finish an interrupted output swap: {exc}") from None
    if path.exists() and not path.is_dir():
        raise InputError(given, "exists and is not a folder; give a folder path for the output")
    parent = path.parent
    while not parent.exists():
        if _lexists(parent):  # a dangling symlink
            raise InputError(given, f"{parent} is a broken link, so the output cannot be created")
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
    a folder without summary.json is not a finished output. Keeping goes by top-level name: a
    folder the new output writes (plots/, records/) replaces the old one whole. A symlink to a
    folder stays: the folder it points to is replaced.
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
    drop = set(stale) | {REPLACING} if _is_output(path) else {REPLACING}
    kept = [p for p in _entries(path) if p.name not in drop and not _lexists(tmp / p.name)]
    if kept or _holds_cwd(path):  # (the working folder is never renamed away under a user)
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
    """The new files into `path`, which keeps its other files: the old summary.json first
    becomes REPLACING (when the new output writes one, or it is stale), then stale names go,
    the new files move in, REPLACING goes, and the new summary.json comes last."""
    marker, replacing = path / MARKER, path / REPLACING
    if _lexists(marker) and (_lexists(new / MARKER) or marker in drop):
        if marker.is_dir() and not marker.is_symlink():
            _delete(marker)
        else:
            marker.replace(replacing)
    for item in drop:
        if item != replacing:
            _delete(item)
    for item in sorted(new.iterdir(), key=lambda p: (p.name == MARKER, p.name)):
        target = path / item.name
        if item.name == MARKER:
            replacing.unlink(missing_ok=True)
        if _lexists(target) and (item.is_dir() or (target.is_dir() and not target.is_symlink())):
            _delete(target)  # a folder is replaced whole, and a file by a folder or back
        item.replace(target)
    replacing.unlink(missing_ok=True)
    new.rmdir()
    fsync_dir(path)


def _is_output(path: Path) -> bool:
    """Is `path` a folder a cardsim command wrote (its summary.json, or the one being
    replaced, names a cardsim schema)?"""
    for name in (MARKER, REPLACING):
        try:
            doc = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and str(doc.get("schema", "")).startswith("cardsim."):
            return True
    return False


def _holds_cwd(path: Path) -> bool:
    cwd = Path(os.path.abspath(os.getcwd()))
    return cwd == path or path in cwd.parents


def _entries(path: Path) -> list[Path]:
    return sorted(path.iterdir()) if path.is_dir() else []


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _target(path: Path) -> Path:
    """The folder an output path names: absolute, through a symlink to a folder."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise InputError(path, f"cannot be followed: {exc}") from None
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
        _remove(item)
    else:
        item.unlink(missing_ok=True)


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
