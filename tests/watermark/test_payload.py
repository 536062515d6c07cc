"""The watermark key and payload: key files, the keyed BCH codeword, and the honest chance of a false decode."""

from __future__ import annotations

import itertools
import math
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from watermark.errors import WatermarkKeyError
from watermark.payload import (
    CODEWORD_BITS,
    CORRECTABLE_BITS,
    KEY_BYTES,
    PAYLOAD_VERSION,
    Payload,
    WatermarkKey,
    decode_codeword,
    false_decode_probability,
    keystream,
)

KEY = WatermarkKey(bytes(range(32)))
OTHER_KEY = WatermarkKey(bytes(range(1, 33)))
PAYLOAD = Payload(0x0123456789ABCDEF)
DATA_BITS = 72
RANDOM_TRIALS = 3000


def _flip(bits: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    flipped = bits.copy()
    flipped[rng.choice(bits.size, count, replace=False)] ^= 1
    return flipped


def _exact_false_decode(errors: int) -> Fraction:
    """2^72 · P[Binomial(196, 1/2) ≤ errors], exactly, capped at 1 (the union bound over every codeword)."""
    within = sum(math.comb(CODEWORD_BITS, k) for k in range(errors + 1))
    return min(Fraction(1), Fraction(2**DATA_BITS * within, 2**CODEWORD_BITS))


# --- the key -------------------------------------------------------------------------------------------------


def test_generated_keys_are_random_and_full_length() -> None:
    first, second = WatermarkKey.generate(), WatermarkKey.generate()
    assert len(first.secret) == KEY_BYTES == 32
    assert first != second and first.fingerprint != second.fingerprint


def test_save_writes_hex_readable_only_by_the_owner(tmp_path: Path) -> None:
    key = WatermarkKey.generate()
    path = tmp_path / "watermark.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="ascii") == key.secret.hex() + "\n"
    assert WatermarkKey.load(path) == key


def test_save_refuses_to_replace_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "watermark.key"
    KEY.save(path)
    with pytest.raises(WatermarkKeyError, match="already exists") as caught:
        OTHER_KEY.save(path)
    assert caught.value.code == "watermark_key_error"
    assert WatermarkKey.load(path) == KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_tolerates_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "watermark.key"
    path.write_text(f"  {KEY.secret.hex().upper()}\r\n\n", encoding="ascii")
    assert WatermarkKey.load(path) == KEY


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(range(31)).hex().encode(), id="31-bytes"),
        pytest.param(bytes(range(33)).hex().encode(), id="33-bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(b"zz" * 32, id="not-hex"),
        pytest.param(bytes(range(32)).hex().encode()[:-1], id="odd-digits"),
        pytest.param("é".encode() * 32, id="not-ascii"),
    ],
)
def test_load_rejects_malformed_key_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "watermark.key"
    path.write_bytes(content)
    with pytest.raises(WatermarkKeyError) as caught:
        WatermarkKey.load(path)
    # A damaged key file may still be mostly secret: the message must not echo it.
    if len(content) >= 8:
        assert content.decode("latin-1") not in caught.value.message


def test_load_of_a_missing_file_is_a_key_error(tmp_path: Path) -> None:
    with pytest.raises(WatermarkKeyError, match="cannot read"):
        WatermarkKey.load(tmp_path / "absent.key")


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_constructor_rejects_wrong_lengths(length: int) -> None:
    with pytest.raises(WatermarkKeyError, match="32 bytes"):
        WatermarkKey(bytes(length))


def test_repr_and_str_show_only_the_fingerprint() -> None:
    key = WatermarkKey.generate()
    for text in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"key": key})):
        assert key.secret.hex() not in text
        assert key.secret.hex().upper() not in text
        assert repr(key.secret) not in text
        assert key.fingerprint in text
    assert len(key.fingerprint) == 16
    assert key.fingerprint not in key.secret.hex()


def test_derivation_is_deterministic_and_label_bound() -> None:
    assert KEY.derive(b"a", 80) == WatermarkKey(bytes(range(32))).derive(b"a", 80)
    assert KEY.derive(b"a", 80)[:32] == KEY.derive(b"a", 32)
    assert KEY.derive(b"a", 32) != KEY.derive(b"b", 32)
    assert KEY.derive(b"a", 32) != OTHER_KEY.derive(b"a", 32)
    assert np.array_equal(KEY.rng(b"x").integers(0, 2**32, 8), KEY.rng(b"x").integers(0, 2**32, 8))


# --- the codeword --------------------------------------------------------------------------------------------


def test_codeword_shape_and_constants() -> None:
    codeword = PAYLOAD.codeword(KEY)
    assert CODEWORD_BITS == 196 and CORRECTABLE_BITS == 16
    assert codeword.shape == (CODEWORD_BITS,) and codeword.dtype == np.uint8
    assert set(np.unique(codeword)) <= {0, 1}
    assert np.array_equal(codeword, PAYLOAD.codeword(KEY))
    # Scrambled: about half the bits are set, whatever the payload (even the all-zero one).
    for payload in (PAYLOAD, Payload(0, version=0)):
        assert 70 < int(payload.codeword(KEY).sum()) < 126


def test_clean_codeword_decodes_with_no_corrections() -> None:
    decoded = decode_codeword(PAYLOAD.codeword(KEY), KEY)
    assert decoded is not None
    assert decoded.payload == PAYLOAD and decoded.corrected_bits == 0
    assert np.array_equal(decoded.codeword, PAYLOAD.codeword(KEY))


def test_decode_rejects_the_wrong_number_of_bits() -> None:
    with pytest.raises(ValueError, match="196"):
        decode_codeword(np.zeros(195, dtype=np.uint8), KEY)
    with pytest.raises(ValueError, match="196"):
        decode_codeword(np.zeros((2, 98), dtype=np.uint8), KEY)


@pytest.mark.parametrize("errors", range(CORRECTABLE_BITS + 1))
def test_up_to_sixteen_flipped_bits_are_corrected(errors: int) -> None:
    rng = np.random.default_rng(1000 + errors)
    codeword = PAYLOAD.codeword(KEY)
    for _ in range(40):
        decoded = decode_codeword(_flip(codeword, errors, rng), KEY)
        assert decoded is not None
        assert decoded.payload == PAYLOAD
        assert decoded.corrected_bits == errors
        assert np.array_equal(decoded.codeword, codeword)


@pytest.mark.parametrize("errors", [17, 18, 20, 24, 32, 64, 98])
def test_seventeen_or_more_flipped_bits_fail(errors: int) -> None:
    """Beyond t=16 the decoder must give up, not land on another codeword.

    It can only land elsewhere if the damaged word lies within 16 bits of some other codeword: a chance of the
    order of false_decode_probability(16) < 1e-14 per try, so 100 seeded tries all fail.
    """
    rng = np.random.default_rng(2000 + errors)
    codeword = PAYLOAD.codeword(KEY)
    outcomes = [decode_codeword(_flip(codeword, errors, rng), KEY) for _ in range(100)]
    assert all(outcome is None for outcome in outcomes), [o.payload for o in outcomes if o is not None]


def test_random_bits_never_decode() -> None:
    """A decode of random bits needs them within 16 bits of one of the 2^72 codewords.

    By the union bound that chance is false_decode_probability(16) ≈ 6.2e-15 per try, so over 3000 tries the
    chance of even one decode is below 2e-11: the count must be exactly zero.
    """
    assert RANDOM_TRIALS * false_decode_probability(CORRECTABLE_BITS) < 1e-10
    rng = np.random.default_rng(7)
    decodes = 0
    for _ in range(RANDOM_TRIALS):
        bits = rng.integers(0, 2, CODEWORD_BITS, dtype=np.uint8)
        if decode_codeword(bits, KEY) is not None:
            decodes += 1
    assert decodes == 0


def test_distinct_payloads_are_at_least_33_bits_apart() -> None:
    """A BCH code correcting 16 errors has minimum distance ≥ 33; the keyed scrambling preserves distances."""
    rng = np.random.default_rng(11)
    codewords = [Payload(int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))).codeword(KEY) for _ in range(60)]
    codewords += [Payload(0).codeword(KEY), Payload(1).codeword(KEY), Payload(2**64 - 1).codeword(KEY)]
    distances = [int(np.count_nonzero(a != b)) for i, a in enumerate(codewords) for b in codewords[i + 1 :]]
    assert min(distances) >= 2 * CORRECTABLE_BITS + 1


def test_another_keys_keystream_breaks_decoding() -> None:
    rng = np.random.default_rng(13)
    keys = [OTHER_KEY] + [WatermarkKey(rng.bytes(32)) for _ in range(20)]
    for other in keys:
        difference = int(np.count_nonzero(keystream(KEY) != keystream(other)))
        # Two unrelated keystreams differ in about half the bits, far beyond what the code can correct.
        assert difference > 60
        decoded = decode_codeword(PAYLOAD.codeword(KEY), other)
        assert decoded is None or decoded.payload != PAYLOAD
        assert not np.array_equal(PAYLOAD.codeword(other), PAYLOAD.codeword(KEY))


# --- the payload ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 7, 128, 255])
def test_version_byte_round_trips(version: int) -> None:
    payload = Payload(0xFEDCBA9876543210, version=version)
    decoded = decode_codeword(payload.codeword(KEY), KEY)
    assert decoded is not None
    assert decoded.payload.version == version
    assert decoded.payload == payload
    if version != PAYLOAD_VERSION:
        assert decoded.payload != Payload(0xFEDCBA9876543210)


def test_default_version() -> None:
    assert PAYLOAD.version == PAYLOAD_VERSION == 1


@pytest.mark.parametrize(
    ("generation_id", "version"),
    [(-1, 1), (2**64, 1), (2**70, 1), (0, -1), (0, 256), (0, 1000)],
)
def test_payload_range_checks(generation_id: int, version: int) -> None:
    with pytest.raises(ValueError, match="bits"):
        Payload(generation_id, version=version)


@pytest.mark.parametrize("generation_id", [0, 1, 2**63, 2**64 - 1])
def test_extreme_ids_round_trip(generation_id: int) -> None:
    for version in (0, 255):
        payload = Payload(generation_id, version=version)
        decoded = decode_codeword(payload.codeword(KEY), KEY)
        assert decoded is not None and decoded.payload == payload


def test_hex_round_trip() -> None:
    assert PAYLOAD.hex == "0123456789abcdef"
    assert Payload(1).hex == "0000000000000001"
    assert Payload(2**64 - 1).hex == "ffffffffffffffff"
    rng = np.random.default_rng(17)
    for _ in range(50):
        payload = Payload(int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)))
        assert len(payload.hex) == 16
        assert Payload.from_hex(payload.hex) == payload
        assert Payload.from_hex(payload.hex.upper()) == payload
    with pytest.raises(ValueError):
        Payload.from_hex("1" + "0" * 16)  # 65 bits
    with pytest.raises(ValueError):
        Payload.from_hex("not hex")


def test_new_payloads_are_random_and_in_range() -> None:
    payloads = {Payload.new() for _ in range(50)}
    assert len(payloads) == 50
    assert all(0 <= p.generation_id < 2**64 and p.version == PAYLOAD_VERSION for p in payloads)


# --- the chance of a false decode ----------------------------------------------------------------------------


def test_false_decode_probability_matches_the_exact_union_bound() -> None:
    for errors in range(CODEWORD_BITS + 1):
        expected = _exact_false_decode(errors)
        assert false_decode_probability(errors) == pytest.approx(float(expected), rel=1e-9, abs=0), errors


def test_false_decode_probability_with_no_errors_is_two_to_the_minus_124() -> None:
    # One codeword in 2^124 words: 2^72 codewords out of 2^196 words.
    assert _exact_false_decode(0) == Fraction(1, 2**124)
    assert false_decode_probability(0) == pytest.approx(2.0**-124, rel=1e-12)
    assert 4.7e-38 < false_decode_probability(0) < 4.71e-38


def test_false_decode_probability_is_tiny_at_the_correction_limit() -> None:
    assert false_decode_probability(CORRECTABLE_BITS) < 1e-14
    assert false_decode_probability(CORRECTABLE_BITS) == pytest.approx(float(_exact_false_decode(16)), rel=1e-9)
    # So every clean BCH decode, times the tiled method's three hypotheses, is far below detection's 1e-9.
    assert 3 * false_decode_probability(CORRECTABLE_BITS) < 1e-9


def test_false_decode_probability_is_monotone_and_capped() -> None:
    values = [false_decode_probability(e) for e in range(CODEWORD_BITS + 1)]
    assert all(0 < v <= 1 for v in values)
    assert all(later >= earlier for earlier, later in itertools.pairwise(values))
    capped = values.index(1.0)
    assert all(later > earlier for earlier, later in itertools.pairwise(values[: capped + 1]))
    assert all(v == 1.0 for v in values[capped:])
    # The union bound stops saying anything (reaches 1) where the exact bound does: at 33 errors.
    assert capped == next(e for e in range(CODEWORD_BITS + 1) if _exact_false_decode(e) == 1) == 33
