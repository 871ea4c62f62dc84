"""The curated convolutional instances (instances/conv/) get their expected answers.

They are far beyond the dense operator (up to 302 million entries), so the
expected verdicts come from their construction (see instances/conv/expected.json),
not from a brute-force reference.  What is checked here, independently of the
engine: the verdict and route, that `exact_inj.check` accepts the certificate
after a JSON round trip, that the certificate holds the layer as its kernel
(small file), and for a witness that the two inputs really collide, by a direct
convolution (and, for dense layers, a matrix product) written in this file.
"""

from __future__ import annotations

import json
from fractions import Fraction as F
from itertools import product
from pathlib import Path

import pytest

import exact_inj
from exact_inj.certify.schema import Certificate, Witness
from exact_inj.io import loads_exact

CONV = Path(__file__).resolve().parents[1] / "instances" / "conv"
EXPECTED = json.loads((CONV / "expected.json").read_text())


def direct_conv(layer: dict, x: list[F]) -> list[F]:
    """ReLU/linear of a stride-1 conv on the channel-major flattened x, in Fractions."""
    cin, cout, size = layer["in_channels"], layer["out_channels"], layer["input_size"]
    pad = layer.get("pad", 0)
    K = layer["kernel"]
    ksize = []
    k = K[0][0]
    while isinstance(k, list):
        ksize.append(len(k))
        k = k[0]
    d = len(size)
    if pad == "same":
        pads = [((kk - 1) // 2, kk - 1 - (kk - 1) // 2) for kk in ksize]
    elif isinstance(pad, int):
        pads = [(pad, pad)] * d
    else:
        pads = [tuple(p) if isinstance(p, list) else (p, p) for p in pad]
    out_size = [size[t] + pads[t][0] + pads[t][1] - ksize[t] + 1 for t in range(d)]
    periodic = layer.get("padding", "zero") == "periodic"
    bias = [F(b) for b in layer.get("bias", [0] * cout)]

    def at(c, pos):
        idx = c
        for t in range(d):
            s = pos[t]
            if periodic:
                s %= size[t]
            elif not 0 <= s < size[t]:
                return F(0)
            idx = idx * size[t] + s
        return x[idx]

    out = []
    for o in range(cout):
        for p in product(*map(range, out_size)):
            acc = bias[o]
            for c in range(cin):
                for q in product(*map(range, ksize)):
                    w = K[o][c]
                    for i in q:
                        w = w[i]
                    w = F(w)
                    if w:
                        acc += w * at(c, [p[t] + q[t] - pads[t][0] for t in range(d)])
            out.append(max(acc, F(0)) if layer.get("activation", "relu") == "relu" else acc)
    return out


def dense(layer: dict, x: list[F]) -> list[F]:
    """A plain {"weight", "bias", "activation"} layer, in Fractions."""
    W = layer["weight"]
    b = layer.get("bias", [0] * len(W))
    pre = [sum((F(w) * a for w, a in zip(row, x)), F(bb)) for row, bb in zip(W, b)]
    return [max(a, F(0)) for a in pre] if layer.get("activation", "relu") == "relu" else pre


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=lambda s: s.removesuffix(".json"))
def test_conv_instance(name):
    exp = EXPECTED[name]
    v = exact_inj.verify(str(CONV / name), time_limit=120)
    assert v.status.value == exp["verdict"], v.reason
    assert v.route == exp["route"], (v.route, v.reason)
    text = json.dumps(v.certificate.to_json())
    # The layer travels as its kernel: a dense operator would be megabytes.
    assert len(text) < 300_000
    cert = Certificate.from_json(loads_exact(text))
    res = exact_inj.check(cert)
    assert res.valid, res.reason
    if exp["verdict"] == "not_injective":
        w = cert.evidence
        assert isinstance(w, Witness) and w.x != w.y
        layers = json.loads((CONV / name).read_text())["layers"]
        fx, fy = list(w.x), list(w.y)
        for layer in layers:
            step = direct_conv if layer.get("type") == "conv" else dense
            fx, fy = step(layer, fx), step(layer, fy)
        assert fx == fy


def test_expected_lists_every_conv_instance():
    on_disk = {p.name for p in CONV.glob("*.json")} - {"expected.json"}
    assert on_disk == set(EXPECTED)
