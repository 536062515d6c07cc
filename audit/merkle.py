"""RFC 6962 / RFC 9162 Merkle tree hashing: roots, inclusion and consistency proofs, and a compact frontier.

Every function works on leaf *hashes* (see ``leaf_hash``); SHA-256 throughout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from audit.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a list of leaf hashes; ``EMPTY_ROOT`` for none."""
    _check_hashes(leaves, "leaf hash")
    return _range_root(leaves, 0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 6962 §2.1.1), bottom-up."""
    size = len(leaves)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is out of range for a tree of {size} leaves")
    _check_hashes(leaves, "leaf hash")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split_point(hi - lo)
        if index < mid:
            path.append(_range_root(leaves, mid, hi))
            hi = mid
        else:
            path.append(_range_root(leaves, lo, mid))
            lo = mid
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the first ``old_size`` leaves are a prefix of ``leaves`` (RFC 6962 §2.1.2)."""
    size = len(leaves)
    if not 1 <= old_size <= size:
        raise ValueError(f"old size {old_size} must be between 1 and the tree size {size}")
    _check_hashes(leaves, "leaf hash")
    # SUBPROOF(m, D[lo:hi], b) unrolled: walk down collecting the siblings, deepest last.
    proof: list[bytes] = []
    lo, hi, m = 0, size, old_size
    complete_subtree = True
    while m != hi - lo:
        k = _split_point(hi - lo)
        if m <= k:
            proof.append(_range_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_range_root(leaves, lo, lo + k))
            lo += k
            m -= k
            complete_subtree = False
    if not complete_subtree:
        proof.append(_range_root(leaves, lo, hi))
    proof.reverse()
    return proof


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` sits at ``index`` of the tree of ``tree_size`` leaves with ``root`` (RFC 9162 §2.1.3.2)."""
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is out of range for a tree of {tree_size} leaves")
    fn, sn = index, tree_size - 1
    r = leaf
    for position, p in enumerate(proof):
        _check_proof_hash(p, position, "inclusion")
        if sn == 0:
            raise ProofError(f"inclusion proof is too long: {len(proof)} hashes for leaf {index} of {tree_size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short: {len(proof)} hashes for leaf {index} of {tree_size}")
    if r != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root of the tree of {tree_size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size`` (RFC 9162 §2.1.4.2)."""
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    if not 0 <= old_size <= new_size:
        raise ValueError(f"old size {old_size} must be between 0 and the new size {new_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ProofError(f"consistency proof from {old_size} to {new_size} must be empty, got {len(proof)} hashes")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError("the old root of an empty tree must be the hash of the empty string")
        if old_size == new_size and old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old_size}")
        return
    if not proof:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is empty")
    for position, p in enumerate(proof):
        _check_proof_hash(p, position, "consistency")
    hashes = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one: its root is the proof's implicit first node.
        hashes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {old_size} to {new_size} is too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is too short: {len(proof)} hashes")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root of the tree of {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root of the tree of {new_size}")


class MerkleFrontier:
    """The roots of the perfect subtrees that make up a tree (a compact range from 0): O(log n) memory."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleFrontier:
        """A frontier over the given leaf hashes, appended in order."""
        frontier = cls()
        for leaf in leaves:
            frontier.append(leaf)
        return frontier

    @classmethod
    def from_list(cls, size: int, hashes: Sequence[bytes]) -> MerkleFrontier:
        """Rebuild a frontier persisted with ``to_list``; ``size`` is its leaf count."""
        if size < 0:
            raise ValueError(f"frontier size must not be negative, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves holds {size.bit_count()} subtree hashes, got {len(hashes)}")
        _check_hashes(hashes, "frontier hash")
        frontier = cls()
        frontier._size = size
        frontier._hashes = list(hashes)
        return frontier

    @property
    def size(self) -> int:
        """How many leaves have been appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash to the right of the tree."""
        _check_hash(leaf, "leaf hash")
        h, s = leaf, self._size
        while s & 1:
            h = node_hash(self._hashes.pop(), h)
            s >>= 1
        self._hashes.append(h)
        self._size += 1

    def root(self) -> bytes:
        """The Merkle tree hash of every leaf appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def to_list(self) -> list[bytes]:
        """The subtree hashes, largest subtree first; persist them with ``size``."""
        return list(self._hashes)

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"


def _split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of ``leaves[lo:hi]``, built level by level; pairing with the odd node promoted equals RFC 6962's split."""
    if lo == hi:
        return EMPTY_ROOT
    level: Sequence[bytes] = leaves[lo:hi]
    sha256, prefix = hashlib.sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        upper = [sha256(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes):
        raise ValueError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_hashes(values: Sequence[bytes], what: str) -> None:
    if all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values):
        return
    for position, value in enumerate(values):
        _check_hash(value, f"{what} at position {position}")


def _check_proof_hash(value: bytes, position: int, kind: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{kind} proof hash at position {position} is {len(value)} bytes, not {HASH_SIZE}")
