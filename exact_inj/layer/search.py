"""Case-split proof search for one ReLU layer on R^n (docs/theory.md, sections 4 and 11).

A node fixes rows P ("orthogonal to v") and N ("strictly negative at z").
It closes when the P rows have rank n (a rank leaf) or when a *core* (rows
that cannot all be strictly negative, proved by an exact Motzkin multiplier)
lies inside N (a core leaf).  Otherwise one undecided row of a core is split.

HiGHS only chooses: every core is repaired into an exact multiplier before it
is stored, and a point the LP finds becomes a witness only after exact
evaluation.  What leaves this module is exact or nothing.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import solver
from . import formulation
from ..certify.codes import FlatCores, flat_supports
from ..certify.schema import CORE_BASE, PACK_MIN, RANK_LEAF, Core, TreeProof, Witness
from .data import LayerData
from .repair import SUPPORT_TOL, exact_core, exact_node, make_witness, strict_point


# A stored core is reused without an LP only when at most this many of its
# rows are undecided; otherwise a fresh (strengthened) core from the node's
# own LP usually splits into far fewer cases.
STORE_REST_MAX = 3

# The same for the core a node's parent split on (its N-child inherits it).
HINT_REST_MAX = 5

# A safety valve: past this many nodes per LP (plus 100 LPs of slack) the
# search stops reusing stored cores with more than one undecided row.
REUSE_VALVE = 300
FLUSH_CODES = 1 << 20
"""Codes a search holds before it hands them to ``flush`` (8 MB)."""

# How many of the most recent cores a node scans for reuse.
STORE_WINDOW = 512

# Seconds between two progress reports of the search.
REPORT_SECONDS = 1.0

# Cores are strengthened at nodes whose P rows have rank <= n - this.
STRENGTHEN_RANK_GAP = 1


# The node LP's optimum is 0 or 1 in exact arithmetic (docs/theory.md, section 11).
# Anything between these two cut-offs is treated as "solver confused".
S_ZERO, S_ONE = 1e-6, 0.5


# --- warm-started LPs ------------------------------------------------------------


class _WarmLP:
    """A HiGHS model whose rows (or columns) are switched on and off by bounds."""

    def __init__(self, model: dict, by_rows: bool, size: int):
        self.h = solver.new_highs()
        solver.pass_lp(
            self.h, model["cost"], model["col_lower"], model["col_upper"], model["A"],
            model["row_lower"], model["row_upper"], maximize=model["maximize"],
        )
        self.by_rows = by_rows
        self.size = size  # the first `size` rows (columns) are switchable
        self.on = np.ones(self.size, dtype=bool)
        self.lps = 0
        # Set by the search: one LP on a wide layer can take minutes, so
        # each solve gets only the time left (a timed-out solve is "fail").
        self.deadline: float | None = None

    def switch(self, on: np.ndarray) -> None:
        diff = np.nonzero(on != self.on)[0]
        if len(diff):
            lower = np.full(len(diff), -solver.INF if self.by_rows else 0.0)
            upper = np.where(on[diff], 0.0 if self.by_rows else solver.INF, solver.INF if self.by_rows else 0.0)
            if self.by_rows:
                self.h.changeRowsBounds(len(diff), diff.astype(np.int32), lower, upper)
            else:
                self.h.changeColsBounds(len(diff), diff.astype(np.int32), lower, upper)
            self.on = on.copy()

    def run(self) -> solver.Outcome:
        self.lps += 1
        if self.deadline is not None:
            self.h.setOptionValue("time_limit", max(self.deadline - time.perf_counter(), 0.001))
        self.h.run()
        return solver.highs_outcome(self.h)


class NodeLP(_WarmLP):
    def __init__(self, data: LayerData):
        super().__init__(formulation.node_lp(data.Wf, data.bf, data.k), by_rows=True, size=data.M)
        self.n = data.n

    def solve(self, on: np.ndarray):
        """('point', z, t) if the rows can all be strictly negative,
        ('multiplier', lam) if not, ('fail',) if the solver is unsure."""
        self.switch(on)
        out = self.run()
        if out is not solver.Outcome.OPTIMAL:
            return ("fail",)
        s = self.h.getInfo().objective_function_value
        sol = self.h.getSolution()
        if s >= S_ONE:
            x = np.array(sol.col_value)
            return ("point", x[: self.n], float(x[self.n]))
        if abs(s) <= S_ZERO:
            # HiGHS signs duals by objective sense (>= 0 here, as we maximise);
            # the magnitude is all we use, and the exact repair checks signs.
            duals = np.abs(np.array(sol.row_dual))
            lam, mu = duals[: self.size], duals[self.size:]
            lam[~on] = 0.0
            return ("multiplier", lam, mu)
        return ("fail",)


class CoreLP(_WarmLP):
    def __init__(self, data: LayerData):
        super().__init__(formulation.core_lp(data.Wf, data.bf, data.k), by_rows=False, size=data.M)

    def solve(self, on: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(lambda, mu) minimising the priced rows' weight, or None."""
        self.switch(on)
        self.h.changeColsCost(len(price), np.arange(len(price), dtype=np.int32), price.astype(float))
        if self.run() is not solver.Outcome.OPTIMAL:
            return None
        x = np.maximum(np.array(self.h.getSolution().col_value), 0.0)
        return x[: self.size], x[self.size:]


# --- the core store ----------------------------------------------------------------


class CoreStore:
    """Exact cores, as bit masks, scanned with numpy.

    A plain core (a support, no explicit multiplier or domain rows) is kept
    as its mask alone and rebuilt on request, its rows in increasing order (a
    core's rows are a set; the checker recomputes its multiplier): a Core
    object with its tuple costs about 300 bytes more, and a search at n = 12
    stores half a million cores in each process."""

    def __init__(self, m: int):
        self.words = (m + 63) // 64
        self.masks: list[int] = []
        self.arr = np.zeros((16, self.words), dtype=np.uint64)
        self.index: dict[int, int] = {}
        self.special: dict[int, Core] = {}  # cores that are more than a support

    def __len__(self) -> int:
        return len(self.masks)

    def core(self, k: int) -> Core:
        """Stored core k."""
        special = self.special.get(k)
        if special is not None:
            return special
        mask, rows = self.masks[k], []
        while mask:
            low = mask & -mask
            rows.append(low.bit_length() - 1)
            mask ^= low
        return Core(tuple(rows))

    def flat(self, ids: list[int]) -> FlatCores | None:
        """Stored cores ``ids`` as one flat array (rows in increasing order),
        built from the mask words without a Core object each; None when one
        of them is more than a support."""
        if any(k in self.special for k in ids):
            return None
        words = self.arr[np.asarray(ids, dtype=np.intp)].astype("<u8")
        return FlatCores(flat_supports(words.view(np.uint8).reshape(len(ids), 8 * self.words)), len(ids))

    def _words(self, mask: int) -> np.ndarray:
        return np.array([(mask >> (64 * k)) & 0xFFFFFFFFFFFFFFFF for k in range(self.words)], dtype=np.uint64)

    def add(self, core: Core) -> int:
        mask = sum(1 << i for i in core.support)
        if mask in self.index:
            return self.index[mask]
        k = len(self.masks)
        if k == len(self.arr):
            self.arr = np.vstack([self.arr, np.zeros_like(self.arr)])
        self.arr[k] = self._words(mask)
        if core.multiplier is not None or core.domain_support or len(core.support) != mask.bit_count():
            self.special[k] = core
        self.masks.append(mask)
        self.index[mask] = k
        return k

    def lookup(self, lam: np.ndarray, allowed: int) -> int | None:
        """The stored core whose support is exactly the float multiplier's
        support, if any: it was verified exactly when it was stored, so the
        repair need not run again (about 40% of supports recur)."""
        if lam.max() <= 0:
            return None
        mask = 0
        for i in np.nonzero(lam > SUPPORT_TOL * lam.max())[0].tolist():
            mask |= 1 << i
        if mask & ~allowed:
            return None
        return self.index.get(mask)

    def best(self, blocked: int, N: int) -> tuple[int, int] | None:
        """The applicable core (no row blocked) with the fewest rows outside N."""
        K = len(self.masks)
        if not K:
            return None
        # Only the most recent cores are scanned: the depth-first search finds
        # its reusable cores nearby, and a scan over every core (10^5 at
        # n = 10) would cost more per node than the LP it saves.
        lo = max(0, K - STORE_WINDOW)
        if self.words <= 2:
            # One or two words (M <= 128 rows): the same scan with fewer
            # numpy calls.  rest <= 128 fits a uint16 with room for the
            # "blocked" flag 256 above it.
            W0 = 0xFFFFFFFFFFFFFFFF
            A = self.arr[lo:K]
            C0 = A[:, 0]
            bad = C0 & np.uint64(blocked & W0)
            rest = np.bitwise_count(C0 & np.uint64(~N & W0)).astype(np.uint16)
            if self.words == 2:
                C1 = A[:, 1]
                bad |= C1 & np.uint64(blocked >> 64)
                rest += np.bitwise_count(C1 & np.uint64(~(N >> 64) & W0))
            rest[bad != 0] = 256
            k = int(rest.argmin())
            r = int(rest[k])
            return None if r >= 256 else (lo + k, r)
        C = self.arr[lo:K]
        ok = ~((C & self._words(blocked)) != 0).any(axis=1)
        if not ok.any():
            return None
        rest = np.bitwise_count(C & ~self._words(N)).sum(axis=1, dtype=np.int64)
        rest = np.where(ok, rest, np.iinfo(np.int64).max)
        k = int(rest.argmin())
        return lo + k, int(rest[k])


# --- the search ---------------------------------------------------------------------


@dataclass
class SearchStats:
    nodes: int = 0
    leaves: int = 0
    lps: int = 0
    core_lps: int = 0
    cores: int = 0
    repair_failures: int = 0
    exact_lps: int = 0
    open_cases: int = 0
    max_depth: int = 0
    min_active_rows: int | None = None
    notes: list[str] = field(default_factory=list)
    closed: float | None = None
    """The share of the case tree closed, each case weighing 2^-depth (a
    split halves a case), for the progress line; set when progress is reported."""


@dataclass
class SearchResult:
    kind: str  # "proof", "witness", "limit"
    proof: TreeProof | None = None
    witness: Witness | None = None
    stats: SearchStats = field(default_factory=SearchStats)


def tree_search(
    data: LayerData,
    deadline: float,
    max_nodes: int | None = None,
    poll: Callable[[], Witness | None] | None = None,
    progress: Callable[[SearchStats, float], None] | None = None,
    root: tuple | None = None,
    store: "CoreStore | None" = None,
    donate: Callable[[list, "CoreStore"], None] | None = None,
    flush: Callable[[array], None] | None = None,
) -> SearchResult:
    """Depth-first case-split search; returns a proof, a witness, or a limit.

    For the parallel search (psearch.py): ``root`` starts from that stack
    entry instead of the empty node, ``store`` keeps a worker's cores across
    subtrees, and ``donate(stack, store)``, called every 64 nodes, may take
    entries off the *bottom* of the stack.  A taken entry would have been
    explored last, so its subtree's codes belong after everything this call
    emits (entries taken later come before entries taken earlier).
    ``flush(codes)``, if given, takes the codes emitted so far whenever there
    are FLUSH_CODES of them (they are then dropped here): the proof returned
    holds only the codes after the last flush, so that a search of millions
    of nodes holds a bounded part of its tree.
    """
    n, M = data.n, data.M
    stats = SearchStats()
    lp = NodeLP(data)
    lp.deadline = deadline
    clp: CoreLP | None = None
    store = CoreStore(M) if store is None else store
    # The codes as 8-byte integers: a list would hold a pointer per code and
    # an object per core leaf code (every code below -257), about 4 times as
    # much at n = 12, where one subtree can hold millions of codes.
    out = array("q")
    used: dict[int, int] = {}  # store index -> certificate index

    # On a domain, a stored core with two undecided rows is often much weaker
    # than the node's own LP core, whose constraint rows may be non-strict
    # (ReLU(I z) on the orthant, n = 30: 875 nodes with fresh cores, over 3M
    # reusing stored ones); so domains keep the old rule of at most one.
    store_rest_max = STORE_REST_MAX if not data.k else 1
    hint_rest_max = HINT_REST_MAX

    def leaf_core(k: int) -> None:
        j = used.setdefault(k, len(used))
        out.append(CORE_BASE - j)

    # stack entries: (P, N, rank P, span mask, null basis, hint core, depth)
    if root is None:
        rk0, span0, basis0 = data.span_info(0)
        stack = [(0, 0, rk0, span0 | data.zero_rows, basis0, -1, 0)]
    else:
        stack = [root]
    last_report = time.perf_counter()
    while stack:
        if flush is not None and len(out) >= FLUSH_CODES:
            flush(out)
            del out[:]
        P, N, rk, span, basis, hint, depth = stack.pop()
        stats.nodes += 1
        if max_nodes is not None and stats.nodes > max_nodes:
            stats.open_cases = len(stack) + 1
            stats.lps, stats.cores = lp.lps, len(store)
            stats.core_lps = clp.lps if clp else 0
            stats.notes.append(f"node limit {max_nodes} reached")
            return SearchResult("limit", stats=stats)
        # The deadline every node: on a wide layer one node (LPs, an exact
        # null space) can take a second, so 64 nodes would overrun by minutes.
        now = time.perf_counter()
        if now > deadline:
            stats.open_cases = len(stack) + 1
            stats.lps, stats.cores = lp.lps, len(store)
            stats.core_lps = clp.lps if clp else 0
            return SearchResult("limit", stats=stats)
        if stats.nodes & 63 == 0:
            if hint_rest_max > 1 and stats.nodes > REUSE_VALVE * (lp.lps + (clp.lps if clp else 0) + 100):
                # Far more nodes per LP than reuse ever gives on generic layers
                # (about 30): stored cores are steering this tree badly, so
                # every node asks for its own core from here on.
                store_rest_max = hint_rest_max = 1
                stats.notes.append(f"core reuse narrowed after {stats.nodes} nodes")
            if donate is not None:
                donate(stack, store)
            if poll is not None:
                w = poll()
                if w is not None:
                    stats.lps, stats.cores = lp.lps, len(store)
                    stats.notes.append("witness from the MILP side search")
                    return SearchResult("witness", witness=w, stats=stats)
            if progress is not None and now - last_report > REPORT_SECONDS:
                last_report = now
                stats.lps, stats.cores, stats.open_cases = lp.lps, len(store), len(stack) + 1
                # Open cases are the stack and this node; the rest of the root's weight is closed.
                # Only for the whole tree: a parallel worker's subtree leaves the rest open elsewhere.
                if root is None:
                    stats.closed = max(0.0, 1.0 - sum(2.0 ** -e[6] for e in stack) - 2.0 ** -depth)
                progress(stats, now)
        if depth > stats.max_depth:
            stats.max_depth = depth
        if rk == n:
            out.append(RANK_LEAF)
            stats.leaves += 1
            continue
        blocked = P | (span & ~N)
        # At rank n - 1 every direction v left is on one line, and a row outside
        # the span of P is not orthogonal to it: that row must be strictly
        # negative, as if it were in N.  So any core free of blocked rows closes
        # the node (a line leaf, docs/theory.md section 4), instead of a chain of
        # splits whose P-children are rank leaves.
        line = rk == n - 1
        choice = None
        if hint >= 0 and not store.masks[hint] & blocked:
            choice = (hint, (store.masks[hint] & ~N).bit_count())
        else:
            choice = store.best(blocked, N)
        if choice is not None and (choice[1] == 0 or line):
            leaf_core(choice[0])
            stats.leaves += 1
            continue
        if choice is None or choice[1] > (hint_rest_max if hint >= 0 and choice[0] == hint else store_rest_max):
            in_play = N | (data.all & ~blocked)
            on = data.mask_to_bool(in_play)
            k = None
            undecided = in_play & ~N
            if undecided and rk <= n - STRENGTHEN_RANK_GAP:
                # Core strengthening (docs/theory.md, section 11): ask directly for a
                # multiplier leaning on rows already fixed negative.  If none
                # exists the node LP below finds the point instead.
                if clp is None:
                    clp = CoreLP(data)
                    clp.deadline = deadline
                sol = clp.solve(on, data.mask_to_bool(undecided).astype(float))
                if sol is not None:
                    k = store.lookup(sol[0], in_play) if not data.k else None
                    if k is None:
                        core = exact_core(data, sol[0], in_play, sol[1])
                        if core is not None:
                            k = store.add(core)
            if k is None:
                res = lp.solve(on)
                if res[0] == "point":
                    x = strict_point(data, in_play, res[1], res[2])
                    if x is not None:
                        w = make_witness(data, x, in_play)
                        if w is not None:
                            stats.lps, stats.cores = lp.lps, len(store)
                            stats.core_lps = clp.lps if clp else 0
                            return SearchResult("witness", witness=w, stats=stats)
                    stats.repair_failures += 1
                elif res[0] == "multiplier":
                    core = exact_core(data, res[1], in_play, res[2])
                    if core is not None:
                        k = store.add(core)
                    else:
                        stats.repair_failures += 1
                else:
                    stats.repair_failures += 1
            if k is None and time.perf_counter() > deadline:
                # The exact LP is pure Python and slow on wide layers: not
                # started once the time is up (the node stays open).
                stats.open_cases = len(stack) + 1
                stats.lps, stats.cores = lp.lps, len(store)
                stats.core_lps = clp.lps if clp else 0
                return SearchResult("limit", stats=stats)
            if k is None:
                stats.exact_lps += 1
                ev = exact_node(data, in_play, deadline)
                if isinstance(ev, Witness):
                    stats.lps, stats.cores = lp.lps, len(store)
                    stats.notes.append("witness from the exact LP (a thin cell)")
                    return SearchResult("witness", witness=ev, stats=stats)
                if isinstance(ev, Core):
                    k = store.add(ev)
            if k is None:
                # No exact evidence at this node: split any undecided row in
                # play, so the children are smaller problems.  With nothing
                # left to split, the case stays open and the answer unknown.
                rest_rows = in_play & ~N
                if not rest_rows and data.modular:
                    # The span of P is kept modulo a prime, which an unlucky
                    # layer can make too big (rows independent over Q but not
                    # mod p are then never split).  Settle this node over Q:
                    # a rank leaf if P has rank n, else a split on a row the
                    # prime wrongly put in the span.
                    rank_q, span_q, _ = data.exact_span(P)
                    if rank_q == n:
                        out.append(RANK_LEAF)
                        stats.leaves += 1
                        continue
                    rest_rows = span & ~span_q & ~P & ~N
                if not rest_rows:
                    stats.open_cases = len(stack) + 1
                    stats.notes.append("a fully decided case could not be closed exactly")
                    stats.lps, stats.cores = lp.lps, len(store)
                    return SearchResult("limit", stats=stats)
                r = (rest_rows & -rest_rows).bit_length() - 1
                _split(data, stack, out, P, N, rk, span, basis, r, -1, depth)
                continue
            choice = (k, (store.masks[k] & ~N).bit_count())
            if choice[1] == 0 or line:
                leaf_core(k)
                stats.leaves += 1
                continue
        k = choice[0]
        rest = store.masks[k] & ~N
        r = (rest & -rest).bit_length() - 1
        _split(data, stack, out, P, N, rk, span, basis, r, k, depth, stats)
    stats.lps, stats.cores = lp.lps, len(used)
    stats.core_lps = clp.lps if clp else 0
    ids = [0] * len(used)
    for k, j in used.items():
        ids[j] = k
    # A parallel search's subtree (flush given) sends its cores as one flat
    # array when it can: half a million Core objects cost about 150 MB.
    flat = store.flat(ids) if flush is not None else None
    cores = flat if flat is not None else tuple(store.core(k) for k in ids)
    # Small trees as tuples (as they always were); from PACK_MIN codes the
    # array itself (a TreeProof's tree is any sequence of integers).
    return SearchResult("proof", proof=TreeProof(cores, out if len(out) >= PACK_MIN else tuple(out)), stats=stats)


def _split(data, stack, out, P, N, rk, span, basis, r, hint, depth, stats=None) -> None:
    """Emit a split on row r: push the N-child, then the P-child on top.

    A P-child whose rows reach rank n is a rank leaf: with ``stats`` it is
    closed here (its code follows the split's in preorder) instead of being
    pushed and popped."""
    out.append(r)
    bit = 1 << r
    stack.append((P, N | bit, rk, span, basis, hint, depth + 1))
    P2 = P | bit
    if span >> r & 1:
        stack.append((P2, N, rk, span, basis, -1, depth + 1))
    else:
        rk2, span2, basis2 = data.extend(span, basis, r)
        if rk2 == data.n and stats is not None:
            out.append(RANK_LEAF)
            stats.nodes += 1
            stats.leaves += 1
            if depth + 1 > stats.max_depth:
                stats.max_depth = depth + 1
            return
        stack.append((P2, N, rk2, span2, basis2, -1, depth + 1))
