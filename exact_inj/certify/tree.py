"""The check of a case-split tree (docs/theory.md, section 4): in this process,
or split into subtrees checked by worker processes.

The tree is a preorder list of codes: a row index splits a node (P, N) into
(P + row, N) then (P, N + row); RANK_LEAF closes a node whose P rows have rank
n; CORE_BASE - k closes one whose N holds core k's rows.  Every split and rank
is recomputed here from the certificate's own network, never trusted.

**In parallel.**  The shape of a preorder tree is a fact about the signs of its
codes alone: with +1 for a split and -1 for a leaf, the subtree that starts at
code a ends at the first code where the running sum falls 1 below its value
before a.  So this process cuts the tree into subtrees by those sums
(numpy), checks the split codes above the cuts itself, and hands each subtree,
with the (P, N) it starts from, to a worker that replays it with the same walk
as the sequential check and must find it closed exactly at its end.  Cores are
checked in chunks the same way.  The union of what is checked is exactly what
the sequential check checks; the caches the walk keeps only save work.  A tree
whose sums do not close where they must is left to the sequential check, which
names the fault.  Nothing in the certificate says where to cut.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import select
import threading
from array import array

import flint
import numpy as np

from .. import ipc
from ..exact import linalg
from ..exact.modrank import nonsingular_mod
from ..model import Domain, Network
from .base import Invalid, num
from .layer import check_core, layer_rows
from .schema import CORE_BASE, RANK_LEAF, TreeProof

__all__ = ["CUT_MIN", "PARALLEL_MIN_CODES", "certificate_rules", "check_tree", "check_workers", "shutdown", "worker_main", "workers_in_use"]

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
CUT_MIN = 2048
"""Subtrees smaller than this are not cut further."""


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


class _Rows:
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


def _walk(ctx: _Rows, tree, start: int, end: int, P: int, N: int, prows: list[int], offset: int = 0) -> int:
    """Replay the subtree whose first code is ``tree[start]``, from the node
    (P, N) whose P rows joined in the order ``prows``; it must close exactly
    at ``end``.  Returns its number of leaves.  Node numbers in messages are
    ``offset`` + the index in ``tree`` (a worker holds a slice).

    Rank leaves are tested in batches; every batch is decided before this
    returns, and before any other fault is reported, so the first fault in
    preorder is the one named."""
    ctx.pending.clear()
    try:
        leaves = _replay(ctx, tree, start, end, P, N, prows, offset)
    except Invalid:
        ctx.flush()
        raise
    ctx.flush()
    return leaves


def _replay(ctx: _Rows, tree, start: int, end: int, P: int, N: int, prows: list[int], offset: int) -> int:
    m, core_masks = ctx.m, ctx.core_masks
    pos = start
    prows = list(prows)
    # Iterative preorder replay.  The stack holds the (P, N) of second children
    # still to visit; the first child is visited at once.  A second child
    # restores the length of prows its parent had (the third field).
    stack: list[tuple[int, int, int]] = []
    leaves = 0
    while True:
        if pos >= end:
            raise Invalid("the tree ends before every case is closed")
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
            if not (0 <= k < len(core_masks)):
                raise Invalid(f"tree node {offset + pos - 1} names core {num(k)}, which does not exist")
            rest = core_masks[k] & ~N
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
    if pos != end:
        raise Invalid(f"the tree has {end - pos} entries after its last leaf")
    return leaves


def check_tree(net: Network, proof: TreeProof, domain: Domain, workers: int | None = None) -> str:
    """Check a case-split tree proof for a single ReLU layer on ``domain``,
    with up to ``workers`` processes for a large tree (default: what
    :func:`check_workers` set, else 1); the same checks either way (module
    docstring)."""
    if workers is None:
        workers = _WORKERS.get()
    if domain.is_empty():
        raise Invalid("the domain is empty; use an empty_domain proof")
    rows_q, W, b, m_layer, n = layer_rows(net, domain)
    tree, M = proof.tree, len(W)
    size = len(tree) + sum(len(c.support) for c in proof.cores)
    leaves = None
    # The row masks of the cores are built only from rows that exist (a row
    # index of 5000 digits would make a mask of 10^5000 bits): the parallel
    # check looks first, the sequential one checks each core first.
    # One check at a time owns the worker pool: a second one, from another
    # thread, is checked here sequentially (two writers on one pipe would
    # interleave their messages).
    if (workers > 1 and size >= PARALLEL_MIN_CODES and all(0 <= i < M for c in proof.cores for i in c.support)
            and _POOL_LOCK.acquire(blocking=False)):
        try:
            ctx = _Rows(W, n, [sum(1 << i for i in c.support) for c in proof.cores], _LINE_LEAVES.get())
            leaves = _parallel(ctx, rows_q, b, m_layer, proof, workers)
        finally:
            _POOL_LOCK.release()
    if leaves is None:
        for k, core in enumerate(proof.cores):
            check_core(rows_q, W, b, m_layer, n, core, k)
        ctx = _Rows(W, n, [sum(1 << i for i in c.support) for c in proof.cores], _LINE_LEAVES.get())
        leaves = _walk(ctx, tree, 0, len(tree), 0, 0, [])
    where = "" if domain.kind == "reals" else f" on {domain.describe()}"
    return f"case-split tree{where}: {leaves} leaves and {len(proof.cores)} cores verified exactly"


# --- cutting the tree -----------------------------------------------------------------------


def _codes(tree) -> np.ndarray | None:
    """The codes' values as a numpy array, or None when some do not fit in 64
    bits (the sequential walk then names the node that holds it)."""
    # A packed tree arrives as a signed array.array ("i" or "q", from
    # packing.unpack): numpy reads it in place, as the same C type.  Any other
    # array (unsigned, say) is read value by value: its bytes reread as
    # signed would turn a row index 2^32 - 1 into the rank leaf -1.
    if isinstance(tree, array) and tree.typecode in "ilq":
        return np.frombuffer(tree, dtype=np.dtype(tree.typecode))
    try:
        return np.fromiter(tree, dtype=np.int64, count=len(tree))
    except OverflowError:
        return None


def _first_at_most(S: np.ndarray, a: int, b: int, value: int) -> int | None:
    """The first j in [a, b) with S[j] <= value, or None."""
    if a >= b:
        return None
    hit = S[a:b] <= value
    j = int(np.argmax(hit))
    return a + j if hit[j] else None


def _cut(ctx: _Rows, codes: np.ndarray, parts: int):
    """Subtrees (start, end, P, N, prows) that together with the split codes
    above them make up the whole tree, about ``parts`` of them; the split codes
    above the cuts are checked here.  None when the code signs do not close
    the tree exactly at its last code (the sequential walk then names why)."""
    if len(codes) == 0:
        return None
    step = np.where(codes >= 0, np.int32(1), np.int32(-1))
    S = np.cumsum(step, dtype=np.int64 if len(codes) >= 1 << 31 else np.int32)
    if _first_at_most(S, 0, len(codes), -1) != len(codes) - 1:
        return None
    heap = [(-len(codes), 0, len(codes), 0, 0, ())]
    done = []
    while heap and len(heap) + len(done) < parts:
        neg, a, e, P, N, prows = heapq.heappop(heap)
        code = int(codes[a])
        if code < 0 or -neg < CUT_MIN:
            done.append((a, e, P, N, prows))
            continue
        if code >= ctx.m:
            raise Invalid(f"tree node {a} splits on row {num(code)}, but the layer has {ctx.m} rows")
        bit = 1 << code
        if (P | N) & bit:
            raise Invalid(f"tree node {a} splits on row {code}, which is already decided")
        # The first child starts at a + 1 and closes where the running sum
        # first falls to its value before a + 1, less one; the second child
        # takes the rest of [a, e) (it closes at e - 1 because [a, e) does).
        before = int(S[a])
        j = _first_at_most(S, a + 1, e, before - 1)
        if j is None or j + 1 >= e:
            return None
        heapq.heappush(heap, (-(j - a), a + 1, j + 1, P | bit, N, prows + (code,)))
        heapq.heappush(heap, (-(e - j - 1), j + 1, e, P, N | bit, prows))
    done.extend((a, e, P, N, prows) for _, a, e, P, N, prows in heap)
    done.sort()
    return done


# --- the workers --------------------------------------------------------------------------------


_POOL = ipc.Pool(lambda: ipc.Child("exact_inj.certify.worker"))
_POOL_LOCK = threading.Lock()


def _pool(k: int) -> list[ipc.Child]:
    return _POOL.get(k)


def shutdown() -> None:
    """Stop the checker's worker processes (they also stop at exit)."""
    _POOL.shutdown()


def _parallel(ctx: _Rows, rows_q, b, m_layer: int, proof: TreeProof, workers: int) -> int | None:
    codes = _codes(proof.tree)
    if codes is None:
        return None
    segments = _cut(ctx, codes, 16 * workers)
    if segments is None:
        return None
    # Tasks: runs of consecutive subtrees of about equal size (one slice of
    # the tree each), then the cores in chunks.  Largest first, so that the
    # last task to finish is a small one.
    per = max(1, len(codes) // (4 * workers))
    tasks: list[tuple] = []
    run: list = []
    for seg in segments:
        run.append(seg)
        if seg[1] - run[0][0] >= per:
            tasks.append(_tree_task(codes, run))
            run = []
    if run:
        tasks.append(_tree_task(codes, run))
    cores = proof.cores
    chunk = max(1, len(cores) // (2 * workers))
    tasks += [("cores", k, cores[k:k + chunk]) for k in range(0, len(cores), chunk)]
    tasks.sort(key=_task_size, reverse=True)
    # Every message of this check carries its number, and a worker answers
    # with the number of the task: an answer left in a pipe by another check
    # can never be counted as one of this check's.
    gen = next(_CHECKS)
    try:
        pool = _pool(workers)
        for w in pool:
            w.send(("init", gen, ctx.W, b, rows_q, m_layer, ctx.n, ctx.core_masks, ctx.line_leaves))
        return _run(pool, [(t[0], (gen, i), *t[1:]) for i, t in enumerate(tasks)])
    except Invalid:
        shutdown()  # workers may still hold tasks; never reuse them half-way
        raise
    except Exception:
        # A worker did not start, died (memory, a signal) or answered out of
        # turn: nothing was accepted from it, so the sequential check decides.
        shutdown()
        return None
    except BaseException:
        # Interrupted (Ctrl-C) while workers still hold tasks: their answers
        # would wait in the pipes for the next check.
        shutdown()
        raise


_CHECKS = itertools.count(1)


def _tree_task(codes: np.ndarray, run: list) -> tuple:
    lo, hi = run[0][0], run[-1][1]
    return ("tree", lo, codes[lo:hi].astype(np.int64).tobytes(),
            [(a - lo, e - lo, P, N, prows) for a, e, P, N, prows in run])


def _task_size(task: tuple) -> int:
    return len(task[2]) // 8 if task[0] == "tree" else sum(len(c.support) for c in task[2]) * 4


def _run(pool: list[ipc.Child], tasks: list[tuple]) -> int:
    idle = list(pool)
    busy: dict[int, tuple[ipc.Child, tuple]] = {}
    leaves = 0
    queue = list(reversed(tasks))
    while queue or busy:
        while queue and idle:
            w = idle.pop()
            task = queue.pop()
            w.send(task)
            busy[w.rfd] = (w, task[1])
        ready, _, _ = select.select(list(busy), [], [])
        for fd in ready:
            w, tag = busy.pop(fd)
            kind, answered, value = w.recv()
            if answered != tag:
                raise EOFError(f"an answer to task {answered} where {tag} was asked")
            if kind == "invalid":
                raise Invalid(value)
            if kind != "ok":
                raise EOFError(value)
            leaves += value
            idle.append(w)
    return leaves


def worker_main(rfd: int, wfd: int) -> None:
    """A worker's loop (started as ``python -m exact_inj.certify.worker``):
    subtrees and cores in, "ok" with the leaves counted, or the reason out."""
    ctx = None
    gen = None
    while True:
        try:
            msg = ipc.recv(rfd)
        except EOFError:
            return
        tag = None
        try:
            if msg[0] == "init":
                # Cleared first: a failed init must not leave the last check's rows.
                ctx = gen = None
                _, g, W, b, rows_q, m_layer, n, core_masks, line_leaves = msg
                ctx, gen = (_Rows(W, n, core_masks, line_leaves), b, rows_q, m_layer), g
                continue
            tag = msg[1]
            if ctx is None or tag[0] != gen:
                raise RuntimeError(f"task {tag} for another check than {gen}")
            rows, b, rows_q, m_layer = ctx
            if msg[0] == "tree":
                _, _, lo, raw, segs = msg
                codes = array("q")
                codes.frombytes(raw)
                tree = codes.tolist()
                value = sum(_walk(rows, tree, a, e, P, N, list(prows), lo) for a, e, P, N, prows in segs)
            else:
                _, _, k0, cores = msg
                for i, core in enumerate(cores):
                    check_core(rows_q, rows.W, b, m_layer, rows.n, core, k0 + i)
                value = 0
            ipc.send(wfd, ("ok", tag, value))
        except Invalid as e:
            ipc.send(wfd, ("invalid", tag, str(e)))
        except Exception as e:  # a malformed object: the caller checks it again in-process
            ipc.send(wfd, ("error", tag, f"{type(e).__name__}: {e}"))
