"""Smoke test of benchmarks/gan_digits.py (the paper's GAN experiment, small;
docs/gan-experiment.md), skipped without the ``gan`` extra (torch,
scikit-learn).  Tiny training; what must hold at any training length:

- the Gaussian W2 is right on known answers and agrees with an independent
  computation (scipy's sqrtm of S1 S2, not the symmetric form used there);
- the materialised injective generator computes what the trained module does,
  and exact_inj reads it (through ONNX) as the same function up to float32
  rounding;
- it is certified injective with a certificate the checker accepts (the
  [C; -s^2 C] layers are exact in float32 because s^2 is a power of two), and
  exact inversion of its exact outputs returns the float32 latent exactly.
"""

from __future__ import annotations

import importlib.util
import pathlib
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import exact_inj  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("gan_digits", ROOT / "benchmarks" / "gan_digits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_w2_known_answers_and_independent_sqrtm():
    g = _bench()
    d = 3
    assert g.w2_gaussians(np.zeros(d), np.eye(d), np.full(d, 2.0), np.eye(d)) == pytest.approx(np.sqrt(12))
    # N(0, I) vs N(0, a^2 I): W2 = |1 - a| sqrt(d)
    assert g.w2_gaussians(np.zeros(d), np.eye(d), np.zeros(d), 9 * np.eye(d)) == pytest.approx(2 * np.sqrt(3))
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    S1, S2 = A @ A.T + np.eye(4), B @ B.T
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    cross = scipy_linalg.sqrtm(S1 @ S2).real  # (S1 S2)^1/2 has the same trace as (S1^1/2 S2 S1^1/2)^1/2
    want = np.sqrt(np.sum((mu1 - mu2) ** 2) + np.trace(S1 + S2 - 2 * cross))
    assert g.w2_gaussians(mu1, S1, mu2, S2) == pytest.approx(want, rel=1e-9)
    # The fitted-Gaussian form: a large standard normal sample is close to N(0, I).
    assert g.w2_to_standard(rng.normal(size=(20_000, 2))) < 0.05


def _trained_injective(g):
    torch.manual_seed(0)
    data = g.load_digits_scaled()
    assert data.shape == (1797, 64) and data.min() == -1.0 and data.max() == 1.0
    G, D, inet = g.build("injective", g.LATENT, 2.0)
    stats = g.train(G, D, inet, data[:256], epochs=1, seed=0)
    assert np.isfinite(stats["loss_g"])
    G.eval()
    return G


def test_injective_generator_certified():
    g = _bench()
    G = _trained_injective(g)
    z = torch.randn(4, g.LATENT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(g.plain_generator(G)(z), G(z), atol=1e-6)
        pre = G[:-1](z).double().numpy()
    net, _ = g.to_exact_network(G)
    assert net.output_unit == "tanh" and (net.input_dim, net.output_dim) == (g.LATENT, 64)
    for i in range(4):
        y = net.evaluate([Fraction(float(t)) for t in z[i]])
        assert np.allclose([float(v) for v in y], pre[i], atol=1e-5)
    v = exact_inj.verify(net, time_limit=60)
    assert v.status.value == "injective" and v.route == "layerwise" and exact_inj.check(v.certificate).valid
    # The regular generator has the same widths and is not of the [C; -s^2 C] form.
    R = g.build("regular", g.LATENT)[0]
    assert [m.weight.shape[0] for m in R if hasattr(m, "weight")][:1] == [32]


@pytest.mark.slow
def test_injective_generator_inverted_exactly():
    # About 10-30 s: the preimage search splits its way through the 96 hidden
    # ReLUs (docs/gan-experiment.md); hence slow.
    g = _bench()
    net, _ = g.to_exact_network(_trained_injective(g))
    z = torch.randn(1, g.LATENT, generator=torch.Generator().manual_seed(3))
    zi = [Fraction(float(t)) for t in z[0]]
    r = exact_inj.invert(net, net.evaluate(zi), time_limit=120)
    assert r.preimage == "point" and tuple(r.points[0]) == tuple(zi)
