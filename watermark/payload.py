"""The watermark payload: a 64-bit generation id plus a version byte, BCH-protected and keyed.

Layout of the codeword: 72 data bits (8 version bits, then the 64-bit id, big-endian) followed by the parity
bits of a binary BCH code over GF(2^8) correcting 16 errors (``watermark.bch``, bit for bit the codewords the
earlier ``bchlib`` made): 196 bits in all. The code is this strong
for significance as much as for correction: random bits fall within 16 errors of some codeword with probability
below 1e-14 (``false_decode_probability``), so a successful decode is itself overwhelming evidence. The codeword
is XORed with a keystream derived from the deployment's watermark key, so without the key the bits
look random and a valid mark cannot be forged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.stats import binom

from watermark.bch import BinaryBCH
from watermark.errors import InvalidCodewordError, WatermarkKeyError

PAYLOAD_VERSION = 1
KEY_BYTES = 32
_DATA_BYTES = 9

Bits = npt.NDArray[np.uint8]

BCH_CODE = BinaryBCH(m=8, t=16, primitive_polynomial=0x11D, data_bits=_DATA_BYTES * 8)
"""The kernel's default primitive polynomial for m = 8 (what bchlib used), so existing marks keep decoding."""
CODEWORD_BITS = BCH_CODE.length
"""196: the number of bits a method has to carry."""
CORRECTABLE_BITS = BCH_CODE.t


@dataclass(frozen=True)
class WatermarkKey:
    """The deployment's secret watermark key. Whoever holds it can read and write marks; keep it like a password."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise WatermarkKeyError(f"a watermark key is {KEY_BYTES} bytes, got {len(self.secret)}")

    def __repr__(self) -> str:
        return f"WatermarkKey(fingerprint={self.fingerprint!r})"

    @classmethod
    def generate(cls) -> WatermarkKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load(cls, path: Path) -> WatermarkKey:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise WatermarkKeyError(f"cannot read the watermark key at {path}: {exc}") from exc
        try:
            secret = bytes.fromhex(text)
        except ValueError as exc:
            raise WatermarkKeyError(f"{path} does not hold a hex watermark key") from exc
        return cls(secret)

    def save(self, path: Path) -> None:
        """Write the key as hex with 0600 permissions; refuses to replace an existing key (marks would be lost)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, stat.S_IRUSR | stat.S_IWUSR)
        except FileExistsError as exc:
            raise WatermarkKeyError(
                f"a watermark key already exists at {path}; replacing it would make every earlier mark unreadable"
            ) from exc
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(self.secret.hex() + "\n")

    @property
    def fingerprint(self) -> str:
        """A short public identifier of the key (safe to log)."""
        return self.derive(b"fingerprint", 8).hex()

    def derive(self, label: bytes, length: int) -> bytes:
        """``length`` pseudo-random bytes bound to this key and ``label`` (HMAC-SHA256 in counter mode)."""
        out = bytearray()
        counter = 0
        while len(out) < length:
            out += hmac.new(self.secret, label + counter.to_bytes(4, "big"), hashlib.sha256).digest()
            counter += 1
        return bytes(out[:length])

    def rng(self, label: bytes) -> np.random.Generator:
        """A numpy generator seeded from the key and ``label``: the same patterns on every machine."""
        seed = int.from_bytes(self.derive(label, 32), "big")
        return np.random.Generator(np.random.PCG64(seed))


@dataclass(frozen=True)
class Payload:
    """What a mark says: which generation produced the video (the audit log maps the id to it)."""

    generation_id: int
    version: int = PAYLOAD_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.generation_id < 2**64:
            raise ValueError("generation_id must fit in 64 bits")
        if not 0 <= self.version < 256:
            raise ValueError("version must fit in 8 bits")

    @classmethod
    def new(cls) -> Payload:
        """A fresh random id: unique per generation with overwhelming probability (birthday bound at ~2^32)."""
        return cls(secrets.randbits(64))

    @property
    def hex(self) -> str:
        """The id as 16 hex digits: the form stored in the audit log and the C2PA soft binding."""
        return f"{self.generation_id:016x}"

    @classmethod
    def from_hex(cls, text: str) -> Payload:
        return cls(int(text, 16))

    def _data(self) -> bytes:
        return bytes([self.version]) + self.generation_id.to_bytes(8, "big")

    def codeword(self, key: WatermarkKey) -> Bits:
        """The scrambled bits a method embeds (0/1 as uint8)."""
        data = _to_bits(self._data())
        plain = np.concatenate([data, BCH_CODE.encode(data)])
        return plain ^ keystream(key)


def keystream(key: WatermarkKey) -> Bits:
    return _to_bits(key.derive(b"payload-scrambler", (CODEWORD_BITS + 7) // 8))[:CODEWORD_BITS]


@dataclass(frozen=True)
class DecodedPayload:
    payload: Payload
    corrected_bits: int
    codeword: Bits
    """The scrambled codeword re-encoded from the decoded payload (what an unattacked mark would read)."""


def decode_codeword(hard_bits: Bits, key: WatermarkKey) -> DecodedPayload | None:
    """Descramble and BCH-decode received bits; None when more than 16 bits are wrong (or the bits are noise)."""
    if hard_bits.shape != (CODEWORD_BITS,):
        raise InvalidCodewordError(f"expected {CODEWORD_BITS} bits, got shape {hard_bits.shape}")
    return decode_codewords(hard_bits[None, :], key)[0]


def decode_codewords(hard_bits: Bits, key: WatermarkKey) -> list[DecodedPayload | None]:
    """``decode_codeword`` for every row of a (rows, 196) array at once (a Chase search's trial words)."""
    if hard_bits.ndim != 2 or hard_bits.shape[1] != CODEWORD_BITS:
        raise InvalidCodewordError(f"expected rows of {CODEWORD_BITS} bits, got shape {hard_bits.shape}")
    scrambler = keystream(key)
    decoded = BCH_CODE.decode_words(hard_bits.astype(np.uint8) ^ scrambler)
    results: list[DecodedPayload | None] = []
    for word, errors in zip(decoded.words, decoded.errors, strict=True):
        if errors < 0:
            results.append(None)
            continue
        data = _from_bits(word[: BCH_CODE.data_bits])
        payload = Payload(int.from_bytes(data[1:], "big"), version=data[0])
        results.append(DecodedPayload(payload, int(errors), word ^ scrambler))
    return results


def false_decode_probability(corrected_bits: int) -> float:
    """Probability that uniformly random bits decode with at most ``corrected_bits`` corrections.

    A binomial test with a union bound over all 2^72 codewords: P[Binomial(n, 1/2) <= e] * 2^72. This, not the
    agreement with the one codeword the decoder chose, is the honest p-value of a decode.
    """
    return float(min(1.0, 2.0 ** (_DATA_BYTES * 8) * binom.cdf(corrected_bits, CODEWORD_BITS, 0.5)))


def _to_bits(data: bytes) -> Bits:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def _from_bits(bits: Bits) -> bytes:
    padded = np.zeros(((bits.size + 7) // 8) * 8, dtype=np.uint8)
    padded[: bits.size] = bits
    return bytes(np.packbits(padded))
