"""Stability constants (issue 8, parts 4 and 6; docs/theory.md, section 9).

The reference here shares no code with exact_inj/studies/stability/: it enumerates
the cells of a generic arrangement from its vertices (or, bias-free, from its
extreme rays) in floating point, adds random samples, and takes the smallest
float sigma_min of an active set.  Its completeness is itself checked against
the closed-form number of regions of a generic arrangement.  The Lipschitz
constants are also compared with the smallest ratio |f(x) - f(y)| / |x - y|
found by a brute-force pair search.  All randomness is seeded.
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import json
import os
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from exact_inj.io import load_network
from exact_inj.model import Layer
from exact_inj.certify.stability import check_stability
from exact_inj.exact.sigma import inv_sqrt_lower, sqrt_lower, sqrt_upper
from exact_inj.studies.stability import stability
from exact_inj.studies.stability.cli import add_parser, run

INSTANCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "instances")


# --- an independent brute force -------------------------------------------------


def float_sigma_min(A: np.ndarray, n: int) -> float:
    if A.shape[0] < n:
        return 0.0
    return float(np.linalg.svd(A, compute_uv=False)[-1])


def neighbourhood_points(W: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Points in every cell of a generic arrangement, exactly one cell family per
    vertex (biased) or extreme ray (bias-free).

    Biased: every cell of a simple arrangement whose normals span R^n is a
    pointed polyhedron, so it has a vertex v (n hyperplanes meet there); the 2^n
    cells around v are v + eps d with W_S d = s for the sign vectors s.
    Bias-free: every cell is a pointed cone with an extreme ray r (n - 1
    hyperplanes meet along it); the 2^(n-1) cells around +-r are +-r + eps d.
    """
    m, n = W.shape
    pts = []
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
    if np.any(b):
        for S in itertools.combinations(range(m), n):
            A = W[list(S)]
            if abs(np.linalg.det(A)) < 1e-9:
                continue
            v = np.linalg.solve(A, -b[list(S)])
            D = np.linalg.solve(A, signs.T).T  # one direction per sign vector
            others = np.array([i for i in range(m) if i not in S], dtype=int)
            at_v = np.abs(W[others] @ v + b[others])
            # rows through v too (parallel to a row of S, or concurrent) are left to d
            far = at_v > 1e-9 * (1 + np.abs(W[others]).sum(axis=1) * (1 + np.abs(v).sum()))
            rates = np.abs(D @ W[others][far].T)
            eps = 0.1 * (at_v[far] / np.maximum(rates, 1e-300)).min(axis=1) if far.any() else np.ones(len(D))
            pts.extend(v + eps[:, None] * D)
    else:
        for S in itertools.combinations(range(m), n - 1):
            A = W[list(S)].reshape(n - 1, n)
            if np.linalg.matrix_rank(A) < n - 1:
                continue
            _, _, Vt = np.linalg.svd(A)
            r = Vt[-1]
            D = (np.linalg.pinv(A) @ signs[: 2 ** (n - 1), 1:].T).T if n > 1 else np.zeros((1, n))
            others = np.array([i for i in range(m) if i not in S], dtype=int)
            for base in (r, -r):
                at_r = np.abs(W[others] @ base)
                far = at_r > 1e-9 * np.abs(W[others]).sum(axis=1)
                rates = np.abs(D @ W[others][far].T)
                eps = 0.1 * (at_r[far] / np.maximum(rates, 1e-300)).min(axis=1) if far.any() else np.ones(len(D))
                pts.extend(base + eps[:, None] * D)
    return pts


def brute_force(W: np.ndarray, b: np.ndarray, seed: int, samples: int = 20000):
    """(min float sigma_min over the patterns found, {pattern: sigma_min}, argmin point)."""
    m, n = W.shape
    rng = np.random.default_rng(seed)
    X = [*neighbourhood_points(W, b)]
    scale = 1.0 + float(np.abs(b).max(initial=0.0)) / max(float(np.abs(W).max()), 1e-300)
    X.extend(rng.standard_normal((samples, n)) * scale * 3)
    X = np.array(X)
    Z = X @ W.T + b
    keep = ~np.any(np.abs(Z) < 1e-12, axis=1)
    X, Z = X[keep], Z[keep]
    P, first = np.unique(Z > 0, axis=0, return_index=True)
    pats = {tuple(bool(v) for v in p): float_sigma_min(W[p], n) for p in P}
    where = {tuple(bool(v) for v in p): X[j] for p, j in zip(P, first)}
    best = min(pats, key=pats.get)
    return pats[best], pats, where[best]


def regions(m: int, n: int, central: bool) -> int:
    """Regions of m generic hyperplanes in R^n (affine: sum_{i<=n} C(m, i); central:
    2 sum_{i<n} C(m-1, i))."""
    if central:
        return 2 * sum(comb(m - 1, i) for i in range(n))
    return sum(comb(m, i) for i in range(n + 1))


def f(W, b, X):
    return np.maximum(X @ W.T + b, 0.0)


def min_pair_ratio(W: np.ndarray, b: np.ndarray, seed: int, zmin: np.ndarray, pairs: int = 60000) -> float:
    """The smallest |f(x) - f(y)| / |x - y| over random, close, boundary-straddling
    and minimising-direction pairs."""
    m, n = W.shape
    rng = np.random.default_rng(seed)
    scale = 1.0 + float(np.abs(b).max(initial=0.0)) / float(np.abs(W).max())
    k = pairs // 4
    xs, ys = [], []
    # far pairs
    xs.append(rng.standard_normal((k, n)) * scale * 3)
    ys.append(rng.standard_normal((k, n)) * scale * 3)
    # close pairs
    x = rng.standard_normal((k, n)) * scale * 3
    xs.append(x)
    ys.append(x + rng.standard_normal((k, n)) * scale * 1e-2)
    # pairs straddling a hyperplane: z on hyperplane i, x, y = z +- d
    i = rng.integers(0, m, k)
    z = rng.standard_normal((k, n)) * scale * 3
    w = W[i]
    nz = np.einsum("ij,ij->i", w, w) > 0
    z[nz] -= ((np.einsum("ij,ij->i", w[nz], z[nz]) + b[i][nz]) / np.einsum("ij,ij->i", w[nz], w[nz]))[:, None] * w[nz]
    d = rng.standard_normal((k, n)) * scale * rng.exponential(0.05, (k, 1))
    xs.append(z + d)
    ys.append(z - d)
    # around the minimising cell, along its weakest direction, at many sizes
    p = W @ zmin + b > 0
    _, _, Vt = np.linalg.svd(W[p]) if p.sum() else (None, None, np.eye(n))
    v = Vt[-1]
    kk = pairs - 3 * k
    c = zmin + rng.standard_normal((kk, n)) * scale * rng.exponential(0.1, (kk, 1))
    t = rng.exponential(0.3, (kk, 1)) * scale
    xs.append(c + t * v)
    ys.append(c - t * v)
    X, Y = np.vstack(xs), np.vstack(ys)
    num = np.linalg.norm(f(W, b, X) - f(W, b, Y), axis=1)
    den = np.linalg.norm(X - Y, axis=1)
    ok = den > 1e-9 * scale
    return float((num[ok] / den[ok]).min())


def random_layer(seed: int, n: int, m: int, biased: bool) -> tuple[Layer, np.ndarray, np.ndarray]:
    """A generic layer with small integer entries (exact = float)."""
    rng = np.random.default_rng(seed)
    W = rng.integers(-40, 41, (m, n))
    while np.any(np.all(W == 0, axis=1)):
        W = rng.integers(-40, 41, (m, n))
    b = rng.integers(-40, 41, m) if biased else np.zeros(m, dtype=int)
    L = Layer.from_rows(W.tolist(), b.tolist())
    return L, W.astype(float), b.astype(float)


def injective_random_layer(seed: int, n: int, m: int, biased: bool):
    """The first injective generic layer of a seeded sequence (judged by the reference)."""
    for k in range(50):
        L, W, b = random_layer(1000 * seed + k, n, m, biased)
        bf, _, _ = brute_force(W, b, seed, samples=2000)
        if bf > 1e-6:
            return L, W, b
    raise AssertionError("no injective layer drawn")  # pragma: no cover


def bdb_layer(seed: int, n: int, extra: int, biased: bool):
    """[B; -DB; M] with integer entries: injective (docs/theory.md, section 4, with the bias
    condition d_k b_ik + b_jk > 0), but not generic (parallel or equal hyperplanes)."""
    rng = np.random.default_rng(seed)
    while True:
        B = rng.integers(-9, 10, (n, n))
        if abs(np.linalg.det(B)) > 0.5:
            break
    d = rng.integers(1, 4, n)
    M = rng.integers(-9, 10, (extra, n))
    W = np.vstack([B, -d[:, None] * B, M])
    if biased:
        bB = rng.integers(-9, 10, n)
        b = np.concatenate([bB, -d * bB + rng.integers(1, 5, n), rng.integers(-9, 10, extra)])
    else:
        b = np.zeros(len(W), dtype=int)
    return Layer.from_rows(W.tolist(), b.tolist()), W.astype(float), b.astype(float)


@functools.lru_cache(maxsize=None)
def make_layer(kind: str, seed: int, n: int, m: int, biased: bool):
    if kind == "generic":
        return injective_random_layer(seed, n, m, biased)
    return bdb_layer(seed, n, m - 2 * n, biased)


CASES = [
    ("generic", 0, 2, 6, False), ("generic", 1, 2, 8, True), ("generic", 2, 3, 12, False), ("generic", 3, 3, 12, True),
    ("bdb", 4, 2, 5, False), ("bdb", 5, 2, 6, True), ("bdb", 6, 3, 8, False), ("bdb", 7, 3, 8, True),
]


# --- within 1% of the independent enumeration, never above it ---------------------


@pytest.mark.parametrize("kind,seed,n,m,biased", CASES)
def test_lower_bound_within_one_percent_of_enumeration(kind, seed, n, m, biased):
    L, W, b = make_layer(kind, seed, n, m, biased)
    bf_min, pats, _ = brute_force(W, b, seed)
    res = stability(L, time_limit=30)
    assert res.status == "complete" and res.check.valid
    lower, upper = float(res.sigma_lower), float(res.sigma_upper)
    # The float reference carries float error (about 1e-15 relative); 1e-9 covers it.
    assert lower <= bf_min * (1 + 1e-9)
    assert lower >= 0.99 * bf_min
    assert upper >= bf_min * (1 - 1e-9)
    assert float(res.half_lower) == pytest.approx(lower / 2, rel=1e-12)
    assert float(res.paper_lower) <= lower / np.sqrt(2 * m)
    assert float(res.paper_lower) >= 0.99 * lower / np.sqrt(2 * m)
    assert float(res.inverse_lipschitz_half) >= 2 / bf_min * (1 - 1e-9)
    # the minimising pattern is a real cell of the arrangement with that sigma_min
    pat = tuple(c == "+" for c in res.cell_signs)
    assert pat in pats and pats[pat] == pytest.approx(bf_min, rel=1e-6)


@pytest.mark.parametrize("seed,n,m,biased", [(11, 2, 8, True), (12, 2, 6, False), (13, 3, 12, True), (14, 3, 12, False),
                                             (15, 2, 5, True)])
def test_unpruned_enumeration_finds_exactly_the_cells(seed, n, m, biased):
    L, W, b = random_layer(seed, n, m, biased) if m == 5 else injective_random_layer(seed, n, m, biased)
    _, pats, _ = brute_force(W, b, seed)
    # the reference is complete: it finds the closed-form number of regions
    assert len(pats) == regions(m, n, central=not biased)
    res = stability(L, time_limit=30, prune=False)
    cells = [e for e in res.certificate.get("tree", []) if e[0] == "cell"]
    if res.status == "not_injective":
        # then some reference cell has a rank-deficient active set, and the reported one is a real cell
        assert min(pats.values()) < 1e-9
        assert tuple(c == "+" for c in res.cell_signs) in pats
        return
    assert res.check.counts["cells"] == len(cells) == len(pats)
    found = set()
    for e in cells:
        x = np.array([float(Fraction(v)) for v in e[1]])
        found.add(tuple(bool(v > 0) for v in W @ x + b))
    assert found == set(pats)


# --- never above a brute-force pair search ---------------------------------------


@pytest.mark.parametrize("kind,seed,n,m,biased", CASES + [("lemma1", 0, 1, 2, True)])
def test_constants_below_smallest_pair_ratio(kind, seed, n, m, biased):
    if n == 1:  # the Lemma 1 counterexample, W = [1; -1], b = [1; -1]: min sigma_min = 1
        L = Layer.from_rows([[1], [-1]], [1, -1])
        W, b, zmin = np.array([[1.0], [-1.0]]), np.array([1.0, -1.0]), np.array([-3.0])
    else:
        L, W, b = make_layer(kind, seed, n, m, biased)
        _, _, zmin = brute_force(W, b, seed, samples=2000)
    res = stability(L, time_limit=30)
    assert res.status == "complete" and res.sigma_lower > 0
    ratio = min_pair_ratio(W, b, seed, zmin)
    assert float(res.half_lower) <= ratio * (1 + 1e-9)
    assert float(res.paper_lower) <= ratio * (1 + 1e-9)  # the paper's constant, bias-free or not
    # the search is strong enough to matter: it gets down to min sigma_min (pairs
    # inside the minimising cell), and the 1/2 constant is at most a factor 2 below
    assert ratio <= 2 * float(res.half_lower) * 1.01


# --- known values, non-injective layers, limits ------------------------------------


def test_known_value_and_exact_bracket():
    # [I; -I]: every cell has two orthonormal active rows, min sigma_min = 1.
    L = Layer.from_rows([[1, 0], [0, 1], [-1, 0], [0, -1]])
    res = stability(L)
    assert res.sigma_lower <= 1 <= res.sigma_upper
    assert res.sigma_lower > Fraction(999999, 1000000)
    assert res.sigma_lower ** 2 <= res.t
    # C(W) = (2m)^(-1/2) min sigma_min = 1/sqrt(8), as a rational lower bound
    assert res.paper_lower ** 2 * 8 <= 1 and float(res.paper_lower) == pytest.approx(8 ** -0.5, rel=1e-9)
    assert res.half_lower == res.sigma_lower / 2 and float(res.inverse_lipschitz_half) == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["dead_zone.json", "fig2_not_injective.json", "rank_deficient.json",
                                  "thin_cell_broken.json", "duplicate_rows_not_injective.json"])
def test_not_injective_gives_zero_and_a_cell(name):
    net = load_network(os.path.join(INSTANCES, name))
    L = net.layers[0]
    res = stability(net, time_limit=30)
    assert res.status == "not_injective" and res.check.valid
    assert res.sigma_lower == res.half_lower == res.paper_lower == res.sigma_upper == 0
    assert res.inverse_lipschitz_half is None and res.inverse_lipschitz_paper is None
    # the cell: its active rows (>= 0) have rank < n, recomputed here
    pre = L.pre_activation(res.cell_point)
    A = [i for i in range(L.out_dim) if pre[i] >= 0]
    W = np.array([[float(v) for v in L.weight[i]] for i in A]).reshape(len(A), L.in_dim)
    assert np.linalg.matrix_rank(W) < L.in_dim if len(A) else True
    x, y = res.witness
    assert x != y and L.apply(x) == L.apply(y)


def test_agrees_with_known_verdicts():
    with open(os.path.join(INSTANCES, "expected.json")) as fh:
        expected = json.load(fh)
    seen = 0
    for name, info in expected.items():
        path = os.path.join(INSTANCES, name)
        if not os.path.exists(path) or info.get("verdict") not in ("injective", "not_injective"):
            continue
        net = load_network(path)
        if not net.is_single_relu_layer or net.input_dim > 4 or net.layers[0].out_dim > 24:
            continue
        res = stability(net, time_limit=30)
        assert res.check.valid
        if info["verdict"] == "injective":
            assert res.status == "complete" and res.sigma_lower > 0, name
        else:
            assert res.status == "not_injective", name
        seen += 1
    assert seen >= 8


def test_limit_gives_partial_but_guaranteed_bounds():
    L, W, b = make_layer("bdb", 7, 3, 8, True)
    bf_min, _, _ = brute_force(W, b, 5)
    res = stability(L, max_nodes=3)
    assert res.status == "partial" and res.check.valid
    assert res.check.counts["open_cases"] > 0
    assert float(res.sigma_lower) <= bf_min * (1 + 1e-9)
    assert res.sigma_upper is None or float(res.sigma_upper) >= bf_min * (1 - 1e-9)
    assert any("limit" in note for note in res.notes)


def test_sqrt_bounds():
    rng = np.random.default_rng(3)
    for _ in range(200):
        x = Fraction(int(rng.integers(1, 10**9)), int(rng.integers(1, 10**9))) * Fraction(10) ** int(rng.integers(-30, 30))
        r, R = sqrt_lower(x), sqrt_upper(x)
        assert r * r <= x <= R * R
        assert R - r <= R * Fraction(1, 10**10)
    for k in range(1, 60):
        q = inv_sqrt_lower(k)
        assert q * q * k <= 1 and q > 0.999999 / np.sqrt(k)


# --- the checker rejects tampering ---------------------------------------------------


@pytest.fixture(scope="module")
def certified():
    L, _, _ = make_layer("bdb", 7, 3, 8, True)
    res = stability(L, time_limit=30, prune=False)
    assert res.status == "complete" and check_stability(res.certificate).valid
    return res


def _tampered(cert, **changes):
    c = copy.deepcopy(cert)
    c.update(changes)
    return check_stability(c)


def test_check_rejects_a_larger_t(certified):
    cert = certified.certificate
    # the true min sigma_min^2 lies in (t, upper^2]; anything above upper^2 must fail
    t_bad = certified.sigma_upper ** 2 * Fraction(1001, 1000)
    bad = _tampered(cert, t=str(t_bad))
    assert not bad.valid and "positive definite" in bad.reason


def test_check_rejects_a_larger_sigma_or_constant(certified):
    cert = certified.certificate
    assert not _tampered(cert, sigma_lower=str(certified.sigma_lower * 2)).valid
    assert not _tampered(cert, half_lower=str(certified.half_lower * 2)).valid
    assert not _tampered(cert, paper_lower=str(certified.paper_lower * 2)).valid
    assert not _tampered(cert, inv_sqrt_2m_lower="1").valid
    assert not _tampered(cert, inverse_lipschitz_half=str(certified.inverse_lipschitz_half / 2)).valid
    assert not _tampered(cert, sigma_upper=str(certified.sigma_lower / 2)).valid


def test_check_rejects_a_missing_cell(certified):
    cert = certified.certificate
    tree = cert["tree"]
    k = next(i for i, e in enumerate(tree) if e[0] == "cell")
    assert not _tampered(cert, tree=tree[:k] + tree[k + 1:]).valid
    # a cell replaced by an "empty" claim with a bogus multiplier
    row = next(e[1] for e in tree if e[0] == "split")
    assert not _tampered(cert, tree=tree[:k] + [["empty", [[row, "1"]]]] + tree[k + 1:]).valid
    # a cell point moved outside its cell
    moved = copy.deepcopy(tree)
    moved[k][1] = ["1000000", "-1000000", "1000000"]
    assert not _tampered(cert, tree=moved).valid
    # an extra entry, and a split on an already-decided row
    assert not _tampered(cert, tree=tree + [["bound"]]).valid
    assert not _tampered(cert, tree=[["split", row], ["split", row]] + tree[1:]).valid


def test_check_rejects_a_wrong_multiplier(certified):
    cert = certified.certificate
    tree = copy.deepcopy(cert["tree"])
    k = next(i for i, e in enumerate(tree) if e[0] == "empty")
    tree[k][1][0][1] = str(Fraction(tree[k][1][0][1]) * 2 + 1)
    assert not _tampered(cert, tree=tree).valid


def test_check_rejects_a_changed_layer(certified):
    cert = copy.deepcopy(certified.certificate)
    w = cert["network"]["layers"][0]["weight"]
    w[0] = [str(Fraction(v) * 3) for v in w[0]]
    assert not check_stability(cert).valid


def test_check_rejects_a_fake_not_injective_claim(certified):
    cert = copy.deepcopy(certified.certificate)
    cert.update(status="not_injective", t="0", sigma_lower="0", sigma_upper="0", half_lower="0", paper_lower="0",
                inverse_lipschitz_half=None, inverse_lipschitz_paper=None,
                cell={"point": cert["upper"]["point"]}, witness=None)
    assert not check_stability(cert).valid


# --- the command line -----------------------------------------------------------------


def _args(argv):
    p = argparse.ArgumentParser(prog="exact-inj")
    sub = p.add_subparsers(dest="command")
    add_parser(sub)
    return p.parse_args(["stability", *argv])


def test_cli_json_certificate_and_check(tmp_path, capsys):
    layer = tmp_path / "layer.json"
    layer.write_text(json.dumps({"layers": [{"weight": [[2, 1], [-2, 1], [-2, -1], [2, -1], [1, 0]],
                                             "bias": [1, 0, "-1/2", 0, 3]}]}))
    cert = tmp_path / "cert.json"
    code = run(_args([str(layer), "--json", "--quiet", "--certificate", str(cert)]))
    out = capsys.readouterr().out
    obj = json.loads(out)  # exactly one JSON object
    assert out.count("\n") == 1 and code == 0
    assert obj["status"] == "complete" and obj["certificate"]["valid"] is True
    lo = Fraction(obj["min_sigma"]["lower"])
    assert lo > 0 and Fraction(obj["constants"]["half"]["lower"]) == lo / 2
    assert obj["constants"]["half"]["valid_with_bias"] is True
    assert "bias-free" in obj["constants"]["paper"]["note"]
    assert Fraction(obj["inverse_lipschitz_upper"]["from_half"]) == 2 / lo
    assert run(_args([str(cert), "--check", "--json"])) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    data = json.loads(cert.read_text())
    data["t"] = str(Fraction(data["sigma_upper"]) ** 2 * 2)
    cert.write_text(json.dumps(data))
    assert run(_args([str(cert), "--check"])) == 1
    assert "INVALID" in capsys.readouterr().out


def test_cli_human_output_and_exit_codes(capsys):
    assert run(_args([os.path.join(INSTANCES, "fig2_injective.json"), "--quiet"])) == 0
    out = capsys.readouterr().out
    assert "CERTIFIED" in out and "(1/2) min sigma_min" in out and "Theorem 3" in out
    assert run(_args([os.path.join(INSTANCES, "dead_zone.json"), "--quiet"])) == 1
    assert "NOT INJECTIVE" in capsys.readouterr().out
    assert run(_args([os.path.join(INSTANCES, "no_such_file.json"), "--quiet"])) == 2
