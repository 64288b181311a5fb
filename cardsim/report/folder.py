"""Reading an output folder back: which command wrote it, and the tables the report needs.

A report is built from the folder alone, so `cardsim report DIR` on an old run gives the
bytes the run wrote itself. Files every run has are required (a missing or unreadable one is
a one-line error); the series tables are optional, and a plot whose table is absent says so
in the report instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cardsim.errors import InputError
from cardsim.report.series import SERIES

RUN_SCHEMA = "cardsim.run-summary/1"
SWEEP_SCHEMA = "cardsim.sweep-summary/1"
CAPACITY_SCHEMA = "cardsim.capacity/1"
SERIES_TABLES = (
    "clearing.csv",
    "latency_quantiles.csv",
    "balances.csv",
    "bike_stock.csv",
    "hospital_waits.csv",
    "hospital_waits_by_hour.csv",
    "participants.csv",
)


@dataclass
class RunFolder:
    """A `cardsim run` folder: summary.json, the tables, and whichever series it holds."""

    path: Path
    summary: dict[str, Any]
    by_hour: pd.DataFrame
    by_domain: pd.DataFrame
    settlement: pd.DataFrame
    rejects: pd.DataFrame
    """reason_name and amount_fen of every record not booked (pending ones included)."""
    alerts: pd.DataFrame
    series: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Series tables by file name; absent ones are simply not in the dict."""


@dataclass
class SweepFolder:
    """A `cardsim sweep` folder, or a `cardsim capacity` one (which adds the curve)."""

    path: Path
    summary: dict[str, Any]
    table: pd.DataFrame
    """summary.csv: per grid point the mean and CI half-width of every KPI."""
    capacity: dict[str, Any] | None = None
    """capacity.json, when the folder is a capacity search."""
    capacity_png: bytes | None = None


def load_folder(path: Path, summary: dict[str, Any] | None = None) -> RunFolder | SweepFolder:
    """Read a run, sweep or capacity folder; InputError for anything else.

    `summary` stands in for DIR/summary.json while a command is still writing the folder
    (summary.json is always written last).
    """
    if not path.is_dir():
        raise InputError(
            path, "not a folder; give the output folder of cardsim run, sweep or capacity"
        )
    doc = summary if summary is not None else _summary(path)
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema == RUN_SCHEMA:
        return _run_folder(path, doc)
    if schema == SWEEP_SCHEMA:
        return _sweep_folder(path, doc)
    raise InputError(
        path / "summary.json",
        f"schema {schema!r} is not a cardsim run, sweep or capacity output "
        f"(expected {RUN_SCHEMA} or {SWEEP_SCHEMA})",
    )


def _summary(path: Path) -> Any:
    file = path / "summary.json"
    if not file.is_file():
        raise InputError(
            path, "no summary.json: not a (complete) output of cardsim run, sweep or capacity"
        )
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(file, f"unreadable JSON ({exc})") from None


def _run_folder(path: Path, doc: dict[str, Any]) -> RunFolder:
    series = {
        name: _csv(path / SERIES / name)
        for name in SERIES_TABLES
        if (path / SERIES / name).is_file()
    }
    return RunFolder(
        path=path,
        summary=doc,
        by_hour=_csv(path / "by_hour.csv"),
        by_domain=_csv(path / "by_domain.csv"),
        settlement=_csv(path / "settlement.csv"),
        rejects=_parquet(path / "rejects.parquet", ["reason_name", "amount_fen"]),
        alerts=_parquet(path / "alerts.parquet", ["alert"]),
        series=series,
    )


def _sweep_folder(path: Path, doc: dict[str, Any]) -> SweepFolder:
    folder = SweepFolder(path=path, summary=doc, table=_csv(path / "summary.csv"))
    capacity = path / "capacity.json"
    if capacity.is_file():
        try:
            folder.capacity = json.loads(capacity.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(capacity, f"unreadable JSON ({exc})") from None
        png = path / "capacity.png"
        folder.capacity_png = png.read_bytes() if png.is_file() else None
    return folder


def _csv(file: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(file)
    except FileNotFoundError:
        raise InputError(file, "missing; the folder is incomplete") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(file, f"unreadable CSV ({' '.join(str(exc).split())})") from None


def _parquet(file: Path, columns: list[str]) -> pd.DataFrame:
    try:
        return pd.read_parquet(file, columns=columns)
    except FileNotFoundError:
        raise InputError(file, "missing; the folder is incomplete") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files and bad columns
        message = " ".join(str(exc).split())[:200]
        raise InputError(
            file, f"unreadable Parquet or missing columns {columns} ({message})"
        ) from None
