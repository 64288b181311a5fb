"""The one error type that user-facing commands turn into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from a user's file: names the file and says what is wrong and what is allowed."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message
