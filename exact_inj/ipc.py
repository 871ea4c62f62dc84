"""Worker processes that talk to this one over pipes: the one transport that the
parallel proof search (layer/psearch.py) and the parallel checker
(certify/tree.py) share.  It neither searches nor checks anything.

Workers are plain subprocesses (``python -m MODULE READ_FD WRITE_FD``), not
multiprocessing: "spawn" would re-import the caller's main module (breaking
scripts without a ``__main__`` guard) and "fork" is unsafe once HiGHS is
loaded.  Messages are length-prefixed pickles; they only ever come from the
processes this module started.

>>> r, w = os.pipe()
>>> send(w, ("hello", 1)); recv(r)
('hello', 1)
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys

__all__ = ["Child", "Pool", "recv", "send"]

_HEADER = struct.Struct("<Q")


def send(fd: int, msg) -> None:
    """Write one message to a pipe."""
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        k = os.write(fd, view)
        view = view[k:]


def _read_exact(fd: int, k: int) -> bytes:
    parts = []
    while k:
        chunk = os.read(fd, min(k, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        k -= len(chunk)
    return b"".join(parts)


def recv(fd: int):
    """Read one message from a pipe; EOFError when the other end closed it."""
    (k,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return pickle.loads(_read_exact(fd, k))


class Child:
    """One worker process running ``python -m module READ_FD WRITE_FD``."""

    def __init__(self, module: str) -> None:
        r1, w1 = os.pipe()  # to the worker
        r2, w2 = os.pipe()  # from the worker
        env = dict(os.environ)
        # The same exact_inj as this process's, whatever sys.path says: the
        # folder that holds the package (this file is exact_inj/ipc.py), never
        # the package folder itself, whose numbers.py would shadow the
        # standard library's.
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            # -P: python -m would otherwise put the current directory first on
            # sys.path, ahead of PYTHONPATH, and run an exact_inj found there.
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", module, str(r1), str(w2)],
                pass_fds=(r1, w2), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
            )
        except BaseException:
            # Not started (process limit, memory): its pipes would stay open.
            os.close(w1)
            os.close(r2)
            raise
        finally:
            os.close(r1)
            os.close(w2)
        self.wfd, self.rfd = w1, r2

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, msg) -> None:
        send(self.wfd, msg)

    def recv(self):
        return recv(self.rfd)

    def close(self) -> None:
        try:
            if self.alive():
                self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:  # pragma: no cover - best effort at exit
            pass
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Pool:
    """Worker processes of one kind, started on demand and kept for later
    calls in this process (a small task costs a fraction of an interpreter's
    start-up); stopped at exit.  Iterating gives the workers kept."""

    def __init__(self, make) -> None:
        self._make = make
        self.live: list = []
        atexit.register(self.shutdown)

    def __iter__(self):
        return iter(self.live)

    def get(self, k: int) -> list:
        """k running workers, starting the missing ones."""
        for w in self.live:
            if not w.alive():
                w.close()
        self.live = [w for w in self.live if w.alive()]
        while len(self.live) < k:
            # Each worker joins as it starts, so that if a later one cannot
            # start (process limit, memory), shutdown() stops it too.
            self.live.append(self._make())
        return self.live[:k]

    def running(self) -> int:
        """How many of the kept workers are running."""
        return sum(1 for w in self.live if w.alive())

    def shutdown(self) -> None:
        """Stop every kept worker."""
        for w in self.live:
            w.close()
        self.live = []
