"""exact_inj: exact, certificate-backed decisions of ReLU injectivity.

>>> import exact_inj
>>> from exact_inj.model import Layer, Network
>>> lemma1 = Network((Layer.from_rows([[1], [-1]], [1, -1]),))
>>> v = exact_inj.verify(lemma1)
>>> v.status.value
'injective'
>>> exact_inj.check(v.certificate).valid
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lazy, legacy

# The public names are imported on first use (PEP 562), so that importing a
# light submodule (exact_inj.ipc, exact_inj.cli.launch) does not pull in numpy,
# python-flint and HiGHS: the command line starts its search workers before
# those imports (cli/launch.py).
_EXPORTS = {
    "verify": "api", "check": "api", "invert": "api", "injectivize": "api", "check_inverse": "api",
    "load_certificate": "api", "Certificate": "certify", "CheckResult": "certify", "Status": "certify",
    "InputError": "errors", "load_network": "io", "Layer": "model", "Network": "model", "Verdict": "verdict",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from .api import check, check_inverse, injectivize, invert, load_certificate, verify
    from .certify import Certificate, CheckResult, Status
    from .errors import InputError
    from .io import load_network
    from .model import Layer, Network
    from .verdict import Verdict


def __getattr__(name: str):
    return lazy.export(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


legacy.install()

__version__ = "0.1.0"

__all__ = [
    "verify", "check", "invert", "injectivize", "check_inverse", "load_certificate", "load_network",
    "Certificate", "CheckResult", "InputError", "Layer", "Network", "Status", "Verdict",
]
