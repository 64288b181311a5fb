"""Key material: the issuer master key (card keys and TACs) and the terminal key registry.

Per-card keys are diversified from the issuer master key, as PBOC e-purse cards do, so that a
card only ever holds its own key. A TAC is SipHash-2-4 under the card key over the record's
first 56 bytes. `compute_tacs` runs both steps for each record in one compiled loop over the
record fields as columns (records/siphash.py has the steps); `compute_tacs_vectorized` is the
same computation with numpy ufuncs over blocks of rows, kept as the check on the compiled one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from numba import njit

from cardsim.errors import InputError
from cardsim.records.layout import CARD_KEY_TAG, RECORD_DTYPE, TAC_COVERED_BYTES, tac_words
from cardsim.records.siphash import (
    sip_absorb,
    sip_finalize,
    sip_fold,
    sip_second_half,
    sip_start,
    siphash24_128_rows,
    siphash24_rows,
)

KEYS_SCHEMA = "cardsim.keys/1"
TAC_BLOCK_ROWS = 65_536

TAC_FIELDS = (
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
)
"""The fields a TAC covers, in byte order: the record's first 56 bytes."""
assert tuple(n for n in RECORD_DTYPE.names or () if n != "tac") == TAC_FIELDS

Fields = Mapping[str, np.ndarray] | np.ndarray
"""Record fields by name: a record array, or its fields as columns."""

_TAG = np.uint64(CARD_KEY_TAG)
_CARD_KEY_LENGTH = np.uint64(16 << 56)
"""Length byte of the 16-byte card key message, in the top byte of its final word."""
_TAC_LENGTH = np.uint64(TAC_COVERED_BYTES << 56)
_S8, _S16, _S32 = np.uint64(8), np.uint64(16), np.uint64(32)
_TAC_BLOCK = 1024
"""Rows whose message words are gathered into one scratch block (56 KiB, cache-resident)."""


def card_keys(master_key: bytes, card_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-card SipHash keys (k0, k1) = SipHash-2-4-128(master, card_id || "CARDKEY1")."""
    ids = np.asarray(card_ids, dtype=np.uint64)
    words = np.empty((ids.size, 2), dtype=np.uint64)
    words[:, 0] = ids
    words[:, 1] = CARD_KEY_TAG
    m0 = np.uint64(int.from_bytes(master_key[:8], "little"))
    m1 = np.uint64(int.from_bytes(master_key[8:16], "little"))
    return siphash24_128_rows(m0, m1, words)


def compute_tacs(master_key: bytes, records: Fields) -> np.ndarray:
    """The TAC each record's card would produce (uint64 per record).

    `records` is a record array or a mapping from every name in TAC_FIELDS to a column; one
    compiled loop derives each card key and MACs the record in registers, without the GIL.
    Contiguous columns (as read from Parquet) are fastest: they vectorize across rows.
    """
    columns = [_native_column(records[name], name) for name in TAC_FIELDS]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError(f"record columns differ in length: {[len(c) for c in columns]}")
    out = np.empty(n, np.uint64)
    m0, m1 = _master_words(master_key)
    _tacs_of_columns(m0, m1, out, *columns)
    return out


def _master_words(master_key: bytes) -> tuple[np.uint64, np.uint64]:
    if len(master_key) != 16:
        raise ValueError(f"master key must be 16 bytes, got {len(master_key)}")
    return (
        np.uint64(int.from_bytes(master_key[:8], "little")),
        np.uint64(int.from_bytes(master_key[8:16], "little")),
    )


def _native_column(column: np.ndarray, name: str) -> np.ndarray:
    """The column contiguous, in native byte order and read-only (no copy if it already is),
    so that the compiled loop sees one array type whatever the source: one compilation."""
    native = RECORD_DTYPE.fields[name][0].newbyteorder("=")  # type: ignore[index]
    out = np.ascontiguousarray(column, dtype=native).view()
    out.flags.writeable = False
    return out


@njit
def _hash_block(
    m0: np.uint64, m1: np.uint64, words: np.ndarray, rows: int, out: np.ndarray, start: int
) -> None:
    """out[start + i] = SipHash-2-4(card key of row i, words[:, i]) for i < rows.

    Word 1 is the card id. Reading the words of a cache-resident block, contiguous per word
    (`words` is a whole C-ordered array, never a slice of one), lets LLVM vectorize this loop
    across rows.
    """
    for i in range(rows):
        # The card key, SipHash-2-4-128(master, card_id || "CARDKEY1"), written out here:
        # LLVM does not inline a helper that large, and a call keeps the loop scalar.
        v0, v1, v2, v3 = sip_start(m0, m1, True)
        v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, words[1, i])
        v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, _TAG)
        v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, _CARD_KEY_LENGTH)
        v0, v1, v2, v3 = sip_finalize(v0, v1, v2, v3, True)
        k0 = sip_fold(v0, v1, v2, v3)
        k1 = sip_fold(*sip_second_half(v0, v1, v2, v3))
        # The TAC under that key.
        v0, v1, v2, v3 = sip_start(k0, k1, False)
        for j in range(7):
            v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, words[j, i])
        v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, _TAC_LENGTH)
        out[start + i] = sip_fold(*sip_finalize(v0, v1, v2, v3, False))


@njit(nogil=True, cache=True)
def _tacs_of_columns(
    m0: np.uint64,
    m1: np.uint64,
    out: np.ndarray,
    terminal_id: np.ndarray,
    terminal_serial: np.ndarray,
    card_id: np.ndarray,
    card_counter: np.ndarray,
    payee: np.ndarray,
    time_ms: np.ndarray,
    amount_fen: np.ndarray,
    balance_after_fen: np.ndarray,
    domain: np.ndarray,
    kind: np.ndarray,
    flags: np.ndarray,
    reserved: np.ndarray,
) -> None:
    """out[i] = the TAC of row i: the record's seven little-endian words [0, 56), rebuilt from
    its fields (docs/record-format.md; signed fields as their two's-complement bits), a block
    of rows at a time."""
    words = np.empty((7, _TAC_BLOCK), np.uint64)
    for start in range(0, len(out), _TAC_BLOCK):
        rows = min(_TAC_BLOCK, len(out) - start)
        for r in range(rows):
            i = start + r
            words[0, r] = np.uint64(terminal_id[i]) | (np.uint64(terminal_serial[i]) << _S32)
            words[1, r] = card_id[i]
            words[2, r] = np.uint64(card_counter[i]) | (np.uint64(payee[i]) << _S32)
            words[3, r] = np.uint64(time_ms[i])
            words[4, r] = np.uint64(amount_fen[i])
            words[5, r] = np.uint64(balance_after_fen[i])
            words[6, r] = (
                np.uint64(domain[i])
                | (np.uint64(kind[i]) << _S8)
                | (np.uint64(flags[i]) << _S16)
                | (np.uint64(reserved[i]) << _S32)
            )
        _hash_block(m0, m1, words, rows, out, start)


def compute_tacs_vectorized(master_key: bytes, records: np.ndarray) -> np.ndarray:
    """`compute_tacs` with numpy ufuncs instead of compiled code (uint64 per record).

    Slower; kept as an independent check on the compiled loop. Works a block of rows at a
    time so that the per-card keys stay in cache between the key derivation and the MAC.
    """
    cards = records["card_id"]
    words = tac_words(records)
    out = np.empty(len(records), np.uint64)
    for start in range(0, len(records), TAC_BLOCK_ROWS):
        block = slice(start, start + TAC_BLOCK_ROWS)
        k0, k1 = card_keys(master_key, cards[block])
        out[block] = siphash24_rows(k0, k1, words[block])
    return out


@dataclass(frozen=True)
class TerminalKey:
    """One terminal signing key as the clearing centre knows it."""

    key_id: int
    terminal_id: int
    public_key: bytes
    """Raw 32-byte Ed25519 public key."""
    revoked: bool = False


@dataclass
class KeyRegistry:
    """What the clearing centre needs to check a log: terminal public keys and the master key."""

    master_key: bytes
    terminals: dict[int, TerminalKey] = field(default_factory=dict)
    _loaded: dict[int, Ed25519PublicKey] = field(default_factory=dict, repr=False)

    def add(self, key: TerminalKey) -> None:
        """Register a terminal key (key ids are unique)."""
        if key.key_id in self.terminals:
            raise ValueError(f"duplicate key_id {key.key_id}")
        self.terminals[key.key_id] = key

    def public_key(self, key_id: int) -> Ed25519PublicKey:
        """The loaded Ed25519 public key for key_id (cached)."""
        loaded = self._loaded.get(key_id)
        if loaded is None:
            loaded = Ed25519PublicKey.from_public_bytes(self.terminals[key_id].public_key)
            self._loaded[key_id] = loaded
        return loaded

    def key_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every key as arrays: key_id (ascending, int64), its terminal_id (int64), revoked."""
        keys = sorted(self.terminals.values(), key=lambda k: k.key_id)
        return (
            np.array([k.key_id for k in keys], np.int64),
            np.array([k.terminal_id for k in keys], np.int64),
            np.array([k.revoked for k in keys], bool),
        )

    def to_json(self) -> dict[str, Any]:
        """The registry as a JSON-ready dict (keys ordered by key_id)."""
        return {
            "schema": KEYS_SCHEMA,
            "issuer": {"master_key_hex": self.master_key.hex(), "tac": "siphash-2-4"},
            "terminals": [
                {
                    "key_id": k.key_id,
                    "terminal_id": k.terminal_id,
                    "public_key_hex": k.public_key.hex(),
                    "revoked": k.revoked,
                }
                for k in sorted(self.terminals.values(), key=lambda k: k.key_id)
            ],
        }

    def save(self, path: Path) -> None:
        """Write keys.json atomically."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        tmp.replace(path)


def load_registry(path: str | Path) -> KeyRegistry:
    """Read and validate keys.json; any problem is an InputError naming the field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "key file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON key file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != KEYS_SCHEMA:
        raise InputError(path, f'field "schema" must be "{KEYS_SCHEMA}"')
    registry = KeyRegistry(master_key=_master_key(path, doc.get("issuer")))
    terminals = doc.get("terminals")
    if not isinstance(terminals, list):
        raise InputError(path, 'field "terminals" must be a list of terminal keys')
    for i, entry in enumerate(terminals):
        key = _terminal_key(path, i, entry)
        if key.key_id in registry.terminals:
            raise InputError(path, f"terminals[{i}].key_id {key.key_id} is used twice")
        registry.add(key)
    return registry


def _master_key(path: Path, issuer: object) -> bytes:
    if not isinstance(issuer, dict):
        raise InputError(path, 'field "issuer" must be an object with "master_key_hex"')
    try:
        key = bytes.fromhex(str(issuer.get("master_key_hex")))
    except ValueError:
        key = b""
    if len(key) != 16:
        raise InputError(path, 'field "issuer.master_key_hex" must be 32 hex digits (16 bytes)')
    return key


def _terminal_key(path: Path, i: int, entry: object) -> TerminalKey:
    where = f"terminals[{i}]"
    if not isinstance(entry, dict):
        raise InputError(path, f"{where} must be an object")
    for name in ("key_id", "terminal_id"):
        value = entry.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
            raise InputError(path, f"{where}.{name} must be an integer in [0, 2^32)")
    try:
        public = bytes.fromhex(str(entry.get("public_key_hex")))
    except ValueError:
        public = b""
    if len(public) != 32:
        raise InputError(path, f"{where}.public_key_hex must be 64 hex digits (32 bytes)")
    revoked = entry.get("revoked", False)
    if not isinstance(revoked, bool):
        raise InputError(path, f"{where}.revoked must be true or false")
    return TerminalKey(entry["key_id"], entry["terminal_id"], public, revoked)
