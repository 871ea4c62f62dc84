"""Untrusted search for one layer: instant rules, the structural rule, the
witness LP, the case-split tree and the MILP side search, and the routes of
convolutions through their kernels.  Every answer leaves through
:meth:`exact_inj.run.Run.certified`."""

from .decide import decide_layer

__all__ = ["decide_layer"]
