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

import tempfile
from array import array

import numpy as np

from ..certify.codes import CodeFile, FlatCores, PackedCores, flat_supports, split_flat
from ..certify.schema import CORE_BASE, PACK_MIN, Core, TreeProof
from ..io.files import read_at, write_at
from .data import LayerData
from .search import CoreStore, SearchStats

__all__ = ["COUNTS", "Spool", "SpooledCores", "absorb", "attach", "code_parts", "detach", "merge", "proof_codes", "root_entry", "spool_cores", "stats_record"]

# The SearchStats counters that add up over subtrees.
COUNTS = ("nodes", "leaves", "lps", "core_lps", "repair_failures", "exact_lps")


def root_entry(data: LayerData) -> tuple:
    """The stack entry of the whole tree (the empty node), as tree_search builds it."""
    rk0, span0, basis0 = data.span_info(0)
    return (0, 0, rk0, span0 | data.zero_rows, basis0, -1, 0)


def detach(entry: tuple, store: CoreStore) -> tuple[tuple, Core | None]:
    """The entry without its store index, and the core that index named."""
    core = store.core(entry[5]) if entry[5] >= 0 else None
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


PART = 1 << 20
"""Codes sent or spooled at a time (8 MB): a subtree can hold most of the tree."""


def code_parts(proof: TreeProof):
    """A subtree proof's codes as int64 bytes, PART codes at a time."""
    tree = proof.tree
    view = memoryview(tree if isinstance(tree, array) and tree.typecode == "q" else array("q", tree)).cast("B")
    for lo in range(0, len(view), 8 * PART):
        yield view[lo:lo + 8 * PART].tobytes()


def proof_codes(proof: TreeProof) -> bytes:
    """A subtree proof's codes, packed (int64) for sending."""
    tree = proof.tree
    return (tree if isinstance(tree, array) and tree.typecode == "q" else array("q", tree)).tobytes()


class Spool:
    """Subtrees' codes (int64 bytes) kept in an unlinked temporary file from
    the moment they arrive until :func:`merge` splices them: at n = 12 they
    are 120 MB that would otherwise sit in memory for the whole search."""

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile()
        self._end = 0

    def put(self, raw: bytes) -> tuple[int, int]:
        """Store one subtree's codes; the handle :meth:`get` takes."""
        at = self._end
        self._end = write_at(self._fh, raw, at)
        return at, len(raw)

    def get(self, handle: tuple[int, int]) -> bytes:
        at, size = handle
        raw = read_at(self._fh, size, at)
        if len(raw) != size:
            raise OSError("the spooled subtree is shorter than written")
        return raw

    def close(self) -> None:
        self._fh.close()


class SpooledCores:
    """A subtree's cores, all plain supports, kept in the spool as one flat
    int64 list (each support's length, then its rows), like packed cores in a
    certificate: about 8 bytes a row, against some 300 bytes a core as
    objects (half a million cores at n = 12)."""

    def __init__(self, handle: tuple[int, int], count: int) -> None:
        self.handle, self.count = handle, count

    def __len__(self) -> int:
        return self.count


def spool_cores(cores, spool: Spool):
    """The cores as :class:`SpooledCores` when every one is a plain support;
    else as they are (a core with an explicit multiplier stays an object)."""
    if isinstance(cores, FlatCores):
        return SpooledCores(spool.put(cores.flat.tobytes()), len(cores))
    if not all(c.multiplier is None and not c.domain_support for c in cores):
        return tuple(cores)
    flat = np.fromiter((x for c in cores for x in (len(c.support), *c.support)), dtype=np.int64)
    return SpooledCores(spool.put(flat.tobytes()), len(cores))


def merge(results: dict[int, tuple], children: dict[int, list[int]], spool: Spool | None = None) -> TreeProof:
    """Splice the subtrees' codes into one preorder and renumber their cores.

    ``results[t]`` is subtree t's (codes, cores): the codes as int64 bytes or
    a list of handles into ``spool``, the cores as a tuple or
    :class:`SpooledCores`;
    ``children[t]`` the subtrees donated from it, in donation order; subtree
    0 is the root.  Cores are merged by support, and core leaf codes
    renumbered to match.
    """
    order, todo = [], [0]
    while todo:
        tid = todo.pop()
        order.append(tid)
        # This subtree continues with its donations, latest first: pushing
        # them in donation order pops the latest first.
        todo.extend(children[tid])

    def pieces(tid: int):
        # A subtree's codes a million at a time (one subtree can hold most
        # of the tree): from the spool, or views of the bytes in memory.
        handle = results[tid][0]
        if spool is None:
            codes = np.frombuffer(handle, dtype=np.int64)
            for lo in range(0, len(codes), 1 << 20):
                yield codes[lo:lo + (1 << 20)].copy()
            return
        for part in handle:
            yield np.frombuffer(spool.get(part), dtype=np.int64).copy()

    # The codes stay packed, renumbered with numpy: at n = 12 a tree of 15 M
    # codes as a tuple of Python ints takes about 0.6 GB.  From PACK_MIN codes
    # on the spliced tree goes to disk as it is made (a CodeFile,
    # certify/codes.py, about 1.3 bytes a code), which the checker and the
    # certificate writer read a window at a time; smaller trees stay tuples,
    # equal to the sequential search's.
    total = sum((sum(size for _, size in r[0]) if spool is not None else len(r[0])) // 8 for r in results.values())
    spooled = [isinstance(results[t][1], SpooledCores) for t in order]
    if total >= PACK_MIN and all(spooled):
        remaps, cores = _merge_supports(_flat(spool, results[t][1]) for t in order)
    else:
        remaps, cores = _merge_objects([_objects(spool, results[t][1]) for t in order])
    out = CodeFile() if total >= PACK_MIN else array("q")
    for tid, remap in zip(order, remaps):
        for codes in pieces(tid):
            leaf = codes <= CORE_BASE
            if leaf.any():
                codes[leaf] = CORE_BASE - remap[CORE_BASE - codes[leaf]]
            if isinstance(out, CodeFile):
                out.append(codes)
            else:
                out.frombytes(codes.tobytes())
    return TreeProof(cores, out if isinstance(out, CodeFile) else tuple(out))


def _flat(spool: Spool | None, cores) -> np.ndarray:
    return np.frombuffer(spool.get(cores.handle), dtype=np.int64)


def _objects(spool: Spool | None, cores) -> tuple:
    if not isinstance(cores, SpooledCores):
        return cores
    return tuple(FlatCores(_flat(spool, cores), len(cores)))


def _merge_objects(per_subtree: list[tuple]) -> tuple[list[np.ndarray], tuple]:
    index: dict[Core, int] = {}
    cores: list[Core] = []
    remaps = []
    for tcores in per_subtree:
        remap = []
        for c in tcores:
            j = index.get(c)
            if j is None:
                j = index[c] = len(cores)
                cores.append(c)
            remap.append(j)
        remaps.append(np.asarray(remap, dtype=np.int64))
    return remaps, tuple(cores)


def _merge_supports(flats) -> tuple[list[np.ndarray], PackedCores]:
    """Cores merged by their row sets with numpy: each core a row of a bit
    matrix (one subtree's cores at a time), np.unique over the rows,
    numbered in order of first appearance as the object merge numbers them.
    The merged cores are written to disk (supports in increasing row order;
    a core's rows are a set, and the checker recomputes its multiplier from
    them)."""
    blocks = []
    for flat in flats:
        lengths, rows = split_flat(flat)
        # 16 bytes a core (128 rows) to start with; widened if a row needs it.
        width = max(16, (int(rows.max()) if len(rows) else 0) // 8 + 1)
        block = np.zeros((len(lengths), width), dtype=np.uint8)
        ids = np.repeat(np.arange(len(lengths)), lengths)
        np.bitwise_or.at(block, (ids, rows >> 3), (1 << (rows & 7)).astype(np.uint8))
        blocks.append(block)
    width = max((b.shape[1] for b in blocks), default=16)
    counts = [len(b) for b in blocks]
    bits = np.zeros((sum(counts), width), dtype=np.uint8)
    at = 0
    for block in blocks:
        bits[at:at + len(block), :block.shape[1]] = block
        at += len(block)
    del blocks
    if len(bits):
        uniq, first, inverse = np.unique(bits, axis=0, return_index=True, return_inverse=True)
    else:
        uniq, first, inverse = bits, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    by_first = np.argsort(first, kind="stable")
    rank = np.empty(len(first), dtype=np.int64)
    rank[by_first] = np.arange(len(first))
    number = rank[np.asarray(inverse).reshape(-1)]
    remaps, at = [], 0
    for k in counts:
        remaps.append(number[at:at + k])
        at += k
    flat = CodeFile()
    for lo in range(0, len(by_first), 1 << 16):
        flat.append(flat_supports(uniq[by_first[lo:lo + (1 << 16)]]))
    return remaps, PackedCores(flat, len(first), len(flat) - len(first))

