"""Output folders appear complete or not at all: built under a temporary name, then renamed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cardsim.errors import InputError

MARKER = "summary.json"
"""Written last by every command: its presence means the folder is complete."""


def check_output_folder(path: str | Path) -> None:
    """Fail in one line, before any work, when `path` cannot become an output folder: it is
    a file, or the folder it would be created in cannot be written (tried for real)."""
    path = Path(path)
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
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path`, on error it is removed.

    Files and folders of an existing `path` that the new output does not contain are kept (a
    run's folder can gain a settlement without losing its log): they are hard-linked into the
    new folder (copied where links are refused) before the swap. The swap is two renames,
    `path` aside to `.NAME.old` and the new folder into place, so at every instant `path` is
    absent, the old folder or the new one, never a mix. A crash between the renames is undone
    by the next call for the same path (see `recover_folder`).
    """
    path = Path(path)
    recover_folder(path)
    tmp, old = _sibling(path, "partial"), _sibling(path, "old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        _link_kept(path, tmp)
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(path: str | Path) -> None:
    """Finish what a crash inside `atomic_folder`'s swap left: with `path` in place, the old
    folder beside it is stale; without it, the old folder is the last complete one and goes
    back."""
    path = Path(path)
    old = _sibling(path, "old")
    if not old.exists():
        return
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.rename(path)


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}")


def _link_kept(path: Path, new: Path) -> None:
    """Hard-link into `new` each entry of `path` that `new` lacks; the old folder's own copy
    goes with it, so nothing is moved out of it before the swap is certain."""
    for item in sorted(path.iterdir()):
        target = new / item.name
        if target.exists() or target.is_symlink():
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, target)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    if Path(src).is_symlink():
        shutil.copy2(src, dst, follow_symlinks=False)
        return
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links: a copy keeps the same content
        shutil.copy2(src, dst)
