"""Key material: the issuer master key (card keys and TACs) and the terminal key registry.

Per-card keys are diversified from the issuer master key, as PBOC e-purse cards do, so that a
card only ever holds its own key. A TAC is SipHash-2-4 under the card key over the record's
first 56 bytes; both steps are vectorized over whole batches (see records/siphash.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cardsim.errors import InputError
from cardsim.records.layout import CARD_KEY_TAG, tac_words
from cardsim.records.siphash import siphash24_128_rows, siphash24_rows

KEYS_SCHEMA = "cardsim.keys/1"
TAC_BLOCK_ROWS = 65_536


def card_keys(master_key: bytes, card_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-card SipHash keys (k0, k1) = SipHash-2-4-128(master, card_id || "CARDKEY1")."""
    ids = np.asarray(card_ids, dtype=np.uint64)
    words = np.empty((ids.size, 2), dtype=np.uint64)
    words[:, 0] = ids
    words[:, 1] = CARD_KEY_TAG
    m0 = np.uint64(int.from_bytes(master_key[:8], "little"))
    m1 = np.uint64(int.from_bytes(master_key[8:16], "little"))
    return siphash24_128_rows(m0, m1, words)


def compute_tacs(
    master_key: bytes, records: np.ndarray, card_id: np.ndarray | None = None
) -> np.ndarray:
    """The TAC each record's card would produce (uint64 per record).

    Works a block of rows at a time so that the per-card keys stay in cache between the key
    derivation and the MAC. `card_id` may pass the card column contiguously (faster).
    """
    cards = records["card_id"] if card_id is None else card_id
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
