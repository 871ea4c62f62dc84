"""Entry point of the checker's worker processes (certify/parallel.py):
``python -m exact_inj.certify.worker READ_FD WRITE_FD``.  A module of its own
so that ``-m`` does not run a module the package has already imported."""

import signal
import sys

from .parallel import worker_main

if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the process that started this
    # one decides (it stops its workers when interrupted, and a worker ends
    # when its pipe closes), instead of each worker printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
