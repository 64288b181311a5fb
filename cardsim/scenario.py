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

Count = Annotated[int, Field(ge=0, le=50_000_000)]
Positive = Annotated[int, Field(ge=1, le=10_000_000)]
Fen = Annotated[int, Field(ge=0, le=100_000_000, strict=True)]
"""Money in fen: a whole number, never a float (strict: 2.0 is refused)."""
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, le=7 * 86_400.0)]
BasisPoints = Annotated[int, Field(ge=0, le=10_000)]
DAY_S = 86_400.0


def _check_shares(model: BaseModel) -> None:
    total = sum(float(v) for v in model.model_dump().values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"shares must sum to 1 (they sum to {total:g})")


class Model(BaseModel):
    """Frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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
    student: Share = 0.1
    senior: Share = 0.1


class Concessions(Model):
    """Bus fare discount per card type, in basis points of the fare (10000 = free)."""

    full_function: BasisPoints = 0
    standard: BasisPoints = 0
    student: BasisPoints = 5_000
    senior: BasisPoints = 10_000


class TopupChannels(Shares):
    """Where low balances get topped up (shares sum to 1)."""

    kiosk: Share = 0.5
    bank: Share = 0.2
    online: Share = 0.3


class Population(Model):
    """The cardholders and their purses."""

    cards: Positive = 20_000
    card_types: CardTypes = CardTypes()
    initial_balance_mean_fen: Fen = 5_000
    max_balance_fen: Fen = 100_000
    """Largest stored value a card may hold (CNY 1,000 in Beijing)."""
    topup_threshold_fen: Fen = 1_000
    topup_amount_fen: Fen = 5_000
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

    applications: Count = 300
    centres: Positive = 2
    windows_per_centre: Positive = 4
    service_mean_s: Seconds = 240.0
    personalisation_per_hour: Annotated[float, Field(gt=0, le=1e6)] = 400.0
    activation_delay_s: Seconds = 1_800.0
    new_card_rides: Annotated[float, Field(ge=0, le=20)] = 1.0
    """Bus rides a newly issued card makes in the rest of the day, on average."""


class Bus(Model):
    """Bus routes with offline validators that upload at the depot or by cellular."""

    routes: Positive = 20
    vehicles: Positive = 120
    rides_per_card: Annotated[float, Field(ge=0, le=20)] = 1.2
    fare: Literal["flat", "distance"] = "flat"
    flat_fare_fen: Fen = 200
    base_fare_fen: Fen = 100
    per_km_fen: Fen = 30
    mean_ride_km: Annotated[float, Field(gt=0, le=100)] = 5.0
    transfer_window_s: Seconds = 5_400.0
    transfer_discount_fen: Fen = 100
    concessions: Concessions = Concessions()
    upload: Literal["depot", "cellular"] = "depot"
    shift_end_s: tuple[Seconds, ...] = (14.5 * 3600, 23.5 * 3600)
    """Depot upload times: validators upload everything at the end of each shift."""
    fee_bp: BasisPoints = 50


class Bike(Model):
    """Public bike rental: stations with docks (see sim/bike.py)."""

    stations: Positive = 30
    docks: Positive = 20
    initial_fill: Share = 0.6
    trips: Count = 2_000
    mean_ride_s: Seconds = 900.0
    min_balance_fen: Fen = 500
    free_s: Seconds = 3_600.0
    neighbour_retry: bool = True
    walk_s: Seconds = 300.0
    fee_bp: BasisPoints = 0


class Hospital(Model):
    """Hospitals and pharmacies: windows, bills split between insurance and self-pay."""

    hospitals: Positive = 2
    patients: Count = 1_500
    registration_windows: Positive = 4
    consultation_rooms: Positive = 20
    pharmacy_windows: Positive = 4
    registration_fee_fen: Fen = 1_000
    bill_median_fen: Fen = 15_000
    bill_sigma: Annotated[float, Field(ge=0, le=3)] = 0.8
    insured_share_bp: BasisPoints = 7_000
    auth_latency_mean_s: Seconds = 2.0
    auth_failure_prob: Share = 0.02
    fee_bp: BasisPoints = 0


class Merchants(Model):
    """One merchant category at retail POS."""

    merchants: Positive = 100
    purchases: Count = 5_000
    median_fen: Fen = 2_000
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.8
    fee_bp: BasisPoints = 60
    online_share: Share = 0.0
    """Share of full-function-card purchases authorised online (bit 0 of flags), which may
    exceed the offline floor limit."""


class Pos(Model):
    """Retail categories, each with its own amount distribution and fee."""

    offline_limit_fen: Fen = 20_000
    shops: Merchants = Merchants()
    supermarkets: Merchants = Merchants(merchants=20, purchases=4_000, median_fen=6_000)
    pharmacies: Merchants = Merchants(merchants=15, purchases=1_000, median_fen=3_500)
    taxis: Merchants = Merchants(merchants=80, purchases=3_000, median_fen=1_800, sigma=0.5)
    parking: Merchants = Merchants(merchants=10, purchases=1_500, median_fen=800, sigma=0.4)


class Terminals(Model):
    """Store-and-forward behaviour shared by every terminal."""

    buffer_records: Positive = 4_000
    cellular_interval_s: Annotated[float, Field(ge=10, le=86_400)] = 300.0
    upload_failure_prob: Share = 0.02
    retry_backoff_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    hotlist_refresh_s: Annotated[float, Field(ge=60, le=7 * 86_400)] = 3_600.0


class Clearing(Model):
    """The clearing centre's front end and the day's cut-off."""

    workers: Annotated[int, Field(ge=1, le=1_024)] = 2
    batch_service_s: Seconds = 0.2
    record_service_s: Annotated[float, Field(ge=0, le=10)] = 0.0005
    exponential_service: bool = False
    outages_s: tuple[tuple[Seconds, Seconds], ...] = ()
    cutoff_s: Seconds = DAY_S + 2 * 3600
    """Cut-off, seconds after the day's midnight: later uploads settle the next day (T+1)."""
    mode: Literal["city", "mmc"] = "city"
    """`mmc` replaces the city's uploads by Poisson arrivals for checks against Erlang C."""
    mmc_arrival_rate_per_s: Annotated[float, Field(gt=0, le=1e5)] = 1.0
    mmc_service_rate_per_s: Annotated[float, Field(gt=0, le=1e5)] = 1.0

    @model_validator(mode="after")
    def _outages_ordered(self) -> Clearing:
        for start, end in self.outages_s:
            if end <= start:
                raise ValueError("each outage is [start_s, end_s] with end_s > start_s")
        return self


class Demand(Model):
    """Scales the whole day's demand and its peaks."""

    volume_multiplier: Annotated[float, Field(gt=0, le=100)] = 1.0
    peak_multiplier: Annotated[float, Field(gt=0, le=100)] = 1.0
    """Multiplies the morning (7-9 h) and evening (17-19 h) peak hours' intensity."""


class Scenario(Model):
    """A whole simulated city day."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: str = ""
    date: str = "2026-07-01"
    population: Population = Population()
    issuance: Issuance = Issuance()
    bus: Bus = Bus()
    bike: Bike = Bike()
    hospital: Hospital = Hospital()
    pos: Pos = Pos()
    terminals: Terminals = Terminals()
    clearing: Clearing = Clearing()
    demand: Demand = Demand()


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
