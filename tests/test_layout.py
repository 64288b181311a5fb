"""The binary layout is a published format: its sizes and offsets must never drift."""

from __future__ import annotations

import numpy as np

from cardsim.records.batch import BATCH_DTYPE, header_array
from cardsim.records.codes import Domain, Kind
from cardsim.records.layout import (
    HEADER_DTYPE,
    RECORD_DTYPE,
    RECORD_SIZE,
    TAC_COVERED_BYTES,
    empty_records,
    tac_words,
)


def test_record_is_64_bytes_with_documented_offsets() -> None:
    assert RECORD_SIZE == RECORD_DTYPE.itemsize == 64
    offsets = {name: RECORD_DTYPE.fields[name][1] for name in RECORD_DTYPE.names}
    assert offsets == {
        "terminal_id": 0,
        "terminal_serial": 4,
        "card_id": 8,
        "card_counter": 16,
        "payee": 20,
        "time_ms": 24,
        "amount_fen": 32,
        "balance_after_fen": 40,
        "domain": 48,
        "kind": 49,
        "flags": 50,
        "reserved": 52,
        "tac": 56,
    }
    assert all(RECORD_DTYPE.fields[n][0].byteorder in "<|=" for n in RECORD_DTYPE.names)
    assert RECORD_DTYPE["amount_fen"] == np.dtype("<i8")


def test_header_is_64_bytes_and_starts_with_magic() -> None:
    assert HEADER_DTYPE.itemsize == 64
    batches = np.zeros(1, BATCH_DTYPE)
    batches["terminal_id"], batches["record_count"] = 7, 3
    raw = header_array(batches).tobytes()
    assert raw[:8] == b"CSBATCH1"
    assert raw[8:12] == (7).to_bytes(4, "little")
    assert raw[24:28] == (3).to_bytes(4, "little")


def test_tac_words_are_the_first_56_bytes_without_copying() -> None:
    rec = empty_records(3)
    rec["terminal_id"] = [1, 2, 3]
    rec["tac"] = 99
    words = tac_words(rec)
    assert words.shape == (3, TAC_COVERED_BYTES // 8)
    assert np.shares_memory(words, rec)
    assert words.tobytes() == b"".join(r.tobytes()[:56] for r in rec)


def test_codes_are_stable() -> None:
    assert [(d.name, d.value) for d in Domain] == [
        ("BUS", 1),
        ("BIKE", 2),
        ("HOSPITAL", 3),
        ("POS", 4),
        ("TOPUP", 5),
    ]
    assert [(k.name, k.value) for k in Kind] == [
        ("DEBIT", 1),
        ("LOAD", 2),
        ("REFUND", 3),
        ("DEPOSIT_HOLD", 4),
        ("DEPOSIT_RELEASE", 5),
        ("INSURANCE_SHARE", 6),
    ]
