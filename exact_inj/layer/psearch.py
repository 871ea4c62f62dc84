"""Parallel case-split proof search: subtrees decided by several processes.

The sequential search (search.tree_search) explores one tree depth first and
emits its codes in preorder.  Here this process and K - 1 worker processes
explore subtrees of the same tree, and this process splices the answers.

- A task is one stack entry of tree_search (a node (P, N) with its rank, span
  data and the core it was split on, if any).  Whoever runs it calls
  tree_search from it and keeps its codes and the cores they name.
- This process starts at the root.  Every 64 nodes it reads the workers'
  messages, and an idle worker that has taken the layer gets the entry at the
  *bottom* of this process's stack (the one it would have explored last,
  usually the largest subtree).  An idle process with nothing queued asks a
  busy worker to donate the bottom of its stack in the same way.  A donor's
  own codes end where the donated subtree's begin, so a task's subtree is its
  codes followed by its donated subtrees, latest donation first.
- Workers still starting up get nothing: a small tree is searched here alone,
  and the interpreter start-up of a worker is hidden behind that search.
- Cores are merged by support; core leaf codes are renumbered accordingly.
  The merged TreeProof is an ordinary certificate: the checker verifies it
  exactly as a sequential one (engine.certified runs it before any verdict).
- A witness from any process stops the others (it is re-verified exactly by
  the checker like every witness); a limit in any process ends the search as
  a limit.  The verdict is the layer's, whatever K is; the proof's shape and
  the witness found may differ between runs.

Workers are plain subprocesses started through exact_inj/ipc.py (``python -P
-m exact_inj.layer.searchworker READ_FD WRITE_FD``: an entry module of its
own, since ``-m`` on this module would run it a second time beside the copy the
package import loads, and Python warns about that on stderr), not
multiprocessing: "spawn" would re-import the caller's main module (breaking
scripts without a ``__main__`` guard) and "fork" is unsafe once HiGHS is
loaded.  They are started once and kept for later calls in the same process
(a small layer costs a fraction of an interpreter's start-up).  Messages are
length-prefixed pickles over pipes (ipc.py), which only ever come from the
processes this module started.
"""

from __future__ import annotations

import select
import time
from collections import deque
from typing import Callable

from .. import ipc
from ..certify.schema import Witness
from .data import LayerData
from .search import CoreStore, SearchResult, SearchStats, tree_search
from .subtrees import COUNTS
from .subtrees import absorb as add_stats
from .subtrees import Spool, attach, code_parts, detach, merge, root_entry, spool_cores, stats_record


class _Stop(Exception):
    """Raised inside a worker's search when this process says stop."""


# --- the worker side ------------------------------------------------------------------


def worker_main(rfd: int, wfd: int) -> None:
    """A worker process's loop: tasks in, answers out, on the two pipes."""
    data: LayerData | None = None
    store: CoreStore | None = None
    while True:
        try:
            msg = ipc.recv(rfd)
        except EOFError:
            return
        kind = msg[0]
        if kind == "quit":
            return
        if kind == "init":
            _, call, layer, domain = msg
            data = LayerData(layer, domain)
            store = CoreStore(data.M)
            ipc.send(wfd, ("ready", call))
            continue
        if kind in ("hungry", "stop"):
            continue  # addressed to a task that has already ended
        _, tid, node, hint_core, seconds, max_nodes = msg
        node = attach(node, hint_core, store)
        pending = [False]
        donated = [0]

        def donate(stack: list, st: CoreStore) -> None:
            while select.select([rfd], [], [], 0)[0]:
                m = ipc.recv(rfd)
                if m[0] == "stop":
                    raise _Stop
                if m[0] == "hungry":
                    pending[0] = True
            if pending[0] and stack:
                ipc.send(wfd, ("donate", tid, *detach(stack.pop(0), st)))
                donated[0] += 1
                pending[0] = False

        def flush(codes) -> None:
            ipc.send(wfd, ("part", tid, codes.tobytes()))

        try:
            res = tree_search(data, time.perf_counter() + seconds, max_nodes=max_nodes, root=node,
                              store=store, donate=donate, flush=flush)
        except _Stop:
            ipc.send(wfd, ("stopped", tid))
            continue
        stats = stats_record(res.stats)
        if res.kind == "proof":
            # The codes in parts (the search flushed the earlier ones), then
            # the rest: one message of a subtree of millions of codes would be
            # copied whole twice on each side.
            for part in code_parts(res.proof):
                ipc.send(wfd, ("part", tid, part))
            ipc.send(wfd, ("done", tid, b"", res.proof.cores, donated[0], stats))
        elif res.kind == "witness":
            ipc.send(wfd, ("witness", tid, res.witness, stats))
        else:
            ipc.send(wfd, ("limit", tid, None, stats))


# --- the pool ----------------------------------------------------------------------------


class _Worker(ipc.Child):
    """A search worker (``python -m exact_inj.layer.searchworker``) and what
    this process knows of it."""

    def __init__(self) -> None:
        # cli/launch.py may have started it ahead of need (ipc.prestart).
        super().__init__(ipc.SEARCH_WORKER)
        self.tid: int | None = None  # the task it is running
        self.asked = False
        self.ready = False  # has taken this call's layer


_POOL = ipc.Pool(_Worker)

# Seconds of search before missing workers are started: a worker's
# interpreter takes about half a second of a core to start, which a tree
# that ends sooner would pay for nothing (and on a loaded machine, take from
# this process).  Measured in docs/performance.md, "Cluster search (issue 17)".
SPAWN_AFTER = 0.3


def _pool(k: int) -> list[_Worker]:
    return _POOL.get(k)


def running_workers() -> int:
    """How many worker processes are running (kept for later calls)."""
    return _POOL.running()


def shutdown() -> None:
    """Stop the worker processes (they are also stopped at exit)."""
    _POOL.shutdown()


# --- the coordinator ------------------------------------------------------------------------


def parallel_tree_search(
    data: LayerData,
    deadline: float,
    workers: int,
    max_nodes: int | None = None,
    poll: Callable[[], Witness | None] | None = None,
    progress: Callable[[SearchStats, float], None] | None = None,
) -> SearchResult:
    """tree_search's answer from this process and ``workers - 1`` worker
    processes (see the module docstring)."""
    want = max(workers - 1, 1)
    if ipc.parked(ipc.SEARCH_WORKER):
        # Workers the command line started at launch (cli/launch.py) join now.
        _pool(want)
    # Workers kept from an earlier call join at once; missing ones are
    # started only once the tree has run SPAWN_AFTER seconds (_coordinate).
    warm = [w for w in _POOL if w.alive()][:want]
    try:
        return _coordinate(warm, want, data, deadline, max_nodes, poll, progress)
    except (EOFError, OSError) as e:
        # A worker died: drop the pool; the caller gets a limit, never a verdict.
        shutdown()
        st = SearchStats()
        st.notes.append(f"a parallel worker failed ({e!r})")
        st.open_cases = 1
        return SearchResult("limit", stats=st)


class _End(Exception):
    """A worker's witness or limit ends the search (raised in this process)."""

    def __init__(self, result: SearchResult):
        self.result = result


_CALLS = [0]


def _coordinate(pool, want, data, deadline, max_nodes, poll, progress) -> SearchResult:
    """This process searches too: it starts at the root, and every 64 nodes
    (tree_search's donate hook) it reads the workers' messages and gives an
    idle, ready worker the bottom entry of its own stack.  When its own
    subtree is done it takes queued subtrees, or asks busy workers to donate.
    ``pool`` grows to ``want`` workers once the search has run SPAWN_AFTER
    seconds; workers that are still starting up get nothing, so a small tree
    is simply searched here, sequentially, without starting any."""
    _CALLS[0] += 1
    call = _CALLS[0]
    started = time.perf_counter()

    def join(w) -> None:
        w.tid, w.asked, w.ready = None, False, False
        w.send(("init", call, data.layer, data.domain))

    for w in pool:
        join(w)

    def grow() -> None:
        if len(pool) < want and time.perf_counter() - started > SPAWN_AFTER:
            for w in _pool(want):
                if w not in pool:
                    join(w)
                    pool.append(w)
    queue: deque = deque()
    children: dict[int, list[int]] = {0: []}
    results: dict[int, tuple[list[tuple[int, int]], object]] = {}
    parts: dict[int, list[tuple[int, int]]] = {}  # codes received of subtrees not yet done
    spool = Spool()
    next_tid = [1]
    total = SearchStats()
    store = CoreStore(data.M)
    cur = [0]  # the task this process is searching

    def absorb(stats: dict) -> None:
        add_stats(total, stats)

    def give(w, tid, node, core) -> None:
        w.tid, w.asked = tid, False
        budget = None if max_nodes is None else max(max_nodes - total.nodes, 1)
        w.send(("task", tid, node, core, deadline - time.perf_counter(), budget))

    def service(timeout: float) -> None:
        """Read what the workers sent (waiting up to ``timeout``), hand queued
        subtrees to idle ready workers."""
        fds = [w.rfd for w in pool]
        ready, _, _ = select.select(fds, [], [], timeout)
        for w in pool:
            if w.rfd not in ready:
                continue
            msg = ipc.recv(w.rfd)
            kind = msg[0]
            if kind == "ready":
                w.ready = w.ready or msg[1] == call
            elif kind == "donate":
                _, tid, node, core = msg
                children[tid].append(next_tid[0])
                children[next_tid[0]] = []
                queue.append((next_tid[0], node, core))
                next_tid[0] += 1
                w.asked = False
            elif kind == "part":
                parts.setdefault(msg[1], []).append(spool.put(msg[2]))
            elif kind == "done":
                _, tid, codes, cores, ndon, stats = msg
                assert ndon == len(children[tid])
                handles = parts.pop(tid, [])
                if codes:
                    handles.append(spool.put(codes))
                results[tid] = (handles, spool_cores(cores, spool))
                absorb(stats)
                w.tid = None
            elif kind == "witness":
                absorb(msg[3])
                w.tid = None
                total.notes.append("witness from a parallel worker")
                raise _End(SearchResult("witness", witness=msg[2], stats=total))
            elif kind == "limit":
                absorb(msg[3])
                w.tid = None
                total.open_cases = max(msg[3]["open_cases"], 1) + len(queue)
                raise _End(SearchResult("limit", stats=total))
        for w in pool:
            if w.ready and w.tid is None and queue:
                give(w, *queue.popleft())

    def hook(stack: list, st: CoreStore) -> None:
        grow()
        service(0)
        for w in pool:
            if w.ready and w.tid is None and stack:
                tid = next_tid[0]
                next_tid[0] += 1
                children[cur[0]].append(tid)
                children[tid] = []
                give(w, tid, *detach(stack.pop(0), st))

    def stop_all() -> None:
        # Tell every busy worker to stop and wait until each has said so (or
        # finished), so the pool is clean for the next call.
        for w in pool:
            if w.tid is not None:
                w.send(("stop",))
        for w in pool:
            while w.tid is not None:
                msg = ipc.recv(w.rfd)
                if msg[0] in ("done", "witness", "limit", "stopped"):
                    w.tid = None

    def elsewhere() -> int:
        # Open cases outside this process's own subtree: queued ones and the
        # subtrees the workers are on.
        return len(queue) + sum(1 for w in pool if w.tid is not None)

    def own_progress(st: SearchStats, now: float) -> None:
        # tree_search reports the subtree this process is on, whose counts
        # start again at every subtree (at n = 12 the line fell from 16 M
        # nodes to 1.5 M): shown instead, every subtree finished so far by
        # any process plus this one (the workers' current subtrees are
        # counted when they finish).
        shown = SearchStats(**{k: getattr(total, k) + getattr(st, k) for k in COUNTS})
        shown.cores = st.cores
        shown.open_cases = st.open_cases + elsewhere()
        progress(shown, now)

    node = root_entry(data)
    last_report = time.perf_counter()
    try:
        while True:
            own: list[tuple[int, int]] = []
            res = tree_search(data, deadline, max_nodes=None if max_nodes is None else max(max_nodes - total.nodes, 1),
                              poll=poll, progress=own_progress if progress is not None else None, root=node,
                              store=store, donate=hook, flush=lambda codes: own.append(spool.put(codes.tobytes())))
            st = res.stats
            absorb(stats_record(st))
            if res.kind == "witness":
                raise _End(SearchResult("witness", witness=res.witness, stats=total))
            if res.kind == "limit":
                total.open_cases = max(st.open_cases, 1) + len(queue)
                raise _End(SearchResult("limit", stats=total))
            results[cur[0]] = (own + [spool.put(p) for p in code_parts(res.proof)], spool_cores(res.proof.cores, spool))
            # The next subtree for this process: a queued one, or one that a
            # busy worker donates on request.
            while not queue and any(w.tid is not None for w in pool):
                for w in pool:
                    if w.tid is not None and not w.asked:
                        w.send(("hungry",))
                        w.asked = True
                service(0.05)
                now = time.perf_counter()
                if now > deadline + 1.0:  # the workers stop at the deadline themselves; a backstop
                    total.open_cases = 1 + len(queue)
                    raise _End(SearchResult("limit", stats=total))
                if poll is not None:
                    wit = poll()
                    if wit is not None:
                        total.notes.append("witness from the MILP side search")
                        raise _End(SearchResult("witness", witness=wit, stats=total))
                if progress is not None and now - last_report > 2.0:
                    last_report = now
                    total.open_cases = elsewhere()
                    progress(total, now)
            if not queue:
                break
            cur[0], node, core = queue.popleft()
            node = attach(node, core, store)
    except _End as e:
        stop_all()
        spool.close()
        return e.result
    total.notes.append(f"{len(results)} subtrees on {len(pool) + 1} processes")
    proof = merge(results, children, spool)
    spool.close()
    total.cores = len(proof.cores)
    return SearchResult("proof", proof=proof, stats=total)

