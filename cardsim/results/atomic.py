"""Output folders appear complete or not at all: built under a temporary name, then renamed."""

from __future__ import annotations

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
    path = Path(path)
    recover_folder(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "exists and is not a folder; give a folder path for the output")
    parent = path.parent.resolve()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(path, f"{parent} is not a folder, so the output cannot be created")
    try:
        tempfile.TemporaryDirectory(dir=parent, prefix=f".{path.name}.check").cleanup()
    except OSError as exc:
        raise InputError(
            path, f"cannot write an output folder in {parent}: {exc.strerror}"
        ) from None


@contextmanager
def atomic_folder(path: str | Path, stale: Collection[str] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path`, on error it is removed.

    Files and folders of an existing `path` that the new output does not contain are kept (a
    run's folder can gain a settlement without losing its log), unless their name is in
    `stale` (a new log makes the old log's settlement wrong): they are hard-linked into the
    new folder (copied where links are refused) before the swap. The swap is two renames,
    `path` aside to `.NAME.old` and the new folder into place, so at every instant `path` is
    absent, the old folder or the new one, never a mix. A crash between the renames is undone
    by the next call for the same path (`recover_folder`). A symlink to a folder stays: the
    folder it points to is replaced.
    """
    path = _target(Path(path))
    recover_folder(path)
    tmp = _sibling(path, "partial")
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            _link_kept(path, tmp, set(stale))
    except BaseException:
        _remove(tmp)
        raise
    old = _sibling(path, "old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    fsync_dir(path.parent)
    _discard(old)


def recover_folder(path: str | Path) -> None:
    """Finish what a crash inside `atomic_folder`'s swap left: with `path` in place, the old
    folder beside it is stale; without it, the old folder is the last complete one and goes
    back. An old folder is only ever deleted under another name, so a half-deleted one is
    never taken for it."""
    path = _target(Path(path))
    for trash in sorted(path.parent.glob(f".{path.name}.trash-*")):
        _remove(trash)
    old = _sibling(path, "old")
    if not old.is_dir():
        return
    if path.exists():
        _discard(old)
    else:
        old.rename(path)


def _target(path: Path) -> Path:
    return path.resolve() if path.is_symlink() else path


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}")


def _discard(folder: Path) -> None:
    if folder.is_dir():
        trash = folder.with_name(f"{folder.name.removesuffix('.old')}.trash-{os.getpid()}")
        folder.rename(trash)
        _remove(trash)


def _remove(folder: Path) -> None:
    """Delete a folder tree, write-protected subfolders included (a user may protect a
    run's log; the copy being deleted is the old folder's, the new one keeps its modes).
    What cannot be deleted stays, under a name the next call deletes again."""
    for root, dirs, _files in os.walk(folder):
        for name in dirs:
            sub = Path(root) / name
            if not sub.is_symlink():
                sub.chmod(sub.stat().st_mode | stat.S_IRWXU)
    shutil.rmtree(folder, ignore_errors=True)


def _link_kept(path: Path, new: Path, stale: set[str]) -> None:
    """Hard-link into `new` each entry of `path` that `new` lacks and that is not stale, and
    make the new names durable; the old folder keeps its own names until the swap is certain."""
    for item in sorted(path.iterdir()):
        target = new / item.name
        if item.name in stale or target.exists() or target.is_symlink():
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, target, symlinks=True, copy_function=_link_or_copy)
            fsync_tree(target)
        else:
            _link_or_copy(item, target)
    fsync_dir(new)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    if Path(src).is_symlink():
        shutil.copy2(src, dst, follow_symlinks=False)
        return
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links: a copy keeps the same content
        shutil.copy2(src, dst)
