"""An outside verifier holding only docs/record-format.md, hashlib and PyNaCl can check a log."""

from __future__ import annotations

import hashlib
import struct

import nacl.signing

from cardsim.records.keys import compute_tacs
from tests.conftest import small_day

MASK = (1 << 64) - 1
FIELDS = (
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
)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK


def _sipround(v: list[int]) -> None:
    v[0] = (v[0] + v[1]) & MASK
    v[1] = _rotl(v[1], 13)
    v[1] ^= v[0]
    v[0] = _rotl(v[0], 32)
    v[2] = (v[2] + v[3]) & MASK
    v[3] = _rotl(v[3], 16)
    v[3] ^= v[2]
    v[0] = (v[0] + v[3]) & MASK
    v[3] = _rotl(v[3], 21)
    v[3] ^= v[0]
    v[2] = (v[2] + v[1]) & MASK
    v[1] = _rotl(v[1], 17)
    v[1] ^= v[2]
    v[2] = _rotl(v[2], 32)


def _siphash(key: bytes, msg: bytes, out16: bool = False) -> bytes:
    """SipHash-2-4 written from the paper, independent of cardsim's implementation."""
    k0, k1 = struct.unpack("<QQ", key)
    v = [
        k0 ^ 0x736F6D6570736575,
        k1 ^ 0x646F72616E646F6D,
        k0 ^ 0x6C7967656E657261,
        k1 ^ 0x7465646279746573,
    ]
    if out16:
        v[1] ^= 0xEE
    tail = len(msg) % 8
    padded = (
        msg[: len(msg) - tail] + msg[len(msg) - tail :] + bytes(7 - tail) + bytes([len(msg) & 0xFF])
    )
    for (m,) in struct.iter_unpack("<Q", padded):
        v[3] ^= m
        _sipround(v)
        _sipround(v)
        v[0] ^= m
    v[2] ^= 0xEE if out16 else 0xFF
    for _ in range(4):
        _sipround(v)
    out = struct.pack("<Q", v[0] ^ v[1] ^ v[2] ^ v[3])
    if out16:
        v[1] ^= 0xDD
        for _ in range(4):
            _sipround(v)
        out += struct.pack("<Q", v[0] ^ v[1] ^ v[2] ^ v[3])
    return out


def test_batch_signatures_verify_with_hashlib_and_pynacl() -> None:
    day = small_day(seed=3, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    log = day.log
    assert len(log.batches) > 5
    for b, batch in enumerate(log.batches):
        rows = [r for r in range(len(log.records)) if log.batch_row[r] == b]
        header = (
            b"CSBATCH1"
            + struct.pack(
                "<6I",
                *(
                    int(batch[f])
                    for f in (
                        "terminal_id",
                        "batch_serial",
                        "first_serial",
                        "last_serial",
                        "record_count",
                        "key_id",
                    )
                ),
            )
            + batch["prev_digest"].tobytes()
        )
        body = b"".join(
            struct.pack("<IIQIIqqqBBHIQ", *(int(log.records[r][f]) for f in FIELDS)) for r in rows
        )
        digest = hashlib.sha256(header + body).digest()
        key = day.registry.terminals[int(batch["key_id"])].public_key
        nacl.signing.VerifyKey(key).verify(
            b"cardsim batch signature v1\x00" + digest, batch["signature"].tobytes()
        )


def test_tacs_match_the_documented_construction() -> None:
    day = small_day(seed=4, records=50, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    master = day.registry.master_key
    for rec in day.log.records:
        card_key = _siphash(
            master, struct.pack("<Q", int(rec["card_id"])) + b"CARDKEY1", out16=True
        )
        expected = struct.unpack("<Q", _siphash(card_key, rec.tobytes()[:56]))[0]
        assert int(rec["tac"]) == expected
    assert (compute_tacs(master, day.log.records) == day.log.records["tac"]).all()


def test_independent_siphash_matches_published_vector() -> None:
    # First and last entries of vectors_sip64 in the reference repository's vectors.h.
    key = bytes(range(16))
    assert _siphash(key, b"").hex() == "310e0edd47db6f72"
    assert _siphash(key, bytes(range(63))).hex() == "724506eb4c328a95"
    assert _siphash(key, b"", out16=True).hex() == "a3817f04ba25a8e66df67214c7550293"
