"""Networks: folding, interval bounds, and the layerwise route (docs/theory.md, section 8).

A network is cut into *stages*: each stage is a run of linear layers followed
by one ReLU layer, and the last stage may end with a linear layer.  Linear
layers inside a stage fold exactly into one affine map, W2 (W1 h + b1) + b2 =
(W2 W1) h + (W2 b1 + b2); nothing is folded across a ReLU.

The layerwise route (the paper's Corollary 1): if every stage is injective on
a convex set that contains what it receives, the network is injective.
- Stage 0 sees the network's own domain.  If it is not injective there, its
  collision is already a network collision (equal outputs of stage 0 stay
  equal), so the network is not injective.
- Stage k > 0 receives outputs of a ReLU, so the nonnegative orthant contains
  them (the paper's Remark 1); from a box input, exact interval arithmetic
  gives a smaller box inside the orthant.  Both are convex, so section 1b's
  pointwise criterion applies there.  A collision found on such a superset is
  NOT a network collision (its points may have no preimages), so it only
  means this route fails.
- A final linear stage h -> W h + c is injective on a convex D iff the rows
  of W and the constraints tight on all of D span (docs/theory.md, section 8); on a
  box that is rank [W; E] = n with E the unit rows of degenerate coordinates.

Everything here is exact (fractions.Fraction); the checker recomputes the
folds, the bounds and the containments itself (checker._check_layerwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import flint

from ..exact import linalg, ndrank
from .domain import Domain
from .network import Layer, Network


@dataclass(frozen=True)
class Stage:
    """Layers [start, stop) of a network folded into one affine map + activation."""

    start: int
    stop: int
    layer: Layer


def stages(net: Network) -> list[Stage]:
    """Cut after every ReLU layer and fold the linear layers before it.

    >>> net = Network((Layer.from_rows([[1, 0], [0, 1]], activation="linear"),
    ...                Layer.from_rows([[2, 0], [0, 3]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> [(s.start, s.stop, s.layer.activation) for s in stages(net)]
    [(0, 2, 'relu'), (2, 3, 'linear')]
    """
    out: list[Stage] = []
    start = 0
    acc: Layer | None = None
    for k, layer in enumerate(net.layers):
        acc = layer if acc is None else compose(acc, layer)
        # A LeakyReLU ends a stage like a ReLU: nothing folds across it.
        if layer.activation != "linear" or k == len(net.layers) - 1:
            out.append(Stage(start, k + 1, acc))
            start, acc = k + 1, None
    return out


def compose(first: Layer, second: Layer) -> Layer:
    """second's affine map after first's (first must be linear); second's activation."""
    if first.activation != "linear":
        raise ValueError("only a linear layer folds into the next one")
    W1, b1, W2, b2 = first.weight, first.bias, second.weight, second.bias
    # The products in python-flint: Fraction sums cost m n k Python
    # operations (a 576 x 288 by 288 x 144 fold took 41 s that way).
    M1 = flint.fmpq_mat(len(W1), first.in_dim, [linalg.to_fmpq(v) for r in W1 for v in r])
    M2 = flint.fmpq_mat(len(W2), len(W1), [linalg.to_fmpq(v) for r in W2 for v in r])
    c1 = flint.fmpq_mat(len(b1), 1, [linalg.to_fmpq(v) for v in b1])
    P, q = M2 * M1, M2 * c1

    def frac(x) -> Fraction:
        return Fraction(int(x.p), int(x.q))

    W = tuple(tuple(frac(P[i, j]) for j in range(P.ncols())) for i in range(P.nrows()))
    b = tuple(frac(q[i, 0]) + bb for i, bb in enumerate(b2))
    return Layer(W, b, second.activation, second.slope)


def image_box(layer: Layer, domain: Domain) -> Domain:
    """A convex set containing layer(domain): exact interval bounds from a box,
    the nonnegative orthant otherwise (for a ReLU layer; a linear layer's image
    of an unbounded domain has no box, so it is R^m)."""
    if domain.kind != "box":
        # A LeakyReLU (slope > 0) is onto R: its image has no smaller convex hull.
        return Domain.orthant() if layer.activation == "relu" else Domain.reals()
    lo, hi = domain.lower, domain.upper
    lower, upper = [], []
    # Sparse rows: a convolution's rows come from its kernel, so a big conv
    # stage gets its box without a dense operator.
    for i, b in enumerate(layer.bias):
        row = layer.sparse_row(i)
        a = b + sum((w * (lo[j] if w >= 0 else hi[j]) for j, w in row.items()), Fraction(0))
        c = b + sum((w * (hi[j] if w >= 0 else lo[j]) for j, w in row.items()), Fraction(0))
        if layer.activation == "relu":
            a, c = max(a, Fraction(0)), max(c, Fraction(0))
        elif layer.activation == "leaky_relu":
            # Strictly increasing, so the interval's image is [f(a), f(c)].
            a, c = (a if a >= 0 else layer.slope * a), (c if c >= 0 else layer.slope * c)
        lower.append(a)
        upper.append(c)
    return Domain.box(lower, upper)


def contains(outer: Domain, inner: Domain) -> bool:
    """Exactly: is every point of ``inner`` in ``outer``?"""
    if outer.kind == "reals":
        return True
    if outer.kind == "orthant":
        if inner.kind == "box":
            return inner.is_empty() or all(v >= 0 for v in inner.lower)
        return inner.kind == "orthant"
    if inner.kind != "box":
        return False
    if inner.is_empty():
        return True
    return all(ol <= il and iu <= ou for ol, il, iu, ou in zip(outer.lower, inner.lower, inner.upper, outer.upper))


def degenerate_rows(domain: Domain, n: int) -> list[list[Fraction]]:
    """Unit rows e_j of the coordinates a box fixes (lower = upper): the
    constraints tight at every point of the domain."""
    if domain.kind != "box":
        return []
    return [[Fraction(int(i == j)) for i in range(n)] for j in range(n) if domain.lower[j] == domain.upper[j]]


def linear_rank(layer: Layer, domain: Domain) -> int:
    """rank [W; E]: a linear stage is injective on a nonempty convex domain iff
    this equals the input dimension."""
    n = layer.in_dim
    spec = getattr(layer, "spec", None)
    if spec is not None and hasattr(spec, "grid_operator") and layer.out_dim >= n \
            and ndrank.rows_nonsingular(spec, range(n)):
        # A convolution whose first n rows are nonsingular mod a prime
        # (nested dissection, exact/ndrank.py) has rank n over Q, and so has
        # [W; E], without its dense operator; otherwise the exact rank below
        # decides.
        return n
    return linalg.rank_q([list(r) for r in layer.weight] + degenerate_rows(domain, n), n)


def linear_witness(layer: Layer, domain: Domain) -> tuple[tuple, tuple] | None:
    """x != y in the domain with W x = W y, when rank [W; E] < n."""
    n = layer.in_dim
    rows = [list(r) for r in layer.weight] + degenerate_rows(domain, n)
    Wi = [linalg.common_denominator(r)[0] for r in rows]
    if len(Wi) < n:
        # Fewer rows than columns: a null vector already lives on the first
        # len + 1 columns, a small system, where the whole basis of a wide
        # stage (say 2 x 12288) would have n - 2 vectors of n entries.
        k = len(Wi) + 1
        sub = linalg.nullspace([r[:k] for r in Wi], k)
        basis = [sub[0] + [0] * (n - k)]
    else:
        basis = linalg.nullspace(Wi, n)
    if not basis:
        return None
    # v is zero on the coordinates a box fixes (their unit rows are in E).
    return pair_along([Fraction(c) for c in linalg.primitive(basis[0])], domain)


def pair_along(v: list[Fraction], domain: Domain) -> tuple[tuple, tuple] | None:
    """x != y = x + t v (t > 0), both in the domain; None if the domain
    leaves no room along v (a box fixing a coordinate where v is not zero).
    For a direction with W v = 0, such a pair collides under x -> W x.

    >>> pair_along([Fraction(1), Fraction(-2)], Domain.orthant())
    ((Fraction(3, 1), Fraction(3, 1)), (Fraction(4, 1), Fraction(1, 1)))
    """
    n = len(v)
    if domain.kind == "box":
        # From the centre of the box, move within it along v.
        mid = [(l + u) / 2 for l, u in zip(domain.lower, domain.upper)]
        room = min(((u - l) / 2 / abs(c) for l, u, c in zip(domain.lower, domain.upper, v) if c), default=Fraction(1))
        if room <= 0:
            return None
        x = tuple(mid)
        y = tuple(a + room * c for a, c in zip(mid, v))
    elif domain.kind == "orthant":
        far = Fraction(sum(abs(c) for c in v))  # once: it is the same for every coordinate
        x = tuple(far for _ in range(n))
        y = tuple(a + c for a, c in zip(x, v))
    else:
        x = tuple(Fraction(0) for _ in range(n))
        y = tuple(v)
    return x, y
