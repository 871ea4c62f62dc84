"""From the search tree to certified figures: :func:`stability`.

:class:`~exact_inj.studies.stability.search.Search` covers every cell with
leaves; here each leaf's W_P^T W_P - t I is proved positive definite for one t
(exact LDL^T), t becomes the lower bound r (r^2 <= t), one exact point and a
rational vector give the upper bound, a rank-deficient cell gives an exact
collision, and the whole is written as a certificate that
:func:`exact_inj.certify.stability.check_stability` accepts before anything is
reported (docs/theory.md, section 9).
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from ...certify.stability import FORMAT, VERSION, check_stability
from ...exact import linalg
from ...exact.sigma import inv_sqrt_lower, sqrt_lower, sqrt_upper
from ...io.json import network_to_json
from ...model.network import Layer, Network
from ...numbers import fraction_to_str
from .numbers import exact_str, t_below
from .result import METHOD, StabilityResult
from .search import ExactPoint, Search, StopSearch

__all__ = ["stability"]

# Relative margins tried when choosing t below a float estimate of sigma_min^2.
_MARGINS = (1e-9, 1e-6, 1e-3, 0.1, 0.5)


def _certify_leaves(S: Search) -> tuple[Fraction, dict[int, Fraction]]:
    """The largest t (from float guidance) such that every leaf's Gram(P) - t I is
    positive definite, proved by exact LDL^T; and the per-P certified values."""
    leaves = {}
    for e in S.tree:
        if e is not None and e[0] in ("cell", "bound", "open"):
            leaves[e[1]] = S.sig2(e[1])
    if not leaves:  # pragma: no cover - a tree always has a leaf
        return Fraction(0), {}
    cands = {P: t_below(s2, _MARGINS[0]) for P, s2 in leaves.items()}
    t = min(cands.values())
    done: dict[int, Fraction] = {}
    # Smallest first: once t has settled, the rest pass at the first try.
    for P in sorted(leaves, key=lambda P: cands[P]):
        if t <= 0:
            break
        rows = S.rows_of(P)
        if S.grams.positive_definite(rows, t):
            done[P] = t
            continue
        # The float estimate was off (ill-conditioned rows): walk t down.
        got = Fraction(0)
        if S.exact_rank(P) == S.n:
            tries = [min(t, t_below(leaves[P], rel)) for rel in _MARGINS[1:]]
            x = tries[-1]
            for _ in range(200):
                x = x / 4 if x > 0 else Fraction(1, 2**40)
                tries.append(x)
            for x in tries:
                if x > 0 and S.grams.positive_definite(rows, x):
                    got = x
                    break
        t = min(t, got)
        done[P] = got
    return max(t, Fraction(0)), done


def _upper(S: Search, pt: ExactPoint) -> tuple[Fraction, list[Fraction], tuple[int, ...]]:
    """(R, v, A): min sigma_min <= sigma_min(W_A) <= |W_A v| / |v| <= R, A = A(pt), exactly."""
    A = tuple(i for i in range(S.m) if pt.pre[i] >= 0)
    rows = [i for i in A if i in set(S.nonzero)]
    n = S.n
    if len(rows) < n:
        v = [Fraction(0)] * n
        if rows:
            basis = linalg.nullspace([S.Wi[i] for i in rows], n)
            v = [Fraction(x) for x in basis[0]]
        else:
            v[0] = Fraction(1)
        return Fraction(0), v, A
    _, _, Vt = np.linalg.svd(S.Wd[rows])
    vf = Vt[-1]
    vf = vf / np.abs(vf).max()
    v = [Fraction(round(float(x) * 2**40), 2**40) for x in vf]
    if not any(v):  # pragma: no cover
        v[0] = Fraction(1)
    num = sum((sum(w * c for w, c in zip(S.Wq[i], v))) ** 2 for i in rows)
    den = sum(c * c for c in v)
    return sqrt_upper(num / den), v, A


def _collision(S: Search, pt: ExactPoint):
    """x = pt and y = x + e v, v orthogonal to the active rows (rank < n), e small
    enough that the inactive rows stay strictly negative; verified exactly."""
    act = [S.Wi[i] for i in range(S.m) if pt.pre[i] >= 0]
    basis = linalg.nullspace(act, S.n)
    if not basis:  # pragma: no cover - the caller found rank < n
        return None
    v = linalg.primitive(basis[0])
    bound = None
    for i in range(S.m):
        if pt.pre[i] < 0:
            wv = sum(Fraction(w) * c for w, c in zip(S.layer.weight[i], v))
            if wv:
                r = -pt.pre[i] / abs(wv)
                bound = r if bound is None or r < bound else bound
    eps = Fraction(1) if bound is None or bound > 1 else Fraction(1, int(1 / bound) + 1)
    y = tuple(a + eps * c for a, c in zip(pt.x, v))
    if y == pt.x or S.layer.apply(pt.x) != S.layer.apply(y):  # pragma: no cover
        return None
    return pt.x, y


def stability(layer: Layer | Network, time_limit: float = 60.0, max_nodes: int | None = None, seed: int = 0,
              progress: Callable[[str], None] | None = None, prune: bool = True) -> StabilityResult:
    """Certified min over cells of sigma_min(W_A), the two Lipschitz constants and 1/C.

    ``prune=False`` turns the branch and bound off, so that every open cell of
    the arrangement becomes a "cell" leaf of the certificate (slower; used to
    test that the enumeration is complete).  The seed only moves the sample
    points that guide the search; no figure depends on it beyond the last
    digits of the float-guided t.

    >>> from exact_inj.model import Layer
    >>> res = stability(Layer.from_rows([[1, 0], [0, 1], [-1, 0], [0, -1]]))
    >>> res.status, float(res.sigma_lower) <= 1.0 <= float(res.sigma_upper), res.check.valid
    ('complete', True, True)
    """
    if isinstance(layer, Network):
        if not layer.is_single_relu_layer or layer.output_unit:
            raise ValueError("stability takes a single ReLU layer without an output unit")
        layer = layer.layers[0]
    if layer.activation != "relu":
        raise ValueError("stability takes a ReLU layer")
    t0 = time.perf_counter()
    # The search gets most of the time; certifying and checking its leaves
    # take the rest (they grow with the number of leaves).
    S = Search(layer, seed, t0 + 0.85 * time_limit, max_nodes, progress, prune)
    n, m = S.n, S.m
    biased = any(b != 0 for b in layer.bias)
    notes: list[str] = []
    q = inv_sqrt_lower(2 * m)
    try:
        S.run()
    except StopSearch:
        pass
    S.stats["lps"] = S.lp.lps
    net = Network((layer,))
    cert: dict[str, Any] = {"format": FORMAT, "version": VERSION, "network": network_to_json(net), "method": METHOD}

    if S.deficient is not None:
        pt = S.deficient
        A = tuple(i for i in range(m) if pt.pre[i] >= 0)
        signs = "".join("+" if i in A else "-" for i in range(m))
        witness = _collision(S, pt)
        cert.update(status="not_injective", t="0", sigma_lower="0", sigma_upper="0",
                    inv_sqrt_2m_lower=fraction_to_str(q), half_lower="0", paper_lower="0",
                    inverse_lipschitz_half=None, inverse_lipschitz_paper=None,
                    cell={"point": [fraction_to_str(v) for v in pt.x]},
                    witness=None if witness is None else {"x": [fraction_to_str(v) for v in witness[0]],
                                                          "y": [fraction_to_str(v) for v in witness[1]]})
        notes.append(f"not injective: at the point given, the active rows {list(A)} have rank < {n}, so "
                     "min sigma_min = 0 exactly, every Lipschitz lower constant is 0 and the inverse is unbounded")
        res = StabilityResult("not_injective", n, m, biased, Fraction(0), Fraction(0), Fraction(0), q, Fraction(0),
                              Fraction(0), None, None, pt.x, A, signs, witness, cert, notes=notes)
    else:
        t, _ = _certify_leaves(S)
        r = sqrt_lower(t)
        half = r / 2
        paper = r * q
        status = "partial" if S.stats["open"] else "complete"
        best = S.best_pt
        R = v = A = None
        pivots = None
        if best is not None:
            R, v, A = _upper(S, best)
            if t > 0:
                pivots = S.grams.ldl_pivots(list(A), t)
        inv_h = 1 / half if half > 0 else None
        inv_p = 1 / paper if paper > 0 else None
        cert.update(status=status, t=fraction_to_str(t), sigma_lower=fraction_to_str(r),
                    sigma_upper=exact_str(R), inv_sqrt_2m_lower=fraction_to_str(q), half_lower=fraction_to_str(half),
                    paper_lower=fraction_to_str(paper), inverse_lipschitz_half=exact_str(inv_h),
                    inverse_lipschitz_paper=exact_str(inv_p),
                    upper=None if best is None else {"point": [fraction_to_str(x) for x in best.x],
                                                      "vector": [fraction_to_str(x) for x in v]},
                    tree=S.serialise())
        signs = None if A is None else "".join("+" if i in A else "-" for i in range(m))
        if status == "partial":
            notes.append(f"limit reached with {S.stats['open']} open cases: each is closed only by its own forced "
                         "rows, so the lower bound is guaranteed but may be far from the minimum "
                         "(0 when an open case fixes fewer than n independent rows); raise --time-limit")
        if t == 0 and status == "complete":  # pragma: no cover - numerically degenerate rows
            notes.append("a leaf could not be certified with t > 0; the lower bound falls back to 0")
        res = StabilityResult(status, n, m, biased, t, r, R, q, half, paper, inv_h, inv_p,
                              None if best is None else best.x, A, signs, None, cert, notes=notes,
                              min_cell_pivots=pivots)
    if biased:
        notes.append("biased layer: the figures are over the biased arrangement's cells; the (1/2) constant is "
                     "proved with bias, the paper's C(W) is stated without bias (see constants.paper.note)")
    res.stats = dict(S.stats)
    res.check = check_stability(cert)
    res.seconds = time.perf_counter() - t0
    if not res.check.valid:  # pragma: no cover - a bug; never report an unchecked figure
        raise RuntimeError(f"internal error: the stability certificate failed its own check: {res.check.reason}")
    return res

