"""Known answers: curated instances and closed forms, each verdict checked three ways.

For every decided case this file asserts
1. the status is the known one,
2. the certificate passes ``exact_inj.check``, and is about the very layer given,
3. for a witness, an evaluation written here (plain Fractions, independent of
   exact_inj.model) shows x != y and equal outputs.

The known answers come from theory.md sections 2, 4 and 7 and from
instances/expected.json; none of them is computed with the engine.
"""

from __future__ import annotations

import itertools
import json
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest
import sympy

import exact_inj
import reference
from exact_inj.certify.schema import ConvStructuralProof, StructuralProof, TreeProof, Witness
from exact_inj.model import Layer, Network

INSTANCES = Path(__file__).resolve().parent.parent / "instances"
EXPECTED = json.loads((INSTANCES / "expected.json").read_text())

INJ, NOT = "injective", "not_injective"


# --------------------------------------------------------------------------- helpers


def _frac(v) -> F:
    # JSON numbers arrive as their text (parse_float/parse_int below), strings
    # as "p/q" or decimals: Fraction reads both exactly.
    assert not isinstance(v, (bool, float)), v
    return F(v.strip()) if isinstance(v, str) else F(v)


def raw_layer(path: Path) -> tuple[list[list[F]], list[F]]:
    """Read a one-layer instance without exact_inj: JSON numbers kept as text."""
    obj = json.loads(path.read_text(), parse_float=str, parse_int=str)
    (layer,) = obj["layers"]
    assert layer.get("activation", "relu") == "relu"
    if layer.get("type") == "conv":
        # A conv layer's dense operator comes from exact_inj.model.conv, itself tested
        # against a direct numpy convolution in tests/test_conv.py.
        dense = exact_inj.load_network(path).layers[0]
        return [list(r) for r in dense.weight], list(dense.bias)
    W = [[_frac(v) for v in row] for row in layer["weight"]]
    b = [_frac(v) for v in layer["bias"]] if "bias" in layer else [F(0)] * len(W)
    return W, b


def own_eval(W, b, x) -> list[F]:
    """ReLU(Wx + b) in plain Fractions (independent of Layer.apply)."""
    out = []
    for row, bi in zip(W, b):
        a = sum((F(w) * F(xi) for w, xi in zip(row, x)), F(bi))
        out.append(a if a > 0 else F(0))
    return out


def net_of(W, b=None) -> Network:
    return Network((Layer.from_rows(W, b),))


def decide(W, b, expected: str, route: str | None = None):
    """verify + check + (witness) own re-evaluation; returns the verdict."""
    b = [0] * len(W) if b is None else b
    v = exact_inj.verify(net_of(W, b), time_limit=60)
    assert_verdict(v, [[F(x) for x in r] for r in W], [F(x) for x in b], expected)
    if route is not None:
        assert v.route == route, (v.route, v.reason)
    return v


def assert_verdict(v, W, b, expected: str) -> None:
    assert v.status.value == expected, f"expected {expected}, got {v.status.value}: {v.reason}"
    cert = v.certificate
    assert cert is not None
    res = exact_inj.check(cert)
    assert res.valid, res.reason
    # The certificate must speak about this very layer, not some other one.
    (layer,) = cert.network.layers
    assert [list(r) for r in layer.weight] == W and list(layer.bias) == b
    if expected == NOT:
        w = cert.evidence
        assert isinstance(w, Witness)
        assert len(w.x) == len(w.y) == len(W[0])
        assert list(w.x) != list(w.y)
        assert own_eval(W, b, w.x) == own_eval(W, b, w.y)
        # Also through the package's own evaluator (same answer, other code).
        assert layer.apply(w.x) == layer.apply(w.y)
    else:
        assert isinstance(cert.evidence, (TreeProof, StructuralProof, ConvStructuralProof))


def rank(rows) -> int:
    rows = [list(r) for r in rows]
    return len(sympy.Matrix(rows).rref()[1]) if rows else 0


def invertible_int(rng, n: int, lo: int = -3, hi: int = 4) -> list[list[int]]:
    while True:
        B = rng.integers(lo, hi, size=(n, n)).tolist()
        if sympy.Matrix(B).det() != 0:
            return B


def b_minus_db(rng, n: int):
    """Random invertible integer B and positive rational D: rows [B; -DB]."""
    B = invertible_int(rng, n)
    d = [F(int(rng.integers(1, 6)), int(rng.integers(1, 4))) for _ in range(n)]
    W = [[F(x) for x in r] for r in B] + [[-d[k] * x for x in B[k]] for k in range(n)]
    return B, d, W


# ------------------------------------------------------------ curated instances


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=lambda s: s.removesuffix(".json"))
def test_instance(name):
    expected = EXPECTED[name]["verdict"]
    assert expected in (INJ, NOT)
    path = INSTANCES / name
    W, b = raw_layer(path)
    v = exact_inj.verify(str(path), time_limit=60)
    assert_verdict(v, W, b, expected)


def test_expected_json_lists_every_instance():
    on_disk = {p.name for p in INSTANCES.glob("*.json")} - {"expected.json"}
    assert on_disk <= set(EXPECTED), f"instances without an expected verdict: {sorted(on_disk - set(EXPECTED))}"


# ------------------------------------------------------------ paper's Figure 2


def test_figure2_not_injective():
    decide([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]], None, NOT)


def test_figure2_injective():
    v = decide([[2, 1], [-2, 1], [-2, -1], [2, -1]], None, INJ)
    # It is [B; -B] up to row order, so the structural rule applies.
    assert v.route == "structural"


# ------------------------------------------------------------ identity and [I; -I]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_identity_is_not_injective(n):
    eye = [[int(i == j) for j in range(n)] for i in range(n)]
    v = decide(eye, None, NOT, route="instant")
    # Any collision of ReLU(x) needs a coordinate where both points are <= 0.
    w = v.witness
    assert any(a != c and a <= 0 and c <= 0 for a, c in zip(w.x, w.y))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_identity_and_minus_identity_is_injective(n):
    eye = [[int(i == j) for j in range(n)] for i in range(n)]
    decide(eye + [[-x for x in r] for r in eye], None, INJ)


# ------------------------------------------------------------ [B; -DB] (Corollary 2)


@pytest.mark.parametrize("seed", range(6))
def test_b_minus_db_bias_free_is_injective(seed):
    rng = np.random.default_rng(seed)
    n = 1 + seed % 4
    _, _, W = b_minus_db(rng, n)
    perm = rng.permutation(2 * n)
    decide([W[i] for i in perm], None, INJ)


@pytest.mark.parametrize("seed", range(6))
def test_b_minus_db_with_bias_condition_is_injective(seed):
    # d_k b_{i_k} + b_{j_k} >= 0 for every k, with equality for k = 0.
    rng = np.random.default_rng(100 + seed)
    n = 1 + seed % 4
    _, d, W = b_minus_db(rng, n)
    bB = [F(int(x)) for x in rng.integers(-3, 4, size=n)]
    slack = [F(0)] + [F(int(x), 2) for x in rng.integers(0, 4, size=n - 1)]
    bD = [-d[k] * bB[k] + slack[k] for k in range(n)]
    # The independent reference (tests/reference.py, an exhaustive activation-
    # pattern search) agrees with the known answer; then the engine must too.
    assert reference.reference_injective(W, bB + bD)
    v = decide(W, bB + bD, INJ)
    # The bias condition holds with equality for k = 0: the certificate must
    # still be a structural (or tree) proof that the checker accepted, naming
    # rows of this layer (decide checks both).
    assert isinstance(v.certificate.evidence, (StructuralProof, TreeProof))


@pytest.mark.parametrize("seed", range(6))
def test_b_minus_db_with_bias_breaking_it_is_not_injective(seed):
    rng = np.random.default_rng(200 + seed)
    n = 1 + seed % 4
    B, d, W = b_minus_db(rng, n)
    bB = [F(int(x)) for x in rng.integers(-3, 4, size=n)]
    bD = [-d[k] * bB[k] + 1 for k in range(n)]
    k = int(rng.integers(n))
    bD[k] = -d[k] * bB[k] - F(1, 100)  # d_k b_ik + b_jk = -1/100 < 0: a dead interval
    b = bB + bD

    # Our own collision, from the dead interval u_k in (b_jk/d_k, -b_ik) of u = Bx.
    lo, hi = bD[k] / d[k], -bB[k]
    assert lo < hi
    Binv = sympy.Matrix(B).inv()

    def x_of(u):
        return [F(str(c)) for c in Binv * sympy.Matrix([sympy.Rational(str(t)) for t in u])]

    u1 = [F(0)] * n
    u2 = [F(0)] * n
    u1[k], u2[k] = lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3
    x1, x2 = x_of(u1), x_of(u2)
    assert x1 != x2 and own_eval(W, b, x1) == own_eval(W, b, x2)

    decide(W, b, NOT)


# ------------------------------------------------------------ thin cells (docs/theory.md, section 6)

THIN = [[3, 1], [1, 2], [F(-3, 2), F(-1, 2)], [-2, -4]]  # [B; -DB], B = [[3,1],[1,2]], D = diag(1/2, 2)


def test_thin_cell_exact_is_injective():
    decide(THIN, None, INJ)
    # On the boundary of the bias condition: d_0 b_0 + b_2 = 1/2 - 1/2 = 0.
    decide(THIN, [1, 0, F(-1, 2), 0], INJ)


@pytest.mark.parametrize("k", [9, 30, 300])
@pytest.mark.parametrize("variant", ["minus", "plus", "bias"])
def test_thin_cell_broken_by_tiny_change(k, variant):
    eps = F(1, 10**k)
    W = [list(r) for r in THIN]
    b = [0, 0, 0, 0]
    if variant == "minus":
        W[2] = [F(-3, 2), F(-1, 2) - eps]  # m = 2n, no longer antiparallel: never injective
    elif variant == "plus":
        W[2] = [F(-3, 2), F(-1, 2) + eps]
    else:
        b = [1, 0, F(-1, 2) - eps, 0]  # d_0 b_0 + b_2 = -eps < 0
    decide(W, b, NOT)


# ------------------------------------------------------------ Lemma 1 (docs/theory.md, section 2)


def test_lemma1_counterexample_biased_layer_is_injective():
    v = decide([[1], [-1]], [1, -1], INJ)
    # Spot check the closed form x -> (x+1, 0) or (0, -(x+1)) on a grid.
    images = {tuple(own_eval([[1], [-1]], [1, -1], [F(t, 4)])) for t in range(-20, 21)}
    assert len(images) == 41
    assert v.route == "structural"


def test_lemma1_reduced_layer_is_not_injective():
    # W|_{b>=0} zeroes the row with b < 0: [1; 0], and the reduction drops the bias.
    v = decide([[1], [0]], [0, 0], NOT)
    assert v.route == "instant"
    # The independent reference agrees (both x <= 0 map to (0, 0)), and the
    # engine's witness lies where the lemma puts the collisions: x, y <= 0.
    assert not reference.reference_injective([[F(1)], [F(0)]], [F(0), F(0)])
    w = v.certificate.evidence
    assert w.x[0] <= 0 and w.y[0] <= 0, (w.x, w.y)


# ------------------------------------------------------------ dead zone


def test_dead_zone():
    W, b = [[1], [-1]], [-1, -1]
    v = decide(W, b, NOT)
    # Every collision of x -> (ReLU(x-1), ReLU(-x-1)) lies in [-1, 1].
    assert all(-1 <= t <= 1 for t in (*v.witness.x, *v.witness.y))
    # [B; -DB] with D = 1 but d b_0 + b_1 = -2 < 0: the structural rule must not fire.
    assert v.route != "structural"


# ------------------------------------------------------------ m < 2n (Corollary 2, with bias)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_fewer_than_2n_rows_never_injective(n):
    rng = np.random.default_rng(300 + n)
    for m in range(1, 2 * n):
        for _ in range(3):
            W = rng.integers(-4, 5, size=(m, n)).tolist()
            b = rng.integers(-5, 6, size=m).tolist()
            decide(W, b, NOT, route="instant")


# ------------------------------------------------------------ rank deficiency


@pytest.mark.parametrize("n,r", [(2, 1), (3, 2), (3, 1), (4, 2), (4, 1), (4, 3)])
def test_rank_deficient(n, r):
    rng = np.random.default_rng(400 + 10 * n + r)
    m = 2 * n + 3
    A = rng.integers(-3, 4, size=(m, r))
    C = rng.integers(-3, 4, size=(r, n))
    W = (A @ C).tolist()
    assert rank(W) < n
    b = rng.integers(-2, 3, size=m).tolist()
    v = decide(W, b, NOT, route="instant")
    assert "rank" in v.reason


def test_rank_deficient_rank_n_minus_2_bias_free():
    # rank 1 in R^3 (rank <= n - 2): the hyperplane list of this layer is empty.
    W = [[k, -2 * k, 3 * k] for k in (1, -1, 2, -3, 1, -2)]
    assert rank(W) == 1
    decide(W, None, NOT, route="instant")


def test_all_zero_layer():
    decide([[0, 0], [0, 0], [0, 0], [0, 0], [0, 0]], [1, 0, -1, 2, 0], NOT, route="instant")


# ------------------------------------------------------------ zero and duplicate rows

FIG2_INJ = [[2, 1], [-2, 1], [-2, -1], [2, -1]]
FIG2_NOT = [[2, 1], [-2, 2], ["-1.5", -2], [2, -1]]


@pytest.mark.parametrize("zero_bias", [[0], [3], [-2], [0, 3, -2]])
def test_zero_rows_keep_injective(zero_bias):
    W = FIG2_INJ + [[0, 0]] * len(zero_bias)
    decide(W, [0] * 4 + zero_bias, INJ)


@pytest.mark.parametrize("zero_bias", [[0], [5, -5]])
def test_zero_rows_keep_not_injective(zero_bias):
    decide(FIG2_NOT + [[0, 0]] * len(zero_bias), [0] * 4 + zero_bias, NOT)


def test_zero_rows_do_not_count_towards_2n():
    # 3 nonzero rows in R^2 padded with zero rows to m = 6 >= 2n: still never injective.
    W = [[1, 0], [0, 1], [-1, -1], [0, 0], [0, 0], [0, 0]]
    decide(W, [1, 1, 1, 1, 1, 1], NOT, route="instant")


def test_duplicate_rows_keep_injective():
    decide(FIG2_INJ + FIG2_INJ[:2] + [[4, 2]], None, INJ)


def test_duplicate_rows_do_not_make_injective():
    # [I; I] has m = 2n but duplicates add nothing: x <= 0 collides.
    decide([[1, 0], [0, 1], [1, 0], [0, 1]], None, NOT)
    # (1,0), (0,1), (-1,-1) twice each: only (1, 0) is active at z = (1, -1/2).
    W = [[1, 0], [0, 1], [-1, -1]] * 2
    assert own_eval(W, [0] * 6, [F(1), F(-1, 2)]) == own_eval(W, [0] * 6, [F(1), F(-1)])
    decide(W, None, NOT)


def test_adding_rows_never_breaks_injectivity():
    rng = np.random.default_rng(500)
    _, _, W = b_minus_db(rng, 3)
    extra = rng.integers(-4, 5, size=(5, 3)).tolist()
    b_extra = rng.integers(-4, 5, size=5).tolist()
    decide(W + extra, [0] * 6 + b_extra, INJ)


# ------------------------------------------------------------ n = 1 closed forms


def n1_bias_free(w) -> bool:
    return any(x > 0 for x in w) and any(x < 0 for x in w)


def n1_biased(w, b) -> bool:
    # Row i is active on [t_i, oo) (w_i > 0) or (-oo, t_i] (w_i < 0), t_i = -b_i/w_i;
    # zero rows carry no information.  Injective iff the active sets cover R.
    up = [F(-bi, wi) for wi, bi in zip(w, b) if wi > 0]
    down = [F(-bi, wi) for wi, bi in zip(w, b) if wi < 0]
    return bool(up and down) and max(down) >= min(up)


def test_n1_bias_free_closed_form_exhaustive():
    seen = {INJ: 0, NOT: 0}
    for m in (1, 2, 3):
        for w in itertools.product(range(-2, 3), repeat=m):
            expected = INJ if n1_bias_free(w) else NOT
            seen[expected] += 1
            decide([[x] for x in w], None, expected)
    assert seen[INJ] > 20 and seen[NOT] > 20


def test_n1_bias_free_closed_form_random_rational():
    rng = np.random.default_rng(600)
    for _ in range(40):
        m = int(rng.integers(1, 8))
        w = [F(int(p), int(q)) for p, q in zip(rng.integers(-9, 10, size=m), rng.integers(1, 7, size=m))]
        decide([[x] for x in w], None, INJ if n1_bias_free(w) else NOT)


def test_n1_biased_closed_form():
    rng = np.random.default_rng(601)
    seen = {INJ: 0, NOT: 0}
    for _ in range(120):
        m = int(rng.integers(1, 6))
        w = rng.integers(-3, 4, size=m).tolist()
        b = rng.integers(-3, 4, size=m).tolist()
        expected = INJ if n1_biased(w, b) else NOT
        seen[expected] += 1
        decide([[x] for x in w], b, expected)
    assert seen[INJ] > 10 and seen[NOT] > 10


# ------------------------------------------------------------ the route field


def test_route_instant_for_rank_deficiency_and_few_rows():
    decide([[1, 1], [2, 2], [-1, -1], [3, 3], [-2, -2]], [0, 1, 0, -1, 2], NOT, route="instant")  # rank 1
    decide([[1, 0], [0, 1], [-1, 1]], [1, 1, 1], NOT, route="instant")  # m = 3 < 4
    decide([[5]], [-2], NOT, route="instant")  # n = 1, m = 1


def test_route_not_instant_when_neither_rule_applies():
    v = decide([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]], None, NOT)
    assert v.route != "instant"
    v = decide(FIG2_INJ, None, INJ)
    assert v.route in ("structural", "tree")
