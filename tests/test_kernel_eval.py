"""Exact evaluation of kernel layers (KernelSpec.apply_operator and apply_float).

apply_operator cuts the integer-scaled input into digits and sums float64
products; it is compared, on hundreds of random strided, dilated, padded and
transposed convolutions in 1-D and 2-D, with the sum over each row's sparse
entries in Fractions (sparse_row reads the kernel tap by tap, independently
of the integer views), including kernels too large for the float64 path
(the python-flint fallback) and inputs with huge numerators and denominators.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from exact_inj.model.kernels import KernelSpec


def random_spec(rng, big: bool) -> KernelSpec | None:
    d = int(rng.integers(1, 3))
    cin, cout = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    ks = [int(rng.integers(1, 4)) for _ in range(d)]
    size = [int(rng.integers(1, 6)) for _ in range(d)]

    def entry():
        if big:
            return Fraction(int(rng.integers(-2 ** 40, 2 ** 40)), int(rng.integers(1, 2 ** 20)))
        return Fraction(int(rng.integers(-9, 10)), int(rng.choice([1, 2, 3, 8])))

    K = np.empty([cout, cin] + ks, dtype=object)
    for idx in np.ndindex(*K.shape):
        K[idx] = entry()
    try:
        return KernelSpec.build(K.tolist(), cin, cout, size, strides=[int(rng.integers(1, 3)) for _ in range(d)],
                                dilations=[int(rng.integers(1, 3)) for _ in range(d)],
                                pads=[(int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in range(d)],
                                transposed=bool(rng.integers(0, 2)), bias=[entry() for _ in range(cout)])
    except ValueError:  # an empty output, or output padding out of range
        return None


def reference(spec: KernelSpec, x) -> tuple[Fraction, ...]:
    bias = spec.bias_vector()
    return tuple(sum((v * x[c] for c, v in spec.sparse_row(i).items()), Fraction(0)) + bias[i]
                 for i in range(spec.out_dim))


@pytest.mark.parametrize("seed", range(4))
def test_apply_operator_equals_the_row_by_row_sum(seed):
    rng = np.random.default_rng([seed, 17])
    tested = {False: 0, True: 0}
    for trial in range(120):
        big = trial % 6 == 0
        spec = random_spec(rng, big)
        if spec is None:
            continue
        x = [Fraction(int(rng.integers(-10 ** 12, 10 ** 12)), int(rng.integers(1, 10 ** 6))) for _ in range(spec.in_dim)]
        if trial % 5 == 0:
            x = [v * Fraction(3 ** 80, 2 ** 90) for v in x]   # hundreds of bits: many digits
        if trial % 11 == 0:
            x = [v / ((1 << 600) + 2 * i + 1) for i, v in enumerate(x)]   # past the digits: the flint product
        if trial % 7 == 0:
            x = [Fraction(0)] * spec.in_dim
        assert spec.apply_operator(x) == reference(spec, x)
        tested[spec.channel_array() is None] += 1
    assert tested[False] >= 60 and tested[True] >= 1


def test_apply_float_is_exact_within_its_bound():
    rng = np.random.default_rng(9)
    for _ in range(100):
        spec = random_spec(rng, False)
        if spec is None:
            continue
        m = int(2 ** 52 // spec.float_bound()) - 1
        x = rng.integers(-m, m + 1, size=spec.in_dim)
        got = spec.apply_float(x.astype(np.float64))
        S = spec.integer_scale
        want = [S * (v - b) for v, b in zip(reference(spec, [Fraction(int(t)) for t in x]), spec.bias_vector())]
        assert [int(v) for v in got] == want
