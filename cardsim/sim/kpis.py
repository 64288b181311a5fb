"""The day's figures: KPIs, money conservation, and tables by domain and by hour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cardsim.records.codes import Domain
from cardsim.settlement.reasons import BOOKED, PENDING
from cardsim.sim.accounting import purse_money
from cardsim.sim.city import Day
from cardsim.sim.purse import HOTLISTED, INSUFFICIENT
from cardsim.sim.queueing import batch_means, mean_ci95
from cardsim.sim.world import DAY_START_MS

DAY_S = 86_400.0


def kpis(day: Day) -> dict[str, Any]:
    """The KPIs every run reports (summary.json `kpis`)."""
    counts = day.settlement.counts()
    clearing = day.clearing
    waits = clearing.wait_s
    wait_mean, wait_ci = (
        mean_ci95(batch_means(waits, 20))
        if len(waits) >= 40
        else (float(waits.mean()) if len(waits) else 0.0, float("nan"))
    )
    latency = day.cleared_s - day.tap_time_s
    finite = latency[np.isfinite(latency)]
    cutoff_s = day.world.scenario.clearing.cutoff_s
    return {
        "transactions_total": len(day.log.records),
        "taps_total": len(day.taps),
        "records_booked": counts["booked"],
        "records_rejected": counts["rejected"],
        "records_pending": counts["pending"],
        "declines_total": int((~day.purse.accepted).sum()) + day.bike.declined_min_balance,
        "declines_insufficient_balance": int((day.purse.decline_reason == INSUFFICIENT).sum()),
        "declines_hotlisted": int((day.purse.decline_reason == HOTLISTED).sum()),
        "cards_issued": day.cards_issued,
        "cards_lost": len(day.lost.card),
        "hotlist_exposure_fen": int(day.taps.amount_fen[day.finder & day.purse.accepted].sum()),
        "bike_failed_rentals": int((~day.bike.result.rented).sum()),
        "bike_failed_return_attempts": int(day.bike.result.failed_return_attempts.sum()),
        "hospital_registration_wait_mean_s": _mean(
            [r.registration_wait_s for r in day.hospital.results]
        ),
        "upload_failed_attempts": day.uploads.failed_attempts,
        "batches": len(day.log.batches),
        "clearing_utilization": round(float(clearing.utilization), 6),
        "clearing_wait_mean_s": round(float(wait_mean), 6),
        "clearing_wait_mean_s_ci95": round(float(wait_ci), 6),
        "tap_to_cleared_p50_s": _pct(finite, 50),
        "tap_to_cleared_p95_s": _pct(finite, 95),
        "tap_to_cleared_p99_s": _pct(finite, 99),
        "backlog_at_cutoff_records": _backlog(day, cutoff_s),
        "net_positions_sum_fen": int(day.settlement.positions["net_fen"].sum()),
    }


def _mean(parts: list[np.ndarray]) -> float:
    values = np.concatenate(parts) if parts else np.empty(0)
    values = values[np.isfinite(values)]
    return round(float(values.mean()), 3) if len(values) else 0.0


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def _backlog(day: Day, cutoff_s: float) -> int:
    """Records that reached the clearing centre by the cut-off but were not yet cleared."""
    arrived = (day.log.batches["uploaded_ms"][day.log.batch_row] - DAY_START_MS) / 1000.0
    waiting = (arrived <= cutoff_s) & ~(day.cleared_s <= cutoff_s)
    return int(waiting.sum())


def conservation(day: Day) -> dict[str, Any]:
    """Money loaded onto cards = balances + debits, split by where each record ended."""
    cards = day.world.cards
    start = int(cards.balance_fen.sum())
    # Each genuine record once (repeated uploads aside), plus what crashes lost and torn
    # debits still on cards: see sim/accounting.py.
    money = purse_money(day)
    loads = money["loads"]
    by_place = {name: money[name] for name in ("booked", "pending", "rejected")}
    elsewhere = money["lost"] + money["on_card"]
    balances = int(day.purse.final_balance_fen.sum())
    counts = day.settlement.counts()
    return {
        "money_loaded_fen": start + loads,
        "opening_balances_fen": start,
        "loads_fen": loads,
        "closing_balances_fen": balances,
        "debits_booked_fen": by_place["booked"],
        "debits_pending_fen": by_place["pending"],
        "debits_rejected_fen": by_place["rejected"],
        "money_conserved": start + loads == balances + sum(by_place.values()) + elsewhere,
        "records_in_one_place": counts["booked"] + counts["pending"] + counts["rejected"]
        == counts["records"],
        "net_positions_sum_to_zero": int(day.settlement.positions["net_fen"].sum()) == 0,
    }


def by_domain(day: Day) -> pd.DataFrame:
    """Records, amounts and outcomes per domain."""
    rec, outcome = day.log.records, day.settlement.outcome
    frame = pd.DataFrame(
        {
            "domain": _domain_names(rec["domain"]),
            "amount_fen": rec["amount_fen"],
            "booked": outcome == BOOKED,
            "pending": outcome == PENDING,
        }
    )
    table = frame.groupby("domain", sort=True, observed=True).agg(
        records=("amount_fen", "size"),
        amount_fen=("amount_fen", "sum"),
        booked=("booked", "sum"),
        pending=("pending", "sum"),
    )
    return table.reset_index()


def by_hour(day: Day) -> pd.DataFrame:
    """Records per hour of the tap, per domain (columns), for load curves."""
    rec = day.log.records
    hour = np.minimum((day.tap_time_s // 3600).astype(np.int64), 23)
    frame = pd.DataFrame({"hour": hour, "domain": _domain_names(rec["domain"])})
    table = frame.groupby(["hour", "domain"], observed=True).size().unstack(fill_value=0)
    return table.reindex(range(24), fill_value=0).rename_axis("hour").reset_index()


def _domain_names(domain: np.ndarray) -> pd.Categorical[str]:
    """Domain names per record without a Python loop per record."""
    names = ["?"] * (max(Domain) + 1)
    for d in Domain:
        names[d] = d.name.lower()
    return pd.Categorical.from_codes(domain.astype(np.int64), categories=pd.Index(names))
