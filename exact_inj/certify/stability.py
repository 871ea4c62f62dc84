"""The checker of stability certificates (``exact-inj stability --check``).

Trusted code, like the rest of :mod:`exact_inj.certify`: it reads a
certificate written by :func:`exact_inj.studies.stability.stability` and
re-derives every figure with rational arithmetic and flint's exact matrices
only.  It imports no solver and nothing that searches, so auditing the
stability figures means auditing this module, :mod:`exact_inj.exact.sigma`
and :mod:`exact_inj.exact.linalg` (docs/theory.md, section 4, "Stability
certificate"; the argument that the tree covers every cell is in
docs/theory.md, section 9).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..errors import InputError
from ..exact.linalg import rank_q
from ..exact.sigma import Grams
from ..io.json import network_from_json
from ..numbers import parse_exact, quote

__all__ = ["FORMAT", "VERSION", "StabilityCheck", "check_stability"]

FORMAT = "exact_inj/stability-certificate"
VERSION = 1


@dataclass
class StabilityCheck:
    """The checker's answer: valid or not, a one-line reason, and what it counted."""

    valid: bool
    reason: str
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)


class _Bad(Exception):
    pass


def _num(obj: dict, key: str, nullable: bool = False) -> Fraction | None:
    if key not in obj:
        raise _Bad(f"missing {key!r}")
    v = obj[key]
    if v is None:
        if nullable:
            return None
        raise _Bad(f"{key!r} is null")
    try:
        return parse_exact(v, key)
    except InputError as e:
        raise _Bad(str(e)) from None


def _fast_exact(x: Any) -> Fraction:
    """parse_exact, with a fast path for integer strings (most multipliers)."""
    if isinstance(x, str) and x.isascii() and x.lstrip("-").isdigit():
        return Fraction(int(x))
    try:
        return parse_exact(x, "multiplier")
    except InputError as e:
        raise _Bad(str(e)) from None


def _vec(v: Any, n: int, where: str) -> tuple[Fraction, ...]:
    if not isinstance(v, list) or len(v) != n:
        raise _Bad(f"{where}: expected {n} numbers")
    try:
        return tuple(parse_exact(x, where) for x in v)
    except InputError as e:
        raise _Bad(str(e)) from None


def check_stability(cert: dict) -> StabilityCheck:
    """Verify a stability certificate with exact arithmetic only (no solver, no search).

    Re-derives: that the case-split tree covers every open cell (each split
    covers both strict signs of an undecided nonzero row, the tree is complete),
    every empty case's Motzkin multiplier, every cell point's strict signs, the
    positive definiteness of W_P^T W_P - t I at every other leaf by exact
    LDL^T, r^2 <= t, the constants and inverse bounds as stated, and the upper
    bound's Rayleigh quotient.  A not-injective certificate is a point whose
    active rows have rank < n (and, when given, a verified collision).

    A not-injective certificate for f(x) = ReLU(x): at x = -1 no row is active.

    >>> from exact_inj.io.json import network_to_json
    >>> from exact_inj.model import Layer, Network
    >>> cert = {"format": FORMAT, "version": VERSION, "status": "not_injective",
    ...         "network": network_to_json(Network((Layer.from_rows([[1]]),))),
    ...         "t": "0", "sigma_lower": "0", "sigma_upper": "0", "inv_sqrt_2m_lower": "1/2",
    ...         "half_lower": "0", "paper_lower": "0", "inverse_lipschitz_half": None,
    ...         "inverse_lipschitz_paper": None, "cell": {"point": ["-1"]}}
    >>> check_stability(cert).valid
    True
    >>> cert["cell"]["point"] = ["1"]
    >>> check_stability(cert).reason
    'the active rows at cell.point span R^n'
    """
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    try:
        reason = _check(cert, counts)
        ok = True
    except _Bad as e:
        reason, ok = str(e), False
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as e:
        reason, ok = f"malformed certificate: {type(e).__name__}: {quote(str(e))}", False
    return StabilityCheck(ok, reason, time.perf_counter() - t0, counts)


def _check(cert: dict, counts: dict) -> str:
    if not isinstance(cert, dict) or cert.get("format") != FORMAT or cert.get("version") != VERSION:
        raise _Bad(f"not a {FORMAT} version {VERSION} object")
    try:
        net = network_from_json(cert["network"], where="network")
    except InputError as e:
        raise _Bad(str(e)) from None
    if not net.is_single_relu_layer:
        raise _Bad("the network is not a single ReLU layer")
    L = net.layers[0]
    n, m = L.in_dim, L.out_dim
    W, b = L.weight, L.bias
    status = cert.get("status")
    if status not in ("complete", "partial", "not_injective"):
        raise _Bad(f"unknown status {quote(status)}")
    t = _num(cert, "t")
    r = _num(cert, "sigma_lower")
    q = _num(cert, "inv_sqrt_2m_lower")
    half = _num(cert, "half_lower")
    paper = _num(cert, "paper_lower")
    inv_h = _num(cert, "inverse_lipschitz_half", nullable=True)
    inv_p = _num(cert, "inverse_lipschitz_paper", nullable=True)
    if t < 0 or r < 0 or q < 0:
        raise _Bad("t, sigma_lower and inv_sqrt_2m_lower must be >= 0")
    if r * r > t:
        raise _Bad("sigma_lower^2 > t")
    if q * q * (2 * m) > 1:
        raise _Bad("inv_sqrt_2m_lower > 1/sqrt(2m)")
    if half != r / 2 or paper != r * q:
        raise _Bad("the constants are not (1/2) sigma_lower and inv_sqrt_2m_lower * sigma_lower")
    if inv_h != (1 / half if half > 0 else None) or inv_p != (1 / paper if paper > 0 else None):
        raise _Bad("the inverse Lipschitz bounds are not 1 / the constants")

    if status == "not_injective":
        if t != 0 or _num(cert, "sigma_upper") != 0:
            raise _Bad("a not-injective certificate claims min sigma_min = 0 exactly")
        x = _vec(cert["cell"]["point"], n, "cell.point")
        pre = L.pre_activation(x)
        A = [i for i in range(m) if pre[i] >= 0]
        if rank_q([W[i] for i in A], n) >= n:
            raise _Bad("the active rows at cell.point span R^n")
        wit = cert.get("witness")
        if wit is not None:
            xw, yw = _vec(wit["x"], n, "witness.x"), _vec(wit["y"], n, "witness.y")
            if xw == yw or L.apply(xw) != L.apply(yw):
                raise _Bad("the witness pair does not collide")
        counts.update(cells=0, empty_cases=0, bound_leaves=0, open_cases=0)
        return f"the active rows at the given point have rank < {n}: min sigma_min = 0"

    # Upper bound: min sigma_min <= sigma_min(W_A(x)) <= |W_A v| / |v| <= R.
    R = _num(cert, "sigma_upper", nullable=True)
    up = cert.get("upper")
    if (R is None) != (up is None):
        raise _Bad("sigma_upper and upper must be given together")
    if up is not None:
        x = _vec(up["point"], n, "upper.point")
        v = _vec(up["vector"], n, "upper.vector")
        pre = L.pre_activation(x)
        A = [i for i in range(m) if pre[i] >= 0]
        vv = sum(c * c for c in v)
        if R < 0 or vv == 0:
            raise _Bad("upper: R < 0 or v = 0")
        if sum(sum(w * c for w, c in zip(W[i], v)) ** 2 for i in A) > R * R * vv:
            raise _Bad("upper: |W_A v|^2 > R^2 |v|^2")
        if R < r:
            raise _Bad("sigma_upper < sigma_lower")

    tree = cert.get("tree")
    if not isinstance(tree, list):
        raise _Bad("missing tree")
    nonzero = [i for i in range(m) if any(W[i])]
    nzmask = sum(1 << i for i in nonzero)
    grams: dict[int, bool] = {}
    G = Grams(W)
    Lb = math.lcm(*(v.denominator for v in b))
    Bint = [int(v * Lb) for v in b]
    c = dict(cells=0, empty_cases=0, bound_leaves=0, open_cases=0)
    stack = [(0, 0)]
    pos = 0
    while stack:
        P, N = stack.pop()
        if pos >= len(tree):
            raise _Bad("the tree ends early: a case is not covered")
        e = tree[pos]
        pos += 1
        if not isinstance(e, list) or not e:
            raise _Bad(f"tree[{pos - 1}] is malformed")
        kind = e[0]
        if kind == "split":
            rr = e[1]
            if isinstance(rr, bool) or not isinstance(rr, int) or not 0 <= rr < m:
                raise _Bad(f"tree[{pos - 1}]: bad row {quote(rr)}")
            if not nzmask >> rr & 1 or (P | N) >> rr & 1:
                raise _Bad(f"tree[{pos - 1}]: row {rr} is zero or already decided")
            stack.append((P, N | 1 << rr))
            stack.append((P | 1 << rr, N))
            continue
        if kind == "empty":
            lam = e[1]
            if not isinstance(lam, list) or not lam:
                raise _Bad(f"tree[{pos - 1}]: empty multiplier")
            # In integers: with lambda = Lam / D, u_i = L w_i and c_i = Lb b_i, the
            # conditions sum s lambda w = 0 and sum s lambda b >= 0 are unchanged.
            items = []
            seen = set()
            for item in lam:
                i, x = item
                if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < m or i in seen:
                    raise _Bad(f"tree[{pos - 1}]: bad multiplier row {quote(i)}")
                seen.add(i)
                if N >> i & 1:
                    sgn = 1
                elif P >> i & 1:
                    sgn = -1
                else:
                    raise _Bad(f"tree[{pos - 1}]: multiplier row {i} is not decided at this node")
                x = _fast_exact(x)
                if x < 0:
                    raise _Bad(f"tree[{pos - 1}]: negative multiplier")
                items.append((i, sgn, x))
            D = math.lcm(*(x.denominator for _, _, x in items))
            tot = [0] * n
            s_b = 0
            pos_any = False
            for i, sgn, x in items:
                k = sgn * (x.numerator * (D // x.denominator))
                pos_any |= k != 0
                Ui = G.U[i]
                for j in range(n):
                    tot[j] += k * Ui[j]
                s_b += k * Bint[i]
            if not pos_any or any(tot) or s_b < 0:
                raise _Bad(f"tree[{pos - 1}]: not a Motzkin multiplier of the node's strict system")
            c["empty_cases"] += 1
            continue
        if kind == "cell":
            if (P | N) != nzmask:
                raise _Bad(f"tree[{pos - 1}]: a cell leaf with undecided rows")
            x = _vec(e[1], n, f"tree[{pos - 1}]")
            pre = L.pre_activation(x)
            if any(pre[i] <= 0 for i in range(m) if P >> i & 1) or any(pre[i] >= 0 for i in range(m) if N >> i & 1):
                raise _Bad(f"tree[{pos - 1}]: the cell point does not have the node's strict signs")
            c["cells"] += 1
        elif kind in ("bound", "open"):
            c["bound_leaves" if kind == "bound" else "open_cases"] += 1
        else:
            raise _Bad(f"tree[{pos - 1}]: unknown entry {quote(kind)}")
        if t > 0:
            ok = grams.get(P)
            if ok is None:
                ok = grams[P] = G.positive_definite([i for i in range(m) if P >> i & 1], t)
            if not ok:
                raise _Bad(f"tree[{pos - 1}]: W_P^T W_P - t I is not positive definite (sigma_min^2 <= t)")
    if pos != len(tree):
        raise _Bad("entries after the end of the tree")
    if status == "complete" and c["open_cases"]:
        raise _Bad("a complete certificate has open cases")
    counts.update(c)
    return (f"{c['cells']} cells, {c['empty_cases']} empty cases, {c['bound_leaves']} subtrees closed by bound, "
            f"{c['open_cases']} open cases; every leaf has sigma_min^2 > t (exact LDL^T)")

