"""What :func:`exact_inj.studies.stability.stability` returns, and its JSON form.

Every Fraction in a :class:`StabilityResult` is proved (by the certificate it
carries, which :func:`exact_inj.certify.stability.check_stability` re-checks);
the floats beside them are display copies rounded the safe way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ...certify.stability import StabilityCheck
from ...numbers import fraction_to_str
from .numbers import exact_str, float_down, float_up

__all__ = ["HALF_NOTE", "METHOD", "PAPER_NOTE", "StabilityResult"]

METHOD = ("cell enumeration by exact case splitting on the rows, LP-guided, with branch and bound "
          "(a subtree is closed once its forced-active rows have sigma_min above the best cell found)")

PAPER_NOTE = ("Theorem 3 of the paper is stated for bias-free layers. For a biased layer this is the same formula "
              "over the biased arrangement's cells; it never exceeds the (1/2) constant when min sigma_min > 0, so "
              "it is still a valid (weaker) bound, but it is not the paper's theorem.")
HALF_NOTE = ("|f(x) - f(y)| >= (1/2) min sigma_min |x - y| for all x, y, bias included "
             "(docs/theory.md, section 9)")


@dataclass
class StabilityResult:
    """What :func:`stability` found.  Every Fraction is proved; floats are for display."""

    status: str  # "complete", "not_injective" or "partial"
    n: int
    m: int
    biased: bool
    t: Fraction  # every cell has sigma_min^2 > t (>= when t = 0)
    sigma_lower: Fraction  # r with r^2 <= t
    sigma_upper: Fraction | None  # min sigma_min <= this
    inv_sqrt_2m_lower: Fraction
    half_lower: Fraction
    paper_lower: Fraction
    inverse_lipschitz_half: Fraction | None  # 1 / half_lower, or None (unbounded / unknown)
    inverse_lipschitz_paper: Fraction | None
    cell_point: tuple[Fraction, ...] | None
    cell_active: tuple[int, ...] | None
    cell_signs: str | None
    witness: tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None
    certificate: dict
    stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    check: "StabilityCheck | None" = None
    seconds: float = 0.0
    min_cell_pivots: list[Fraction] | None = None

    def to_json(self) -> dict:
        """The summary object printed by ``exact-inj stability --json``."""
        out: dict[str, Any] = {
            "status": self.status,
            "n": self.n,
            "m": self.m,
            "bias": self.biased,
            "method": METHOD,
            "min_sigma": {
                "lower": exact_str(self.sigma_lower),
                "lower_float": float_down(self.sigma_lower),
                "upper": exact_str(self.sigma_upper),
                "upper_float": None if self.sigma_upper is None else float_up(self.sigma_upper),
                "t": exact_str(self.t),
                "meaning": "lower <= min over z of sigma_min(W_A(z)) <= upper; every cell has sigma_min^2 > t "
                           "(exact LDL^T), lower^2 <= t",
            },
            "minimising_cell": None if self.cell_point is None else {
                "point": [fraction_to_str(v) for v in self.cell_point],
                "active_rows": list(self.cell_active),
                "signs": self.cell_signs,
                "ldl_pivots": None if self.min_cell_pivots is None else [exact_str(p) for p in self.min_cell_pivots],
            },
            "constants": {
                "half": {
                    "formula": "(1/2) min sigma_min",
                    "lower": exact_str(self.half_lower),
                    "lower_float": float_down(self.half_lower),
                    "valid_with_bias": True,
                    "note": HALF_NOTE,
                },
                "paper": {
                    "formula": "C(W) = (2m)^(-1/2) min sigma_min",
                    "lower": exact_str(self.paper_lower),
                    "lower_float": float_down(self.paper_lower),
                    "inv_sqrt_2m_lower": exact_str(self.inv_sqrt_2m_lower),
                    "stated_for_bias_free_layers": True,
                    "note": PAPER_NOTE if self.biased else "Theorem 3 of the paper (bias-free layer).",
                },
            },
            "inverse_lipschitz_upper": {
                "from_half": exact_str(self.inverse_lipschitz_half),
                "from_half_float": None if self.inverse_lipschitz_half is None
                else float_up(self.inverse_lipschitz_half),
                "from_paper": exact_str(self.inverse_lipschitz_paper),
                "from_paper_float": None if self.inverse_lipschitz_paper is None
                else float_up(self.inverse_lipschitz_paper),
            },
            "not_injective": None if self.witness is None else {
                "x": [fraction_to_str(v) for v in self.witness[0]],
                "y": [fraction_to_str(v) for v in self.witness[1]],
            },
            "certificate": {
                "valid": None if self.check is None else self.check.valid,
                "reason": None if self.check is None else self.check.reason,
                "check_seconds": None if self.check is None else round(self.check.seconds, 6),
                "tree_entries": len(self.certificate.get("tree", [])),
                **({} if self.check is None else self.check.counts),
            },
            "stats": self.stats,
            "seconds": round(self.seconds, 6),
            "notes": self.notes,
        }
        return out

