"""The exact certificate checker.

Rules this module keeps (docs/theory.md, section 4):
- rational and integer arithmetic only; no float, no tolerance;
- no solver is imported, and nothing is searched: every core is verified once
  and every tree node costs O(1) set operations plus, at a rank leaf, one exact
  rank; the total cost is linear in the certificate's size;
- coverage is recomputed here, never trusted: the tree's splits are replayed,
  ranks are recomputed, and rows are read from the certificate's own network.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, replace
from fractions import Fraction  # noqa: F401  (the doctests use it)

from ..errors import OperatorTooLarge
from ..model import Domain, Layer, Network
from ..model.monotone import relu_form
from ..model.normalised import NormalisedNetwork
from ..model.stages import contains, image_box, stages
from ..numbers import quote
from .base import Invalid, ints, num_exact, pair
from .carry import check_carry
from .codes import CodeFile, PackedCores
from .layer import check_conv_structural, check_linear, check_structural, check_witness
from .tree import certificate_rules, check_tree
from .monotone import MONOTONE_ACTIVATIONS, check_monotone_rank
from .network import check_end_to_end
from .surd import check_normalised
from .schema import (
    READ_VERSIONS,
    Bound,
    CarryProof,
    Certificate,
    ConvStructuralProof,
    Core,
    EmptyDomainProof,
    EndToEndProof,
    Flat,
    Infeasible,
    LayerwiseProof,
    LinearRankProof,
    Status,
    StructuralProof,
    SurdStructuralProof,
    Tight,
    TreeProof,
    Witness,
)

__all__ = ["CheckResult", "check"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of checking one certificate."""

    valid: bool
    reason: str
    seconds: float = 0.0
    """Time of the exact check itself."""
    crosscheck_seconds: float | None = None
    """Time of the optional sympy cross-check, reported apart from the check."""

    def __bool__(self) -> bool:
        return self.valid


def check(cert: Certificate, crosscheck: bool = False) -> CheckResult:
    """Check a certificate exactly; never raises for an invalid certificate.

    With ``crosscheck``, a witness is also re-evaluated with sympy's
    rationals, and its midpoint rank recomputed by sympy's rref: an
    implementation independent of python-flint and of fractions.

    >>> from exact_inj.model import Layer, Network
    >>> from exact_inj.model import Domain
    >>> net = Network((Layer.from_rows([[1], [-1]], [-1, -1]),))
    >>> good = Certificate(net, Domain(), Status.NOT_INJECTIVE,
    ...                    Witness((Fraction(0),), (Fraction(1, 2),)))
    >>> check(good).valid
    True
    >>> bad = Certificate(net, Domain(), Status.NOT_INJECTIVE,
    ...                   Witness((Fraction(0),), (Fraction(2),)))
    >>> check(bad).reason
    'outputs differ at coordinate 0: 0 != 1'
    """
    t0 = time.perf_counter()
    extra = None
    try:
        _check_shape(cert)
        cert = _normalised(cert)
        with certificate_rules(cert.version):
            reason = _check(cert)
        seconds = time.perf_counter() - t0
        if crosscheck and isinstance(cert.evidence, Witness) and isinstance(cert.network, Network):
            t1 = time.perf_counter()
            reason += "; " + _sympy_crosscheck(cert.network, cert.evidence)
            extra = time.perf_counter() - t1
        ok = True
    except Invalid as e:
        reason, ok = str(e), False
        seconds = time.perf_counter() - t0
    except OperatorTooLarge as e:
        # This proof form reads a convolution's dense operator, and that is
        # beyond what is built here: rejected, since nothing was verified.
        reason, ok = f"cannot be checked: {e}", False
        seconds = time.perf_counter() - t0
    except Exception as e:
        # An object of the wrong shape that _check_shape and _normalised let
        # through (a Python-built certificate holding, say, a string where a
        # tuple belongs).  Nothing was accepted, so it is invalid; the reason
        # names the exception so that a checker bug, if that is what it is,
        # can be reported.  (Documented: check never raises; docs/certificates.md.)
        reason, ok = f"malformed certificate ({type(e).__name__}: {quote(_message(e))})", False
        seconds = time.perf_counter() - t0
    return CheckResult(ok, reason, seconds, extra)


def _message(e: BaseException) -> str:
    try:
        return str(e)
    except Exception:  # a message that cannot be shown (a huge number in it)
        return ""


def _check_shape(cert) -> None:
    """The top-level types, before any attribute is read: a certificate built
    in Python may hold anything, and check() answers for it, never raises."""
    if not isinstance(cert, Certificate):
        raise Invalid(f"not a Certificate but a {type(cert).__name__}")
    if not isinstance(cert.network, (Network, NormalisedNetwork)):
        raise Invalid(f"the network is a {type(cert.network).__name__}, not a Network")
    if not isinstance(cert.domain, Domain):
        raise Invalid(f"the domain is a {type(cert.domain).__name__}, not a Domain")
    if not isinstance(cert.verdict, Status):
        raise Invalid(f"the verdict is a {type(cert.verdict).__name__}, not a Status "
                      "(Status.INJECTIVE or Status.NOT_INJECTIVE)")
    if type(cert.version) is not int or cert.version not in READ_VERSIONS:
        raise Invalid(f"certificate version {cert.version!r} is not one this checker implements "
                      f"({', '.join(map(str, READ_VERSIONS))})")


# array.array type codes of signed integers.
_SIGNED = frozenset("bhilq")


def _normalised(cert: Certificate) -> Certificate:
    """The certificate with every number and index checked for exact type.

    Certificates read from JSON already are; objects built in Python may hold
    floats, strings, numpy scalars or lists, which this refuses or converts
    before any arithmetic, so equality and cancellation stay exact.
    """
    dom = cert.domain
    if dom.kind not in Domain.KINDS:
        raise Invalid(f"unknown domain kind {quote(dom.kind)}")
    if dom.kind == "box":
        if dom.lower is None or dom.upper is None or len(dom.lower) != len(dom.upper):
            raise Invalid("a box needs lower and upper bounds of equal length")
        dom = Domain("box", tuple(num_exact(v, "box bound") for v in dom.lower),
                     tuple(num_exact(v, "box bound") for v in dom.upper))
    return replace(cert, domain=dom, evidence=_normalised_evidence(cert.evidence))


def _normalised_evidence(ev):
    if isinstance(ev, Witness):
        return Witness(tuple(num_exact(v, "witness coordinate") for v in ev.x),
                       tuple(num_exact(v, "witness coordinate") for v in ev.y),
                       None if ev.active_rows is None else ints(ev.active_rows, "active_rows"),
                       None if ev.active_rank is None else ints([ev.active_rank], "active_rank")[0])
    if isinstance(ev, TreeProof):
        # Cores and codes read packed (an array.array of a signed type, or
        # kept on disk by certify/codes.py) are Python ints by construction:
        # copies as tuples would cost several times their memory (37 M codes
        # at n = 12), and a tree on disk is only ever read a window at a time.
        cores = ev.cores if isinstance(ev.cores, PackedCores) else tuple(
            Core(ints(c.support, "core support"),
                 None if c.multiplier is None else tuple(num_exact(v, "multiplier") for v in c.multiplier),
                 ints(c.domain_support, "core domain_support")) for c in ev.cores)
        packed = isinstance(ev.tree, CodeFile) or (isinstance(ev.tree, array) and ev.tree.typecode in _SIGNED)
        return TreeProof(cores, ev.tree if packed else ints(ev.tree, "tree codes"))
    if isinstance(ev, (StructuralProof, SurdStructuralProof, ConvStructuralProof)):
        try:
            if isinstance(ev, SurdStructuralProof):
                return SurdStructuralProof(tuple(pair(p, "structural pair") for p in ev.pairs))
            if isinstance(ev, StructuralProof):
                return StructuralProof(tuple(pair(p, "structural pair") for p in ev.pairs))
            return ConvStructuralProof(tuple(pair(p, "channel pair") for p in ev.channel_pairs),
                                       ints([ev.modulus], "modulus")[0], ints(ev.roots, "roots"))
        except TypeError as e:  # a field that is not a sequence (Python-built proofs)
            raise Invalid(f"malformed {type(ev).__name__} ({quote(_message(e))})") from None
    if isinstance(ev, LayerwiseProof):
        stages = []
        for st in ev.stages:
            start, stop = ints([st.start, st.stop], "stage layers")
            inner = _normalised(Certificate(Network((Layer.from_rows([[0]]),)), st.domain, Status.INJECTIVE,
                                            st.proof))
            stages.append(replace(st, start=start, stop=stop, domain=inner.domain, proof=inner.evidence))
        return LayerwiseProof(tuple(stages))
    if isinstance(ev, (EmptyDomainProof, LinearRankProof)):
        return ev
    if isinstance(ev, CarryProof):
        try:
            return CarryProof(tuple(tuple(pair(p, "carry pair") for p in layer) for layer in ev.units))
        except TypeError as e:  # a field that is not a sequence (Python-built proofs)
            raise Invalid(f"malformed CarryProof ({quote(_message(e))})") from None
    if isinstance(ev, EndToEndProof):
        def comb(c, what):
            if c is None:
                return None
            support = ints(c.support, f"{what} support")
            lam = tuple(num_exact(v, f"{what} multiplier") for v in c.lam)
            if isinstance(c, (Tight, Bound)):
                return type(c)(support, lam)
            eq = tuple(num_exact(v, f"{what} multiplier") for v in c.eq)
            if isinstance(c, Flat):
                return Flat(support, lam, eq, tuple(tuple(num_exact(v, "solve entry") for v in r) for r in c.solve))
            if isinstance(c, Infeasible):
                return Infeasible(support, lam, eq)
            raise Invalid(f"{what}: unknown certificate {type(c).__name__}")

        try:
            bounds = tuple(tuple(tuple(comb(b, "bound") for b in lu) for lu in piece) for piece in ev.bounds)
            return EndToEndProof(ints(ev.tree, "tree codes"), tuple(comb(c, "leaf") for c in ev.leaves), bounds,
                                 tuple(comb(c, "pair") for c in ev.pairs))
        except (TypeError, AttributeError) as e:  # a field that is not a sequence of the right things
            raise Invalid(f"malformed end-to-end proof ({type(e).__name__}: {quote(_message(e))})") from None
    raise Invalid(f"unknown evidence {type(ev).__name__}")


def _check(cert: Certificate) -> str:
    dom = cert.domain
    if isinstance(cert.network, NormalisedNetwork):
        # Irrational batch normalisations: certify/surd.py; its plain stages come back here.
        return check_normalised(cert.network, dom, cert.verdict, cert.evidence,
                                lambda net, d, proof: _check(Certificate(net, d, Status.INJECTIVE, proof)))
    if not dom.dim_ok(cert.network.input_dim):
        raise Invalid(f"the domain has {len(dom.lower)} coordinates but the network {cert.network.input_dim} inputs")
    ev = cert.evidence
    if cert.verdict is Status.NOT_INJECTIVE:
        if not isinstance(ev, Witness):
            raise Invalid("a not_injective verdict needs a witness")
        return check_witness(cert.network, ev, dom)
    if cert.verdict is Status.INJECTIVE:
        if isinstance(ev, TreeProof):
            return check_tree(cert.network, ev, dom)
        if isinstance(ev, StructuralProof):
            # Injective on R^n, hence on every subset of it.
            return check_structural(cert.network, ev)
        if isinstance(ev, ConvStructuralProof):
            return check_conv_structural(cert.network, ev)
        if isinstance(ev, EmptyDomainProof):
            if not dom.is_empty():
                raise Invalid("the domain is not empty")
            return f"{dom.describe()} is empty (a lower bound exceeds its upper bound)"
        if isinstance(ev, LinearRankProof):
            if cert.network.layers[-1].activation in MONOTONE_ACTIVATIONS:
                return check_monotone_rank(cert.network, dom)
            return check_linear(cert.network, dom)
        if isinstance(ev, LayerwiseProof):
            return _check_layerwise(cert.network, dom, ev)
        if isinstance(ev, CarryProof):
            # Injective on R^n, hence on every subset of it (docs/theory.md, section 4).
            return check_carry(cert.network, ev)
        if isinstance(ev, EndToEndProof):
            # A LeakyReLU network is checked as the same function written with
            # ReLUs, rebuilt here from the certificate's own network.
            return check_end_to_end(relu_form(cert.network), dom, ev)
        raise Invalid("an injective verdict needs a proof")
    raise Invalid(f"verdict {cert.verdict.value!r} has nothing to check")


# sympy's rref on big rational matrices is slow (docs/theory.md, section 4), so
# the rank cross-check is skipped above this many matrix entries.
SYMPY_RANK_LIMIT = 1000


# sympy's Rational arithmetic costs ~20 us an operation: its re-evaluation is
# skipped above this many weights (about a second's work).
SYMPY_EVAL_LIMIT = 2500


def _sympy_crosscheck(net: Network, w: Witness) -> str:
    # sympy costs ~0.4 s to import and serves only this optional cross-check: late.
    import sympy

    def ev(x):
        h = [sympy.Rational(v.numerator, v.denominator) for v in x]
        for layer in net.layers:
            pre = [sum((sympy.Rational(a.numerator, a.denominator) * hv for a, hv in zip(row, h)),
                       sympy.Rational(bb.numerator, bb.denominator)) for row, bb in zip(layer.weight, layer.bias)]
            h = ([max(p, 0) for p in pre] if layer.activation == "relu" else
                 [p if p >= 0 else sympy.Rational(layer.slope.numerator, layer.slope.denominator) * p for p in pre]
                 if layer.activation == "leaky_relu" else pre)
        return h

    size = sum(layer.in_dim * layer.out_dim for layer in net.layers)
    if size > SYMPY_EVAL_LIMIT:
        return f"sympy cross-check skipped ({size} weights > {SYMPY_EVAL_LIMIT})"
    if ev(w.x) != ev(w.y):
        raise Invalid("sympy cross-check: the outputs differ")
    if w.active_rows is None or len(w.active_rows) * net.input_dim > SYMPY_RANK_LIMIT:
        return "sympy re-evaluation agrees"
    layer = net.layers[0]
    rows = [[sympy.Rational(a.numerator, a.denominator) for a in layer.weight[i]] for i in w.active_rows]
    rk = len(sympy.Matrix(rows).rref()[1]) if rows else 0
    if rk != w.active_rank:
        raise Invalid(f"sympy cross-check: midpoint rank {rk} != {w.active_rank}")
    return "sympy re-evaluation and rank agree"


def _check_layerwise(net: Network, dom: Domain, proof: LayerwiseProof) -> str:
    """Recompute the stages and what each receives; check each stage's proof.

    Stage 0's stated domain must contain the network's domain; stage k's must
    contain a convex set holding stage k-1's image of ITS stated domain
    (recomputed here: exact interval bounds from a box, the orthant after a
    ReLU otherwise).  Each stage's proof is checked as a one-layer
    certificate of the folded layer on its stated domain.
    """
    expected = stages(net)
    if len(proof.stages) != len(expected):
        raise Invalid(f"the network has {len(expected)} stages, the proof {len(proof.stages)}")
    received = dom
    notes = []
    for k, (st, ex) in enumerate(zip(proof.stages, expected)):
        if (st.start, st.stop) != (ex.start, ex.stop):
            raise Invalid(f"stage {k} covers layers {st.start}..{st.stop - 1}, expected {ex.start}..{ex.stop - 1}")
        if not st.domain.dim_ok(ex.layer.in_dim):
            raise Invalid(f"stage {k}'s domain has the wrong dimension")
        if not contains(st.domain, received):
            raise Invalid(f"stage {k}'s domain {st.domain.describe()} does not contain what it receives, "
                           f"{received.describe()}")
        if isinstance(st.proof, (Witness, LayerwiseProof)):
            raise Invalid(f"stage {k} needs a proof of injectivity")
        sub = Certificate(Network((ex.layer,)), st.domain, Status.INJECTIVE, st.proof)
        try:
            notes.append(_check(sub))
        except Invalid as e:
            raise Invalid(f"stage {k}: {e}") from None
        received = image_box(ex.layer, st.domain)
    return f"layerwise proof: {len(expected)} stages, each injective on a convex set containing what it receives"
