"""The paper's section-4 generator, written as an ONNX model (docs/generators.md).

``exact-inj construct dcgan-generator``: a latent z of ``latent`` numbers, as a
(1, latent, 1, 1) tensor; a transposed convolution 1x1 -> 4x4 (kernel 4,
stride 1), then one per hidden width, kernel 4, stride 2, padding 1, each
doubling the size (4 -> 8 -> 16 -> 32 with widths 512/256/128/64 at full
size); every hidden stage is a batch normalisation and a ReLU; the output
stage is a transposed convolution to 64 x 64 and a Tanh.

* Hidden stages have 2c output channels [C; -s^2 C] (s the stride): channel
  c + j's kernel is -s^2 times channel j's, as in the paper's construction.
  Batch normalisation has gamma > 0, mean 0, beta >= 0 and
  var = r^2 - eps with r in {1/2, 1, 2}, so sqrt(var + eps) = r is rational
  and every factor gamma / r is positive: the pairs keep the form [B; -DB]
  with D > 0, and the biases (beta) meet the bias condition
  D beta_j + beta_(c+j) >= 0.  With DCGAN widths, each stage after the first
  has a square C (c channels x (2N)^2 positions = 2c x N^2 inputs).
* ``output="rgb"``: 3 output channels, as the DCGAN.  12,288 outputs after a
  65,536-number stage: as a stage on its own it cannot be injective, so
  whether the network is depends on the range of the stages before it.
* ``output="keep"``: c_last / 4 output channels (16 at full size), a square
  stage that is injective exactly when its operator is invertible.
* ``deficient``: latent coordinates 0 and 1 enter the first stage
  identically, so z and z + t(e_0 - e_1) always collide: not injective.
* ``plain``: the unmodified DCGAN (no pairing).

All weights are small dyadic rationals (exact in float32), drawn from a seeded
numpy Generator.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["EPSILON", "dcgan_generator"]

# float32-exact, and with r in {1/2, 1, 2} the variances r^2 - EPSILON are
# float32-exact too, so every sqrt(var + eps) is the rational r.
EPSILON = 2.0 ** -17


def dcgan_generator(latent: int = 256, widths: Sequence[int] = (512, 256, 128, 64), output: str = "keep",
                    deficient: bool = False, plain: bool = False, seed: int = 0):
    """The generator as an ``onnx.ModelProto`` (needs the onnx package).

    >>> m = dcgan_generator(4, (8, 4), seed=1)
    >>> [n.op_type for n in m.graph.node][:3], len(m.graph.node)
    (['ConvTranspose', 'BatchNormalization', 'Relu'], 8)
    """
    import onnx  # noqa: PLC0415 - optional dependency
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    if output not in ("rgb", "keep"):
        raise ValueError(f"output must be 'rgb' or 'keep', got {output!r}")
    if any(w % 2 for w in widths) or (output == "keep" and widths[-1] % 4):
        raise ValueError("hidden widths must be even (pairs [C; -s^2 C]), the last one a multiple of 4 for 'keep'")
    rng = np.random.default_rng(seed)

    def weights(*shape):
        # Multiples of 1/8 in [-1, 1]: exact in float32, generic enough.
        return (rng.integers(-8, 9, size=shape) / 8).astype(np.float32)

    nodes, inits = [], []
    cin, name, size = latent, "z", 1
    for k, width in enumerate(widths):
        s = 1 if k == 0 else 2
        W = weights(cin, width, 4, 4)
        if not plain:
            c = width // 2
            W[:, c:] = -(s * s) * W[:, :c]
        if deficient and k == 0:
            W[1] = W[0]
        attrs = {"strides": [s, s]} if k == 0 else {"strides": [s, s], "pads": [1, 1, 1, 1]}
        nodes.append(helper.make_node("ConvTranspose", [name, f"w{k}"], [f"t{k}"], name=f"up{k}", **attrs))
        gamma = (rng.integers(1, 9, size=width) / 4).astype(np.float32)
        beta = (rng.integers(0, 5, size=width) / 8).astype(np.float32)
        r = rng.choice([0.5, 1.0, 2.0], size=width)
        var = (r * r - EPSILON).astype(np.float32)
        assert all(float(v) + EPSILON == rr * rr for v, rr in zip(var, r))  # exact in float32
        mean = np.zeros(width, np.float32) if not plain else weights(width)
        nodes.append(helper.make_node("BatchNormalization", [f"t{k}", f"g{k}", f"b{k}", f"m{k}", f"v{k}"],
                                      [f"n{k}"], name=f"bn{k}", epsilon=EPSILON))
        nodes.append(helper.make_node("Relu", [f"n{k}"], [f"h{k}"], name=f"relu{k}"))
        inits += [numpy_helper.from_array(a, nm) for a, nm in ((W, f"w{k}"), (gamma, f"g{k}"), (beta, f"b{k}"),
                                                                (mean, f"m{k}"), (var, f"v{k}"))]
        cin, name, size = width, f"h{k}", (4 if k == 0 else 2 * size)
    cout = 3 if output == "rgb" else widths[-1] // 4
    W = weights(cin, cout, 4, 4)
    nodes.append(helper.make_node("ConvTranspose", [name, "w_out"], ["o"], name="up_out", strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Tanh", ["o"], ["image"], name="tanh"))
    inits.append(numpy_helper.from_array(W, "w_out"))
    graph = helper.make_graph(
        nodes, "dcgan_generator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, latent, 1, 1])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, cout, 2 * size, 2 * size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model
