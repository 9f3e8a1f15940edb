"""RFC 9162 Merkle trees: roots, frontiers, inclusion and consistency proofs, against a plain
recursive definition; proofs verify for any tree and fail for any altered leaf."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from warden.audit import merkle


def mth(leaves: list[bytes]) -> bytes:
    """MTH from the RFC's definition, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def leaves_of(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]


def perfect_of(leaves: list[bytes]) -> merkle.Perfect:
    def perfect(level: int, index: int) -> bytes:
        start = index << level
        part = leaves[start : start + (1 << level)]
        assert len(part) == 1 << level, "only perfect subtrees are asked for"
        return mth(part)

    return perfect


def test_known_vector() -> None:
    # RFC 6962's test leaves: the empty tree and a one-entry tree.
    assert merkle.Frontier().root().hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@given(st.integers(min_value=0, max_value=300))
def test_frontier_root_is_the_trees_root(n: int) -> None:
    leaves = leaves_of(n)
    frontier = merkle.Frontier()
    completed = {}
    for leaf in leaves:
        for level, index, value in frontier.append(leaf):
            completed[(level, index)] = value
    assert frontier.root() == mth(leaves)
    for (level, index), value in completed.items():  # every completed node is the subtree's
        assert value == perfect_of(leaves)(level, index)
    rebuilt = merkle.frontier_of(n, perfect_of(leaves))
    assert rebuilt.root() == frontier.root() and rebuilt.nodes == frontier.nodes


@settings(max_examples=200)
@given(st.data())
def test_inclusion_proofs(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    leaves = leaves_of(n)
    root = mth(leaves)
    proof = merkle.inclusion_proof(index, n, perfect_of(leaves))
    assert merkle.verify_inclusion(leaves[index], index, n, proof, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), index, n, proof, root)
    if n > 1:
        other = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda i: i != index))
        assert not merkle.verify_inclusion(leaves[index], other, n, proof, root)
    if proof:
        flipped = list(proof)
        flipped[0] = bytes([flipped[0][0] ^ 1]) + flipped[0][1:]
        assert not merkle.verify_inclusion(leaves[index], index, n, flipped, root)
        assert not merkle.verify_inclusion(leaves[index], index, n, proof[:-1], root)
        assert not merkle.verify_inclusion(leaves[index], index, n, [*proof, proof[0]], root)


@settings(max_examples=200)
@given(st.data())
def test_consistency_proofs(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    m = data.draw(st.integers(min_value=1, max_value=n))
    leaves = leaves_of(n)
    root_m, root_n = mth(leaves[:m]), mth(leaves)
    proof = merkle.consistency_proof(m, n, perfect_of(leaves))
    assert merkle.verify_consistency(m, n, root_m, root_n, proof)
    # Any altered leaf in the old tree breaks it: the new tree no longer extends the old one.
    changed = data.draw(st.integers(min_value=0, max_value=m - 1))
    forked = list(leaves)
    forked[changed] = merkle.leaf_hash(b"rewritten history")
    forked_proof = merkle.consistency_proof(m, n, perfect_of(forked))
    assert not merkle.verify_consistency(m, n, root_m, mth(forked), forked_proof)
    if m < n:
        assert not merkle.verify_consistency(m, n, root_m, root_n, proof[:-1])
        assert not merkle.verify_consistency(m, n, root_n, root_n, proof)


def test_bad_proof_arguments() -> None:
    leaves = leaves_of(5)
    assert not merkle.verify_inclusion(leaves[0], 7, 5, [], mth(leaves))
    assert not merkle.verify_consistency(0, 5, b"", mth(leaves), [])
    assert not merkle.verify_consistency(3, 5, mth(leaves[:3]), mth(leaves), [])
    assert merkle.verify_consistency(5, 5, mth(leaves), mth(leaves), [])
