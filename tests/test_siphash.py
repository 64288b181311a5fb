"""SipHash-2-4: the published test vectors, the numpy row kernels and the compiled kernels
(byte rows, and the record TAC loop) against the pure-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.records.keys import TAC_FIELDS, compute_tacs, compute_tacs_vectorized
from cardsim.records.layout import CARD_KEY_TAG, RECORD_DTYPE, TAC_COVERED_BYTES
from cardsim.records.siphash import (
    siphash24,
    siphash24_128,
    siphash24_128_rows,
    siphash24_byte_rows,
    siphash24_rows,
)

# Expected outputs of SipHash-2-4 for key = bytes(range(16)) and message = bytes(range(i)),
# i = 0..63, as the output bytes in hex: vectors_sip64 and vectors_sip128 of vectors.h in the
# reference implementation (github.com/veorq/SipHash).
# fmt: off
VECTORS_64 = [
    "310e0edd47db6f72", "fd67dc93c539f874", "5a4fa9d909806c0d", "2d7efbd796666785",
    "b7877127e09427cf", "8da699cd64557618", "cee3fe586e46c9cb", "37d1018bf50002ab",
    "6224939a79f5f593", "b0e4a90bdf82009e", "f3b9dd94c5bb5d7a", "a7ad6b22462fb3f4",
    "fbe50e86bc8f1e75", "903d84c02756ea14", "eef27a8e90ca23f7", "e545be4961ca29a1",
    "db9bc2577fcc2a3f", "9447be2cf5e99a69", "9cd38d96f0b3c14b", "bd6179a71dc96dbb",
    "98eea21af25cd6be", "c7673b2eb0cbf2d0", "883ea3e395675393", "c8ce5ccd8c030ca8",
    "94af49f6c650adb8", "eab8858ade92e1bc", "f315bb5bb835d817", "adcf6b0763612e2f",
    "a5c91da7acaa4dde", "716595876650a2a6", "28ef495c53a387ad", "42c341d8fa92d832",
    "ce7cf2722f512771", "e37859f94623f3a7", "381205bb1ab0e012", "ae97a10fd434e015",
    "b4a31508beff4d31", "81396229f0907902", "4d0cf49ee5d4dcca", "5c73336a76d8bf9a",
    "d0a704536ba93e0e", "925958fcd6420cad", "a915c29bc8067318", "952b79f3bc0aa6d4",
    "f21df2e41d4535f9", "87577519048f53a9", "10a56cf5dfcd9adb", "eb75095ccd986cd0",
    "51a9cb9ecba312e6", "96afadfc2ce666c7", "72fe52975a4364ee", "5a1645b276d592a1",
    "b274cb8ebf87870a", "6f9bb4203de7b381", "eaecb2a30b22a87f", "9924a43cc1315724",
    "bd838d3aafbf8db7", "0b1a2a3265d51aea", "135079a3231ce660", "932b2846e4d70666",
    "e1915f5cb1eca46c", "f325965ca16d629f", "575ff28e60381be5", "724506eb4c328a95",
]

VECTORS_128 = [
    "a3817f04ba25a8e66df67214c7550293", "da87c1d86b99af44347659119b22fc45",
    "8177228da4a45dc7fca38bdef60affe4", "9c70b60c5267a94e5f33b6b02985ed51",
    "f88164c12d9c8faf7d0f6e7c7bcd5579", "1368875980776f8854527a07690e9627",
    "14eeca338b208613485ea0308fd7a15e", "a1f1ebbed8dbc153c0b84aa61ff08239",
    "3b62a9ba6258f5610f83e264f31497b4", "264499060ad9baabc47f8b02bb6d71ed",
    "00110dc378146956c95447d3f3d0fbba", "0151c568386b6677a2b4dc6f81e5dc18",
    "d626b266905ef35882634df68532c125", "9869e247e9c08b10d029934fc4b952f7",
    "31fcefac66d7de9c7ec7485fe4494902", "5493e99933b0a8117e08ec0f97cfc3d9",
    "6ee2a4ca67b054bbfd3315bf85230577", "473d06e8738db89854c066c47ae47740",
    "a426e5e423bf4885294da481feaef723", "78017731cf65fab074d5208952512eb1",
    "9e25fc833f2290733e9344a5e83839eb", "568e495abe525a218a2214cd3e071d12",
    "4a29b54552d16b9a469c10528eff0aae", "c9d184ddd5a9f5e0cf8ce29a9abf691c",
    "2db479ae78bd50d8882a8a178a6132ad", "8ece5f042d5e447b5051b9eacb8d8f6f",
    "9c0b53b4b3c307e87eaee08678141f66", "abf248af69a6eae4bfd3eb2f129eeb94",
    "0664da1668574b88b935f3027358aef4", "aa4b9dc4bf337de90cd4fd3c467c6ab7",
    "ea5c7f471faf6bde2b1ad7d4686d2287", "2939b0183223fafc1723de4f52c43d35",
    "7c3956ca5eeafc3e363e9d556546eb68", "77c6077146f01c32b6b69d5f4ea9ffcf",
    "37a6986cb8847edf0925f0f1309b54de", "a705f0e69da9a8f907241a2e923c8cc8",
    "3dc47d1f29c448461e9e76ed904f6711", "0d62bf01e6fc0e1a0d3c4751c5d3692b",
    "8c03468bca7c669ee4fd5e084bbee7b5", "528a5bb93baf2c9c4473cce5d0d22bd9",
    "df6a301e95c95dad97ae0cc8c6913bd8", "801189902c857f39e73591285e70b6db",
    "e617346ac9c231bb3650ae34ccca0c5b", "27d93437efb721aa401821dcec5adf89",
    "89237d9ded9c5e78d8b1c9b166cc7342", "4a6d8091bf5e7d651189fa94a250b14c",
    "0e33f96055e7ae893ffc0e3dcf492902", "e61c432b720b19d18ec8d84bdc63151b",
    "f7e5aef549f782cf379055a608269b16", "438d030fd0b7a54fa837f2ad201a6403",
    "a590d3ee4fbf04e3247e0d27f286423f", "5fe2c1a172fe93c4b15cd37caef9f538",
    "2c97325cbd06b36eb2133dd08b3a017c", "92c814227a6bca949ff0659f002ad39e",
    "dce850110bd8328cfbd50841d6911d87", "67f14984c7da791248e32bb5922583da",
    "1938f2cf72d54ee97e94166fa91d2a36", "74481e9646ed49fe0f6224301604698e",
    "57fca5de98a9d6d8006438d0583d8a1d", "9fecde1cefdc1cbed4763674d9575359",
    "e3040c00eb28f15366ca73cbd872e740", "7697009a6a831dfecca91c5993670f7a",
    "5853542321f567a005d547a4f04759bd", "5150d1772f50834a503e069a973fbd7c",
]
# fmt: on

KEY = bytes(range(16))
K0 = np.uint64(int.from_bytes(KEY[:8], "little"))
K1 = np.uint64(int.from_bytes(KEY[8:], "little"))


def _words(msgs: list[bytes]) -> np.ndarray:
    """Equal-length messages (a multiple of 8 bytes) as an (n, m) uint64 array."""
    m = len(msgs[0]) // 8
    raw = np.frombuffer(b"".join(msgs), dtype=np.uint8).reshape(len(msgs), 8 * m)
    return raw.view("<u8").astype(np.uint64).reshape(len(msgs), m)


def _keys(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    k0 = np.array([int.from_bytes(k[:8], "little") for k in keys], dtype=np.uint64)
    k1 = np.array([int.from_bytes(k[8:], "little") for k in keys], dtype=np.uint64)
    return k0, k1


def _as_bytes128(lo: np.ndarray, hi: np.ndarray) -> list[bytes]:
    return [
        int(a).to_bytes(8, "little") + int(b).to_bytes(8, "little")
        for a, b in zip(lo, hi, strict=True)
    ]


@pytest.mark.parametrize("length", range(64))
def test_reference_64_vectors(length: int) -> None:
    assert siphash24(KEY, bytes(range(length))) == int.from_bytes(
        bytes.fromhex(VECTORS_64[length]), "little"
    )


@pytest.mark.parametrize("length", range(64))
def test_reference_128_vectors(length: int) -> None:
    assert siphash24_128(KEY, bytes(range(length))) == bytes.fromhex(VECTORS_128[length])


@pytest.mark.parametrize("m", range(8))
def test_rows_vectors(m: int) -> None:
    msg = bytes(range(8 * m))
    words = _words([msg] * 3)
    out = siphash24_rows(K0, K1, words)
    assert out.dtype == np.uint64 and out.shape == (3,)
    assert [int(x).to_bytes(8, "little").hex() for x in out] == [VECTORS_64[8 * m]] * 3
    lo, hi = siphash24_128_rows(np.full(3, K0), np.full(3, K1), words)
    assert lo.dtype == hi.dtype == np.uint64 and lo.shape == hi.shape == (3,)
    assert [b.hex() for b in _as_bytes128(lo, hi)] == [VECTORS_128[8 * m]] * 3


def test_reference_rejects_bad_key() -> None:
    with pytest.raises(ValueError):
        siphash24(bytes(15), b"")
    with pytest.raises(ValueError):
        siphash24_128(bytes(17), b"")


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], int]:
    n = draw(st.integers(1, 50))
    m = draw(st.integers(0, 8))
    keys = draw(st.lists(st.binary(min_size=16, max_size=16), min_size=n, max_size=n))
    msgs = draw(st.lists(st.binary(min_size=8 * m, max_size=8 * m), min_size=n, max_size=n))
    chunk = draw(st.sampled_from([1, 3, 7, 16, 64, 65_536]))
    return keys, msgs, chunk


@settings(max_examples=60, deadline=None)
@given(_batches())
def test_rows_match_reference(batch: tuple[list[bytes], list[bytes], int]) -> None:
    keys, msgs, chunk = batch
    k0, k1 = _keys(keys)
    m = len(msgs[0]) // 8
    words = _words(msgs) if m else np.empty((len(msgs), 0), dtype=np.uint64)
    out = siphash24_rows(k0, k1, words, chunk_rows=chunk)
    assert [int(x) for x in out] == [siphash24(k, msg) for k, msg in zip(keys, msgs, strict=True)]
    lo, hi = siphash24_128_rows(k0, k1, words, chunk_rows=chunk)
    assert _as_bytes128(lo, hi) == [
        siphash24_128(k, msg) for k, msg in zip(keys, msgs, strict=True)
    ]


def test_rows_more_rows_than_one_chunk() -> None:
    rng = np.random.default_rng(7)
    n, m = 300, 7
    k0 = rng.integers(0, 2**64, n, dtype=np.uint64)
    k1 = rng.integers(0, 2**64, n, dtype=np.uint64)
    words = rng.integers(0, 2**64, (n, m), dtype=np.uint64)
    keys = [
        int(a).to_bytes(8, "little") + int(b).to_bytes(8, "little")
        for a, b in zip(k0, k1, strict=True)
    ]
    msgs = [row.astype("<u8").tobytes() for row in words]
    expect = [siphash24(k, msg) for k, msg in zip(keys, msgs, strict=True)]
    for chunk in (1, 64, 299, 300):
        assert [int(x) for x in siphash24_rows(k0, k1, words, chunk_rows=chunk)] == expect
    lo, hi = siphash24_128_rows(k0, k1, words, chunk_rows=128)
    assert _as_bytes128(lo, hi) == [
        siphash24_128(k, msg) for k, msg in zip(keys, msgs, strict=True)
    ]


@pytest.mark.parametrize("m", [0, 1, 2, 7, 8])
def test_rows_non_contiguous_words(m: int) -> None:
    """A column slice of a structured array (strided, unaligned) hashes like a contiguous copy."""
    rng = np.random.default_rng(m)
    n = 200
    rec = np.dtype([("head", "u1", (3,)), ("body", "u1", (8 * m,)), ("tail", "u1", (5,))])
    records = np.zeros(n, dtype=rec)
    raw = records.view(np.uint8).reshape(n, rec.itemsize)
    raw[:] = rng.integers(0, 256, raw.shape, dtype=np.uint8)
    view = raw[:, 3 : 3 + 8 * m].view("<u8")
    assert view.shape == (n, m)
    if m:
        assert not view.flags.c_contiguous
    dense = np.ascontiguousarray(view, dtype=np.uint64)
    k0 = rng.integers(0, 2**64, n, dtype=np.uint64)
    k1 = rng.integers(0, 2**64, n, dtype=np.uint64)
    for chunk in (17, 65_536):
        got = siphash24_rows(k0, k1, view, chunk_rows=chunk)
        np.testing.assert_array_equal(got, siphash24_rows(k0, k1, dense))
        lo, hi = siphash24_128_rows(k0, k1, view, chunk_rows=chunk)
        dlo, dhi = siphash24_128_rows(k0, k1, dense)
        np.testing.assert_array_equal(lo, dlo)
        np.testing.assert_array_equal(hi, dhi)
    # Every other row of a contiguous array, and a big-endian copy, too.
    np.testing.assert_array_equal(
        siphash24_rows(k0[::2], k1[::2], dense[::2]), siphash24_rows(k0, k1, dense)[::2]
    )
    np.testing.assert_array_equal(
        siphash24_rows(k0, k1, dense.astype(">u8")), siphash24_rows(k0, k1, dense)
    )


def test_rows_scalar_keys_broadcast() -> None:
    words = np.arange(12, dtype=np.uint64).reshape(4, 3)
    full = siphash24_rows(np.full(4, K0), np.full(4, K1), words)
    np.testing.assert_array_equal(siphash24_rows(K0, K1, words), full)
    np.testing.assert_array_equal(siphash24_rows(int(K0), int(K1), words), full)


def test_rows_empty_and_bad_input() -> None:
    assert siphash24_rows(K0, K1, np.empty((0, 7), dtype=np.uint64)).shape == (0,)
    lo, hi = siphash24_128_rows(K0, K1, np.empty((0, 2), dtype=np.uint64))
    assert lo.shape == hi.shape == (0,)
    with pytest.raises(TypeError):
        siphash24_rows(K0, K1, np.zeros((2, 1), dtype=np.int64))
    with pytest.raises(ValueError):
        siphash24_rows(K0, K1, np.zeros(2, dtype=np.uint64))
    with pytest.raises(ValueError):
        siphash24_rows(np.zeros(3, dtype=np.uint64), K1, np.zeros((2, 1), dtype=np.uint64))
    with pytest.raises(TypeError):
        siphash24_rows(np.zeros(2, dtype=np.int64), K1, np.zeros((2, 1), dtype=np.uint64))


def test_rows_threads() -> None:
    """Two threads hashing halves give the single-call answer (no shared scratch)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    n = 20_000
    k0 = rng.integers(0, 2**64, n, dtype=np.uint64)
    k1 = rng.integers(0, 2**64, n, dtype=np.uint64)
    words = rng.integers(0, 2**64, (n, 7), dtype=np.uint64)
    whole = siphash24_rows(k0, k1, words, chunk_rows=1024)
    h = n // 2
    with ThreadPoolExecutor(2) as pool:
        parts = list(
            pool.map(
                lambda s: siphash24_rows(k0[s], k1[s], words[s], chunk_rows=1024),
                [slice(0, h), slice(h, n)],
            )
        )
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# --------------------------------------------------------------------------------------------
# Compiled kernels
# --------------------------------------------------------------------------------------------


def test_compiled_byte_rows_all_published_vectors() -> None:
    """Every one of the 128 vectors, through the compiled steps (lengths 0..63: every tail)."""
    for length in range(64):
        data = np.frombuffer(bytes(range(length)), np.uint8).reshape(1, length)
        lo, none = siphash24_byte_rows(K0, K1, data)
        assert none is None
        assert int(lo[0]).to_bytes(8, "little").hex() == VECTORS_64[length], length
        lo, hi = siphash24_byte_rows(K0, K1, data, out128=True)
        assert hi is not None
        assert _as_bytes128(lo, hi)[0].hex() == VECTORS_128[length], length


@st.composite
def _byte_rows(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    n = draw(st.integers(0, 20))
    length = draw(st.integers(0, 70))
    keys = draw(st.lists(st.binary(min_size=16, max_size=16), min_size=n, max_size=n))
    msgs = draw(st.lists(st.binary(min_size=length, max_size=length), min_size=n, max_size=n))
    return keys, msgs


@settings(max_examples=60, deadline=None)
@given(_byte_rows())
def test_compiled_byte_rows_match_reference(rows: tuple[list[bytes], list[bytes]]) -> None:
    keys, msgs = rows
    if not keys:
        k0 = k1 = np.empty(0, np.uint64)
        data = np.empty((0, 5), np.uint8)
    else:
        k0, k1 = _keys(keys)
        data = np.frombuffer(b"".join(msgs), np.uint8).reshape(len(msgs), len(msgs[0]))
    lo, _ = siphash24_byte_rows(k0, k1, data)
    assert [int(x) for x in lo] == [siphash24(k, m) for k, m in zip(keys, msgs, strict=True)]
    lo, hi = siphash24_byte_rows(k0, k1, data, out128=True)
    assert hi is not None
    assert _as_bytes128(lo, hi) == [siphash24_128(k, m) for k, m in zip(keys, msgs, strict=True)]


def test_compiled_byte_rows_bad_input() -> None:
    with pytest.raises(TypeError):
        siphash24_byte_rows(K0, K1, np.zeros((2, 3), np.uint16))
    with pytest.raises(TypeError):
        siphash24_byte_rows(K0, K1, np.zeros(3, np.uint8))
    with pytest.raises(ValueError):
        siphash24_byte_rows(np.zeros(3, np.uint64), K1, np.zeros((2, 3), np.uint8))


def _reference_tac(master: bytes, record: bytes) -> int:
    """The documented construction, one record at a time in pure Python."""
    card_key = siphash24_128(master, record[8:16] + CARD_KEY_TAG.to_bytes(8, "little"))
    return siphash24(card_key, record[:TAC_COVERED_BYTES])


@st.composite
def _records(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    """A master key and records of arbitrary bytes: negative amounts, huge card ids, any
    flags, so that every bit of every field reaches the compiled loop."""
    n = draw(st.integers(0, 40))
    raw = draw(st.binary(min_size=64 * n, max_size=64 * n))
    return draw(st.binary(min_size=16, max_size=16)), np.frombuffer(raw, RECORD_DTYPE).copy()


@settings(max_examples=60, deadline=None)
@given(_records())
def test_compiled_tacs_match_reference_and_numpy(case: tuple[bytes, np.ndarray]) -> None:
    master, records = case
    expected = [_reference_tac(master, r.tobytes()) for r in records]
    assert [int(t) for t in compute_tacs(master, records)] == expected
    columns = {name: np.ascontiguousarray(records[name]) for name in TAC_FIELDS}
    assert [int(t) for t in compute_tacs(master, columns)] == expected
    assert [int(t) for t in compute_tacs_vectorized(master, records)] == expected


def test_compiled_tacs_over_many_blocks_any_layout() -> None:
    """More rows than one scratch block, from strided, big-endian, writable or read-only
    columns: the same TACs as the numpy kernel."""
    rng = np.random.default_rng(11)
    n = 5_000
    records = np.frombuffer(rng.bytes(64 * n), RECORD_DTYPE).copy()
    master = rng.bytes(16)
    expected = compute_tacs_vectorized(master, records)
    np.testing.assert_array_equal(compute_tacs(master, records), expected)
    big_endian = {n: records[n].astype(records[n].dtype.newbyteorder(">")) for n in TAC_FIELDS}
    np.testing.assert_array_equal(compute_tacs(master, big_endian), expected)
    read_only = {}
    for name in TAC_FIELDS:
        read_only[name] = np.ascontiguousarray(records[name])
        read_only[name].flags.writeable = False
    np.testing.assert_array_equal(compute_tacs(master, read_only), expected)
    np.testing.assert_array_equal(compute_tacs(master, records[::3]), expected[::3])


def test_compiled_tacs_threads_and_bad_input() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(12)
    records = np.frombuffer(rng.bytes(64 * 20_000), RECORD_DTYPE).copy()
    master = rng.bytes(16)
    whole = compute_tacs(master, records)
    with ThreadPoolExecutor(2) as pool:
        parts = list(
            pool.map(
                lambda s: compute_tacs(master, records[s]), [slice(0, 9_999), slice(9_999, None)]
            )
        )
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    columns = {name: records[name] for name in TAC_FIELDS}
    columns["payee"] = columns["payee"][:-1]
    with pytest.raises(ValueError, match="differ in length"):
        compute_tacs(master, columns)
    with pytest.raises(ValueError, match="16 bytes"):
        compute_tacs(bytes(15), records)
