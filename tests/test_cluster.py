"""The proof search on a Dask cluster (exact_inj/layer/cluster.py) against the
sequential one, and `verify --scheduler` at the edges.

On random small layers (bias-free and biased, integer and Gaussian entries,
R^n, the orthant and boxes) the cluster search must reach the same kind of
answer as tree_search, every proof spliced from the workers' subtrees must
pass the exact checker, and every witness must be an exact collision.  The
slices are made tiny so that even these small trees are cut into many tasks;
a run in which nothing was split would test nothing, so that is asserted.
The default suite uses an in-process cluster (threads); ``-m slow`` runs one
with worker processes, as a real cluster has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from exact_inj import verify  # noqa: E402
from exact_inj.certify.check import check  # noqa: E402
from exact_inj.certify.schema import Certificate, Status  # noqa: E402
from exact_inj.errors import InputError  # noqa: E402
from exact_inj.layer import cluster, search  # noqa: E402
from exact_inj.layer.data import LayerData  # noqa: E402
from exact_inj.model import Network  # noqa: E402
from random_layers import gaussian_layer, random_layer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", params=[1, 2], ids=["1worker", "2workers"])
def client(request):
    with distributed.LocalCluster(n_workers=request.param, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        yield c


def _compare(client, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    split = 0
    kinds = {"proof": 0, "witness": 0}
    for k in range(count):
        layer, dom = random_layer(rng, 7)
        data = LayerData(layer, dom)
        if dom.is_empty():
            continue
        seq = search.tree_search(data, time.perf_counter() + 60)
        par, report = cluster.cluster_tree_search(data, time.perf_counter() + 60, client, slice_seconds=0.005,
                                                  first_slice=0.0)
        assert seq.kind in ("proof", "witness"), (k, seq.stats.notes)
        assert par.kind == seq.kind, (k, seq.kind, par.kind, par.stats.notes)
        kinds[par.kind] += 1
        net = Network((layer,))
        if par.kind == "proof":
            res = check(Certificate(net, dom, Status.INJECTIVE, par.proof))
            assert res.valid, (k, res.reason)
            assert par.stats.leaves == sum(1 for c in par.proof.tree if c < 0)
            # Every subtree is counted once: the nodes add up.
            assert par.stats.nodes == sum(row[3] for row in report.subtrees)
            if len(report.subtrees) > 1:
                split += 1
        else:
            res = check(Certificate(net, dom, Status.NOT_INJECTIVE, par.witness))
            assert res.valid, (k, res.reason)
    assert kinds["proof"] and kinds["witness"], kinds
    assert split >= count // 10, f"only {split} proofs were spliced from several subtrees"


def test_cluster_matches_sequential(client):
    _compare(client, 30, 20261205)


@pytest.mark.slow
def test_cluster_matches_sequential_processes():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        _compare(c, 60, 17)


def test_witness_cancels_the_other_tasks(client, monkeypatch):
    """A witness from one task ends the search at once: the tasks still in
    flight are cancelled and never read, although they would run for
    seconds.  The tasks are stand-ins (the first answers with a witness, the
    others sleep), so that which task finds what does not depend on timing;
    the layer is injective with a tree large enough to be handed out."""
    from exact_inj.layer.subtrees import stats_record

    for seed in range(40):  # a not-injective layer's witness, for the stand-in to answer with
        bad = gaussian_layer(6, 30, seed)
        found = search.tree_search(LayerData(bad), time.perf_counter() + 60)
        if found.kind == "witness":
            break
    calls: list[int] = []

    def stand_in(layer, domain, items, seconds, slice_seconds, max_nodes):
        calls.append(1)
        if len(calls) > 1:
            time.sleep(5)
        return {"done": [], "rest": [], "end": ("witness", found.witness) if len(calls) == 1 else None,
                "stats": stats_record(search.SearchStats()), "seconds": 0.0, "cpu": 0.0}

    monkeypatch.setattr(cluster, "search_subtrees", stand_in)
    data = LayerData(gaussian_layer(7, 47))
    t = time.perf_counter()
    res, report = cluster.cluster_tree_search(data, time.perf_counter() + 60, client, first_slice=0.0)
    assert res.kind == "witness" and res.witness == found.witness
    assert time.perf_counter() - t < 4, "the search waited for the other tasks"
    unread = [row for row in report.tasks[1:] if row[6] == 0.0]
    assert unread, "no task was in flight when the witness arrived"


def test_time_limit_is_unknown(client):
    """A deadline already near: the answer is a limit (unknown), never a verdict."""
    data = LayerData(gaussian_layer(8, 54))
    res, _ = cluster.cluster_tree_search(data, time.perf_counter() + 0.3, client, slice_seconds=0.05,
                                         first_slice=0.0)
    assert res.kind == "limit" and res.stats.open_cases >= 1


def test_engine_verdict_and_report(client, monkeypatch):
    """Through verify(): the same certified verdict as the sequential engine,
    the route says where the tree ran, and each task's costs are in the info
    (slices made tiny, so that this small tree is shared out)."""
    monkeypatch.setattr(cluster, "FIRST_SLICE", 0.0)
    monkeypatch.setattr(cluster, "SLICE_SECONDS", 0.01)
    net = Network((gaussian_layer(6, 40),))
    v1 = verify(net, workers=1, milp="none")
    v2 = verify(net, scheduler=client, milp="none")
    assert v1.status is v2.status is Status.INJECTIVE
    assert check(v2.certificate).valid
    assert "tree:cluster" in v2.info["tried"]
    rep = v2.info["cluster"]
    assert rep["workers"] == sum(client.nthreads().values())
    assert len(rep["subtrees"]) > 1
    assert sum(row[3] for row in rep["subtrees"]) == v2.info["nodes"]


def test_missing_dask_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r"needs Dask: pip install 'exact_inj\[dask\]'"):
        cluster.connect("tcp://127.0.0.1:8786")


def test_unreachable_scheduler_exits_2(tmp_path):
    """An address nobody listens at: exit 2 and one line on stderr, within the time limit."""
    f = tmp_path / "net.json"
    f.write_text(json.dumps({"layers": [{"weight": [[1, 0], [0, 1], [-1, 0], [0, -1]]}]}))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "exact_inj", "verify", str(f), "--scheduler", "tcp://127.0.0.1:9",
                        "--time-limit", "2", "--quiet"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [s for s in p.stderr.splitlines() if s.strip()]
    assert len(lines) == 1 and "--scheduler tcp://127.0.0.1:9: cannot connect" in lines[0], p.stderr
    assert time.perf_counter() - t < 30


def _default_in_child() -> int:
    from exact_inj.api import default_workers

    return default_workers()


def test_default_workers():
    """All cores this process may use; 1 inside a pool's worker process,
    which is already one of many."""
    from concurrent.futures import ProcessPoolExecutor

    from exact_inj.api import default_workers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == cores
    with ProcessPoolExecutor(1) as ex:
        assert ex.submit(_default_in_child).result() == 1


def test_small_tree_starts_no_worker():
    """With workers > 1, a tree that ends within psearch.SPAWN_AFTER seconds
    starts no worker process (their start-up would cost more than the
    tree), and gives the same proof as the sequential search."""
    from exact_inj.layer import psearch

    psearch.shutdown()
    data = LayerData(gaussian_layer(4, 27))
    t = time.perf_counter()
    seq = search.tree_search(data, t + 60)
    if time.perf_counter() - t > psearch.SPAWN_AFTER / 2:
        pytest.skip("the machine is too loaded for this tree to be small")
    par = psearch.parallel_tree_search(data, time.perf_counter() + 60, 4)
    assert psearch.running_workers() == 0
    assert par.kind == seq.kind == "proof" and par.proof == seq.proof
