"""What the report page shows for a `cardsim run` folder, as plain values for the template."""

from __future__ import annotations

from typing import Any

from cardsim.report.folder import RunFolder
from cardsim.report.formats import kpi_value, number, unit_of, yuan
from cardsim.report.plots import Plot
from cardsim.report.series import WINDOWS
from cardsim.report.settlement import by_group, settlement_rows

KPI_MEANINGS = {
    "transactions_total": "records in the day's signed log (taps accepted plus top-ups)",
    "taps_total": "card taps at terminals, accepted or declined",
    "records_booked": "records the clearing centre booked into the day's settlement",
    "records_rejected": "records refused by a settlement rule (see rejects)",
    "records_pending": "records uploaded after the cut-off: settled the next day",
    "declines_total": "taps the card or terminal refused (short balance, hotlist, bike minimum)",
    "declines_insufficient_balance": "declines because the purse could not cover the fare",
    "declines_hotlisted": "declines of lost cards already on the terminal's hotlist",
    "cards_issued": "new cards issued today that became usable",
    "cards_lost": "cards reported lost today",
    "hotlist_exposure_fen": "spent on lost cards before the hotlist reached the terminal",
    "bike_failed_rentals": "rental requests that found no bike (after trying neighbours)",
    "bike_failed_return_attempts": "returns that found the station full and rode on",
    "hospital_registration_wait_mean_s": "mean wait for a hospital registration window",
    "upload_failed_attempts": "terminal upload attempts that failed and were retried",
    "batches": "upload batches received by the clearing centre",
    "clearing_utilization": "share of clearing worker time spent serving batches",
    "clearing_wait_mean_s": "mean wait of a batch for a clearing worker",
    "clearing_wait_mean_s_ci95": "95 % confidence half-width of that mean (batch means)",
    "tap_to_cleared_p50_s": "median time from tap to cleared",
    "tap_to_cleared_p95_s": "95th percentile of the time from tap to cleared",
    "tap_to_cleared_p99_s": "99th percentile of the time from tap to cleared",
    "backlog_at_cutoff_records": "records received but not yet cleared at the cut-off",
    "net_positions_sum_fen": "sum of all net positions: must be 0",
}
CONSERVATION_CHECKS = {
    "money_conserved": "money loaded = closing balances + debits booked, pending and rejected",
    "records_in_one_place": "every record booked, pending or rejected, exactly once",
    "net_positions_sum_to_zero": "net settlement positions sum to zero",
}


def run_context(run: RunFolder, plots: list[Plot], missing: list[str]) -> dict[str, Any]:
    """Every value the template shows for a run, already formatted."""
    doc = run.summary
    scenario = doc["scenario"]
    settled = doc.get("settlement", {})
    return {
        "kind": "run",
        "title": f"cardsim run: {scenario.get('name', '?')}",
        "scenario": {k: scenario.get(k, "") for k in ("name", "description", "date")},
        "seed": doc["seed"],
        "version": doc.get("cardsim_version", "?"),
        "glance": _glance(doc),
        "scenario_rows": _flatten(scenario),
        "kpis": [
            {
                "name": k,
                "value": kpi_value(k, v),
                "unit": unit_of(k),
                "meaning": KPI_MEANINGS.get(k, ""),
            }
            for k, v in doc["kpis"].items()
        ],
        "settlement_groups": settlement_rows(
            by_group(run.settlement, run.series.get("participants.csv"))
        ),
        "outcomes": [(k, number(v)) for k, v in settled.get("outcomes", {}).items()],
        "rejects": _rejects(run),
        "alerts": [(k, number(v)) for k, v in settled.get("alerts", {}).items()],
        "conservation": _conservation(doc["conservation"]),
        "hospital": _hospital(run),
        "plots": [
            {"name": p.name, "title": p.title, "caption": p.caption, "png": p.png} for p in plots
        ],
        "missing": missing,
    }


def _glance(doc: dict[str, Any]) -> list[tuple[str, str]]:
    k, sc = doc["kpis"], doc["scenario"]
    return [
        ("cards", number(sc["population"]["cards"])),
        ("transactions", number(k["transactions_total"])),
        ("booked", number(k["records_booked"])),
        ("pending", number(k["records_pending"])),
        ("rejected", number(k["records_rejected"])),
        ("declines", number(k["declines_total"])),
        ("clearing workers", number(sc["clearing"]["workers"])),
        ("money conserved", "yes" if doc["conservation"]["money_conserved"] else "NO"),
    ]


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Scenario fields as (dotted.key, value) rows, in the scenario's own order."""
    rows: list[tuple[str, str]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", str(value)))
    return rows


def _rejects(run: RunFolder) -> list[dict[str, str]]:
    """Records not booked, by reason: how many and how much money."""
    frame = run.rejects
    if frame.empty:
        return []
    table = frame.groupby("reason_name", observed=True, sort=True)["amount_fen"].agg(
        ["size", "sum"]
    )
    return [
        {"reason": str(reason), "records": number(int(row["size"])), "amount": yuan(row["sum"])}
        for reason, row in table.iterrows()
    ]


def _conservation(c: dict[str, Any]) -> dict[str, Any]:
    checks = [
        {"name": name, "meaning": meaning, "ok": bool(c.get(name))}
        for name, meaning in CONSERVATION_CHECKS.items()
    ]
    money = [
        (name.removesuffix("_fen").replace("_", " "), yuan(value))
        for name, value in c.items()
        if name.endswith("_fen")
    ]
    return {"checks": checks, "money": money, "all_ok": all(x["ok"] for x in checks)}


def _hospital(run: RunFolder) -> list[dict[str, str]]:
    table = run.series.get("hospital_waits.csv")
    if table is None:
        return []
    order = {w: k for k, w in enumerate(WINDOWS)}
    table = table.sort_values("window", key=lambda c: c.map(order), kind="stable")
    return [
        {"window": str(r["window"]), "patients": number(int(r["patients"]))}
        | {
            c: number(float(r[c]))
            for c in ("wait_mean_s", "wait_p50_s", "wait_p90_s", "wait_max_s")
        }
        for _, r in table.iterrows()
    ]
