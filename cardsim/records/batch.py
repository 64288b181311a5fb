"""Terminal upload batches: the batch table, the canonical header, digests and signatures.

A batch digest is SHA-256(header || records) over the canonical bytes of records/layout.py;
the terminal signs SIGNATURE_CONTEXT || digest with Ed25519. Verifying needs only hashlib and
any Ed25519 library (docs/record-format.md shows how).
"""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cardsim.records.layout import BATCH_MAGIC, HEADER_DTYPE, SIGNATURE_CONTEXT

BATCH_DTYPE = np.dtype(
    [
        ("terminal_id", "<u4"),
        ("batch_serial", "<u4"),
        ("first_serial", "<u4"),
        ("last_serial", "<u4"),
        ("record_count", "<u4"),
        ("key_id", "<u4"),
        ("prev_digest", "u1", (32,)),
        ("signature", "u1", (64,)),
        ("uploaded_ms", "<i8"),
    ]
)
"""One row of the batch table: the signed header fields, the signature, and when the clearing
centre received the upload (not signed: it is the receiver's clock, not the terminal's)."""


def header_array(batches: np.ndarray) -> np.ndarray:
    """The canonical 64-byte headers (HEADER_DTYPE) of a batch table."""
    headers = np.zeros(len(batches), dtype=HEADER_DTYPE)
    headers["magic"] = BATCH_MAGIC
    for name in (
        "terminal_id",
        "batch_serial",
        "first_serial",
        "last_serial",
        "record_count",
        "key_id",
        "prev_digest",
    ):
        headers[name] = batches[name]
    return headers


def batch_digest(header: np.ndarray | bytes, records: np.ndarray) -> bytes:
    """SHA-256 over one canonical header followed by its records' canonical bytes."""
    h = hashlib.sha256(bytes(header) if isinstance(header, bytes) else header.tobytes())
    h.update(np.ascontiguousarray(records).view(np.uint8).data)
    return h.digest()


def signing_message(digest: bytes) -> bytes:
    """The exact bytes a terminal signs for a batch with this digest."""
    return SIGNATURE_CONTEXT + digest


def sign_digest(key: Ed25519PrivateKey, digest: bytes) -> bytes:
    """The terminal's 64-byte Ed25519 signature over a batch digest."""
    return key.sign(signing_message(digest))


def signature_ok(key: Ed25519PublicKey, signature: bytes, digest: bytes) -> bool:
    """Whether signature is the terminal's valid signature over this batch digest."""
    try:
        key.verify(signature, signing_message(digest))
    except InvalidSignature:
        return False
    return True
