"""The parallel proof search (exact_inj/psearch.py) against the sequential one.

On random small layers (bias-free and biased, integer and Gaussian entries,
R^n, the orthant and boxes) both searches must reach the same kind of answer,
every proof merged from the workers' subtrees must pass the exact checker, and
every witness must be an exact collision.  The default run takes 40 layers;
``-m slow`` takes 200.  A run in which no layer was split among the workers
would test nothing, so the test asserts that merging happened.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

from exact_inj.layer import psearch, search
from exact_inj.layer.data import LayerData
from exact_inj.certify.schema import Certificate
from exact_inj.certify.check import check
from exact_inj.model import Layer, Network
from random_layers import gaussian_layer, random_layer
from exact_inj.certify.schema import Status


@pytest.fixture(autouse=True)
def _spawn_at_once(monkeypatch):
    # Workers are started at the first chance, not after SPAWN_AFTER seconds
    # of search: these trees are small, and a test in which no tree is shared
    # would test nothing.
    monkeypatch.setattr(psearch, "SPAWN_AFTER", 0.0)


def _run(count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    merged = 0
    kinds = {"proof": 0, "witness": 0}
    for k in range(count):
        # n up to 6: since line leaves (docs/theory.md section 4) halved the trees,
        # trees with n <= 5 end before a worker takes a subtree.
        layer, dom = random_layer(rng, 7)
        data = LayerData(layer, dom)
        if dom.is_empty():
            continue
        seq = search.tree_search(data, time.perf_counter() + 60)
        par = psearch.parallel_tree_search(data, time.perf_counter() + 60, 2)
        assert seq.kind in ("proof", "witness"), (k, seq.stats.notes)
        assert par.kind == seq.kind, (k, seq.kind, par.kind, par.stats.notes)
        kinds[par.kind] += 1
        net = Network((layer,))
        if par.kind == "proof":
            res = check(Certificate(net, dom, Status.INJECTIVE, par.proof))
            assert res.valid, (k, res.reason)
            assert par.stats.leaves == sum(1 for c in par.proof.tree if c < 0)
            if any("subtrees" in s and not s.startswith("1 ") for s in par.stats.notes):
                merged += 1
        else:
            res = check(Certificate(net, dom, Status.NOT_INJECTIVE, par.witness))
            assert res.valid, (k, res.reason)
    assert kinds["proof"] and kinds["witness"], kinds
    assert merged >= count // 20, f"only {merged} proofs were merged from several subtrees"


def test_parallel_matches_sequential():
    _run(40, 20261203)


@pytest.mark.slow
def test_parallel_matches_sequential_200():
    _run(200, 17)


def test_engine_workers_same_verdict():
    """Through the engine: a Gaussian 6.7n layer (a proof of thousands of
    nodes) and a non-injective one give the same certified verdicts with
    workers=2 as with workers=1."""
    from exact_inj import verify

    layer = gaussian_layer(6, 40)
    net = Network((layer,))
    v1 = verify(net, milp="none")
    v2 = verify(net, workers=2)
    assert v1.status is v2.status is Status.INJECTIVE
    assert check(v2.certificate).valid
    # Rows 0..11 only and a flipped sign pattern: fewer rows, not injective
    # unless the tree says otherwise; both must agree either way.
    net2 = Network((Layer(layer.weight[:20], layer.bias[:20]),))
    a, c = verify(net2, milp="none"), verify(net2, workers=2)
    assert a.status is c.status and a.status is not Status.UNKNOWN


def test_progress_counts_the_whole_search_not_one_subtree(monkeypatch):
    """The coordinator's progress line adds up every finished subtree and the
    one it is on: the node count never falls when it moves to the next
    subtree (it used to restart there: 16 M nodes, then 1.5 M at n = 12)."""
    monkeypatch.setattr(search, "REPORT_SECONDS", 0.0)  # a report every 64 nodes
    layer = gaussian_layer(7, 47)
    seen: list[int] = []
    res = psearch.parallel_tree_search(LayerData(layer), time.perf_counter() + 120, 2,
                                       progress=lambda st, now: seen.append(st.nodes))
    assert res.kind == "proof"
    assert any("subtrees" in s and not s.startswith("1 ") for s in res.stats.notes), res.stats.notes
    assert len(seen) > 10
    assert all(a <= b for a, b in zip(seen, seen[1:])), [(a, b) for a, b in zip(seen, seen[1:]) if a > b][:3]
    assert seen[-1] <= res.stats.nodes


def test_merge_renumbers_core_leaves_and_packs_large_trees():
    """subtrees.merge against a plain loop: subtree 0 donates subtree 1, whose
    codes follow; cores shared by support get one number.  At PACK_MIN codes
    or more the tree goes to disk (a CodeFile, about a byte a code), and
    cores kept in the spool are merged by their row sets with numpy, in the
    same numbering; below PACK_MIN, a tuple and Core objects."""
    from array import array

    from exact_inj.certify.codes import CodeFile, PackedCores
    from exact_inj.certify.schema import CORE_BASE, PACK_MIN, Core
    from exact_inj.layer.subtrees import Spool, merge, spool_cores

    a, b, c = Core((0, 1)), Core((1, 2)), Core((2, 0))
    rng = np.random.default_rng(5)
    for size in (50, PACK_MIN):
        t0 = [int(x) for x in rng.integers(0, 9, size)] + [CORE_BASE, CORE_BASE - 1, -1]
        t1 = [CORE_BASE - 1, 4, CORE_BASE] * (size // 3)
        for spooled in (False, True):
            spool = Spool() if spooled else None
            parts = {0: (t0, (a, b)), 1: (t1, (c, a))}
            if spooled:
                # Spooled in parts of 7 codes, as the codes arrive from a worker.
                results = {t: ([spool.put(array("q", codes[i:i + 7]).tobytes()) for i in range(0, len(codes), 7)],
                               spool_cores(cs, spool)) for t, (codes, cs) in parts.items()}
            else:
                results = {t: (array("q", codes).tobytes(), cs) for t, (codes, cs) in parts.items()}
            got = merge(results, {0: [1], 1: []}, spool)
            if spooled and size >= PACK_MIN:
                assert isinstance(got.cores, PackedCores)
                # A core's rows are a set: written in increasing order.
                assert [x.support for x in got.cores] == [(0, 1), (1, 2), (0, 2)]
            else:
                assert got.cores == (a, b, c)
            # Subtree 1's own core 0 (c) is merged core 2, its core 1 (a) merged core 0.
            want = t0 + [CORE_BASE - {0: 2, 1: 0}[CORE_BASE - x] if x <= CORE_BASE else x for x in t1]
            assert list(got.tree) == want
            assert isinstance(got.tree, CodeFile if len(want) >= PACK_MIN else tuple)


def test_a_search_that_flushes_its_codes_in_parts_splices_a_valid_proof(monkeypatch):
    """With a tiny FLUSH_CODES this process hands its codes to the spool every
    few dozen (the workers keep the default): the spliced tree must be the
    same proof, checked exactly, whatever the parts."""
    from exact_inj.model import Domain
    from exact_inj.layer import subtrees
    monkeypatch.setattr(search, "FLUSH_CODES", 37)
    sizes: list[int] = []
    real = subtrees.Spool.put

    def put(self, raw):
        sizes.append(len(raw) // 8)
        return real(self, raw)

    monkeypatch.setattr(subtrees.Spool, "put", put)
    layer = gaussian_layer(7, 47)
    res = psearch.parallel_tree_search(LayerData(layer), time.perf_counter() + 120, 2)
    assert res.kind == "proof"
    assert sum(1 for k in sizes if 37 <= k <= 40) >= 3, sizes  # this process flushed parts of its subtrees
    got = check(Certificate(Network((layer,)), Domain(), Status.INJECTIVE, res.proof))
    assert got.valid, got.reason


def test_a_core_store_hands_out_flat_cores_equal_to_its_core_objects():
    """CoreStore.flat builds the flat list from the mask words with numpy;
    it must list exactly the rows store.core(k) lists, in the same order,
    for layers of one, two and three mask words, and refuse (None) when a
    core is more than a support."""
    import random

    from exact_inj.certify.schema import Core
    rnd = random.Random(7)
    for M in (5, 64, 65, 128, 150):
        store = search.CoreStore(M)
        for _ in range(300):
            store.add(Core(tuple(rnd.sample(range(M), rnd.randrange(1, min(M, 14) + 1)))))
        ids = [rnd.randrange(len(store)) for _ in range(200)]
        flat = store.flat(ids)
        assert [c.support for c in flat] == [store.core(k).support for k in ids]
        assert len(flat) == 200 and flat.rows == sum(len(store.core(k).support) for k in ids)
        fresh = search.CoreStore(M)
        fresh.add(Core((0,)))
        fresh.add(Core((1, 0), (Fraction(1), Fraction(2))))
        assert fresh.flat([0]) is not None and fresh.flat([0, 1]) is None
        assert fresh.core(1) == Core((1, 0), (Fraction(1), Fraction(2)))  # kept as it is
