"""The settlement by participant group: hundreds of payees read best as a dozen groups.

Sums stay int64 fen. A participant the groups table does not know (a log settled from
elsewhere) lands in "other payees", so every fen of settlement.csv is in exactly one row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cardsim.report.formats import yuan

GROUP_LABELS = {
    "issuer_float": "issuer float",
    "fee_income": "fee income",
    "insurance_fund": "insurance fund",
    "bus": "bus companies",
    "bike": "bike operator",
    "hospital": "hospitals",
    "pos_shops": "shops",
    "pos_supermarkets": "supermarkets",
    "pos_pharmacies": "pharmacies",
    "pos_taxis": "taxis",
    "pos_parking": "parking",
    "topup_kiosk": "top-up kiosks",
    "topup_bank": "top-up banks",
    "topup_online": "online top-up",
    "payee": "payees",
}
"""Readable names of the groups in series/participants.csv (and of settlement.csv roles)."""
MONEY = ("received_fen", "paid_fen", "fee_fen", "net_fen")


def by_group(settlement: pd.DataFrame, participants: pd.DataFrame | None) -> pd.DataFrame:
    """One row per group: label, participants, and the four money columns summed in fen."""
    frame = settlement.copy()
    if participants is not None:
        names = dict(zip(participants["participant"], participants["group"], strict=True))
        frame["group"] = [names.get(p, "other payees") for p in frame["participant"].tolist()]
    else:
        frame["group"] = frame["role"]
    for column in MONEY:
        frame[column] = frame[column].astype(np.int64)
    order = {name: k for k, name in enumerate(GROUP_LABELS)}
    table = (
        frame.groupby("group", sort=False)
        .agg(participants=("participant", "size"), **{c: (c, "sum") for c in MONEY})
        .reset_index()
    )
    table["order"] = [order.get(g, len(order)) for g in table["group"]]
    table = table.sort_values(["order", "group"], kind="stable").drop(columns="order")
    table["label"] = [
        f"{GROUP_LABELS.get(g, g)} ({n:,})" if n > 1 else GROUP_LABELS.get(g, g)
        for g, n in zip(table["group"], table["participants"], strict=True)
    ]
    return table.reset_index(drop=True)


def settlement_rows(table: pd.DataFrame) -> list[dict[str, str]]:
    """The group table as report cells (yuan, exact) with a total row last."""
    rows = [
        {"label": str(r["label"]), "participants": f"{int(r['participants']):,}"}
        | {c: yuan(int(r[c])) for c in MONEY}
        for _, r in table.iterrows()
    ]
    total = {c: yuan(int(table[c].sum())) for c in MONEY}
    rows.append({"label": "total", "participants": f"{int(table['participants'].sum()):,}"} | total)
    return rows
