"""One city day, end to end: taps, purses, records, uploads, the clearing queue, settlement.

`simulate_day(scenario, seed)` is deterministic: the same scenario and seed give the same
records, byte for byte. Stages report to an optional progress callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cardsim.records.codes import Domain, Kind
from cardsim.records.log import RecordLog
from cardsim.scenario import Scenario
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.params import SettlementParams
from cardsim.settlement.result import Settlement
from cardsim.sim import bus as bus_mod
from cardsim.sim.clearing import ClearingConfig, ClearingResult, poisson_arrivals, simulate_clearing
from cardsim.sim.injection import Injection, injects
from cardsim.sim.ledger import Transactions, build_records, card_counters, sign_log
from cardsim.sim.lost import LostCards, finder_taps, lose_cards
from cardsim.sim.pos import pos_taps
from cardsim.sim.purse import PurseDay, decide
from cardsim.sim.services import BikeDay, HospitalDay, bike_day, hospital_day, issuance_day
from cardsim.sim.taps import Taps, concat_taps, order_key
from cardsim.sim.uploads import Uploads, plan_uploads
from cardsim.sim.world import DAY_START_MS, POS_CATEGORIES, World, build_world, extend_cards

Stage = Callable[[str], None]
DAY_S = 86_400.0


@dataclass
class Day:
    """Everything a run produces, for the results writers and the tests."""

    world: World
    taps: Taps
    purse: PurseDay
    lost: LostCards
    bike: BikeDay
    hospital: HospitalDay
    cards_issued: int
    log: RecordLog
    tap_time_s: np.ndarray
    """Per log row: when the card was tapped (s after midnight)."""
    uploads: Uploads
    clearing: ClearingResult
    cleared_s: np.ndarray
    """Per log row: when its batch was cleared (np.nan in M/M/c mode)."""
    params: SettlementParams
    settlement: Settlement
    finder: np.ndarray
    """Per tap: made by the finder of a lost card."""
    records_written: int = 0
    """Records the terminals wrote (the accounting identity starts from it)."""
    injection: Injection | None = None
    """The day's faults and frauds, when the scenario asks for any."""


@dataclass
class Decided:
    """The day up to its records: who tapped where, what the purses decided."""

    world: World
    taps: Taps
    finder: np.ndarray
    purse: PurseDay
    lost: LostCards
    bike: BikeDay
    hospital: HospitalDay
    cards_issued: int
    records: np.ndarray
    """Records without TACs, sorted by (terminal, time): the fast and the reference model
    both start from these."""
    written_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    """Per record: when its terminal wrote it (s after midnight). The time field says the
    same unless a torn transaction was recovered later or a clock is wrong."""
    injection: Injection | None = None


def decide_day(scenario: Scenario, seed: int, say: Stage = lambda _name: None) -> Decided:
    """Issuance, demand, purses and records: everything before the uploads."""
    say("city")
    world = build_world(scenario, seed)
    inj = Injection(world) if injects(scenario) else None
    issued = issuance_day(world, world.streams["issuance"])
    usable = issued.usable_s[np.isfinite(issued.usable_s) & (issued.usable_s < DAY_S)]
    say("demand")
    # Cards that existed this morning shop, ride and fall ill all day; the day's new cards
    # join only once usable (bus rides), so every other domain draws before they exist.
    lost = lose_cards(scenario, len(world.cards), world.streams["lost"])
    bike = bike_day(world, world.streams["bike"])
    hospital = hospital_day(world, world.streams["hospital"])
    pos = pos_taps(
        scenario.pos,
        world.terminals.groups,
        world.cards.card_type,
        scenario.demand.volume_multiplier,
        scenario.demand.peak_multiplier,
        scenario.population.max_balance_fen - scenario.population.topup_amount_fen,
        world.streams["pos"],
    )
    new_cards = extend_cards(world, len(usable))
    taps, finder = _all_taps(world, new_cards, usable, lost, [bike.taps, hospital.taps, pos])
    if inj is not None:
        taps, finder = inj.refuse(taps, finder)
    say("purses")
    # Stable, so equal (card, ms) keep their domain order; bus rides arrive pre-sorted, so the
    # sort mostly merges runs.
    order = np.argsort(order_key(taps.card, taps.time_s), kind="stable")
    taps, finder = taps.take(order), finder[order]
    purse = _decide(world, taps, lost)
    say("records")
    tx = _transactions(world, taps, purse)
    counter = card_counters(tx, world.cards.counter)
    if inj is not None:
        tx, counter = inj.tear(tx, counter)
    records = build_records(tx, counter, world.terminals)
    written_s = (records["time_ms"] - DAY_START_MS) / 1000.0
    if inj is not None:
        inj.restore(records)
    return Decided(
        world, taps, finder, purse, lost, bike, hospital, len(usable), records, written_s, inj
    )


def simulate_day(
    scenario: Scenario, seed: int, stage: Stage | None = None, workers: int = 1
) -> Day:
    """Run the whole day."""
    say = stage or (lambda _name: None)
    d = decide_day(scenario, seed, say)
    world, records, inj, tap_time = d.world, d.records, d.injection, d.written_s
    d.records = np.empty(0, records.dtype)  # the log below replaces them; a GB at metro scale
    written = len(records)
    uploads = plan_uploads(
        tap_time,
        records["terminal_id"].astype(np.int64) - 1,
        world.terminals.cellular,
        scenario if inj is None else inj.scenario,
        world.streams["uploads"],
        None if inj is None else inj.blocked,
    )
    if inj is not None:
        records, tap_time, uploads = inj.before_signing(records, tap_time, uploads, d.lost)
    say("signing")
    log, rows = sign_log(
        records,
        uploads,
        world.registry.master_key,
        world.terminal_keys,
        workers,
        None if inj is None else inj.after_tacs,
    )
    del records
    say("clearing")
    if inj is not None:
        log, rows, tap_time = inj.after_signing(log, rows, tap_time)
        written = inj.records_written
    if inj is not None and inj.crashing:
        log, rows, clearing, cleared = inj.crash_and_replay(
            log, rows, clearing_config(inj.scenario), world.streams["clearing"]
        )
    else:
        clearing, cleared = _clear(world, log, scenario if inj is None else inj.scenario)
    say("settlement")
    params = SettlementParams(
        DAY_START_MS + int(scenario.clearing.cutoff_s * 1000), fee_schedule(world)
    )
    settlement = settle(log, world.registry, params.fees, params.cutoff_ms, workers)
    if inj is not None:
        settlement = inj.back_office(log, settlement, d.lost)
    return Day(
        world,
        d.taps,
        d.purse,
        d.lost,
        d.bike,
        d.hospital,
        d.cards_issued,
        log,
        tap_time[rows],
        uploads,
        clearing,
        cleared,
        params,
        settlement,
        d.finder,
        written,
        inj,
    )


def fee_schedule(world: World) -> FeeSchedule:
    """Fees by domain from the scenario, and each POS category's own rate for its merchants."""
    sc = world.scenario
    payee_bp = {}
    for category in POS_CATEGORIES:
        rate = getattr(sc.pos, category).fee_bp
        for terminal in world.terminals.groups[f"pos_{category}"].tolist():
            payee_bp[int(world.terminals.payee[terminal])] = rate
    domain_bp = {
        Domain.BUS: sc.bus.fee_bp,
        Domain.BIKE: sc.bike.fee_bp,
        Domain.HOSPITAL: sc.hospital.fee_bp,
        Domain.POS: sc.pos.shops.fee_bp,
        Domain.TOPUP: 0,
    }
    return FeeSchedule(domain_bp, payee_bp)


def _all_taps(
    world: World,
    new_cards: np.ndarray,
    usable_s: np.ndarray,
    lost: LostCards,
    other: list[Taps],
) -> tuple[Taps, np.ndarray]:
    sc, cards, groups = world.scenario, world.cards, world.terminals.groups
    volume, peak = sc.demand.volume_multiplier, sc.demand.peak_multiplier
    old = np.arange(len(cards) - len(new_cards))
    parts = [
        bus_mod.bus_taps(
            sc.bus, old, cards.card_type, groups["bus"], volume, peak, world.streams["bus"]
        ),
        bus_mod.bus_taps(
            sc.bus.model_copy(update={"rides_per_card": sc.issuance.new_card_rides}),
            new_cards,
            cards.card_type,
            groups["bus"],
            volume,
            peak,
            world.streams["bus"],
            earliest_s=usable_s,
        ),
        *other,
    ]
    holder = concat_taps(parts)
    holder = holder.take(~lost.holder_gone(holder.card, holder.time_s, len(cards)))
    found = finder_taps(lost, groups["pos_shops"], sc, world.streams["finder"])
    finder = np.r_[np.zeros(len(holder), bool), np.ones(len(found), bool)]
    return concat_taps([holder, found]), finder


def _decide(world: World, taps: Taps, lost: LostCards) -> PurseDay:
    hot = lost.hotlisted_at(taps.card, taps.time_s, len(world.cards))
    purse_taps = taps.purse
    day = decide(
        taps.card[purse_taps],
        taps.amount_fen[purse_taps],
        taps.need_fen[purse_taps],
        hot[purse_taps],
        world.cards.balance_fen,
        world.cards.tops_up,
        world.scenario.population,
    )
    return _expand(day, purse_taps, hot)


def _expand(day: PurseDay, purse_taps: np.ndarray, hot: np.ndarray) -> PurseDay:
    """Purse decisions spread back over all taps; non-purse taps stand unless hotlisted."""
    n = len(purse_taps)
    accepted = ~hot
    reason = np.where(hot, 2, 0).astype(np.uint8)
    after = np.zeros(n, np.int64)
    topup = np.zeros(n, np.int64)
    accepted[purse_taps], reason[purse_taps] = day.accepted, day.decline_reason
    after[purse_taps], topup[purse_taps] = day.balance_after_fen, day.topup_fen
    return PurseDay(accepted, reason, after, topup, day.final_balance_fen)


def _transactions(world: World, taps: Taps, purse: PurseDay) -> Transactions:
    """Accepted taps and the top-ups made just before them, in card order (taps are sorted by
    card and time, and each top-up is placed right before the tap it paid for)."""
    rng = world.streams["purse"]
    ok = purse.accepted
    load = purse.topup_fen > 0
    loads = np.flatnonzero(load)
    slots = load.astype(np.int64) + ok
    first = np.cumsum(slots) - slots
    at_load, at_tap = first[loads], first[ok] + load[ok]
    lead = rng.uniform(60.0, 900.0, len(loads))
    prev_time = np.r_[-np.inf, taps.time_s[:-1]]
    same_card = np.r_[False, taps.card[1:] == taps.card[:-1]]
    # A top-up happens after the card's previous tap (1 ms later at the earliest).
    floor = np.where(same_card[loads], prev_time[loads] + 0.001, 0.0)
    load_time = np.minimum(np.maximum(taps.time_s[loads] - lead, floor), taps.time_s[loads])
    balance = _balances(taps, purse, ok, world.cards.balance_fen)
    n = int(slots.sum())
    tx = Transactions(
        *(
            np.empty(n, dtype)
            for dtype in (np.int64, np.float64, np.int64, np.uint8, np.int64, np.int64, np.uint16)
        )
    )
    for name, at_l, value_l, value_t in (
        ("card", at_load, taps.card[loads], taps.card[ok]),
        ("time_s", at_load, np.round(load_time * 1000.0) / 1000.0, taps.time_s[ok]),
        (
            "terminal",
            at_load,
            _topup_terminals(world, world.cards.channel[taps.card[loads]], rng),
            taps.terminal[ok],
        ),
        ("kind", at_load, np.full(len(loads), Kind.LOAD, np.uint8), taps.kind[ok]),
        ("amount_fen", at_load, purse.topup_fen[loads], taps.amount_fen[ok]),
        (
            "balance_after_fen",
            at_load,
            purse.balance_after_fen[loads] + taps.amount_fen[loads],
            balance[ok],
        ),
        ("flags", at_load, np.zeros(len(loads), np.uint16), taps.flags[ok]),
    ):
        column = getattr(tx, name)
        column[at_l] = value_l
        column[at_tap] = value_t
    return tx


def _balances(taps: Taps, purse: PurseDay, ok: np.ndarray, balance0: np.ndarray) -> np.ndarray:
    """Balance after each tap; a non-purse record shows the balance of the last purse record."""
    n = len(taps)
    moved = taps.purse & ok
    last = np.maximum.accumulate(np.where(moved, np.arange(n), -1)) if n else np.empty(0, int)
    same = (last >= 0) & (taps.card[np.maximum(last, 0)] == taps.card)
    return np.where(
        moved,
        purse.balance_after_fen,
        np.where(same, purse.balance_after_fen[np.maximum(last, 0)], balance0[taps.card]),
    )


def _topup_terminals(world: World, channel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    groups = world.terminals.groups
    out = np.empty(len(channel), np.int64)
    for index, name in enumerate(("topup_kiosk", "topup_bank", "topup_online")):
        mine = channel == index
        out[mine] = groups[name][rng.integers(0, len(groups[name]), mine.sum())]
    return out


def clearing_config(scenario: Scenario) -> ClearingConfig:
    """The front end's queue as the scenario describes it (city mode)."""
    c = scenario.clearing
    outages = tuple((float(a), float(b)) for a, b in c.outages_s)
    return ClearingConfig(
        c.workers, c.batch_service_s, c.record_service_s, c.exponential_service, outages
    )


def _clear(world: World, log: RecordLog, scenario: Scenario) -> tuple[ClearingResult, np.ndarray]:
    """The clearing front end's queue over the day's uploads (or Poisson ones in M/M/c mode).
    `scenario` is the world's, or with faults the one that counts crash downtime as outages."""
    c = scenario.clearing
    rng = world.streams["clearing"]
    if c.mode == "mmc":
        arrivals = poisson_arrivals(c.mmc_arrival_rate_per_s, DAY_S, rng)
        config = ClearingConfig(c.workers, 1.0 / c.mmc_service_rate_per_s, 0.0, True)
        result = simulate_clearing(arrivals, np.zeros(len(arrivals), np.int64), config, rng, DAY_S)
        return result, np.full(len(log.records), np.nan)
    arrival = (log.batches["uploaded_ms"] - DAY_START_MS) / 1000.0
    config = clearing_config(scenario)
    result = simulate_clearing(
        arrival,
        log.batches["record_count"].astype(np.int64),
        config,
        rng,
        max(DAY_S, float(arrival.max(initial=0.0))),
    )
    return result, result.end_s[log.batch_row]
