"""The fixed 64-byte binary record and the 64-byte batch header.

The byte layouts here are the canonical bytes that TACs and batch signatures cover; they are
specified for outside verifiers in docs/record-format.md. All integers are little-endian.
"""

from __future__ import annotations

import numpy as np

RECORD_SIZE = 64
HEADER_SIZE = 64
TAC_COVERED_BYTES = 56
"""The TAC covers bytes [0, 56) of a record: every field before the TAC itself."""

RECORD_DTYPE = np.dtype(
    {
        "names": [
            "terminal_id",
            "terminal_serial",
            "card_id",
            "card_counter",
            "payee",
            "time_ms",
            "amount_fen",
            "balance_after_fen",
            "domain",
            "kind",
            "flags",
            "reserved",
            "tac",
        ],
        "formats": [
            "<u4",
            "<u4",
            "<u8",
            "<u4",
            "<u4",
            "<i8",
            "<i8",
            "<i8",
            "u1",
            "u1",
            "<u2",
            "<u4",
            "<u8",
        ],
        "offsets": [0, 4, 8, 16, 20, 24, 32, 40, 48, 49, 50, 52, 56],
        "itemsize": RECORD_SIZE,
    }
)
"""One transaction. (terminal_id, terminal_serial) is the record's identity."""

RECORD_FIELDS: tuple[str, ...] = tuple(RECORD_DTYPE.names or ())

BATCH_MAGIC = b"CSBATCH1"
"""First 8 bytes of every header: domain separation for the batch digest."""

HEADER_DTYPE = np.dtype(
    {
        "names": [
            "magic",
            "terminal_id",
            "batch_serial",
            "first_serial",
            "last_serial",
            "record_count",
            "key_id",
            "prev_digest",
        ],
        "formats": ["S8", "<u4", "<u4", "<u4", "<u4", "<u4", "<u4", ("u1", (32,))],
        "offsets": [0, 8, 12, 16, 20, 24, 28, 32],
        "itemsize": HEADER_SIZE,
    }
)
"""The signed part of a batch header."""

HEADER_FIELDS: tuple[str, ...] = tuple(n for n in HEADER_DTYPE.names or () if n != "magic")

SIGNATURE_CONTEXT = b"cardsim batch signature v1\x00"
"""Prefix of the message a terminal signs: SIGNATURE_CONTEXT || SHA-256(header || records)."""

CARD_KEY_TAG = int.from_bytes(b"CARDKEY1", "little")
"""Second message word of the per-card key derivation (domain separation)."""

MAX_AMOUNT_FEN = 1_000_000_000
"""Largest amount or balance one record may carry (CNY 10 million); keeps every sum in int64."""

KNOWN_FLAGS = 0x0003
"""Bit 0: authorised online. Bit 1: recovered torn transaction. Other bits must be zero."""

ZERO_DIGEST = bytes(32)
"""prev_digest of a terminal's first batch."""

assert RECORD_DTYPE.itemsize == RECORD_SIZE
assert HEADER_DTYPE.itemsize == HEADER_SIZE


def empty_records(n: int) -> np.ndarray:
    """A zeroed record array of length n."""
    return np.zeros(n, dtype=RECORD_DTYPE)


def tac_words(records: np.ndarray) -> np.ndarray:
    """The TAC-covered bytes of each record as 7 little-endian uint64 words, shape (n, 7).

    A view when `records` is contiguous, so no bytes are copied.
    """
    raw = np.ascontiguousarray(records).view(np.uint8).reshape(-1, RECORD_SIZE)
    return raw[:, :TAC_COVERED_BYTES].view("<u8")
