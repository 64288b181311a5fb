"""Net settlement per participant: double-entry legs of booked records, then fees.

Each booked record moves its amount from a payer to a receiver (docs/settlement.md has the
table), so received minus paid sums to zero over all participants by construction; fees move
money from payees to FEE_INCOME, which keeps the sum at zero. The kernel asserts it anyway.
Records are first summed per (payee, kind, domain), a table of a few thousand rows, and the
legs are taken from that table.
"""

from __future__ import annotations

import numpy as np

from cardsim.records.codes import Domain, Kind, Participant
from cardsim.settlement.fees import FeeSchedule, fee_fen
from cardsim.settlement.grouping import Sums, group_sums
from cardsim.settlement.result import POSITION_DTYPE

_PAYEE = -1
_PAYER = np.full(max(Kind) + 1, _PAYEE, np.int64)
_RECEIVER = np.full(max(Kind) + 1, _PAYEE, np.int64)
for _kind, _payer, _receiver in [
    (Kind.DEBIT, Participant.ISSUER_FLOAT, _PAYEE),
    (Kind.DEPOSIT_HOLD, Participant.ISSUER_FLOAT, _PAYEE),
    (Kind.LOAD, _PAYEE, Participant.ISSUER_FLOAT),
    (Kind.REFUND, _PAYEE, Participant.ISSUER_FLOAT),
    (Kind.DEPOSIT_RELEASE, _PAYEE, Participant.ISSUER_FLOAT),
    (Kind.INSURANCE_SHARE, Participant.INSURANCE_FUND, _PAYEE),
]:
    _PAYER[_kind], _RECEIVER[_kind] = _payer, _receiver


def flow_keys(payee: np.ndarray, kind: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """One uint64 key per record: payee << 8 | kind << 4 | domain."""
    key = payee.astype(np.uint64) << np.uint64(8)
    key |= kind.astype(np.uint64) << np.uint64(4)
    key |= domain
    return key


def flow_sums(payee: np.ndarray, kind: np.ndarray, domain: np.ndarray, amount: np.ndarray) -> Sums:
    """Amounts summed per (payee, kind, domain) flow key."""
    return group_sums(flow_keys(payee, kind, domain), amount)


def net_positions(flows: Sums, fees: FeeSchedule) -> np.ndarray:
    """POSITION_DTYPE rows for the reserved participants and every payee with a flow."""
    keys, sums = flows.keys, flows.fen
    payee = (keys >> np.uint64(8)).astype(np.int64)
    kind = ((keys >> np.uint64(4)) & np.uint64(0xF)).astype(np.intp)
    domain = (keys & np.uint64(0xF)).astype(np.intp)
    reserved = np.array([int(p) for p in Participant], np.int64)
    people = np.union1d(reserved, payee)
    payer = np.where(_PAYER[kind] == _PAYEE, payee, _PAYER[kind])
    receiver = np.where(_RECEIVER[kind] == _PAYEE, payee, _RECEIVER[kind])
    received = np.zeros(len(people), np.int64)
    paid = np.zeros(len(people), np.int64)
    np.add.at(received, np.searchsorted(people, receiver), sums)
    np.add.at(paid, np.searchsorted(people, payer), sums)
    gross = np.zeros((len(people), max(Domain) + 1), np.int64)
    debit = kind == Kind.DEBIT
    np.add.at(gross, (np.searchsorted(people, payee[debit]), domain[debit]), sums[debit])
    fee = np.asarray(fee_fen(gross, fees.rates(people))).sum(axis=1)
    fee[np.searchsorted(people, int(Participant.FEE_INCOME))] -= fee.sum()
    out = np.zeros(len(people), POSITION_DTYPE)
    out["participant"], out["received_fen"], out["paid_fen"] = people, received, paid
    out["fee_fen"], out["net_fen"] = fee, received - paid - fee
    if int(out["net_fen"].sum()) != 0:
        raise AssertionError("net positions do not sum to zero")
    return out
