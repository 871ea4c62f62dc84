"""The nested-dissection elimination mod p (exact_inj/exact/ndrank.py).

Soundness: "nonsingular" must never be said of a matrix whose exact rank
over Q is short (fmpz_mat.rank, exact integer arithmetic in flint), on
hundreds of small random kernel operators, many made singular on purpose
(rank-deficient kernels, zero channels, repeated channels, identical
inputs), 1-D and 2-D, odd sizes, stride 1 and 2, transposed or not, and on
random sparse grid matrices with deep dissection trees (small leaves).
Usefulness: on the generator's shape (stride-2 kernel-4 padding-1
transposed convolutions with 2^d C_out = C_in) and on generic random grid
matrices it says so.  And the checker rejects a singular C named as B.
"""

from __future__ import annotations

from dataclasses import replace
from math import gcd

import flint
import numpy as np
import pytest

from exact_inj.certify.check import check
from exact_inj.certify.schema import Certificate, StructuralProof
from exact_inj.exact import ndrank
from exact_inj.model import Domain, Network
from exact_inj.model.kernels import KernelSpec
from exact_inj.model.stages import linear_rank
from exact_inj.verdict import Status


def exact_rank(spec: KernelSpec, idx) -> int:
    """The rank over Q of the rows idx of the operator, from its sparse rows."""
    n = spec.in_dim
    rows = [spec.sparse_row(i) for i in idx]
    scale = 1
    for row in rows:
        for v in row.values():
            scale = scale * v.denominator // gcd(scale, v.denominator)
    dense = [[0] * n for _ in rows]
    for out, row in zip(dense, rows):
        for c, v in row.items():
            out[c] = int(v * scale)
    return flint.fmpz_mat(dense).rank()


def random_kernel_spec(rng: np.random.Generator) -> KernelSpec | None:
    d = int(rng.integers(1, 3))
    s = int(rng.integers(1, 3))
    transposed = bool(rng.integers(0, 2))
    k = int(rng.integers(1, 5))
    pad = int(rng.integers(0, (k + 1) // 2 + 1)) if k > 1 else 0
    if transposed:
        cout = int(rng.integers(1, 4))
        cin = cout * s ** d if rng.integers(0, 4) else int(rng.integers(1, 6))
    else:
        cin = int(rng.integers(1, 4))
        cout = cin * s ** d if rng.integers(0, 4) else int(rng.integers(1, 6))
    N = [int(rng.integers(1, 8)) for _ in range(d)]
    K = rng.integers(-3, 4, size=(cout, cin) + (k,) * d)
    mode = int(rng.integers(0, 6))
    if mode == 1:
        K[:, 0] = 0                      # a zero input channel: a null vector
    elif mode == 2 and cout > 1:
        K[1] = 2 * K[0]                  # repeated output channel
    elif mode == 3 and cin > 1:
        K[:, -1] = K[:, 0]               # two inputs entering identically
    elif mode == 4:
        K[..., 1:] = 0 if k > 1 else K[..., 1:]   # only the first taps
    try:
        return KernelSpec.build(K.tolist(), cin, cout, N, strides=[s] * d, pads=[pad] * d, transposed=transposed,
                                bias=[int(v) for v in rng.integers(-2, 3, size=cout)])
    except ValueError:
        return None


def test_never_claims_a_singular_kernel_operator_nonsingular():
    rng = np.random.default_rng(20261205)
    seen = {"shown": 0, "singular": 0, "full_not_shown": 0}
    tried = 0
    while tried < 300:
        spec = random_kernel_spec(rng)
        if spec is None or spec.out_dim < spec.in_dim or spec.in_dim > 400:
            continue
        tried += 1
        n = spec.in_dim
        idx = list(range(n)) if rng.integers(0, 3) else sorted(rng.choice(spec.out_dim, n, replace=False).tolist())
        r = exact_rank(spec, idx)
        op = spec.grid_operator(idx)
        # Deep trees too (leaf 1: every cell its own node), not only the default.
        for leaf in (1, 4, ndrank.LEAF_UNKNOWNS):
            got, why = ndrank.nonsingular(*op, leaf=leaf)
            assert not got or r == n, (spec, idx, leaf, why)
        shown = ndrank.rows_nonsingular(spec, idx)
        assert shown is None or (shown is True and r == n)
        seen["shown" if shown else ("singular" if r < n else "full_not_shown")] += 1
    # The mix is what it is meant to be: many singular, many shown.
    assert seen["singular"] >= 100 and seen["shown"] >= 50, seen


@pytest.mark.parametrize("d", [1, 2])
def test_generator_shape_is_shown_and_agrees_with_exact_rank(d):
    rng = np.random.default_rng(d)
    for _ in range(12):
        cout = int(rng.integers(1, 4))
        N = [int(rng.integers(1, 8)) for _ in range(d)]
        K = rng.integers(-8, 9, size=(cout, cout * 2 ** d) + (4,) * d)
        spec = KernelSpec.build(K.tolist(), cout * 2 ** d, cout, N, strides=[2] * d, pads=[1] * d, transposed=True)
        n = spec.in_dim
        assert exact_rank(spec, range(n)) == n
        for leaf in (1, 16, ndrank.LEAF_UNKNOWNS):
            assert ndrank.nonsingular(*spec.grid_operator(range(n)), leaf=leaf)[0]


def random_grid_matrix(rng, shape, per_cell, density, singular: str | None):
    """A random integer matrix with per_cell rows and columns on every cell
    of the grid, coupling cells at most one apart; made singular as asked."""
    cells = int(np.prod(shape))
    n = cells * per_cell
    cell = np.repeat(np.arange(cells), per_cell)
    pos = np.array(np.unravel_index(cell, shape)).T
    A = np.zeros((n, n), dtype=np.int64)
    near = np.abs(pos[:, None, :] - pos[None, :, :]).max(axis=2) <= 1
    mask = near & (rng.random((n, n)) < density)
    A[mask] = rng.integers(-5, 6, size=int(mask.sum()))
    A[np.arange(n), np.arange(n)] += rng.integers(1, 4, size=n)
    if singular == "zero_row":
        A[rng.integers(n)] = 0
    elif singular == "dependent_rows" and n > 1:
        # A row that is a combination of two rows of the same cell (so the
        # coupling stays local).
        c = int(rng.integers(cells))
        rows = np.flatnonzero(cell == c)
        if len(rows) >= 3:
            A[rows[0]] = 2 * A[rows[1]] - A[rows[2]]
        else:
            A[rows[0]] = 0
    elif singular == "dependent_cols":
        j = int(rng.integers(n))
        A[:, j] = 0
    r, c = np.nonzero(A)
    return n, r, c, A[r, c], cell, cell, tuple(shape), A


def test_random_grid_matrices_against_exact_rank():
    rng = np.random.default_rng(7)
    counts = {"shown_full": 0, "singular_refused": 0}
    for t in range(300):
        d = int(rng.integers(1, 3))
        shape = [int(rng.integers(1, 7)) for _ in range(d)]
        per_cell = int(rng.integers(1, 4))
        singular = [None, "zero_row", "dependent_rows", "dependent_cols"][t % 4]
        n, r, c, v, rc, cc, shp, A = random_grid_matrix(rng, shape, per_cell, float(rng.uniform(0.2, 0.9)), singular)
        exact = flint.fmpz_mat(A.tolist()).rank()
        modp = flint.nmod_mat(A.tolist(), ndrank.PRIMES[0]).rank()
        for leaf in (1, 2, 1000):
            got, why = ndrank.nonsingular(n, r, c, v, rc, cc, shp, leaf=leaf)
            assert not got or (exact == n and modp == n), (t, leaf, why)
        if exact < n:
            counts["singular_refused"] += 1
        elif got:
            counts["shown_full"] += 1
    assert counts["singular_refused"] >= 150 and counts["shown_full"] >= 60, counts


def test_entries_that_do_not_fit_the_dissection_are_not_shown():
    # An entry coupling cells 0 and 2 of a 1-D grid of 3 cells: the reach is
    # read off the entries (2), so the dissection still separates; a wrong
    # reach is impossible by construction, and unbalanced cells are refused.
    n, rows, cols = 3, np.array([0, 1, 2, 0]), np.array([0, 1, 2, 2])
    got, _ = ndrank.nonsingular(n, rows, cols, np.array([1, 1, 1, 5]), np.arange(3), np.arange(3), (3,), leaf=1)
    assert got
    got, why = ndrank.nonsingular(n, rows, cols, np.array([1, 1, 1, 5]), np.array([0, 0, 1]), np.arange(3), (3,))
    assert not got and "balanced" in why


def test_large_entries_are_reduced_exactly():
    # Entries far beyond 2^53 are reduced mod p as integers before any float:
    # det [[p, 1], [0, 1]] = p is 0 mod p, det [[p + 1, 1], [0, 1]] = p + 1 is not.
    p = ndrank.PRIMES[0]
    rows, cols = np.array([0, 0, 1]), np.array([0, 1, 1])
    big = np.array([p * (1 << 40), 1, 1], dtype=np.int64)
    assert not ndrank.nonsingular(2, rows, cols, big, np.array([0, 1]), np.array([0, 1]), (2,), leaf=1)[0]
    big[0] += 1
    assert ndrank.nonsingular(2, rows, cols, big, np.array([0, 1]), np.array([0, 1]), (2,), leaf=1)[0]


def pair_layer(K, cin, cout, N, bias=None):
    """[C; -4C] of a stride-2 kernel-4 padding-1 transposed convolution: channel
    cout + j is -4 times channel j."""
    K = np.asarray(K)
    full = np.concatenate([K, -4 * K])
    b = bias if bias is not None else [0] * (2 * cout)
    spec = KernelSpec.build(full.tolist(), cin, 2 * cout, N, strides=[2, 2], pads=[1, 1], transposed=True, bias=b)
    return spec.layer()


def test_checker_accepts_a_nonsingular_c_and_rejects_a_singular_one():
    rng = np.random.default_rng(5)
    cout, N = 2, [3, 3]
    K = rng.integers(-8, 9, size=(cout, 4 * cout, 4, 4))
    layer = pair_layer(K, 4 * cout, cout, N)
    n, per = layer.in_dim, 36
    pairs = tuple((i, cout * per + i) for i in range(n))
    net = Network((layer,))
    good = check(Certificate(net, Domain(), Status.INJECTIVE, StructuralProof(pairs)))
    assert good.valid, good.reason
    # The mutant: C with two input channels entering identically is singular
    # (a kernel null vector), yet every pair is a genuine [B; -4B] pair.
    K2 = K.copy()
    K2[:, 1] = K2[:, 0]
    bad_layer = pair_layer(K2, 4 * cout, cout, N)
    assert exact_rank(bad_layer.spec, range(n)) < n
    bad = check(Certificate(Network((bad_layer,)), Domain(), Status.INJECTIVE, StructuralProof(pairs)))
    assert not bad.valid and "not linearly independent" in bad.reason


def test_linear_rank_of_a_square_transposed_convolution():
    rng = np.random.default_rng(11)
    K = rng.integers(-8, 9, size=(2, 8, 4, 4))
    spec = KernelSpec.build(K.tolist(), 8, 2, [4, 4], strides=[2, 2], pads=[1, 1], transposed=True)
    layer = spec.layer("linear")
    assert linear_rank(layer, Domain.orthant()) == layer.in_dim == exact_rank(spec, range(layer.in_dim))
    K[:, 3] = 0  # a zero input channel: rank short, found by the exact fallback
    spec0 = replace(spec, kernel=KernelSpec.build(K.tolist(), 8, 2, [4, 4], strides=[2, 2], pads=[1, 1],
                                                  transposed=True).kernel)
    r = linear_rank(spec0.layer("linear"), Domain.orthant())
    assert r == exact_rank(spec0, range(layer.in_dim)) < layer.in_dim


def test_memo_is_per_object_and_per_rows():
    rng = np.random.default_rng(3)
    K = rng.integers(-8, 9, size=(1, 4, 4, 4))
    a = KernelSpec.build(K.tolist(), 4, 1, [3, 3], strides=[2, 2], pads=[1, 1], transposed=True)
    K[:, 2] = K[:, 1]
    b = KernelSpec.build(K.tolist(), 4, 1, [3, 3], strides=[2, 2], pads=[1, 1], transposed=True)
    assert ndrank.rows_nonsingular(a, range(36)) is True
    assert ndrank.rows_nonsingular(b, range(36)) is None     # a different object: computed, not remembered
    assert ndrank.rows_nonsingular(a, range(36)) is True


def test_checker_channel_path_rejects_a_failing_bias_condition():
    # [C; -4C] with b_o = -1, b_o' = 0: 4 * (-1) + 0 < 0, the dead zone of theory section 4.
    rng = np.random.default_rng(8)
    K = rng.integers(-8, 9, size=(1, 4, 4, 4))
    layer = pair_layer(K, 4, 1, [2, 2], bias=[-1, 0])
    n = layer.in_dim
    pairs = tuple((i, 16 + i) for i in range(n))
    res = check(Certificate(Network((layer,)), Domain(), Status.INJECTIVE, StructuralProof(pairs)))
    assert not res.valid and "bias condition" in res.reason
    # Rows of different positions are not a pair, whatever the channels.
    good = pair_layer(K, 4, 1, [2, 2])
    shifted = tuple((i, 16 + (i + 1) % 16) for i in range(n))
    res = check(Certificate(Network((good,)), Domain(), Status.INJECTIVE, StructuralProof(shifted)))
    assert not res.valid and "negative multiple" in res.reason


def test_rows_or_columns_outside_the_dissection_are_not_shown():
    rows, cols, vals = np.array([0, 1]), np.array([0, 1]), np.array([1, 1])
    # A row on a cell outside the grid: bincount grows, the balance test refuses.
    got, why = ndrank.nonsingular(2, rows, cols, vals, np.array([0, 2]), np.array([0, 1]), (2,))
    assert not got
    # Cell lists of the wrong length.
    got, why = ndrank.nonsingular(3, rows, cols, vals, np.array([0, 1]), np.array([0, 1]), (2,))
    assert not got and "no node" in why


def test_several_rank_questions_at_once_answer_as_one_at_a_time():
    rng = np.random.default_rng(21)
    jobs, want = [], []
    for k in range(8):
        cout, N = 1 + k % 2, 2 + k % 3
        K = rng.integers(-3, 4, size=(cout, 4 * cout, 4, 4))
        if k % 3 == 0:
            K[:, 1] = K[:, 0]   # a kernel null vector: singular, never shown
        spec = KernelSpec.build(K.tolist(), 4 * cout, cout, [N, N], strides=[2, 2], pads=[(1, 1), (1, 1)],
                                transposed=True)
        n = spec.in_dim
        jobs.append((spec, range(n)))
        want.append(True if exact_rank(spec, range(n)) == n else None)
    got = ndrank.rows_nonsingular_all(jobs)
    assert got == [ndrank.rows_nonsingular(spec, idx) for spec, idx in jobs]
    assert all(w is True for g, w in zip(got, want) if g is True)   # never "nonsingular" wrongly
    assert sum(g is True for g in got) >= 3 and sum(w is None for w in want) >= 2
