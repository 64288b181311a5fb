"""Output folders appear complete or not at all: built under a temporary name, then renamed."""

from __future__ import annotations

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

    Existing files in `path` that the new output does not contain are kept, so that a run's
    folder can gain a settlement without losing its log. When `path` already exists, the files
    move one by one with MARKER last (and any old MARKER removed first): a folder without
    MARKER is never a finished output.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not path.exists():
        tmp.rename(path)
        return
    (path / MARKER).unlink(missing_ok=True)
    for item in sorted(tmp.iterdir(), key=lambda p: (p.name == MARKER, p.name)):
        target = path / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    tmp.rmdir()
