"""Exact fold witnesses for square ReLU networks R^n -> R^n (docs/theory.md, section 8, "Folds").

A ReLU network N is continuous and piecewise affine: on the closed region of
an activation pattern s it is x -> A_s x + c_s.  Take two full-dimensional
pieces s and t that share a facet, the hyperplane where exactly one neuron j
is 0.  Only neuron j differs between them, so the maps agree on the facet and
differ by a rank-one term, A_t = A_s + w a^T, with a the facet normal in input
space (the gradient of neuron j's pre-activation, the same on both sides).
If det A_s and det A_t are nonzero with opposite signs, the map folds there:

* pick f in the relative interior of the facet (neuron j is 0, every other
  ReLU neuron is nonzero) and p pointing into s's side (a.p has s's sign);
* put q = A_t^{-1} A_s p.  By Sherman-Morrison
  a.q = a.p / (1 + a^T A_s^{-1} w) = a.p * det A_s / det A_t, which has the
  opposite sign to a.p, so q points into t's side;
* for small eps > 0, x = f + eps p lies in s's region and y = f + eps q in
  t's, and A_s x + c_s = N(f) + eps A_s p = N(f) + eps A_t q = A_t y + c_t.

:func:`fold_witness` finds such facets by walking random rays through the
domain exactly, one neuron hyperplane at a time, and builds the pair above
with an exact bound on eps.  Everything after the choice of the random start
points and directions is exact (python-flint rationals; the returned points
are fractions.Fraction), and every pair is re-verified with
:meth:`Network.evaluate` before it is returned.  Finding no fold proves
nothing: the function is a cheap witness source, never an injectivity proof.

Several neurons can vanish at the same crossing.  Generically that is a
codimension-2 point, which random rays miss; but coincident hyperplanes (the
ReLU(x) and ReLU(-x) of |x|) are crossed together by every ray.  Then all of
them are flipped, the pair is built the same way, and it is kept only if x
and y are checked to lie in the closed regions of s and t (with the same
exact eps bound) and pass the exact re-evaluation; otherwise the walk moves
on.

Walking one ray costs one product of the layers' rational matrices with an
n+1-column matrix per crossing (flint).  On ACAS Xu (5 -> 6 x 50 -> 5) a
witness took a median of 0.07 s on R^5 and 0.3-0.6 s on its input boxes
(at most about 3 s; seeds 0-9 on the three shared nets, 30/30 found each).
"""

from __future__ import annotations

import time
from fractions import Fraction

import flint
import numpy as np

from ..model.domain import Domain
from ..model.network import Network

Point = tuple[Fraction, ...]

# Hyperplane crossings followed along one ray before it is abandoned.  A ray
# meets each neuron's bent hyperplane finitely often, but deep networks can
# have very many pieces along a line; this only bounds the work per ray.
MAX_STEPS = 20_000

__all__ = ["fold_witness"]


def fold_witness(
    net: Network, domain: Domain, seed: int = 0, tries: int = 200, deadline: float | None = None
) -> tuple[Point, Point] | None:
    """An exact pair x != y in ``domain`` with N(x) = N(y) found at a fold, or None.

    Only for square networks (output_dim == input_dim) on a domain with
    nonempty interior (R^n, the orthant, or a box with lower < upper in every
    coordinate); otherwise None.  ``tries`` random rays are walked (seeded
    numpy Generator, so the result is deterministic for a given seed), each
    until it leaves the domain, escapes to infinity, or crosses a fold whose
    pair verifies; a ray is also dropped at a start point or crossing where a
    neuron's sign is not determined (a pre-activation exactly 0 at the start,
    or staying 0 past a crossing).  ``deadline`` is a
    time.perf_counter() value after which the search gives up (None).

    N(x) = |x| = ReLU(x) + ReLU(-x) folds at 0 (pieces with slopes 1 and -1):

    >>> from exact_inj.model import Layer
    >>> absval = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> x, y = fold_witness(absval, Domain.reals())
    >>> x != y and absval.evaluate(x) == absval.evaluate(y)
    True
    >>> fold_witness(absval, Domain.box([0], [1])) is None   # injective there: the fold is on the boundary
    True
    """
    n = net.input_dim
    if net.output_dim != n or not domain.dim_ok(n) or domain.is_empty():
        return None
    if domain.kind == "box" and any(lo >= hi for lo, hi in zip(domain.lower, domain.upper)):
        # A degenerate box has no interior in R^n: the restricted map comes
        # from a lower-dimensional set, and a fold of the square map need not
        # be one there (q need not stay in the box's affine hull).
        return None
    rng = np.random.default_rng(seed)
    pieces = _Pieces(net)
    for _ in range(tries):
        if deadline is not None and time.perf_counter() > deadline:
            return None
        x0, d = _random_ray(rng, domain, n)
        if x0 is None:
            continue
        found = _walk(pieces, net, domain, x0, d, deadline)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------
# Affine pieces on a fixed activation pattern
# ---------------------------------------------------------------------------


def _q(x: Fraction) -> flint.fmpq:
    return flint.fmpq(x.numerator, x.denominator)


def _fr(v: flint.fmpq) -> Fraction:
    return Fraction(int(v.p), int(v.q))


def _column(*cols: list) -> flint.fmpq_mat:
    """The matrix whose columns are the given (equally long) vectors."""
    rows, k = len(cols[0]), len(cols)
    return flint.fmpq_mat(rows, k, [cols[c][r] for r in range(rows) for c in range(k)])


class _Pieces:
    """The layers as flint matrices, and every layer's pre-activation as an
    affine function of the input on a given activation pattern.

    The affine map x -> G x + g of a layer's pre-activations is kept as one
    augmented matrix Z = [G | g] (width x (n+1)); then Z [x; 1] is the value at
    x and Z [v; 0] the rate along v.  flint's rational matrices do the products
    (all weights of float models are dyadic, so this stays cheap).
    """

    def __init__(self, net: Network) -> None:
        n = self.n = net.input_dim
        self.relu = [L.activation == "relu" for L in net.layers]
        self.W = [flint.fmpq_mat(L.out_dim, L.in_dim, [_q(v) for row in L.weight for v in row]) for L in net.layers]
        self.B = [
            flint.fmpq_mat(L.out_dim, n + 1, [(_q(b) if c == n else 0) for b in L.bias for c in range(n + 1)])
            for L in net.layers
        ]
        self.eye = flint.fmpq_mat(n, n + 1, [int(r == c) for r in range(n) for c in range(n + 1)])

    def _post(self, l: int, Z: flint.fmpq_mat, mask: list[bool]) -> flint.fmpq_mat:
        """The layer's output map: rows of inactive ReLU neurons zeroed."""
        if not self.relu[l]:
            return Z
        T = flint.fmpq_mat(Z)
        for i, on in enumerate(mask):
            if not on:
                for c in range(self.n + 1):
                    T[i, c] = 0
        return T

    def start(self, x0: list[flint.fmpq]) -> tuple[list[list[bool]], list[flint.fmpq_mat]] | None:
        """Pattern and pre-activation maps of the piece containing x0, or None if
        some ReLU neuron is exactly 0 at x0 (x0 then lies on no piece's interior)."""
        X = _column(x0 + [flint.fmpq(1)])
        masks, Zs, T = [], [], self.eye
        for l in range(len(self.W)):
            Z = self.W[l] * T + self.B[l]
            v = Z * X
            vals = [v[i, 0] for i in range(Z.nrows())]
            if self.relu[l] and any(a == 0 for a in vals):
                return None
            mask = [a > 0 for a in vals] if self.relu[l] else [True] * len(vals)
            masks.append(mask)
            Zs.append(Z)
            T = self._post(l, Z, mask)
        return masks, Zs

    def forward(self, masks: list[list[bool]], Zs: list[flint.fmpq_mat], first: int) -> list[flint.fmpq_mat]:
        """Pre-activation maps for ``masks``, reusing Zs for layers before ``first``
        (their maps do not depend on the masks of layer ``first`` or later)."""
        out = list(Zs[:first])
        T = self.eye if first == 0 else self._post(first - 1, out[first - 1], masks[first - 1])
        for l in range(first, len(self.W)):
            Z = self.W[l] * T + self.B[l]
            out.append(Z)
            T = self._post(l, Z, masks[l])
        return out

    def jacobian(self, masks: list[list[bool]], Zs: list[flint.fmpq_mat]) -> flint.fmpq_mat:
        """A of the piece x -> A x + c (the output map without its last column)."""
        T = self._post(len(Zs) - 1, Zs[-1], masks[-1])
        n = self.n
        return flint.fmpq_mat(n, n, [T[r, c] for r in range(n) for c in range(n)])


def _sign(v: flint.fmpq) -> int:
    return (v > 0) - (v < 0)


# ---------------------------------------------------------------------------
# Rays and the walk
# ---------------------------------------------------------------------------


def _random_ray(rng, domain: Domain, n: int) -> tuple[list[flint.fmpq] | None, list[flint.fmpq]]:
    """A random start point strictly inside the domain and a random direction.

    Floats are used only here, and only through their exact values.  On a box
    the direction is scaled by the side lengths, so that a ray crosses thin
    and wide sides alike.
    """
    g = rng.standard_normal(n)
    if domain.kind == "box":
        u = rng.random(n)
        if any(t <= 0 for t in u):
            return None, []
        x0 = [lo + (hi - lo) * Fraction(float(t)) for lo, hi, t in zip(domain.lower, domain.upper, u)]
        d = [Fraction(float(gi * float(hi - lo))) for gi, lo, hi in zip(g, domain.lower, domain.upper)]
    else:
        scale = 10.0 ** int(rng.integers(-1, 2))
        p = rng.standard_normal(n) * scale
        if domain.kind == "orthant":
            p = np.abs(p)
            if any(t <= 0 for t in p):
                return None, []
        x0 = [Fraction(float(t)) for t in p]
        d = [Fraction(float(t)) for t in g]
    if not any(d):
        return None, []
    return [_q(v) for v in x0], [_q(v) for v in d]


def _exit(domain: Domain, x: list[flint.fmpq], v: list[flint.fmpq]) -> flint.fmpq | None:
    """sup { s >= 0 : x + s v in the domain } for x in the domain (None: unbounded)."""
    best = None
    for j, c in enumerate(v):
        if c == 0:
            continue
        if domain.kind == "box":
            room = (_q(domain.upper[j]) - x[j]) / c if c > 0 else (_q(domain.lower[j]) - x[j]) / c
        elif domain.kind == "orthant" and c < 0:
            room = x[j] / -c
        else:
            continue
        best = room if best is None or room < best else best
    return best


def _walk(pieces: _Pieces, net: Network, domain: Domain, x0, d, deadline) -> tuple[Point, Point] | None:
    """Follow x0 + s d (s >= 0) from piece to piece; at the first crossing whose
    two nonsingular pieces have determinants of opposite sign, build the fold pair."""
    started = pieces.start(x0)
    if started is None:
        return None
    masks, Zs = started
    s_exit = _exit(domain, x0, d)
    X = _column(x0 + [flint.fmpq(1)], d + [flint.fmpq(0)])
    det = pieces.jacobian(masks, Zs).det()
    relu_layers = [l for l, r in enumerate(pieces.relu) if r]
    for _ in range(MAX_STEPS):
        if deadline is not None and time.perf_counter() > deadline:
            return None
        # On this piece neuron k's pre-activation along the ray is
        # alpha_k + s beta_k; it reaches 0 ahead of us iff beta_k points
        # against its current sign.  The nearest such zero is the next crossing,
        # and every neuron vanishing there is "tied" (several do when their
        # hyperplanes coincide, as for ReLU(x) and ReLU(-x)).
        best, tied = None, []
        for l in relu_layers:
            V = Zs[l] * X
            for i, on in enumerate(masks[l]):
                alpha, beta = V[i, 0], V[i, 1]
                if (on and beta < 0) or (not on and beta > 0):
                    s = -alpha / beta
                    if best is None or s < best:
                        best, tied = s, [(l, i)]
                    elif s == best:
                        tied.append((l, i))
        if best is None or (s_exit is not None and best >= s_exit):
            return None  # the ray escapes to infinity, or leaves the domain, within this piece
        new = _next_piece(pieces, X, masks, Zs, tied)
        if new is None:
            return None  # a tied neuron stays 0 past the crossing: give up this ray
        new_masks, new_Zs = new
        new_det = pieces.jacobian(new_masks, new_Zs).det()
        if det != 0 and new_det != 0 and _sign(det) != _sign(new_det):
            f = [a + best * b for a, b in zip(x0, d)]
            # p = -d points back into the piece we came from.
            pair = _fold_pair(pieces, net, domain, f, [-c for c in d], tied, (masks, Zs), (new_masks, new_Zs))
            if pair is not None:
                return pair
        masks, Zs, det = new_masks, new_Zs, new_det
    return None


def _next_piece(pieces: _Pieces, X: flint.fmpq_mat, masks, Zs, tied):
    """The piece the ray enters after the crossing where the ``tied`` neurons vanish.

    A tied neuron's new sign is the sign of its rate along the ray just past
    the crossing.  Its map depends on the new signs of tied neurons in earlier
    layers, so the layers are settled in order.  Neurons that do not vanish
    keep their signs (their values are continuous and nonzero there).
    Returns None if some tied neuron's rate is 0 (it stays 0 along the ray).
    """
    new_masks = [list(m) for m in masks]
    cur = Zs
    for l in sorted({l for l, _ in tied}):
        V = cur[l] * X
        for ll, i in tied:
            if ll == l:
                beta = V[i, 1]
                if beta == 0:
                    return None
                new_masks[l][i] = beta > 0
        # Layer l's own map does not depend on its own masks: recompute after it.
        cur = pieces.forward(new_masks, cur, l + 1)
    return new_masks, cur


def _step_bound(pieces: _Pieces, piece, F: flint.fmpq_mat, tied) -> flint.fmpq | None | bool:
    """Largest eps (None: any) for which f + eps v stays in the piece's closed
    region, where F = [f, 1 | v, 0] and the ``tied`` neurons are 0 at f; False if
    some tied neuron moves to the wrong side of its hyperplane along v."""
    masks, Zs = piece
    bound = None
    for l, is_relu in enumerate(pieces.relu):
        if not is_relu:
            continue
        V = Zs[l] * F
        for i, on in enumerate(masks[l]):
            val, rate = V[i, 0], V[i, 1]
            if (l, i) in tied:
                # val == 0, so the value is eps * rate: the closed region
                # (>= 0 if active, <= 0 if not) is all that is needed.
                if (on and rate < 0) or (not on and rate > 0):
                    return False
                continue
            # val is nonzero with the sign of ``on`` (only tied neurons vanish
            # at f); it keeps that sign while eps < |val / rate|.
            if (on and rate < 0) or (not on and rate > 0):
                r = -val / rate
                bound = r if bound is None or r < bound else bound
    return bound


def _fold_pair(
    pieces: _Pieces, net: Network, domain: Domain, f, p, tied, s_piece, t_piece
) -> tuple[Point, Point] | None:
    """The fold construction of the module docstring at f, on pieces s (p's side) and t.

    x = f + eps p must lie in s's closed region and y = f + eps q in t's, with
    A_t q = A_s p; then N(x) = N(f) + eps A_s p = N(y).  eps is bounded exactly
    by the other neurons' margins at f and by the domain.
    """
    n = pieces.n
    A_s = pieces.jacobian(*s_piece)
    A_t = pieces.jacobian(*t_piece)
    q_col = A_t.solve(A_s * _column(p))
    q = [q_col[r, 0] for r in range(n)]
    one, zero = flint.fmpq(1), flint.fmpq(0)
    bounds = [
        _step_bound(pieces, s_piece, _column(f + [one], p + [zero]), tied),
        _step_bound(pieces, t_piece, _column(f + [one], q + [zero]), tied),
        _exit(domain, f, p),
        _exit(domain, f, q),
    ]
    if any(b is False for b in bounds):
        # Cannot happen for a single neuron (Sherman-Morrison, module
        # docstring); with several tied neurons in different layers the two
        # pieces need not differ by rank one, so it is checked.
        return None
    finite = [b for b in bounds if b is not None]
    if any(b <= 0 for b in finite):
        return None  # f on the domain's boundary: no room on one side
    # A power of two at most half the bound keeps the witness's numbers small.
    eps = Fraction(1)
    limit = _fr(min(finite)) / 2 if finite else None
    while limit is not None and eps > limit:
        eps /= 2
    F = [_fr(v) for v in f]
    x = tuple(a + eps * _fr(b) for a, b in zip(F, p))
    y = tuple(a + eps * _fr(b) for a, b in zip(F, q))
    if x != y and domain.contains(x) and domain.contains(y) and net.evaluate(x) == net.evaluate(y):
        return x, y
    return None
