"""Network differential tests: the engine against an independent reference.

tests/reference_network.py decides network injectivity by brute force (every
complete activation pattern with a closed, non-empty region; every pair of
patterns; exact Fourier-Motzkin on each pair system, docs/theory.md, section 8) and
never imports exact_inj.  For n = 1 it has a second, independent procedure
(breakpoints and pieces by plain evaluation), and for single layers
tests/reference.py is a third.  The reference is tested here first: against
those, against known answers, and under transformations that keep the answer.

Then, for every network of a seeded random mix (input dimension 1..3, two or
three layers, at most about 8 ReLUs; small integer weights, zero, repeated,
parallel and dependent rows, zero biases, tiny and huge magnitudes, and
structured networks that are injective although no layerwise argument shows
it, such as [I, -I] after ReLU([B; -B] z + b), ReLU(x) - ReLU(-x) and
x -> (ReLU(x), x); on R^n, the orthant and boxes, some degenerate) the
engine (``exact_inj.verify(..., milp="none", domain=...)``) must
- decide it (no "unknown": these networks are small, docs/theory.md, section 6),
- agree with the reference,
- emit a certificate that ``exact_inj.check`` accepts, and
- for "not_injective", give x != y inside the domain that collide under the
  reference's own exact evaluation.

The mix is asserted: at least 30% of the cases are injective, and at least
20% are decided by the engine's end-to-end route (``route == "end_to_end"``:
the layerwise route fails on them), so that a generator change cannot
quietly turn this into a test of the layerwise route.

The default run is seeded and small (CI_COUNT networks); the slow-marked run
takes FULL_COUNT networks from another seed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from reference import box_constraints, fm_solve, rank, reference_decide_on
from reference_network import (
    decide_network,
    decide_network_1d,
    evaluate,
    fm_solve_int,
    in_domain,
    is_network_collision,
    patterns,
)

F = Fraction
TIME_LIMIT = 60  # seconds per network for the engine

CI_SEED, CI_COUNT = 20260601, 120
FULL_SEED, FULL_COUNT = 8_675_309, 3000
MIN_INJECTIVE = 0.30
MIN_END_TO_END = 0.20
MAX_RELUS = 8


# --------------------------------------------------------------------------
# the network generator
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NetCase:
    kind: str
    layers: tuple  # ((W as tuple of tuples of Fraction, b, act), ...)
    domain: object  # "reals", "orthant" or (lower tuple, upper tuple)

    @property
    def n(self) -> int:
        return len(self.layers[0][0][0])

    @property
    def relus(self) -> int:
        return sum(len(W) for W, _, act in self.layers if act == "relu")

    @property
    def domain_kind(self) -> str:
        if isinstance(self.domain, str):
            return self.domain
        lo, up = self.domain
        return "box (degenerate)" if any(l == u for l, u in zip(lo, up)) else "box"

    def engine_network(self):
        from exact_inj.model import Layer, Network

        return Network(tuple(Layer.from_rows([list(r) for r in W], list(b), activation=act)
                             for W, b, act in self.layers))

    def engine_domain(self):
        from exact_inj.model.domain import Domain

        if self.domain == "reals":
            return Domain()
        if self.domain == "orthant":
            return Domain.orthant()
        return Domain.box(list(self.domain[0]), list(self.domain[1]))

    def repro(self) -> str:
        """A paste-able reproducer for failure messages."""
        layers = ", ".join(
            f"Layer.from_rows({[[str(v) for v in r] for r in W]}, {[str(v) for v in b]}, activation={act!r})"
            for W, b, act in self.layers
        )
        if self.domain == "reals":
            dom = "Domain()"
        elif self.domain == "orthant":
            dom = "Domain.orthant()"
        else:
            dom = f"Domain.box({[str(v) for v in self.domain[0]]}, {[str(v) for v in self.domain[1]]})"
        return f"Network(({layers},)), {dom}  # kind={self.kind}"


def _int(rng, lo=-3, hi=3) -> Fraction:
    return F(int(rng.integers(lo, hi + 1)))


def _rat(rng, scale=2.0, max_den=3) -> Fraction:
    den = int(rng.integers(1, max_den + 1))
    return F(int(round(rng.normal() * scale * den)), den)


def _rows(rng, m, n, style):
    if style == "int":
        return [[_int(rng) for _ in range(n)] for _ in range(m)]
    if style == "tiny_int":  # entries in {-1, 0, 1}: many exact degeneracies
        return [[_int(rng, -1, 1) for _ in range(n)] for _ in range(m)]
    return [[_rat(rng) for _ in range(n)] for _ in range(m)]


def _bias(rng, m, style):
    if style == "zero":
        return [F(0)] * m
    if style == "int":
        return [_int(rng, -2, 2) for _ in range(m)]
    return [_rat(rng, 1.5, 4) for _ in range(m)]


def _invertible(rng, n, style="int"):
    while True:
        B = _rows(rng, n, n, style)
        if rank(B, n) == n:
            return B


def _singular(rng, n):
    """A singular n x n matrix (n >= 1): its last row depends on the others."""
    B = _rows(rng, n, n, "int")
    if n == 1:
        return [[F(0)]]
    c = [_int(rng, -2, 2) for _ in range(n - 1)]
    B[-1] = [sum((c[i] * B[i][k] for i in range(n - 1)), F(0)) for k in range(n)]
    return B


def _eye(n):
    return [[F(int(i == j)) for j in range(n)] for i in range(n)]


def _matmul(A, B):
    return [[sum((a * B[k][j] for k, a in enumerate(row)), F(0)) for j in range(len(B[0]))] for row in A]


def _degenerate(rng, W, b):
    """Zero, duplicate, parallel (either sign) or dependent rows, in place."""
    m = len(W)
    if m < 2:
        return
    i, j = (int(v) for v in rng.choice(m, size=2, replace=False))
    r = rng.random()
    if r < 0.2:
        W[i] = [F(0)] * len(W[i])
        if rng.random() < 0.5:
            b[i] = F(0)
    elif r < 0.45:
        W[i] = list(W[j])
        b[i] = b[j] if rng.random() < 0.5 else b[i]
    elif r < 0.75:
        s = rng.choice([F(2), F(1, 2), F(-1), F(-3)])
        W[i] = [s * v for v in W[j]]
    elif m >= 3:
        k = int(next(v for v in rng.permutation(m) if v not in (i, j)))
        W[i] = [u + v for u, v in zip(W[j], W[k])]


def _magnify(rng, W, b):
    """Scale one row (and its bias) by a tiny or huge power of ten.

    For a ReLU row this never changes injectivity (ReLU(s t) = s ReLU(t) for
    s > 0 and the row's own output just scales), but it stresses the arithmetic."""
    i = int(rng.integers(len(W)))
    s = rng.choice([F(1, 10**9), F(1, 10**5), F(10**5), F(10**9)])
    W[i] = [s * v for v in W[i]]
    b[i] = s * b[i]


def _pm(B, b_plus, b_minus):
    """The layer ReLU([B; -B] z + [b_plus; b_minus])."""
    return [list(r) for r in B] + [[-v for v in r] for r in B], list(b_plus) + list(b_minus)


def _pm_biases(rng, n, broken_p):
    """b, b' with b_k + b'_k >= 0 (so ReLU(u + b) - ReLU(-u + b') is strictly
    increasing), or, with probability broken_p, one pair with b_k + b'_k < 0
    (a flat stretch: not injective)."""
    style = rng.choice(["zero", "int", "rat"], p=[0.35, 0.4, 0.25])
    bp = _bias(rng, n, style)
    slack = [F(0) if style == "zero" or rng.random() < 0.4 else abs(_rat(rng, 1.0, 3)) for _ in range(n)]
    if rng.random() < broken_p:
        slack[int(rng.integers(n))] = -rng.choice([F(1, 10**6), F(1, 3), F(1), F(4)])
    return bp, [-bp[k] + slack[k] for k in range(n)]


def _i_minus_i(n):
    return [[F(1) if j == i else F(-1) if j == i + n else F(0) for j in range(2 * n)] for i in range(n)]


def _gen_pm_identity(rng):
    """[I, -I] C after ReLU([B; -B] z + b): C (B z + const) piecewise, which is
    injective iff B and C are invertible and the biases leave no flat stretch.
    Layerwise reasoning fails: the linear end has rank n < 2n."""
    n = int(rng.integers(1, 4))
    B = _invertible(rng, n, rng.choice(["int", "tiny_int", "rat"])) if rng.random() < 0.88 else _singular(rng, n)
    W1, b1 = _pm(B, *_pm_biases(rng, n, 0.2))
    E = _i_minus_i(n)
    layers = [(W1, b1, "relu")]
    r = rng.random()
    if r < 0.4 or n == 3:
        C = _invertible(rng, n) if rng.random() < 0.5 else _eye(n)
        layers.append((_matmul(C, E), _bias(rng, n, rng.choice(["zero", "int"])), "linear"))
    elif r < 0.75:
        # depth 3: the identity trick twice, the middle one folded into a ReLU
        # layer: ReLU([C; -C] (E h) + g), then [I, -I].
        C = _invertible(rng, n) if rng.random() < 0.85 else _singular(rng, n)
        W2, b2 = _pm(_matmul(C, E), *_pm_biases(rng, n, 0.2))
        W2 = [list(r) for r in W2]
        layers.append((W2, b2, "relu"))
        layers.append((_i_minus_i(n), [F(0)] * n, "linear"))
    else:
        # a final ReLU on C (B z + const) + shift: injective only where no
        # coordinate is cut at 0 -- on R^n never, on a far box maybe.
        C = _invertible(rng, n)
        layers.append((_matmul(C, E), _bias(rng, n, "int"), "relu"))
    return layers


def _gen_relu_minus_relu(rng):
    """x -> ReLU(D x + b) - ReLU(-D' x + b') coordinatewise (D, D' diagonal):
    with positive scalings and b + b' >= 0 a strictly increasing map, else a
    fold or a flat stretch; optionally followed by a linear mix."""
    n = int(rng.integers(1, 4))
    d = [F(int(rng.integers(1, 4)), int(rng.integers(1, 3))) for _ in range(n)]
    e = [F(int(rng.integers(1, 4)), int(rng.integers(1, 3))) for _ in range(n)]
    if rng.random() < 0.2:
        e[int(rng.integers(n))] *= -1  # ReLU(x) - ReLU(x): flat, or a fold
    bp, bm = _pm_biases(rng, n, 0.15)
    W1 = [[d[i] if j == i else F(0) for j in range(n)] for i in range(n)] + \
         [[-e[i] if j == i else F(0) for j in range(n)] for i in range(n)]
    W2 = _i_minus_i(n)
    if rng.random() < 0.4:
        W2 = _matmul(_invertible(rng, n), W2)
    return [(W1, bp + bm, "relu"), (W2, [F(0)] * n, "linear")]


def _gen_relu_and_x(rng):
    """x -> (ReLU(x + b), x + b) built as [[I, 0], [I, -I]] after ReLU([I; -I] x + [b; -b]),
    then optionally mixed by a random linear map (injective or not) or cut
    by one more ReLU layer."""
    n = int(rng.integers(1, 3))
    b = _bias(rng, n, rng.choice(["zero", "int"]))
    W1, b1 = _pm(_eye(n), b, [-v for v in b])
    top = [[F(int(i == j)) for j in range(2 * n)] for i in range(n)]
    W2 = top + _i_minus_i(n)
    r = rng.random()
    if r < 0.4:
        return [(W1, b1, "relu"), (W2, [F(0)] * (2 * n), "linear")]
    if r < 0.75:
        M = _rows(rng, int(rng.integers(n, 2 * n + 1)), 2 * n, "int")
        return [(W1, b1, "relu"), (_matmul(M, W2), _bias(rng, len(M), "int"), "linear")]
    # one more ReLU layer on (ReLU(x + b), x + b): e.g. (ReLU(x+b), ReLU(x+b+c))
    W3 = [list(r) for r in W2]
    b3 = [F(0)] * n + [_int(rng, -2, 3) for _ in range(n)]
    return [(W1, b1, "relu"), (W3, b3, "relu")]


def _gen_fold(rng):
    """|u|-like: [I, I] (or a mix of + and -) after ReLU([B; -B] z + b): a fold on
    R^n, but often injective on the orthant or a box on one side of it."""
    n = int(rng.integers(1, 4))
    B = _invertible(rng, n, "int")
    W1, b1 = _pm(B, *_pm_biases(rng, n, 0.1))
    signs = [F(1) if rng.random() < 0.6 else F(-1) for _ in range(n)]
    W2 = [[F(1) if j == i else signs[i] if j == i + n else F(0) for j in range(2 * n)] for i in range(n)]
    return [(W1, b1, "relu"), (W2, [F(0)] * n, "linear")]


def _gen_layerwise(rng):
    """An often-injective first layer ([B; -D B] with suitable biases, or [I; -I]
    plus rows), then ReLU(I h), a full-rank linear end, or a random wide ReLU
    layer: the layerwise route has a chance here."""
    n = int(rng.integers(1, 3))
    B = _invertible(rng, n, "int")
    D = [F(int(rng.integers(1, 4)), int(rng.integers(1, 3))) for _ in range(n)]
    bp = _bias(rng, n, rng.choice(["zero", "int"]))
    bm = [-D[k] * bp[k] + (F(0) if rng.random() < 0.5 else abs(_rat(rng, 1.0, 2))) for k in range(n)]
    W1 = [list(r) for r in B] + [[-D[i] * v for v in B[i]] for i in range(n)]
    b1 = bp + bm
    if rng.random() < 0.3:
        k = int(rng.integers(2 * n))
        b1[k] -= F(1)  # may break the bias condition
    m = len(W1)
    r = rng.random()
    if r < 0.35:
        W2, b2, act = _eye(m), _bias(rng, m, rng.choice(["zero", "int"])), "relu"
    elif r < 0.7:
        W2, act = _rows(rng, int(rng.integers(max(1, m - 1), m + 2)), m, "int"), "linear"
        b2 = _bias(rng, len(W2), rng.choice(["zero", "int"]))
    else:
        k = min(MAX_RELUS - m, int(rng.integers(m, 2 * m + 1)))
        W2, b2, act = _rows(rng, k, m, "int"), _bias(rng, k, "int"), "relu"
    return [(W1, b1, "relu"), (W2, b2, act)]


def _gen_random(rng):
    """Random layers, depth 2 or 3, at most MAX_RELUS ReLUs, small integer or
    rational weights, with degeneracies and magnitudes mixed in."""
    n = int(rng.integers(1, 4))
    depth = int(rng.integers(2, 4))
    last = "linear" if rng.random() < 0.6 else "relu"
    budget = MAX_RELUS
    layers = []
    width = n
    style = rng.choice(["int", "tiny_int", "rat"], p=[0.5, 0.25, 0.25])
    for k in range(depth):
        act = last if k == depth - 1 else ("relu" if rng.random() < 0.9 else "linear")
        if act == "relu":
            rest = depth - 1 - k  # later ReLU layers need at least one neuron each
            lo, hi = 1, max(1, budget - rest)
            m = int(rng.integers(lo, min(hi, 2 * width + 2) + 1))
            if k == 0 and rng.random() < 0.5:
                m = min(hi, max(m, 2 * n))  # a chance of an injective first layer
            budget -= m
        else:
            m = int(rng.integers(max(1, n - 1), n + 3))
        W = _rows(rng, m, width, style)
        b = _bias(rng, m, rng.choice(["zero", "int", "rat"], p=[0.3, 0.4, 0.3]))
        if rng.random() < 0.35:
            _degenerate(rng, W, b)
        if act == "relu" and rng.random() < 0.1:
            _magnify(rng, W, b)
        layers.append((W, b, act))
        width = m
    return layers


def _gen_linear_first(rng):
    """A linear first layer (invertible or not) folded into a ReLU layer, then a
    pm-identity end: only exact folding and end-to-end reasoning see through it."""
    layers = _gen_pm_identity(rng) if rng.random() < 0.6 else _gen_relu_minus_relu(rng)
    n = len(layers[0][0][0])
    A = _invertible(rng, n) if rng.random() < 0.8 else _singular(rng, n)
    return [(A, _bias(rng, n, "int"), "linear")] + layers


KINDS = {
    "pm_identity": (0.24, _gen_pm_identity),
    "relu_minus_relu": (0.08, _gen_relu_minus_relu),
    "relu_and_x": (0.08, _gen_relu_and_x),
    "fold": (0.1, _gen_fold),
    "layerwise": (0.14, _gen_layerwise),
    "random": (0.3, _gen_random),
    "linear_first": (0.06, _gen_linear_first),
}


def _domain(rng, n):
    r = rng.random()
    if r < 0.6:
        return "reals"
    if r < 0.8:
        return "orthant"
    centre = [_int(rng, -3, 3) for _ in range(n)]
    width = [F(int(rng.integers(0, 5)), int(rng.integers(1, 3))) for _ in range(n)]
    lo = [c - w / 2 for c, w in zip(centre, width)]
    up = [c + w / 2 for c, w in zip(centre, width)]
    if rng.random() < 0.25:  # one degenerate side
        k = int(rng.integers(n))
        up[k] = lo[k]
    if all(l == u for l, u in zip(lo, up)):
        up[0] = lo[0] + 1  # keep at least one free coordinate
    return (tuple(lo), tuple(up))


def _freeze(layers):
    return tuple((tuple(tuple(F(v) for v in r) for r in W), tuple(F(v) for v in b), act) for W, b, act in layers)


def generate_network_cases(seed: int, count: int) -> list[NetCase]:
    rng = np.random.default_rng(seed)
    names = list(KINDS)
    probs = np.array([KINDS[k][0] for k in names])
    probs = probs / probs.sum()
    cases = []
    while len(cases) < count:
        kind = str(rng.choice(names, p=probs))
        layers = KINDS[kind][1](rng)
        case = NetCase(kind, _freeze(layers), None)
        if case.relus > MAX_RELUS or not 2 <= len(layers) <= 4:
            continue
        cases.append(NetCase(kind, case.layers, _domain(rng, case.n)))
    return cases


# --------------------------------------------------------------------------
# the reference on the mix
# --------------------------------------------------------------------------


_REF_CACHE: dict = {}


def reference_answers(seed, count):
    """[(verdict, witness, seconds)] for the seeded mix, computed once."""
    key = (seed, count)
    if key not in _REF_CACHE:
        cases = generate_network_cases(seed, count)
        refs = []
        for c in cases:
            t0 = time.perf_counter()
            verdict, wit = decide_network(c.layers, c.domain)
            refs.append((verdict, wit, time.perf_counter() - t0))
        _REF_CACHE[key] = (cases, refs)
    return _REF_CACHE[key]


def mix_report(cases, refs) -> tuple[str, float]:
    total = len(cases)
    inj = sum(r[0] == "injective" for r in refs)
    secs = [r[2] for r in refs]
    lines = [f"{total} networks: injective {inj} ({inj / total:.1%}); reference {sum(secs):.1f} s, "
             f"slowest {max(secs):.2f} s"]
    for attr in ("kind", "domain_kind", "n"):
        tot = Counter(getattr(c, attr) for c in cases)
        ij = Counter(getattr(c, attr) for c, r in zip(cases, refs) if r[0] == "injective")
        for k in sorted(tot, key=str):
            lines.append(f"  {attr} {str(k):18s} {tot[k]:5d}  injective {ij[k]:5d} ({ij[k] / tot[k]:.0%})")
    return "\n".join(lines), inj / total


def check_mix(seed, count):
    cases, refs = reference_answers(seed, count)
    report, inj_frac = mix_report(cases, refs)
    print("\n" + report)
    assert inj_frac >= MIN_INJECTIVE, "too few injective networks\n" + report
    for c, (verdict, wit, _) in zip(cases, refs):
        if verdict == "not_injective":
            assert is_network_collision(c.layers, c.domain, *wit), c.repro()
    assert {c.n for c in cases} == {1, 2, 3}
    assert {c.domain_kind for c in cases} >= {"reals", "orthant", "box"}
    assert all(c.relus <= MAX_RELUS for c in cases)


# --------------------------------------------------------------------------
# the reference itself
# --------------------------------------------------------------------------


def _neg(B):
    return [list(r) for r in B] + [[-v for v in r] for r in B]


KNOWN = [
    # (layers, domain, injective?, why)
    ([([[1]], [0], "relu"), ([[1]], [0], "linear")], "reals", False, "ReLU on R"),
    ([([[1]], [0], "relu"), ([[1]], [0], "linear")], "orthant", True, "ReLU on [0, oo)"),
    ([([[1]], [-1], "relu"), ([[1]], [0], "linear")], "orthant", False, "ReLU(x - 1) on [0, oo): flat on [0, 1]"),
    ([([[1], [-1]], [0, 0], "relu"), ([[1, -1]], [0], "linear")], "reals", True, "ReLU(x) - ReLU(-x) = x"),
    ([([[1], [-1]], [0, 0], "relu"), ([[1, 1]], [0], "linear")], "reals", False, "ReLU(x) + ReLU(-x) = |x|"),
    ([([[1], [-1]], [0, 0], "relu"), ([[1, 1]], [0], "linear")], ([F(-3)], [F(0)]), True, "|x| on [-3, 0]"),
    ([([[1], [-1]], [0, 0], "relu"), ([[1, 1]], [0], "linear")], ([F(-1)], [F(2)]), False, "|x| on [-1, 2]"),
    ([([[1], [-1]], [1, -2], "relu"), ([[1, -1]], [0], "linear")], "reals", False,
     "ReLU(x + 1) - ReLU(-x - 2): flat on [-2, -1]"),
    ([([[1], [-1]], [1, -1], "relu"), ([[1, -1]], [0], "linear")], "reals", True,
     "ReLU(x + 1) - ReLU(-x - 1) = x + 1 (bias sum 0: the edge)"),
    ([(_neg([[2, 1], [1, 1]]), [1, -2, 0, 3], "relu"), (_i_minus_i(2), [0, 0], "linear")], "reals", True,
     "[I, -I] after ReLU([B; -B] z + b), B invertible, b + b' >= 0"),
    ([(_neg([[2, 1], [4, 2]]), [0, 0, 0, 0], "relu"), (_i_minus_i(2), [0, 0], "linear")], "reals", False,
     "[I, -I] after ReLU([B; -B] z), B singular"),
    ([(_neg(_eye(2)), [0] * 4, "relu"), ([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, -1, 0], [0, 1, 0, -1]], [0] * 4,
                                          "linear")], "reals", True, "x -> (ReLU(x), x)"),
    ([(_neg(_eye(2)), [0] * 4, "relu"), ([[1, 0, 0, 0], [0, 1, 0, 0]], [0] * 2, "linear")], "reals", False,
     "x -> ReLU(x)"),
    ([([[1, 0], [0, 1]], [0, 0], "relu"), ([[1, 0], [0, 1]], [0, 0], "relu")], ([F(1), F(1)], [F(2), F(3)]),
     True, "ReLU twice on a positive box"),
    ([([[1, 1]], [0], "relu"), ([[1]], [0], "linear")], ([F(0), F(5)], [F(1), F(5)]), True,
     "x1 + x2 on a degenerate box"),
    ([([[1, 1]], [0], "relu"), ([[1]], [0], "linear")], ([F(0), F(0)], [F(1), F(1)]), False, "x1 + x2 on a square"),
    ([([[0], [1]], [0, 0], "relu"), ([[1, 0]], [0], "linear")], "reals", False, "a zero row carries nothing"),
    ([([[1], [2]], [0, -1], "relu"), ([[1, -1]], [0], "linear")], "reals", False,
     "ReLU(x) - ReLU(2x - 1): rises to 1/2, then falls"),
    ([([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], [0, 0, 0, 0], "relu"), ([[1, 0, 0, 0], [0, 1, 0, 0],
                                                                              [0, 0, 1, 0]], [0, 0, 0], "linear")],
     "orthant", True, "3 inputs: ReLU then drop a row, on the orthant"),
]


@pytest.mark.parametrize("layers, domain, expected, why", KNOWN, ids=[k[3] for k in KNOWN])
def test_reference_known_answers(layers, domain, expected, why):
    verdict, wit = decide_network(layers, domain)
    assert (verdict == "injective") == expected, why
    if wit is not None:
        assert is_network_collision(layers, domain, *wit)
    if len(layers[0][0][0]) == 1:
        assert decide_network_1d(layers, domain)[0] == verdict


def test_fm_solve_int_agrees_with_reference_fm():
    """The integer FM used by the network reference against tests/reference.py's."""
    rng = np.random.default_rng(5)
    for _ in range(400):
        nv = int(rng.integers(1, 4))
        cons = [(tuple(_int(rng, -2, 2) for _ in range(nv)), _rat(rng, 2.0, 3), bool(rng.random() < 0.4))
                for _ in range(int(rng.integers(1, 9)))]
        a, b = fm_solve_int(cons, nv), fm_solve(cons, nv)
        assert (a is None) == (b is None), cons
        # fm_solve_int checks its own solution; check it again here.
        if a is not None:
            for row, c, strict in cons:
                val = sum((x * y for x, y in zip(row, a)), F(0)) + c
                assert val < 0 if strict else val <= 0


def test_reference_patterns_cover_sampled_points():
    """Every sampled point lies in some enumerated closed region, and there the
    region's affine map gives N(x)."""
    rng = np.random.default_rng(11)
    for c in generate_network_cases(31, 40):
        pats = list(patterns(c.layers, c.domain))
        for _ in range(5):
            x = [_rat(rng, 3.0, 4) for _ in range(c.n)]
            if not in_domain(c.domain, x):
                continue
            hits = [out for _, cons, out in pats
                    if all(sum((F(a) * v for a, v in zip(row, x)), F(0)) + k <= 0 for row, k in cons)]
            assert hits, c.repro()
            for out in hits:
                assert [sum((a * v for a, v in zip(row, x)), k) for row, k in out] == evaluate(c.layers, x)


def test_reference_single_layers_agree_with_layer_reference():
    """A one-layer network: the pattern-pair reference against tests/reference.py."""
    rng = np.random.default_rng(3)
    for _ in range(150):
        n = int(rng.integers(1, 4))
        m = int(rng.integers(1, 7))
        W = _rows(rng, m, n, rng.choice(["int", "tiny_int"]))
        b = _bias(rng, m, rng.choice(["zero", "int", "rat"]))
        if rng.random() < 0.4:
            _degenerate(rng, W, b)
        dom = _domain(rng, n)
        if dom == "reals":
            G, h = [], []
        elif dom == "orthant":
            G, h = box_constraints([F(0)] * n, [None] * n)
        else:
            G, h = box_constraints(list(dom[0]), list(dom[1]))
        expected, _ = reference_decide_on(W, b, G, h, n)
        got, wit = decide_network([(W, b, "relu")], dom)
        assert (got == "injective") == expected, (W, b, dom)


def test_reference_closed_and_full_pieces_agree():
    """Pairing every closed non-empty region (the plain method) and pairing only
    the full-dimensional ones (the default, faster) give the same answers."""
    cases = [c for c in generate_network_cases(77, 100) if c.relus <= 6]
    assert len(cases) > 50
    for c in cases:
        full = decide_network(c.layers, c.domain, pieces="full")[0]
        assert decide_network(c.layers, c.domain, pieces="closed")[0] == full, c.repro()


def test_reference_1d_procedures_agree():
    cases = [c for c in generate_network_cases(2024, 400) if c.n == 1]
    assert len(cases) > 60
    for c in cases:
        assert decide_network(c.layers, c.domain)[0] == decide_network_1d(c.layers, c.domain)[0], c.repro()


def _append_invertible(layers, rng):
    m = len(layers[-1][0])
    return list(layers) + [(_invertible(rng, m), _bias(rng, m, "int"), "linear")]


def _permute_hidden(layers, rng):
    """Permute the outputs of the first layer and the inputs of the second."""
    W1, b1, a1 = layers[0]
    W2, b2, a2 = layers[1]
    p = rng.permutation(len(W1))
    return [([W1[i] for i in p], [b1[i] for i in p], a1),
            ([[row[i] for i in p] for row in W2], b2, a2)] + list(layers[2:])


def _scale_hidden(layers, rng):
    """Scale each first-layer neuron by s > 0 and the next layer's column by 1/s."""
    W1, b1, a1 = layers[0]
    W2, b2, a2 = layers[1]
    s = [F(int(rng.integers(1, 6)), int(rng.integers(1, 6))) for _ in W1]
    return [([[si * v for v in r] for si, r in zip(s, W1)], [si * v for si, v in zip(s, b1)], a1),
            ([[v / si for v, si in zip(row, s)] for row in W2], b2, a2)] + list(layers[2:])


def test_reference_metamorphic():
    """Transformations that keep the answer: an invertible linear layer at the
    end, permuting and positively rescaling hidden neurons."""
    rng = np.random.default_rng(17)
    cases = generate_network_cases(99, 40)
    for c in cases:
        base = decide_network(c.layers, c.domain)[0]
        for f in (_append_invertible, _permute_hidden, _scale_hidden):
            assert decide_network(f(c.layers, rng), c.domain)[0] == base, (f.__name__, c.repro())


def test_reference_is_fast_on_eight_relus():
    """The brief: about 8 ReLUs on up to 3 inputs in well under a couple of seconds."""
    worst = 0.0
    cases = [c for c in generate_network_cases(4242, 150) if c.relus >= 6]
    assert cases
    for c in cases:
        t0 = time.perf_counter()
        decide_network(c.layers, c.domain)
        worst = max(worst, time.perf_counter() - t0)
    assert worst < 2.0, worst


def test_generated_mix_ci():
    check_mix(CI_SEED, CI_COUNT)


@pytest.mark.slow
def test_generated_mix_full():
    check_mix(FULL_SEED, FULL_COUNT)


# --------------------------------------------------------------------------
# the engine comparison
# --------------------------------------------------------------------------


_ENGINE_CACHE: dict = {}


def engine_run(engine, seed, count):
    """(failures, stats, routes) over the seeded mix.

    failures: disagreements, invalid certificates, bad witnesses, unknowns,
    exceptions."""
    key = (seed, count)
    if key in _ENGINE_CACHE:
        return _ENGINE_CACHE[key]
    from exact_inj.certify.schema import Certificate

    cases, refs = reference_answers(seed, count)
    failures, stats, routes = [], Counter(), Counter()
    slowest = 0.0
    t_all = time.perf_counter()
    for c, (expected, _, _) in zip(cases, refs):
        net, dom = c.engine_network(), c.engine_domain()
        t0 = time.perf_counter()
        try:
            v = engine.verify(net, time_limit=TIME_LIMIT, milp="none", domain=dom)
        except Exception as exc:
            failures.append(f"verify raised {exc!r}: {c.repro()}")
            continue
        slowest = max(slowest, time.perf_counter() - t0)
        status = v.status.value
        stats[status] += 1
        routes[(status, v.route)] += 1
        if status == "unknown":
            failures.append(f"unknown ({v.route}: {v.reason}); reference says {expected}: {c.repro()}")
            continue
        if status != expected:
            failures.append(f"engine said {status} ({v.route}), reference says {expected}: {c.repro()}")
            continue
        cert = v.certificate
        if cert is None or cert.network != net or cert.domain != dom:
            failures.append(f"certificate missing or about another network/domain: {c.repro()}")
            continue
        try:
            res = engine.check(cert)
            again = engine.check(Certificate.from_json(json.loads(json.dumps(cert.to_json()))))
        except Exception as exc:
            failures.append(f"check raised {exc!r} on a {status} certificate: {c.repro()}")
            continue
        if not (res.valid and again.valid):
            failures.append(f"certificate rejected ({res.reason} / {again.reason}): {c.repro()}")
        if status == "not_injective":
            w = v.witness
            if w is None or not (in_domain(c.domain, w.x) and in_domain(c.domain, w.y)):
                failures.append(f"witness {w!r} is not inside the domain: {c.repro()}")
            elif not is_network_collision(c.layers, c.domain, w.x, w.y):
                failures.append(f"witness {w!r} does not collide under exact evaluation: {c.repro()}")
    stats["slowest_s"] = round(slowest, 2)
    stats["engine_s"] = round(time.perf_counter() - t_all, 1)
    _ENGINE_CACHE[key] = (failures, stats, routes)
    return _ENGINE_CACHE[key]


def _run_differential(engine, seed, count):
    cases, refs = reference_answers(seed, count)
    report, _ = mix_report(cases, refs)
    failures, stats, routes = engine_run(engine, seed, count)
    by_route = ", ".join(f"{s}/{r}: {k}" for (s, r), k in sorted(routes.items()))
    print(f"\n{report}\nengine on {count} networks: {dict(stats)}\nby verdict/route: {by_route}")
    assert not failures, f"{len(failures)} failures, first ones:\n" + "\n".join(failures[:15])
    inj = sum(r[0] == "injective" for r in refs)
    e2e = sum(k for (s, r), k in routes.items() if r == "end_to_end")
    assert inj >= MIN_INJECTIVE * count, report
    assert e2e >= MIN_END_TO_END * count, f"only {e2e} of {count} decided end to end\n{by_route}"
    assert stats["unknown"] == 0
    assert stats["injective"] == inj and stats["not_injective"] == count - inj


def test_engine_network_differential_ci(engine):
    _run_differential(engine, CI_SEED, CI_COUNT)


@pytest.mark.slow
def test_engine_network_differential_full(engine):
    _run_differential(engine, FULL_SEED, FULL_COUNT)
