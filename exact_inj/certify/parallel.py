"""The tree check in worker processes (certify/tree.py, "In windows").

This process reads the cores twice and the codes once, as streams.  It
builds the cores' row masks (while the workers start), sends them to every
worker with the layer's rows, and hands out the cores in chunks, then the
tree a window at a time, each with the replay state where it starts
(certify/windows.py, which also checks that the tree closes exactly at its
end).  A worker replays its window with the same walk as the check in one
process.  At most one task per worker is in flight, so memory stays bounded
by a window here and in every worker, whatever the tree's size.

A worker that does not start, dies or answers out of turn makes this check
give up (nothing was accepted from it): the check in one process decides.
"""

from __future__ import annotations

import itertools
import select
import threading

from .. import ipc
from .base import Invalid
from .layer import check_core
from .tree import Masks, Rows, walk, windows
from .windows import Shape

__all__ = ["CORE_CHUNK", "check_parallel", "shutdown", "worker_main"]

CORE_CHUNK = 4096
"""Cores handed to a worker at a time."""

_POOL = ipc.Pool(lambda: ipc.Child("exact_inj.certify.worker"))
_POOL_LOCK = threading.Lock()
_CHECKS = itertools.count(1)


def shutdown() -> None:
    """Stop the checker's worker processes (they also stop at exit)."""
    _POOL.shutdown()


def check_parallel(rows: Rows, rows_q, b, m_layer: int, cores, tree, workers: int) -> int | None:
    """The number of leaves of a valid tree, checked by ``workers``
    processes; Invalid for an invalid one; None when the pool could not be
    used (another check holds it, a worker failed, a code does not fit in
    64 bits), and the caller checks in this process."""
    # One check at a time owns the pool: a second one, from another thread,
    # is checked in its own process (two writers on one pipe would
    # interleave their messages).
    if not _POOL_LOCK.acquire(blocking=False):
        return None
    try:
        return _check(rows, rows_q, b, m_layer, cores, tree, workers)
    finally:
        _POOL_LOCK.release()


def _check(rows: Rows, rows_q, b, m_layer: int, cores, tree, workers: int) -> int | None:
    # Every message of this check carries its number, and a worker answers
    # with the number of the task: an answer left in a pipe by another check
    # can never be counted as one of this check's.
    gen = next(_CHECKS)
    M, total = len(rows.W), len(tree)
    try:
        # The workers start (an interpreter each) while this process makes
        # the cores' masks; each gets them with the rows, so cores and
        # windows are then handed out without a pause between them (a
        # window's core leaves only read masks; every core's own check
        # still ends before any verdict).
        pool = _POOL.get(workers)
        masks = Masks(M)
        batch: list = []
        for core in cores:
            batch.append(core.support)
            if len(batch) >= CORE_CHUNK:
                masks.extend(batch, len(masks))
                batch = []
        masks.extend(batch, len(masks))
        for w in pool:
            w.send(("init", gen, rows.W, b, rows_q, m_layer, rows.n, rows.line_leaves, bytes(masks.data)))
        del masks
        run = _Scheduler(pool, gen)
        chunk: list = []
        first = 0
        for k, core in enumerate(cores):
            chunk.append(core)
            if len(chunk) >= CORE_CHUNK:
                run.submit(("cores", first, chunk))
                first, chunk = k + 1, []
        if chunk:
            run.submit(("cores", first, chunk))
        shape = Shape(M, total)
        for offset, codes in windows(tree):
            P, N, prows, stack = shape.state()
            shape.advance(codes)
            end = offset + len(codes)
            run.submit(("window", offset, codes.tobytes(), P, N, prows, stack, end == total, total - end))
        shape.finish()
        run.drain()
        return run.leaves
    except Invalid:
        shutdown()  # workers may still hold tasks; never reuse them half-way
        raise
    except Exception:
        # A worker did not start, died (memory, a signal) or answered out of
        # turn, or a code does not fit in 64 bits: nothing was accepted, so
        # the check in one process decides.
        shutdown()
        return None
    except BaseException:
        # Interrupted (Ctrl-C) while workers still hold tasks: their answers
        # would wait in the pipes for the next check.
        shutdown()
        raise


class _Scheduler:
    """One task per worker at a time; answers counted as they come."""

    def __init__(self, pool: list[ipc.Child], gen: int) -> None:
        self.idle = list(pool)
        self.busy: dict[int, tuple[ipc.Child, tuple]] = {}
        self.gen, self.sent, self.leaves = gen, 0, 0

    def submit(self, task: tuple) -> None:
        while not self.idle:
            self._collect()
        w = self.idle.pop()
        tag = (self.gen, self.sent)
        self.sent += 1
        w.send((task[0], tag, *task[1:]))
        self.busy[w.rfd] = (w, tag)

    def drain(self) -> None:
        while self.busy:
            self._collect()

    def _collect(self) -> None:
        ready, _, _ = select.select(list(self.busy), [], [])
        for fd in ready:
            w, tag = self.busy.pop(fd)
            kind, answered, value = w.recv()
            if answered != tag:
                raise EOFError(f"an answer to task {answered} where {tag} was asked")
            if kind == "invalid":
                raise Invalid(value)
            if kind != "ok":
                raise EOFError(value)
            self.leaves += value
            self.idle.append(w)


def worker_main(rfd: int, wfd: int) -> None:
    """A worker's loop (started as ``python -m exact_inj.certify.worker``):
    cores and windows in, "ok" with the leaves counted, or the reason out."""
    import numpy as np

    ctx = None
    gen = None
    while True:
        try:
            msg = ipc.recv(rfd)
        except EOFError:
            return
        tag = None
        try:
            if msg[0] == "init":
                # Cleared first: a failed init must not leave the last check's rows.
                ctx = gen = None
                _, g, W, b, rows_q, m_layer, n, line_leaves, masks = msg
                ctx, gen = (Rows(W, n, Masks.of(len(W), masks), line_leaves), b, rows_q, m_layer), g
                continue
            tag = msg[1]
            if ctx is None or tag[0] != gen:
                raise RuntimeError(f"task {tag} for another check than {gen}")
            rows, b, rows_q, m_layer = ctx
            if msg[0] == "window":
                _, _, offset, raw, P, N, prows, stack, closes, tail = msg
                codes = np.frombuffer(raw, dtype=np.int64).tolist()
                value = walk(rows, codes, 0, len(codes), P, N, prows, offset, stack, closes, tail)
            else:
                _, _, k0, cores = msg
                for i, core in enumerate(cores):
                    check_core(rows_q, rows.W, b, m_layer, rows.n, core, k0 + i)
                value = 0
            ipc.send(wfd, ("ok", tag, value))
        except Invalid as e:
            ipc.send(wfd, ("invalid", tag, str(e)))
        except Exception as e:  # a malformed object: the caller checks it again in-process
            ipc.send(wfd, ("error", tag, f"{type(e).__name__}: {e}"))
