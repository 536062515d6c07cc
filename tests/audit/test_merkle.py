"""RFC 6962 Merkle hashing: published vectors, an independent recursive reference, and tampering."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from audit.errors import ProofError
from audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# The reference tree of certificate-transparency / trillian (merkle/log_verifier_test.go).
CT_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path); the trillian table counts leaves from 1.
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

CT_LEAVES = [leaf_hash(bytes.fromhex(x)) for x in CT_INPUTS]

MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]
ROOTS = [root_hash(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


def hexes(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def flip(value: bytes, position: int, mask: int = 0x01) -> bytes:
    changed = bytearray(value)
    changed[position] ^= mask
    return bytes(changed)


# The RFC 6962 §2.1 definitions, written recursively and independently of audit.merkle.
def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


class TestKnownAnswers:
    def test_primitives(self) -> None:
        assert EMPTY_ROOT.hex() == CT_ROOTS[0]
        assert leaf_hash(b"").hex() == CT_ROOTS[1]
        assert node_hash(CT_LEAVES[0], CT_LEAVES[1]).hex() == CT_ROOTS[2]
        assert len(leaf_hash(b"x")) == HASH_SIZE

    @pytest.mark.parametrize("size", range(9))
    def test_roots(self, size: int) -> None:
        assert root_hash(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
        assert MerkleFrontier.from_leaves(CT_LEAVES[:size]).root().hex() == CT_ROOTS[size]
        assert ref_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]

    @pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
    def test_inclusion(self, index: int, size: int, path: list[str]) -> None:
        proof = inclusion_proof(CT_LEAVES[:size], index)
        assert proof == hexes(path)
        root = bytes.fromhex(CT_ROOTS[size])
        verify_inclusion(CT_LEAVES[index], index, size, proof, root)
        for i in range(size):
            if i != index:
                with pytest.raises(ProofError):
                    verify_inclusion(CT_LEAVES[index], i, size, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(CT_LEAVES[index], index, size, proof, EMPTY_ROOT)
        with pytest.raises(ProofError):
            verify_inclusion(CT_LEAVES[index], index, size, [*proof, root], root)
        with pytest.raises(ProofError):
            verify_inclusion(CT_LEAVES[index], index, size, proof[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(CT_LEAVES[index], index, size, [root, *proof], root)

    @pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY)
    def test_consistency(self, old: int, new: int, path: list[str]) -> None:
        proof = consistency_proof(CT_LEAVES[:new], old)
        assert proof == hexes(path)
        old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
        verify_consistency(old, new, old_root, new_root, proof)
        if proof:
            with pytest.raises(ProofError):
                verify_consistency(old, new, new_root, old_root, proof)
            with pytest.raises(ProofError):
                verify_consistency(old, new, old_root, new_root, [])
            with pytest.raises(ProofError):
                verify_consistency(old, new, old_root, new_root, [*proof, old_root])
            with pytest.raises(ProofError):
                verify_consistency(old, new, old_root, new_root, proof[:-1])
            with pytest.raises(ProofError):
                verify_consistency(old, new, old_root, new_root, [proof[0], *proof])


class TestAgainstReference:
    @pytest.mark.parametrize("size", range(1, 65))
    def test_every_proof_of_small_trees(self, size: int) -> None:
        leaves = LEAVES[:size]
        root = ROOTS[size]
        assert root == ref_mth(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            assert proof == ref_path(index, leaves)
            verify_inclusion(leaves[index], index, size, proof, root)
        for old in range(1, size + 1):
            proof = consistency_proof(leaves, old)
            assert proof == ref_subproof(old, leaves, True)
            verify_consistency(old, size, ROOTS[old], root, proof)

    def test_frontier_matches_root_hash_at_every_size(self) -> None:
        frontier = MerkleFrontier()
        assert frontier.size == 0
        assert frontier.root() == EMPTY_ROOT
        for n, leaf in enumerate(LEAVES, start=1):
            frontier.append(leaf)
            assert frontier.size == n
            assert frontier.root() == ROOTS[n]
            assert len(frontier.to_list()) == n.bit_count()

    def test_larger_tree(self) -> None:
        leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(5000)]
        root = root_hash(leaves)
        assert MerkleFrontier.from_leaves(leaves).root() == root
        verify_inclusion(leaves[4321], 4321, 5000, inclusion_proof(leaves, 4321), root)
        verify_consistency(3333, 5000, root_hash(leaves[:3333]), root, consistency_proof(leaves, 3333))


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def tree_and_old_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(2, MAX_SIZE))
    return size, draw(st.integers(1, size - 1))


class TestInclusionProperties:
    @settings(max_examples=80, deadline=None)
    @given(tree_and_index(), st.data())
    def test_verifies_and_every_tamper_fails(self, case: tuple[int, int], data: st.DataObject) -> None:
        size, index = case
        leaves, root, leaf = LEAVES[:size], ROOTS[size], LEAVES[index]
        proof = inclusion_proof(leaves, index)
        verify_inclusion(leaf, index, size, proof, root)

        byte = data.draw(st.integers(0, HASH_SIZE - 1))
        mask = data.draw(st.integers(1, 255))
        with pytest.raises(ProofError):
            verify_inclusion(flip(leaf, byte, mask), index, size, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof, flip(root, byte, mask))
        if proof:
            element = data.draw(st.integers(0, len(proof) - 1))
            tampered = list(proof)
            tampered[element] = flip(proof[element], byte, mask)
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, size, tampered, root)
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, size, proof[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, [*proof, root], root)
        if size > 1:
            other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
            with pytest.raises(ProofError):
                verify_inclusion(leaf, other, size, proof, root)
        other_size = data.draw(st.integers(index + 1, MAX_SIZE).filter(lambda n: n != size))
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, other_size, proof, ROOTS[other_size])

    @settings(max_examples=6, deadline=None)
    @given(st.integers(1, MAX_SIZE))
    @example(MAX_SIZE)
    @example(257)
    def test_every_proof_of_a_random_size_verifies(self, size: int) -> None:
        leaves, root = LEAVES[:size], ROOTS[size]
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), root)
        for old in range(1, size + 1):
            verify_consistency(old, size, ROOTS[old], root, consistency_proof(leaves, old))

    def test_the_root_not_the_path_binds_the_tree_size(self) -> None:
        # Trees of 3 and 4 leaves share the shape of leaf 0's path, so the size alone proves nothing:
        # callers must take the size and the root from the same signed checkpoint.
        proof = inclusion_proof(LEAVES[:4], 0)
        verify_inclusion(LEAVES[0], 0, 3, proof, ROOTS[4])
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[0], 0, 3, proof, ROOTS[3])


class TestConsistencyProperties:
    @settings(max_examples=80, deadline=None)
    @given(tree_and_old_size(), st.data())
    def test_verifies_and_every_tamper_fails(self, case: tuple[int, int], data: st.DataObject) -> None:
        size, old = case
        proof = consistency_proof(LEAVES[:size], old)
        old_root, new_root = ROOTS[old], ROOTS[size]
        verify_consistency(old, size, old_root, new_root, proof)

        byte = data.draw(st.integers(0, HASH_SIZE - 1))
        mask = data.draw(st.integers(1, 255))
        element = data.draw(st.integers(0, len(proof) - 1))
        tampered = list(proof)
        tampered[element] = flip(proof[element], byte, mask)
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, new_root, tampered)
        with pytest.raises(ProofError):
            verify_consistency(old, size, flip(old_root, byte, mask), new_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, flip(new_root, byte, mask), proof)
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, new_root, proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, new_root, [*proof, new_root])

        other_old = data.draw(st.integers(1, size).filter(lambda m: m != old))
        with pytest.raises(ProofError):
            verify_consistency(other_old, size, ROOTS[other_old], new_root, proof)
        other_new = data.draw(st.integers(old, MAX_SIZE).filter(lambda n: n != size))
        with pytest.raises(ProofError):
            verify_consistency(old, other_new, old_root, ROOTS[other_new], proof)

    def test_trivial_sizes(self) -> None:
        assert consistency_proof(LEAVES[:7], 7) == []
        verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
        verify_consistency(0, 7, EMPTY_ROOT, ROOTS[7], [])
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
        with pytest.raises(ProofError, match="same tree size"):
            verify_consistency(7, 7, ROOTS[7], ROOTS[6], [])
        with pytest.raises(ProofError, match="must be empty"):
            verify_consistency(7, 7, ROOTS[7], ROOTS[7], [ROOTS[7]])
        with pytest.raises(ProofError, match="must be empty"):
            verify_consistency(0, 7, EMPTY_ROOT, ROOTS[7], [ROOTS[7]])
        with pytest.raises(ProofError, match="empty tree"):
            verify_consistency(0, 7, ROOTS[1], ROOTS[7], [])
        with pytest.raises(ProofError, match="is empty"):
            verify_consistency(3, 7, ROOTS[3], ROOTS[7], [])


class TestFrontierPersistence:
    @pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 8, 100, 255, 256])
    def test_round_trip_then_keep_appending(self, size: int) -> None:
        saved = MerkleFrontier.from_leaves(LEAVES[:size])
        restored = MerkleFrontier.from_list(saved.size, saved.to_list())
        assert restored.size == size
        assert restored.root() == ROOTS[size]
        for n in range(size, size + 20):
            restored.append(LEAVES[n])
            assert restored.root() == ROOTS[n + 1]

    def test_bad_lists(self) -> None:
        with pytest.raises(ValueError, match="holds 2 subtree hashes"):
            MerkleFrontier.from_list(3, [ROOTS[2]])
        with pytest.raises(ValueError, match="32 bytes"):
            MerkleFrontier.from_list(1, [b"short"])
        with pytest.raises(ValueError, match="negative"):
            MerkleFrontier.from_list(-1, [])
        with pytest.raises(ValueError, match="32 bytes"):
            MerkleFrontier().append(b"\x00" * 31)


class TestBadArguments:
    def test_generation(self) -> None:
        with pytest.raises(ValueError, match="out of range"):
            inclusion_proof(LEAVES[:5], 5)
        with pytest.raises(ValueError, match="out of range"):
            inclusion_proof(LEAVES[:5], -1)
        with pytest.raises(ValueError, match="out of range"):
            inclusion_proof([], 0)
        with pytest.raises(ValueError, match="between 1 and the tree size 5"):
            consistency_proof(LEAVES[:5], 0)
        with pytest.raises(ValueError, match="between 1 and the tree size 5"):
            consistency_proof(LEAVES[:5], 6)
        with pytest.raises(ValueError, match="position 2 must be 32 bytes, got 3"):
            root_hash([LEAVES[0], LEAVES[1], b"abc"])
        with pytest.raises(ValueError, match="must be bytes"):
            root_hash([LEAVES[0].hex()])  # type: ignore[list-item]

    def test_verification(self) -> None:
        proof = inclusion_proof(LEAVES[:5], 2)
        with pytest.raises(ValueError, match="out of range"):
            verify_inclusion(LEAVES[2], 5, 5, proof, ROOTS[5])
        with pytest.raises(ValueError, match="leaf hash must be 32 bytes"):
            verify_inclusion(b"WrongLeaf", 2, 5, proof, ROOTS[5])
        with pytest.raises(ValueError, match="root hash must be 32 bytes"):
            verify_inclusion(LEAVES[2], 2, 5, proof, b"")
        with pytest.raises(ValueError, match="old size 6 must be between 0 and the new size 5"):
            verify_consistency(6, 5, ROOTS[5], ROOTS[5], [])
        with pytest.raises(ProofError, match="position 0 is 0 bytes"):
            verify_inclusion(LEAVES[2], 2, 5, [b"", *proof], ROOTS[5])
        with pytest.raises(ProofError, match="position 1 is 3 bytes"):
            verify_consistency(2, 5, ROOTS[2], ROOTS[5], [LEAVES[0], b"abc"])
