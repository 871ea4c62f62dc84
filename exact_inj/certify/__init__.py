"""The trusted base: the certificate schema and the checker.

Nothing here searches and nothing imports a solver: a certificate is read,
every fact it states is recomputed in rational or modular integer arithmetic,
and it is accepted or rejected with a one-line reason.  Auditing exact_inj's
answers means auditing this package, :mod:`exact_inj.model`,
:mod:`exact_inj.exact`, :mod:`exact_inj.numbers` and :mod:`exact_inj.errors`
(docs/architecture.md).
"""

from .check import CheckResult, check
from .schema import Certificate, Status, Witness
from .stability import StabilityCheck, check_stability

__all__ = ["Certificate", "CheckResult", "StabilityCheck", "Status", "Witness", "check", "check_stability"]
