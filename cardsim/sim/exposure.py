"""Hotlist exposure: what terminals accept from lost cards before the hotlist reaches them, as
a function of how often terminals refresh their hotlist.

A cardholder reports a lost card at once; terminals learn of it at their next hotlist refresh
(sim/lost.py), and until then a finder can spend. The losses, the finders and their purchases
do not depend on the refresh interval, so each replication's day is drawn once and only the
purse decisions are redone per interval: the same finders face every interval (common random
numbers), and each figure equals the `hotlist_exposure_fen` KPI of a full run with that
interval. Money is int64 fen.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cardsim.scenario import Scenario
from cardsim.sim.city import Decided, decide_day
from cardsim.sim.purse import decide

UNITS_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3_600.0, "d": 86_400.0}
RUN_COLUMNS = [
    "interval_s",
    "replication",
    "seed",
    "cards_lost",
    "finder_taps",
    "finder_taps_accepted",
    "exposure_fen",
]


def parse_intervals(text: str) -> list[float]:
    """'1h,2h,30m,90s,3600' -> seconds, in the order given. Raises ValueError saying why."""
    out = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*", part)
        if not match:
            raise ValueError(
                f"interval {part.strip()!r}: use a number with s, m, h or d, e.g. 1h,2h,30m"
            )
        out.append(float(match.group(1)) * UNITS_S[match.group(2) or "s"])
    if len(set(out)) != len(out):
        raise ValueError("each interval may appear once")
    return out


def label(seconds: float) -> str:
    """A short name for an interval: 24h, 30m, 90s, 3d (hours up to two days)."""
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0 and not (unit == "d" and seconds <= 172_800):
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def exposure_of(d: Decided, interval_s: float) -> tuple[int, int]:
    """Finder taps accepted and the fen they spent, had terminals refreshed every interval."""
    lost = replace(d.lost, hotlisted_s=np.ceil(d.lost.lost_s / interval_s) * interval_s)
    taps, cards = d.taps, d.world.cards
    hot = lost.hotlisted_at(taps.card, taps.time_s, len(cards))
    p = taps.purse
    day = decide(
        taps.card[p],
        taps.amount_fen[p],
        taps.need_fen[p],
        hot[p],
        cards.balance_fen,
        cards.tops_up,
        d.world.scenario.population,
    )
    accepted = np.zeros(len(taps), bool)
    accepted[p] = day.accepted
    spent = d.finder & accepted
    return int(spent.sum()), int(taps.amount_fen[spent].sum())


def exposure_runs(scenario: Scenario, intervals_s: list[float], seeds: list[int]) -> pd.DataFrame:
    """One row per (interval, replication): cards lost, finder taps, accepted, fen."""
    rows = []
    for replication, seed in enumerate(seeds):
        d = decide_day(scenario, seed)
        for interval in intervals_s:
            accepted, fen = exposure_of(d, interval)
            rows.append(
                (interval, replication, seed, len(d.lost.card), int(d.finder.sum()), accepted, fen)
            )
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return runs.astype({c: "int64" for c in RUN_COLUMNS if c != "interval_s"})


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per interval: replications, totals, and the mean exposure per day rounded to whole fen
    (half up); `exposure_fen_min` / `_max` over the replications."""
    grouped = runs.groupby("interval_s", sort=False)
    table = grouped.agg(
        replications=("replication", "size"),
        cards_lost=("cards_lost", "sum"),
        finder_taps=("finder_taps", "sum"),
        finder_taps_accepted=("finder_taps_accepted", "sum"),
        exposure_fen_total=("exposure_fen", "sum"),
        exposure_fen_min=("exposure_fen", "min"),
        exposure_fen_max=("exposure_fen", "max"),
    ).reset_index()
    total, n = table["exposure_fen_total"].to_numpy(), table["replications"].to_numpy()
    table.insert(1, "interval", [label(s) for s in table["interval_s"]])
    table.insert(7, "exposure_fen_mean", ((2 * total + n) // (2 * n)).astype(np.int64))
    return table


def plot_exposure(table: pd.DataFrame, runs: pd.DataFrame, name: str, path: Path) -> None:
    """exposure.png: mean exposure per day (CNY) against the refresh interval (hours), each
    replication's day as a dot."""
    hours = table["interval_s"].to_numpy() / 3_600.0
    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=100)
    try:
        ax.scatter(
            runs["interval_s"] / 3_600.0,
            runs["exposure_fen"] / 100.0,
            s=12,
            alpha=0.5,
            label="one replication's day",
        )
        ax.plot(hours, table["exposure_fen_mean"] / 100.0, marker="o", label="mean")
        ax.set_xscale("log")
        ax.set_xticks(hours, [str(v) for v in table["interval"]])
        ax.minorticks_off()
        ax.set_xlabel("hotlist refresh interval")
        ax.set_ylabel("accepted from lost cards (CNY per day)")
        ax.set_title(f"hotlist exposure: {name}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        # No date or software stamp in the PNG metadata, so equal tables give equal bytes.
        fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
