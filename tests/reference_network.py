"""An independent, brute-force reference decision of NETWORK injectivity.

Like tests/reference.py (whose Fourier-Motzkin and evaluation helpers it
reuses), this module never imports ``exact_inj``: the network differential
test is only worth something if the two sides can be wrong independently.
Everything is exact (``fractions.Fraction``); no solver, no floats, no numpy.
It is meant for input dimension n <= 3 and about 8 ReLUs in total.

A network is a list of layers ``(W, b, act)`` with ``act`` in {"relu",
"linear"}, any depth; a domain is "reals", "orthant" or a box ``(lower,
upper)`` (degenerate sides lower == upper allowed; an empty box is
injective).  The question: are there x != y in the domain with N(x) == N(y)?

Method (docs/theory.md, section 8, "end to end"), written to be obviously correct:

1. Enumerate every COMPLETE activation pattern s over all ReLU neurons of the
   network, with CLOSED regions: neuron i active means pre_i(x) >= 0 and output
   pre_i(x); inactive means pre_i(x) <= 0 and output 0.  Within a pattern every
   pre-activation and the output are affine in x, composed exactly layer by
   layer.  The closed regions P_s = cl R_s ∩ D cover D, and N(x) = A_s x + c_s
   for every x in P_s (at pre_i = 0 both choices give output 0).  Patterns are
   grown neuron by neuron, layer by layer; a prefix whose closed region is
   empty (exact, non-strict Fourier-Motzkin) is dropped, and nothing else is
   (``pieces="closed"``).  The default, ``pieces="full"``, also drops the
   regions without interior points, after substituting the coordinates a
   degenerate box fixes; the full-dimensional closed regions still cover D
   (see ``decide_network``), and the self-tests compare the two modes.
2. For every unordered pair {s, t} (s == t included) the pair system
       S = { (x, y) : x in P_s, y in P_t, A_s x + c_s = A_t y + c_t }
   is a polyhedron in R^{2n}.  Any collision x != y lies in some S (take
   s, t to be patterns of x and y), and every point of S with x != y is a
   collision.  So N is non-injective on D iff, for some pair, some coordinate
   k and some sign, S ∩ { ±(x_k - y_k) > 0 } is non-empty; swapping x and y
   makes the unordered pairs enough.
3. Each such question is decided exactly: the equations of S are solved by
   Gauss-Jordan elimination (their solution set is parametrised by the free
   variables), the inequalities are substituted, and the remaining system,
   with the one strict inequality, is decided by Fourier-Motzkin with
   strictness tracking (``fm_solve_int`` below: tests/reference.py's method
   over integers, cross-checked against its ``fm_solve``), which also yields
   a point.

``decide_network_1d`` is a second procedure for one input, sharing none of
steps 1-3 (breakpoints and pieces by plain evaluation).

The answer is ``("not_injective", (x, y))`` with x != y both in the domain and
colliding under this module's own exact evaluation (asserted before return),
or ``("injective", None)``.

>>> from fractions import Fraction as F
>>> decide_network([([[1]], [0], "relu")], "reals")[0]          # ReLU on R
'not_injective'
>>> decide_network([([[1]], [0], "relu")], ([F(1)], [F(2)]))    # ReLU on [1, 2]
('injective', None)
>>> ident = [([[1], [-1]], [0, 0], "relu"), ([[1, -1]], [0], "linear")]
>>> decide_network(ident, "reals")                               # ReLU(x) - ReLU(-x) = x
('injective', None)
>>> absval = [([[1], [-1]], [0, 0], "relu"), ([[1, 1]], [0], "linear")]
>>> verdict, (x, y) = decide_network(absval, "reals")            # |x| folds
>>> verdict, x != y, evaluate(absval, x) == evaluate(absval, y)
('not_injective', True, True)
>>> decide_network(absval, "orthant")                            # |x| = x on x >= 0
('injective', None)
"""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations
from typing import Iterator, Optional, Sequence, Union

from math import gcd

from reference import _pick_in_interval, dot, rref

ZERO = Fraction(0)
ONE = Fraction(1)

Vec = list[Fraction]
# An affine function of the input x: (coefficients, constant).
Aff = tuple[tuple[Fraction, ...], Fraction]
Domain = Union[str, tuple]


# --------------------------------------------------------------------------
# inputs, exact evaluation, domains
# --------------------------------------------------------------------------


def _frac(v) -> Fraction:
    if isinstance(v, float):
        raise TypeError("reference_network refuses floats; pass Fractions or ints")
    return Fraction(v)


def normalise(layers) -> list[tuple[list[Vec], Vec, str]]:
    """Layers as Fractions, with their shapes and activations checked."""
    out = []
    width = None
    for W, b, act in layers:
        W = [[_frac(v) for v in row] for row in W]
        b = [_frac(v) for v in b]
        if act not in ("relu", "linear"):
            raise ValueError(f"unknown activation {act!r}")
        if not W or len(b) != len(W) or len({len(r) for r in W}) != 1:
            raise ValueError("a layer needs m >= 1 rows of equal length and m biases")
        if width is not None and len(W[0]) != width:
            raise ValueError("layer input width does not match the previous layer's output")
        width = len(W)
        out.append((W, b, act))
    if not out:
        raise ValueError("a network needs at least one layer")
    return out


def input_dim(layers) -> int:
    return len(layers[0][0][0])


def evaluate(layers, x: Sequence) -> Vec:
    """N(x), exactly: plain loops, no pattern bookkeeping."""
    h = [_frac(v) for v in x]
    for W, b, act in layers:
        pre = [sum((_frac(w) * hv for w, hv in zip(row, h)), _frac(bb)) for row, bb in zip(W, b)]
        h = [p if p > 0 else ZERO for p in pre] if act == "relu" else pre
    return h


def domain_rows(domain: Domain, n: int) -> list[Aff]:
    """The domain as affine functions g with g(x) <= 0."""
    rows: list[Aff] = []
    if domain == "reals":
        return rows
    unit = [tuple(ONE if j == k else ZERO for j in range(n)) for k in range(n)]
    if domain == "orthant":
        return [(tuple(-v for v in unit[k]), ZERO) for k in range(n)]
    lower, upper = domain
    if len(lower) != n or len(upper) != n:
        raise ValueError("box bounds must have the input dimension")
    for k in range(n):
        rows.append((unit[k], -_frac(upper[k])))  # x_k - u_k <= 0
        rows.append((tuple(-v for v in unit[k]), _frac(lower[k])))  # l_k - x_k <= 0
    return rows


def in_domain(domain: Domain, x: Sequence) -> bool:
    x = [_frac(v) for v in x]
    return all(dot(a, x) + c <= 0 for a, c in domain_rows(domain, len(x)))


def is_network_collision(layers, domain: Domain, x, y) -> bool:
    """x != y, both in the domain, equal outputs: all checked exactly."""
    layers = normalise(layers)
    x = [_frac(v) for v in x]
    y = [_frac(v) for v in y]
    n = input_dim(layers)
    return (
        len(x) == n
        and len(y) == n
        and x != y
        and in_domain(domain, x)
        and in_domain(domain, y)
        and evaluate(layers, x) == evaluate(layers, y)
    )


# --------------------------------------------------------------------------
# Fourier-Motzkin over integers, with strictness tracking
# --------------------------------------------------------------------------
#
# The same method as tests/reference.py's fm_solve (which the self-tests use
# to cross-check this one), made fast enough for thousands of pair systems:
# each constraint a.u + c < 0 (strict) or <= 0 is scaled by a positive number
# to coprime integers, and the variable eliminated next is the one that
# creates the fewest new constraints.  Positive scaling and positive
# combinations never change a solution set's projection, so neither does
# either speed-up.


def _int_constraint(a: Sequence[Fraction], c: Fraction, strict: bool):
    """a.u + c (<|<=) 0 as coprime integers, scaled by a positive number."""
    den = 1
    for v in (*a, c):
        den = den * v.denominator // gcd(den, v.denominator)
    ai = [int(v * den) for v in a]
    ci = int(c * den)
    g = gcd(*ai, ci)
    if g > 1:
        ai = [v // g for v in ai]
        ci //= g
    return tuple(ai), ci, strict


def _tighten_int(cons):
    """Drop constraints implied by a parallel one; None if a constant one fails.

    Rows with the same primitive direction p read g1 p.u + c1 <= 0 and
    g2 p.u + c2 <= 0, i.e. p.u <= -c1/g1 and p.u <= -c2/g2: the larger c/g
    implies the other; at equal c/g a strict one implies a non-strict one."""
    best: dict = {}
    for a, c, strict in cons:
        g = gcd(*a)
        if g == 0:
            if (c >= 0) if strict else (c > 0):
                return None  # 0 + c < 0 (or <= 0) fails
            continue
        key = tuple(v // g for v in a)
        old = best.get(key)
        if old is None:
            best[key] = (a, c, strict, g)
            continue
        oa, oc, os_, og = old
        lhs, rhs = c * og, oc * g  # compare c/g with oc/og (g, og > 0)
        if lhs > rhs or (lhs == rhs and strict and not os_):
            best[key] = (a, c, strict, g)
    return [(a, c, s) for a, c, s, _ in best.values()]


def fm_solve_int(cons, nv: int) -> Optional[Vec]:
    """A point u with a.u + c < 0 (strict) / <= 0 for every (a, c, strict) in
    cons (Fraction or int entries), or None if there is none."""
    original = [(tuple(a), c, bool(s)) for a, c, s in cons]
    if all(type(v) is int for a, c, _ in original for v in (*a, c)):
        scaled = original  # already integers; positive scale does not matter
    else:
        scaled = [_int_constraint([Fraction(v) for v in a], Fraction(c), s) for a, c, s in original]
    cur = _tighten_int(scaled)
    if cur is None:
        return None
    stages = []  # (variable, constraints before eliminating it)
    remaining = list(range(nv))
    while remaining:
        def cost(k):
            p = sum(1 for a, _, _ in cur if a[k] > 0)
            q = sum(1 for a, _, _ in cur if a[k] < 0)
            return p * q - p - q
        k = min(remaining, key=cost)
        remaining.remove(k)
        stages.append((k, cur))
        pos = [r for r in cur if r[0][k] > 0]
        neg = [r for r in cur if r[0][k] < 0]
        nxt = [r for r in cur if r[0][k] == 0]
        for ap, cp, sp in pos:
            for aq, cq, sq in neg:
                lp, lq = -aq[k], ap[k]  # both positive: variable k cancels
                a = [lp * u + lq * w for u, w in zip(ap, aq)]
                c = lp * cp + lq * cq
                g = gcd(*a, c)
                if g > 1:
                    a = [v // g for v in a]
                    c //= g
                nxt.append((tuple(a), c, sp or sq))
        cur = _tighten_int(nxt)
        if cur is None:
            return None
    # Feasible.  Back-substitute in reverse elimination order: at the stage
    # of variable k only k and variables eliminated after it (already fixed)
    # have nonzero coefficients.
    u: list = [None] * nv
    for k, rows in reversed(stages):
        lowers, uppers = [], []
        for a, c, strict in rows:
            rest = c + sum((a[j] * u[j] for j in range(nv) if j != k and a[j] != 0), ZERO)
            if a[k] > 0:
                uppers.append((Fraction(-rest, a[k]), strict))
            elif a[k] < 0:
                lowers.append((Fraction(-rest, a[k]), strict))
            else:
                assert (rest < 0) if strict else (rest <= 0)
        u[k] = _pick_in_interval(lowers, uppers)
    for a, c, strict in original:
        val = dot(a, u) + c
        assert (val < 0) if strict else (val <= 0), "FM back-substitution failed"
    return u


# --------------------------------------------------------------------------
# step 1: complete patterns with closed, non-empty regions
# --------------------------------------------------------------------------


def _int_row(a: Sequence[Fraction], c: Fraction) -> tuple[tuple[int, ...], int]:
    """a.x + c <= 0 scaled by a positive number to coprime integers."""
    return _int_constraint(a, c, False)[:2]


def _compose(W: list[Vec], b: Vec, h: list[Aff], n: int) -> list[Aff]:
    """W h + b, where h is a list of affine functions of x."""
    out = []
    for row, bi in zip(W, b):
        coef = tuple(sum((w * hj[0][k] for w, hj in zip(row, h)), ZERO) for k in range(n))
        const = sum((w * hj[1] for w, hj in zip(row, h)), bi)
        out.append((coef, const))
    return out


def patterns(layers, domain: Domain, pieces: str = "closed") -> Iterator[tuple[tuple[bool, ...], list, list[Aff]]]:
    """Every complete pattern s whose closed region P_s (inside the domain) is
    non-empty, as (s, constraints of P_s, output map of P_s).

    s lists the ReLU neurons in network order (True = active); constraints are
    affine g with g(x) <= 0, as integer pairs (a, c) scaled by a positive
    number, and include the domain's; the output map is the list of affine
    functions A_s x + c_s (Fractions), one per output.

    pieces="full" keeps only the patterns whose P_s has an interior point,
    i.e. satisfies every constraint with a nonzero coefficient vector
    strictly (an interior point cannot lie on a hyperplane a.x + c = 0 with
    a != 0 bounding P_s; a point satisfying all of them strictly has a ball
    inside P_s).  Constraints with a zero coefficient vector are constants
    and are decided as such in both modes.  Only for a full-dimensional
    domain (see decide_network).

    >>> [s for s, _, _ in patterns([([[1], [-1]], [0, 0], "relu")], "reals")]   # closed: (False, False) is {0}
    [(True, True), (True, False), (False, True), (False, False)]
    >>> [s for s, _, _ in patterns([([[1], [-1]], [0, 0], "relu")], "reals", "full")]
    [(True, False), (False, True)]
    >>> [s for s, _, _ in patterns([([[0]], [0], "relu")], "reals", "full")]   # a zero row: both regions are R
    [(True,), (False,)]
    """
    if pieces not in ("closed", "full"):
        raise ValueError(pieces)
    strict = pieces == "full"
    layers = normalise(layers)
    n = input_dim(layers)
    base = [_int_row(a, c) for a, c in domain_rows(domain, n) if any(v != 0 for v in a)]

    def nonempty(cons) -> bool:
        return fm_solve_int([(a, c, strict) for a, c in cons], n) is not None

    if not nonempty(base):
        return
    x_id: list[Aff] = [(tuple(ONE if j == k else ZERO for j in range(n)), ZERO) for k in range(n)]

    def grow(li: int, h: list[Aff], pre: list[Aff], out: list[Aff], i: int, cons: list, s: tuple):
        # Layer li: pre are its pre-activations; neurons < i are already fixed
        # into out.  When the layer is done, move on with h = out.
        if li == len(layers):
            yield s, cons, h
            return
        W, b, act = layers[li]
        if pre is None:
            pre = _compose(W, b, h, n)
            if act == "linear":
                yield from grow(li + 1, pre, None, [], 0, cons, s)
                return
        if i == len(pre):
            yield from grow(li + 1, out, None, [], 0, cons, s)
            return
        a, c = pre[i]
        zero = (tuple(ZERO for _ in range(n)), ZERO)
        # active: pre >= 0, i.e. -pre <= 0, output pre.  inactive: pre <= 0, output 0.
        for active, g, val in ((True, (tuple(-v for v in a), -c), pre[i]), (False, (a, c), zero)):
            if all(v == 0 for v in g[0]):
                ok = g[1] <= 0  # a constant constraint: no solver needed
                new = cons
            else:
                new = cons + [_int_row(*g)]
                ok = nonempty(new)
            if ok:
                yield from grow(li, h, pre, out + [val], i + 1, new, s + (active,))

    yield from grow(0, x_id, None, [], 0, list(base), ())


# --------------------------------------------------------------------------
# step 2 and 3: the pair systems
# --------------------------------------------------------------------------


def _pair_collision(cons_s, out_s, cons_t, out_t, n) -> Optional[tuple[Vec, Vec]]:
    """A point (x, y) of S with x != y, or None if there is none."""
    N2 = 2 * n
    # Equations A_s x - A_t y = c_t - c_s over z = (x, y), as augmented rows.
    eq = [list(a1) + [-v for v in a2] + [c2 - c1] for (a1, c1), (a2, c2) in zip(out_s, out_t)]
    R, piv = rref(eq, N2 + 1) if eq else ([], [])
    if N2 in piv:
        return None  # 0 = nonzero: the two images are disjoint
    free = [j for j in range(N2) if j not in piv]
    # z_j = M[j] . u + m[j] with u the free variables.
    M = [[ZERO] * len(free) for _ in range(N2)]
    m = [ZERO] * N2
    for fi, j in enumerate(free):
        M[j][fi] = ONE
    for r, j in enumerate(piv):
        m[j] = R[r][N2]
        for fi, f in enumerate(free):
            M[j][fi] = -R[r][f]

    nf = len(free)
    # Clear denominators: z = (Mi u + mi) / L with integers and L > 0, so an
    # integer constraint a.z + c <= 0 is (a.Mi) u + (a.mi + c L) <= 0.
    L = 1
    for v in [e for row in M for e in row] + m:
        L = L * v.denominator // gcd(L, v.denominator)
    Mi = [[int(e * L) for e in row] for row in M]
    mi = [int(e * L) for e in m]

    def subst(a: Sequence[int], c: int, offset: int):
        # a.x + c (offset 0) or a.y + c (offset n) in terms of u, times L.
        coef = tuple(sum(a[k] * Mi[offset + k][fi] for k in range(n)) for fi in range(nf))
        return coef, c * L + sum(a[k] * mi[offset + k] for k in range(n))

    ineq = [subst(a, c, 0) + (False,) for a, c in cons_s] + [subst(a, c, n) + (False,) for a, c in cons_t]

    def point(u):
        z = [dot(M[j], u) + m[j] for j in range(N2)]
        return z[:n], z[n:]

    if nf == 0:
        # S is at most the single point m.
        x, y = point([])
        if x != y and all(c <= 0 for _, c, _ in ineq):
            return x, y
        return None
    if fm_solve_int(ineq, nf) is None:
        return None  # S is empty
    for k in range(n):
        dcoef = tuple(Mi[k][fi] - Mi[n + k][fi] for fi in range(nf))  # L (x_k - y_k)
        dconst = mi[k] - mi[n + k]
        if all(v == 0 for v in dcoef) and dconst == 0:
            continue  # x_k = y_k all over S
        for sign in (1, -1):
            # sign * d_k > 0  <=>  -sign * d_k < 0
            u = fm_solve_int(ineq + [(tuple(-sign * v for v in dcoef), -sign * dconst, True)], nf)
            if u is not None:
                x, y = point(u)
                assert x != y
                return x, y
    return None


def _fix_degenerate_sides(layers, domain):
    """Substitute the coordinates a box fixes (l_k = u_k) into the first layer.

    Returns (layers', domain', lift) with lift mapping a point of the reduced
    input space back; or None if the box is empty or a single point (then
    nothing collides)."""
    if isinstance(domain, str):
        return layers, domain, lambda x: list(x)
    lower = [_frac(v) for v in domain[0]]
    upper = [_frac(v) for v in domain[1]]
    if any(l > u for l, u in zip(lower, upper)):
        return None
    keep = [k for k in range(len(lower)) if lower[k] < upper[k]]
    if len(keep) == len(lower):
        return layers, (lower, upper), lambda x: list(x)
    if not keep:
        return None
    fixed = [k for k in range(len(lower)) if k not in keep]
    W, b, act = layers[0]
    W2 = [[row[k] for k in keep] for row in W]
    b2 = [bi + sum((row[k] * lower[k] for k in fixed), ZERO) for row, bi in zip(W, b)]

    def lift(x):
        z = list(lower)
        for k, v in zip(keep, x):
            z[k] = v
        return z

    return [(W2, b2, act)] + list(layers[1:]), ([lower[k] for k in keep], [upper[k] for k in keep]), lift


def decide_network(layers, domain: Domain = "reals", pieces: str = "full") -> tuple[str, Optional[tuple[Vec, Vec]]]:
    """("not_injective", (x, y)) or ("injective", None); see the module docstring.

    pieces="closed" pairs up every pattern whose closed region is non-empty,
    exactly as in the module docstring.  pieces="full" (the default, several
    times faster) pairs up only the patterns whose region has an interior
    point, after substituting the coordinates that a box fixes, so that the
    domain is full-dimensional.  That is enough: the finitely many closed
    regions cover D; those without interior points are nowhere dense, so the
    others (a closed union) cover a dense subset of D, hence all of D.  Every
    collision therefore lies in the pair system of two full-dimensional
    pieces.  The self-tests compare both modes.

    >>> B = [[2, 1], [1, 1]]          # invertible
    >>> z = [([r for r in B] + [[-v for v in r] for r in B], [1, -2, 0, 3], "relu"),
    ...      ([[1, 0, -1, 0], [0, 1, 0, -1]], [0, 0], "linear")]
    >>> decide_network(z, "reals")     # ReLU([B; -B]x + b) then [I, -I]: Bx + const
    ('injective', None)
    >>> decide_network([([[1, 1]], [0], "relu"), ([[1]], [0], "linear")], ([0, 5], [1, 5]))[0]
    'injective'
    >>> decide_network([([[1, 1]], [0], "relu"), ([[1]], [0], "linear")], ([0, 0], [1, 1]))[0]
    'not_injective'
    """
    layers = normalise(layers)
    original = layers
    lift = lambda x: list(x)  # noqa: E731
    work_domain = domain
    if pieces == "full":
        reduced = _fix_degenerate_sides(layers, domain)
        if reduced is None:
            return "injective", None  # an empty box or a single point
        layers, work_domain, lift = reduced
    n = input_dim(layers)
    pats = list(patterns(layers, work_domain, pieces))
    # Each piece with itself first (cheap, and where rank drops show), then
    # the other pairs; the order changes the speed, never the answer.
    pairs = [(p, p) for p in pats] + [(p, q) for i, p in enumerate(pats) for q in pats[i + 1:]]
    for (s, cs, os_), (t, ct, ot) in pairs:
        pair = _pair_collision(cs, os_, ct, ot, n)
        if pair is not None:
            x, y = lift(pair[0]), lift(pair[1])
            assert is_network_collision(original, domain, x, y), "reference built a bad network witness"
            return "not_injective", (x, y)
    return "injective", None


def reference_network_injective(layers, domain: Domain = "reals") -> bool:
    return decide_network(layers, domain)[0] == "injective"


# --------------------------------------------------------------------------
# a second, independent decision for input dimension 1
# --------------------------------------------------------------------------


def _prefix_pre(layers, k: int, x: Fraction) -> Vec:
    """Pre-activations of layer k at the scalar input x, by plain evaluation."""
    h = evaluate(layers[:k], [x]) if k else [x]
    W, b, _ = layers[k]
    return [dot(row, h) + bi for row, bi in zip(W, b)]


def _two_points(lo: Optional[Fraction], hi: Optional[Fraction]) -> tuple[Fraction, Fraction]:
    """Two distinct points of the closed interval [lo, hi] (None = infinite, lo < hi)."""
    if lo is not None and hi is not None:
        return lo, hi
    if lo is not None:
        return lo, lo + 1
    if hi is not None:
        return hi - 1, hi
    return ZERO, ONE


def decide_network_1d(layers, domain: Domain = "reals") -> tuple[str, Optional[tuple[Vec, Vec]]]:
    """Decide a network with ONE input by a different method (for cross-checks).

    Uses no pattern enumeration and none of the pair systems above, only
    plain evaluation and tests/reference.py's own Fourier-Motzkin:
    - breakpoints are found layer by layer: on each interval between the
      breakpoints found so far, layer k's pre-activations are affine, so
      evaluating them at two points gives each one's zero;
    - N is then affine on each closed piece [p_j, p_j+1] of the domain, with
      slope and offset read off two evaluations;
    - a piece collides with itself iff its slope is the zero vector; pieces
      i < j collide iff { x in I_i, y in I_j, x < y, a_i x + c_i = a_j y + c_j }
      is non-empty (x <= y holds anyway, so x != y is x < y).

    >>> decide_network_1d([([[1], [-1]], [0, 0], "relu"), ([[1, -1]], [0], "linear")])
    ('injective', None)
    >>> decide_network_1d([([[1], [-1]], [0, 0], "relu"), ([[1, 1]], [0], "linear")])[0]
    'not_injective'
    """
    from reference import fm_solve  # the other FM, on purpose

    layers = normalise(layers)
    if input_dim(layers) != 1:
        raise ValueError("decide_network_1d needs input dimension 1")
    if domain == "reals":
        lo, hi = None, None
    elif domain == "orthant":
        lo, hi = ZERO, None
    else:
        lo, hi = _frac(domain[0][0]), _frac(domain[1][0])
        if lo >= hi:
            return "injective", None  # empty or a single point
    bps: set = set()
    for k, (_, _, act) in enumerate(layers):
        if act != "relu":
            continue
        ends = [lo] + sorted(bps) + [hi]
        new = set()
        for a, b in zip(ends, ends[1:]):
            q1, q2 = _two_points(a, b)
            p1, p2 = _prefix_pre(layers, k, q1), _prefix_pre(layers, k, q2)
            for v1, v2 in zip(p1, p2):
                slope = (v2 - v1) / (q2 - q1)
                if slope != 0:
                    z = q1 - v1 / slope
                    if (a is None or z > a) and (b is None or z < b):
                        new.add(z)
        bps |= new
    ends = [lo] + sorted(bps) + [hi]
    pieces = []
    for a, b in zip(ends, ends[1:]):
        q1, q2 = _two_points(a, b)
        n1, n2 = evaluate(layers, [q1]), evaluate(layers, [q2])
        slope = [(v2 - v1) / (q2 - q1) for v1, v2 in zip(n1, n2)]
        offset = [v1 - s * q1 for v1, s in zip(n1, slope)]
        pieces.append((a, b, slope, offset, q1, q2))
    for _, _, s, _, q1, q2 in pieces:
        if all(v == 0 for v in s):
            assert is_network_collision(layers, domain, [q1], [q2])
            return "not_injective", ([q1], [q2])
    for i, j in combinations(range(len(pieces)), 2):
        ai, bi, si, ci = pieces[i][:4]
        aj, bj, sj, cj = pieces[j][:4]
        # variables (x, y); constraints v.(x, y) + const (<|<=) 0
        cons = [((ONE, -ONE), ZERO, True)]  # x - y < 0
        if ai is not None:
            cons.append(((-ONE, ZERO), ai, False))
        if bi is not None:
            cons.append(((ONE, ZERO), -bi, False))
        if aj is not None:
            cons.append(((ZERO, -ONE), aj, False))
        if bj is not None:
            cons.append(((ZERO, ONE), -bj, False))
        for sa, ca, sb, cb in zip(si, ci, sj, cj):
            # sa x + ca - sb y - cb = 0 as two inequalities
            cons.append(((sa, -sb), ca - cb, False))
            cons.append(((-sa, sb), cb - ca, False))
        sol = fm_solve(cons, 2)
        if sol is not None:
            x, y = [sol[0]], [sol[1]]
            assert is_network_collision(layers, domain, x, y), "1-d reference built a bad witness"
            return "not_injective", (x, y)
    return "injective", None
