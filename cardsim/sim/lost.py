"""Lost cards and the hotlist: what a finder can spend before terminals learn of the loss.

A cardholder reports a lost card at once; the clearing centre adds it to the hotlist, which an
offline terminal receives at its next refresh. Until then the terminal accepts the card: that
window is the exposure planners trade against the refresh interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardsim.records.codes import Kind
from cardsim.scenario import Scenario
from cardsim.sim.demand import DAYTIME, draw_times_s, profile
from cardsim.sim.pos import lognormal_fen
from cardsim.sim.taps import Taps, make_taps


@dataclass
class LostCards:
    """Cards reported lost today and when their entry reaches the terminals."""

    card: np.ndarray
    lost_s: np.ndarray
    hotlisted_s: np.ndarray
    """When terminals have the card on their hotlist (next refresh after the report)."""

    def hotlisted_at(self, card: np.ndarray, time_s: np.ndarray, n_cards: int) -> np.ndarray:
        """Per tap: is the card on the terminal's hotlist at that time?"""
        when = np.full(n_cards, np.inf)
        when[self.card] = self.hotlisted_s
        return time_s >= when[card]

    def holder_gone(self, card: np.ndarray, time_s: np.ndarray, n_cards: int) -> np.ndarray:
        """Per tap: did the holder already lose this card (so the holder cannot tap)?"""
        when = np.full(n_cards, np.inf)
        when[self.card] = self.lost_s
        return time_s >= when[card]


def lose_cards(scenario: Scenario, n_cards: int, rng: np.random.Generator) -> LostCards:
    """Which cards get lost today and when the hotlist catches up with them."""
    count = int(rng.binomial(n_cards, scenario.population.lost_share))
    card = np.sort(rng.choice(n_cards, size=count, replace=False)) if count else np.empty(0, int)
    lost = draw_times_s(count, profile(DAYTIME, 1.0), rng)
    refresh = scenario.terminals.hotlist_refresh_s
    return LostCards(card.astype(np.int64), lost, np.ceil(lost / refresh) * refresh)


def finder_taps(
    lost: LostCards, shops: np.ndarray, scenario: Scenario, rng: np.random.Generator
) -> Taps:
    """Purchases by finders of lost cards, at shops, in the hours after the loss."""
    uses = rng.random(len(lost.card)) < scenario.population.finder_use_share
    counts = np.where(uses, 1 + rng.poisson(2.0, len(lost.card)), 0)
    card = np.repeat(lost.card, counts)
    start = np.repeat(lost.lost_s, counts)
    # Finders spend soon, before the owner might get the card back: half an hour on average.
    time_s = start + rng.exponential(1_800.0, len(card))
    keep = time_s < 86_400.0
    card, time_s = card[keep], time_s[keep]
    amount = lognormal_fen(len(card), 3_000, 0.6, rng)
    terminal = shops[rng.integers(0, len(shops), len(card))]
    return make_taps(card, time_s, terminal, Kind.DEBIT, amount)
