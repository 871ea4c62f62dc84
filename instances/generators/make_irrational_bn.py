"""Writes the irrational batch-normalisation instances of this folder
(docs/generators.md, "Irrational batch normalisation"):

    PYTHONPATH=. python instances/generators/make_irrational_bn.py

Each is `exact-inj construct dcgan-generator --latent 4 --widths 8,4` (seed 0,
`--deficient` for the second) with its batch-normalisation statistics replaced:
var + eps is not the square of a rational in any channel, and the means are
non-zero, so every bias of the pulled-out rows is a quadratic surd p + q sqrt(R)
with p != 0.  In layer 2, channel 0 has gamma = beta = 1, var + eps = 2 and mean
float32(sqrt 2) = 1.41421353816986083984375 (below sqrt 2 by 2.4e-8), and its
partner channel 2 has beta = mean = 0: the pair's bias condition
4 (sqrt 2 - mean) + 0 >= 0 holds by that margin.  `irrational_dead_zone.onnx`
sets the mean to the next float32 up, 1.41421365737915039062500 (above sqrt 2):
the condition fails for that pair, and with it the structural rule.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from exact_inj.studies.generator import EPSILON, dcgan_generator

HERE = os.path.dirname(os.path.abspath(__file__))
SQRT2_BELOW = np.float32(1.41421353816986083984375)
SQRT2_ABOVE = np.nextafter(SQRT2_BELOW, np.float32(2))


def irrational(deficient: bool = False, dead_zone: bool = False):
    m = dcgan_generator(4, (8, 4), deficient=deficient, seed=0)
    rng = np.random.default_rng(2026)
    inits = {t.name: t for t in m.graph.initializer}
    for k, width in enumerate((8, 4)):
        # var + eps = j/8 + 1/16 + 2^-17 (j = 1..16): never a rational square.
        var = (rng.integers(1, 17, size=width) / 8 + 1 / 16).astype(np.float32)
        mean = (rng.integers(-2, 3, size=width) / 16).astype(np.float32)
        new = {f"v{k}": var, f"m{k}": mean}
        if k == 1:
            gamma = numpy_helper.to_array(inits["g1"]).copy()
            beta = numpy_helper.to_array(inits["b1"]).copy()
            gamma[0], beta[0], var[0] = 1, 1, np.float32(2 - EPSILON)
            mean[0] = SQRT2_ABOVE if dead_zone else SQRT2_BELOW
            beta[2], mean[2] = 0, 0
            new.update({"g1": gamma, "b1": beta})
        for name, a in new.items():
            inits[name].CopyFrom(numpy_helper.from_array(a.astype(np.float32), name))
    onnx.checker.check_model(m)
    return m


if __name__ == "__main__":
    for name, kw in (("irrational_keep", {}), ("irrational_deficient", {"deficient": True}),
                     ("irrational_dead_zone", {"dead_zone": True})):
        onnx.save(irrational(**kw), os.path.join(HERE, f"{name}.onnx"))
