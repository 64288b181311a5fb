"""The files `cardsim settle` writes: settlement.csv, rejects, alerts, booked, summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cardsim.records.codes import Participant
from cardsim.records.layout import RECORD_DTYPE, RECORD_FIELDS
from cardsim.settlement.reasons import BOOKED, PENDING, Alert, Reason, outcome_name
from cardsim.settlement.result import Settlement
from cardsim.settlement.source import ChunkSource

SUMMARY_SCHEMA = "cardsim.settlement-summary/1"


def positions_frame(settlement: Settlement) -> pd.DataFrame:
    """settlement.csv as a DataFrame: one row per participant, amounts in fen."""
    frame = pd.DataFrame(settlement.positions)
    roles = {int(p): p.name.lower() for p in Participant}
    frame.insert(1, "role", [roles.get(int(p), "payee") for p in frame["participant"]])
    return frame


def alerts_frame(settlement: Settlement) -> pd.DataFrame:
    """alerts.parquet as a DataFrame, with the alert name beside its stable code."""
    frame = pd.DataFrame(settlement.alerts)
    names = pd.Index([Alert(c).name if c in set(Alert) else f"CODE_{c}" for c in range(256)])
    codes = settlement.alerts["code"].astype(np.int64)
    frame.insert(
        1, "alert", pd.Series(pd.Categorical.from_codes(codes, categories=names), dtype=str)
    )
    return frame


_OUTCOME_NAMES = [
    outcome_name(c) if c in (BOOKED, PENDING) or c in set(Reason) else f"CODE_{c}"
    for c in range(256)
]
"""Name of every possible outcome byte, so naming millions of rejects needs no Python loop."""


def rejects_frame(settlement: Settlement, source: ChunkSource) -> pd.DataFrame:
    """Every record not booked: rejected with its reason, or pending, with its identity."""
    rows = np.flatnonzero(settlement.outcome != BOOKED)
    parts = []
    for chunk in source.chunks:
        lo, hi = np.searchsorted(rows, [chunk.first_row, chunk.first_row + chunk.rows])
        if hi > lo:
            records, batch_row = source.read_chunk(chunk)
            local = rows[lo:hi] - chunk.first_row
            parts.append(
                pd.DataFrame(
                    {
                        "row": rows[lo:hi],
                        "batch_row": batch_row[local],
                        "terminal_id": records["terminal_id"][local],
                        "terminal_serial": records["terminal_serial"][local],
                        "card_id": records["card_id"][local],
                        "amount_fen": records["amount_fen"][local],
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True) if parts else _no_rejects()
    codes = settlement.outcome[frame["row"].to_numpy()]
    frame.insert(1, "reason", codes.astype(np.uint8))
    frame.insert(
        2,
        "reason_name",
        pd.Series(
            # Only the reasons that occur, so value_counts() lists those, not 256 names.
            pd.Categorical.from_codes(
                codes.astype(np.int64), categories=pd.Index(_OUTCOME_NAMES)
            ).remove_unused_categories()
        ),
    )
    return frame


def _no_rejects() -> pd.DataFrame:
    """The rejects table with no rows, with the column types it has when it has some."""
    types: dict[str, np.dtype] = {"row": np.dtype(np.int64), "batch_row": np.dtype(np.int64)}
    types |= {n: RECORD_DTYPE[n] for n in ("terminal_id", "terminal_serial", "card_id")}
    types["amount_fen"] = RECORD_DTYPE["amount_fen"]
    return pd.DataFrame({name: np.zeros(0, dtype) for name, dtype in types.items()})


def write_booked(path: Path, settlement: Settlement, source: ChunkSource) -> None:
    """booked.parquet: the booked records with their log and batch rows, by record id."""
    booked = settlement.booked
    out = np.empty(len(booked), RECORD_DTYPE)
    out_batch = np.empty(len(booked), np.int64)
    for chunk in source.chunks:
        lo, hi = np.searchsorted(booked, [chunk.first_row, chunk.first_row + chunk.rows])
        if hi > lo:
            records, batch_row = source.read_chunk(chunk)
            local = booked[lo:hi] - chunk.first_row
            out[lo:hi] = records[local]
            out_batch[lo:hi] = batch_row[local]
    order = np.lexsort((out["terminal_serial"], out["terminal_id"]))
    columns = {"row": booked[order], "batch_row": out_batch[order]}
    columns |= {n: out[n][order] for n in RECORD_FIELDS}
    pq.write_table(pa.table(columns), path)


def summary(settlement: Settlement, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json: counts, outcomes by reason, alerts by code, money booked, checks."""
    counts = settlement.counts()
    outcome_codes, outcome_counts = np.unique(settlement.outcome, return_counts=True)
    alert_codes, alert_counts = np.unique(settlement.alerts["code"], return_counts=True)
    net_sum = int(settlement.positions["net_fen"].sum())
    doc: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "records": counts,
        "outcomes": {
            outcome_name(int(c)): int(n) for c, n in zip(outcome_codes, outcome_counts, strict=True)
        },
        "alerts": {
            Alert(int(c)).name: int(n) for c, n in zip(alert_codes, alert_counts, strict=True)
        },
        "booked_received_fen": int(settlement.positions["received_fen"].sum()),
        "fees_fen": int(settlement.positions["fee_fen"].clip(min=0).sum()),
        "net_positions_sum_fen": net_sum,
        "checks": {
            "every_record_in_one_place": counts["booked"] + counts["rejected"] + counts["pending"]
            == counts["records"],
            "net_positions_sum_to_zero": net_sum == 0,
        },
    }
    return doc | (extra or {})


def write_settlement(
    folder: Path,
    settlement: Settlement,
    source: ChunkSource,
    extra: dict[str, Any] | None = None,
    booked: bool = True,
) -> dict[str, Any]:
    """Write every settlement file into `folder` (a temporary folder: see results.atomic)."""
    positions_frame(settlement).to_csv(folder / "settlement.csv", index=False)
    rejects_frame(settlement, source).to_parquet(folder / "rejects.parquet", index=False)
    alerts_frame(settlement).to_parquet(folder / "alerts.parquet", index=False)
    if booked:
        write_booked(folder / "booked.parquet", settlement, source)
    doc = summary(settlement, extra)
    (folder / "summary.json").write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return doc
