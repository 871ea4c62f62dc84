"""What a heuristic says: :class:`Claim`, the claim kinds, the domains and
what evidence would refute a claim.

Shared by the heuristics on R^n (:mod:`exact_inj.studies.heuristics`), the
ball heuristics (:mod:`exact_inj.studies.ball`) and ``exact-inj compare``; it
sits apart from all of them so that none imports another's registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..certify.schema import Witness
from ..model.network import Layer
from ..numbers import fraction_to_str

__all__ = [
    "CLAIMS", "INJECTIVE", "NOT_INJECTIVE", "NO_COUNTEREXAMPLE", "REALS", "REFUTABLE_BALL", "REFUTABLE_NEVER",
    "REFUTABLE_REALS_INJ", "REFUTABLE_REALS_NOT", "Claim", "as_floats", "ball_domain",
]

INJECTIVE = "injective"
NOT_INJECTIVE = "not_injective"
NO_COUNTEREXAMPLE = "no_counterexample"
CLAIMS = (INJECTIVE, NOT_INJECTIVE, NO_COUNTEREXAMPLE)

REALS = "R^n"



@dataclass(frozen=True)
class Claim:
    """What one heuristic says about one layer.

    ``claim`` is "injective", "not_injective" or "no_counterexample" (which is
    also "no claim": a rule whose condition does not apply).  ``domain`` is
    ``"R^n"`` or ``"ball(center=0, radius=r)"``; for a ball, ``ball_radius``
    holds r exactly.  ``witness`` is an exact collision inside the domain, present
    only when it passed the exact checker, and then ``supported`` is True;
    ``supported`` is False for every claim without exact evidence.  ``note`` says
    in one or two sentences what the heuristic did and how far it can be trusted;
    ``refutable`` says what evidence would refute the claim.
    """

    name: str
    claim: str
    seconds: float
    budget: str
    domain: str
    witness: Witness | None
    supported: bool
    note: str
    ball_radius: Fraction | None = None
    refutable: str = ""

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}")
        if self.supported and self.witness is None:
            raise ValueError("a supported claim needs its exact witness")

    def to_json(self) -> dict:
        out = {
            "claim": self.claim,
            "seconds": round(self.seconds, 6),
            "domain": self.domain,
            "supported": self.supported,
            "budget": self.budget,
            "note": self.note,
            "refutable": self.refutable,
        }
        if self.witness is not None:
            out["witness"] = {"x": [fraction_to_str(v) for v in self.witness.x],
                              "y": [fraction_to_str(v) for v in self.witness.y]}
        return out


def ball_domain(radius: Fraction) -> str:
    return f"ball(center=0, radius={fraction_to_str(Fraction(radius))})"


REFUTABLE_REALS_INJ = "by an engine witness (a checked collision in R^n)"
REFUTABLE_REALS_NOT = "by an engine proof of injectivity on R^n, unless the claim carries a checked collision"
REFUTABLE_BALL = (
    "'injective on the ball' by a checked engine collision with both points in the ball: the R^n witness if "
    "it lies there, for a bias-free layer that witness scaled into the ball, or a witness on the box "
    "[-r/k, r/k]^n inside the ball (k = ceil(sqrt n)); 'not injective on the ball' by a checked engine proof "
    "on R^n or on the box [-r, r]^n that contains the ball (docs/theory.md, section 10)"
)
REFUTABLE_NEVER = "never: 'no counterexample found' claims nothing"



def as_floats(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """The layer as a float user would hold it: every entry rounded to a double."""
    W = np.array([[float(v) for v in row] for row in layer.weight], dtype=float)
    b = np.array([float(v) for v in layer.bias], dtype=float)
    return W, b

