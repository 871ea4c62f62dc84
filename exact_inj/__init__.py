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

from . import legacy
from .api import check, check_inverse, injectivize, invert, load_certificate, verify
from .certify import Certificate, CheckResult, Status
from .errors import InputError
from .io import load_network
from .model import Layer, Network
from .verdict import Verdict

legacy.install()

__version__ = "0.1.0"

__all__ = [
    "verify", "check", "invert", "injectivize", "check_inverse", "load_certificate", "load_network",
    "Certificate", "CheckResult", "InputError", "Layer", "Network", "Status", "Verdict",
]
