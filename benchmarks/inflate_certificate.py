#!/usr/bin/env python
"""A larger valid certificate from a case-split tree certificate, to measure
how the check's memory grows with the certificate's size (issue 17, item 3).

    python benchmarks/inflate_certificate.py c12.json.gz c12x2.json.gz

Every leaf whose node leaves a row r undecided (outside the core, at a core
leaf) becomes a split on the lowest such r followed by two copies of the
leaf.  The first child adds r to P: a rank leaf's P already has rank n, and
a core leaf's rows outside N each raised P to rank n, so they raise P + r
too.  The second adds r to N and leaves P as it was.  So the tree stays
valid and grows by two codes per leaf; the cores are kept.  The result is written as verify writes certificates
(packed, streamed, gzip when the name ends in .gz).
"""

from __future__ import annotations

import sys
import time
from array import array

import numpy as np

from exact_inj.api import certificate_from_document
from exact_inj.certify.codes import CodeFile
from exact_inj.certify.schema import CORE_BASE, RANK_LEAF, Certificate, TreeProof
from exact_inj.cli.app import write_json
from exact_inj.io.spill import load_json_spilled


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    cert = certificate_from_document(load_json_spilled(src), src)
    ev = cert.evidence
    M = cert.network.layers[0].out_dim
    full = (1 << M) - 1
    masks = [sum(1 << i for i in c.support) for c in ev.cores]
    out, buf = CodeFile(), array("q")
    P = N = 0
    stack: list[tuple[int, int]] = []
    tree = ev.tree if isinstance(ev.tree, CodeFile) else CodeFile.of(ev.tree)
    for chunk in tree.chunks():
        for code in chunk.tolist():
            if code >= 0:
                buf.append(code)
                stack.append((P, N | 1 << code))
                P |= 1 << code
                continue
            # A row r outside P, N (and the core, at a core leaf): split on it
            # and close both children as the node was closed.
            free = ~(P | N | (0 if code == RANK_LEAF else masks[CORE_BASE - code])) & full
            if free:
                buf.extend((((free & -free).bit_length() - 1), code, code))
            else:
                buf.append(code)
            if stack:
                P, N = stack.pop()
        if len(buf) >= 1 << 20:
            out.append(np.frombuffer(buf, dtype=np.int64))
            buf = array("q")
    out.append(np.frombuffer(buf, dtype=np.int64))
    big = Certificate(cert.network, cert.domain, cert.verdict, TreeProof(ev.cores, out), cert.version)
    write_json(dst, big.to_json(streamed=True))
    print(f"{src}: {len(tree)} codes -> {dst}: {len(out)} codes ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
