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
from cardsim.records.layout import RECORD_FIELDS
from cardsim.records.log import DICTIONARY_COLUMNS, Chunk
from cardsim.settlement.reasons import BOOKED, PENDING, Alert, Reason, outcome_name
from cardsim.settlement.result import Settlement
from cardsim.settlement.source import (
    ChunkSource,
    column_dtype,
    fetch,
    read_rows,
    record_ids,
    rows_in,
)
from cardsim.settlement.threads import thread_map

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


def rejects_frame(settlement: Settlement, source: ChunkSource, workers: int = 1) -> pd.DataFrame:
    """Every record not booked: rejected with its reason, or pending, with its identity."""
    rows = np.flatnonzero(settlement.outcome != BOOKED)
    frame = pd.DataFrame({"row": rows} | fetch(source, _REJECT_COLUMNS, rows, workers))
    codes = settlement.outcome[rows]
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


_REJECT_COLUMNS = ["batch_row", "terminal_id", "terminal_serial", "card_id", "amount_fen"]


def write_booked(path: Path, settlement: Settlement, source: ChunkSource, workers: int = 1) -> None:
    """booked.parquet: the booked records with their log and batch rows, by record id.

    A peak day books ten million records, and this file is most of what `settle` writes: the
    record ids are read first and sorted once; then each chunk, read on one of `workers`
    threads, puts its booked rows straight into their places in the file's columns.
    """
    booked = settlement.booked
    ids = record_ids(fetch(source, ["terminal_id", "terminal_serial"], booked, workers))
    # Stable, so that the file does not depend on the sort even if an id were booked twice.
    order = np.argsort(ids, kind="stable")
    del ids
    place = np.empty_like(order)
    place[order] = np.arange(len(order))
    rows = booked[order]
    del order
    names = ["batch_row", *RECORD_FIELDS]
    columns = {n: np.empty(len(booked), column_dtype(n)) for n in names}

    def put(chunk: Chunk) -> None:
        lo, hi = rows_in(chunk, booked)
        if hi > lo:
            part = read_rows(source, chunk, names, booked[lo:hi])
            at = place[lo:hi]
            for n in names:
                columns[n][at] = part[n]

    thread_map(workers, put, source.chunks)
    table = pa.table({"row": rows} | columns)
    pq.write_table(table, path, use_dictionary=DICTIONARY_COLUMNS)


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
    workers: int = 1,
) -> dict[str, Any]:
    """Write every settlement file into `folder` (a temporary folder: see results.atomic),
    reading the log back on `workers` threads."""
    positions_frame(settlement).to_csv(folder / "settlement.csv", index=False)
    rejects_frame(settlement, source, workers).to_parquet(folder / "rejects.parquet", index=False)
    alerts_frame(settlement).to_parquet(folder / "alerts.parquet", index=False)
    if booked:
        write_booked(folder / "booked.parquet", settlement, source, workers)
    doc = summary(settlement, extra)
    (folder / "summary.json").write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return doc
