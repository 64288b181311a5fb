"""A hospital's windows: registration, consultation and pharmacy queues, one SimPy process each
patient, with an online medical-insurance authorisation before each payment.

Payments happen at registration (the fee) and at the pharmacy (the drug bill). The amounts and
the insurance split are the caller's: `split_bill_fen` is the pure rule, applied to the
authorisation outcomes this simulation exposes.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import simpy

MAX_PATIENTS = 10_000_000
"""Patients per call; the per-patient Python state would not fit comfortably beyond this."""

BP_WHOLE = 10_000
"""Basis points in the whole bill."""


@dataclass(frozen=True)
class HospitalConfig:
    """Counters and service-time means of one hospital; times in seconds."""

    registration_windows: int
    """Registration (and fee payment) windows."""
    consultation_rooms: int
    """Consultation rooms, each seeing one patient at a time."""
    pharmacy_windows: int
    """Pharmacy (drug bill payment and dispensing) windows."""
    registration_mean_s: float = 90.0
    """Mean registration service time, exponential, s (the authorisation comes on top)."""
    consultation_mean_s: float = 600.0
    """Mean consultation time, exponential, s."""
    pharmacy_mean_s: float = 120.0
    """Mean pharmacy service time, exponential, s (the authorisation comes on top)."""
    pharmacy_share: float = 0.7
    """Probability that a patient goes on to the pharmacy, drawn per patient."""
    auth_latency_mean_s: float = 2.0
    """Mean latency of one online insurance authorisation, exponential, s."""
    auth_failure_prob: float = 0.02
    """Probability that one authorisation fails, making that payment entirely self-pay."""

    def __post_init__(self) -> None:
        counts = (self.registration_windows, self.consultation_rooms, self.pharmacy_windows)
        if min(counts) < 1:
            raise ValueError("registration_windows, consultation_rooms, pharmacy_windows >= 1")
        means = (
            self.registration_mean_s,
            self.consultation_mean_s,
            self.pharmacy_mean_s,
            self.auth_latency_mean_s,
        )
        if not all(np.isfinite(m) and m >= 0 for m in means):
            raise ValueError("service and latency means must be finite and >= 0 s")
        for name in ("pharmacy_share", "auth_failure_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")


@dataclass
class HospitalResult:
    """Per-patient outcomes, in input order; times in s since midnight, waits in s."""

    registration_wait_s: np.ndarray
    """Arrival to reaching a registration window, s."""
    consultation_wait_s: np.ndarray
    """Leaving registration to entering a consultation room, s."""
    pharmacy_wait_s: np.ndarray
    """Leaving consultation to reaching a pharmacy window, s; nan where not visited."""
    registration_paid_s: np.ndarray
    """Time the registration payment completed (authorisation answered), s."""
    pharmacy_paid_s: np.ndarray
    """Time the pharmacy payment completed, s; nan where not visited."""
    registration_auth_ok: np.ndarray
    """bool: the registration payment's insurance authorisation succeeded."""
    pharmacy_auth_ok: np.ndarray
    """bool: the pharmacy payment's authorisation succeeded; False where not visited."""
    visits_pharmacy: np.ndarray
    """bool: the patient went to the pharmacy."""
    leave_s: np.ndarray
    """Time the patient left the hospital, s."""


@dataclass(frozen=True)
class _Draws:
    """Every random quantity of every patient, drawn up front in a fixed order.

    Drawing per patient (even the pharmacy's for those who skip it) keeps each patient's
    numbers independent of the order events happen in and of the other parameters, so that
    changing, say, the pharmacy share does not reshuffle everyone's service times.
    """

    registration_s: np.ndarray
    consultation_s: np.ndarray
    pharmacy_s: np.ndarray
    visits_pharmacy: np.ndarray
    registration_auth_s: np.ndarray
    pharmacy_auth_s: np.ndarray
    registration_auth_ok: np.ndarray
    pharmacy_auth_ok: np.ndarray

    @classmethod
    def draw(cls, n: int, config: HospitalConfig, rng: np.random.Generator) -> _Draws:
        """Draw n patients' service times, pharmacy choice and authorisation outcomes."""
        return cls(
            registration_s=rng.exponential(config.registration_mean_s, n),
            consultation_s=rng.exponential(config.consultation_mean_s, n),
            pharmacy_s=rng.exponential(config.pharmacy_mean_s, n),
            visits_pharmacy=rng.random(n) < config.pharmacy_share,
            registration_auth_s=rng.exponential(config.auth_latency_mean_s, n),
            pharmacy_auth_s=rng.exponential(config.auth_latency_mean_s, n),
            registration_auth_ok=rng.random(n) >= config.auth_failure_prob,
            pharmacy_auth_ok=rng.random(n) >= config.auth_failure_prob,
        )


class _Hospital:
    """Simulation state of one run: the three counters and the per-patient outputs."""

    def __init__(self, env: simpy.Environment, config: HospitalConfig, draws: _Draws) -> None:
        self.env = env
        self.registration = simpy.Resource(env, config.registration_windows)
        self.consultation = simpy.Resource(env, config.consultation_rooms)
        self.pharmacy = simpy.Resource(env, config.pharmacy_windows)
        n: int = draws.registration_s.shape[0]
        # Holding times as lists: per-element reads from lists are far cheaper than from arrays.
        self.registration_hold_s = (draws.registration_s + draws.registration_auth_s).tolist()
        self.consultation_s = draws.consultation_s.tolist()
        self.pharmacy_hold_s = (draws.pharmacy_s + draws.pharmacy_auth_s).tolist()
        self.visits = draws.visits_pharmacy.tolist()
        self.registration_wait_s = [np.nan] * n
        self.consultation_wait_s = [np.nan] * n
        self.pharmacy_wait_s = [np.nan] * n
        self.registration_paid_s = [np.nan] * n
        self.pharmacy_paid_s = [np.nan] * n
        self.leave_s = [np.nan] * n

    def admit(self, arrivals: Iterator[tuple[int, float]]) -> Generator[simpy.Event, object, None]:
        """Start each patient's process at her arrival time, in the given order.

        Starting processes as their time comes keeps the event heap as small as the number of
        patients inside the hospital.
        """
        env = self.env
        for i, arrival_s in arrivals:
            if arrival_s > env.now:
                yield env.timeout(arrival_s - env.now)
            env.process(self.patient(i))

    def patient(self, i: int) -> Generator[simpy.Event, object, None]:
        """One patient from arrival on: register and pay, consult, maybe pharmacy and pay."""
        env = self.env
        queued_s = env.now
        # The window stays busy while the authorisation is pending: the cashier cannot serve the
        # next patient until the payment settles, so the latency adds to the holding time.
        with self.registration.request() as request:
            yield request
            self.registration_wait_s[i] = env.now - queued_s
            yield env.timeout(self.registration_hold_s[i])
            self.registration_paid_s[i] = env.now
        queued_s = env.now
        with self.consultation.request() as request:
            yield request
            self.consultation_wait_s[i] = env.now - queued_s
            yield env.timeout(self.consultation_s[i])
        if self.visits[i]:
            queued_s = env.now
            with self.pharmacy.request() as request:
                yield request
                self.pharmacy_wait_s[i] = env.now - queued_s
                yield env.timeout(self.pharmacy_hold_s[i])
                self.pharmacy_paid_s[i] = env.now
        self.leave_s[i] = env.now

    def result(self, draws: _Draws) -> HospitalResult:
        """Freeze the outputs into arrays."""
        return HospitalResult(
            registration_wait_s=np.array(self.registration_wait_s, dtype=np.float64),
            consultation_wait_s=np.array(self.consultation_wait_s, dtype=np.float64),
            pharmacy_wait_s=np.array(self.pharmacy_wait_s, dtype=np.float64),
            registration_paid_s=np.array(self.registration_paid_s, dtype=np.float64),
            pharmacy_paid_s=np.array(self.pharmacy_paid_s, dtype=np.float64),
            registration_auth_ok=draws.registration_auth_ok.copy(),
            pharmacy_auth_ok=draws.pharmacy_auth_ok & draws.visits_pharmacy,
            visits_pharmacy=draws.visits_pharmacy.copy(),
            leave_s=np.array(self.leave_s, dtype=np.float64),
        )


def simulate_hospital(
    arrival_s: np.ndarray, config: HospitalConfig, rng: np.random.Generator
) -> HospitalResult:
    """Simulate patients arriving at `arrival_s` (s since midnight) through the hospital.

    Each counter serves first come, first served; patients arriving at the same instant queue
    in input order. All random quantities come from `rng`, drawn up front. Results are in input
    order.
    """
    arrival = np.asarray(arrival_s, dtype=np.float64)
    if arrival.ndim != 1 or not np.isfinite(arrival).all():
        raise ValueError("arrival_s must be a 1-D array of finite times")
    n: int = arrival.shape[0]
    if n > MAX_PATIENTS:
        raise ValueError(f"at most {MAX_PATIENTS} patients per call, got {n}; split the day")
    draws = _Draws.draw(n, config, rng)
    env = simpy.Environment(initial_time=float(arrival.min()) if n else 0.0)
    hospital = _Hospital(env, config, draws)
    order = np.argsort(arrival, kind="stable")
    env.process(hospital.admit(zip(order.tolist(), arrival[order].tolist(), strict=True)))
    env.run()
    return hospital.result(draws)


def split_bill_fen(
    bill_fen: np.ndarray, insured_share_bp: int | np.ndarray, auth_ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Split bills into (insurance_fen, self_pay_fen), int64, exactly.

    insurance = bill * insured_share_bp // 10000 (rounded down, in the patient's disfavour by
    under one fen) where the authorisation succeeded, else 0; self_pay = bill - insurance, so
    the parts always add up to the bill. Shares are basis points in [0, 10000]; arrays
    broadcast.
    """
    bill = np.asarray(bill_fen)
    share_bp = np.asarray(insured_share_bp)
    ok = np.asarray(auth_ok)
    for name, a in (("bill_fen", bill), ("insured_share_bp", share_bp)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integer (money is int64 fen), got {a.dtype}")
    if ok.dtype != np.bool_:
        raise ValueError(f"auth_ok must be bool, got {ok.dtype}")
    bill = bill.astype(np.int64)
    share_bp = share_bp.astype(np.int64)
    if ((share_bp < 0) | (share_bp > BP_WHOLE)).any():
        raise ValueError("insured_share_bp must be in [0, 10000]")
    # bill * share must fit in int64: bills below ~9.2e14 fen (9.2 trillion yuan) are safe.
    if ((bill < 0) | (bill > np.iinfo(np.int64).max // BP_WHOLE)).any():
        raise ValueError("bill_fen must be in [0, 922337203685477] fen")
    insurance = np.where(ok, bill * share_bp // BP_WHOLE, 0).astype(np.int64)
    return insurance, (bill - insurance).astype(np.int64)
