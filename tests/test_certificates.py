"""Certificates: every one the engine emits checks; invalid ones are rejected.

(1) On a seeded sample of ~60 small layers (Gaussian, integer, biased,
    n = 1..4, both verdicts), every certificate passes ``exact_inj.check``,
    also after a JSON round-trip and through ``exact-inj check FILE``.
(2) Mutants are rejected -- but only mutants whose invalidity is confirmed
    here, independently of the checker (docs/theory.md, section 6: some mutations stay
    valid).  The independent tools are an own tree walker, sympy's rref for
    ranks, explicit rational points for "these rows can all be negative", and
    explicit exact collisions for "this network is not injective".
    One test shows valid-preserving mutations are accepted.
(3) Checking costs far less than deciding.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
import time
from fractions import Fraction as F

import numpy as np
import pytest
import sympy

import exact_inj
from exact_inj.cli import app as cli
from exact_inj.certify.schema import CORE_BASE, RANK_LEAF, Certificate, Core, StructuralProof, TreeProof, Witness
from exact_inj.model.domain import Domain
from exact_inj.model import Layer, Network
from exact_inj.verdict import Status

# --------------------------------------------------------------------------- helpers


def net_of(W, b=None) -> Network:
    return Network((Layer.from_rows(W, b),))


def gaussian(rng, m, n, digits=3):
    return [[F(int(round(x * 10**digits)), 10**digits) for x in row] for row in rng.standard_normal((m, n))]


def own_eval(net: Network, x) -> list[F]:
    (layer,) = net.layers
    out = []
    for row, bi in zip(layer.weight, layer.bias):
        a = sum((w * xi for w, xi in zip(row, x)), bi)
        out.append(a if a > 0 else F(0))
    return out


def own_collides(net: Network, x, y) -> bool:
    return list(x) != list(y) and own_eval(net, x) == own_eval(net, y)


def srank(rows) -> int:
    rows = [[sympy.Rational(v.numerator, v.denominator) for v in r] for r in rows]
    return len(sympy.Matrix(rows).rref()[1]) if rows else 0


def roundtrip(cert: Certificate) -> Certificate:
    return Certificate.from_json(json.loads(json.dumps(cert.to_json())))


def valid(cert: Certificate) -> bool:
    return exact_inj.check(cert).valid


def rejected(cert: Certificate, *why: str) -> str:
    """The checker refuses cert, and its reason names one of the checks in ``why``
    (a rejection for another reason would let the guarded check go untested)."""
    res = exact_inj.check(cert)
    assert not res.valid, f"accepted: {res.reason}"
    assert any(w in res.reason for w in why), (why, res.reason)
    return res.reason


def with_evidence(cert: Certificate, ev) -> Certificate:
    return dataclasses.replace(cert, evidence=ev)


class Incomplete(Exception):
    pass


def walk(tree, m=None):
    """Own preorder walker: (leaves, trailing, problems).

    leaves: list of (position, code, P, N); problems: duplicate or out-of-range
    splits seen.  Raises Incomplete if the tree ends before every case closes.
    """
    leaves, problems = [], []
    pos = 0

    def rec(P, N):
        nonlocal pos
        if pos >= len(tree):
            raise Incomplete
        c = tree[pos]
        pos += 1
        if c >= 0:
            if m is not None and c >= m:
                problems.append(("out_of_range", c))
            if c in P or c in N:
                problems.append(("duplicate", c))
            rec(P | {c}, N)
            rec(P, N | {c})
        else:
            leaves.append((pos - 1, c, P, N))

    rec(frozenset(), frozenset())
    return leaves, len(tree) - pos, problems


def subtree_end(tree, start) -> int:
    need, pos = 1, start
    while need:
        need += 1 if tree[pos] >= 0 else -1
        pos += 1
    return pos


def point_all_negative(net: Network, rows, rng, tries=4000):
    """A rational z with w_i.z + b_i < 0 for every i in rows, found and checked here."""
    (layer,) = net.layers
    W, b = layer.weight, layer.bias
    n = layer.in_dim
    # Exact attempt: least-norm solution of W_S z = -1 - b_S (works when W_S has full row rank).
    A = sympy.Matrix([[sympy.Rational(v.numerator, v.denominator) for v in W[i]] for i in rows])
    rhs = sympy.Matrix([-1 - sympy.Rational(b[i].numerator, b[i].denominator) for i in rows])
    cands = []
    if A.rank() == len(rows):
        z = A.T * (A * A.T).inv() * rhs
        cands.append([F(str(c)) for c in z])
    for _ in range(tries):
        cands.append([F(int(v)) for v in rng.integers(-60, 61, size=n)])
    for z in cands:
        if all(sum((w * c for w, c in zip(W[i], z)), b[i]) < 0 for i in rows):
            return z
    return None


# --------------------------------------------------------------------------- the sample


def _sample_layers():
    rng = np.random.default_rng(20240601)
    nets = []
    # Gaussian, bias-free, around the injectivity threshold: both verdicts, tree proofs.
    for n, m in [(1, 3), (1, 5), (2, 5), (2, 6), (2, 8), (2, 10), (3, 10), (3, 12), (3, 14), (3, 16), (3, 20),
                 (4, 16), (4, 20), (4, 26)]:
        nets.append(net_of(gaussian(rng, m, n)))
        nets.append(net_of(gaussian(rng, m, n)))
    # Gaussian with bias.
    for n, m in [(1, 4), (2, 7), (2, 9), (3, 13), (3, 18), (4, 24)]:
        nets.append(net_of(gaussian(rng, m, n), [r[0] for r in gaussian(rng, m, 1, 2)]))
    # Small integers with bias (explicit multipliers appear for dependent rows).
    for n, m in [(1, 3), (2, 5), (2, 6), (3, 9), (3, 12), (3, 14), (4, 14)]:
        nets.append(net_of(rng.integers(-3, 4, size=(m, n)).tolist(), rng.integers(-2, 3, size=m).tolist()))
        nets.append(net_of(rng.integers(-5, 6, size=(m, n)).tolist(), rng.integers(-2, 3, size=m).tolist()))
    # Structural: [B; -DB] plus extra rows, bias condition held.
    for n in (1, 2, 3, 4, 2, 3):
        while True:
            B = rng.integers(-3, 4, size=(n, n)).tolist()
            if sympy.Matrix(B).det() != 0:
                break
        d = [F(int(rng.integers(1, 5)), int(rng.integers(1, 3))) for _ in range(n)]
        W = [[F(x) for x in r] for r in B] + [[-d[k] * x for x in B[k]] for k in range(n)]
        bB = [F(int(x)) for x in rng.integers(-2, 3, size=n)]
        b = bB + [-d[k] * bB[k] + int(rng.integers(0, 2)) for k in range(n)]
        extra = int(rng.integers(0, 3))
        W += rng.integers(-3, 4, size=(extra, n)).tolist()
        b += rng.integers(-3, 4, size=extra).tolist()
        nets.append(net_of(W, b))
    # Instant rules: rank deficiency and m < 2n.
    for n in (2, 3, 4):
        A = rng.integers(-2, 3, size=(2 * n + 1, n - 1))
        C = rng.integers(-2, 3, size=(n - 1, n))
        nets.append(net_of((A @ C).tolist(), rng.integers(-2, 3, size=2 * n + 1).tolist()))
        nets.append(net_of(rng.integers(-3, 4, size=(2 * n - 1, n)).tolist(), rng.integers(-2, 3, size=2 * n - 1).tolist()))
    return nets


@functools.lru_cache(maxsize=None)
def sample():
    out = []
    for net in _sample_layers():
        v = exact_inj.verify(net, time_limit=60)
        assert v.status is not Status.UNKNOWN, f"small layer left undecided: {v.reason}"
        out.append(v)
    return tuple(out)


def test_sample_covers_every_evidence_kind():
    vs = sample()
    assert len(vs) >= 60
    kinds = [type(v.certificate.evidence).__name__ for v in vs]
    assert kinds.count("Witness") >= 10
    assert kinds.count("TreeProof") >= 10
    assert kinds.count("StructuralProof") >= 4
    trees = [v.proof for v in vs if isinstance(v.proof, TreeProof)]
    assert any(c.multiplier is not None for t in trees for c in t.cores), "no explicit multiplier in the sample"
    assert any(min(t.tree) <= CORE_BASE for t in trees)
    # Line leaves (a core row outside N, independent of P): the search closes
    # every node of rank n - 1 this way (docs/theory.md section 4).
    assert any(line_leaves(v.certificate) for v in vs if isinstance(v.proof, TreeProof))
    assert {v.route for v in vs} >= {"instant", "structural", "tree"}


def test_every_emitted_certificate_checks():
    for v in sample():
        cert = v.certificate
        res = exact_inj.check(cert)
        assert res.valid, (v.route, res.reason)
        if isinstance(cert.evidence, Witness):
            assert own_collides(cert.network, cert.evidence.x, cert.evidence.y)


def test_every_certificate_survives_a_json_roundtrip():
    for v in sample():
        text = json.dumps(v.certificate.to_json())
        back = Certificate.from_json(json.loads(text))
        assert back == v.certificate
        assert exact_inj.check(back).valid
        # And a second trip is byte-identical.
        assert json.dumps(back.to_json()) == text


def test_every_certificate_passes_the_cli_checker(tmp_path, capsys):
    for k, v in enumerate(sample()):
        path = tmp_path / f"cert{k}.json"
        path.write_text(json.dumps(v.certificate.to_json()))
        assert cli.main(["check", str(path)]) == 0
        out = capsys.readouterr().out
        assert "VALID" in out and "INVALID" not in out


def test_cli_checker_subprocess_on_each_kind(tmp_path):
    done = set()
    for v in sample():
        kind = type(v.certificate.evidence).__name__
        if kind in done:
            continue
        done.add(kind)
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(v.certificate.to_json()))
        r = subprocess.run([sys.executable, "-m", "exact_inj", "check", str(path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    assert done == {"Witness", "TreeProof", "StructuralProof"}


# --------------------------------------------------------------------------- fixtures for mutants


@functools.lru_cache(maxsize=None)
def tree_case():
    """An injective integer layer (n = 3, m = 14, biased) decided by a tree proof."""
    rng = np.random.default_rng(0)
    net = net_of(rng.integers(-5, 6, size=(14, 3)).tolist(), rng.integers(-2, 3, size=14).tolist())
    v = exact_inj.verify(net, time_limit=60)
    assert v.status is Status.INJECTIVE and isinstance(v.proof, TreeProof)
    assert valid(v.certificate)
    return v.certificate


@functools.lru_cache(maxsize=None)
def witness_case():
    net = net_of([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]])
    v = exact_inj.verify(net, time_limit=60)
    assert v.status is Status.NOT_INJECTIVE
    return v.certificate


@functools.lru_cache(maxsize=None)
def structural_case():
    # [B; -DB] with bias, B = [[2,1,0],[0,-1/2,1/2],[1,0,3]], D = diag(1, 2, 3):
    # d_k b_ik + b_jk = 1 - 1, 4 - 1, 1 - 1 = 0, 3, 0 (>= 0).
    W = [[2, 1, 0], [0, "-1/2", "1/2"], [1, 0, 3], [-2, -1, 0], [0, 1, -1], [-3, 0, -9]]
    b = [1, 2, "1/3", -1, -1, -1]
    v = exact_inj.verify(net_of(W, b), time_limit=60)
    assert v.status is Status.INJECTIVE and isinstance(v.proof, StructuralProof)
    return v.certificate


def _tree(cert, tree=None, cores=None):
    p = cert.evidence
    return with_evidence(cert, TreeProof(p.cores if cores is None else tuple(cores),
                                         p.tree if tree is None else tuple(tree)))


def test_tree_case_is_well_formed_by_the_own_walker():
    cert = tree_case()
    m = cert.network.output_dim
    leaves, trailing, problems = walk(list(cert.evidence.tree), m)
    assert trailing == 0 and not problems
    n = cert.network.input_dim
    W = cert.network.layers[0].weight
    for _, code, P, N in leaves:
        if code == RANK_LEAF:
            assert srank([W[i] for i in P]) == n
        else:
            assert not bad_core_rows(W, n, cert.evidence.cores[CORE_BASE - code], P, N)
    assert line_leaves(cert), "the tree case has no line leaf"


# --------------------------------------------------------------------------- witness mutants


def test_witness_with_y_moved_is_rejected():
    cert = witness_case()
    w = cert.evidence
    for delta in ([F(1), F(0)], [F(0), F(1, 3)], [F(-5), F(7)]):
        y = tuple(a + d for a, d in zip(w.y, delta))
        bad = with_evidence(cert, Witness(w.x, y))
        assert own_eval(cert.network, w.x) != own_eval(cert.network, y)  # independent: outputs differ
        res = exact_inj.check(bad)
        assert not res.valid and "differ" in res.reason


def test_witness_with_equal_points_is_rejected():
    cert = witness_case()
    x = cert.evidence.x
    bad = with_evidence(cert, Witness(x, tuple(x)))
    assert list(x) == list(bad.evidence.y)
    rejected(bad, "witness points are equal")


def test_witness_with_wrong_dimension_is_rejected():
    cert = witness_case()
    w = cert.evidence
    rejected(with_evidence(cert, Witness(w.x + (F(0),), w.y + (F(1),))), "must have 2 coordinates")


def test_witness_with_wrong_active_rows_or_rank_is_rejected():
    cert = witness_case()
    w = cert.evidence
    layer = cert.network.layers[0]
    mid = [(a + c) / 2 for a, c in zip(w.x, w.y)]
    active = [i for i, row in enumerate(layer.weight)
              if sum((a * z for a, z in zip(row, mid)), layer.bias[i]) >= 0]
    true_rank = srank([layer.weight[i] for i in active])
    wrong_rows = tuple(sorted(set(range(4)) - set(active)))
    assert wrong_rows != tuple(active)
    rejected(with_evidence(cert, dataclasses.replace(w, active_rows=wrong_rows)), "differ from the rows active")
    rejected(with_evidence(cert, dataclasses.replace(w, active_rank=true_rank + 1)),
             f"active_rank {true_rank + 1} differs from the exact rank {true_rank}")


def test_witness_for_a_different_network_is_rejected():
    cert = witness_case()
    w = cert.evidence
    other = net_of([[2, 1], [-2, 1], [-2, -1], [2, -1]])  # Figure 2's injective layer
    assert own_eval(other, w.x) != own_eval(other, w.y)
    rejected(dataclasses.replace(cert, network=other), "outputs differ")


# --------------------------------------------------------------------------- tree mutants


def test_truncated_tree_is_rejected():
    cert = tree_case()
    tree = list(cert.evidence.tree)
    for cut in (1, 2, len(tree) // 2, len(tree) - 1):
        short = tree[:cut]
        with pytest.raises(Incomplete):
            walk(short)
        res = exact_inj.check(_tree(cert, short))
        assert not res.valid and res.reason == "the tree ends before every case is closed", (cut, res.reason)
    rejected(_tree(cert, []), "the tree ends before every case is closed")


def test_tree_with_a_split_removed_is_rejected():
    """Replace a split by one of its subtrees; keep only mutants where the own
    walker finds a leaf that is false (rank < n by sympy, or a core not in N)."""
    cert = tree_case()
    tree = list(cert.evidence.tree)
    W = cert.network.layers[0].weight
    n = cert.network.input_dim
    cores = cert.evidence.cores
    tried = 0
    for s, code in enumerate(tree):
        if code < 0:
            continue
        a_end = subtree_end(tree, s + 1)
        b_end = subtree_end(tree, a_end)
        for keep in (tree[s + 1:a_end], tree[a_end:b_end]):
            mutant = tree[:s] + keep + tree[b_end:]
            leaves, trailing, problems = walk(mutant)
            assert trailing == 0 and not problems
            false_leaf = any(
                (c == RANK_LEAF and srank([W[i] for i in P]) < n)
                or (c != RANK_LEAF and bad_core_rows(W, n, cores[CORE_BASE - c], P, N))
                for _, c, P, N in leaves
            )
            if false_leaf:
                tried += 1
                rejected(_tree(cert, mutant), "its orthogonal rows have rank",
                         "is not fixed negative on this branch")
        if tried >= 8:
            break
    assert tried >= 4


def line_leaves(cert) -> int:
    """Core leaves of the certificate's tree with a core row outside N."""
    leaves, _, _ = walk(list(cert.evidence.tree))
    cores = cert.evidence.cores
    return sum(1 for _, c, P, N in leaves if c != RANK_LEAF and not set(cores[CORE_BASE - c].support) <= N)


def bad_core_rows(W, n, core, P, N) -> list[int]:
    """The rows of a core that do not hold at a leaf (P, N): outside N, and
    with P of rank below n (sympy), so not forced strictly negative."""
    return [r for r in core.support if r not in N and srank([W[i] for i in sorted(P | {r})]) < n]


def test_core_leaf_pointing_to_a_core_outside_N_is_rejected():
    cert = tree_case()
    tree = list(cert.evidence.tree)
    cores = cert.evidence.cores
    W = cert.network.layers[0].weight
    n = cert.network.input_dim
    leaves, _, _ = walk(tree)
    tried = 0
    for pos, code, P, N in leaves:
        if code == RANK_LEAF:
            continue
        for k, core in enumerate(cores):
            if bad_core_rows(W, n, core, P, N):  # independent: a row of core k need not be negative here
                mutant = list(tree)
                mutant[pos] = CORE_BASE - k
                rejected(_tree(cert, mutant), f"of core {k} is not fixed negative on this branch")
                tried += 1
                break
        if tried >= 5:
            break
    assert tried >= 3


def test_line_leaf_accepted_only_when_its_rows_raise_P_to_rank_n():
    """A core leaf at rank n - 1 may hold core rows outside N (docs/theory.md §4):
    accepted when each gives P rank n, rejected when one lies in P's span.

    n = 2, rows e1, -e1, e2, -e2, e1 + e2.  Split on row 0 (e1 into P): P has
    rank 1, its null line is e2.  The core {2, 3} (e2, -e2: cannot both be
    negative) has both rows outside N but off the span of e1: a line leaf.
    The N-child (P empty, rank 0 < n - 1) is split on row 1: into P, the same
    line leaf; into N, the core {0, 1} lies in N."""
    rows = [[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1]]
    net = net_of(rows)
    cores = (Core(support=(2, 3)), Core(support=(0, 1)), Core(support=(1, 3, 4)))
    good = TreeProof(cores, (0, CORE_BASE - 0, 1, CORE_BASE - 0, CORE_BASE - 1))
    cert = Certificate(net, Domain(), Status.INJECTIVE, good)
    assert valid(cert)
    assert exact_inj.verify(net).status is Status.INJECTIVE  # the layer is injective: no wrong proof
    # The same shape with the core {1, 3, 4} (-e1 - e2 + (e1 + e2) = 0) at the
    # first leaf: rows 3 and 4 raise P = {0} to rank 2, but row 1 = -row 0 is in
    # P's span, so it is not forced negative.
    bad = TreeProof(cores, (0, CORE_BASE - 2, 1, CORE_BASE - 0, CORE_BASE - 1))
    assert bad_core_rows(rows, 2, cores[2], {0}, set()) == [1]
    rejected(with_evidence(cert, bad), "row 1 of core 2 is not fixed negative on this branch")
    # At the root (P empty, rank 0 < n - 1) no core outside N closes anything.
    rejected(with_evidence(cert, TreeProof(cores, (CORE_BASE - 0,))), "is not fixed negative on this branch")


def test_rank_leaf_with_rank_below_n_is_rejected():
    cert = tree_case()
    tree = list(cert.evidence.tree)
    W = cert.network.layers[0].weight
    n = cert.network.input_dim
    leaves, _, _ = walk(tree)
    tried = 0
    for pos, code, P, N in leaves:
        if code != RANK_LEAF and srank([W[i] for i in P]) < n:  # independent rank by sympy rref
            mutant = list(tree)
            mutant[pos] = RANK_LEAF
            res = exact_inj.check(_tree(cert, mutant))
            assert not res.valid and "rank" in res.reason
            tried += 1
        if tried >= 5:
            break
    assert tried >= 3
    # The bare "rank leaf at the root": no row orthogonal, rank 0 < n.
    assert srank([]) == 0
    rejected(_tree(cert, [RANK_LEAF]), f"rank leaf at node 0: its orthogonal rows have rank 0 < {n}")


def test_core_whose_rows_can_all_be_negative_is_rejected():
    cert = tree_case()
    net = cert.network
    cores = list(cert.evidence.cores)
    rng = np.random.default_rng(7)
    tried = 0
    # (a) drop one row of a real core; (b) rows negative at a random rational point.
    candidates = [tuple(c.support[:-1]) for c in cores if len(c.support) > 1]
    (layer,) = net.layers
    for _ in range(20):
        z = [F(int(v)) for v in rng.integers(-9, 10, size=net.input_dim)]
        neg = [i for i in range(net.output_dim) if sum((w * c for w, c in zip(layer.weight[i], z)), layer.bias[i]) < 0]
        if len(neg) >= net.input_dim + 1:
            candidates.append(tuple(neg[: net.input_dim + 1]))
    # Well-formed mutants only: S's rows have a one-dimensional space of
    # cancelling multipliers (sympy), given explicitly and left implicit.  Since
    # z makes every row of S negative, no such multiplier can be >= 0 with
    # lambda.b >= 0 (and nonzero on a strict row): the rejection must say which.
    math = ("core 0: the multiplier has a negative entry", "core 0: the multiplier gives lambda.b < 0",
            "core 0: the multiplier is zero on the strict rows")
    for S in candidates[::-1][:12]:
        z = point_all_negative(net, S, rng)
        if z is None:
            continue
        assert all(sum((w * c for w, c in zip(layer.weight[i], z)), layer.bias[i]) < 0 for i in S)
        null = sympy.Matrix([[sympy.Rational(str(layer.weight[i][j])) for i in S]
                             for j in range(net.input_dim)]).nullspace()
        if len(null) != 1:
            continue
        lam = [F(str(v)) for v in null[0]]
        if max(lam) <= 0:
            lam = [-v for v in lam]
        for mult in (None, tuple(lam), tuple(-v for v in lam)):
            rejected(_tree(cert, cores=[Core(S, mult)] + cores[1:]), *math)
        tried += 1
    assert tried >= 4


def test_explicit_multiplier_mutants_are_rejected():
    cert = tree_case()
    cores = list(cert.evidence.cores)
    k = next(i for i, c in enumerate(cores) if c.multiplier is not None)
    c = cores[k]
    (layer,) = cert.network.layers
    # Independent: the flipped multiplier has a negative entry; the perturbed one does not cancel.
    flipped = tuple(-x for x in c.multiplier)
    assert any(x < 0 for x in flipped)
    bumped = (c.multiplier[0] * 2,) + c.multiplier[1:]
    assert any(sum(l * layer.weight[i][j] for l, i in zip(bumped, c.support)) != 0
               for j in range(cert.network.input_dim))
    expected = (f"core {k}: the multiplier has a negative entry", f"core {k}: the multiplier does not cancel",
                f"core {k}: the multiplier is zero on the strict rows", f"core {k} multiplier has")
    for mult, why in zip((flipped, bumped, tuple(F(0) for _ in c.support), c.multiplier[:-1]), expected):
        mutated = cores[:k] + [Core(c.support, mult)] + cores[k + 1:]
        rejected(_tree(cert, cores=mutated), why)


def test_extra_trailing_tree_entries_are_rejected():
    cert = tree_case()
    tree = list(cert.evidence.tree)
    for extra in ([RANK_LEAF], [CORE_BASE], [0, RANK_LEAF, RANK_LEAF]):
        _, trailing, _ = walk(tree + extra)
        assert trailing == len(extra)
        res = exact_inj.check(_tree(cert, tree + extra))
        assert not res.valid and "after its last leaf" in res.reason


def test_out_of_range_indices_are_rejected():
    cert = tree_case()
    m = cert.network.output_dim
    tree = list(cert.evidence.tree)
    cores = list(cert.evidence.cores)
    assert tree[0] >= 0
    for bad_row in (m, m + 5, 10**30):
        rejected(_tree(cert, [bad_row] + tree[1:]), f"splits on row {bad_row}, but the layer has {m} rows")
        rejected(_tree(cert, cores=[Core(cores[0].support[:-1] + (bad_row,))] + cores[1:]), "core 0 names rows outside")
    rejected(_tree(cert, cores=[Core(cores[0].support + (-1,))] + cores[1:]), "core 0 names rows outside")
    # A core index beyond the list.
    leaves, _, _ = walk(tree)
    pos = next(p for p, c, _, _ in leaves if c != RANK_LEAF)
    for k in (len(cores), len(cores) + 100):
        mutant = list(tree)
        mutant[pos] = CORE_BASE - k
        rejected(_tree(cert, mutant), f"names core {k}, which does not exist")
    # Structural pair naming a row beyond the layer.
    s = structural_case()
    pairs = list(s.evidence.pairs)
    M = s.network.output_dim
    rejected(with_evidence(s, StructuralProof(((pairs[0][0], M),) + tuple(pairs[1:]))), "name rows outside the layer")


def test_duplicated_split_row_is_rejected():
    # The format: an inner node splits an *undecided* row (docs/theory.md, section 4).
    cert = tree_case()
    tree = list(cert.evidence.tree)
    r = tree[0]
    a_end = subtree_end(tree, 1)
    A, B = tree[1:a_end], tree[a_end:]
    mutant = [r, r] + A + A + B
    _, trailing, problems = walk(mutant)
    assert trailing == 0 and ("duplicate", r) in problems
    res = exact_inj.check(_tree(cert, mutant))
    assert not res.valid and "already decided" in res.reason
    # Also a duplicate core row.
    cores = list(cert.evidence.cores)
    dup = Core(cores[0].support + cores[0].support[:1])
    rejected(_tree(cert, cores=[dup] + cores[1:]), "core 0 names rows outside 0..13 or repeats one")


def test_empty_core_is_rejected():
    cert = tree_case()
    cores = list(cert.evidence.cores)
    rejected(_tree(cert, cores=[Core(())] + cores[1:]), "core 0 is empty")


# --------------------------------------------------------------------------- structural mutants


def _antiparallel(wi, wj) -> bool:
    """Independent: w_j = -d w_i for some d > 0 (all 2x2 minors vanish, signs opposite)."""
    n = len(wi)
    if any(wi[a] * wj[c] != wi[c] * wj[a] for a in range(n) for c in range(n)):
        return False
    return all(x * y <= 0 for x, y in zip(wi, wj)) and any(x * y < 0 for x, y in zip(wi, wj))


def test_structural_pair_not_antiparallel_is_rejected():
    cert = structural_case()
    W = cert.network.layers[0].weight
    pairs = list(cert.evidence.pairs)
    (i0, j0), (i1, j1) = pairs[0], pairs[1]
    swapped = [(i0, j1), (i1, j0)] + pairs[2:]
    assert not _antiparallel(W[i0], W[j1]) and not _antiparallel(W[i1], W[j0])
    res = exact_inj.check(with_evidence(cert, StructuralProof(tuple(swapped))))
    assert not res.valid and "negative multiple" in res.reason
    # A row paired with itself, and a parallel (not antiparallel) pair.
    rejected(with_evidence(cert, StructuralProof(((i0, i0),) + tuple(pairs[1:]))), "repeat a row")
    net2 = net_of([[1, 0], [0, 1], [2, 0], [0, -1]])
    assert not _antiparallel([F(1), F(0)], [F(2), F(0)])
    bad = Certificate(net2, Domain(), Status.INJECTIVE, StructuralProof(((0, 2), (1, 3))))
    rejected(bad, "pair 0: row 2 is not a negative multiple of row 0")


def test_structural_proof_with_bias_condition_violated_is_rejected():
    good = structural_case()
    (layer,) = good.network.layers
    W, b = [list(r) for r in layer.weight], list(layer.bias)
    pairs = good.evidence.pairs
    i, j = pairs[0]
    d = -W[j][0] / W[i][0]
    assert d > 0 and d * b[i] + b[j] == 0
    b2 = list(b)
    b2[j] = b[j] - F(1, 100)  # d b_i + b_j = -1/100 < 0
    assert d * b2[i] + b2[j] < 0
    net2 = net_of(W, b2)
    # Independent: an explicit collision of net2 in the dead interval of u_0 = B_0.x.
    B = sympy.Matrix([[sympy.Rational(str(v)) for v in W[p]] for p, _ in pairs])
    lo, hi = b2[j] / d, -b2[i]

    def x_of(u0):
        u = sympy.Matrix([sympy.Rational(str(u0)), 5, 5])
        return [F(str(c)) for c in B.inv() * u]

    x, y = x_of(lo + (hi - lo) / 3), x_of(lo + 2 * (hi - lo) / 3)
    assert own_collides(net2, x, y)
    res = exact_inj.check(dataclasses.replace(good, network=net2))
    assert not res.valid and "bias condition" in res.reason


def test_structural_rows_not_independent_or_wrong_count_are_rejected():
    net = net_of([[1, 0], [2, 0], [-1, 0], [-2, 0], [0, 1], [0, -1]])
    # Rows 0 and 1 are parallel: B singular (sympy), so {0,1} cannot serve as B.
    assert srank([[F(1), F(0)], [F(2), F(0)]]) == 1
    bad = Certificate(net, Domain(), Status.INJECTIVE, StructuralProof(((0, 2), (1, 3))))
    rejected(bad, "not linearly independent")
    ok = Certificate(net, Domain(), Status.INJECTIVE, StructuralProof(((0, 2), (4, 5))))
    assert valid(ok)
    rejected(with_evidence(ok, StructuralProof(((0, 2),))), "needs 2 pairs, got 1")
    rejected(with_evidence(ok, StructuralProof(((0, 2), (4, 5), (1, 3)))), "needs 2 pairs, got 3")


# --------------------------------------------------------------------------- valid proof, other network


def test_valid_tree_proof_on_a_different_non_injective_network_is_rejected():
    cert = tree_case()
    (layer,) = cert.network.layers
    # Same rows, every bias -1000: near 0 every row is strictly negative.
    net2 = net_of([list(r) for r in layer.weight], [-1000] * layer.out_dim)
    x = [F(0)] * layer.in_dim
    y = [F(1, 1000)] + [F(0)] * (layer.in_dim - 1)
    assert own_collides(net2, x, y) and all(v == 0 for v in own_eval(net2, x))
    res = exact_inj.check(dataclasses.replace(cert, network=net2))
    assert not res.valid and "core 0: the multiplier gives lambda.b < 0" in res.reason, res.reason
    # Rows given a large positive first entry (bias 0): along -e_0 every row is
    # strictly negative, so z and z + e_1 collide while the rows stay negative
    # (|w_i1| <= 5, far below 10^9).
    W2 = [[F(1000) + abs(r[0])] + list(r[1:]) for r in layer.weight]
    b2 = [F(0)] * len(W2)
    z = [F(-10**6)] + [F(0)] * (layer.in_dim - 1)
    z2 = [F(-10**6), F(1)] + [F(0)] * (layer.in_dim - 2)
    net3 = net_of(W2, b2)
    assert own_collides(net3, z, z2)
    # Which core check fires depends on whether the engine wrote core 0's
    # multiplier (then it no longer cancels the new rows) or left it implicit
    # (then the new rows' multiplier has a negative entry); either is the
    # mathematics failing, not the format.
    rejected(dataclasses.replace(cert, network=net3), "multiplier has a negative entry",
             "multiplier does not cancel the rows")


def test_valid_structural_proof_on_a_different_non_injective_network_is_rejected():
    cert = structural_case()
    (layer,) = cert.network.layers
    W = [list(r) for r in layer.weight]
    # Flip the sign of row j_0: rows i_0 and j_0 are now parallel, so m = 2n rows
    # miss a direction.  Independent collision: far out along -w_{i0}-ish directions.
    i0, j0 = cert.evidence.pairs[0]
    W2 = [list(r) for r in W]
    W2[j0] = [-v for v in W[j0]]
    net2 = net_of(W2, [0] * len(W2))
    # rows i0 and j0 both negative along u_0 -> -oo; the other 4 rows constant in u_0.
    B = sympy.Matrix([[sympy.Rational(str(v)) for v in W[p]] for p, _ in cert.evidence.pairs])

    def x_of(u0):
        return [F(str(c)) for c in B.inv() * sympy.Matrix([u0, 1, 1])]

    x, y = x_of(-10), x_of(-11)
    assert own_collides(net2, x, y)
    rejected(dataclasses.replace(cert, network=net2), "is not a negative multiple")


def test_proof_for_a_multi_layer_network_is_rejected():
    cert = tree_case()
    (layer,) = cert.network.layers
    eye = [[int(i == j) for j in range(layer.out_dim)] for i in range(layer.out_dim)]
    net2 = Network((layer, Layer.from_rows(eye)))
    rejected(dataclasses.replace(cert, network=net2), "single ReLU layer only")


# --------------------------------------------------------------------------- valid-preserving mutations


def test_valid_preserving_mutations_are_accepted():
    # Witness: move y halfway to x along the collision direction; rows stay negative.
    w_cert = witness_case()
    w = w_cert.evidence
    y2 = tuple((a + c) / 2 for a, c in zip(w.x, w.y))
    assert own_collides(w_cert.network, w.x, y2)
    assert valid(with_evidence(w_cert, Witness(w.x, y2)))
    # Swap x and y.
    assert valid(with_evidence(w_cert, Witness(w.y, w.x)))

    # Explicit multipliers scaled by a positive number.
    cert = tree_case()
    cores = list(cert.evidence.cores)
    scaled = [Core(c.support, tuple(F(7, 3) * x for x in c.multiplier)) if c.multiplier else c for c in cores]
    assert scaled != cores
    assert valid(_tree(cert, cores=scaled))

    # An implicit core made explicit, with the multiplier computed here by sympy.
    (layer,) = cert.network.layers
    k = next(i for i, c in enumerate(cores) if c.multiplier is None)
    S = cores[k].support
    M = sympy.Matrix([[sympy.Rational(str(layer.weight[i][j])) for i in S] for j in range(layer.in_dim)])
    (lam,) = M.nullspace()
    if all(x <= 0 for x in lam):
        lam = -lam
    lam = tuple(F(str(x)) * 5 for x in lam)
    assert all(x > 0 for x in lam) and sum(x * layer.bias[i] for x, i in zip(lam, S)) >= 0
    explicit = cores[:k] + [Core(S, lam)] + cores[k + 1:]
    assert valid(_tree(cert, cores=explicit))

    # Cores listed in another order, tree codes renumbered to match.
    perm = list(range(len(cores)))[::-1]
    new_index = {old: new for new, old in enumerate(perm)}
    tree2 = [c if c >= RANK_LEAF else CORE_BASE - new_index[CORE_BASE - c] for c in cert.evidence.tree]
    assert valid(_tree(cert, tree=tree2, cores=[cores[o] for o in perm]))

    # Structural: the pairs listed in another order.
    s = structural_case()
    assert valid(with_evidence(s, StructuralProof(tuple(reversed(s.evidence.pairs)))))


# --------------------------------------------------------------------------- wrong verdict/evidence combos


def test_verdict_and_evidence_must_match():
    t = tree_case()
    w = witness_case()
    rejected(dataclasses.replace(t, verdict=Status.NOT_INJECTIVE), "needs a witness")
    rejected(dataclasses.replace(w, verdict=Status.INJECTIVE), "needs a proof")
    # A tree proof moved onto a layer of the SAME shape that is not injective
    # (every bias -1: 0 and e_1 / 100 both map to 0, checked here): rejected
    # for a mathematical reason, not for naming rows the layer lacks.
    (layer,) = t.network.layers
    dead = net_of([list(r) for r in layer.weight], [-1] * layer.out_dim)
    assert own_collides(dead, [F(0)] * 3, [F(1, 100), F(0), F(0)])
    rejected(dataclasses.replace(t, network=dead), "lambda.b < 0", "negative entry", "is zero on the strict rows")


# --------------------------------------------------------------------------- cost: check << solve


def test_checking_costs_far_less_than_deciding():
    rng = np.random.default_rng(0)
    net = net_of(gaussian(rng, 34, 5))
    # Medians over three interleaved repeats, compared as a ratio: a load spike
    # during one solve or one check (the solve takes ~0.1 s) no longer decides it.
    solves, checks = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        v = exact_inj.verify(net, time_limit=60, milp="none")
        solves.append(time.perf_counter() - t0)
        assert v.status is Status.INJECTIVE and isinstance(v.proof, TreeProof), v.reason
        assert len(v.proof.tree) > 500  # a tree of moderate size, not a trivial one
        cert = roundtrip(v.certificate)
        t0 = time.perf_counter()
        res = exact_inj.check(cert)
        checks.append(time.perf_counter() - t0)
        assert res.valid, res.reason
    solve, check = sorted(solves)[1], sorted(checks)[1]
    assert check < solve, (checks, solves)


# --------------------------------------------------------------------------- huge numbers
# Regression: rejection messages once formatted numbers with str(), which
# raises for integers over sys.get_int_max_str_digits() digits, so check()
# raised instead of returning invalid.


def _huge_digits() -> int:
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("no int-to-str digit limit in this interpreter")
    return limit + 100


def _huge_mutants():
    """Invalid certificates whose rejection message would quote a huge number."""
    big = 10 ** _huge_digits()
    net = net_of([[1], [-1]])
    out = {}
    x, y = (F(1, big),), (F(1),)
    assert own_eval(net, x) != own_eval(net, y)  # independent: outputs differ
    out["witness_outputs_differ"] = Certificate(net, Domain(), Status.NOT_INJECTIVE, Witness(x, y))
    x, y = (F(-2),), (F(-3),)
    assert own_collides(net_of([[1], [-1]], [-10, -10]), x, y)
    out["witness_active_rank"] = Certificate(net_of([[1], [-1]], [-10, -10]), Domain(), Status.NOT_INJECTIVE,
                                             Witness(x, y, active_rows=(), active_rank=big))
    t = tree_case()
    assert big >= t.network.output_dim  # independent: no such row
    out["tree_split_row"] = _tree(t, [big] + list(t.evidence.tree[1:]))
    # Structural: b_j so negative that d b_i + b_j < 0; dead interval of length ~ big.
    s_net = net_of([[1], [-1]], [0, -big])
    assert own_collides(s_net, (F(-1),), (F(-2),))
    out["structural_bias"] = Certificate(s_net, Domain(), Status.INJECTIVE, StructuralProof(((0, 1),)))
    return out


@pytest.mark.parametrize("case", ["witness_outputs_differ", "witness_active_rank", "tree_split_row", "structural_bias"])
def test_invalid_certificate_with_huge_numbers_is_rejected_not_raised(case):
    cert = _huge_mutants()[case]
    why = {"witness_outputs_differ": "outputs differ at coordinate 0",
           "witness_active_rank": "differs from the exact rank 0",
           "tree_split_row": "but the layer has 14 rows", "structural_bias": "bias condition"}[case]
    reason = rejected(cert, why)
    assert "(4401 digits)" in reason or "digits)" in reason, reason  # the huge number is shortened, not dropped


def test_valid_certificate_with_huge_numbers_checks():
    big = 10 ** _huge_digits()
    net = net_of([[1], [-1]], [-big, -big])
    x, y = (F(-1, big),), (F(big - 1),)
    assert own_collides(net, x, y)
    cert = Certificate(net, Domain(), Status.NOT_INJECTIVE, Witness(x, y))
    assert valid(cert) and valid(roundtrip(cert))


# --------------------------------------------------------------------------- versions 1 and 2


def _line_leaf_case():
    """The line-leaf certificate of test_line_leaf_accepted_only_when_...: a
    core leaf at P = {0} whose core rows lie outside N."""
    rows = [[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1]]
    cores = (Core(support=(2, 3)), Core(support=(0, 1)))
    tree = (0, CORE_BASE - 0, 1, CORE_BASE - 0, CORE_BASE - 1)
    return Certificate(net_of(rows), Domain(), Status.INJECTIVE, TreeProof(cores, tree))


def test_new_certificates_are_version_2_and_keep_their_version():
    cert = _line_leaf_case()
    assert cert.version == 2 and cert.to_json()["version"] == 2
    back = Certificate.from_json(json.loads(json.dumps(cert.to_json())))
    assert back.version == 2 and valid(back)
    old = dataclasses.replace(cert, version=1)
    assert Certificate.from_json(json.loads(json.dumps(old.to_json()))).version == 1


def test_version_1_is_checked_by_version_1_rules():
    # The same tree as version 1: line leaves did not exist, so the core leaf
    # with rows outside N is invalid there, whatever rank P has.
    doc = _line_leaf_case().to_json()
    doc["version"] = 1
    res = exact_inj.check(Certificate.from_json(doc))
    assert not res.valid and "version 1" in res.reason
    del doc["version"]  # a file without a version is version 1
    assert Certificate.from_json(doc).version == 1
    assert not exact_inj.check(Certificate.from_json(doc)).valid
    # A version 1 tree without line leaves (every core row in N) still passes.
    rows = [[1, 0], [-1, 0], [0, 1], [0, -1]]
    cores = (Core(support=(0, 1)), Core(support=(2, 3)))
    # Split 0: P{0} -> split 2: P{0,2} rank leaf; N{2} -> split 3: P{0,3} rank leaf, N{2,3} core 1.
    # N{0} -> split 1: P{1} -> split 2 ... ; keep it simple: N{0} -> split 1 -> P{1}: split 2, 3 as above; N{0,1}: core 0.
    sub = (2, RANK_LEAF, 3, RANK_LEAF, CORE_BASE - 1)
    tree = (0,) + sub + (1,) + sub + (CORE_BASE - 0,)
    v1 = Certificate(net_of(rows), Domain(), Status.INJECTIVE, TreeProof(cores, tree), version=1)
    assert valid(v1) and valid(Certificate.from_json(json.loads(json.dumps(v1.to_json()))))


def test_unknown_versions_are_refused():
    doc = _line_leaf_case().to_json()
    for bad in (3, 0, True, "2"):
        doc["version"] = bad
        with pytest.raises(exact_inj.InputError, match="unsupported certificate format"):
            Certificate.from_json(doc)
    res = exact_inj.check(dataclasses.replace(_line_leaf_case(), version=3))
    assert not res.valid and "version 3" in res.reason
