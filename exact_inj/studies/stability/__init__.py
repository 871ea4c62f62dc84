"""Certified lower bounds on a layer's stability constant (docs/stability.md).

>>> from exact_inj.model import Layer
>>> res = stability(Layer.from_rows([[1, 0], [0, 1], [-1, 0], [0, -1]]))
>>> res.status, float(res.half_lower) <= 0.5, check_stability(res.certificate).valid
('complete', True, True)

The modules, in the order a run goes through them: :mod:`.search` (the case
split, and why it covers every cell), :mod:`.bounds` (certified figures and the
certificate), :mod:`.result`, :mod:`.cli`.  The checker is trusted code and
lives in :mod:`exact_inj.certify.stability`; the exact kernels it shares with
the search are in :mod:`exact_inj.exact.sigma`.
"""

from ...certify.stability import FORMAT, VERSION, StabilityCheck, check_stability
from ...exact.sigma import Grams, inv_sqrt_lower, leading_minors, sqrt_lower, sqrt_upper
from .bounds import stability
from .cli import add_parser, format_result, run
from .result import HALF_NOTE, METHOD, PAPER_NOTE, StabilityResult

__all__ = [
    "FORMAT", "HALF_NOTE", "METHOD", "PAPER_NOTE", "VERSION", "Grams", "StabilityCheck", "StabilityResult",
    "add_parser", "check_stability", "format_result", "inv_sqrt_lower", "leading_minors", "run", "sqrt_lower",
    "sqrt_upper", "stability",
]
