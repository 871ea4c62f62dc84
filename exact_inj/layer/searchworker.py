"""Entry point of the proof search's worker processes (layer/psearch.py):
``python -m exact_inj.layer.searchworker READ_FD WRITE_FD``.  A module of its
own so that ``-m`` does not run a module the package has already imported."""

import signal
import sys

from .psearch import worker_main

if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the process that started this
    # one stops it (a worker also ends when its pipe closes), instead of each
    # worker printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
