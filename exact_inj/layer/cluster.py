"""The case-split proof search on a Dask cluster (``verify --scheduler ADDRESS``;
needs the ``[dask]`` extra).

Subtrees of one layer's tree (docs/theory.md, section 11) are decided by Dask
workers and spliced into one TreeProof (:mod:`exact_inj.layer.subtrees`),
which the exact checker verifies exactly as a sequential one: the cluster is
untrusted like every search, and nothing it returns is a verdict before
``Run.certified`` has checked it here.

- This process searches the root for FIRST_SLICE seconds: a small tree ends
  here and the cluster is never used.  Otherwise it hands its whole stack
  out (every entry becomes a waiting subtree) and from then on only
  coordinates.
- A task is a batch of waiting subtrees, shallowest first.  A worker decides
  them in order with the sequential tree_search; once the task's *slice* has
  run out, each 64 nodes (tree_search's donate hook) it gives back the whole
  stack of the subtree it is in, and the subtrees it has not started.  Those
  wait here for the next tasks.  So a large subtree is split where it turns
  out to be large, no estimate of subtree sizes is needed, and every task
  ends within about a slice (plus the rest of the node it was in): a
  finishing search is never stuck behind one long task.  The slice is short
  while workers wait for work (FAN_OUT_SLICE) and longer otherwise
  (SLICE_SECONDS), which keeps the per-task overhead small.
- A witness from any task cancels the remaining tasks (tasks already running
  end within their slice; their answers are not read), and so does a node or
  time limit: the answer is then unknown.  A failed task (a worker lost, an
  exception) ends the search as unknown with a note, never as a verdict.

The verdict does not depend on the cluster: the same layer gets the same
answer as the sequential search.  The proof's shape (the order of the
splits, which cores are found) and the witness found may differ.

Each task's costs are recorded (:class:`ClusterReport`): the subtrees it
decided, their nodes and compute seconds, and when this process sent it and
read its answer, for projections to other worker counts
(benchmarks/cluster_search.py).
"""

from __future__ import annotations

import heapq
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..certify.schema import Witness
from ..errors import InputError
from ..model import Domain
from ..model.network import Layer
from .data import LayerData
from .search import CoreStore, SearchResult, SearchStats, tree_search
from .subtrees import absorb, attach, detach, merge, proof_codes, root_entry, stats_record

__all__ = ["FAN_OUT_SLICE", "FIRST_SLICE", "SLICE_SECONDS", "TASKS_PER_THREAD", "ClusterReport",
           "cluster_tree_search", "connect", "search_subtrees"]

# Seconds this process searches the root before handing out its stack: about
# what sending the first tasks costs, so small trees never leave the process.
FIRST_SLICE = 0.25

# A task's slice while subtrees are waiting for it, and while workers are
# waiting for subtrees (fewer waiting subtrees than worker threads).
SLICE_SECONDS = 2.0
FAN_OUT_SLICE = 0.25

# Tasks kept in flight per worker thread: one running, one queued on the
# worker, so that a worker does not idle while its next task is sent.
TASKS_PER_THREAD = 2


def connect(address: str, timeout: float = 30.0):
    """A dask.distributed Client for the scheduler at ``address``, or a
    one-line InputError (missing Dask, unreachable address)."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(None, "--scheduler needs Dask: pip install 'exact_inj[dask]'") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise InputError(None, f"--scheduler {address}: cannot connect ({e})") from None


# --- the worker side -------------------------------------------------------------------


def search_subtrees(layer: Layer, domain: Domain, items: list, seconds: float, slice_seconds: float,
                    max_nodes: int | None) -> dict[str, Any]:
    """A cluster task: decide the detached subtrees ``items`` (a list of
    ``(tid, entry, core)``) in order, for at most ``seconds``, handing back
    what is left once ``slice_seconds`` have passed (module docstring).

    Returns a dict: ``done``, one ``(tid, codes, cores, donated, nodes,
    seconds, cpu)`` per decided subtree (``donated``: the detached entries it gave
    back, in donation order); ``rest``, the items not started; ``end``, None
    or ``("witness", Witness)`` or ``("limit", open cases)``; ``stats``, a
    stats record of the whole task; ``seconds`` and ``cpu``, its wall and
    CPU time (this thread's: on a loaded machine the CPU time is what the
    work costs).
    """
    t0, c0 = time.perf_counter(), time.thread_time()
    deadline, slice_end = t0 + seconds, t0 + slice_seconds
    data = LayerData(layer, domain)
    store = CoreStore(data.M)
    total = SearchStats()
    done: list = []
    out: dict[str, Any] = {"done": done, "rest": [], "end": None, "stats": None}
    donated: list = []

    def give_back(stack: list, st: CoreStore) -> None:
        if time.perf_counter() > slice_end:
            donated.extend(detach(e, st) for e in stack)
            stack.clear()

    for i, (tid, entry, core) in enumerate(items):
        if i and time.perf_counter() > slice_end:
            out["rest"] = items[i:]
            break
        donated = []
        t, c = time.perf_counter(), time.thread_time()
        budget = None if max_nodes is None else max(max_nodes - total.nodes, 1)
        res = tree_search(data, deadline, max_nodes=budget, root=attach(entry, core, store), store=store,
                          donate=give_back)
        absorb(total, stats_record(res.stats))
        if res.kind == "witness":
            out["end"] = ("witness", res.witness)
            break
        if res.kind != "proof":
            out["end"] = ("limit", max(res.stats.open_cases, 1) + len(items) - i - 1)
            break
        done.append((tid, proof_codes(res.proof), res.proof.cores, donated, res.stats.nodes,
                     time.perf_counter() - t, time.thread_time() - c))
    out["stats"] = stats_record(total)
    out["seconds"] = time.perf_counter() - t0
    out["cpu"] = time.thread_time() - c0
    return out


# --- this process ------------------------------------------------------------------------


@dataclass
class ClusterReport:
    """What the cluster search did, for the verdict's info and projections.

    ``tasks``: one row per task, ``[parent, subtrees, nodes, seconds, cpu,
    sent, read]``: the task whose answer made its last subtree available (-1
    for the root's slice here), how many subtrees it decided, their nodes,
    its wall and CPU seconds on the worker, and when this process sent it
    and read its answer (seconds since the search started; 0 for a task
    cancelled unread).  ``subtrees``: one row per decided subtree,
    ``[subtree, donor, task, nodes, seconds, cpu]``: its number, the subtree
    that handed it back (-1 for the root; the donor's answer made it
    available), the task that decided it, its nodes, wall and CPU seconds.
    """

    workers: int
    slice_seconds: float
    tasks: list[list] = field(default_factory=list)
    subtrees: list[list] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "slice_seconds": self.slice_seconds,
                "task_fields": ["parent", "subtrees", "nodes", "seconds", "cpu", "sent", "read"],
                "tasks": [[p, k, nd, round(s, 4), round(c, 4), round(a, 4), round(b, 4)]
                          for p, k, nd, s, c, a, b in self.tasks],
                "subtree_fields": ["subtree", "donor", "task", "nodes", "seconds", "cpu"],
                "subtrees": [[i, d, t, nd, round(s, 4), round(c, 4)] for i, d, t, nd, s, c in self.subtrees]}


class _End(Exception):
    def __init__(self, result: SearchResult):
        self.result = result


def cluster_tree_search(
    data: LayerData,
    deadline: float,
    client,
    max_nodes: int | None = None,
    poll: Callable[[], Witness | None] | None = None,
    progress: Callable[[SearchStats, float], None] | None = None,
    slice_seconds: float | None = None,
    first_slice: float | None = None,
) -> tuple[SearchResult, ClusterReport]:
    """tree_search's answer from the Dask workers of ``client`` (a
    distributed.Client; module docstring), with what each task cost.
    ``slice_seconds`` and ``first_slice`` override SLICE_SECONDS and
    FIRST_SLICE (tests and benchmarks)."""
    from distributed import wait

    slice_seconds = SLICE_SECONDS if slice_seconds is None else slice_seconds
    first_slice = FIRST_SLICE if first_slice is None else first_slice

    t_start = time.perf_counter()
    threads = sum(client.nthreads().values()) or 1
    report = ClusterReport(threads, slice_seconds)
    total = SearchStats()
    notes: list[str] = []
    kinds: set[str] = set()
    results: dict[int, tuple[bytes, tuple]] = {}
    children: dict[int, list[int]] = {0: []}
    waiting: list = []  # heap of (depth, tid, entry, core, producing task)
    next_tid = [1]
    donor: dict[int, int] = {0: -1}

    def add_stats(rec: dict) -> None:
        # Every subtree repeats its search's notes ("core reuse narrowed
        # after 4096 nodes"): each kind is kept once.
        for s in rec["notes"]:
            kind = re.sub(r"\d+", "#", s)
            if kind not in kinds:
                kinds.add(kind)
                notes.append(s)
        absorb(total, {**rec, "notes": []})

    def enqueue(parent_tid: int, entries: list, task: int) -> None:
        for entry, core in entries:
            tid = next_tid[0]
            next_tid[0] += 1
            children[parent_tid].append(tid)
            children[tid] = []
            donor[tid] = parent_tid
            heapq.heappush(waiting, (entry[6], tid, entry, core, task))

    def finish(kind: str, **kw) -> tuple[SearchResult, ClusterReport]:
        total.notes = notes
        return SearchResult(kind, stats=total, **kw), report

    # 1. The root here, for FIRST_SLICE seconds.
    store = CoreStore(data.M)
    first_end = t_start + first_slice
    handed: list = []

    def hand_out(stack: list, st: CoreStore) -> None:
        if time.perf_counter() > first_end:
            handed.extend(detach(e, st) for e in stack)
            stack.clear()

    c0 = time.thread_time()
    res = tree_search(data, deadline, max_nodes=max_nodes, poll=poll, root=root_entry(data), store=store,
                      donate=hand_out)
    add_stats(stats_record(res.stats))
    if res.kind != "proof":
        total.open_cases = res.stats.open_cases
        return finish(res.kind, witness=res.witness)
    results[0] = (proof_codes(res.proof), res.proof.cores)
    now = time.perf_counter() - t_start
    report.tasks.append([-1, 1, res.stats.nodes, now, time.thread_time() - c0, 0.0, now])
    report.subtrees.append([0, -1, 0, res.stats.nodes, now, report.tasks[0][4]])
    enqueue(0, handed, 0)

    # 2. The rest on the cluster.
    inflight: dict = {}  # future -> task index
    layer_f = client.scatter(data.layer, broadcast=True, hash=False) if waiting else None
    domain_f = client.scatter(data.domain, broadcast=True, hash=False) if waiting else None

    def send() -> None:
        slots = TASKS_PER_THREAD * threads - len(inflight)
        while waiting and slots > 0:
            take = max(1, len(waiting) // slots)
            batch = [heapq.heappop(waiting) for _ in range(min(take, len(waiting)))]
            parent = max(b[4] for b in batch)
            items = [(tid, entry, core) for _, tid, entry, core, _ in batch]
            # Few subtrees waiting: split the next ones soon, so that no
            # worker thread waits long for work.
            s = min(FAN_OUT_SLICE, slice_seconds) if len(waiting) < threads else slice_seconds
            budget = None if max_nodes is None else max(max_nodes - total.nodes, 1)
            now = time.perf_counter()
            fut = client.submit(search_subtrees, layer_f, domain_f, items, deadline - now, s, budget, pure=False)
            k = len(report.tasks)
            report.tasks.append([parent, 0, 0, 0.0, 0.0, now - t_start, 0.0])
            inflight[fut] = k
            slots -= 1

    def cancel_all() -> None:
        if inflight:
            client.cancel(list(inflight))
            inflight.clear()

    last_report = time.perf_counter()
    try:
        send()
        while inflight:
            try:
                finished, _ = wait(list(inflight), timeout=0.2, return_when="FIRST_COMPLETED")
            except TimeoutError:
                finished = ()
            for fut in finished:
                k = inflight.pop(fut)
                try:
                    out = fut.result()
                except Exception as e:  # a lost worker, an exception in the task: never a verdict
                    total.open_cases = 1 + len(waiting) + len(inflight)
                    notes.append(f"a cluster task failed ({type(e).__name__}: {e})")
                    raise _End(finish("limit")[0]) from None
                add_stats(out["stats"])
                row = report.tasks[k]
                row[1:5] = len(out["done"]), out["stats"]["nodes"], out["seconds"], out["cpu"]
                row[6] = time.perf_counter() - t_start
                for tid, codes, cores, donated, nodes, secs, cpu in out["done"]:
                    results[tid] = (codes, cores)
                    report.subtrees.append([tid, donor[tid], k, nodes, secs, cpu])
                    enqueue(tid, donated, k)
                for tid, entry, core in out["rest"]:
                    heapq.heappush(waiting, (entry[6], tid, entry, core, k))
                end = out["end"]
                if end is not None and end[0] == "witness":
                    notes.append("witness from a cluster worker")
                    raise _End(finish("witness", witness=end[1])[0])
                if end is not None:
                    total.open_cases = end[1] + len(waiting) + len(inflight)
                    raise _End(finish("limit")[0])
            now = time.perf_counter()
            if now > deadline + 1.0:  # tasks stop at the deadline themselves; a backstop
                total.open_cases = len(waiting) + len(inflight)
                raise _End(finish("limit")[0])
            if poll is not None:
                wit = poll()
                if wit is not None:
                    notes.append("witness from the MILP side search")
                    raise _End(finish("witness", witness=wit)[0])
            if progress is not None and now - last_report > 2.0:
                last_report = now
                total.open_cases = len(waiting) + len(inflight)
                progress(total, now)
            send()
    except _End as e:
        cancel_all()
        return e.result, report
    except BaseException:
        cancel_all()
        raise
    notes.append(f"{len(results)} subtrees in {len(report.tasks)} tasks on {threads} Dask worker threads")
    proof = merge(results, children)
    total.cores = len(proof.cores)
    return finish("proof", proof=proof)
