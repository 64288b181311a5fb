"""Scenarios: TOML files validated by frozen pydantic models. Every limit is checked here.

Money is int fen, durations float seconds, shares floats in [0, 1]. Unknown keys are errors,
so a typo never silently falls back to a default. `load_scenario` applies `--set key=value`
overrides before validation, and turns any problem into a one-line InputError.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cardsim.errors import InputError


def unit(name: str) -> Any:
    """Field metadata naming the field's unit; docs/scenario-reference.md lists it."""
    return Field(json_schema_extra={"unit": name})


Count = Annotated[int, Field(ge=0, le=50_000_000)]
Positive = Annotated[int, Field(ge=1, le=10_000_000)]
Fen = Annotated[int, Field(ge=0, le=100_000_000, strict=True), unit("fen")]
"""Money in fen: a whole number, never a float (strict: 2.0 is refused)."""
Share = Annotated[float, Field(ge=0.0, le=1.0), unit("share")]
Seconds = Annotated[float, Field(ge=0.0, le=7 * 86_400.0), unit("s")]
BasisPoints = Annotated[int, Field(ge=0, le=10_000), unit("bp")]
Spread = Annotated[float, Field(ge=0, le=3), unit("sd of ln")]
"""Sigma of a lognormal amount: the standard deviation of its natural log (0: all equal)."""
DAY_S = 86_400.0


def _check_shares(model: BaseModel) -> None:
    total = sum(float(v) for v in model.model_dump().values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"shares must sum to 1 (they sum to {total:g})")


class Model(BaseModel):
    """Frozen, strict about unknown keys; attribute docstrings are the fields' descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Shares(Model):
    """A model whose fields are shares of one whole: they must sum to 1."""

    @model_validator(mode="after")
    def _sums_to_one(self) -> Shares:
        _check_shares(self)
        return self


class CardTypes(Shares):
    """Share of cardholders by card type (must sum to 1)."""

    full_function: Share = 0.5
    """Social-security card with medical insurance and online bank functions."""
    standard: Share = 0.3
    """Ordinary resident card: transport and retail purse, no insurance functions."""
    student: Share = 0.1
    """Student card, with the student bus concession."""
    senior: Share = 0.1
    """Senior citizen card, with the senior bus concession."""


class Concessions(Model):
    """Bus fare discount per card type, in basis points of the fare (10000 = free)."""

    full_function: BasisPoints = 0
    """Discount for full-function cards."""
    standard: BasisPoints = 0
    """Discount for standard cards."""
    student: BasisPoints = 5_000
    """Discount for student cards (5000: half fare)."""
    senior: BasisPoints = 10_000
    """Discount for senior cards (10000: they ride free)."""


class TopupChannels(Shares):
    """Where low balances get topped up (shares sum to 1)."""

    kiosk: Share = 0.5
    """Self-service top-up kiosks."""
    bank: Share = 0.2
    """Bank counters and bank-account transfers."""
    online: Share = 0.3
    """Online top-ups (app or website)."""


class Population(Model):
    """The cardholders and their purses (topup_threshold_fen + topup_amount_fen must not exceed
    max_balance_fen)."""

    cards: Annotated[Positive, unit("cards")] = 20_000
    """Cards in use at the start of the day."""
    card_types: CardTypes = CardTypes()
    initial_balance_mean_fen: Fen = 5_000
    """Mean opening purse balance (exponentially distributed, capped at max_balance_fen)."""
    max_balance_fen: Fen = 100_000
    """Largest stored value a card may hold (CNY 1,000 in Beijing)."""
    topup_threshold_fen: Fen = 1_000
    """Cardholders who top up do so before a tap that would leave less than this."""
    topup_amount_fen: Fen = 5_000
    """Amount of one top-up; also the opening balance of a card issued today."""
    topup_share: Share = 0.9
    """Share of cardholders who top up when the balance runs low; the others get declined."""
    topup_channels: TopupChannels = TopupChannels()
    lost_share: Share = 0.0005
    """Share of cards reported lost during the day."""
    finder_use_share: Share = 0.3
    """Share of lost cards a finder tries to spend before the hotlist reaches terminals."""

    @model_validator(mode="after")
    def _purse_limits(self) -> Population:
        if self.topup_threshold_fen + self.topup_amount_fen > self.max_balance_fen:
            raise ValueError(
                "topup_threshold_fen + topup_amount_fen must not exceed max_balance_fen"
            )
        return self


class Issuance(Model):
    """The day's card applications at issuance centres (see sim/issuance.py)."""

    applications: Annotated[Count, unit("applications")] = 300
    """Card applications in the day (Poisson mean, times demand.volume_multiplier)."""
    centres: Annotated[Positive, unit("centres")] = 2
    """Issuance centres; each applicant picks one at random."""
    windows_per_centre: Annotated[Positive, unit("windows")] = 4
    """Service windows per centre, first come, first served, during opening hours."""
    service_mean_s: Seconds = 240.0
    """Mean time a window spends on one application (exponential)."""
    personalisation_per_hour: Annotated[float, Field(gt=0, le=1e6), unit("cards/h")] = 400.0
    """Pace of the central bureau that prints the cards, around the clock."""
    activation_delay_s: Seconds = 1_800.0
    """Time from printing until the new card can pay."""
    new_card_rides: Annotated[float, Field(ge=0, le=20), unit("rides/card")] = 1.0
    """Bus rides a newly issued card makes in the rest of the day, on average."""


class Bus(Model):
    """Bus routes with offline validators that upload at the depot or by cellular."""

    routes: Annotated[Positive, unit("routes")] = 20
    """Bus routes; route r's rides average mean_ride_km x (0.5 + r / routes)."""
    vehicles: Annotated[Positive, unit("buses")] = 120
    """Buses, one validator each, shared among the routes and three bus companies."""
    rides_per_card: Annotated[float, Field(ge=0, le=20), unit("rides/card")] = 1.2
    """Bus rides per card in the day, on average (Poisson, times demand.volume_multiplier)."""
    fare: Literal["flat", "distance"] = "flat"
    """`flat`: every ride costs flat_fare_fen; `distance`: base_fare_fen plus per_km_fen a km."""
    flat_fare_fen: Fen = 200
    """Fare of a ride under the flat fare, before concessions and transfer discounts."""
    base_fare_fen: Fen = 100
    """Boarding part of the distance fare."""
    per_km_fen: Annotated[Fen, unit("fen/km")] = 30
    """Distance part of the distance fare."""
    mean_ride_km: Annotated[float, Field(gt=0, le=100), unit("km")] = 5.0
    """Mean ride length (exponential), for distance fares."""
    transfer_window_s: Seconds = 5_400.0
    """A ride within this time of the same card's previous ride is a transfer."""
    transfer_discount_fen: Fen = 100
    """Taken off a transfer ride's fare (never below zero)."""
    concessions: Concessions = Concessions()
    upload: Literal["depot", "cellular"] = "depot"
    """`depot`: validators upload at each shift end; `cellular`: every cellular_interval_s."""
    shift_end_s: tuple[Seconds, ...] = (14.5 * 3600, 23.5 * 3600)
    """Depot upload times: validators upload everything at the end of each shift."""
    fee_bp: BasisPoints = 50
    """Fee the bus companies pay on their gross fares."""


class Bike(Model):
    """Public bike rental: stations with docks (see sim/bike.py)."""

    stations: Annotated[Positive, unit("stations")] = 30
    """Rental stations, each with one terminal that uploads by cellular."""
    docks: Annotated[Positive, unit("docks/station")] = 20
    """Docks per station: a station with no free dock refuses returns."""
    initial_fill: Share = 0.6
    """Share of docks holding a bike at the start of the day."""
    trips: Annotated[Count, unit("trips")] = 2_000
    """Rental requests in the day (Poisson mean, times demand.volume_multiplier)."""
    mean_ride_s: Seconds = 900.0
    """Mean rental duration (exponential)."""
    min_balance_fen: Fen = 500
    """Balance a card needs to rent, checked against the morning balance."""
    free_s: Seconds = 3_600.0
    """Free rental time; each started hour after it costs 1, 2, then 3 yuan."""
    neighbour_retry: bool = True
    """A rider who finds no bike or no free dock walks to the next station and tries again."""
    walk_s: Seconds = 300.0
    """Walk to the next station."""
    fee_bp: BasisPoints = 0
    """Fee the bike operator pays on its gross rental fees."""


class Hospital(Model):
    """Hospitals and pharmacies: windows, bills split between insurance and self-pay."""

    hospitals: Annotated[Positive, unit("hospitals")] = 2
    """Hospitals, each with a registration and a pharmacy terminal."""
    patients: Annotated[Count, unit("patients")] = 1_500
    """Patients in the day, all hospitals together (Poisson, times demand.volume_multiplier)."""
    registration_windows: Annotated[Positive, unit("windows")] = 4
    """Registration windows per hospital, where the registration fee is paid."""
    consultation_rooms: Annotated[Positive, unit("rooms")] = 20
    """Consultation rooms per hospital."""
    pharmacy_windows: Annotated[Positive, unit("windows")] = 4
    """Pharmacy windows per hospital, where the drug bill is paid."""
    registration_fee_fen: Fen = 1_000
    """Registration fee per visit."""
    bill_median_fen: Fen = 15_000
    """Median pharmacy bill (lognormal), capped so that a topped-up purse can pay it."""
    bill_sigma: Spread = 0.8
    """Spread of the pharmacy bill."""
    insured_share_bp: BasisPoints = 7_000
    """Part of a full-function cardholder's bill the insurance fund pays; the rest is self-pay."""
    auth_latency_mean_s: Seconds = 2.0
    """Mean latency of the online insurance authorisation before each payment."""
    auth_failure_prob: Annotated[Share, unit("probability")] = 0.02
    """Chance that an authorisation fails; the patient then pays the whole bill from the purse."""
    fee_bp: BasisPoints = 0
    """Fee the hospitals pay on their gross self-pay takings."""


class Merchants(Model):
    """One merchant category at retail POS."""

    merchants: Annotated[Positive, unit("merchants")] = 100
    """Merchants in the category, one POS terminal each."""
    purchases: Annotated[Count, unit("purchases")] = 5_000
    """Purchases in the day (Poisson mean, times demand.volume_multiplier)."""
    median_fen: Fen = 2_000
    """Median purchase amount (lognormal)."""
    sigma: Spread = 0.8
    """Spread of the purchase amount."""
    fee_bp: BasisPoints = 60
    """Merchant service fee on the category's gross sales."""
    online_share: Share = 0.0
    """Share of full-function-card purchases authorised online (bit 0 of flags), which may
    exceed the offline floor limit."""


class Pos(Model):
    """Retail categories, each with its own amount distribution and fee."""

    offline_limit_fen: Fen = 20_000
    """Floor limit: offline purchases are capped here; online-authorised ones may exceed it."""
    shops: Merchants = Merchants()
    """Shops and restaurants."""
    supermarkets: Merchants = Merchants(merchants=20, purchases=4_000, median_fen=6_000)
    """Supermarkets."""
    pharmacies: Merchants = Merchants(merchants=15, purchases=1_000, median_fen=3_500)
    """Retail pharmacies (outside the hospitals)."""
    taxis: Merchants = Merchants(merchants=80, purchases=3_000, median_fen=1_800, sigma=0.5)
    """Taxis with card POS."""
    parking: Merchants = Merchants(merchants=10, purchases=1_500, median_fen=800, sigma=0.4)
    """Car parks."""


class Terminals(Model):
    """Store-and-forward behaviour shared by every terminal."""

    buffer_records: Annotated[Positive, unit("records")] = 4_000
    """Records a terminal can hold; a full buffer uploads at once, so none is overwritten."""
    cellular_interval_s: Annotated[float, Field(ge=10, le=86_400), unit("s")] = 300.0
    """Time between upload attempts of a cellular terminal (each with its own phase)."""
    upload_failure_prob: Annotated[Share, unit("probability")] = 0.02
    """Chance that an upload attempt fails (every attempt fails during a clearing outage)."""
    retry_backoff_s: Annotated[float, Field(ge=1, le=86_400), unit("s")] = 60.0
    """Wait before a failed upload is tried again."""
    hotlist_refresh_s: Annotated[float, Field(ge=60, le=7 * 86_400), unit("s")] = 3_600.0
    """How often terminals receive the hotlist of lost cards."""


class Clearing(Model):
    """The clearing centre's front end and the day's cut-off (each outage must end after it
    starts)."""

    workers: Annotated[int, Field(ge=1, le=1_024), unit("workers")] = 2
    """Clearing workers checking batches in parallel, one batch each at a time."""
    batch_service_s: Seconds = 0.2
    """Fixed time to check one batch (header, signature)."""
    record_service_s: Annotated[float, Field(ge=0, le=10), unit("s")] = 0.0005
    """Further checking time per record in the batch."""
    exponential_service: bool = False
    """Draw service times from an exponential distribution with the same mean."""
    outages_s: tuple[tuple[Seconds, Seconds], ...] = ()
    """Periods [start_s, end_s] after midnight when the centre is down: uploads fail, retry."""
    cutoff_s: Seconds = DAY_S + 2 * 3600
    """Cut-off, seconds after the day's midnight: later uploads settle the next day (T+1)."""
    mode: Literal["city", "mmc"] = "city"
    """`mmc` replaces the city's uploads by Poisson arrivals for checks against Erlang C."""
    mmc_arrival_rate_per_s: Annotated[float, Field(gt=0, le=1e5), unit("1/s")] = 1.0
    """Batch arrival rate in mmc mode (Poisson)."""
    mmc_service_rate_per_s: Annotated[float, Field(gt=0, le=1e5), unit("1/s")] = 1.0
    """Service rate of one worker in mmc mode (exponential service times)."""

    @model_validator(mode="after")
    def _outages_ordered(self) -> Clearing:
        for start, end in self.outages_s:
            if end <= start:
                raise ValueError("each outage is [start_s, end_s] with end_s > start_s")
        return self


class Demand(Model):
    """Scales the whole day's demand and its peaks."""

    volume_multiplier: Annotated[float, Field(gt=0, le=100), unit("factor")] = 1.0
    """Multiplies every domain's volume: rides, trips, patients, purchases, applications."""
    peak_multiplier: Annotated[float, Field(gt=0, le=100), unit("factor")] = 1.0
    """Multiplies the morning (7-9 h) and evening (17-19 h) peak hours' intensity."""


Events = Annotated[int, Field(ge=0, le=10_000)]
"""A number of injected events: small, exact counts (each one is checked at clearing)."""


class Faults(Model):
    """Faults injected into the day (sim/faults.py, docs/faults-and-fraud.md), each from its
    own random sub-stream; all off by default."""

    terminal_crash_share: Share = 0.0
    """Share of terminals that crash once, at a uniform time between 06:00 and 22:00."""
    persisted_buffer: bool = False
    """True: records wait in flash and survive a crash; false: a crash loses every record the
    terminal had not yet uploaded."""
    refuse_when_full: bool = False
    """Depot terminals cannot upload before their shift ends: once buffer_records are waiting
    they refuse taps (false: a full buffer uploads at once, as on cellular terminals)."""
    partition_share: Share = 0.0
    """Share of cellular terminals cut off from the network once, from a uniform time between
    06:00 and 22:00; their uploads fail and retry until it ends."""
    partition_mean_s: Seconds = 3_600.0
    """Mean length of a network partition (exponential)."""
    repeat_upload_share: Share = 0.0
    """Share of batches uploaded twice, the same bytes: the acknowledgement was lost."""
    reorder_share: Share = 0.0
    """Share of batches that reach the clearing centre just after the terminal's next batch."""
    clock_skew_share: Share = 0.0
    """Share of terminals with a bad clock: it drifts, jumps forward, then steps back. Only the
    records' time field is affected."""
    clock_drift_ppm: Annotated[float, Field(ge=0, le=10_000), unit("ppm")] = 50.0
    """Largest drift of a bad clock (uniform within plus or minus this)."""
    clock_jump_s: Seconds = 600.0
    """Largest forward jump, and largest backward step, of a bad clock (each uniform)."""
    torn_share: Share = 0.0
    """Share of bus and POS debits torn: the card debited itself but the terminal missed the
    TAC; the card's next tap recovers the record (flags bit 1)."""
    clearing_crash_s: tuple[Seconds, ...] = ()
    """Times the clearing centre crashes mid-ingest, s after midnight: batches being checked
    were not journaled and are sent again after the restart."""
    clearing_restart_s: Seconds = 600.0
    """Time the clearing centre takes to restart and replay its journal after a crash."""
    ack_loss_s: Seconds = 1.0
    """Batches journaled this long before a crash lose their acknowledgement and are resent."""


class Fraud(Model):
    """Frauds injected into the day (sim/fraud.py) and the back-office checks that find them;
    all off by default. Hotlisted cards are used by finders of lost cards (population)."""

    back_office_checks: bool = False
    """After settlement, compare each card's balances with the shadow balance and flag booked
    debits of hotlisted cards (alerts BALANCE_ROLLBACK and HOTLISTED_CARD_USED)."""
    cloned_cards: Annotated[Events, unit("cards")] = 0
    """Cloned cards: each clone pays once at a shop under a counter the genuine card used."""
    rolled_back_cards: Annotated[Events, unit("cards")] = 0
    """Cards whose stored balance an attacker restored: their last record shows rollback_fen
    more than the shadow balance."""
    rollback_fen: Fen = 5_000
    """Balance an attacker restores onto a rolled-back card."""
    altered_records: Annotated[Events, unit("records")] = 0
    """Records a merchant inflated after the card's TAC and signed with its own terminal key."""
    fabricated_records: Annotated[Events, unit("records")] = 0
    """Records a merchant invented for real cards, with a TAC it cannot compute."""
    tampered_batches: Annotated[Events, unit("batches")] = 0
    """Batches altered after signing, on the way to the clearing centre (one amount raised)."""
    revoked_key_batches: Annotated[Events, unit("batches")] = 0
    """Batches a stolen terminal uploads under its revoked key."""


class Scenario(Model):
    """A whole simulated city day."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    """Short name, printed by `cardsim run` and kept in summary.json."""
    description: str = ""
    """What the scenario models, in a sentence."""
    date: str = "2026-07-01"
    """A label for the day; record clocks start at 2026-07-01 00:00 UTC+8 whatever it says."""
    population: Population = Population()
    issuance: Issuance = Issuance()
    bus: Bus = Bus()
    bike: Bike = Bike()
    hospital: Hospital = Hospital()
    pos: Pos = Pos()
    terminals: Terminals = Terminals()
    clearing: Clearing = Clearing()
    demand: Demand = Demand()
    faults: Faults = Faults()
    fraud: Fraud = Fraud()


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario; any problem is a one-line InputError."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read scenario ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    for item in overrides:
        apply_override(doc, item, path)
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        raise InputError(path, describe(exc)) from None


def apply_override(doc: dict[str, Any], item: str, path: Path) -> None:
    """Set `a.b.c=value` in the parsed document; the value is read as TOML (else a string)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise InputError(path, f"--set {item!r}: use KEY.PATH=VALUE, e.g. clearing.workers=4")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    parts = key.strip().split(".")
    node = doc
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(path, f"--set {item!r}: {part} is not a table")
        node = child
    node[parts[-1]] = value


def describe(exc: ValidationError) -> str:
    """The first validation problem as: key, bad value, what is allowed."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key {where}; {_allowed(error['loc'])}"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{where}: {error['msg']}{shown}"


def _allowed(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = Scenario
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "see docs/scenario-reference.md"
        model = annotation
    return "allowed keys here: " + ", ".join(model.model_fields)
