"""Entry point of the checker's worker processes (certify/tree.py):
``python -m exact_inj.certify.worker READ_FD WRITE_FD``.  A module of its own
so that ``-m`` does not run a module the package has already imported."""

import sys

from .tree import worker_main

if __name__ == "__main__":
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
