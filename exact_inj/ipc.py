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

__all__ = ["SEARCH_WORKER", "Child", "Pool", "cores", "parked", "prestart", "recv", "send"]

_HEADER = struct.Struct("<Q")

SEARCH_WORKER = "exact_inj.layer.searchworker"
"""The module a proof-search worker runs (layer/psearch.py); named here, in
the light transport module, so that cli/launch.py can start one before the
engine is imported."""


def send(fd: int, msg) -> None:
    """Write one message to a pipe."""
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    # The header and the pickle are written one after the other, not joined:
    # a subtree's codes can be a message of 100 MB, and joining copies it.
    for part in (_HEADER.pack(len(data)), data):
        view = memoryview(part)
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


def cores() -> int:
    """The cores this process may run on: ``os.process_cpu_count()`` where
    Python has it, else the affinity mask, else ``os.cpu_count()``.

    >>> cores() >= 1
    True
    """
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        return count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _site_dirs() -> list[str]:
    import site

    dirs = list(getattr(site, "getsitepackages", lambda: [])())
    user = getattr(site, "getusersitepackages", None)
    if user is not None:
        dirs.append(user())
    return dirs


def worker_pythonpath(current: str | None, pkg_parent: str, site_dirs: list[str]) -> str | None:
    """The PYTHONPATH a worker gets so that it imports the same exact_inj as
    this process: the folder that holds the package (``pkg_parent``; never the
    package folder itself, whose numbers.py would shadow the standard
    library's) put first, unless it is a site-packages folder, which the worker
    (the same interpreter) searches anyway, and in its place after the
    standard library: put first, a backport installed there under a standard
    library name would shadow the standard library.  None: leave it as it is.

    >>> worker_pythonpath(None, "/src", ["/venv/site-packages"])
    '/src'
    >>> worker_pythonpath("/a", "/src", []) == "/src" + os.pathsep + "/a"
    True
    >>> worker_pythonpath("/a", "/venv/site-packages", ["/venv/site-packages"]) is None
    True
    """
    norm = os.path.normcase(os.path.realpath(pkg_parent))
    if any(os.path.normcase(os.path.realpath(d)) == norm for d in site_dirs):
        return None
    return pkg_parent + (os.pathsep + current if current else "")


def _spawn(module: str) -> tuple[subprocess.Popen, int, int]:
    """Start ``python -P -m module READ_FD WRITE_FD``: (process, fd to it, fd from it)."""
    r1, w1 = os.pipe()  # to the worker
    r2, w2 = os.pipe()  # from the worker
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = worker_pythonpath(env.get("PYTHONPATH"), pkg_parent, _site_dirs())
    if path is not None:
        env["PYTHONPATH"] = path
    try:
        # -P: python -m would otherwise put the current directory first on
        # sys.path, ahead of PYTHONPATH, and run an exact_inj found there.
        proc = subprocess.Popen(
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
    return proc, w1, r2


# Processes started ahead of need by :func:`prestart`, per module, until a
# Child of that module takes one.
_PARKED: dict[str, list[tuple[subprocess.Popen, int, int]]] = {}


def prestart(module: str, k: int) -> None:
    """Start ``k`` workers of ``module`` now, for the next ``k`` Child objects
    of that module to take over: their interpreter start-up then runs while
    this process is still importing and reading its input (cli/launch.py).
    Workers nobody takes are stopped at exit."""
    for _ in range(k):
        _PARKED.setdefault(module, []).append(_spawn(module))


def parked(module: str) -> int:
    """How many workers of ``module`` :func:`prestart` started that no Child has taken."""
    return len(_PARKED.get(module, ()))


def _stop_parked() -> None:
    for entries in _PARKED.values():
        for proc, wfd, rfd in entries:
            _stop(proc, wfd, rfd)
    _PARKED.clear()


def _stop(proc: subprocess.Popen, wfd: int, rfd: int) -> None:
    try:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    except Exception:  # pragma: no cover - best effort at exit
        pass
    for fd in (wfd, rfd):
        try:
            os.close(fd)
        except OSError:
            pass


atexit.register(_stop_parked)


class Child:
    """One worker process running ``python -m module READ_FD WRITE_FD``: one
    that :func:`prestart` started, if there is one left, else a new one."""

    def __init__(self, module: str) -> None:
        waiting = _PARKED.get(module)
        self.proc, self.wfd, self.rfd = waiting.pop(0) if waiting else _spawn(module)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, msg) -> None:
        send(self.wfd, msg)

    def recv(self):
        return recv(self.rfd)

    def close(self) -> None:
        _stop(self.proc, self.wfd, self.rfd)


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
