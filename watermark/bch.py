"""A binary BCH code over GF(2^m): systematic encoding, Berlekamp-Massey and Chien-search decoding, numpy-vectorised.

It reproduces the codewords of the Linux kernel's ``lib/bch.c`` (what ``bchlib`` wraps) for the same m, t and
primitive polynomial, with data and parity bits in the kernel's default order: a word is the data bits, then the
parity bits, most significant first; the bit at position p is the coefficient of x^(n-1-p), n the word length.
So marks made while the payload used ``bchlib`` still decode. The code is shortened: of the 2^m - 1 positions of
the full code only the last n are used; the others are zero and never sent.

Decoding has the kernel's outcomes: the error-locator polynomial from the 2t syndromes (binary Berlekamp-Massey),
then its roots by Chien search over the positions of the shortened word. A word is corrected only when the locator
has degree L <= t and L distinct roots, all inside the word; otherwise it is reported uncorrectable.

Every step works on a batch of words at once (the watermark detector decodes 2^8 Chase trial words per
candidate), with GF(2^m) products from log/antilog tables and the linear maps (parity, syndromes) from per-byte
lookup tables, so no step loops over words in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from watermark.errors import InvalidCodewordError

Bits = npt.NDArray[np.uint8]
Elements = npt.NDArray[np.intp]
"""GF(2^m) elements, m <= 8 (an element's bits are the coefficients of a polynomial in alpha), as indices."""

UNCORRECTABLE = -1
"""The error count reported for a word with more wrong bits than the code corrects."""


@dataclass(frozen=True)
class DecodedWords:
    """The result of decoding a batch of words, row for row."""

    words: Bits
    """The corrected words; a row that could not be corrected is left as received."""
    errors: npt.NDArray[np.int64]
    """How many bits of each row were corrected, or ``UNCORRECTABLE``."""


@dataclass(frozen=True)
class BinaryBCH:
    """A shortened, narrow-sense binary BCH code: ``data_bits`` data bits and the parity correcting ``t`` errors.

    Fields up to GF(2^8) (m <= 8), so that a product of two elements is one lookup in a 2^m x 2^m table."""

    m: int
    t: int
    primitive_polynomial: int
    data_bits: int
    _field: _GaloisField = field(init=False, repr=False, compare=False)
    _parity_bits: int = field(init=False, repr=False, compare=False)
    _parity_table: Bits = field(init=False, repr=False, compare=False)
    _syndrome_table: Bits = field(init=False, repr=False, compare=False)
    _chien_table: Bits = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        gf = _GaloisField(self.m, self.primitive_polynomial)
        generator = _generator_polynomial(gf, self.t)
        parity_bits = generator.bit_length() - 1
        if not 0 < self.data_bits <= gf.order - parity_bits:
            raise ValueError(f"BCH(m={self.m}, t={self.t}) carries 1 to {gf.order - parity_bits} data bits")
        length = self.data_bits + parity_bits
        # Position p holds x^(n-1-p): its syndrome terms are alpha^(j(n-1-p)), its Chien terms alpha^(-i(n-1-p)).
        exponents = np.arange(length - 1, -1, -1)
        syndrome_terms = gf.power(np.outer(exponents, np.arange(1, 2 * self.t + 1)))
        chien_terms = gf.power(-np.outer(np.arange(self.t + 1), exponents))
        object.__setattr__(self, "_field", gf)
        object.__setattr__(self, "_parity_bits", parity_bits)
        object.__setattr__(self, "_parity_table", _byte_table(_parity_rows(generator, self.data_bits)))
        object.__setattr__(self, "_syndrome_table", _byte_table(syndrome_terms.astype(np.uint8)))
        # chien_table[i, c, p]: coefficient c of x^i times alpha^(-i(n-1-p)), so a locator's values at every
        # position are the XOR over i of rows picked by its coefficients.
        object.__setattr__(self, "_chien_table", gf.product[:, chien_terms].transpose(1, 0, 2).astype(np.uint8))

    @property
    def parity_bits(self) -> int:
        return self._parity_bits

    @property
    def length(self) -> int:
        """Bits in a word: the data, then the parity."""
        return self.data_bits + self._parity_bits

    def encode(self, data: Bits) -> Bits:
        """The parity bits of ``data`` (0/1 uint8 of shape (data_bits,) or (rows, data_bits)), to append to it."""
        bits = _as_bits(data, self.data_bits, "data")
        parity = _xor_of_bytes(self._parity_table, np.atleast_2d(bits))
        return parity if bits.ndim == 2 else parity[0]

    def decode(self, word: Bits) -> tuple[Bits, int] | None:
        """The corrected word and how many of its bits were wrong, or None when more than t were."""
        bits = _as_bits(word, self.length, "word")
        if bits.ndim != 1:
            raise InvalidCodewordError(f"decode takes one word of {self.length} bits; decode_words takes a batch")
        decoded = self.decode_words(bits[None, :])
        errors = int(decoded.errors[0])
        return None if errors == UNCORRECTABLE else (decoded.words[0], errors)

    def decode_words(self, words: Bits) -> DecodedWords:
        """Decode every row of ``words``, a (rows, length) array of 0/1 uint8."""
        bits = _as_bits(words, self.length, "words")
        if bits.ndim != 2:
            raise InvalidCodewordError(f"decode_words takes a (rows, {self.length}) array, got shape {bits.shape}")
        corrected = bits.copy()
        errors = np.zeros(bits.shape[0], dtype=np.int64)
        syndromes = _xor_of_bytes(self._syndrome_table, bits)
        damaged = np.flatnonzero(syndromes.any(axis=1))
        if damaged.size == 0:
            return DecodedWords(corrected, errors)
        locators, degrees = self._error_locators(syndromes[damaged])
        candidates = degrees <= self.t
        roots = self._roots(locators[candidates])
        found = np.zeros(damaged.size, dtype=np.int64)
        found[candidates] = roots.sum(axis=1)
        fixable = candidates & (found == degrees)
        corrected[damaged[fixable]] ^= roots[fixable[candidates]]
        errors[damaged] = np.where(fixable, found, UNCORRECTABLE)
        return DecodedWords(corrected, errors)

    def _error_locators(self, syndromes: Bits) -> tuple[Elements, Elements]:
        """Binary Berlekamp-Massey on each row of S_1..S_2t: the locator (t + 1 coefficients, lowest first) and
        its length L, the number of errors it claims. A row whose L exceeds t is uncorrectable; its locator,
        cut to t + 1 coefficients, is then meaningless (and L never shrinks back)."""
        times, inverse, m = self._field.times, self._field.inverse, self.m
        rows, width = syndromes.shape[0], self.t + 1
        locator = np.zeros((rows, width), dtype=np.intp)
        locator[:, 0] = 1
        # Massey's x^k B(x) / b (the locator before the last length change over that step's discrepancy, shifted
        # to the step it corrects), kept pre-shifted so that every row shifts alike.
        correction = np.zeros((rows, width), dtype=np.intp)
        correction[:, 1] = 1
        length = np.zeros(rows, dtype=np.intp)
        # At step r the discrepancy pairs locator[i] with S_(r+1-i), i = 1..t: a reversed window of the
        # syndromes behind t zeros (for S_0, S_-1, ...).
        padded = np.concatenate([np.zeros((rows, self.t), dtype=np.intp), syndromes], axis=1)
        for step in range(0, 2 * self.t, 2):  # a binary code's discrepancies at odd steps are zero
            window = padded[:, step : step + self.t][:, ::-1]
            terms = times.take((locator[:, 1:] << m) | window)
            discrepancy = padded[:, self.t + step] ^ np.bitwise_xor.reduce(terms, axis=1)
            lengthens = (discrepancy != 0) & (2 * length <= step)
            scaled_previous = times.take((locator << m) | inverse.take(discrepancy)[:, None])
            locator ^= times.take((correction << m) | discrepancy[:, None])
            correction[:, 2:] = np.where(lengthens[:, None], scaled_previous, correction)[:, :-2]
            correction[:, :2] = 0
            length = np.where(lengthens, step + 1 - length, length)
        return locator, length

    def _roots(self, locators: Elements) -> Bits:
        """Chien search: 1 at each word position p where the row's locator vanishes at alpha^-(n-1-p)."""
        values = np.bitwise_xor.reduce(self._chien_table[np.arange(self.t + 1), locators], axis=1)
        roots: Bits = (values == 0).view(np.uint8)
        return roots


@dataclass(frozen=True)
class _GaloisField:
    """GF(2^m), m <= 8, from a primitive polynomial: powers of alpha, the product table and the inverses."""

    m: int
    primitive_polynomial: int
    powers: Elements = field(init=False, repr=False)
    product: Elements = field(init=False, repr=False)
    """product[a, b] = a * b."""
    times: Elements = field(init=False, repr=False)
    """The product table flattened: times[(a << m) | b] = a * b, one gather for a batch of products."""
    inverse: Elements = field(init=False, repr=False)
    """inverse[a] = 1 / a, and 0 for 0."""

    @property
    def order(self) -> int:
        """The multiplicative group's order, 2^m - 1."""
        return (1 << self.m) - 1

    def __post_init__(self) -> None:
        if not 2 <= self.m <= 8:
            raise ValueError(f"GF(2^{self.m}): this code supports m from 2 to 8")
        if self.primitive_polynomial >> self.m != 1:
            raise ValueError(f"a primitive polynomial for GF(2^{self.m}) has degree {self.m}")
        powers = np.zeros(self.order, dtype=np.intp)
        element = 1
        for power in range(self.order):
            if power and element == 1:
                raise ValueError(f"{self.primitive_polynomial:#x} is not primitive for GF(2^{self.m})")
            powers[power] = element
            element <<= 1
            if element >> self.m:
                element ^= self.primitive_polynomial
        log = np.zeros(self.order + 1, dtype=np.intp)
        log[powers] = np.arange(self.order)
        nonzero = np.arange(1, self.order + 1)
        product = np.zeros((self.order + 1, self.order + 1), dtype=np.intp)
        product[1:, 1:] = powers[(log[nonzero][:, None] + log[nonzero][None, :]) % self.order]
        inverse = np.zeros(self.order + 1, dtype=np.intp)
        inverse[nonzero] = powers[-log[nonzero] % self.order]
        object.__setattr__(self, "powers", powers)
        object.__setattr__(self, "product", product)
        object.__setattr__(self, "times", product.ravel())
        object.__setattr__(self, "inverse", inverse)

    def power(self, exponents: Elements) -> Elements:
        """alpha^e for every e (any integer)."""
        result: Elements = self.powers[exponents % self.order]
        return result


def _generator_polynomial(gf: _GaloisField, t: int) -> int:
    """The product of the minimal polynomials of alpha^1..alpha^2t as an int (bit k: the coefficient of x^k)."""
    roots: set[int] = set()
    for power in range(1, 2 * t + 1):
        conjugate = power % gf.order
        while conjugate not in roots:
            roots.add(conjugate)
            conjugate = conjugate * 2 % gf.order
    polynomial = [1]  # coefficients lowest first
    for root in sorted(roots):
        times_x = [0, *polynomial]
        for k, coefficient in enumerate(polynomial):  # + alpha^root * polynomial
            if coefficient:
                times_x[k] ^= int(gf.product[coefficient, gf.powers[root]])
        polynomial = times_x
    if any(coefficient > 1 for coefficient in polynomial):
        raise ValueError("the generator polynomial has non-binary coefficients: the field tables are wrong")
    return sum(coefficient << k for k, coefficient in enumerate(polynomial))


def _parity_rows(generator: int, data_bits: int) -> Bits:
    """Row i: the parity bits of x^(n-1-i) mod g(x), what data bit i contributes (the encoding is linear)."""
    parity_bits = generator.bit_length() - 1
    rows = np.zeros((data_bits, parity_bits), dtype=np.uint8)
    remainder = generator ^ (1 << parity_bits)  # x^parity_bits mod g(x)
    for power in range(data_bits):
        rows[data_bits - 1 - power] = [(remainder >> k) & 1 for k in range(parity_bits - 1, -1, -1)]
        remainder <<= 1
        if remainder >> parity_bits:
            remainder ^= generator
    return rows


def _byte_table(rows: Bits) -> Bits:
    """For a map that XORs ``rows[p]`` for every set bit p of a word: table[k, v], the XOR for byte k being v."""
    padded = np.zeros((-(-rows.shape[0] // 8) * 8, *rows.shape[1:]), dtype=np.uint8)
    padded[: rows.shape[0]] = rows
    byte_bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)  # (256, 8), MSB first
    per_byte = padded.reshape(-1, 1, 8, *rows.shape[1:])
    selected = np.where(byte_bits.reshape(1, 256, 8, *([1] * (rows.ndim - 1))) == 1, per_byte, 0)
    table: Bits = np.bitwise_xor.reduce(selected, axis=2)
    return table


def _xor_of_bytes(table: Bits, bits: Bits) -> Bits:
    """Apply a ``_byte_table`` map to each row of ``bits``."""
    packed = np.packbits(bits, axis=1)
    result: Bits = np.bitwise_xor.reduce(table[np.arange(packed.shape[1]), packed], axis=1)
    return result


def _as_bits(bits: Bits, width: int, name: str) -> Bits:
    array = np.asarray(bits)
    if array.ndim not in (1, 2) or array.shape[-1] != width:
        raise InvalidCodewordError(f"{name} must hold {width} bits (per row), got shape {array.shape}")
    if ((array != 0) & (array != 1)).any():
        raise InvalidCodewordError(f"{name} must hold only 0 and 1")
    return array.astype(np.uint8, copy=False)
