"""How numbers read in the report and the printed lines: money from int64 fen, durations,
KPI values with units, counts with their nouns."""

from __future__ import annotations

import math
from typing import Any

FEN_PER_YUAN = 100


def yuan(fen: int) -> str:
    """Exact yuan with two decimals and thousands separators, from integer fen: -1234567 ->
    '-12,345.67'. Integer arithmetic only, so no amount is ever rounded."""
    fen = int(fen)
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole:,}.{cents:02d}"


def plural(count: int, noun: str, nouns: str = "") -> str:
    """A count with thousands separators and the noun that agrees with it: (1, 'record') ->
    '1 record', (1200, 'record') -> '1,200 records'; `nouns` for an irregular plural ('buses')."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def duration(seconds: float | None) -> str:
    """A duration a reader takes in at a glance: '0.21 s', '4.6 min', '7.71 h'."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if abs(seconds) < 60:
        return f"{seconds:.3g} s"
    if abs(seconds) < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def unit_of(name: str) -> str:
    """The unit a cardsim name ends with (names carry their unit last)."""
    for suffix, unit in (
        ("_fen", "fen"),
        ("_s_ci95", "s"),
        ("_s", "s"),
        ("_records", "records"),
        ("_batches", "batches"),
    ):
        if name.endswith(suffix):
            return unit
    if name.endswith("utilization"):
        return "share of capacity"
    return "count"


def kpi_value(name: str, value: Any) -> str:
    """A KPI as text: counts with separators, fen also in yuan, seconds also as a duration."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
        return f"{text} (CNY {yuan(value)})" if name.endswith("_fen") and value else text
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if name.endswith("utilization"):
            return f"{value:.4f} ({value:.2%})"
        if unit_of(name) == "s" and abs(value) >= 60:
            return f"{value:,.3f} ({duration(value)})"
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def number(value: Any) -> str:
    """A table cell: ints with separators, whole floats as ints, others to 4 significant
    digits (one decimal from 1,000 up, never an exponent), None and NaN as n/a."""
    if hasattr(value, "item"):  # numpy scalars from pandas tables
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)
