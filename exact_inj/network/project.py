"""``injectivize --mode project``: Corollary 3's random projection of the
expanded network to K >= 2n + 1 outputs (docs/injectivize.md).

The expanded network is the append construction (exact_inj.network.
injectivize); a seeded random integer matrix P (K rows) is folded into its
last layer.  A generic projection to 2n + 1 dimensions keeps an
n-dimensional piecewise-linear image injective, but a given P may not: each
candidate is decided by the engine (decide_network, whose answers all pass
the exact checker), and a new seed is tried when it is not certified.  The
original outputs are mixed into the K outputs, not kept.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from fractions import Fraction

from ..model import Domain, Layer, Network
from ..model.normalised import require_plain
from ..verdict import Status
from .decide import decide_network
from .injectivize import Injectivized, append_carry

__all__ = ["project"]


def _projected(base: Network, P: list[list[int]]) -> Network:
    last = base.layers[-1]
    if last.activation == "linear":
        # Fold P into the linear last layer: same function, one layer fewer.
        W = tuple(tuple(sum((Fraction(p) * last.weight[r][c] for r, p in enumerate(row) if p), Fraction(0))
                        for c in range(last.in_dim)) for row in P)
        b = tuple(sum((Fraction(p) * last.bias[r] for r, p in enumerate(row) if p), Fraction(0)) for row in P)
        layers = base.layers[:-1] + (Layer(W, b, "linear"),)
    else:
        layers = base.layers + (Layer.from_rows(P, [0] * len(P), "linear"),)
    return Network(layers, base.name, base.output_unit)


def project(net: Network, width: int, seed: int = 0, tries: int = 5, time_limit: float = 60.0) -> Injectivized | None:
    """The first seeded projection (seed, seed + 1, ...) the engine certifies
    injective, or None after ``tries`` seeds; ``verdict.info`` records the seed.

    >>> from exact_inj.model import Layer
    >>> r = project(Network((Layer.from_rows([[1]]),)), width=3)
    >>> r.verdict.status.value, r.network.output_dim, r.verdict.info["seed"]
    ('injective', 3, 0)
    """
    require_plain(net, "injectivize --mode project")  # irrational batch normalisations: docs/theory.md, section 12
    n = net.input_dim
    if width < 2 * n + 1:
        raise ValueError(f"--width {width} is below 2n + 1 = {2 * n + 1}")
    base, _ = append_carry(net)
    deadline = time.perf_counter() + time_limit
    tried = []
    for s in range(seed, seed + tries):
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        rng = random.Random(s)
        P = [[rng.randint(-3, 3) for _ in range(base.output_dim)] for _ in range(width)]
        cand = _projected(base, P)
        v = decide_network(cand, time_limit=left, domain=Domain())
        tried.append({"seed": s, "verdict": v.status.value, "route": v.route})
        if v.status is Status.INJECTIVE:
            info = {**v.info, "seed": s, "seeds_tried": tried, "width": width}
            return Injectivized(cand, replace(v, info=info), 0, 2 * n)
    return None
