"""The day's series that the plots need and the run's other files do not hold.

`write_series(day, folder)` writes small tables into DIR/series/, so that the plots and the
report can be rebuilt from the run's folder alone. Long series are reduced first (queue and
worker occupancy per 5-minute bin, latency as 1,001 quantiles, balances as a histogram, bike
stock on a one-minute grid at a few stations), which keeps the tables a few hundred KB even
at metro scale. Money stays int64 fen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cardsim.records.codes import Participant
from cardsim.report.steps import bin_average, bin_maximum, level_at, steps_from_deltas
from cardsim.sim.bike import BikeConfig, BikeResult
from cardsim.sim.city import Day
from cardsim.sim.clearing import ClearingResult

SERIES = "series"
"""Folder of the series tables inside a run folder."""
BIN_S = 300.0
"""Width of the clearing bins, s."""
DAY_S = 86_400.0
STOCK_STEP_S = 60.0
"""Grid on which bike stock is sampled, s."""
STATIONS_SHOWN = 4
"""Bike stations whose stock is kept: those that spent longest empty or full."""
BALANCE_BINS = 40
"""Histogram bins up to the 99th percentile of balances; one more bin holds the rest."""
QUANTILES = np.linspace(0.0, 1.0, 1001)
"""Quantile levels of the tap-to-cleared latency table (the CDF's resolution)."""
WINDOWS = ("registration", "consultation", "pharmacy")


def write_series(day: Day, folder: Path) -> None:
    """Write every series table into folder/series/."""
    out = folder / SERIES
    out.mkdir(exist_ok=True)
    workers = day.world.scenario.clearing.workers
    waits_day, waits_by_hour = hospital_waits(day)
    tables = {
        "clearing.csv": clearing_bins(day.clearing, workers),
        "latency_quantiles.csv": latency_quantiles(day.cleared_s - day.tap_time_s),
        "balances.csv": balance_histogram(day.world.cards.balance_fen, day.purse.final_balance_fen),
        "bike_stock.csv": bike_stock(day.bike.result, _bike_config(day)),
        "hospital_waits.csv": waits_day,
        "hospital_waits_by_hour.csv": waits_by_hour,
        "participants.csv": participants(day),
    }
    for name, table in tables.items():
        table.to_csv(out / name, index=False, lineterminator="\n")


def clearing_bins(result: ClearingResult, workers: int) -> pd.DataFrame:
    """Per 5-minute bin: batches waiting (mean, max), workers busy (mean) and utilisation."""
    end = np.nanmax(result.end_s, initial=0.0)
    edges = np.arange(0.0, max(DAY_S, end) + BIN_S, BIN_S)
    queue_t, queue_n = result.queue_times_s, result.queue_lengths
    served = np.isfinite(result.start_s)
    busy_t, busy_n = steps_from_deltas(
        np.concatenate((result.start_s[served], result.end_s[served])),
        np.repeat([1, -1], served.sum()),
    )
    busy = bin_average(busy_t, busy_n, edges)
    return pd.DataFrame(
        {
            "bin_start_s": edges[:-1],
            "queue_mean_batches": np.round(bin_average(queue_t, queue_n, edges), 4),
            "queue_max_batches": bin_maximum(queue_t, queue_n, edges),
            "busy_workers_mean": np.round(busy, 4),
            "utilization": np.round(busy / workers, 4),
        }
    )


def latency_quantiles(latency_s: np.ndarray) -> pd.DataFrame:
    """Tap-to-cleared latency at 1,001 quantile levels (empty when nothing was cleared)."""
    finite = latency_s[np.isfinite(latency_s)]
    values = np.quantile(finite, QUANTILES) if len(finite) else np.zeros(0)
    levels = QUANTILES if len(finite) else np.zeros(0)
    return pd.DataFrame({"quantile": np.round(levels, 3), "latency_s": np.round(values, 3)})


def balance_histogram(opening_fen: np.ndarray, closing_fen: np.ndarray) -> pd.DataFrame:
    """Cards per balance bin at the start and at the end of the day, in integer fen.

    The bin width is a round number of fen (1, 2 or 5 times a power of ten) such that
    BALANCE_BINS bins reach the 99th percentile; the last row (`overflow` 1) counts every
    balance from its lower edge up.
    """
    both = np.concatenate((opening_fen, closing_fen)).astype(np.int64)
    top = int(np.quantile(both, 0.99, method="higher")) if len(both) else 0
    width = _round_width(max(top, 1) // BALANCE_BINS + 1)
    bins = min(BALANCE_BINS, top // width + 1) + 1
    low = np.arange(bins, dtype=np.int64) * width

    def count(balance: np.ndarray) -> np.ndarray:
        index = np.minimum(balance.astype(np.int64) // width, bins - 1)
        return np.bincount(index, minlength=bins)

    overflow = np.zeros(bins, np.int64)
    overflow[-1] = 1
    return pd.DataFrame(
        {
            "low_fen": low,
            "high_fen": low + width,
            "overflow": overflow,
            "cards_opening": count(opening_fen),
            "cards_closing": count(closing_fen),
        }
    )


def _round_width(at_least: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= at_least (fen)."""
    power = 1
    while True:
        for step in (1, 2, 5):
            if step * power >= at_least:
                return step * power
        power *= 10


def _bike_config(day: Day) -> BikeConfig:
    bike = day.world.scenario.bike
    return BikeConfig(stations=bike.stations, docks=bike.docks, initial_fill=bike.initial_fill)


def bike_stock(result: BikeResult, config: BikeConfig) -> pd.DataFrame:
    """Bikes docked, sampled every minute of the day (one column per station), at the
    stations that spent the longest empty or full (ties: larger swing, then lower number)."""
    grid = np.arange(0.0, DAY_S + STOCK_STEP_S, STOCK_STEP_S)
    samples = [
        level_at(times, levels, grid, config.initial_bikes)
        for times, levels in zip(result.stock_times_s, result.stock_levels, strict=True)
    ]
    extreme = np.array([np.sum((s == 0) | (s == config.docks)) for s in samples], np.int64)
    spread = np.array([np.ptp(s) for s in samples], np.int64)
    order = np.lexsort((np.arange(len(samples)), -spread, -extreme))
    chosen = np.sort(order[:STATIONS_SHOWN]).tolist()
    return pd.DataFrame({"time_s": grid} | {f"station_{k}": samples[k] for k in chosen})


def hospital_waits(day: Day) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Waits at each window over all hospitals: over the day, and by the hour the patient
    finished registering (the hour of her visit; arrival times are not kept)."""
    results = day.hospital.results
    hour = np.concatenate([r.registration_paid_s for r in results] or [np.zeros(0)]) // 3600
    parts = []
    for window in WINDOWS:
        wait = np.concatenate([getattr(r, f"{window}_wait_s") for r in results] or [np.zeros(0)])
        seen = np.isfinite(wait) & np.isfinite(hour)
        parts.append(pd.DataFrame({"window": window, "hour": hour[seen], "wait_s": wait[seen]}))
    waits = pd.concat(parts, ignore_index=True)
    waits["hour"] = waits["hour"].astype(np.int64)
    day_table = _wait_stats(waits, ["window"])
    hour_table = _wait_stats(waits, ["window", "hour"])
    return day_table, hour_table


def _wait_stats(waits: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    groups = waits.groupby(keys, sort=True)["wait_s"]
    table = pd.DataFrame(
        {
            "patients": groups.size(),
            "wait_mean_s": groups.mean(),
            "wait_p50_s": groups.quantile(0.5),
            "wait_p90_s": groups.quantile(0.9),
            "wait_max_s": groups.max(),
        }
    ).reset_index()
    return table.round(3)


def participants(day: Day) -> pd.DataFrame:
    """Who each participant is: the clearing system's own accounts and each payee's group
    (bus company, bike operator, hospital, merchant category, top-up channel)."""
    groups: dict[int, str] = {int(p): p.name.lower() for p in Participant}
    payee = day.world.terminals.payee
    for name, terminals in day.world.terminals.groups.items():
        group = "hospital" if name.startswith("hospital_") else name
        for p in np.unique(payee[terminals]).tolist():
            groups.setdefault(int(p), group)
    ids = sorted(groups)
    return pd.DataFrame({"participant": ids, "group": [groups[i] for i in ids]})
