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

from .api import check, load_certificate, verify
from .certify.schema import Certificate
from .certify.check import CheckResult
from .errors import InputError
from .io.load import load_network
from .model.network import Layer, Network
from .certify.schema import Status
from .verdict import Verdict

__version__ = "0.1.0"

__all__ = [
    "verify", "check", "load_certificate", "load_network",
    "Certificate", "CheckResult", "InputError", "Layer", "Network", "Status", "Verdict",
]
