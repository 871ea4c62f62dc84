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
from .certificate import Certificate
from .checker import CheckResult
from .io import InputError, load_network
from .model import Layer, Network
from .verdict import Status, Verdict

__version__ = "0.1.0"

__all__ = [
    "verify", "check", "load_certificate", "load_network",
    "Certificate", "CheckResult", "InputError", "Layer", "Network", "Status", "Verdict",
]
