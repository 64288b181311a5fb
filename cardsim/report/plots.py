"""The run's plots, each drawn from the tables of a run folder and returned as PNG bytes.

`run_plots(folder)` draws every plot whose tables the folder holds, in report order. Money is
summed in int64 fen and only turned into yuan (float) for the axes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, PercentFormatter

from cardsim.report.figures import (
    DOMAIN_COLOURS,
    TALL,
    WIDE,
    clock,
    end_hour,
    figure,
    no_data,
    png_bytes,
    thousands,
    time_of_day_axis,
)
from cardsim.report.folder import RunFolder
from cardsim.report.formats import FEN_PER_YUAN, duration, plural, yuan
from cardsim.report.series import BIN_S
from cardsim.report.settlement import by_group


@dataclass(frozen=True)
class Plot:
    """One rendered plot: its file name under plots/, a heading, a caption and the PNG."""

    name: str
    title: str
    caption: str
    png: bytes


def transactions_per_hour(run: RunFolder) -> bytes:
    """Stacked bars: records per hour of the tap, one colour per domain."""
    table = run.by_hour
    domains = [d for d in DOMAIN_COLOURS if d in table.columns]
    domains += [d for d in table.columns if d not in ("hour", *domains)]
    with figure(WIDE) as (fig, ax):
        bottom = np.zeros(len(table))
        for domain in domains:
            counts = table[domain].to_numpy(np.int64)
            ax.bar(
                table["hour"] + 0.5,
                counts,
                width=0.9,
                bottom=bottom,
                label=domain,
                color=DOMAIN_COLOURS.get(domain),
            )
            bottom += counts
        time_of_day_axis(ax)
        thousands(ax)
        ax.set_ylim(0, max(1.0, float(bottom.max())) * 1.12)  # room for the legend
        ax.set_xlabel("hour of the tap (time of day)")
        ax.set_ylabel("transactions per hour (records)")
        ax.set_title("Transactions per hour by domain")
        ax.legend(ncols=len(domains), loc="upper left")
        return png_bytes(fig)


def clearing_day(run: RunFolder) -> bytes:
    """Batches waiting and worker utilisation per 5-minute bin, outages shaded, cut-off marked."""
    table = run.series["clearing.csv"]
    clearing = run.summary["scenario"]["clearing"]
    hours = (table["bin_start_s"].to_numpy() + BIN_S / 2) / 3600.0
    busy = table["busy_workers_mean"].to_numpy() > 0
    # Wide enough for the last service and the cut-off, so the dashed line is always seen.
    end_h = max(
        end_hour(table["bin_start_s"].to_numpy() + BIN_S, busy),
        float(np.ceil(float(clearing["cutoff_s"]) / 3600.0 + 1.0)),
    )
    margins = {"hspace": 0.1, "bottom": 0.09, "top": 0.94}
    with figure(TALL, rows=2, sharex=True, margins=margins) as (fig, (top, bottom)):
        top.fill_between(
            hours,
            table["queue_max_batches"],
            step="mid",
            alpha=0.25,
            color="#1f77b4",
            label="most waiting in the 5 min",
        )
        top.step(
            hours,
            table["queue_mean_batches"],
            where="mid",
            color="#1f77b4",
            label="time-average waiting",
        )
        top.set_ylabel("batches waiting (queue length)")
        workers = plural(int(clearing["workers"]), "worker")
        top.set_title(f"Clearing front end: queue and utilisation ({workers})")
        bottom.step(hours, table["utilization"] * 100.0, where="mid", color="#ff7f0e")
        bottom.set_ylabel("worker utilisation (%)")
        bottom.set_ylim(0, max(5.0, float(table["utilization"].max()) * 110.0))
        bottom.set_xlabel("time of day (5-minute bins)")
        for ax in (top, bottom):
            _clearing_marks(ax, clearing)
        time_of_day_axis(bottom, end_h)
        top.legend(loc="upper right")
        return png_bytes(fig)


def _clearing_marks(ax: Axes, clearing: dict[str, Any]) -> None:
    """The scenario's outage windows shaded, the day's cut-off as a dashed line."""
    outages: list[list[float]] = clearing.get("outages_s") or []
    for k, (start_s, end_s) in enumerate(outages):
        ax.axvspan(
            start_s / 3600.0,
            end_s / 3600.0,
            color="red",
            alpha=0.12,
            label="clearing centre down" if k == 0 else None,
        )
    cutoff_h = float(clearing["cutoff_s"]) / 3600.0
    ax.axvline(
        cutoff_h,
        color="0.3",
        linestyle="--",
        linewidth=1,
        label=f"day's cut-off ({clock(cutoff_h)})",
    )


_LATENCY_TICKS = (
    (1.0, "1 s"),
    (10.0, "10 s"),
    (60.0, "1 min"),
    (600.0, "10 min"),
    (3600.0, "1 h"),
    (6 * 3600.0, "6 h"),
    (24 * 3600.0, "24 h"),
)


def latency_cdf(run: RunFolder) -> bytes:
    """Share of records cleared within a given time of the tap, log time axis, p95/p99 marked."""
    table = run.series["latency_quantiles.csv"]
    kpis = run.summary["kpis"]
    with figure(WIDE) as (fig, ax):
        ax.set_title("Tap to cleared: how long records take to reach the clearing centre")
        if table.empty:
            no_data(ax, "no record was cleared (M/M/c mode or an empty day)")
            return png_bytes(fig)
        latency = np.maximum(table["latency_s"].to_numpy(), 1e-3)
        ax.step(
            latency,
            table["quantile"],
            where="post",
            color="#1f77b4",
            label="records cleared (share)",
        )
        ax.set_xscale("log")
        low, high = float(latency.min()), float(latency.max())
        ticks = [(t, label) for t, label in _LATENCY_TICKS if low / 2 <= t <= high * 2]
        ax.xaxis.set_major_locator(FixedLocator([t for t, _ in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: dict(ticks).get(v, "")))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda _v, _p: ""))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        for q, style in (("p95", "--"), ("p99", ":")):
            value = kpis.get(f"tap_to_cleared_{q}_s")
            if value:
                ax.axvline(
                    value,
                    color="#d62728",
                    linestyle=style,
                    label=f"{q}: {duration(value)} ({value:,.0f} s)",
                )
        ax.set_xlabel("time from tap to cleared (log scale)")
        ax.set_ylabel("records cleared within that time")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="upper left")
        return png_bytes(fig)


def net_settlement(run: RunFolder) -> bytes:
    """Net position per participant group, in yuan: who is paid, who pays."""
    groups = by_group(run.settlement, run.series.get("participants.csv"))
    groups = groups.sort_values(["net_fen", "label"], kind="stable")
    net_fen = groups["net_fen"].to_numpy(np.int64)
    height = 1.1 + 0.36 * max(len(groups), 3)
    margins = {"left": 0.2, "bottom": 0.55 / height, "top": 1 - 0.4 / height}
    with figure((WIDE[0], height), margins=margins) as (fig, ax):
        colours = np.where(net_fen >= 0, "#2ca02c", "#d62728")
        y = np.arange(len(groups))
        ax.barh(y, net_fen / FEN_PER_YUAN, color=colours)
        ax.set_yticks(y, groups["label"])
        ax.grid(axis="y", visible=False)
        ax.axvline(0, color="0.3", linewidth=0.8)
        span = max(float(np.abs(net_fen).max(initial=1)) / FEN_PER_YUAN, 1.0)
        for k, fen in enumerate(net_fen.tolist()):
            ax.text(
                fen / FEN_PER_YUAN + (0.01 if fen >= 0 else -0.01) * span,
                k,
                yuan(fen),
                va="center",
                ha="left" if fen >= 0 else "right",
                fontsize=8,
            )
        ax.set_xlim(-span * 1.35, span * 1.35)
        thousands(ax, "x")
        ax.set_xlabel("net settlement position (yuan; + is paid to the participant)")
        ax.set_title("Net settlement by participant (T+1, after fees)")
        return png_bytes(fig)


def balances(run: RunFolder) -> bytes:
    """Cards per balance band at the start and at the end of the day."""
    table = run.series["balances.csv"]
    low = table["low_fen"].to_numpy(np.int64) / FEN_PER_YUAN
    width = float(table["high_fen"].iloc[0] - table["low_fen"].iloc[0]) / FEN_PER_YUAN
    with figure(WIDE) as (fig, ax):
        ax.bar(
            low,
            table["cards_opening"],
            width=width,
            align="edge",
            color="#9ecae1",
            label="opening (new cards: their first load)",
        )
        ax.step(
            np.r_[low, low[-1] + width],
            np.r_[table["cards_closing"], 0],
            where="post",
            color="#08519c",
            linewidth=1.6,
            label="closing",
        )
        ax.axvspan(
            low[-1],
            low[-1] + width,
            color="0.85",
            alpha=0.5,
            zorder=0,
            label=f"last band: CNY {low[-1]:,.0f} and above",
        )
        thousands(ax)
        ax.set_xlim(0, low[-1] + width)
        ax.set_xlabel(f"card balance (yuan, bands of {width:g})")
        ax.set_ylabel("cards")
        ax.set_title("Card balances at the start and the end of the day")
        ax.legend(loc="upper right")
        return png_bytes(fig)


def bike_stock(run: RunFolder) -> bytes:
    """Bikes docked through the day at the stations that ran empty or full the longest."""
    table = run.series["bike_stock.csv"]
    docks = int(run.summary["scenario"]["bike"]["docks"])
    hours = table["time_s"].to_numpy() / 3600.0
    stations = [c for c in table.columns if c.startswith("station_")]
    with figure(WIDE) as (fig, ax):
        ax.set_title("Bike stock at the stations that ran empty or full the longest")
        if not stations:
            no_data(ax, "no bike stations in this scenario")
            return png_bytes(fig)
        for column in stations:
            bikes = table[column].to_numpy()
            empty_h, full_h = np.mean(bikes == 0) * 24, np.mean(bikes == docks) * 24
            ax.step(
                hours,
                bikes,
                where="post",
                linewidth=1.3,
                label=f"station {column[8:]}: empty {empty_h:.1f} h, full {full_h:.1f} h",
            )
        full = f"{plural(docks, 'dock')} (full)"
        ax.axhline(docks, color="0.3", linestyle="--", linewidth=1, label=full)
        ax.set_ylim(-0.5, docks + max(1.0, docks * 0.35))
        time_of_day_axis(ax)
        ax.set_xlabel("time of day")
        ax.set_ylabel("bikes docked")
        ax.legend(loc="upper left", ncols=2)
        return png_bytes(fig)


def hospital_waits(run: RunFolder) -> bytes:
    """Mean wait per window by hour of the visit, and the day's mean, median, p90 and max."""
    hourly = run.series["hospital_waits_by_hour.csv"]
    day = run.series["hospital_waits.csv"]
    windows = [w for w in ("registration", "consultation", "pharmacy") if w in set(day["window"])]
    colours = dict(
        zip(
            ("registration", "consultation", "pharmacy"),
            ("#1f77b4", "#ff7f0e", "#2ca02c"),
            strict=True,
        )
    )
    margins = {"left": 0.07, "wspace": 0.22, "top": 0.88}
    with figure(WIDE, cols=2, margins=margins, width_ratios=(3, 2)) as (fig, axes):
        left, right = axes
        fig.suptitle("Hospital windows: how long patients wait", fontweight="bold")
        if day.empty:
            no_data(left, "no patients")
            no_data(right, "no patients")
            return png_bytes(fig)
        for window in windows:
            rows = hourly[hourly["window"] == window]
            left.plot(
                rows["hour"] + 0.5,
                rows["wait_mean_s"] / 60.0,
                marker="o",
                markersize=3,
                color=colours[window],
                label=window,
            )
        hours = hourly["hour"].to_numpy()
        time_of_day_axis(left)
        left.set_xlim(max(0, hours.min() - 1), min(24, hours.max() + 2))
        left.set_xlabel("hour the patient registered")
        left.set_ylabel("mean wait (minutes)")
        left.set_title("by hour: mean wait", fontsize=10, fontweight="normal")
        right.set_title("whole day, per window", fontsize=10, fontweight="normal")
        left.legend(loc="upper right")
        _wait_bars(right, day.set_index("window").loc[windows], colours)
        return png_bytes(fig)


def _wait_bars(ax: Axes, day: pd.DataFrame, colours: dict[str, str]) -> None:
    stats = (
        ("wait_mean_s", "mean"),
        ("wait_p50_s", "median"),
        ("wait_p90_s", "p90"),
        ("wait_max_s", "max"),
    )
    x = np.arange(len(stats))
    width = 0.8 / max(len(day), 1)
    for k, (window, row) in enumerate(day.iterrows()):
        ax.bar(
            x + (k - (len(day) - 1) / 2) * width,
            [row[c] / 60.0 for c, _ in stats],
            width=width,
            color=colours[str(window)],
            label=str(window),
        )
    ax.set_xticks(x, [label for _, label in stats])
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("wait over the whole day (minutes)")
    ax.set_xlabel("statistic over all patients")


@dataclass(frozen=True)
class PlotSpec:
    """A plot the report knows: what it needs and how to draw it."""

    name: str
    title: str
    caption: str
    needs: tuple[str, ...]
    """Series tables (series/NAME) it is drawn from; the run's own files are always there."""
    draw: Callable[[RunFolder], bytes]


PLOTS = (
    PlotSpec(
        "transactions_per_hour.png",
        "Transactions per hour",
        "Records per hour of the tap, stacked by domain (top-ups included).",
        (),
        transactions_per_hour,
    ),
    PlotSpec(
        "clearing.png",
        "Clearing queue and utilisation",
        "Upload batches waiting for a clearing worker and the share of worker time busy, "
        "per 5-minute bin.",
        ("clearing.csv",),
        clearing_day,
    ),
    PlotSpec(
        "latency_cdf.png",
        "Tap to cleared",
        "Cumulative share of records cleared within a given time of the tap.",
        ("latency_quantiles.csv",),
        latency_cdf,
    ),
    PlotSpec(
        "net_settlement.png",
        "Net settlement",
        "Net position of each participant group after fees; the positions sum to zero.",
        (),
        net_settlement,
    ),
    PlotSpec(
        "balances.png",
        "Card balances",
        "Distribution of card balances in the morning and after the day.",
        ("balances.csv",),
        balances,
    ),
    PlotSpec(
        "bike_stock.png",
        "Bike stock",
        "Bikes docked, minute by minute, at the stations that spent longest empty or full.",
        ("bike_stock.csv",),
        bike_stock,
    ),
    PlotSpec(
        "hospital_waits.png",
        "Hospital waits",
        "Waits for registration, consultation and pharmacy windows over all hospitals.",
        ("hospital_waits.csv", "hospital_waits_by_hour.csv"),
        hospital_waits,
    ),
)


def run_plots(run: RunFolder) -> tuple[list[Plot], list[str]]:
    """Every plot the folder's tables allow, and a note for each one they do not."""
    plots, missing = [], []
    for spec in PLOTS:
        absent = [name for name in spec.needs if name not in run.series]
        if absent:
            missing.append(f"{spec.title}: series/{', series/'.join(absent)} not in the folder")
            continue
        plots.append(Plot(spec.name, spec.title, spec.caption, spec.draw(run)))
    return plots, missing
