"""Metamorphic tests: transformations that cannot change the answer (docs/theory.md, section 7).

- permuting rows;
- scaling a row and its bias by the same positive rational;
- the change of variables x -> Ax + t with A invertible (W -> WA, b -> b + Wt).

For each base layer the engine's verdict must be the same before and after, and
equal to the reference's.  A witness is carried through the transformation and
must collide in the transformed layer (our own exact evaluation), and the
engine's own witness on the transformed layer is carried back to the original.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from reference import is_collision, rank, reference_injective, solve_square
from test_differential import generate_layers

F = Fraction
TIME_LIMIT = 20
SEED, COUNT = 4242, 36


def _mat_vec(A, x):
    return [sum((a * v for a, v in zip(row, x)), F(0)) for row in A]


def _rand_pos_rational(rng):
    # Both ordinary and extreme positive factors: scaling is exact, so
    # magnitude must not matter to an exact engine.
    if rng.random() < 0.3:
        return F(10) ** int(rng.integers(-9, 10))
    return F(int(rng.integers(1, 1000)), int(rng.integers(1, 1000)))


def t_permute(W, b, rng):
    p = [int(i) for i in rng.permutation(len(W))]
    ident = lambda x: list(x)  # noqa: E731 - inputs are untouched
    return [list(W[i]) for i in p], [b[i] for i in p], ident, ident


def t_scale(W, b, rng):
    cs = [_rand_pos_rational(rng) for _ in W]
    ident = lambda x: list(x)  # noqa: E731
    return [[c * v for v in row] for c, row in zip(cs, W)], [c * bi for c, bi in zip(cs, b)], ident, ident


def t_affine(W, b, rng):
    """g(x') = f(A x' + t) = ReLU(WA x' + (Wt + b)).

    A point x of f corresponds to x' = A^{-1}(x - t) of g, so a collision of f
    maps to a collision of g and back (x = A x' + t)."""
    n = len(W[0])
    while True:
        A = [[F(int(rng.integers(-3, 4)), int(rng.integers(1, 3))) for _ in range(n)] for _ in range(n)]
        if rank(A, n) == n:
            break
    t = [F(int(rng.integers(-5, 6)), int(rng.integers(1, 4))) for _ in range(n)]
    W2 = [[sum((row[k] * A[k][j] for k in range(n)), F(0)) for j in range(n)] for row in W]
    b2 = [bi + sum((a * v for a, v in zip(row, t)), F(0)) for row, bi in zip(W, b)]
    to_new = lambda x: solve_square(A, [xi - ti for xi, ti in zip(x, t)])  # noqa: E731
    to_old = lambda x: [v + ti for v, ti in zip(_mat_vec(A, x), t)]  # noqa: E731
    return W2, b2, to_new, to_old


def t_all(W, b, rng):
    # Composition of the three: catches engines that are invariant under each
    # alone only because of some accidental normalisation.
    W1, b1, n1, o1 = t_affine(W, b, rng)
    W2, b2, _, _ = t_scale(W1, b1, rng)
    W3, b3, _, _ = t_permute(W2, b2, rng)
    # Scaling and permutation leave points where they are, so the composite
    # point maps are those of the affine step.
    return W3, b3, n1, o1


TRANSFORMS = {"permute": t_permute, "scale": t_scale, "affine": t_affine, "all": t_all}


def _bases():
    # A varied, seeded sample of the differential generator's families
    # (thin cells, magnitudes, degenerate rows, structural biases, ...).
    return generate_layers(SEED, COUNT)


def _transformed(case, seed):
    rng = np.random.default_rng(seed)
    W = [list(r) for r in case.W]
    b = list(case.b)
    for name, fn in TRANSFORMS.items():
        W2, b2, to_new, to_old = fn(W, b, rng)
        yield name, W2, b2, to_new, to_old


def test_reference_is_invariant():
    """The transformations themselves are right: the reference answer is kept,
    and the reference's own witnesses map across.  (Needs no engine.)"""
    from reference import reference_decide

    checked = {True: 0, False: 0}
    for k, case in enumerate(_bases()):
        inj, wit = reference_decide(case.W, case.b)
        for name, W2, b2, to_new, to_old in _transformed(case, 1000 + k):
            assert reference_injective(W2, b2) is inj, (name, case.repro())
            if not inj:
                x2, y2 = to_new(wit[0]), to_new(wit[1])
                assert is_collision(W2, b2, x2, y2), (name, case.repro())
                assert is_collision(case.W, case.b, to_old(x2), to_old(y2))
            checked[inj] += 1
    # Both answers must have been exercised, or half the test is vacuous.
    assert checked[True] >= 20 and checked[False] >= 20, checked


def _verify(engine, W, b):
    from exact_inj.model import Layer, Network

    net = Network((Layer.from_rows([list(r) for r in W], list(b)),))
    return engine.verify(net, time_limit=TIME_LIMIT)


def test_engine_is_invariant(engine):
    failures = []
    compared = 0
    for k, case in enumerate(_bases()):
        ref = reference_injective(case.W, case.b)
        expected = "injective" if ref else "not_injective"
        v0 = _verify(engine, case.W, case.b)
        if v0.status.value != expected:
            failures.append(f"base: engine {v0.status.value}, reference {expected}: {case.repro()}")
            continue
        for name, W2, b2, to_new, to_old in _transformed(case, 1000 + k):
            repro = f"[{name}] W={[[str(v) for v in r] for r in W2]} b={[str(v) for v in b2]} (base {case.repro()})"
            v = _verify(engine, W2, b2)
            compared += 1
            if v.status.value != v0.status.value:
                failures.append(f"verdict changed {v0.status.value} -> {v.status.value}: {repro}")
                continue
            res = engine.check(v.certificate)
            if not res.valid:
                failures.append(f"certificate rejected ({res.reason}): {repro}")
            if expected == "not_injective":
                # The original witness, carried over, collides in the new layer ...
                x2, y2 = to_new(v0.witness.x), to_new(v0.witness.y)
                if not is_collision(W2, b2, x2, y2):
                    failures.append(f"mapped base witness does not collide: {repro}")
                # ... and the engine's new witness collides here and, carried
                # back, in the original layer.
                w = v.witness
                if not is_collision(W2, b2, w.x, w.y):
                    failures.append(f"engine witness does not collide: {repro}")
                elif not is_collision(case.W, case.b, to_old(w.x), to_old(w.y)):
                    failures.append(f"engine witness mapped back does not collide: {repro}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:15])
    # No failures, so every base was decided and every transform compared.
    assert compared == len(TRANSFORMS) * COUNT
