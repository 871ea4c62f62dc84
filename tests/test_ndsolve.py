"""Exact solves from the nested-dissection factors (exact_inj/exact/ndsolve.py).

Every solution is compared with python-flint's exact rational solve of the
same matrix (fmpq_mat.solve, built here from the COO entries); factors of
one matrix used for another must give None, never a wrong vector; the cache
answers the same object and rows from memory and nothing else.
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm

import flint
import numpy as np
import pytest

from exact_inj.exact import densemod, ndrank, ndsolve
from exact_inj.model.kernels import KernelSpec


def generator_spec(rng, cout: int, N: int, d: int = 2, span: int = 3) -> KernelSpec:
    """A stride-2, kernel-4, padding-1 transposed convolution with 2^d cout
    input channels: square, as the generator's stages."""
    cin = cout * 2 ** d
    K = rng.integers(-span, span + 1, size=(cout, cin) + (4,) * d).tolist()
    return KernelSpec.build(K, cin, cout, [N] * d, strides=[2] * d, pads=[(1, 1)] * d, transposed=True)


def nonsingular_specs(rng, count: int) -> list[KernelSpec]:
    """``count`` generator-shaped operators (2 output channels on 3 x 3) shown nonsingular."""
    specs: list[KernelSpec] = []
    while len(specs) < count:
        spec = generator_spec(rng, 2, 3)
        if ndrank.rows_nonsingular(spec, range(spec.in_dim)):
            specs.append(spec)
    return specs


def dense(op) -> flint.fmpq_mat:
    n, rows, cols, vals = op[:4]
    A = flint.fmpq_mat(n, n)
    for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist()):
        A[r, c] += v
    return A


def integer_rhs(A: flint.fmpq_mat, x: list[Fraction]) -> tuple[list[int], int]:
    """b = A x scaled to integers by D: (D b, D)."""
    n = len(x)
    b = A * flint.fmpq_mat(n, 1, [flint.fmpq(v.numerator, v.denominator) for v in x])
    D = lcm(*(int(b[i, 0].q) for i in range(n)))
    return [int(b[i, 0].p) * (D // int(b[i, 0].q)) for i in range(n)], D


@pytest.mark.parametrize("seed", range(3))
def test_solutions_equal_flints_on_random_generator_operators(seed):
    rng = np.random.default_rng([seed, 16])
    solved = toeplitz = 0
    for _ in range(40):
        spec = generator_spec(rng, int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 3)))
        n = spec.in_dim
        got = ndrank.rows_factor(spec, range(n))
        if got is None:  # not shown (singular, or an unlucky prime): nothing to solve with
            continue
        op, p, nodes = got
        if op is None:  # shown through the Toeplitz structure: its own factors
            op, F = spec.grid_operator(range(n)), nodes
            toeplitz += 1
        else:
            F = ndsolve.Factor(n, p, nodes)
        A = dense(op)
        assert A.rank() == n  # shown nonsingular mod p, so over Q
        # Solutions with small and with 60-bit denominators, and an integer one.
        for den in (1, 7, (1 << 60) + 33):
            x = [Fraction(int(rng.integers(-10**6, 10**6)), int(rng.integers(1, 50)) * den) for _ in range(n)]
            b, D = integer_rhs(A, x)
            sol = ndsolve.solve_exact(n, *ndsolve.coo_matvec(op), F, b)
            assert sol == tuple(v * D for v in x)
            solved += 1
    assert solved >= 60 and toeplitz >= 5   # both routes solved


def test_modular_solve_matches_flint_mod_p_with_deep_trees_and_wide_pivot_blocks():
    rng = np.random.default_rng(7)
    # leaf 1: many tiny fronts; cout 32 on 3 x 3 cells of 128: a slab of 384 pivots,
    # wider than PIVOT_BLOCK, so that the factors span several blocks.
    widest = 0
    for cout, N, leaf in ((1, 6, 1), (2, 4, 4), (32, 3, 256), (16, 4, 256)):
        spec = generator_spec(rng, cout, N)
        op = spec.grid_operator(range(spec.in_dim))
        nodes: list = []
        shown, _ = ndrank.nonsingular(*op, leaf=leaf, factors=nodes)
        assert shown
        n, p = op[0], ndrank.PRIMES[0]
        widest = max(widest, max(len(nd[0]) for nd in nodes))
        F = ndsolve.Factor(n, p, nodes)
        A = flint.nmod_mat(n, n, [0] * (n * n), p)
        for r, c, v in zip(*(a.tolist() for a in op[1:4])):
            A[r, c] = (int(A[r, c]) + v) % p
        for _ in range(3):
            b = rng.integers(-(p // 2), p // 2, size=n).astype(np.float64)
            x = F.solve(b)
            want = A.solve(flint.nmod_mat(n, 1, [int(v) % p for v in b], p))
            assert [int(v) % p for v in x] == [int(want[i, 0]) for i in range(n)]
            assert np.abs(x).max() <= (p + 1) // 2
    assert widest > densemod.PIVOT_BLOCK


def factor_of(spec):
    """(integer rows, a factor that solves them mod p) by either route, or None."""
    got = ndrank.rows_factor(spec, range(spec.in_dim))
    if got is None:
        return None
    op, p, nodes = got
    if op is None:  # shown through the Toeplitz structure (exact.quadrant)
        return spec.grid_operator(range(spec.in_dim)), nodes
    return op, ndsolve.Factor(op[0], p, nodes)


def test_wrong_factors_never_give_a_wrong_solution():
    rng = np.random.default_rng(3)
    done = 0
    kinds = set()
    while done < 10:
        s1, s2 = generator_spec(rng, 1, 3), generator_spec(rng, 1, 3)
        g1, g2 = factor_of(s1), factor_of(s2)
        if g1 is None or g2 is None:
            continue
        kinds.add(type(g2[1]).__name__)
        n = s1.in_dim
        x = [Fraction(int(v), 3) for v in rng.integers(-20, 20, size=n)]
        b, _ = integer_rhs(dense(g1[0]), x)
        # s1's matrix, s2's factors: every lifting step's division fails or the check A E = d r does.
        got = ndsolve.solve_exact(n, *ndsolve.coo_matvec(g1[0]), g2[1], b, max_steps=8)
        assert got is None or dense(g1[0]) * flint.fmpq_mat(n, 1, [flint.fmpq(v.numerator, v.denominator)
                                                                      for v in got]) == \
            flint.fmpq_mat(n, 1, b)
        done += 1
    assert "QuadrantFactor" in kinds


def test_too_few_steps_or_too_large_entries_give_none():
    rng = np.random.default_rng(5)
    spec = generator_spec(rng, 1, 1)
    while (got := ndrank.rows_factor(spec, range(spec.in_dim))) is None:  # pragma: no cover - seed-dependent
        spec = generator_spec(rng, 1, 1)
    op, p, nodes = got
    n = op[0]
    F = ndsolve.Factor(n, p, nodes)
    # 100-bit numerators and denominators: two lifting steps (40 bits) cannot recover them.
    x = [Fraction(int(rng.integers(1, 1 << 62)) << 40, (1 << 100) + 2 * i + 1) for i in range(n)]
    b, _ = integer_rhs(dense(op), x)
    assert ndsolve.solve_exact(n, *ndsolve.coo_matvec(op), F, b, max_steps=2) is None
    assert ndsolve.solve_exact(n, *ndsolve.coo_matvec(op), F, b) is not None
    matvec, _ = ndsolve.coo_matvec(op)
    assert ndsolve.solve_exact(n, matvec, 2.0 ** 40, F, b) is None   # digits times the bound would round
    with pytest.raises(ValueError):
        ndsolve.solve_exact(n, matvec, 1.0, F, b[:-1])


def test_factor_cache_is_per_object_and_rows():
    rng = np.random.default_rng(11)
    spec = generator_spec(rng, 2, 3)
    while ndrank.rows_factor(spec, range(spec.in_dim)) is None:  # pragma: no cover - seed-dependent
        spec = generator_spec(rng, 2, 3)
    n = spec.in_dim
    f1 = ndsolve.factor_for(spec, range(n))
    assert f1 is not None and ndsolve.factor_for(spec, list(range(n))) is f1
    # The same kernel in a new object: computed again, not taken from memory.
    twin = KernelSpec.build(spec.kernel, spec.in_channels, spec.out_channels, spec.input_size,
                            strides=spec.strides, pads=spec.pads, transposed=True)
    f2 = ndsolve.factor_for(twin, range(n))
    assert f2 is not None and f2 is not f1
    # The checker's question about the same rows is answered (from the memo rows_factor filled).
    assert ndrank.rows_nonsingular(spec, range(n)) is True
    # Rows that are not square: no factors.
    assert ndsolve.factor_for(spec, range(n - 1)) is None


def test_prefetched_factors_are_waited_for_and_solve_alike():
    rng = np.random.default_rng(13)
    specs = nonsingular_specs(rng, 3)
    for spec in specs:
        ndsolve.prefetch(spec, range(spec.in_dim))
        ndsolve.prefetch(spec, range(spec.in_dim))     # a second request: nothing more
    for spec in specs:
        n = spec.in_dim
        F = ndsolve.factor_for(spec, range(n))
        assert F is not None and ndsolve.factor_for(spec, range(n)) is F
        op = spec.grid_operator(range(n))
        x = [Fraction(int(v), 5) for v in rng.integers(-50, 50, size=n)]
        b, D = integer_rhs(dense(op), x)
        assert ndsolve.solve_exact(n, *ndsolve.coo_matvec(op), F, b) == tuple(v * D for v in x)
    # A prefetch past its deadline gives no factors: the wait for it stops at the
    # caller's deadline (TimeoutError) or finds that it stopped (None).
    late = generator_spec(rng, 2, 3)
    ndsolve.prefetch(late, range(late.in_dim), deadline=0.0)
    try:
        got = ndsolve.factor_for(late, range(late.in_dim), deadline=0.0)
    except TimeoutError:
        got = None
    assert got is None


def test_a_pending_factorisation_of_another_object_is_not_taken():
    """Review: pending prefetches are keyed by id(spec), and an id can be reused
    once its object is freed; factor_for must check the object, not the key."""
    import weakref
    from concurrent.futures import Future

    rng = np.random.default_rng(23)
    mine, other = nonsingular_specs(rng, 2)
    n = mine.in_dim
    idx = tuple(range(n))
    stale: Future = Future()
    stale.set_result(ndsolve.factor_for(other, idx))          # another operator's factors
    ndsolve._PENDING[(id(mine), hash(idx))] = (weakref.ref(other), idx, stale)
    try:
        F = ndsolve.factor_for(mine, idx)
    finally:
        ndsolve._PENDING.pop((id(mine), hash(idx)), None)
    op = mine.grid_operator(idx)
    x = [Fraction(int(v), 7) for v in rng.integers(-30, 30, size=n)]
    b, D = integer_rhs(dense(op), x)
    assert F is not stale.result() and ndsolve.solve_exact(n, *ndsolve.coo_matvec(op), F, b) == tuple(v * D for v in x)


def test_a_finished_prefetch_is_kept_without_being_asked_for():
    rng = np.random.default_rng(29)
    spec = generator_spec(rng, 2, 3)
    while not ndrank.rows_nonsingular(spec, range(spec.in_dim)):  # pragma: no cover - seed-dependent
        spec = generator_spec(rng, 2, 3)
    idx = tuple(range(spec.in_dim))
    ndsolve.prefetch(spec, idx)
    key = (id(spec), hash(idx))
    for _ in range(2000):
        if key not in ndsolve._PENDING:
            break
        import time
        time.sleep(0.005)
    assert key not in ndsolve._PENDING and key in ndsolve._CACHE and ndsolve._CACHE[key][0]() is spec


def test_prefetches_not_started_can_be_cancelled_and_are_then_done_in_the_foreground(monkeypatch):
    # The peel cancels the background jobs it did not need (review: they kept
    # the cores and held up the interpreter's exit); a factor_for waiting on a
    # cancelled one does the work itself instead of raising.
    import time

    calls = []

    def slow(spec, indices, deadline):
        calls.append(spec)
        time.sleep(0.3)
        return None

    monkeypatch.setattr(ndsolve, "_factor", slow)
    rng = np.random.default_rng(21)
    specs = [generator_spec(rng, 1, 3) for _ in range(2 + ndsolve.FACTOR_THREADS)]
    jobs = [ndsolve.prefetch(s, range(s.in_dim)) for s in specs]
    assert all(j is not None for j in jobs)
    t = time.perf_counter()
    while not all(j.running() for j in jobs[:ndsolve.FACTOR_THREADS]) and time.perf_counter() - t < 5:
        time.sleep(0.01)   # the workers pick the first jobs up
    # A factor_for already waiting on the last job when it is cancelled.
    import threading

    got = []
    waiter = threading.Thread(target=lambda: got.append(ndsolve.factor_for(specs[-1], range(specs[-1].in_dim))))
    waiter.start()
    time.sleep(0.1)
    cancelled = [j.cancel() for j in jobs]
    assert cancelled[-1] and not cancelled[0]   # the first ones had started, the last had not
    waiter.join(10)
    assert got == [None]   # done in the foreground, no CancelledError
    for j in jobs:
        if not j.cancelled():
            j.result()
    assert specs[-1] in calls and not ndsolve._PENDING
