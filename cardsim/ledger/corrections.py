"""Corrections: a booked record found wrong is reversed, never edited.

A closed day's report is final. When a record it booked must be undone (a disputed charge, a
fare taken twice by a faulty validator), the correction is a reversing entry booked in the
open day: the negative of the original record's flow, under the original's identity
(terminal_id, terminal_serial) and naming the day that booked it. Each record can be reversed
once; the ledger remembers every reversal, so a correction filed twice changes nothing the
second time.

The corrections file is a CSV with columns `terminal_id`, `terminal_serial` and optionally
`reference` (free text, e.g. a dispute number). Every line ends in exactly one place in the
day's `reversals.csv`, with its outcome.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cardsim.errors import InputError
from cardsim.ledger.clearing_days import ClearingLedger
from cardsim.settlement.grouping import Sums, group_sums
from cardsim.settlement.positions import flow_keys

COLUMNS = ("terminal_id", "terminal_serial")
OPTIONAL = ("reference",)
_UINT32_MAX = 2**32 - 1


class CorrectionOutcome(IntEnum):
    """What became of one correction line. Stable codes: never renumber, only append."""

    REVERSED = 0
    """A reversing entry was booked today."""
    NOT_BOOKED = 1
    """No closed day booked this record: there is nothing to reverse."""
    ALREADY_REVERSED = 2
    """An earlier day already reversed it."""
    REPEATED = 3
    """An earlier line of the same file names the same record; that line counts."""


def check_corrections_file(path: Path) -> None:
    """Fail in one line, before the ledger is touched, when the corrections file is not a
    file (its hash goes into the day's input fingerprint first)."""
    if not path.is_file():
        raise InputError(path, "corrections file not found" if not path.exists() else "not a file")


def read_corrections(path: Path) -> pd.DataFrame:
    """The corrections file, checked: integer record ids, known columns only."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in COLUMNS + OPTIONAL]
    if missing or unknown:
        raise InputError(
            path,
            f"columns must be {', '.join(COLUMNS)} and optionally {', '.join(OPTIONAL)}; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}",
        )
    out = pd.DataFrame({"line": np.arange(2, len(frame) + 2, dtype=np.int64)})
    for name in COLUMNS:
        out[name] = [
            _uint32(path, name, line, v) for line, v in zip(out["line"], frame[name], strict=True)
        ]
    out["reference"] = frame["reference"] if "reference" in frame.columns else ""
    return out


def _uint32(path: Path, name: str, line: int, value: str) -> int:
    text = value.strip()
    if not text.isdigit() or int(text) > _UINT32_MAX:
        raise InputError(path, f"line {line}: {name} {value!r} must be an integer 0..{_UINT32_MAX}")
    return int(text)


_ORIGINAL = ["card_id", "payee", "kind", "domain", "amount_fen"]


def resolve(corrections: pd.DataFrame, ledger: ClearingLedger) -> pd.DataFrame:
    """One row per correction line: its outcome and, when reversed, the original's flow and
    the reversing amount (`reversal_fen`, the negative of the original amount)."""
    table = corrections.copy()
    rid = table["terminal_id"].to_numpy(np.uint64) << np.uint64(32)
    rid |= table["terminal_serial"].to_numpy(np.uint64)
    table["original_day"] = ledger.booked_day(rid)
    outcome = _outcomes(table, rid, ledger)
    table["outcome"] = outcome
    table["outcome_name"] = [CorrectionOutcome(int(c)).name for c in outcome]
    for name in _ORIGINAL:
        table[name] = np.zeros(len(table), np.int64)
    reversed_ = outcome == CorrectionOutcome.REVERSED
    for day in np.unique(table["original_day"][reversed_]).tolist():
        _fill_originals(table, reversed_ & (table["original_day"] == day).to_numpy(), ledger, day)
    table["reversal_fen"] = np.where(reversed_, -table["amount_fen"], 0)
    return table


def _outcomes(table: pd.DataFrame, rid: np.ndarray, ledger: ClearingLedger) -> np.ndarray:
    """CorrectionOutcome per line, the first applicable of: repeated in the file, not booked
    on a closed day, already reversed, else reversed now."""
    outcome = np.full(len(table), CorrectionOutcome.REVERSED, np.uint8)
    before = [
        ledger.reversed_on(int(t), int(s)) > 0
        for t, s in zip(table["terminal_id"], table["terminal_serial"], strict=True)
    ]
    outcome[np.array(before, bool)] = CorrectionOutcome.ALREADY_REVERSED
    outcome[table["original_day"].to_numpy() == 0] = CorrectionOutcome.NOT_BOOKED
    repeated = np.ones(len(table), bool)
    repeated[np.unique(rid, return_index=True)[1]] = False
    outcome[repeated] = CorrectionOutcome.REPEATED
    return outcome


def _fill_originals(
    table: pd.DataFrame, rows: np.ndarray, ledger: ClearingLedger, day: int
) -> None:
    """Copy the original records' fields from the closed day's (hash-checked) booked.parquet,
    which is sorted by (terminal_id, terminal_serial)."""
    booked = pq.read_table(
        ledger.verified(day, "booked.parquet"), columns=[*COLUMNS, *_ORIGINAL]
    ).to_pandas()
    key = booked["terminal_id"].to_numpy(np.uint64) << np.uint64(32)
    key |= booked["terminal_serial"].to_numpy(np.uint64)
    wanted = table.loc[rows]
    want = wanted["terminal_id"].to_numpy(np.uint64) << np.uint64(32)
    want |= wanted["terminal_serial"].to_numpy(np.uint64)
    at = np.searchsorted(key, want)
    if not np.array_equal(key[np.minimum(at, len(key) - 1)], want):
        raise InputError(ledger.report_dir(day), "booked.parquet lacks a record the ledger booked")
    for name in _ORIGINAL:
        table.loc[rows, name] = booked[name].to_numpy()[at].astype(np.int64)


def reversal_flows(table: pd.DataFrame) -> Sums:
    """The reversing entries as flow sums: each original flow with its amount negated."""
    done = table[table["outcome"] == CorrectionOutcome.REVERSED]
    keys = flow_keys(
        done["payee"].to_numpy(np.uint32),
        done["kind"].to_numpy(np.uint8),
        done["domain"].to_numpy(np.uint8),
    )
    return group_sums(keys, -done["amount_fen"].to_numpy(np.int64))


def reversed_ids(table: pd.DataFrame) -> list[tuple[int, int, int]]:
    """(terminal_id, terminal_serial, original_day) of the reversals booked today."""
    done = table[table["outcome"] == CorrectionOutcome.REVERSED]
    return [
        (int(t), int(s), int(d))
        for t, s, d in zip(
            done["terminal_id"], done["terminal_serial"], done["original_day"], strict=True
        )
    ]
