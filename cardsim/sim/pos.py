"""Retail POS: shops, supermarkets, pharmacies, taxis and parking, each its own amounts."""

from __future__ import annotations

import numpy as np

from cardsim.records.codes import Kind
from cardsim.scenario import Merchants, Pos
from cardsim.sim.demand import DAYTIME, draw_times_s, poisson_count, profile
from cardsim.sim.taps import Taps, concat_taps, make_taps
from cardsim.sim.world import CARD_TYPES, POS_CATEGORIES

ONLINE_FLAG = 0x0001
FULL_FUNCTION = CARD_TYPES.index("full_function")


def lognormal_fen(n: int, median_fen: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Amounts in whole fen, at least 1, with the given median and log-spread."""
    return np.maximum(1, np.round(median_fen * np.exp(sigma * rng.standard_normal(n)))).astype(
        np.int64
    )


def category_taps(
    cfg: Merchants,
    terminals: np.ndarray,
    card_type: np.ndarray,
    pos: Pos,
    volume: float,
    peak_multiplier: float,
    cap_fen: int,
    rng: np.random.Generator,
) -> Taps:
    """One category's purchases: offline up to the floor limit, or online for full-function
    cards (bit 0 of flags), which may go above it."""
    n = poisson_count(cfg.purchases * volume, rng)
    card = rng.integers(0, len(card_type), n)
    time_s = draw_times_s(n, profile(DAYTIME, peak_multiplier), rng)
    amount = lognormal_fen(n, cfg.median_fen, cfg.sigma, rng)
    online = (card_type[card] == FULL_FUNCTION) & (rng.random(n) < cfg.online_share)
    limit = np.where(online, cap_fen, min(pos.offline_limit_fen, cap_fen))
    amount = np.minimum(amount, limit)
    terminal = terminals[rng.integers(0, len(terminals), n)]
    return make_taps(
        card, time_s, terminal, Kind.DEBIT, amount, flags=np.where(online, ONLINE_FLAG, 0)
    )


def pos_taps(
    pos: Pos,
    groups: dict[str, np.ndarray],
    card_type: np.ndarray,
    volume: float,
    peak_multiplier: float,
    cap_fen: int,
    rng: np.random.Generator,
) -> Taps:
    """All retail categories of the day."""
    return concat_taps(
        [
            category_taps(
                getattr(pos, c),
                groups[f"pos_{c}"],
                card_type,
                pos,
                volume,
                peak_multiplier,
                cap_fen,
                rng,
            )
            for c in POS_CATEGORIES
        ]
    )
