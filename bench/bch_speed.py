"""Decode time per word of the payload's BCH code (watermark/bch.py), one word at a time and in Chase batches.

    .venv/bin/python bench/bch_speed.py [--words 300] [--batch 256]

For words with 0, 4, 8, 16 and 17 flipped bits and for random bits, it prints the time per word of
``BinaryBCH.decode`` (one word per call), of ``decode_words`` on batches of ``--batch`` words (what the detector's
Chase search decodes per candidate: 2^8 trial words), and of ``bchlib`` when it happens to be installed (the
GPL C library the payload used before; not a dependency). Times are process CPU time, best of three runs,
so a busy machine moves them less than wall-clock would.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watermark.payload import BCH_CODE

CASES: list[tuple[str, int | None]] = [
    ("clean", 0),
    ("4 flips", 4),
    ("8 flips", 8),
    ("16 flips (t)", 16),
    ("17 flips (fails)", 17),
    ("random bits (fails)", None),
]


def _words(count: int, flips: int | None, rng: np.random.Generator) -> np.ndarray:
    if flips is None:
        return rng.integers(0, 2, (count, BCH_CODE.length), dtype=np.uint8)
    data = rng.integers(0, 2, (count, BCH_CODE.data_bits), dtype=np.uint8)
    words = np.concatenate([data, BCH_CODE.encode(data)], axis=1)
    for row in words:
        row[rng.choice(BCH_CODE.length, flips, replace=False)] ^= 1
    return words


def _microseconds_per_word(run: Callable[[], object], words: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / words * 1e6


def _decode_each(words: np.ndarray) -> None:
    for word in words:
        BCH_CODE.decode(word)


def _bchlib_decoder(words: np.ndarray) -> Callable[[], object] | None:
    try:
        bchlib = importlib.import_module("bchlib")
    except ImportError:
        return None
    bch = bchlib.BCH(t=BCH_CODE.t, m=BCH_CODE.m)
    padding = np.zeros((words.shape[0], (-BCH_CODE.length) % 8), dtype=np.uint8)
    packed = [row.tobytes() for row in np.packbits(np.concatenate([words, padding], axis=1), axis=1)]
    data_bytes = BCH_CODE.data_bits // 8

    def run() -> None:
        for word in packed:
            data, ecc = bytearray(word[:data_bytes]), bytearray(word[data_bytes:])
            if bch.decode(data, ecc) >= 0:
                bch.correct(data, ecc)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=300, help="words per case for the one-at-a-time columns")
    parser.add_argument("--batch", type=int, default=256, help="words per decode_words call")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"BCH(m={BCH_CODE.m}, t={BCH_CODE.t}), {BCH_CODE.length} bits; microseconds of CPU per word")
    header = f"{'case':<22}{'decode':>10}{f'decode_words x{args.batch}':>22}{'bchlib':>10}"
    print(header)
    print("-" * len(header))
    for name, flips in CASES:
        single = _words(args.words, flips, rng)
        batch = _words(args.batch, flips, rng)
        ours = _microseconds_per_word(functools.partial(_decode_each, single), args.words)
        batched = _microseconds_per_word(functools.partial(BCH_CODE.decode_words, batch), args.batch)
        reference = _bchlib_decoder(single)
        theirs = f"{_microseconds_per_word(reference, args.words):10.1f}" if reference else f"{'absent':>10}"
        print(f"{name:<22}{ours:10.1f}{batched:22.1f}{theirs}")


if __name__ == "__main__":
    main()
