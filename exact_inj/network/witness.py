"""Witness sources for networks that sample: singular pieces, narrow
networks and lifted stage collisions (docs/theory.md, section 8).

Untrusted search: random rational points (seeded) guide it, and every pair it
returns is an exact collision that the caller still sends through the checker.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..exact import linalg
from ..exact.lp import equations_as_rows, motzkin_rows
from ..model import Domain, Network
from ..model.stages import stages

__all__ = ["MAX_TIES", "lifted_witness", "narrow_pair_at", "narrow_witness", "singular_piece_witness"]


def singular_piece_witness(net: Network, domain: Domain, seed: int = 0, tries: int = 200):
    """A cheap exact witness source (docs/theory.md, section 8, "folds"): a full-dimensional
    activation region whose Jacobian has rank < n collides inside itself.

    Random rational points (exact float values, seeded) are pushed through the
    network exactly; at a point where no neuron sits exactly at 0 the network
    is affine nearby, x -> A x + c, with A the masked product of the weights.
    If rank A < n, moving along v in null(A) keeps the output fixed for as long
    as no neuron changes sign; that step is bounded exactly, and the pair is
    re-verified by exact evaluation before it is returned.  Returns (x, y) or
    None.  It finds collisions only; finding none proves nothing.

    >>> from exact_inj.model import Layer
    >>> narrow = Network((Layer.from_rows([[1, 1], [1, -1]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> x, y = singular_piece_witness(narrow, Domain())
    >>> x != y and narrow.evaluate(x) == narrow.evaluate(y)
    True
    """
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

    >>> from exact_inj.model import Layer
    >>> wide = Network((Layer.from_rows([[1, 2, 0], [0, 1, -1]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> x, y = narrow_witness(wide, Domain())
    >>> x != y and wide.evaluate(x) == wide.evaluate(y)
    True
    """
    n, p = net.input_dim, net.output_dim
    if p >= n:
        return None
    rows_of = [[layer.sparse_row(i) for i in range(layer.out_dim)] for layer in net.layers]
    rng = np.random.default_rng(seed)
    if domain.kind == "box" and domain.is_empty():
        return None
    for _ in range(tries):
        pair = narrow_pair_at(net, domain, _random_point(rng, domain, n, spread=False), rows_of)
        if pair is not None:
            return pair
    return None


# At most this many ReLUs exactly at 0 are resolved by narrow_pair_at(ties=True).
MAX_TIES = 64


def narrow_pair_at(net: Network, domain: Domain, x, rows_of=None, ties: bool = False):
    """The step of :func:`narrow_witness` at one given point x (the shortener
    calls it at rounded points): the null vector of the Jacobian's first
    p + 1 columns, a step that keeps every ReLU's sign, and the exact
    collision (x, y) re-verified by evaluation; None if there is no room.

    A ReLU exactly at 0 at x makes the network non-affine there, and x is
    refused, unless ``ties``: then each such neuron (up to MAX_TIES) is
    taken as off or on, and the direction is kept only if it moves every one
    of them the way its choice says (off: pre-activation stays <= 0, on:
    >= 0), so that the network is one affine map on the segment; choices
    that disagree are flipped and the direction recomputed, a few times.
    Points with few digits often sit on such a boundary.

    >>> from exact_inj.model import Layer
    >>> wide = Network((Layer.from_rows([[1, 2, 0], [0, 1, -1]]), Layer.from_rows([[1, 1]], activation="linear")))
    >>> narrow_pair_at(wide, Domain(), (Fraction(1), Fraction(1), Fraction(0)))
    ((Fraction(1, 1), Fraction(1, 1), Fraction(0, 1)), (Fraction(5, 2), Fraction(1, 2), Fraction(0, 1)))
    >>> narrow_pair_at(wide, Domain(), (Fraction(0), Fraction(0), Fraction(0))) is None   # every ReLU at 0
    True
    >>> x, y = narrow_pair_at(wide, Domain(), (Fraction(0), Fraction(0), Fraction(0)), ties=True)
    >>> x != y and wide.evaluate(x) == wide.evaluate(y)
    True
    """
    n, p = net.input_dim, net.output_dim
    if p >= n:
        return None
    if rows_of is None:
        rows_of = [[layer.sparse_row(i) for i in range(layer.out_dim)] for layer in net.layers]
    zero = Fraction(0)
    x = [Fraction(a) for a in x]
    h, pres, masks = x, [], []
    at_zero: list[tuple[int, int, int]] = []  # (layer, neuron, index among all ReLU neurons)
    for li, layer in enumerate(net.layers):
        pre = layer.pre_activation(h)
        if layer.activation == "relu":
            z = [i for i, a in enumerate(pre) if a == 0]
            if z and (not ties or len(at_zero) + len(z) > MAX_TIES):
                return None
            at_zero.extend((li, i, len(pres) + i) for i in z)
            masks.append([a > 0 for a in pre])
            pres.extend(pre)
            h = [a if a > 0 else zero for a in pre]
        else:
            masks.append([True] * len(pre))
            h = pre
    k = p + 1
    for _ in range(4):
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
            return None
        v = {c: Fraction(a) for c, a in enumerate(linalg.primitive(basis[0])) if a}
        # Directional derivatives of the ReLU neurons' pre-activations along v.
        dirs, g = [], v
        for layer, rows, mask in zip(net.layers, rows_of, masks):
            d = [sum((w * g[c] for c, w in r.items() if c in g), zero) for r in rows]
            if layer.activation == "relu":
                dirs.extend(d)
            g = {i: a for i, (a, on) in enumerate(zip(d, mask)) if on and a}
        # A neuron at 0 taken on must not decrease along the step, one taken off must not increase.
        wrong = {s: [(li, i, f) for li, i, f in at_zero if s * dirs[f] * (1 if masks[li][i] else -1) < 0]
                 for s in (1, -1)}
        sign = 1 if not wrong[1] else -1 if not wrong[-1] else 0
        if sign:
            break
        for li, i, f in wrong[1]:
            masks[li][i] = dirs[f] > 0
    else:
        return None
    v = {c: sign * a for c, a in v.items()}
    dirs = [sign * d for d in dirs]
    moving = [(a, d) for a, d in zip(pres, dirs) if a != 0]  # the neurons at 0 were settled above
    eps = _safe_step([a for a, _ in moving], [d for _, d in moving], x, list(v.items()), domain)
    if eps is None:
        return None
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
    eps d_k inside the piece) and x + eps v in the domain: the largest of
    1, 1/2, 1/5, 1/10, 1/20, ... at most half the largest such step; None if
    there is no room."""
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
    if bound is None or bound > 2:
        return Fraction(1)
    # The simplest step strictly inside the bound: the largest of 1, 1/2,
    # 1/5, 1/10, 1/20, 1/50, ... that is <= bound / 2, so that a point with
    # short decimals stays one with short decimals.
    scale = Fraction(1)
    while True:
        for eps in (scale, scale / 2, scale / 5):
            if eps <= bound / 2:
                return eps
        scale /= 10


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
    """A cheap witness source (docs/theory.md, section 8): a collision h != h2 of stage
    ``stage`` found on a convex superset of what it receives is a network
    witness once both points have preimages.  For stage 1 the preimage of h
    under stage 0, z -> ReLU(W z + b) on the domain, is a polyhedron (rows with
    h_i > 0 are equations W_i z + b_i = h_i, rows with h_i = 0 say
    W_i z + b_i <= 0), decided here by the exact simplex.  Returns (z, z2),
    re-verified by exact evaluation, or None (always None for later stages).

    >>> from exact_inj.model import Layer
    >>> ident = Layer.from_rows([[1, 0], [0, 1]])                      # ReLU(I z): onto the orthant
    >>> net = Network((ident, Layer.from_rows([[1, 1]], activation="linear")))
    >>> z, z2 = lifted_witness(net, Domain(), 1, (Fraction(1), Fraction(0)), (Fraction(0), Fraction(1)))
    >>> z != z2 and net.evaluate(z) == net.evaluate(z2)
    True
    """

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
