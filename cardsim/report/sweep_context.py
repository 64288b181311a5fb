"""What the report page shows for a `cardsim sweep` or `cardsim capacity` folder."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cardsim.report.folder import SweepFolder
from cardsim.report.formats import number, unit_of

ID_COLUMNS = ("point", "replications")


def sweep_context(sweep: SweepFolder) -> dict[str, Any]:
    """Every value the template shows for a sweep, already formatted."""
    doc = sweep.summary
    params = list(doc.get("vary", {}))
    kind = "capacity" if sweep.capacity is not None else "sweep"
    return {
        "kind": kind,
        "title": f"cardsim {kind}: {doc.get('scenario', '?')}",
        "seed": doc.get("seed"),
        "plan": _plan(doc),
        "points": _point_headers(sweep.table, params),
        "summary_rows": _summary_rows(sweep.table, params),
        "capacity": _capacity(sweep),
    }


def _plan(doc: dict[str, Any]) -> list[tuple[str, str]]:
    vary = "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in doc.get("vary", {}).items())
    return [
        ("scenario", str(doc.get("scenario", ""))),
        ("fixed overrides", ", ".join(doc.get("overrides", [])) or "none"),
        ("varied", vary or "nothing"),
        ("replications per point", number(doc.get("replications"))),
        ("root seed", str(doc.get("seed"))),
        ("replication seeds", ", ".join(map(str, doc.get("replication_seeds", [])))),
        ("warm-up (s after midnight)", number(doc.get("warmup_s"))),
        ("confidence of the half-widths", f"{doc.get('confidence', 0):.0%}"),
    ]


def _point_headers(table: pd.DataFrame, params: list[str]) -> list[str]:
    """One header per grid point: its varied values, e.g. 'clearing.workers=2'."""
    return [
        ", ".join(f"{p}={number(row[p])}" for p in params) or f"point {int(row['point'])}"
        for _, row in table.iterrows()
    ]


def _summary_rows(table: pd.DataFrame, params: list[str]) -> list[dict[str, Any]]:
    """One row per KPI, one cell per point: 'mean ± half-width' in the KPI's unit."""
    kpis = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    rows = [
        {
            "kpi": "replications",
            "unit": "runs",
            "cells": [number(int(v)) for v in table["replications"]],
        }
    ]
    for kpi in kpis:
        means = table[f"{kpi}_mean"].tolist()
        halves = table.get(f"{kpi}_half_width", pd.Series([None] * len(table))).tolist()
        cells = [
            number(m) if _missing(h) else f"{number(m)} ± {number(h)}"
            for m, h in zip(means, halves, strict=True)
        ]
        rows.append({"kpi": kpi, "unit": unit_of(kpi), "cells": cells})
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _capacity(sweep: SweepFolder) -> dict[str, Any] | None:
    cap = sweep.capacity
    if cap is None:
        return None
    knob = cap.get("knob", "knob")
    curve = [
        {
            "knob": number(p.get("knob")),
            "mean": number(p.get("mean")),
            "half_width": number(p.get("half_width")),
            "bound": number(p.get("bound")),
            "ok": "yes" if p.get("ok") else "no",
            "replications": number(p.get("replications")),
        }
        for p in cap.get("curve", [])
    ]
    sla = cap.get("sla", {})
    kpi = sla.get("kpi", "")
    return {
        "knob": knob,
        "sla": f"{sla.get('kpi')} {sla.get('op')} {sla.get('limit')} ({unit_of(str(kpi))})",
        "confidence": f"{cap.get('confidence', 0):.0%}",
        "answer": "none of the values tried"
        if cap.get("answer") is None
        else number(cap["answer"]),
        "message": cap.get("message", ""),
        "curve": curve,
        "png": sweep.capacity_png,
    }
