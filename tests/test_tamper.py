"""Any single flipped byte in a record, a header field or a signature is caught: the batch it
touches books nothing, and the rest of the log settles as before."""

from __future__ import annotations

import numpy as np
import pytest

from cardsim.records.batch import BATCH_DTYPE
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import BOOKED
from tests import mutations
from tests.conftest import small_day

TARGET = 2


@pytest.fixture(scope="module")
def baseline():
    day = small_day(
        seed=11,
        records=120,
        terminals=3,
        batch_size=8,
        repeat_fraction=0.0,
        tampered_batches=0,
        forged_records=0,
    )
    return day, settle(day.log, day.registry)


def _assert_caught(day, clean, batch: int) -> None:
    result = settle(day.log, day.registry)
    rows = mutations.rows_of(day.log, batch)
    assert not np.any(result.outcome[rows] == BOOKED), "a tampered batch booked records"
    others = np.ones(len(day.log.records), bool)
    others[rows] = False
    np.testing.assert_array_equal(result.outcome[others], clean.outcome[others])


@pytest.mark.parametrize("offset", range(64))
def test_flipped_record_byte_is_caught(baseline, offset: int) -> None:
    day, clean = baseline
    saved = day.log.records.copy()
    row = int(mutations.rows_of(day.log, TARGET)[1])
    try:
        mutations.flip_byte(day, row, offset)
        _assert_caught(day, clean, TARGET)
    finally:
        day.log.records[:] = saved


HEADER_BYTES = [
    (name, i)
    for name in (
        "terminal_id",
        "batch_serial",
        "first_serial",
        "last_serial",
        "record_count",
        "key_id",
        "prev_digest",
        "signature",
    )
    for i in range(BATCH_DTYPE[name].itemsize)
]


@pytest.mark.parametrize("field, index", HEADER_BYTES)
def test_flipped_header_or_signature_byte_is_caught(baseline, field: str, index: int) -> None:
    day, clean = baseline
    saved = day.log.batches.copy()
    try:
        raw = day.log.batches[field][TARGET : TARGET + 1].view(np.uint8).reshape(-1)
        raw[index] ^= 0x5A
        _assert_caught(day, clean, TARGET)
    finally:
        day.log.batches[:] = saved
