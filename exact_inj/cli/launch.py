"""The ``exact-inj`` command's entry point (and ``python -m exact_inj``'s).

It does one thing before the command line proper (cli/app.py) is imported:
for ``verify`` with more than one worker, it starts the proof search's worker
processes (:func:`exact_inj.ipc.prestart`).  A worker's interpreter and its
imports take about a quarter of a second; started here, that runs on another
core while this process imports numpy, python-flint and HiGHS and reads the
network, so a search of under a second can already share its tree.  Without
this the search starts its workers after ``SPAWN_AFTER`` seconds of searching
(layer/psearch.py), too late for such a tree.  Workers no search takes are
stopped at exit.

Nothing here may import numpy or the engine: that is the point of it.
"""

from __future__ import annotations

import os
import sys

from .. import ipc

__all__ = ["main", "workers_to_prestart"]


def workers_to_prestart(argv: list[str], load: float | None = None) -> int:
    """How many search workers to start at launch for this command line: K - 1
    for ``verify`` with K workers (default: all cores; at most the cores here), 0 for anything else,
    for ``--scheduler`` or ``--help``, for a malformed ``--workers`` (the parser
    will say why), and when the machine is already busy (the one-minute load
    average at least the number of cores: a worker would then only take time
    from this process; the search still starts workers later if its tree is big).

    >>> workers_to_prestart(["verify", "layer.npz", "--workers", "2"], load=0.0)
    1
    >>> workers_to_prestart(["verify", "layer.npz", "--workers=1"], load=0.0)
    0
    >>> workers_to_prestart(["check", "c.json"], load=0.0)
    0
    >>> workers_to_prestart(["verify", "layer.npz", "--workers", "4"], load=99.0)
    0
    >>> workers_to_prestart(["verify", "layer.npz", "--workers", "400"], load=0.0) < 400
    True
    """
    if not argv or argv[0] != "verify":
        return 0
    cores = ipc.cores()
    k = cores
    for i, a in enumerate(argv):
        if a in ("-h", "--help") or a == "--scheduler" or a.startswith("--scheduler="):
            return 0
        value = None
        if a == "--workers" and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith("--workers="):
            value = a.split("=", 1)[1]
        if value is not None:
            if not value.isdigit():
                return 0
            k = int(value)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not available here: assume busy
            return 0
    if load >= cores:
        return 0
    # Never more than the cores: `--workers 40` on 2 cores would otherwise start
    # 39 interpreters before the file is even read (the search itself is
    # bounded by the work there is, not by this).
    return max(min(k, cores) - 1, 0)


def main() -> int:
    """Run the ``exact-inj`` command on ``sys.argv``."""
    k = workers_to_prestart(sys.argv[1:])
    if k:
        try:
            ipc.prestart(ipc.SEARCH_WORKER, k)
        except OSError:  # no process could be started: the search copes without
            pass
    from .app import main as app_main

    return app_main()
