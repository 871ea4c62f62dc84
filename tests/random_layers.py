"""Random small layers for the tests of the parallel and the cluster search,
which compare them with the sequential search (one helper, so that both draw
the same kinds of layer in the same order)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from exact_inj.model import Domain, Layer


def random_layer(rng: np.random.Generator, n_high: int) -> tuple[Layer, Domain]:
    """n in [3, n_high), m in [2n, 7n]; integer or Gaussian weights, zero or
    small integer biases; R^n (70%), the orthant or the box [-1, 2]^n."""
    n = int(rng.integers(3, n_high))
    m = int(rng.integers(2 * n, 7 * n + 1))
    if rng.random() < 0.5:
        W = [[Fraction(int(x)) for x in row] for row in rng.integers(-4, 5, size=(m, n))]
    else:
        W = [[Fraction(float(x)) for x in row] for row in rng.standard_normal((m, n))]
    b = [Fraction(0)] * m if rng.random() < 0.5 else [Fraction(int(x)) for x in rng.integers(-2, 3, size=m)]
    u = rng.random()
    dom = Domain() if u < 0.7 else Domain.orthant() if u < 0.85 else Domain.box([-1] * n, [2] * n)
    return Layer(tuple(map(tuple, W)), tuple(b)), dom


def gaussian_layer(n: int, m: int, seed: int = 0) -> Layer:
    """The benchmarks' layer: numpy.random.default_rng([seed, n, m, 0]) N(0, 1)
    weights at their exact values, b = 0."""
    W = np.random.default_rng([seed, n, m, 0]).standard_normal((m, n))
    return Layer(tuple(tuple(Fraction(float(x)) for x in r) for r in W), (Fraction(0),) * m)
