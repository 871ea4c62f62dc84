"""Networks: folding, interval bounds, and the layerwise route (theory section 8).

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
  of W and the constraints tight on all of D span (theory section 8); on a
  box that is rank [W; E] = n with E the unit rows of degenerate coordinates.

Everything here is exact (fractions.Fraction); the checker recomputes the
folds, the bounds and the containments itself (checker._check_layerwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import flint

from . import linalg
from .certificate import Domain
from .model import Layer, Network


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
        if layer.activation == "relu" or k == len(net.layers) - 1:
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
    return Layer(W, b, second.activation)


def image_box(layer: Layer, domain: Domain) -> Domain:
    """A convex set containing layer(domain): exact interval bounds from a box,
    the nonnegative orthant otherwise (for a ReLU layer; a linear layer's image
    of an unbounded domain has no box, so it is R^m)."""
    if domain.kind != "box":
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


def singular_piece_witness(net: Network, domain: Domain, seed: int = 0, tries: int = 200):
    """A cheap exact witness source (theory section 8, "folds"): a full-dimensional
    activation region whose Jacobian has rank < n collides inside itself.

    Random rational points (exact float values, seeded) are pushed through the
    network exactly; at a point where no neuron sits exactly at 0 the network
    is affine nearby, x -> A x + c, with A the masked product of the weights.
    If rank A < n, moving along v in null(A) keeps the output fixed for as long
    as no neuron changes sign; that step is bounded exactly, and the pair is
    re-verified by exact evaluation before it is returned.  Returns (x, y) or
    None.  It finds collisions only; finding none proves nothing.

    >>> narrow = Network((Layer.from_rows([[1, 1], [1, -1]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> x, y = singular_piece_witness(narrow, Domain())
    >>> x != y and narrow.evaluate(x) == narrow.evaluate(y)
    True
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = net.input_dim
    if domain.kind == "box" and domain.is_empty():
        return None
    for _ in range(tries):
        x = _random_point(rng, domain, n, spread=True)
        piece = _affine_piece(net, x)
        if piece is None:
            continue
        A, pres, dirs_of = piece
        rows = [linalg.common_denominator(r)[0] for r in A]
        basis = linalg.nullspace(rows, n)
        if not basis:
            continue
        v = [Fraction(c) for c in linalg.primitive(basis[0])]
        eps = _safe_step(pres, dirs_of(v), x, [(j, c) for j, c in enumerate(v) if c], domain)
        if eps is None:
            continue
        y = [a + eps * c for a, c in zip(x, v)]
        if x != y and domain.contains(x) and domain.contains(y) and net.evaluate(x) == net.evaluate(y):
            return tuple(x), tuple(y)
    return None


def narrow_witness(net: Network, domain: Domain, seed: int = 0, tries: int = 20):
    """A witness for a network with fewer outputs p than inputs n, built from
    sparse rows (so convolutional layers are never made dense).

    At a point x where no ReLU neuron is exactly 0 the network is affine
    nearby, with a p x n Jacobian J: rank J <= p < n.  J is computed in
    reverse mode (p backward passes, each costing the non-zeros of the active
    rows), a null vector v lives on its first p + 1 columns, and the step
    along v is bounded exactly so that no neuron changes sign and the pair
    stays in the domain.  The pair is re-verified by exact evaluation before
    it is returned; None if no try gives one.  This is singular_piece_witness
    for the case p < n, where every piece is singular, at the cost of the
    rows' non-zeros instead of n dense Jacobian columns.

    >>> wide = Network((Layer.from_rows([[1, 2, 0], [0, 1, -1]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> x, y = narrow_witness(wide, Domain())
    >>> x != y and wide.evaluate(x) == wide.evaluate(y)
    True
    """
    import numpy as np

    n, p = net.input_dim, net.output_dim
    if p >= n:
        return None
    rows_of = [[layer.sparse_row(i) for i in range(layer.out_dim)] for layer in net.layers]
    rng = np.random.default_rng(seed)
    zero = Fraction(0)
    if domain.kind == "box" and domain.is_empty():
        return None
    for _ in range(tries):
        x = _random_point(rng, domain, n, spread=False)
        h, pres, masks = x, [], []
        for layer in net.layers:
            pre = layer.pre_activation(h)
            if layer.activation == "relu":
                if any(a == 0 for a in pre):
                    break
                masks.append([a > 0 for a in pre])
                pres.extend(pre)
                h = [a if a > 0 else zero for a in pre]
            else:
                masks.append([True] * len(pre))
                h = pre
        else:
            k = p + 1
            J = []
            for out in range(p):
                grad = {out: Fraction(1)}  # d(output out) / d(this layer's output), sparse
                for rows, mask in zip(reversed(rows_of), reversed(masks)):
                    nxt: dict[int, Fraction] = {}
                    for i, gi in grad.items():
                        if mask[i]:
                            for c, w in rows[i].items():
                                nxt[c] = nxt.get(c, zero) + gi * w
                    grad = nxt
                J.append([grad.get(c, zero) for c in range(k)])
            sub = [linalg.common_denominator(r)[0] for r in J]
            basis = linalg.nullspace(sub, k)
            if not basis:  # pragma: no cover - p rows, p + 1 columns
                continue
            v = {c: Fraction(a) for c, a in enumerate(linalg.primitive(basis[0])) if a}
            # Directional derivatives of the ReLU neurons' pre-activations along v.
            dirs, g = [], v
            for layer, rows, mask in zip(net.layers, rows_of, masks):
                d = [sum((w * g[c] for c, w in r.items() if c in g), zero) for r in rows]
                if layer.activation == "relu":
                    dirs.extend(d)
                g = {i: a for i, (a, on) in enumerate(zip(d, mask)) if on and a}
            eps = _safe_step(pres, dirs, x, list(v.items()), domain)
            if eps is None:
                continue
            y = list(x)
            for j, c in v.items():
                y[j] += eps * c
            if x != y and domain.contains(x) and domain.contains(y) and net.evaluate(x) == net.evaluate(y):
                return tuple(x), tuple(y)
    return None


def _random_point(rng, domain: Domain, n: int, spread: bool) -> list[Fraction]:
    """A seeded random rational point of a non-empty domain (exact float values):
    uniform in a box, Gaussian elsewhere (folded into the orthant), scaled by a
    random power of ten when ``spread``."""
    if domain.kind == "box":
        u = rng.random(n)
        return [lo + (hi - lo) * Fraction(float(t)) for lo, hi, t in zip(domain.lower, domain.upper, u)]
    g = rng.standard_normal(n) * 10.0 ** int(rng.integers(-1, 3)) if spread else rng.standard_normal(n)
    return [Fraction(float(abs(t) if domain.kind == "orthant" else t)) for t in g]


def _safe_step(pres, dirs, x, v_items, domain: Domain) -> Fraction | None:
    """A step eps > 0 along v (its non-zero entries ``v_items`` as (j, v_j))
    that keeps every ReLU neuron's sign (pre-activations move as pre_k +
    eps d_k inside the piece) and x + eps v in the domain: half the largest
    such step, at most 1; None if there is no room."""
    bound = None
    for pre, d in zip(pres, dirs):
        if d:
            r = abs(pre / d)
            bound = r if bound is None or r < bound else bound
    for j, c in v_items:
        room = None
        if domain.kind == "box":
            room = (domain.upper[j] - x[j]) / c if c > 0 else (domain.lower[j] - x[j]) / c
        elif domain.kind == "orthant" and c < 0:
            room = x[j] / -c
        if room is not None:
            bound = room if bound is None or room < bound else bound
    if bound is not None and bound <= 0:
        return None
    return Fraction(1) if bound is None or bound > 2 else bound / 2


def _affine_piece(net: Network, x: list[Fraction]):
    """(A, pre-activations of the ReLU neurons at x, direction map) of the affine
    piece containing x, or None if some ReLU neuron is exactly 0 there."""
    n = len(x)
    h = list(x)
    J = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]  # dh/dx
    pres: list[Fraction] = []
    masks: list[list[bool]] = []
    for layer in net.layers:
        pre = list(layer.pre_activation(h))
        JW = [[sum((w * J[k][j] for k, w in enumerate(row)), Fraction(0)) for j in range(n)] for row in layer.weight]
        if layer.activation == "relu":
            if any(p == 0 for p in pre):
                return None
            mask = [p > 0 for p in pre]
            pres.extend(pre)
            masks.append(mask)
            h = [p if on else Fraction(0) for p, on in zip(pre, mask)]
            J = [row if on else [Fraction(0)] * n for row, on in zip(JW, mask)]
        else:
            masks.append([True] * len(pre))
            h, J = pre, JW
    A = J

    def dirs_of(v):
        # Directional derivative of every ReLU neuron's pre-activation along v.
        out, g = [], list(v)
        for layer, mask in zip(net.layers, masks):
            d = [sum((w * gk for w, gk in zip(row, g)), Fraction(0)) for row in layer.weight]
            if layer.activation == "relu":
                out.extend(d)
                g = [dk if on else Fraction(0) for dk, on in zip(d, mask)]
            else:
                g = d
        return out

    return A, pres, dirs_of


def lifted_witness(net: Network, domain: Domain, stage: int, h, h2):
    """A cheap witness source (theory section 8): a collision h != h2 of stage
    ``stage`` found on a convex superset of what it receives is a network
    witness once both points have preimages.  For stage 1 the preimage of h
    under stage 0, z -> ReLU(W z + b) on the domain, is a polyhedron (rows with
    h_i > 0 are equations W_i z + b_i = h_i, rows with h_i = 0 say
    W_i z + b_i <= 0), decided here by the exact simplex.  Returns (z, z2),
    re-verified by exact evaluation, or None (always None for later stages).

    >>> ident = Layer.from_rows([[1, 0], [0, 1]])                      # ReLU(I z): onto the orthant
    >>> net = Network((ident, Layer.from_rows([[1, 1]], activation="linear")))
    >>> z, z2 = lifted_witness(net, Domain(), 1, (Fraction(1), Fraction(0)), (Fraction(0), Fraction(1)))
    >>> z != z2 and net.evaluate(z) == net.evaluate(z2)
    True
    """
    from .exact_lp import equations_as_rows, motzkin_rows

    st = stages(net)
    if stage != 1 or len(st) < 2 or st[0].layer.activation != "relu" or h == h2:
        return None
    first = st[0].layer
    n = first.in_dim
    G, hh = domain.constraints(n)
    t_row = ((Fraction(0),) * n, Fraction(-1))
    pre = []
    for target in (h, h2):
        if len(target) != first.out_dim or any(v < 0 for v in target):
            return None
        rows = [(tuple(g), -b) for g, b in zip(G, hh)]
        for w, b, v in zip(first.weight, first.bias, target):
            if v > 0:
                rows += equations_as_rows([(tuple(w), b - v)])
            else:
                rows.append((tuple(w), b))
        kind, z, t = motzkin_rows([t_row], rows)
        if kind != "point" or t <= 0:
            return None
        pre.append(tuple(v / t for v in z))
    z, z2 = pre
    if z != z2 and domain.contains(z) and domain.contains(z2) and net.evaluate(z) == net.evaluate(z2):
        return z, z2
    return None
