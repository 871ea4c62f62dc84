"""The convex input set a verdict is about: R^n, the nonnegative orthant, or a box.

It belongs to the model (a question is "injective on which inputs?"), so a
reader of the model never walks into the certificate module; certificates and
the search routes both import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError
from ..numbers import fraction_to_str, parse_exact, quote

__all__ = ["Domain"]


@dataclass(frozen=True)
class Domain:
    """The convex input set a verdict is about: all of R^n, the nonnegative
    orthant, or a box lower <= x <= upper (degenerate sides allowed).

    Each is { x : G x <= h } for the rows :meth:`constraints` lists, in a
    fixed order that certificates refer to (row m + j of a tree is
    constraint j): a box lists x_j <= u_j for every j, then -x_j <= -l_j;
    the orthant lists -x_j <= 0.

    >>> Domain.box([0, "1/2"], [1, "1/2"]).constraints(2)[1]
    [Fraction(1, 1), Fraction(1, 2), Fraction(0, 1), Fraction(-1, 2)]
    """

    kind: str = "reals"
    lower: tuple[Fraction, ...] | None = None
    upper: tuple[Fraction, ...] | None = None

    KINDS = ("reals", "orthant", "box")

    @classmethod
    def reals(cls) -> "Domain":
        return cls("reals")

    @classmethod
    def orthant(cls) -> "Domain":
        return cls("orthant")

    @classmethod
    def box(cls, lower, upper) -> "Domain":
        lo = tuple(Fraction(v) if not isinstance(v, float) else _no_float(v) for v in lower)
        hi = tuple(Fraction(v) if not isinstance(v, float) else _no_float(v) for v in upper)
        if len(lo) != len(hi) or not lo:
            raise ValueError("a box needs lower and upper bounds of the same, nonzero length")
        return cls("box", lo, hi)

    def dim_ok(self, n: int) -> bool:
        return self.kind != "box" or len(self.lower) == n

    def constraints(self, n: int) -> tuple[list[list[Fraction]], list[Fraction]]:
        """(G, h) with the domain = { x : G x <= h }."""
        if self.kind == "reals":
            return [], []
        eye = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]
        if self.kind == "orthant":
            return [[-v for v in row] for row in eye], [Fraction(0)] * n
        return eye + [[-v for v in row] for row in eye], list(self.upper) + [-v for v in self.lower]

    def is_empty(self) -> bool:
        return self.kind == "box" and any(lo > hi for lo, hi in zip(self.lower, self.upper))

    def contains(self, x) -> bool:
        if self.kind == "reals":
            return True
        if self.kind == "orthant":
            return all(v >= 0 for v in x)
        return all(lo <= v <= hi for lo, v, hi in zip(self.lower, x, self.upper))

    def base_point(self, n: int) -> list[Fraction]:
        """A point of a nonempty domain."""
        return list(self.lower) if self.kind == "box" else [Fraction(0)] * n

    def describe(self) -> str:
        if self.kind == "reals":
            return "R^n"
        if self.kind == "orthant":
            return "the nonnegative orthant"
        sides = [f"[{fraction_to_str(a)}, {fraction_to_str(b)}]" for a, b in zip(self.lower, self.upper)]
        if len(sides) > 8:  # one readable line; the JSON "domain" keeps every bound
            return f"a box in {len(sides)} coordinates, " + " x ".join(sides[:3]) + " x ..."
        return "the box " + " x ".join(sides)

    def to_json(self) -> dict:
        if self.kind == "box":
            return {"kind": "box", "lower": [fraction_to_str(v) for v in self.lower],
                    "upper": [fraction_to_str(v) for v in self.upper]}
        return {"kind": self.kind}

    @classmethod
    def from_json(cls, obj: object, where: str) -> "Domain":
        if not isinstance(obj, dict) or obj.get("kind") not in cls.KINDS:
            raise InputError(where, f"unsupported domain {quote(obj)} (kinds: {', '.join(cls.KINDS)})")
        if obj["kind"] != "box":
            return cls(obj["kind"])
        try:
            lo = [parse_exact(v, f"domain lower[{k}]") for k, v in enumerate(_bounds(obj, "lower", where))]
            hi = [parse_exact(v, f"domain upper[{k}]") for k, v in enumerate(_bounds(obj, "upper", where))]
            return cls.box(lo, hi)
        except (ValueError, ZeroDivisionError) as e:
            raise InputError(where, str(e)) from None


def _no_float(v: float) -> Fraction:
    raise TypeError(f"refusing float {v!r} as a domain bound: give an int, Fraction or string")


def _bounds(obj: dict, key: str, where: str) -> list:
    v = obj.get(key)
    if not isinstance(v, list):
        raise InputError(where, f"domain {key} must be a list")
    return v

