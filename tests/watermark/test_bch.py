"""The payload's BCH code (watermark/bch.py) against vectors made with bchlib, the GPL library it replaces.

bch_vectors.json was written by bchlib 2.1.3 (the Linux kernel's lib/bch.c) for BCH(t=16, m=8): parities of 56
data blocks, decodes of words with 0..20 flipped bits and of random words, and six scrambled payload codewords
made by watermark/payload.py while it still used bchlib. Equality with them is what keeps old marks readable.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from watermark.bch import UNCORRECTABLE, BinaryBCH
from watermark.errors import InvalidCodewordError, WatermarkError
from watermark.payload import (
    BCH_CODE,
    CODEWORD_BITS,
    CORRECTABLE_BITS,
    Payload,
    WatermarkKey,
    decode_codeword,
    decode_codewords,
    keystream,
)

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "bch_vectors.json").read_text(encoding="utf-8"))
KEY = WatermarkKey(bytes(range(32)))


def _bits(hex_bytes: str, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_bytes), dtype=np.uint8))[:count]


def _codewords(rng: np.random.Generator, rows: int) -> np.ndarray:
    data = rng.integers(0, 2, (rows, BCH_CODE.data_bits), dtype=np.uint8)
    return np.concatenate([data, BCH_CODE.encode(data)], axis=1)


def _flip_rows(words: np.ndarray, flips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    damaged = words.copy()
    for row, count in zip(damaged, flips, strict=True):
        row[rng.choice(words.shape[1], int(count), replace=False)] ^= 1
    return damaged


# --- the same code as bchlib's --------------------------------------------------------------------------------


def test_the_code_is_bchlib_default_for_m8_t16() -> None:
    assert (BCH_CODE.m, BCH_CODE.t) == (VECTORS["m"], VECTORS["t"]) == (8, 16)
    assert BCH_CODE.primitive_polynomial == VECTORS["prim_poly"] == 0x11D
    assert BCH_CODE.data_bits == VECTORS["data_bits"] == 72
    assert BCH_CODE.parity_bits == VECTORS["ecc_bits"] == 124
    assert BCH_CODE.length == CODEWORD_BITS == 196 and CORRECTABLE_BITS == 16


def test_parity_equals_bchlib_for_every_vector() -> None:
    data = np.stack([_bits(vector["data"], 72) for vector in VECTORS["encode"]])
    expected = np.stack([_bits(vector["ecc"], 124) for vector in VECTORS["encode"]])
    assert len(data) == 56
    assert np.array_equal(BCH_CODE.encode(data), expected)
    for row, parity in zip(data, expected, strict=True):
        assert np.array_equal(BCH_CODE.encode(row), parity)


@pytest.mark.parametrize("vector", VECTORS["decode"], ids=lambda v: f"{len(v['flipped'] or []) or 'random'}")
def test_decode_equals_bchlib(vector: dict[str, Any]) -> None:
    received = _bits(vector["received"], 196)
    result = BCH_CODE.decode(received)
    if vector["nerr"] is None:
        assert result is None
    else:
        assert result is not None
        word, errors = result
        assert errors == vector["nerr"]
        assert np.array_equal(word, _bits(vector["data"] + vector["ecc"], 196))


def test_batch_decode_equals_bchlib_for_all_vectors_at_once() -> None:
    received = np.stack([_bits(vector["received"], 196) for vector in VECTORS["decode"]])
    decoded = BCH_CODE.decode_words(received)
    for vector, word, errors in zip(VECTORS["decode"], decoded.words, decoded.errors, strict=True):
        if vector["nerr"] is None:
            assert errors == UNCORRECTABLE
            assert np.array_equal(word, _bits(vector["received"], 196)), "a failed row is left as received"
        else:
            assert errors == vector["nerr"]
            assert np.array_equal(word, _bits(vector["data"] + vector["ecc"], 196))


def test_marks_made_with_bchlib_still_decode() -> None:
    assert len(VECTORS["marks"]) == 6
    for mark in VECTORS["marks"]:
        key = WatermarkKey(bytes.fromhex(mark["key"]))
        payload = Payload(int(mark["generation_id"], 16), version=mark["version"])
        stored = _bits(mark["codeword"], 196)
        assert np.array_equal(payload.codeword(key), stored)
        decoded = decode_codeword(stored, key)
        assert decoded is not None and decoded.payload == payload and decoded.corrected_bits == 0


# --- correction up to t, and what happens beyond -------------------------------------------------------------


def test_every_single_and_double_error_is_corrected() -> None:
    codeword = _codewords(np.random.default_rng(3), 1)[0]
    patterns = [*itertools.combinations(range(196), 1), *itertools.combinations(range(196), 2)]
    damaged = np.repeat(codeword[None, :], len(patterns), axis=0)
    for row, positions in zip(damaged, patterns, strict=True):
        row[list(positions)] ^= 1
    decoded = BCH_CODE.decode_words(damaged)
    assert np.array_equal(decoded.errors, [len(positions) for positions in patterns])
    assert (decoded.words == codeword).all()


def test_up_to_t_random_errors_are_always_corrected() -> None:
    rng = np.random.default_rng(11)
    codewords = _codewords(rng, 3400)
    flips = np.repeat(np.arange(CORRECTABLE_BITS + 1), 200)
    decoded = BCH_CODE.decode_words(_flip_rows(codewords, flips, rng))
    assert np.array_equal(decoded.errors, flips)
    assert np.array_equal(decoded.words, codewords)


def test_the_one_word_decode_agrees_with_the_batch() -> None:
    rng = np.random.default_rng(12)
    codewords = _codewords(rng, 60)
    damaged = _flip_rows(codewords, rng.integers(0, 24, 60), rng)
    batch = BCH_CODE.decode_words(damaged)
    for row, word, errors in zip(damaged, batch.words, batch.errors, strict=True):
        single = BCH_CODE.decode(row)
        assert (single is None) == (errors == UNCORRECTABLE)
        if single is not None:
            assert np.array_equal(single[0], word) and single[1] == errors


def test_beyond_t_the_decoder_fails_or_lands_on_a_codeword_within_t() -> None:
    """Past t flips a decode can only fail or (rarely) land on another codeword; never on a non-codeword."""
    rng = np.random.default_rng(13)
    codewords = _codewords(rng, 2000)
    flips = rng.integers(CORRECTABLE_BITS + 1, 40, 2000)
    damaged = _flip_rows(codewords, flips, rng)
    decoded = BCH_CODE.decode_words(damaged)
    landed = decoded.errors != UNCORRECTABLE
    assert not np.any(landed & (decoded.words == codewords).all(axis=1)), "beyond t it cannot find the original"
    for word, received, errors in zip(decoded.words[landed], damaged[landed], decoded.errors[landed], strict=True):
        assert np.array_equal(BCH_CODE.encode(word[:72]), word[72:])
        assert int(np.count_nonzero(word != received)) == errors <= CORRECTABLE_BITS
    # Landing elsewhere needs the damage within 16 bits of another of 2^72 codewords: about 1e-14 per try.
    assert landed.sum() == 0


def test_the_payload_layer_reports_no_payload_for_the_vectors_over_t() -> None:
    over_t = [vector for vector in VECTORS["decode"] if vector["flipped"] and len(vector["flipped"]) > 16]
    assert len(over_t) == 24
    scrambled = np.stack([_bits(vector["received"], 196) ^ keystream(KEY) for vector in over_t])
    assert decode_codewords(scrambled, KEY) == [None] * len(over_t)
    for bits in scrambled:
        assert decode_codeword(bits, KEY) is None


def test_payload_batch_decode_matches_one_at_a_time() -> None:
    rng = np.random.default_rng(14)
    payloads = [Payload(int(rng.integers(0, 2**63)), version=int(rng.integers(0, 256))) for _ in range(20)]
    clean = np.stack([payload.codeword(KEY) for payload in payloads])
    damaged = _flip_rows(clean, rng.integers(0, 22, 20), rng)
    batch = decode_codewords(damaged, KEY)
    for payload, row, from_batch in zip(payloads, damaged, batch, strict=True):
        alone = decode_codeword(row, KEY)
        assert (from_batch is None) == (alone is None)
        if from_batch is not None and alone is not None:
            assert from_batch.payload == alone.payload == payload
            assert from_batch.corrected_bits == alone.corrected_bits
            assert np.array_equal(from_batch.codeword, payload.codeword(KEY))
            assert np.array_equal(alone.codeword, payload.codeword(KEY))


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "bits"),
    [
        ("encode", np.zeros(71, dtype=np.uint8)),
        ("encode", np.zeros((2, 73), dtype=np.uint8)),
        ("decode", np.zeros(195, dtype=np.uint8)),
        ("decode", np.zeros((1, 196), dtype=np.uint8)),
        ("decode", np.full(196, 2, dtype=np.uint8)),
        ("decode_words", np.zeros(196, dtype=np.uint8)),
        ("decode_words", np.zeros((3, 197), dtype=np.uint8)),
        ("decode_words", np.zeros((2, 2, 196), dtype=np.uint8)),
        ("decode_words", -np.ones((1, 196), dtype=np.int64)),
    ],
)
def test_wrong_shapes_and_values_get_a_typed_error(call: str, bits: np.ndarray) -> None:
    with pytest.raises(InvalidCodewordError) as raised:
        getattr(BCH_CODE, call)(bits)
    assert isinstance(raised.value, WatermarkError) and isinstance(raised.value, ValueError)
    assert raised.value.code == "invalid_codeword"


def test_payload_decode_of_the_wrong_shape_gets_a_typed_error() -> None:
    with pytest.raises(InvalidCodewordError, match="196"):
        decode_codeword(np.zeros(200, dtype=np.uint8), KEY)
    with pytest.raises(InvalidCodewordError, match="196"):
        decode_codewords(np.zeros((4, 195), dtype=np.uint8), KEY)


@pytest.mark.parametrize(
    ("m", "polynomial", "data_bits"),
    [(8, 0x11B, 72), (8, 0x1D, 72), (9, 0x211, 72), (8, 0x11D, 132), (8, 0x11D, 0)],
)
def test_a_code_that_cannot_exist_is_refused(m: int, polynomial: int, data_bits: int) -> None:
    """0x11B is irreducible but not primitive (alpha has order 51); 0x1D lacks x^8; m = 9 needs a bigger table;
    131 data bits fill BCH(255, 131), so 132 cannot fit."""
    with pytest.raises(ValueError, match=r"primitive|supports|carries"):
        BinaryBCH(m=m, t=16, primitive_polynomial=polynomial, data_bits=data_bits)
