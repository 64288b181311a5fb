"""SipHash-2-4 (Aumasson & Bernstein): a pure-Python reference, numpy kernels over rows, and
the compiled (numba) building blocks of the TAC kernel.

Card-side MACs (TACs) are SipHash-2-4 with a 64-bit output under a per-card key; the per-card
keys themselves are SipHash-2-4 in its 128-bit output mode under the issuer master key. Both
must be computed for millions of records at once, each row with its own key. The `*_rows`
functions evaluate one SipHash per row with numpy ufuncs, a block of rows at a time; the
settlement uses the compiled `sip_*` steps instead (records/keys.py), which hash a row while it
sits in registers, and `siphash24_byte_rows` runs those same steps over byte strings of any
length so that they are checked against the published vectors.

Conventions follow the reference C code (github.com/veorq/SipHash):

* a 16-byte key is the two little-endian 64-bit words ``k0 = key[0:8]``, ``k1 = key[8:16]``;
* the 64-bit output is the little-endian u64 of the 8 output bytes;
* the 128-bit output is 16 bytes, ``lo || hi`` with each half little-endian.

The row kernels take messages whose length is a whole number of 64-bit words, the same for every
row, so the final block is just the length byte. All scratch memory is allocated per call, so the
kernels are thread-safe; the ufuncs and the compiled kernels release the GIL, so threads hashing
disjoint row ranges run in parallel.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "CHUNK_ROWS",
    "sip_absorb",
    "sip_finalize",
    "sip_fold",
    "sip_second_half",
    "sip_start",
    "siphash24",
    "siphash24_128",
    "siphash24_128_rows",
    "siphash24_byte_rows",
    "siphash24_rows",
]

U64Array = npt.NDArray[np.uint64]
KeyWords = npt.NDArray[np.uint64] | np.uint64 | int

CHUNK_ROWS = 65_536
"""Rows hashed per block by the row kernels (rows). Five uint64 scratch rows of this length
(2.5 MiB) make the working set; measured best on one and on two threads alike."""

_MASK = (1 << 64) - 1
_IV0 = 0x736F6D6570736575  # "somepseu"
_IV1 = 0x646F72616E646F6D  # "dorandom"
_IV2 = 0x6C7967656E657261  # "lygenera"
_IV3 = 0x7465646279746573  # "tedbytes"

# Immutable numpy scalars used by the kernels (no mutable module state).
_U_IV0 = np.uint64(_IV0)
_U_IV1 = np.uint64(_IV1)
_U_IV2 = np.uint64(_IV2)
_U_IV3 = np.uint64(_IV3)
_U_EE = np.uint64(0xEE)
_U_FF = np.uint64(0xFF)
_U_DD = np.uint64(0xDD)
_S13, _S51 = np.uint64(13), np.uint64(51)
_S16, _S48 = np.uint64(16), np.uint64(48)
_S17, _S47 = np.uint64(17), np.uint64(47)
_S21, _S43 = np.uint64(21), np.uint64(43)
_S32 = np.uint64(32)


# --------------------------------------------------------------------------------------------
# Pure-Python reference
# --------------------------------------------------------------------------------------------


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _rounds(v: list[int], count: int) -> None:
    """`count` SipRounds on the state ``v = [v0, v1, v2, v3]``, in place."""
    v0, v1, v2, v3 = v
    for _ in range(count):
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    v[:] = [v0, v1, v2, v3]


def _reference(key: bytes, msg: bytes, out128: bool) -> list[int]:
    """SipHash-2-4 of `msg` under `key`: [out] (64-bit mode) or [lo, hi] (128-bit mode)."""
    if len(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {len(key)}")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v = [k0 ^ _IV0, k1 ^ _IV1, k0 ^ _IV2, k1 ^ _IV3]
    if out128:
        v[1] ^= 0xEE
    whole = len(msg) - len(msg) % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(msg[i : i + 8], "little")
        v[3] ^= m
        _rounds(v, 2)
        v[0] ^= m
    b = ((len(msg) & 0xFF) << 56) | int.from_bytes(msg[whole:], "little")
    v[3] ^= b
    _rounds(v, 2)
    v[0] ^= b
    v[2] ^= 0xEE if out128 else 0xFF
    _rounds(v, 4)
    out = [v[0] ^ v[1] ^ v[2] ^ v[3]]
    if out128:
        v[1] ^= 0xDD
        _rounds(v, 4)
        out.append(v[0] ^ v[1] ^ v[2] ^ v[3])
    return out


def siphash24(key: bytes, msg: bytes) -> int:
    """SipHash-2-4 of `msg` under the 16-byte `key`, 64-bit output (pure Python, slow).

    Returns the output as the reference C code does: the little-endian unsigned 64-bit integer
    of the 8 output bytes, in [0, 2**64). `msg` may have any length (bytes).
    """
    return _reference(key, msg, out128=False)[0]


def siphash24_128(key: bytes, msg: bytes) -> bytes:
    """SipHash-2-4 of `msg` under the 16-byte `key`, 128-bit output mode (pure Python, slow).

    Returns the 16 output bytes as the reference C code writes them (low 8 bytes first, each
    half little-endian). `msg` may have any length (bytes).
    """
    lo, hi = _reference(key, msg, out128=True)
    return lo.to_bytes(8, "little") + hi.to_bytes(8, "little")


# --------------------------------------------------------------------------------------------
# numpy row kernels
# --------------------------------------------------------------------------------------------


def _rot(x: U64Array, left: np.uint64, right: np.uint64, t: U64Array) -> None:
    """x = rotl(x, left) in place, with right = 64 - left; `t` is scratch of x's shape."""
    np.right_shift(x, right, out=t)
    np.left_shift(x, left, out=x)
    np.bitwise_or(x, t, out=x)


def _sip_rounds(
    v0: U64Array, v1: U64Array, v2: U64Array, v3: U64Array, t: U64Array, count: int
) -> None:
    """`count` SipRounds on every column of the state, in place; `t` is scratch."""
    add, xor = np.add, np.bitwise_xor
    for _ in range(count):
        add(v0, v1, out=v0)
        _rot(v1, _S13, _S51, t)
        xor(v1, v0, out=v1)
        _rot(v0, _S32, _S32, t)
        add(v2, v3, out=v2)
        _rot(v3, _S16, _S48, t)
        xor(v3, v2, out=v3)
        add(v0, v3, out=v0)
        _rot(v3, _S21, _S43, t)
        xor(v3, v0, out=v3)
        add(v2, v1, out=v2)
        _rot(v1, _S17, _S47, t)
        xor(v1, v2, out=v1)
        _rot(v2, _S32, _S32, t)


def _key_words(k: KeyWords, n: int, name: str) -> U64Array:
    """One key half as a read-only uint64 array of shape (n,) (a broadcast view if possible)."""
    a = np.asarray(k)
    if a.dtype.kind == "u":
        a = a.astype(np.uint64, copy=False)
    elif a.ndim == 0 and a.dtype.kind == "i" and 0 <= int(a) <= _MASK:
        a = a.astype(np.uint64)
    else:
        raise TypeError(f"{name} must be unsigned 64-bit key words, got dtype {a.dtype}")
    try:
        return np.broadcast_to(a, (n,))
    except ValueError:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to ({n},) rows") from None


def _message_words(words: np.ndarray) -> np.ndarray:
    w = np.asarray(words)
    if w.ndim != 2:
        raise ValueError(f"words must have shape (n, m), got {w.shape}")
    if w.dtype.kind != "u" or w.dtype.itemsize != 8:
        raise TypeError(f"words must be 64-bit unsigned integers, got dtype {w.dtype}")
    return w


def _hash_rows(
    k0: KeyWords,
    k1: KeyWords,
    words: np.ndarray,
    out128: bool,
    chunk_rows: int,
) -> tuple[U64Array, U64Array | None]:
    """The row kernel behind `siphash24_rows` and `siphash24_128_rows`."""
    w = _message_words(words)
    n, m = w.shape
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    a0 = _key_words(k0, n, "k0")
    a1 = _key_words(k1, n, "k1")
    lo = np.empty(n, dtype=np.uint64)
    hi = np.empty(n, dtype=np.uint64) if out128 else None
    if n == 0:
        return lo, hi

    c = min(chunk_rows, n)
    state = np.empty((4, c), dtype=np.uint64)
    scratch = np.empty(c, dtype=np.uint64)
    # One message column of the block, copied so the rounds never read strided, unaligned or
    # byte-swapped memory (`words` may be a column slice of a structured array).
    wbuf = np.empty(c, dtype=np.uint64)
    last = np.uint64(((8 * m) & 0xFF) << 56)  # final block: length byte, no tail bytes
    xor = np.bitwise_xor

    for start in range(0, n, c):
        stop = min(start + c, n)
        rows = stop - start
        v0, v1, v2, v3 = state[0, :rows], state[1, :rows], state[2, :rows], state[3, :rows]
        t = scratch[:rows]
        xor(a0[start:stop], _U_IV0, out=v0)
        xor(a1[start:stop], _U_IV1, out=v1)
        xor(a0[start:stop], _U_IV2, out=v2)
        xor(a1[start:stop], _U_IV3, out=v3)
        if out128:
            xor(v1, _U_EE, out=v1)
        mi = wbuf[:rows]
        for j in range(m):
            np.copyto(mi, w[start:stop, j])
            xor(v3, mi, out=v3)
            _sip_rounds(v0, v1, v2, v3, t, 2)
            xor(v0, mi, out=v0)
        xor(v3, last, out=v3)
        _sip_rounds(v0, v1, v2, v3, t, 2)
        xor(v0, last, out=v0)
        xor(v2, _U_EE if out128 else _U_FF, out=v2)
        _sip_rounds(v0, v1, v2, v3, t, 4)
        out = lo[start:stop]
        xor(v0, v1, out=out)
        xor(out, v2, out=out)
        xor(out, v3, out=out)
        if hi is not None:
            xor(v1, _U_DD, out=v1)
            _sip_rounds(v0, v1, v2, v3, t, 4)
            out = hi[start:stop]
            xor(v0, v1, out=out)
            xor(out, v2, out=out)
            xor(out, v3, out=out)
    return lo, hi


def siphash24_rows(
    k0: KeyWords,
    k1: KeyWords,
    words: np.ndarray,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> U64Array:
    """SipHash-2-4 (64-bit output) of every row, each row under its own key.

    Args:
        k0: uint64 array of shape (n,), or a scalar broadcast to all rows: the first key word of
            each row, ``int.from_bytes(key[:8], "little")``.
        k1: the same for the second key word, ``int.from_bytes(key[8:16], "little")``.
        words: unsigned 64-bit integer array of shape (n, m): row i's message is the m words
            ``words[i]`` written little-endian, i.e. exactly 8*m bytes (m is typically 0..8).
            May be any strided or unaligned view; it is copied one block column at a time.
        chunk_rows: rows hashed per block (rows); tunes the working set, not the result.

    Returns:
        uint64 array of shape (n,): ``siphash24(key_i, message_i)`` for every row i.
    """
    lo, _ = _hash_rows(k0, k1, words, out128=False, chunk_rows=chunk_rows)
    return lo


def siphash24_128_rows(
    k0: KeyWords,
    k1: KeyWords,
    words: np.ndarray,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[U64Array, U64Array]:
    """SipHash-2-4 in 128-bit output mode of every row, each row under its own key.

    Arguments as for `siphash24_rows`.

    Returns:
        (lo, hi), two uint64 arrays of shape (n,): the little-endian u64 of output bytes [0, 8)
        and [8, 16) of ``siphash24_128(key_i, message_i)`` for every row i.
    """
    lo, hi = _hash_rows(k0, k1, words, out128=True, chunk_rows=chunk_rows)
    assert hi is not None
    return lo, hi


# --------------------------------------------------------------------------------------------
# Compiled steps (numba)
# --------------------------------------------------------------------------------------------
#
# One SipHash as steps on the state (v0, v1, v2, v3), each a small compiled function that LLVM
# inlines into its caller: `sip_start`, `sip_absorb` per 64-bit message word (the last word
# carries the length byte and any tail bytes), `sip_finalize`, and `sip_fold` for the output;
# in 128-bit mode `sip_second_half` then `sip_fold` again give the high word. A caller loops
# over rows and calls them on values it has just loaded, so a row is hashed in registers, in
# one pass, and LLVM vectorizes that loop across rows (8 rows per AVX-512 register) as long as
# the inputs are contiguous and no step returns anything but the state or one word: a step
# returning (lo, hi) was measured to keep the loop scalar, about 5x slower.
# Every constant is a uint64: numba would turn uint64-with-int64 arithmetic into float64.

State = tuple[np.uint64, np.uint64, np.uint64, np.uint64]


@njit
def _jit_rotl(x: np.uint64, left: np.uint64, right: np.uint64) -> np.uint64:
    return (x << left) | (x >> right)


@njit
def _jit_round(v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64) -> State:
    v0 += v1
    v1 = _jit_rotl(v1, _S13, _S51) ^ v0
    v0 = _jit_rotl(v0, _S32, _S32)
    v2 += v3
    v3 = _jit_rotl(v3, _S16, _S48) ^ v2
    v0 += v3
    v3 = _jit_rotl(v3, _S21, _S43) ^ v0
    v2 += v1
    v1 = _jit_rotl(v1, _S17, _S47) ^ v2
    v2 = _jit_rotl(v2, _S32, _S32)
    return v0, v1, v2, v3


@njit
def _four_rounds(v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64) -> State:
    # Written out, not looped: a loop here kept the callers' row loops from vectorizing.
    v0, v1, v2, v3 = _jit_round(v0, v1, v2, v3)
    v0, v1, v2, v3 = _jit_round(v0, v1, v2, v3)
    v0, v1, v2, v3 = _jit_round(v0, v1, v2, v3)
    return _jit_round(v0, v1, v2, v3)


@njit
def sip_start(k0: np.uint64, k1: np.uint64, out128: bool) -> State:
    """Initial state for the key words (k0, k1); `out128` selects the 128-bit output mode."""
    v1 = k1 ^ _U_IV1
    if out128:
        v1 ^= _U_EE
    return k0 ^ _U_IV0, v1, k0 ^ _U_IV2, k1 ^ _U_IV3


@njit
def sip_absorb(v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64, m: np.uint64) -> State:
    """Absorb one little-endian message word: two SipRounds (the "2" of SipHash-2-4)."""
    v3 ^= m
    v0, v1, v2, v3 = _jit_round(v0, v1, v2, v3)
    v0, v1, v2, v3 = _jit_round(v0, v1, v2, v3)
    return v0 ^ m, v1, v2, v3


@njit
def sip_finalize(v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64, out128: bool) -> State:
    """The four finalization rounds (the "4"), after the last word was absorbed; `sip_fold`
    of the result is the 64-bit output, or the low word of the 128-bit one."""
    return _four_rounds(v0, v1, v2 ^ (_U_EE if out128 else _U_FF), v3)


@njit
def sip_second_half(v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64) -> State:
    """128-bit mode: the rounds after `sip_finalize` whose `sip_fold` is the high word."""
    return _four_rounds(v0, v1 ^ _U_DD, v2, v3)


@njit
def sip_fold(v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64) -> np.uint64:
    """One output word from the state."""
    return v0 ^ v1 ^ v2 ^ v3


@njit
def _word(data: np.ndarray, i: int, start: int, count: int) -> np.uint64:
    """Bytes data[i, start:start + count] (count <= 8) as a little-endian word."""
    m = np.uint64(0)
    for b in range(count):
        m |= np.uint64(data[i, start + b]) << np.uint64(8 * b)
    return m


@njit(nogil=True, cache=True)
def _byte_rows(
    k0: np.ndarray, k1: np.ndarray, data: np.ndarray, out128: bool, lo: np.ndarray, hi: np.ndarray
) -> None:
    length = data.shape[1]
    whole = length - length % 8
    last_length = np.uint64(length & 0xFF) << np.uint64(56)
    for i in range(data.shape[0]):
        v0, v1, v2, v3 = sip_start(k0[i], k1[i], out128)
        for start in range(0, whole, 8):
            v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, _word(data, i, start, 8))
        last = last_length | _word(data, i, whole, length - whole)
        v0, v1, v2, v3 = sip_absorb(v0, v1, v2, v3, last)
        v0, v1, v2, v3 = sip_finalize(v0, v1, v2, v3, out128)
        lo[i] = sip_fold(v0, v1, v2, v3)
        if out128:
            hi[i] = sip_fold(*sip_second_half(v0, v1, v2, v3))


def siphash24_byte_rows(
    k0: KeyWords, k1: KeyWords, data: np.ndarray, *, out128: bool = False
) -> tuple[U64Array, U64Array | None]:
    """SipHash-2-4 of every row of a byte matrix, each row under its own key (compiled).

    Args:
        k0, k1: the key words of each row, as for `siphash24_rows` (arrays or scalars).
        data: uint8 array of shape (n, L): row i's message is the L bytes ``data[i]``, any L.
        out128: the 128-bit output mode.

    Returns:
        (lo, None), or (lo, hi) with `out128`: uint64 arrays of shape (n,) holding the 64-bit
        output, or the two little-endian halves of the 128-bit output, of every row.
    """
    d = np.asarray(data)
    if d.ndim != 2 or d.dtype != np.uint8:
        raise TypeError(f"data must be a 2-d uint8 array, got {d.dtype} of shape {d.shape}")
    n = len(d)
    a0 = np.ascontiguousarray(_key_words(k0, n, "k0"))
    a1 = np.ascontiguousarray(_key_words(k1, n, "k1"))
    lo = np.empty(n, np.uint64)
    hi = np.empty(n if out128 else 0, np.uint64)
    _byte_rows(a0, a1, np.ascontiguousarray(d), out128, lo, hi)
    return lo, hi if out128 else None
