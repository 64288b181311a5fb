"""The city's fixed parts: cardholders, terminals, payees and keys, built from the scenario.

Everything random comes from one seed through `SeedSequence.spawn`, one named stream per
component, so adding draws to one component never shifts another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsim.records.codes import FIRST_PAYEE, Domain
from cardsim.records.keys import KeyRegistry, TerminalKey
from cardsim.scenario import Scenario

STREAMS = (
    "keys",
    "cards",
    "issuance",
    "bus",
    "bike",
    "hospital",
    "pos",
    "lost",
    "purse",
    "uploads",
    "clearing",
    "finder",
)
"""Named random streams; the order is part of the determinism contract (append only)."""

CARD_TYPES = ("full_function", "standard", "student", "senior")
CHANNELS = ("kiosk", "bank", "online")
POS_CATEGORIES = ("shops", "supermarkets", "pharmacies", "taxis", "parking")
DAY_START_MS = 1_782_835_200_000
"""2026-07-01 00:00 UTC in ms since the epoch: the simulated day starts here."""


@dataclass
class Terminals:
    """Every terminal of the city: its domain, its payee, how it uploads."""

    domain: np.ndarray
    payee: np.ndarray
    cellular: np.ndarray
    """True: uploads every few minutes over cellular; False: at the depot after each shift."""
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    """Terminal indices by role: bus, bike, hospital_registration, pos_shops, topup_kiosk..."""

    def ids(self, index: np.ndarray) -> np.ndarray:
        """Terminal ids (1-based, as written into records) of terminal indices."""
        return np.asarray(index, np.int64) + 1


@dataclass
class Cards:
    """The cardholders at the start of the day."""

    card_type: np.ndarray
    """Index into CARD_TYPES."""
    balance_fen: np.ndarray
    tops_up: np.ndarray
    channel: np.ndarray
    """Index into CHANNELS."""
    counter: np.ndarray
    """Card transaction counter before the day's first transaction."""

    def __len__(self) -> int:
        return len(self.card_type)


@dataclass
class World:
    """Scenario, random streams, cardholders, terminals and the clearing centre's keys."""

    scenario: Scenario
    seed: int
    streams: dict[str, np.random.Generator]
    cards: Cards
    terminals: Terminals
    registry: KeyRegistry
    terminal_keys: list[Ed25519PrivateKey]


def build_world(scenario: Scenario, seed: int) -> World:
    """The fixed city for one run."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    streams = {name: np.random.default_rng(s) for name, s in zip(STREAMS, children, strict=True)}
    cards = _cards(scenario, streams["cards"])
    terminals = _terminals(scenario)
    keys, registry = _keys(len(terminals.domain), streams["keys"])
    return World(scenario, seed, streams, cards, terminals, registry, keys)


def extend_cards(world: World, count: int) -> np.ndarray:
    """Add the day's newly issued cards (full-function, preloaded with one top-up amount);
    returns their indices. Their keys are derived from the master key like every card's."""
    pop = world.scenario.population
    cards = world.cards
    start = len(cards)
    cards.card_type = np.r_[cards.card_type, np.full(count, 0, np.int8)]
    cards.balance_fen = np.r_[cards.balance_fen, np.full(count, pop.topup_amount_fen, np.int64)]
    cards.tops_up = np.r_[cards.tops_up, np.ones(count, bool)]
    cards.channel = np.r_[cards.channel, np.zeros(count, np.int8)]
    cards.counter = np.r_[cards.counter, np.zeros(count, np.int64)]
    return np.arange(start, start + count)


def _cards(scenario: Scenario, rng: np.random.Generator) -> Cards:
    pop = scenario.population
    n = pop.cards
    shares = [getattr(pop.card_types, t) for t in CARD_TYPES]
    channel_shares = [getattr(pop.topup_channels, c) for c in CHANNELS]
    balance = np.minimum(rng.exponential(pop.initial_balance_mean_fen, n), pop.max_balance_fen)
    return Cards(
        card_type=rng.choice(len(CARD_TYPES), size=n, p=shares).astype(np.int8),
        balance_fen=balance.astype(np.int64),
        tops_up=rng.random(n) < pop.topup_share,
        channel=rng.choice(len(CHANNELS), size=n, p=channel_shares).astype(np.int8),
        counter=rng.integers(0, 500, n).astype(np.int64),
    )


def _terminals(scenario: Scenario) -> Terminals:
    """Terminal indices by role, and the payee each one credits."""
    roles: list[tuple[str, int, Domain, bool, np.ndarray]] = []
    payee = FIRST_PAYEE
    bus_payees = payee + np.arange(scenario.bus.vehicles) % 3  # three bus companies
    roles.append(
        ("bus", scenario.bus.vehicles, Domain.BUS, scenario.bus.upload == "cellular", bus_payees)
    )
    payee += 3
    roles.append(
        ("bike", scenario.bike.stations, Domain.BIKE, True, np.full(scenario.bike.stations, payee))
    )
    payee += 1
    hospitals = payee + np.arange(scenario.hospital.hospitals)
    roles.append(
        ("hospital_registration", scenario.hospital.hospitals, Domain.HOSPITAL, True, hospitals)
    )
    roles.append(
        ("hospital_pharmacy", scenario.hospital.hospitals, Domain.HOSPITAL, True, hospitals)
    )
    payee += scenario.hospital.hospitals
    for category in POS_CATEGORIES:
        count = getattr(scenario.pos, category).merchants
        roles.append((f"pos_{category}", count, Domain.POS, True, payee + np.arange(count)))
        payee += count
    kiosks = max(1, scenario.population.cards // 2_000)
    roles.append(("topup_kiosk", kiosks, Domain.TOPUP, True, np.full(kiosks, payee)))
    banks = max(1, scenario.population.cards // 5_000)
    roles.append(("topup_bank", banks, Domain.TOPUP, True, payee + 1 + np.arange(banks) % 3))
    roles.append(("topup_online", 1, Domain.TOPUP, True, np.full(1, payee + 4)))
    groups, start = {}, 0
    for name, count, *_ in roles:
        groups[name] = np.arange(start, start + count)
        start += count
    return Terminals(
        domain=np.concatenate([np.full(c, d, np.uint8) for _, c, d, _, _ in roles]),
        payee=np.concatenate([p.astype(np.uint32) for *_, p in roles]),
        cellular=np.concatenate([np.full(c, cell) for _, c, _, cell, _ in roles]),
        groups=groups,
    )


def _keys(n: int, rng: np.random.Generator) -> tuple[list[Ed25519PrivateKey], KeyRegistry]:
    """Terminal signing keys (private keys stay in the simulation) and the clearing registry."""
    registry = KeyRegistry(master_key=rng.bytes(16))
    keys = [Ed25519PrivateKey.from_private_bytes(rng.bytes(32)) for _ in range(n)]
    for i, key in enumerate(keys):
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        registry.add(TerminalKey(key_id=i + 1, terminal_id=i + 1, public_key=public))
    return keys, registry
