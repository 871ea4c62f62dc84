"""The answer a decision returns: a status, its evidence, and what is known.

Following PySAT's split between ``solve()`` and ``get_model()``/``get_proof()``,
a :class:`Verdict` answers, and its evidence is read separately through
``.certificate``, ``.witness`` and ``.proof``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .certify.check import check
from .collision import describe
from .certify.schema import Certificate, Status, Witness, proof_kind
from .numbers import fraction_to_str

__all__ = ["Status", "Verdict", "approx", "approx_array", "certified", "json_approx"]


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`exact_inj.verify`.

    ``certificate`` is present exactly when ``status`` is not UNKNOWN, and it
    has passed the exact checker before this object was made.  ``route`` names
    what decided ("instant", "structural", "witness_lp", "tree", "milp", or
    "limit" for unknown); ``reason`` says why in one sentence; ``info`` holds
    the figures: node and core counts, certificate size, check time, and for
    unknown the bounds and open cases.
    """

    status: Status
    seconds: float
    route: str
    reason: str
    certificate: Certificate | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def witness(self):
        ev = self.certificate.evidence if self.certificate else None
        return ev if isinstance(ev, Witness) else None

    @property
    def proof(self):
        ev = self.certificate.evidence if self.certificate else None
        return None if ev is None or isinstance(ev, Witness) else ev

    def __repr__(self) -> str:
        """One short line (the certificate can be megabytes; read it from
        ``.certificate``).

        >>> Verdict(Status.UNKNOWN, 1.25, "limit", "time limit reached")
        <Verdict unknown in 1.25 s by limit: time limit reached>
        """
        why = self.reason if len(self.reason) <= 80 else self.reason[:77] + "..."
        return f"<Verdict {self.status.value} in {self.seconds:.3g} s by {self.route}: {why}>"

    @property
    def x_float(self):
        """The witness's x as a numpy float array (an approximation: the
        exact point is ``.witness.x``); None without a witness."""
        w = self.witness
        return None if w is None else approx_array(w.x)

    @property
    def y_float(self):
        """The witness's y as a numpy float array (an approximation)."""
        w = self.witness
        return None if w is None else approx_array(w.y)

    @property
    def meaning(self) -> str:
        """The plain answer to "is it invertible?" (the question users start from)."""
        if self.status is Status.NOT_INJECTIVE:
            return "not invertible: two different inputs give exactly the same output, so no inverse can tell them apart"
        if self.status is Status.UNKNOWN:
            return "undecided within the limits: no inverse has been shown to exist or not to exist"
        last = self.certificate.network.layers[-1]
        onto = ("it is not onto R^m, since outputs of a ReLU are >= 0" if last.activation == "relu"
                else "it need not be onto its output space")
        return f"invertible on its range: every output comes from exactly one input in the domain ({onto})"

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object (docs/cli.md)."""
        out: dict[str, Any] = {
            "verdict": self.status.value,
            "seconds": round(self.seconds, 6),
            "route": self.route,
            "reason": self.reason,
        }
        w = self.witness
        if w is not None:
            out["witness"] = {"x": [fraction_to_str(v) for v in w.x], "y": [fraction_to_str(v) for v in w.y],
                              # Approximations for reading and plotting; the exact strings are the answer.
                              "x_approx": json_approx(w.x), "y_approx": json_approx(w.y)}
            if w.active_rows is not None:
                out["witness"]["active_rows"] = list(w.active_rows)
                out["witness"]["active_rank"] = w.active_rank
            # The direction and, layer by layer, the active neurons (docs/cli.md, "Witnesses").
            out["witness"].update(describe(self.certificate.network, w.x, w.y))
        if self.proof is not None:
            # The kind names of docs/certificates.md, from the one serialiser.
            out["proof_kind"] = proof_kind(self.proof)
        if self.certificate is not None:
            out["domain"] = self.certificate.domain.to_json()
        out["meaning"] = self.meaning
        out["info"] = self.info
        return out


def certified(net, domain, status, route, reason, evidence, info, t0) -> Verdict:
    """The verdict for this evidence, only after the exact checker accepted it.

    This is the one door every injective / not_injective answer leaves by:
    evidence that fails its own check turns into UNKNOWN with an
    internal-error note, never into a verdict (docs/architecture.md).
    """
    cert = Certificate(net, domain, status, evidence)
    res = check(cert, crosscheck=isinstance(evidence, Witness))
    info = dict(info)
    info["check_seconds"] = round(res.seconds, 6)
    if res.crosscheck_seconds is not None:
        info["crosscheck_seconds"] = round(res.crosscheck_seconds, 6)
    info["certificate_size"] = _size(evidence)
    if not res.valid:  # pragma: no cover - would be an engine bug
        info["internal_error"] = f"certificate failed the exact check: {res.reason}"
        return Verdict(Status.UNKNOWN, time.perf_counter() - t0, "limit",
                       "the engine's evidence failed its own exact check (please report)", None, info)
    info["check"] = res.reason
    return Verdict(status, time.perf_counter() - t0, route, reason, cert, info)


def approx(v: Fraction) -> float:
    """A float near v, correctly rounded, +-inf beyond the float range
    (``float()`` of a Fraction would raise).

    >>> approx(Fraction(1, 3)), approx(Fraction(10**400)), approx(Fraction(-1, 10**400))
    (0.3333333333333333, inf, -0.0)
    """
    try:
        return v.numerator / v.denominator  # int / int rounds correctly
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def json_approx(v) -> list[float | None]:
    """Approximations for JSON, null beyond the float range (JSON has no inf)."""
    return [a if math.isfinite(a) else None for a in map(approx, v)]


def approx_array(v):
    """The floats :func:`approx` gives, as a numpy array."""
    return np.array([approx(a) for a in v], dtype=float)


def _size(evidence) -> int:
    if isinstance(evidence, Witness):
        return 2 * len(evidence.x)
    return evidence.size
