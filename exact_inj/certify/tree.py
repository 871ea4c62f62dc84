"""The check of a case-split tree (docs/theory.md, section 4): in this process,
or in windows checked by worker processes (certify/parallel.py).

The tree is a preorder list of codes: a row index splits a node (P, N) into
(P + row, N) then (P, N + row); RANK_LEAF closes a node whose P rows have rank
n; CORE_BASE - k closes one whose N holds core k's rows.  Every split and rank
is recomputed here from the certificate's own network, never trusted.

**In windows.**  A replay can start anywhere in the codes if it is given the
state the replay of everything before would hold there: the node, the order
its P rows joined in, and the stack of second children still to visit.
certify/windows.py computes that state from the codes' signs alone while
they stream past, and checks that the tree closes exactly at its last code.
So a tree is replayed a window at a time, here or by workers, with memory
bounded by a window: the union of what the windows' replays check is what
one replay of the whole tree checks, and the caches a replay keeps only save
work.  A tree kept on disk (certify/codes.py) is only ever read this way.
Nothing in the certificate says where to cut.
"""

from __future__ import annotations

import contextlib
import contextvars
from array import array

import flint
import numpy as np

from ..exact import linalg
from ..exact.modrank import nonsingular_mod
from ..model import Domain, Network
from .base import Invalid, num
from .codes import CodeFile, PackedCores
from .layer import check_core, layer_rows
from .schema import CORE_BASE, RANK_LEAF, TreeProof
from .windows import Shape

__all__ = ["PARALLEL_MIN_CODES", "WINDOW", "Masks", "Rows", "certificate_rules", "check_tree", "check_workers",
           "walk", "windows", "workers_in_use"]

# A prime for the one-sided rank test of rank leaves (2^61 - 1).
_P = (1 << 61) - 1
# The prime of the batched rank test (2^31 - 1): a product of two residues is
# below 2^62, so a difference of two such products still fits an int64.
_Q = (1 << 31) - 1
# Rank leaves of exactly n rows are tested this many at a time (numpy over the
# batch; about 1 us a leaf against 12 us one by one), which bounds the memory
# a walk holds for them.
_BATCH = 4096
# The rank and null-space caches of the tree walk are emptied at this size
# (they only save work; rank leaves under one parent come in runs).
_CACHE_MAX = 1 << 14
PARALLEL_MIN_CODES = 200_000
"""Below this many codes and core rows a tree is checked in this process:
starting workers costs more than it saves (about 0.3 s each)."""


_WORKERS: contextvars.ContextVar[int] = contextvars.ContextVar("exact_inj_check_workers", default=1)
_LINE_LEAVES: contextvars.ContextVar[bool] = contextvars.ContextVar("exact_inj_line_leaves", default=True)


@contextlib.contextmanager
def certificate_rules(version: int):
    """Check trees in this context by the rules of certificate ``version``:
    from version 2 a core leaf may hold core rows outside N that raise P to
    rank n (line leaves); version 1 needs every core row in N.  check() sets
    it from the certificate it checks, for every tree inside it.

    >>> with certificate_rules(1):
    ...     _LINE_LEAVES.get()
    False
    >>> _LINE_LEAVES.get()
    True
    """
    token = _LINE_LEAVES.set(version >= 2)
    try:
        yield
    finally:
        _LINE_LEAVES.reset(token)


def workers_in_use() -> int:
    """The processes a tree check may use here (1 unless :func:`check_workers` set more)."""
    return _WORKERS.get()


@contextlib.contextmanager
def check_workers(k: int):
    """Let tree checks in this context (and threads started from a copy of it)
    use up to ``k`` processes.

    >>> with check_workers(2):
    ...     workers_in_use()
    2
    >>> workers_in_use()
    1
    """
    token = _WORKERS.set(max(1, int(k)))
    try:
        yield
    finally:
        _WORKERS.reset(token)


class Rows:
    """What a walk reads: the rows mod p and as integers, the cores' row
    masks, and the caches."""

    def __init__(self, W: list[list[int]], n: int, core_masks: list[int], line_leaves: bool = True) -> None:
        self.W, self.n, self.m = W, n, len(W)
        self.line_leaves = line_leaves
        self.Wp = [[x % _P for x in row] for row in W]
        self.core_masks = core_masks
        self.rank_cache: dict[int, int] = {}
        self.null_cache: dict[int, list[int] | None] = {}
        self.Wq = np.array([[x % _Q for x in row] for row in W], dtype=np.int64).reshape(len(W), n)
        # Rank tests waiting for the batch: (P, rows, node, core, row) as
        # rank_leaf takes them (core None for a rank leaf).
        self.pending: list[tuple[int, list[int], int, int | None, int]] = []

    def rank_leaf(self, P: int, rows: list[int], node: int, core: int | None = None, row: int = -1) -> None:
        """Check (now, or with the next batch) that the rows of P have rank n:
        at a rank leaf, or for a core leaf's row ``row`` outside N (``core``
        names the core).  ``rows`` is kept as it is: the caller passes a list
        it will not change."""
        if len(rows) == self.n and self.n:
            self.pending.append((P, rows, node, core, row))
            if len(self.pending) >= _BATCH:
                self.flush()
        elif not self.full_rank(P, rows):
            self.fail_rank(rows, node, core, row)

    def flush(self) -> None:
        """Decide the pending rank leaves.  A leaf whose n rows are
        nonsingular modulo _Q has rank n over Q (module docstring of
        nonsingular_mod); the others go through :meth:`full_rank`, which
        settles them exactly."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        idx = np.array([entry[1] for entry in pending], dtype=np.intp)
        ok = nonsingular_mod(self.Wq[idx], _Q)
        for j in np.flatnonzero(~ok).tolist():
            P, rows, node, core, row = pending[j]
            if not self.full_rank(P, rows):
                self.fail_rank(rows, node, core, row)

    def fail_rank(self, rows: list[int], node: int, core: int | None = None, row: int = -1):
        rank = linalg.rank([self.W[i] for i in rows], self.n)
        if core is None:
            raise Invalid(f"rank leaf at node {node}: its orthogonal rows have rank {rank} < {self.n}")
        raise Invalid(f"core leaf at node {node}: row {row} of core {core} is not fixed negative on this branch, "
                      f"and with the rows fixed orthogonal it has rank {rank} < {self.n}")

    def full_rank(self, P: int, rows: list[int]) -> bool:
        """Whether ``rows`` have rank n.  The caches are keyed by the row sets
        computed here from ``rows`` (``P`` is not trusted to match them), and
        a list that repeats a row skips them: the null vector cached for
        rows[:-1] must be that of exactly the set P minus the last row."""
        n = self.n
        P = 0
        for i in rows:
            P |= 1 << i
        if P.bit_count() != len(rows):
            return linalg.rank([self.W[i] for i in rows], n) == n
        r = self.rank_cache.get(P)
        if r is None:
            # The rank modulo a prime never exceeds the rank over Q, and n is
            # the most the rank can be: n mod p settles it exactly.  Only a
            # smaller rank mod p needs the exact integer rank.
            if len(rows) >= max(n, 2):
                # Rank leaves come in runs under one parent set Q = P minus its
                # last row.  When Q's rows have a null space mod p spanned by
                # one vector u, P has rank n mod p exactly when the last row is
                # not orthogonal to u.
                last = rows[-1]
                Q = P ^ (1 << last)
                u = self.null_cache.get(Q, False)
                if u is False:
                    X, nullity = flint.nmod_mat([self.Wp[i] for i in rows[:-1]], _P).nullspace()
                    u = [int(X[j, 0]) for j in range(n)] if nullity == 1 else None
                    if len(self.null_cache) > _CACHE_MAX:
                        self.null_cache.clear()
                    self.null_cache[Q] = u
                if u is not None and sum(a * c for a, c in zip(self.Wp[last], u)) % _P:
                    r = n
            if r is None:
                if len(rows) >= n and flint.nmod_mat([self.Wp[i] for i in rows], _P).rank() == n:
                    r = n
                else:
                    r = linalg.rank([self.W[i] for i in rows], n)
            if len(self.rank_cache) > _CACHE_MAX:
                self.rank_cache.clear()
            self.rank_cache[P] = r
        return r == n


def walk(ctx: Rows, tree, start: int, end: int, P: int, N: int, prows: list[int], offset: int = 0,
          stack: list[tuple[int, int, int]] | None = None, closes: bool = True, tail: int = 0) -> int:
    """Replay the codes ``tree[start:end]`` from the node (P, N) whose P rows
    joined in the order ``prows``, with ``stack`` the second children still
    to visit (certify/windows.py gives a window's).  With ``closes`` the tree
    must close exactly at ``end``; otherwise the replay stops there (a window
    followed by ``tail`` more codes).  Returns the number of leaves.  Node
    numbers in messages are ``offset`` + the index in ``tree``.

    Rank leaves are tested in batches; every batch is decided before this
    returns, and before any other fault is reported, so the first fault in
    preorder is the one named."""
    ctx.pending.clear()
    try:
        leaves = _replay(ctx, tree, start, end, P, N, prows, offset, stack, closes, tail)
    except Invalid:
        ctx.flush()
        raise
    ctx.flush()
    return leaves


def _replay(ctx: Rows, tree, start: int, end: int, P: int, N: int, prows: list[int], offset: int,
            stack: list[tuple[int, int, int]] | None, closes: bool, tail: int) -> int:
    m, core_masks = ctx.m, ctx.core_masks
    ncores = len(core_masks)
    # Masks packed in bytes are read inline: a method call per core leaf costs
    # about as much as the rest of the leaf.
    mdata, mw = (core_masks.data, core_masks.width) if isinstance(core_masks, Masks) else (None, 0)
    pos = start
    prows = list(prows)
    # Iterative preorder replay.  The stack holds the (P, N) of second children
    # still to visit; the first child is visited at once.  A second child
    # restores the length of prows its parent had (the third field).
    stack = [] if stack is None else list(stack)
    leaves = 0
    while True:
        if pos >= end:
            if closes:
                raise Invalid("the tree ends before every case is closed")
            return leaves
        code = tree[pos]
        pos += 1
        if code >= 0:
            if code >= m:
                raise Invalid(f"tree node {offset + pos - 1} splits on row {num(code)}, but the layer has {m} rows")
            bit = 1 << code
            if (P | N) & bit:
                raise Invalid(f"tree node {offset + pos - 1} splits on row {code}, which is already decided")
            stack.append((P, N | bit, len(prows)))
            P |= bit
            prows.append(code)
            continue
        if code == RANK_LEAF:
            ctx.rank_leaf(P, prows[:], offset + pos - 1)
        else:
            k = CORE_BASE - code
            if not (0 <= k < ncores):
                raise Invalid(f"tree node {offset + pos - 1} names core {num(k)}, which does not exist")
            rest = (core_masks[k] if mdata is None else int.from_bytes(mdata[k * mw:k * mw + mw], "little")) & ~N
            if rest and not ctx.line_leaves:
                raise Invalid(f"core leaf at node {offset + pos - 1}: core {k} has rows not fixed negative on this "
                              "branch (a version 1 certificate: no line leaves)")
            while rest:
                # A core row outside N must be independent of P's rows with
                # rank n: then no v != 0 orthogonal to P is orthogonal to it,
                # so it is strictly negative too (a line leaf, docs/theory.md
                # section 4).  Tested as a rank leaf on P + {r}.
                low = rest & -rest
                r = low.bit_length() - 1
                rest ^= low
                if P & low:
                    # A core row fixed orthogonal: P ∪ {r} is P, which must
                    # then have rank n itself (the node is closed anyway).
                    ctx.rank_leaf(P, prows[:], offset + pos - 1, k, r)
                else:
                    ctx.rank_leaf(P | low, prows + [r], offset + pos - 1, k, r)
        leaves += 1
        if not stack:
            break
        P, N, plen = stack.pop()
        del prows[plen:]
    if pos != end or tail:
        raise Invalid(f"the tree has {end - pos + tail} entries after its last leaf")
    return leaves


def check_tree(net: Network, proof: TreeProof, domain: Domain, workers: int | None = None) -> str:
    """Check a case-split tree proof for a single ReLU layer on ``domain``,
    with up to ``workers`` processes for a large tree (default: what
    :func:`check_workers` set, else 1); the same checks either way (module
    docstring).  A tree kept on disk (a CodeFile) is read a window at a time."""
    if workers is None:
        workers = _WORKERS.get()
    if domain.is_empty():
        raise Invalid("the domain is empty; use an empty_domain proof")
    rows_q, W, b, m_layer, n = layer_rows(net, domain)
    tree, cores = proof.tree, proof.cores
    line_leaves = _LINE_LEAVES.get()
    rows = Rows(W, n, [], line_leaves)
    streamed = isinstance(tree, CodeFile) or isinstance(cores, PackedCores)
    leaves = None
    if workers > 1 and len(tree) + _core_rows(cores) >= PARALLEL_MIN_CODES:
        from .parallel import check_parallel  # the worker pool, only when asked for

        leaves = check_parallel(rows, rows_q, b, m_layer, cores, tree, workers)
    if leaves is None and not streamed:
        for k, core in enumerate(cores):
            check_core(rows_q, W, b, m_layer, n, core, k)
        rows.core_masks = [sum(1 << i for i in c.support) for c in cores]
        leaves = walk(rows, tree, 0, len(tree), 0, 0, [])
    elif leaves is None:
        masks = Masks(len(W))
        for k, core in enumerate(cores):
            check_core(rows_q, W, b, m_layer, n, core, k)
            masks.add(core.support, k)
        rows.core_masks = masks
        leaves = 0
        shape = Shape(len(W), len(tree))
        for offset, chunk in windows(tree):
            # Replayed before the shape takes it, so that the first fault in
            # preorder is the one named, as in one replay of the whole tree.
            P, N, prows, stack = shape.state()
            end = offset + len(chunk)
            leaves += walk(rows, chunk.tolist(), 0, len(chunk), P, N, prows, offset, stack,
                           closes=end == len(tree), tail=len(tree) - end)
            shape.advance(chunk)
        shape.finish()
    where = "" if domain.kind == "reals" else f" on {domain.describe()}"
    return f"case-split tree{where}: {leaves} leaves and {len(cores)} cores verified exactly"


WINDOW = 1 << 16
"""Codes replayed at a time when a tree is checked in windows (0.5 MB as
int64; a few MB as the list a replay reads).  Small windows keep the
workers evenly busy to the end: at n = 10, 2^16 checked in 4.2 s, 2^18 in
4.4 s and 2^20 in 5.6 s."""


def windows(tree, size: int | None = None):
    """(offset, int64 array) for consecutive windows of the tree's codes: read
    from disk for a CodeFile, viewed in place for an array.  ValueError (via
    numpy) when an in-memory code does not fit in 64 bits."""
    size = size or WINDOW
    if isinstance(tree, CodeFile):
        offset = 0
        for chunk in tree.chunks(size):
            yield offset, chunk
            offset += len(chunk)
        return
    for lo in range(0, len(tree), size):
        part = tree[lo:lo + size]
        if isinstance(part, array) and part.typecode in "ilq":
            yield lo, np.frombuffer(part, dtype=np.dtype(part.typecode)).astype(np.int64)
        else:
            yield lo, np.fromiter(part, dtype=np.int64, count=len(part))


def _core_rows(cores) -> int:
    rows = getattr(cores, "rows", None)  # PackedCores and FlatCores count theirs
    return rows if isinstance(rows, int) else sum(len(c.support) for c in cores)


class Masks:
    """The cores' row sets as bit masks, packed in one bytearray (a core of
    an n = 12 tree costs 10 bytes here, about 60 as a Python int in a list)."""

    def __init__(self, M: int) -> None:
        self.M, self.width = M, (M + 7) // 8
        self.data = bytearray()

    def add(self, support, k: int) -> None:
        """Add core k's mask; Invalid, as check_core says it, for a support
        that is empty, repeats a row or names one outside 0..M-1 (the mask
        of a row index of 5000 digits is never built)."""
        S = tuple(support)
        if not S:
            raise Invalid(f"core {k} is empty")
        if len(set(S)) != len(S) or any(not (0 <= i < self.M) for i in S):
            raise Invalid(f"core {k} names rows outside 0..{self.M - 1} or repeats one")
        self.data += sum(1 << i for i in S).to_bytes(self.width, "little")

    def extend(self, supports: list, k0: int) -> None:
        """Add the masks of cores k0, k0 + 1, ... at once (numpy), with the
        refusals of :meth:`add`, for the first faulty core."""
        try:
            lengths = np.fromiter(map(len, supports), dtype=np.int64, count=len(supports))
            rows = np.fromiter((i for S in supports for i in S), dtype=np.int64, count=int(lengths.sum()))
        except (OverflowError, TypeError, ValueError):
            for j, S in enumerate(supports):  # a row beyond 64 bits: one by one, which says which core
                self.add(S, k0 + j)
            return
        K = len(supports)
        ids = np.repeat(np.arange(K), lengths)
        inside = (rows >= 0) & (rows < self.M)
        bad = lengths == 0
        np.logical_or.at(bad, ids, ~inside)
        safe = np.where(inside, rows, 0)
        bits = np.zeros((K, self.width), dtype=np.uint8)
        np.bitwise_or.at(bits, (ids, safe >> 3), np.where(inside, 1 << (safe & 7), 0).astype(np.uint8))
        bad |= np.unpackbits(bits, axis=1).sum(axis=1, dtype=np.int64) != lengths  # a repeated row
        if bad.any():
            j = int(np.argmax(bad))
            self.add(supports[j], k0 + j)  # raises, with add's words
            raise AssertionError("a faulty core was accepted")  # pragma: no cover
        self.data += bits.tobytes()

    @classmethod
    def of(cls, M: int, data: bytes) -> "Masks":
        masks = cls(M)
        masks.data = bytearray(data)
        return masks

    def __len__(self) -> int:
        return len(self.data) // self.width

    def __getitem__(self, k: int) -> int:
        w = self.width
        return int.from_bytes(self.data[k * w:(k + 1) * w], "little")
