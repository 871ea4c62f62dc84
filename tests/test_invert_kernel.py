"""Inverting convolutions too large for dense algebra, through their kernel.

The kernel route (network/peel.py ``_kernel_solve``; checked by
certify/peel.py ``spans`` through ``square_rows`` and the nested-dissection
elimination) is normally taken above MAX_PEEL_ENTRIES (2 x 10^7 entries);
here that limit is set to 0 on small generators so that every layer takes
it, and the answers are compared with the dense route's on the same
outputs.  A layer whose rows do not span must make the checker reject a
point answer, whichever route ranks it.  The full-size generator (slow) is
inverted back to its latent exactly.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import exact_inj.certify.peel as cpeel  # noqa: E402
import exact_inj.network.peel as npeel  # noqa: E402
from exact_inj.certify.inverse import check_inverse  # noqa: E402
from exact_inj.io.onnx import network_from_onnx_model  # noqa: E402
from exact_inj.model import Domain  # noqa: E402
from exact_inj.network.inverse import invert  # noqa: E402
from exact_inj.studies.generator import dcgan_generator  # noqa: E402


@pytest.fixture
def kernel_route(monkeypatch):
    """Every layer above the (zero) dense limit: the kernel route everywhere."""
    monkeypatch.setattr(cpeel, "MAX_PEEL_ENTRIES", 0)
    monkeypatch.setattr(npeel, "MAX_PEEL_ENTRIES", 0)


def latent(rng, n):
    return tuple(Fraction(float(v)) for v in rng.standard_normal(n).astype(np.float32))


def small_generators():
    for seed in range(3):
        yield network_from_onnx_model(dcgan_generator(4, (8, 4), seed=seed))
    yield network_from_onnx_model(dcgan_generator(8, (16, 8, 4), seed=5))


def test_kernel_route_returns_the_latent_as_the_dense_route_does(monkeypatch):
    rng = np.random.default_rng(0)
    for net in small_generators():
        for _ in range(2):
            z = latent(rng, net.input_dim)
            y = net.evaluate(z)
            dense = invert(net, y)
            with monkeypatch.context() as m:
                m.setattr(cpeel, "MAX_PEEL_ENTRIES", 0)
                m.setattr(npeel, "MAX_PEEL_ENTRIES", 0)
                got = invert(net, y)
            assert dense.preimage == got.preimage == "point"
            assert dense.points == got.points == [z]
            assert got.stats["check"].startswith("point")


def test_outputs_off_the_range_are_never_points(kernel_route):
    rng = np.random.default_rng(1)
    net = network_from_onnx_model(dcgan_generator(4, (8, 4), seed=2))
    y = list(net.evaluate(latent(rng, 4)))
    y[3] += Fraction(1, 3)   # one output moved: no latent gives it (generically)
    r = invert(net, y, time_limit=20)
    assert r.preimage in ("empty", "unknown")
    assert r.preimage != "point"


def test_point_answer_on_a_layer_whose_rows_do_not_span_is_rejected(kernel_route):
    # Latent coordinates 0 and 1 enter identically: z and z + t(e0 - e1) collide,
    # so no point answer can be right; the kernel route's rank must not pass it.
    net = network_from_onnx_model(dcgan_generator(4, (8, 4), deficient=True, seed=1))
    rng = np.random.default_rng(2)
    z = latent(rng, 4)
    y = net.evaluate(z)
    answer = {"preimage": "point", "points": [[str(v) for v in z]], "certificate": {"kind": "peel"}}
    ok, why = check_inverse(net, y, answer, Domain.reals())
    assert not ok and ("span" in why or "nonsingular" in why)
    r = invert(net, y, time_limit=30)
    assert r.preimage != "point"


def test_singular_square_convolution_is_not_passed_by_the_kernel_rank(kernel_route):
    # A square stride-2 transposed convolution whose input channels 0 and 1 have
    # the same kernel: e_0 - e_1 at one pixel is a null vector, so x and
    # x + (e_0 - e_1) have the same output and no point answer is right.
    from exact_inj.model import Network
    from exact_inj.model.kernels import KernelSpec

    rng = np.random.default_rng(4)
    K = rng.integers(-3, 4, size=(1, 4, 4, 4))
    K[:, 1] = K[:, 0]
    spec = KernelSpec.build(K.tolist(), 4, 1, [3, 3], strides=[2, 2], pads=[(1, 1), (1, 1)], transposed=True)
    net = Network((spec.layer("linear"),))
    x = tuple(Fraction(int(v), 3) for v in rng.integers(-9, 9, size=net.input_dim))
    y = net.evaluate(x)
    shifted = list(x)
    shifted[0] += 1
    shifted[9] -= 1          # channel 1 at the same pixel (channel-major: 9 pixels per channel)
    assert net.evaluate(shifted) == y
    for point in (x, shifted):
        answer = {"preimage": "point", "points": [[str(v) for v in point]], "certificate": {"kind": "peel"}}
        ok, why = check_inverse(net, y, answer, Domain.reals())
        assert not ok and "not shown nonsingular" in why
    assert invert(net, y, time_limit=20).preimage != "point"


def test_square_rows_stand_for_proportional_rows_only():
    net = network_from_onnx_model(dcgan_generator(4, (8, 4), seed=0))
    layer = net.layers[1]           # [C; -4 D C]: channel c + j proportional to channel j
    per = layer.out_dim // layer.spec.out_channels
    idx = list(range(layer.out_dim))
    reps, picks, stand, lam = cpeel.square_rows(layer, idx)
    assert len(reps) == layer.in_dim and reps == sorted(set(stand))
    for q, i in enumerate(idx):
        row, rep = layer.sparse_row(i), layer.sparse_row(stand[q])
        assert set(row) == set(rep) and all(row[c] == lam[q] * rep[c] for c in row)
        assert stand[q] % per == i % per
    assert all(stand[q] == reps[k] for k, q in enumerate(picks))


@pytest.mark.slow
def test_full_size_generator_returns_its_latent_exactly():
    """Issue 16's target shape: latent 256 -> 16 x 64 x 64 (docs/performance.md
    has the timings; generous limits here for 2 shared cores)."""
    net = network_from_onnx_model(dcgan_generator())
    rng = np.random.default_rng(0)
    for k in range(2):
        z = latent(rng, 256)
        y = net.evaluate(z)
        t0 = time.perf_counter()
        r = invert(net, y, time_limit=600)
        took = time.perf_counter() - t0
        assert r.preimage == "point" and r.points == [z] and r.stats["route"] == "peel"
        assert took < (300 if k == 0 else 60)


def test_cli_reads_long_vectors_from_files(tmp_path, capsys):
    import json

    from exact_inj.cli import app as cli

    model = dcgan_generator(4, (8, 4), seed=0)
    net_path = tmp_path / "g.onnx"
    net_path.write_bytes(model.SerializeToString())
    net = network_from_onnx_model(model)
    z32 = np.random.default_rng(3).standard_normal(4).astype(np.float32)
    z = [Fraction(float(v)) for v in z32]
    y = net.evaluate(z)
    (tmp_path / "y.json").write_text(json.dumps([str(v) for v in y]))
    np.save(tmp_path / "z.npy", z32)
    for flag, path in (("--y-file", "y.json"), ("--from-input-file", "z.npy")):
        code = cli.main(["invert", str(net_path), flag, str(tmp_path / path), "--json", "--quiet"])
        got = json.loads(capsys.readouterr().out)
        assert code == 0 and got["preimage"] == "point"
        assert [Fraction(v) for v in got["points"][0]] == z
    # The self-contained answer, gzip-compressed when so named, re-checked by `check`.
    cert = tmp_path / "answer.json.gz"
    assert cli.main(["invert", str(net_path), "--y-file", str(tmp_path / "y.json"), "--quiet",
                     "--certificate", str(cert)]) == 0
    capsys.readouterr()
    assert cert.read_bytes()[:2] == b"\x1f\x8b" and cli.main(["check", str(cert)]) == 0
    capsys.readouterr()
    # Bad vectors: one line naming the file, exit 2, before the network is read.
    (tmp_path / "bad.json").write_text('[1, "x"]')
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan, 0.0, 0.0]))
    (tmp_path / "short.json").write_text("[1, 2]")
    (tmp_path / "zero.npy").write_bytes(b"")
    np.save(tmp_path / "long.npy", np.array([1.0, 2.0], dtype=np.longdouble))
    for flag, name, words in (("--y-file", "bad.json", "bad.json"), ("--from-input-file", "nan.npy", "not finite"),
                              ("--y-file", "short.json", "2 numbers for"), ("--y-file", "zero.npy", "not a readable"),
                              ("--from-input-file", "long.npy", "float16/32/64")):
        code = cli.main(["invert", str(net_path), flag, str(tmp_path / name)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and words in err and len(err.splitlines()) == 1
    # A .npy file of the wrong length is refused by its header, before its
    # numbers are converted (review: 10 M entries took 42 s and 1.9 GB first);
    # a certificate into a folder that does not exist, before any work.
    import time

    np.save(tmp_path / "huge.npy", np.zeros(3_000_000, dtype=np.float32))
    t = time.perf_counter()
    code = cli.main(["invert", str(net_path), "--y-file", str(tmp_path / "huge.npy")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "3000000 numbers for 256 outputs" in err and time.perf_counter() - t < 10
    code = cli.main(["invert", str(net_path), "--y-file", str(tmp_path / "y.json"),
                     "--certificate", str(tmp_path / "no" / "such" / "a.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "does not exist" in err and len(err.splitlines()) == 1
