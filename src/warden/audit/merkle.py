"""RFC 9162 Merkle trees: leaf and node hashes, the frontier an append-only log keeps, and
inclusion and consistency proofs with their verification. Pure: no I/O.

A tree over leaves D[0:n] is addressed by perfect subtrees: node (level, index) covers leaves
[index * 2^level, (index + 1) * 2^level); level 0 nodes are the leaf hashes. Proofs are built
from perfect subtrees a caller looks up (``perfect(level, index)``), so a log only needs to
keep those.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Perfect = Callable[[int, int], bytes]
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """MTH of one entry: SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def fold(nodes: Sequence[bytes]) -> bytes:
    """The root over perfect subtrees listed left to right in decreasing size (a frontier)."""
    if not nodes:
        return EMPTY_ROOT
    acc = nodes[-1]
    for node in reversed(nodes[:-1]):
        acc = node_hash(node, acc)
    return acc


class Frontier:
    """The right edge of a growing tree: one perfect subtree root per 1-bit of its size."""

    __slots__ = ("levels", "nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        levels = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(levels) != len(nodes):
            raise ValueError(f"a tree of {size} leaves has {len(levels)} frontier nodes")
        self.size = size
        self.levels = levels
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the interior nodes it completed as (level, index, hash)."""
        completed = []
        node, level = leaf, 0
        index = self.size
        while self.levels and self.levels[-1] == level:
            self.levels.pop()
            node = node_hash(self.nodes.pop(), node)
            level += 1
            index >>= 1
            completed.append((level, index, node))
        self.levels.append(level)
        self.nodes.append(node)
        self.size += 1
        return completed

    def push(self, leaf: bytes) -> None:
        """:meth:`append` for a verifier, which keeps no interior nodes: nothing returned, and
        nothing built to return (it runs once per entry over the whole log)."""
        node, level = leaf, 0
        levels, nodes = self.levels, self.nodes
        while levels and levels[-1] == level:
            levels.pop()
            node = _sha256(b"\x01" + nodes.pop() + node).digest()
            level += 1
        levels.append(level)
        nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        return fold(self.nodes)

    def copy(self) -> Frontier:
        copied = Frontier()
        copied.size, copied.levels, copied.nodes = self.size, list(self.levels), list(self.nodes)
        return copied


def frontier_of(size: int, perfect: Perfect) -> Frontier:
    """The frontier of the tree of ``size`` leaves, from its perfect subtrees."""
    nodes = []
    start = 0
    for bit in range(size.bit_length() - 1, -1, -1):
        if size >> bit & 1:
            nodes.append(perfect(bit, start >> bit))
            start += 1 << bit
    return Frontier(size, nodes)


def subtree_hash(start: int, end: int, perfect: Perfect) -> bytes:
    """MTH(D[start:end]) for a range a proof needs: ``start`` a multiple of a power of two at
    least ``end - start`` (so the range splits into perfect subtrees of decreasing size)."""
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append(perfect(level, start >> level))
        start += 1 << level
    return fold(nodes)


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, size: int, perfect: Perfect) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 2.1.3.1), leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")

    def path(m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, start, k), subtree_hash(start + k, start + n, perfect)]
        return [*path(m - k, start + k, n - k), subtree_hash(start, start + k, perfect)]

    return path(index, 0, size)


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); ValueError if malformed."""
    if not 0 <= index < size:
        raise ValueError("index outside the tree")
    fn, sn = index, size - 1
    acc = leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return acc


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    try:
        return root_from_inclusion(leaf, index, size, proof) == root
    except ValueError:
        return False


def consistency_proof(m: int, n: int, perfect: Perfect) -> list[bytes]:
    """PROOF(m, D[0:n]) (RFC 9162 2.1.4.1): the tree of m leaves is a prefix of the tree of n."""
    if not 0 < m <= n:
        raise ValueError(f"no consistency proof from {m} to {n}")

    def subproof(m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [subtree_hash(start, start + m, perfect)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, start, k, complete), subtree_hash(start + k, start + n, perfect)]
        return [
            *subproof(m - k, start + k, n - k, False),
            subtree_hash(start, start + k, perfect),
        ]

    return subproof(m, 0, n, True)


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2."""
    if not 0 < m <= n:
        return False
    if m == n:
        return not proof and root_m == root_n
    path = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: root_m itself starts the path
        path.insert(0, root_m)
    if not path:
        return False
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root_m and sr == root_n
