"""The e-purse on each card: balances, top-ups when low, declines when short. Vectorized.

Each card's taps are decided in time order, as the card itself would. Cardholders who top up
do so before a tap that would leave them below the threshold: with fixed top-up amounts the
number of top-ups made before tap i is a running maximum over the card's taps, so the whole
day is decided without a Python loop. Cardholders who never top up are declined when short;
a declined tap changes nothing, so their decisions are settled by repeatedly declining each
card's first failing tap until none fails (as many rounds as a card has declines).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.scenario import Population

INSUFFICIENT = 1
"""Decline reason: the purse could not cover the tap."""
HOTLISTED = 2
"""Decline reason: the terminal had the card on its hotlist."""


@dataclass
class PurseDay:
    """What the purses decided for the day's taps (arrays indexed like the input taps)."""

    accepted: np.ndarray
    decline_reason: np.ndarray
    balance_after_fen: np.ndarray
    """After the tap (and any top-up just before it); meaningful for accepted purse taps."""
    topup_fen: np.ndarray
    """Loaded onto the card just before this tap (0 for most taps)."""
    final_balance_fen: np.ndarray
    """Per card, at the end of the day."""


def segment_starts(card: np.ndarray) -> np.ndarray:
    """Index of the first entry of each entry's card segment (input sorted by card)."""
    first = np.r_[True, card[1:] != card[:-1]] if len(card) else np.empty(0, bool)
    return np.maximum.accumulate(np.where(first, np.arange(len(card)), 0))


def exclusive_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per segment, the sum of the entries before each entry (sorted by segment)."""
    total = np.cumsum(values) - values
    return total - total[starts]


def decide(
    card: np.ndarray,
    amount: np.ndarray,
    need: np.ndarray,
    pre_declined: np.ndarray,
    balance0: np.ndarray,
    tops_up: np.ndarray,
    pop: Population,
) -> PurseDay:
    """Decide every purse tap. Inputs are sorted by (card, time); `balance0` is per card."""
    n = len(card)
    accepted = ~pre_declined
    reason = np.where(pre_declined, HOTLISTED, 0).astype(np.uint8)
    topup = np.zeros(n, np.int64)
    after = np.zeros(n, np.int64)
    toppers = tops_up[card]
    for mask, rule in ((toppers, _with_topups), (~toppers, _without_topups)):
        idx = np.flatnonzero(mask & ~pre_declined)
        ok, bal, load = rule(card[idx], amount[idx], need[idx], balance0, pop)
        accepted[idx] = ok
        reason[idx[~ok]] = INSUFFICIENT
        after[idx], topup[idx] = bal, load
    spent = np.zeros(len(balance0), np.int64)
    np.add.at(spent, card[accepted], amount[accepted])
    loaded = np.zeros(len(balance0), np.int64)
    np.add.at(loaded, card, topup)
    return PurseDay(accepted, reason, after, topup, balance0 + loaded - spent)


def _with_topups(
    card: np.ndarray, amount: np.ndarray, need: np.ndarray, balance0: np.ndarray, pop: Population
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top up by whole top-up amounts until the balance covers max(threshold, need)."""
    if len(card) == 0:
        return np.empty(0, bool), np.empty(0, np.int64), np.empty(0, np.int64)
    starts = segment_starts(card)
    spent_before = exclusive_cumsum(amount, starts)
    step = pop.topup_amount_fen
    target = np.maximum(need, pop.topup_threshold_fen)
    shortfall = target + spent_before - balance0[card]
    wanted = np.maximum(0, -(-shortfall // step))  # ceil division, none when not short
    # Running max within each card: shift every card's values above all earlier cards'.
    offset = (np.cumsum(np.r_[True, card[1:] != card[:-1]]) - 1) * (int(wanted.max()) + 1)
    topups = np.maximum.accumulate(wanted + offset) - offset
    previous = np.where(starts == np.arange(len(card)), 0, np.r_[0, topups[:-1]])
    load = (topups - previous) * step
    balance = balance0[card] + topups * step - spent_before - amount
    return np.ones(len(card), bool), balance, load


def _without_topups(
    card: np.ndarray, amount: np.ndarray, need: np.ndarray, balance0: np.ndarray, pop: Population
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decline a tap when the balance before it is below its need; declines spend nothing."""
    ok = np.ones(len(card), bool)
    starts = segment_starts(card)
    while True:
        spent_before = exclusive_cumsum(np.where(ok, amount, 0), starts)
        failing = ok & (balance0[card] - spent_before < need)
        if not failing.any():
            break
        # Decline only each card's first failing tap; later ones are re-decided next round.
        first = failing & (exclusive_cumsum(failing.astype(np.int64), starts) == 0)
        ok &= ~first
    balance = balance0[card] - spent_before - np.where(ok, amount, 0)
    return ok, balance, np.zeros(len(card), np.int64)
