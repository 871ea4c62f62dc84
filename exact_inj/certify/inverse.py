"""The exact checker of preimage answers (docs/inverse.md), and the one
definition of the linear systems both it and the search in
:mod:`exact_inj.network.inverse` read.

This module is part of the trusted base: it imports no solver and searches
nothing.  It uses ``fractions.Fraction`` only, reads every row from the
network itself, and replays the certificate's case split, so coverage is
recomputed, never trusted.

The lifted system
-----------------
For N = L_{K-1} o ... o L_0 with L_k(h) = act_k(W_k h + b_k), the variables
are v = (x, h_0, ..., h_{K-2}): the input and the output of every layer but
the last (whose output is the given y).  A point x with N(x) = y, together
with its true hidden values h_k, satisfies

- the domain's rows G x <= h;
- for every ReLU neuron g of a hidden layer (pre_g = w . h_prev + b, h_g its
  output): ``-h_g <= 0`` and ``pre_g - h_g <= 0`` (h = ReLU(pre) is >= 0 and
  >= pre; no bound is needed);
- for a hidden linear layer: ``h_g - pre_g = 0``;
- for the last layer: if linear, ``pre_j - y_j = 0``; if ReLU, ``pre_j - y_j = 0``
  where y_j > 0, ``pre_j <= 0`` where y_j = 0, and the row ``-y_j <= 0`` where
  y_j < 0 (a ReLU output is never negative).

A node of the case split fixes some hidden ReLU neurons, each in a CLOSED half:
active adds ``-pre_g <= 0`` and ``h_g - pre_g = 0``; inactive adds
``pre_g <= 0`` and ``h_g = 0``.  Both halves together hold every point, so
the leaves of a tree cover every preimage (lifted).  Rows are ``(a, c)`` with
``a`` a sparse dict {variable: coefficient}, meaning a.v + c <= 0 (inequality)
or = 0 (equation); at a node the inequalities are the base rows then one per
fixed neuron, and likewise the equations, in the order of the path.

Leaves
------
- ``infeasible``: lam >= 0 on rows, free mu on equations, sum lam a + sum mu e
  = 0 and sum lam c + sum mu d > 0 (Farkas): no point, so no preimage here.
- ``pin``: lam > 0 (each) and free mu with the combination identically 0
  (coefficients and constant), so every row in its support is tight on the
  node: every point v of the node solves B v + c = 0, B the support rows and
  the listed equations.  The leaf gives one solution ``point`` (all of v), and
  the checker computes rank B = rank B' + n exactly, B' being B without the
  x-columns: then no null vector of B moves x, so every point of the node has
  the same x = point[:n] = p.  The preimages in this branch are {p} if
  N(p) = y and p is in the domain, and none otherwise.
- ``region``: every hidden ReLU neuron is fixed, and the leaf carries a point
  p in the domain with N(p) = y whose pre-activations have the fixed signs.
  The preimages in this branch are exactly the polyhedron
  { x in D : pattern signs, A_s x + c_s = y }, and it holds p.

So the union of what the leaves contribute is exactly the preimage.
"""

from __future__ import annotations

import time
from math import gcd
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from ..errors import InputError
from ..exact import linalg
from ..io.json import network_from_json
from ..model import Domain, Network
from ..model.network import activate
from ..numbers import exact, fraction_to_str, parse_number_text, quote
from .base import Invalid
from .check import check
from .lifted import LiftedSystem, Row, combine, sparse_add
from .peel import check_peel_empty, check_peel_point, check_peel_prefix, pre_activations
from .schema import Certificate, Status

FORMAT = "exact_inj/inverse"
VERSION = 1
ANSWERS = ("empty", "point", "set")

# --- certificate objects ----------------------------------------------------------------


@dataclass(frozen=True)
class Infeasible:
    rows: tuple[int, ...]
    lam: tuple[Fraction, ...]
    eqs: tuple[int, ...]
    mu: tuple[Fraction, ...]


@dataclass(frozen=True)
class Pin:
    rows: tuple[int, ...]
    lam: tuple[Fraction, ...]
    eqs: tuple[int, ...]
    mu: tuple[Fraction, ...]
    point: tuple[Fraction, ...]
    """A solution v of the support rows and listed equations as equalities (all D variables)."""


@dataclass(frozen=True)
class Region:
    point: tuple[Fraction, ...]


def _indices(v: Any, bound: int, what: str) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or not all(type(i) is int for i in v):
        raise Invalid(f"{what} must be a list of integers")
    if len(set(v)) != len(v) or any(not 0 <= i < bound for i in v):
        raise Invalid(f"{what} names an index outside 0..{bound - 1} or repeats one")
    return tuple(v)


def _number(v: Any, what: str) -> Fraction:
    """An exact number: a Fraction, an int, or a string such as "-3/7" (never a float)."""
    if type(v) is Fraction or type(v) is int:
        # Normalised (review: an unnormalised Fraction(-1, -1) compared the
        # wrong way round, and a false "empty" answer passed the domain test).
        return exact(v)
    if isinstance(v, str) and len(v) <= 100_000:
        try:
            # The one exact-number grammar (its exponent is bounded, so a
            # short string cannot cost a huge power of ten).
            return parse_number_text(v)
        except ValueError:
            pass
    raise Invalid(f"{what} is not an exact number: {quote(v)}")


def _numbers(v: Any, what: str) -> tuple[Fraction, ...]:
    if not isinstance(v, (list, tuple)):
        raise Invalid(f"{what} must be a list")
    return tuple(_number(x, f"{what}[{i}]") for i, x in enumerate(v))


def leaf_from_json(obj: Any, nrows: int, neqs: int, dim: int, where: str):
    """A leaf certificate read against its node's row and equation counts."""
    if not isinstance(obj, dict):
        raise Invalid(f"{where} must be an object")
    kind = obj.get("kind")
    if kind == "region":
        return Region(_numbers(obj.get("point"), f"{where} point"))
    if kind not in ("infeasible", "pin"):
        raise Invalid(f"{where} has unknown kind {quote(kind)}")
    rows = _indices(obj.get("rows", []), nrows, f"{where} rows")
    eqs = _indices(obj.get("eqs", []), neqs, f"{where} eqs")
    lam = _numbers(obj.get("lam", []), f"{where} lam")
    mu = _numbers(obj.get("mu", []), f"{where} mu")
    if len(lam) != len(rows) or len(mu) != len(eqs):
        raise Invalid(f"{where}: {len(rows)} rows with {len(lam)} multipliers, {len(eqs)} equations with {len(mu)}")
    if kind == "infeasible":
        return Infeasible(rows, lam, eqs, mu)
    point = _numbers(obj.get("point"), f"{where} point")
    if len(point) != dim:
        raise Invalid(f"{where}: a pin's point has the {dim} variables of the lifted system, not {len(point)}")
    return Pin(rows, lam, eqs, mu, point)


def leaf_to_json(leaf) -> dict:
    s = fraction_to_str
    if isinstance(leaf, Region):
        return {"kind": "region", "point": [s(v) for v in leaf.point]}
    d = {"kind": "infeasible" if isinstance(leaf, Infeasible) else "pin",
         "rows": list(leaf.rows), "lam": [s(v) for v in leaf.lam],
         "eqs": list(leaf.eqs), "mu": [s(v) for v in leaf.mu]}
    if isinstance(leaf, Pin):
        d["point"] = [s(v) for v in leaf.point]
    return d


def verify_infeasible(rows: Sequence[Row], eqs: Sequence[Row], c: Infeasible) -> bool:
    """lam >= 0, the combination's coefficients all 0 and its constant > 0."""
    if any(v < 0 for v in c.lam):
        return False
    a1, c1 = combine(rows, c.rows, c.lam)
    a2, c2 = combine(eqs, c.eqs, c.mu)
    return not sparse_add(a1, a2) and c1 + c2 > 0


def pinned_point(rows: Sequence[Row], eqs: Sequence[Row], c: Pin, n: int) -> tuple[Fraction, ...] | None:
    """The point a pin forces x to, or None if the pin is not valid."""
    if any(v <= 0 for v in c.lam):
        return None
    a1, c1 = combine(rows, c.rows, c.lam)
    a2, c2 = combine(eqs, c.eqs, c.mu)
    if sparse_add(a1, a2) or c1 + c2 != 0:
        return None
    B = [rows[i] for i in c.rows] + [eqs[i] for i in c.eqs]
    v = c.point
    if any(value(r, v) != 0 for r in B):
        return None
    if not determines_x(B, len(v), n):
        return None
    return tuple(v[:n])


def value(row: Row, v: Sequence[Fraction]) -> Fraction:
    a, c = row
    return c + sum((w * v[t] for t, w in a.items()), Fraction(0))


def determines_x(B: Sequence[Row], dim: int, n: int) -> bool:
    """Exactly: do the equations B (a.v + c = 0) fix v_0..v_{n-1} on their
    solution set?  That is, no null vector of B has a nonzero x-part, or
    rank B = rank B' + n with B' the columns n.. of B."""
    if len(B) < n:
        return False
    ints = []
    for a, _ in B:
        den = 1
        for w in a.values():
            den = den * w.denominator // gcd(den, w.denominator)
        row = [0] * dim
        for t, w in a.items():
            row[t] = w.numerator * (den // w.denominator)
        ints.append(row)
    r = linalg.rank(ints, dim)
    if r < n:
        return False
    r2 = linalg.rank([row[n:] for row in ints], dim - n) if dim > n else 0
    return r == r2 + n


def is_preimage(net: Network, domain: Domain, y: Sequence[Fraction], x: Sequence[Fraction]) -> bool:
    return len(x) == net.input_dim and domain.contains(x) and net.evaluate(x) == tuple(y)


@dataclass
class CoverSummary:
    """What a replayed cover says: the preimage is exactly ``pins_hit`` plus the
    polyhedra of the ``regions`` (paths and points)."""

    leaves: int
    infeasible: int
    pins: int
    pins_hit: list[tuple[Fraction, ...]]
    regions: list[tuple[tuple[tuple[int, bool], ...], tuple[Fraction, ...]]]


def replay_cover(system: LiftedSystem, domain: Domain, tree: Any, leaves: Any) -> CoverSummary:
    """Walk the tree (preorder: g >= 0 splits hidden ReLU neuron g, active half
    first; -1 - k is closed by leaves[k]) and check every leaf at its node."""
    if not isinstance(tree, (list, tuple)) or not all(type(t) is int for t in tree):
        raise Invalid("the tree must be a list of integers")
    if not isinstance(leaves, (list, tuple)):
        raise Invalid("leaves must be a list")
    net, n, y = system.net, system.n, system.y
    G = len(system.neurons)
    pos = 0
    stack: list[tuple[tuple[int, bool], ...]] = [()]
    out = CoverSummary(0, 0, 0, [], [])
    while stack:
        path = stack.pop()
        if pos >= len(tree):
            raise Invalid("the tree ends before every node is closed")
        code = tree[pos]
        pos += 1
        if code >= 0:
            if code >= G:
                raise Invalid(f"tree entry {pos - 1} splits neuron {code}, but the network has {G} hidden ReLUs")
            if any(g == code for g, _ in path):
                raise Invalid(f"tree entry {pos - 1} splits neuron {code}, which is already fixed")
            stack.append(path + ((code, False),))
            stack.append(path + ((code, True),))
            continue
        k = -1 - code
        if not 0 <= k < len(leaves):
            raise Invalid(f"tree entry {pos - 1} names leaf {k}, which does not exist")
        rows, eqs = system.system(path)
        leaf = leaf_from_json(leaves[k], len(rows), len(eqs), system.dim, f"leaf {k}")
        out.leaves += 1
        if isinstance(leaf, Infeasible):
            if not verify_infeasible(rows, eqs, leaf):
                raise Invalid(f"leaf {k} (tree entry {pos - 1}) is not a valid infeasibility certificate")
            out.infeasible += 1
        elif isinstance(leaf, Pin):
            p = pinned_point(rows, eqs, leaf, n)
            if p is None:
                raise Invalid(f"leaf {k} (tree entry {pos - 1}) is not a valid pin")
            out.pins += 1
            if is_preimage(net, domain, y, p) and p not in out.pins_hit:
                out.pins_hit.append(p)
        else:
            if len(path) != G:
                raise Invalid(f"leaf {k} (tree entry {pos - 1}) is a region, but only {len(path)} of {G} "
                              "hidden ReLUs are fixed")
            if not is_preimage(net, domain, y, leaf.point):
                raise Invalid(f"leaf {k}: its point is not a preimage of y in the domain")
            if not system.pattern_holds(leaf.point, path):
                raise Invalid(f"leaf {k}: its point does not have the region's activation pattern")
            out.regions.append((path, leaf.point))
    if pos != len(tree):
        raise Invalid(f"the tree has {len(tree) - pos} entries after its last leaf")
    return out


# --- the answer ---------------------------------------------------------------------------


def check_inverse(net: Network, y: Sequence[Any], result: dict, domain: Domain | None = None) -> tuple[bool, str]:
    """Check a preimage answer (the JSON form of :class:`exact_inj.network.inverse.InverseResult`)
    for output ``y`` of ``net`` on ``domain`` (default R^n): (valid, reason).

    Never raises for a bad answer; never searches; imports no solver.

    >>> from exact_inj.model import Layer, Network
    >>> net = Network((Layer.from_rows([[1], [-1]]),))          # x -> (ReLU(x), ReLU(-x))
    >>> tree = [-1]
    >>> pin = {"kind": "pin", "rows": [], "lam": [], "eqs": [0], "mu": ["0"], "point": ["2"]}
    >>> ans = {"preimage": "point", "points": [["2"]], "certificate": {"kind": "cover", "tree": tree, "leaves": [pin]}}
    >>> check_inverse(net, ["2", "0"], ans)[0]
    True
    >>> ans["points"] = [["3"]]
    >>> check_inverse(net, ["2", "0"], ans)
    (False, 'point 0 does not map to y exactly')
    """
    # y is what Network.evaluate returns: with a tanh/sigmoid output unit, the values
    # before it (a rational y past tanh has, in general, no rational preimage).
    unit = f" (y is the value before the {net.output_unit} output unit)" if getattr(net, "output_unit", "") else ""
    try:
        return True, _check(net, y, result, domain or Domain.reals()) + unit
    except Invalid as e:
        return False, str(e)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError) as e:
        # Malformed input that slipped past the shape checks: rejected, never accepted.
        return False, f"malformed answer ({type(e).__name__}: {str(e)[:80]})"


def _check(net: Network, y_in: Sequence[Any], result: Any, domain: Domain) -> str:
    # Answers are checked by evaluating net.layers exactly: only a Network's
    # layers are its function (a network with irrational batch normalisations
    # keeps them outside its base layers, and its values are not rational).
    if not isinstance(net, Network):
        raise Invalid(f"preimage answers are checked on networks of exact layers only, not a "
                      f"{type(net).__name__} (irrational batch normalisation: only verify decides it)")
    if not isinstance(result, dict):
        raise Invalid("the answer must be a JSON object")
    y = _numbers(y_in, "y")
    n = net.input_dim
    if len(y) != net.output_dim:
        raise Invalid(f"y has {len(y)} entries, the network {net.output_dim} outputs")
    # type() and not ==: true == 1 in Python, and a boolean is not a version.
    if result.get("format", FORMAT) != FORMAT or type(result.get("version", VERSION)) is not int \
            or result.get("version", VERSION) != VERSION:
        raise Invalid(f"not a {FORMAT} answer of version {VERSION}")
    if "y" in result and _numbers(result["y"], "answer y") != y:
        raise Invalid("the answer is about a different y")
    if "domain" in result:
        try:
            dom = Domain.from_json(result["domain"], "answer")
        except Exception as e:  # InputError, or malformed bounds
            raise Invalid(f"the answer's domain does not parse: {str(e)[:80]}") from None
        if dom != domain:
            raise Invalid(f"the answer is about another domain than {domain.describe()}")
    if not domain.dim_ok(n):
        raise Invalid("the domain's dimension differs from the network's input dimension")
    answer = result.get("preimage")
    if answer not in ANSWERS:
        raise Invalid(f"preimage {quote(answer)} claims nothing to check (expected one of {', '.join(ANSWERS)})")
    pts_raw = result.get("points", [])
    if not isinstance(pts_raw, list):
        raise Invalid("points must be a list")
    points = [_numbers(p, f"point {i}") for i, p in enumerate(pts_raw)]
    pres = []  # each point's pre-activations: one exact evaluation serves both checks below
    for i, p in enumerate(points):
        if len(p) != n:
            raise Invalid(f"point {i} has {len(p)} coordinates, expected {n}")
        if not domain.contains(p):
            raise Invalid(f"point {i} lies outside {domain.describe()}")
        pres.append(pre_activations(net, p))
        last = net.layers[-1]
        if activate(pres[-1][-1], last.activation, last.slope) != y:
            raise Invalid(f"point {i} does not map to y exactly")
    if len(set(points)) != len(points):
        raise Invalid("points repeat")
    cert = result.get("certificate")
    if isinstance(cert, dict) and cert.get("kind") == "peel" and "then" in cert:
        # A partial peel: the same answer about the layers below it, at the forced value.
        chain = _chain(cert)
        prefix = check_peel_prefix(net, y, chain)
        sub = {**result, "y": list(chain[-1]), "certificate": cert["then"]}
        return f"{_check(prefix, chain[-1], sub, domain)} (after peeling {len(chain)} layers)"
    where = "" if domain.kind == "reals" else f" in {domain.describe()}"
    if answer == "set":
        if len(points) < 2:
            raise Invalid("a set answer needs two distinct points")
        if cert is None:
            if result.get("complete", False) is not False:
                raise Invalid("a set answer that claims a complete description needs a cover certificate")
            _check_pieces(net, y, domain, result.get("pieces", []), None)
            return f"set: {len(points)} distinct exact preimages{where} (description not certified complete)"
        summary = _cover(net, y, domain, cert)
        _check_pieces(net, y, domain, result.get("pieces"), summary)
        return (f"set: {len(points)} distinct exact preimages{where}; the preimage is exactly "
                f"{len(summary.regions)} listed pieces and {len(summary.pins_hit)} pinned points "
                f"({summary.leaves} leaves checked)")
    if not isinstance(cert, dict):
        raise Invalid(f"a{'n' if answer == 'empty' else ''} {answer} answer needs a certificate")
    if answer == "point":
        if len(points) != 1:
            raise Invalid(f"a point answer has exactly one point, not {len(points)}")
        if cert.get("kind") == "injective":
            return _check_injective(net, domain, cert, points[0])
        if cert.get("kind") == "peel":
            return f"point: the only preimage{where}; {check_peel_point(net, y, points[0], pres[0])}"
        summary = _cover(net, y, domain, cert)
        if summary.regions:
            raise Invalid("a point answer's cover has region leaves")
        if summary.pins_hit != [points[0]]:
            raise Invalid(f"the cover's pinned preimages ({len(summary.pins_hit)}) are not exactly the point")
        return (f"point: the only preimage{where}; {summary.leaves} leaves checked "
                f"({summary.infeasible} infeasible, {summary.pins} pinned)")
    if points:
        raise Invalid("an empty answer lists points")
    if cert.get("kind") == "peel":
        u = _numbers(cert["u"], "u") if "u" in cert else None
        return f"empty: y has no preimage{where}; {check_peel_empty(net, y, domain, _chain(cert), u)}"
    summary = _cover(net, y, domain, cert)
    if summary.regions or summary.pins_hit:
        raise Invalid("the cover of an empty answer has a preimage")
    return (f"empty: y has no preimage{where}; {summary.leaves} leaves checked "
            f"({summary.infeasible} infeasible, {summary.pins} pinned to non-preimages)")


def _chain(cert: dict) -> list[tuple[Fraction, ...]]:
    chain = cert.get("chain")
    if not isinstance(chain, list):
        raise Invalid("a peel certificate needs a chain (a list of vectors)")
    return [_numbers(h, f"chain value {i}") for i, h in enumerate(chain)]


def _cover(net, y, domain, cert) -> CoverSummary:
    if not isinstance(cert, dict) or cert.get("kind") != "cover":
        raise Invalid(f"unknown certificate kind {quote(cert.get('kind') if isinstance(cert, dict) else cert)}")
    try:
        system = LiftedSystem(net, y, domain)
    except ValueError as e:
        raise Invalid(str(e)) from None
    return replay_cover(system, domain, cert.get("tree"), cert.get("leaves"))


def _check_pieces(net, y, domain, pieces, summary: CoverSummary | None) -> None:
    """Every listed piece is a pattern and a point of that piece: a preimage in
    the domain with the pattern's closed signs (docs/inverse.md, JSON).  With a
    cover, the pieces (if listed) must be its regions, in order, patterns included."""
    if pieces is None and summary is not None:
        return
    if not isinstance(pieces, list):
        raise Invalid("pieces must be a list")
    if summary is not None and len(pieces) != len(summary.regions):
        raise Invalid(f"the answer lists {len(pieces)} pieces, the cover has {len(summary.regions)} regions")
    if not pieces:
        return
    system = LiftedSystem(net, y, domain)
    hidden_layers = sum(layer.activation == "relu" for layer in system.net.layers[:-1])
    for i, pc in enumerate(pieces):
        if not isinstance(pc, dict) or not isinstance(pc.get("pattern"), list):
            raise Invalid(f"piece {i} must be an object with a pattern and a point")
        pt = _numbers(pc.get("point"), f"piece {i} point")
        hidden = [s for s in pc["pattern"][:hidden_layers] if isinstance(s, str)]
        path = tuple((g, c == "+") for g, c in enumerate("".join(hidden)))
        if summary is not None:
            rpath, rpt = summary.regions[i]
            if pt != rpt or pc["pattern"] != system.patterns(rpath):
                raise Invalid(f"piece {i} differs from the cover's region {i}")
        elif (len(path) != len(system.neurons) or pc["pattern"] != system.patterns(path)
              or not is_preimage(net, domain, y, pt) or not system.pattern_holds(pt, path)):
            raise Invalid(f"piece {i} is not a preimage point with its pattern's signs")


def _check_injective(net: Network, domain: Domain, cert: dict, point) -> str:
    """A point answer backed by an injectivity certificate of the network on the domain."""
    try:
        c = Certificate.from_json(cert.get("certificate"))
    except (InputError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise Invalid(f"the injectivity certificate does not parse: {e}") from None
    if c.verdict is not Status.INJECTIVE:
        raise Invalid("the embedded certificate is not one of injectivity")
    if c.network != net:
        raise Invalid("the injectivity certificate is about another network")
    if c.domain != domain:
        raise Invalid("the injectivity certificate is about another domain")
    res = check(c)
    if not res.valid:
        raise Invalid(f"the injectivity certificate does not check: {res.reason}")
    return f"point: the only preimage, as the network is injective ({res.reason})"


def known_version(obj: dict) -> bool:
    """The answer's "version" is absent or the integer 1 (not true, which equals 1 in Python)."""
    v = obj.get("version", 1)
    return type(v) is int and v == 1


def check_inverse_file(obj: dict) -> tuple[bool, str]:
    """Check a self-contained answer (with "network", "y" and "domain" keys)."""
    t0 = time.perf_counter()
    if not isinstance(obj, dict) or obj.get("format", FORMAT) != FORMAT or "network" not in obj or "y" not in obj:
        return False, "not a self-contained preimage answer (needs format, network and y)"
    if not known_version(obj):
        # Never checked under the rules of another version (docs/certificates.md, Versions).
        return False, f"unsupported preimage answer version {quote(obj.get('version'))} (this reader knows version 1)"
    try:
        net = network_from_json(obj["network"], where="network")
        dom = Domain.from_json(obj.get("domain", {"kind": "reals"}), "answer")
    except InputError as e:
        return False, str(e)
    ok, why = check_inverse(net, obj["y"], obj, dom)
    return ok, f"{why} ({time.perf_counter() - t0:.4f} s)"
