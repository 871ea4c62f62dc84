"""`python -m exact_inj` is the same as the `exact-inj` command."""

import sys

from .cli import main

sys.exit(main())
