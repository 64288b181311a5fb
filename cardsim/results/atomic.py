"""Output folders appear complete or not at all: built under a temporary name, then renamed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARKER = "summary.json"
"""Written last by every command: its presence means the folder is complete."""


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
