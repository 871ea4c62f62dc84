"""`python -m exact_inj` is the same as the `exact-inj` command."""

import sys

from .cli.launch import main

if __name__ == "__main__":
    sys.exit(main())
