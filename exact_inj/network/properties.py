"""Onto and bijective, in the cheap exact cases only (docs/theory.md, section 13).

``verify --property surjective|bijective`` answers ``yes`` or ``no`` only from
a reason that is a theorem about the network's shape (a ReLU output layer, a
bounded output unit, more outputs than inputs, a bounded domain, a square
network) together with, where it is needed, an injectivity verdict that the
exact checker accepted.  Deciding surjectivity in general is NP-hard already
for two layers and one output (Froese, Grillo and Skutella); every other case
is ``unknown`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

from ..model import Domain, Network, Vector
from ..numbers import fraction_to_str
from ..verdict import Status, Verdict

__all__ = ["PROPERTIES", "PropertyAnswer", "decide_property"]

PROPERTIES = ("injective", "surjective", "bijective")


@dataclass(frozen=True)
class PropertyAnswer:
    """``answer`` is "yes", "no" or "unknown"; ``outside`` an exact output
    with no preimage, when one is shown; ``injectivity`` the checked verdict
    the answer rests on, if any."""

    property: str
    answer: str
    reason: str
    outside: Vector | None = None
    injectivity: Verdict | None = field(default=None, compare=False)

    def to_json(self) -> dict:
        out: dict = {"property": self.property, "answer": self.answer, "reason": self.reason}
        if self.outside is not None:
            out["outside"] = [fraction_to_str(v) for v in self.outside]
        if self.injectivity is not None:
            out["injectivity"] = self.injectivity.to_json()
        return out


def _not_onto(net: Network, domain: Domain) -> tuple[str, Vector | None] | None:
    """A reason the image is not all of R^p, and an exact output outside it, if one is cheap."""
    n, p = net.input_dim, net.output_dim
    if net.output_unit:
        # tanh maps into (-1, 1), sigmoid into (0, 1): 2 is never an output.
        return (f"every output passes through {net.output_unit}, whose values lie below 1, so y = (2, 0, ...) "
                "has no preimage", (Fraction(2),) + (Fraction(0),) * (p - 1))
    if net.layers[-1].activation == "relu":
        return ("the last layer is a ReLU, so every output is >= 0 and y = (-1, 0, ...) has no preimage",
                (Fraction(-1),) + (Fraction(0),) * (p - 1))
    if domain.kind == "box":
        return (f"{domain.describe()} is bounded (or empty) and the network is continuous, so its image is bounded "
                "and cannot be all of R^p", None)
    if p > n:
        return (f"the image is a finite union of affine images of polyhedra, each of dimension <= {n} < {p}: a "
                f"set of measure zero in R^{p} (docs/theory.md, section 13)", None)
    return None


def decide_property(net: Network, prop: str, domain: Domain, injectivity: Callable[[], Verdict]) -> PropertyAnswer:
    """Surjectivity or bijectivity onto R^p, in the cheap exact cases.

    ``injectivity`` computes the network's checked injectivity verdict on
    ``domain``; it is called only when the answer needs it.

    >>> from exact_inj.model import Layer
    >>> from exact_inj import verify
    >>> net = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, -1]], activation="linear")))
    >>> decide_property(net, "bijective", Domain(), lambda: verify(net)).answer        # x -> x
    'yes'
    >>> decide_property(Network((Layer.from_rows([[1], [-1]]),)), "surjective", Domain(), None).outside
    (Fraction(-1, 1), Fraction(0, 1))
    """
    if prop not in ("surjective", "bijective"):
        raise ValueError(f"unknown property {prop!r} (expected surjective or bijective)")
    n, p = net.input_dim, net.output_dim
    why = _not_onto(net, domain)
    if why is not None:
        reason, point = why
        return PropertyAnswer(prop, "no", f"not onto R^{p}: {reason}", point)
    if domain.kind != "reals":
        return PropertyAnswer(prop, "unknown", f"onto R^{p} is decided here from R^n only, not from "
                                               f"{domain.describe()}")
    if p < n and prop == "surjective":
        return PropertyAnswer(prop, "unknown", f"{n} inputs -> {p} outputs: surjectivity with p <= n is NP-hard to "
                                               "decide (Froese, Grillo and Skutella) and is not attempted here")
    v = injectivity()
    if v.status is Status.INJECTIVE:
        # p == n here (p > n returned above; p < n is never injective).
        return PropertyAnswer(prop, "yes", f"the network is square ({n} -> {n}) and injective (checked: "
                                           f"{v.reason}); an injective piecewise-linear map R^n -> R^n is onto "
                                           "(docs/theory.md, section 13)", None, v)
    if v.status is Status.NOT_INJECTIVE and prop == "bijective":
        return PropertyAnswer(prop, "no", f"not injective (checked: {v.reason})", None, v)
    if prop == "bijective":
        return PropertyAnswer(prop, "unknown", f"injectivity is undecided: {v.reason}", None, v)
    return PropertyAnswer(prop, "unknown", f"the square network is {v.status.value.replace('_', ' ')} ({v.reason}); "
                                           "onto R^n without injectivity is NP-hard to decide and is not attempted",
                          None, v)
