"""Subtrees of one layer's case-split tree, handed between processes and
spliced back into one proof: the pieces the parallel search (psearch.py, K
local processes) and the cluster search (cluster.py, Dask workers) share.

An *entry* is one stack entry of :func:`exact_inj.layer.search.tree_search`:
``(P, N, rank P, span mask, null basis, hint, depth)``.  Its ``hint`` is an
index into the sending process's CoreStore, meaningless elsewhere, so an
entry travels *detached*: hint -1 plus the hinted Core itself, re-added to the
receiving store by :func:`attach`.

A subtree is decided by calling tree_search from its entry with a ``donate``
hook that may take entries off the bottom of the stack.  Those would have
been explored last, so the subtree's preorder is: its own codes, then its
donated subtrees, the latest donation first.  :func:`merge` splices the
subtrees' codes in that order and renumbers their cores; the result is an
ordinary TreeProof, which the exact checker verifies like a sequential one.
"""

from __future__ import annotations

from array import array

import numpy as np

from ..certify.schema import CORE_BASE, PACK_MIN, Core, TreeProof
from .data import LayerData
from .search import CoreStore, SearchStats

__all__ = ["COUNTS", "absorb", "attach", "detach", "merge", "proof_codes", "root_entry", "stats_record"]

# The SearchStats counters that add up over subtrees.
COUNTS = ("nodes", "leaves", "lps", "core_lps", "repair_failures", "exact_lps")


def root_entry(data: LayerData) -> tuple:
    """The stack entry of the whole tree (the empty node), as tree_search builds it."""
    rk0, span0, basis0 = data.span_info(0)
    return (0, 0, rk0, span0 | data.zero_rows, basis0, -1, 0)


def detach(entry: tuple, store: CoreStore) -> tuple[tuple, Core | None]:
    """The entry without its store index, and the core that index named."""
    core = store.cores[entry[5]] if entry[5] >= 0 else None
    return entry[:5] + (-1,) + entry[6:], core


def attach(entry: tuple, core: Core | None, store: CoreStore) -> tuple:
    """A detached entry with its hint core added to this process's store."""
    return entry if core is None else entry[:5] + (store.add(core),) + entry[6:]


def stats_record(st: SearchStats) -> dict:
    """A subtree's statistics as a plain dict (sent between processes)."""
    rec = {k: getattr(st, k) for k in COUNTS + ("open_cases", "max_depth")}
    rec["notes"] = list(st.notes)
    return rec


def absorb(total: SearchStats, rec: dict) -> None:
    """Add a subtree's statistics (a :func:`stats_record`) to the total."""
    for k in COUNTS:
        setattr(total, k, getattr(total, k) + rec[k])
    total.max_depth = max(total.max_depth, rec["max_depth"])
    total.notes.extend(rec["notes"])


def proof_codes(proof: TreeProof) -> bytes:
    """A subtree proof's codes, packed (int64) for sending."""
    return array("q", proof.tree).tobytes()


def merge(results: dict[int, tuple[bytes, tuple]], children: dict[int, list[int]]) -> TreeProof:
    """Splice the subtrees' codes into one preorder and renumber their cores.

    ``results[t]`` is subtree t's (packed codes, cores); ``children[t]`` the
    subtrees donated from it, in donation order; subtree 0 is the root.
    Cores are merged by support, and core leaf codes renumbered to match.
    """
    index: dict[Core, int] = {}
    cores: list[Core] = []
    # The codes stay packed (int64), renumbered with numpy: at n = 12 a tree
    # of 40 M codes as a tuple of Python ints took about 1.5 GB and seconds
    # of a Python loop; as an array, 8 bytes a code.  TreeProof accepts an
    # array (its tree is a Sequence), as it does for a tree read packed from
    # a certificate; trees below PACK_MIN codes (written as JSON lists) stay
    # tuples, equal to the sequential search's.
    out = array("q")
    todo = [0]
    while todo:
        tid = todo.pop()
        raw, tcores = results[tid]
        remap = []
        for c in tcores:
            j = index.get(c)
            if j is None:
                j = index[c] = len(cores)
                cores.append(c)
            remap.append(j)
        codes = np.frombuffer(raw, dtype=np.int64).copy()
        leaf = codes <= CORE_BASE
        if leaf.any():
            codes[leaf] = CORE_BASE - np.asarray(remap, dtype=np.int64)[CORE_BASE - codes[leaf]]
        out.frombytes(codes.tobytes())
        # This subtree continues with its donations, latest first: pushing
        # them in donation order pops the latest first.
        todo.extend(children[tid])
    return TreeProof(tuple(cores), out if len(out) >= PACK_MIN else tuple(out))
