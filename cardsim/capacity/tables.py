"""The sweep's long table, streamed to disk in run-id order, and the per-point summary.

Rows arrive in completion order; `RunTableWriter` holds early arrivals until every lower run
id is written, so `runs.csv` and `runs.parquet` are the same bytes whatever the worker count.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cardsim.sim.queueing import mean_ci

RUNS_CSV = "runs.csv"
RUNS_PARQUET = "runs.parquet"
ROW_GROUP_ROWS = 256
"""Rows per Parquet row group: small enough to bound memory, large enough to read fast."""
ID_COLUMNS = ("run_id", "point", "replication", "seed")


def _arrow_type(value: Any) -> pa.DataType:
    """Column type from a first row's cell; None (an empty percentile) is a float."""
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, str):
        return pa.string()
    return pa.float64()


class RunTableWriter:
    """Appends rows in run-id order to DIR/runs.csv and DIR/runs.parquet as they come."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.next_id = 0
        """The lowest run id not yet written."""
        self.early: dict[int, dict[str, Any]] = {}
        """Rows that finished before a lower run id (at most about the number in flight)."""
        self.group: list[dict[str, Any]] = []
        self.schema: pa.Schema | None = None
        self.parquet: pq.ParquetWriter | None = None
        self.csv_file: IO[str] | None = None
        self.csv: Any = None

    def add(self, run_id: int, row: dict[str, Any]) -> None:
        """Take one finished run; write it and any rows it was holding back."""
        self.early[run_id] = row
        while self.next_id in self.early:
            self._write(self.early.pop(self.next_id))
            self.next_id += 1

    def _write(self, row: dict[str, Any]) -> None:
        if self.schema is None:
            self._open(row)
        assert self.schema is not None and list(row) == self.schema.names, "row columns changed"
        self.csv.writerow(["" if v is None else v for v in row.values()])
        assert self.csv_file is not None
        self.csv_file.flush()
        self.group.append(row)
        if len(self.group) >= ROW_GROUP_ROWS:
            self._flush_group()

    def _open(self, row: dict[str, Any]) -> None:
        self.schema = pa.schema([(name, _arrow_type(v)) for name, v in row.items()])
        self.parquet = pq.ParquetWriter(self.folder / RUNS_PARQUET, self.schema)
        self.csv_file = (self.folder / RUNS_CSV).open("w", newline="")
        self.csv = csv.writer(self.csv_file, lineterminator="\n")
        self.csv.writerow(self.schema.names)

    def _flush_group(self) -> None:
        if self.group and self.parquet is not None:
            columns = {name: [r[name] for r in self.group] for name in self.schema.names}  # type: ignore[union-attr]
            for field in self.schema:  # type: ignore[union-attr]
                if pa.types.is_floating(field.type):
                    # An int where a float column began (e.g. a rounded 0) is the same number.
                    columns[field.name] = [_float(v) for v in columns[field.name]]
            self.parquet.write_table(pa.table(columns, schema=self.schema))
        self.group = []

    def close(self) -> None:
        """Flush the last row group and close both files (also after a failed run)."""
        self._flush_group()
        if self.parquet is not None:
            self.parquet.close()
        if self.csv_file is not None:
            self.csv_file.close()

    def check_complete(self, expected_runs: int) -> None:
        """Every run id below `expected_runs` was written and nothing is held back."""
        if self.next_id != expected_runs or self.early:
            raise RuntimeError(f"wrote {self.next_id} of {expected_runs} runs")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def kpi_columns(table: pd.DataFrame, params: list[str]) -> list[str]:
    """The numeric KPI columns of a long table: everything but ids and varied parameters."""
    skip = {*ID_COLUMNS, *params}
    return [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]


def summarize(table: pd.DataFrame, params: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per grid point: its parameters, replications, and per KPI `_mean` and `_half_width`.

    The half-width is the Student t confidence interval's (mean_ci) over the replications'
    finite values; NaN with fewer than two (a KPI that was empty, or one replication).
    """
    kpis = kpi_columns(table, params)
    rows = []
    for _, group in table.groupby("point", sort=True):
        row: dict[str, Any] = {"point": int(group["point"].iloc[0])}
        row.update({p: group[p].iloc[0] for p in params})
        row["replications"] = len(group)
        for kpi in kpis:
            row[f"{kpi}_mean"], row[f"{kpi}_half_width"] = _mean_half_width(
                group[kpi].to_numpy(np.float64, na_value=np.nan), confidence
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_half_width(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) >= 2:
        return mean_ci(finite, confidence)
    return (float(finite[0]) if len(finite) else math.nan), math.nan
