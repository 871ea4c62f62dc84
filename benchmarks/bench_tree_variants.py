"""Before/after for the proof search's strategy knobs, on one seeded layer.

    python benchmarks/bench_tree_variants.py --n 6 --seed 0

Each variant sets module constants of exact_inj.layer.search and decides the same
iid Gaussian bias-free layer (m = round(6.7 n), numpy default_rng(seed)).
Node and leaf counts are deterministic; seconds are noisy on shared cores, so
compare them only within one run.

Variants:
- reuse-any: a stored core closes or splits a node whatever its number of
  undecided rows (no LP at such nodes);
- rest<=1: stored cores are reused only with at most one undecided row, and
  cores are strengthened at nodes with rank P <= n - 2;
- strengthen-all (current): as rest<=1, strengthening at every node.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np

from exact_inj.layer import search
from exact_inj.layer.data import LayerData
from exact_inj.certify.check import check
from exact_inj.certify.schema import Certificate
from exact_inj.model.domain import Domain
from exact_inj.model import Layer, Network
from exact_inj.verdict import Status

VARIANTS = {
    "reuse-any": dict(STORE_REST_MAX=10**9, STRENGTHEN_RANK_GAP=2),
    "rest<=1": dict(STORE_REST_MAX=1, STRENGTHEN_RANK_GAP=2),
    "strengthen-all (current)": dict(STORE_REST_MAX=1, STRENGTHEN_RANK_GAP=1),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    n = args.n
    m = int(Fraction(67 * n, 10) + Fraction(1, 2))
    W = np.random.default_rng(args.seed).standard_normal((m, n))
    layer = Layer(tuple(tuple(Fraction(float(x)) for x in r) for r in W), tuple(Fraction(0) for _ in range(m)))
    saved = {k: getattr(search, k) for k in VARIANTS["rest<=1"]}
    print(f"n = {n}, m = {m}, seed = {args.seed}")
    print("| variant | verdict | nodes | leaves | LPs | cores | solve s | check s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, knobs in VARIANTS.items():
        for k, v in knobs.items():
            setattr(search, k, v)
        t0 = time.perf_counter()
        res = search.tree_search(LayerData(layer), time.perf_counter() + 600)
        solve = time.perf_counter() - t0
        st = res.stats
        chk = "-"
        if res.kind == "proof":
            cert = Certificate(Network((layer,)), Domain(), Status.INJECTIVE, res.proof)
            r = check(cert)
            assert r.valid, r.reason
            chk = f"{r.seconds:.2f}"
        print(f"| {name} | {res.kind} | {st.nodes} | {st.leaves} | {st.lps + st.core_lps} | {st.cores} | "
              f"{solve:.2f} | {chk} |", flush=True)
    for k, v in saved.items():
        setattr(search, k, v)


if __name__ == "__main__":
    main()
