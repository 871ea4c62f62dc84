"""The exact certificate checker.

Rules this module keeps (theory notes, section 4):
- rational and integer arithmetic only; no float, no tolerance;
- no solver is imported, and nothing is searched: every core is verified once
  and every tree node costs O(1) set operations plus, at a rank leaf, one exact
  rank; the total cost is linear in the certificate's size;
- coverage is recomputed here, never trusted: the tree's splits are replayed,
  ranks are recomputed, and rows are read from the certificate's own network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import flint

from . import linalg, modrank
from .certificate import (
    COLLAPSE,
    CORE_BASE,
    REGION,
    SPLIT,
    Bound,
    EndToEndProof,
    Flat,
    Infeasible,
    Tight,
    Domain,
    EmptyDomainProof,
    LayerwiseProof,
    LinearRankProof,
    RANK_LEAF,
    Certificate,
    Core,
    Status,
    ConvStructuralProof,
    StructuralProof,
    TreeProof,
    Witness,
)
from .conv import OperatorTooLarge
from .model import Layer, Network


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


class _Invalid(Exception):
    pass


# Python refuses str() of integers over 4300 digits, and a one-line reason
# should stay one line anyway: numbers beyond this many bits are described.
_MAX_SHOWN_BITS = 256


def _num(x) -> str:
    """A number for a message; huge ones by size only.

    >>> _num(Fraction(-3, 7)), _num(10**500)
    ('-3/7', '<a number of about 501 digits>')
    """
    f = Fraction(x)
    bits = max(f.numerator.bit_length(), f.denominator.bit_length())
    if bits > _MAX_SHOWN_BITS:
        return f"<a number of about {int(bits * 0.30103) + 1} digits>"
    return str(f)


def _nums(xs) -> str:
    xs = list(xs)
    shown = ", ".join(_num(x) for x in xs[:20])
    return f"[{shown}{', ...' if len(xs) > 20 else ''}]"


def check(cert: Certificate, crosscheck: bool = False) -> CheckResult:
    """Check a certificate exactly; never raises for an invalid certificate.

    With ``crosscheck``, a witness is also re-evaluated with sympy's
    rationals, and its midpoint rank recomputed by sympy's rref: an
    implementation independent of python-flint and of fractions.

    >>> from exact_inj.model import Layer, Network
    >>> from exact_inj.certificate import Domain
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
        cert = _normalised(cert)
        reason = _check(cert)
        seconds = time.perf_counter() - t0
        if crosscheck and isinstance(cert.evidence, Witness):
            t1 = time.perf_counter()
            reason += "; " + _sympy_crosscheck(cert.network, cert.evidence)
            extra = time.perf_counter() - t1
        ok = True
    except _Invalid as e:
        reason, ok = str(e), False
        seconds = time.perf_counter() - t0
    except OperatorTooLarge as e:
        # This proof form reads a convolution's dense operator, and that is
        # beyond what is built here: rejected, since nothing was verified.
        reason, ok = f"cannot be checked: {e}", False
        seconds = time.perf_counter() - t0
    return CheckResult(ok, reason, seconds, extra)


def _is_int(v) -> bool:
    return type(v) is int  # not bool, not numpy integers (1 << np.int64(64) == 0)


def _num_exact(v, what: str) -> Fraction:
    # Exactly int or Fraction: a float would make Fraction arithmetic inexact,
    # and strings or numpy scalars compare differently from the numbers they spell.
    if type(v) is int or type(v) is Fraction:
        return Fraction(v)
    raise _Invalid(f"{what} must be exact (int or Fraction), not {type(v).__name__}")


def _pair(vs, what: str) -> tuple[int, int]:
    t = _ints(vs, what)
    if len(t) != 2:
        raise _Invalid(f"a {what} must have two entries, got {len(t)}")
    return t


def _ints(vs, what: str) -> tuple[int, ...]:
    vs = tuple(vs)
    if not all(_is_int(v) for v in vs):
        raise _Invalid(f"{what} must be plain integers")
    return vs


def _normalised(cert: Certificate) -> Certificate:
    """The certificate with every number and index checked for exact type.

    Certificates read from JSON already are; objects built in Python may hold
    floats, strings, numpy scalars or lists, which this refuses or converts
    before any arithmetic, so equality and cancellation stay exact.
    """
    from dataclasses import replace

    dom = cert.domain
    if dom.kind not in Domain.KINDS:
        raise _Invalid(f"unknown domain kind {str(dom.kind)[:40]!r}")
    if dom.kind == "box":
        if dom.lower is None or dom.upper is None or len(dom.lower) != len(dom.upper):
            raise _Invalid("a box needs lower and upper bounds of equal length")
        dom = Domain("box", tuple(_num_exact(v, "box bound") for v in dom.lower),
                     tuple(_num_exact(v, "box bound") for v in dom.upper))
    return replace(cert, domain=dom, evidence=_normalised_evidence(cert.evidence))


def _normalised_evidence(ev):
    from dataclasses import replace

    if isinstance(ev, Witness):
        return Witness(tuple(_num_exact(v, "witness coordinate") for v in ev.x),
                       tuple(_num_exact(v, "witness coordinate") for v in ev.y),
                       None if ev.active_rows is None else _ints(ev.active_rows, "active_rows"),
                       None if ev.active_rank is None else _ints([ev.active_rank], "active_rank")[0])
    if isinstance(ev, TreeProof):
        cores = tuple(Core(_ints(c.support, "core support"),
                           None if c.multiplier is None else tuple(_num_exact(v, "multiplier") for v in c.multiplier),
                           _ints(c.domain_support, "core domain_support")) for c in ev.cores)
        return TreeProof(cores, _ints(ev.tree, "tree codes"))
    if isinstance(ev, (StructuralProof, ConvStructuralProof)):
        try:
            if isinstance(ev, StructuralProof):
                return StructuralProof(tuple(_pair(p, "structural pair") for p in ev.pairs))
            return ConvStructuralProof(tuple(_pair(p, "channel pair") for p in ev.channel_pairs),
                                       _ints([ev.modulus], "modulus")[0], _ints(ev.roots, "roots"))
        except TypeError as e:  # a field that is not a sequence (Python-built proofs)
            raise _Invalid(f"malformed {type(ev).__name__} ({str(e)[:80]})") from None
    if isinstance(ev, LayerwiseProof):
        stages = []
        for st in ev.stages:
            start, stop = _ints([st.start, st.stop], "stage layers")
            inner = _normalised(Certificate(Network((Layer.from_rows([[0]]),)), st.domain, Status.INJECTIVE,
                                            st.proof))
            stages.append(replace(st, start=start, stop=stop, domain=inner.domain, proof=inner.evidence))
        return LayerwiseProof(tuple(stages))
    if isinstance(ev, (EmptyDomainProof, LinearRankProof)):
        return ev
    if isinstance(ev, EndToEndProof):
        def comb(c, what):
            if c is None:
                return None
            support = _ints(c.support, f"{what} support")
            lam = tuple(_num_exact(v, f"{what} multiplier") for v in c.lam)
            if isinstance(c, (Tight, Bound)):
                return type(c)(support, lam)
            eq = tuple(_num_exact(v, f"{what} multiplier") for v in c.eq)
            if isinstance(c, Flat):
                return Flat(support, lam, eq, tuple(tuple(_num_exact(v, "solve entry") for v in r) for r in c.solve))
            if isinstance(c, Infeasible):
                return Infeasible(support, lam, eq)
            raise _Invalid(f"{what}: unknown certificate {type(c).__name__}")

        try:
            bounds = tuple(tuple(tuple(comb(b, "bound") for b in lu) for lu in piece) for piece in ev.bounds)
            return EndToEndProof(_ints(ev.tree, "tree codes"), tuple(comb(c, "leaf") for c in ev.leaves), bounds,
                                 tuple(comb(c, "pair") for c in ev.pairs))
        except (TypeError, AttributeError) as e:  # a field that is not a sequence of the right things
            raise _Invalid(f"malformed end-to-end proof ({type(e).__name__}: {str(e)[:80]})") from None
    raise _Invalid(f"unknown evidence {type(ev).__name__}")


def _check(cert: Certificate) -> str:
    dom = cert.domain
    if not dom.dim_ok(cert.network.input_dim):
        raise _Invalid(f"the domain has {len(dom.lower)} coordinates but the network {cert.network.input_dim} inputs")
    ev = cert.evidence
    if cert.verdict is Status.NOT_INJECTIVE:
        if not isinstance(ev, Witness):
            raise _Invalid("a not_injective verdict needs a witness")
        return check_witness(cert.network, ev, dom)
    if cert.verdict is Status.INJECTIVE:
        if isinstance(ev, TreeProof):
            return _check_tree(cert.network, ev, dom)
        if isinstance(ev, StructuralProof):
            # Injective on R^n, hence on every subset of it.
            return _check_structural(cert.network, ev)
        if isinstance(ev, ConvStructuralProof):
            return _check_conv_structural(cert.network, ev)
        if isinstance(ev, EmptyDomainProof):
            if not dom.is_empty():
                raise _Invalid("the domain is not empty")
            return f"{dom.describe()} is empty (a lower bound exceeds its upper bound)"
        if isinstance(ev, LinearRankProof):
            return _check_linear(cert.network, dom)
        if isinstance(ev, LayerwiseProof):
            return _check_layerwise(cert.network, dom, ev)
        if isinstance(ev, EndToEndProof):
            return _check_end_to_end(cert.network, dom, ev)
        raise _Invalid("an injective verdict needs a proof")
    raise _Invalid(f"verdict {cert.verdict.value!r} has nothing to check")


def check_witness(net: Network, w: Witness, domain: Domain | None = None) -> str:
    n = net.input_dim
    if len(w.x) != n or len(w.y) != n:
        raise _Invalid(f"witness points must have {n} coordinates")
    if w.x == w.y:
        raise _Invalid("witness points are equal")
    if domain is not None:
        for name, pt in (("x", w.x), ("y", w.y)):
            if not domain.contains(pt):
                raise _Invalid(f"witness point {name} lies outside {domain.describe()}")
    fx, fy = net.evaluate(w.x), net.evaluate(w.y)
    for k, (a, b) in enumerate(zip(fx, fy)):
        if a != b:
            raise _Invalid(f"outputs differ at coordinate {k}: {_num(a)} != {_num(b)}")
    if w.active_rows is not None or w.active_rank is not None:
        if len(net.layers) != 1:
            raise _Invalid("active_rows/active_rank are defined for single layers only")
        layer = net.layers[0]
        mid = tuple((a + b) / 2 for a, b in zip(w.x, w.y))
        pre = layer.pre_activation(mid)
        active = tuple(i for i, a in enumerate(pre) if a >= 0)
        if w.active_rows is not None and tuple(w.active_rows) != active:
            raise _Invalid(f"active_rows {_nums(w.active_rows)} differ from the rows active at the midpoint {_nums(active)}")
        Wi, _ = linalg.integer_rows(layer.weight, layer.bias)
        rk = linalg.rank([Wi[i] for i in active], n)
        if w.active_rank is not None and w.active_rank != rk:
            raise _Invalid(f"active_rank {_num(w.active_rank)} differs from the exact rank {rk}")
    where = "" if domain is None or domain.kind == "reals" else f", both in {domain.describe()}"
    return f"exact collision: N(x) = N(y) with x != y ({n} inputs{where})"


def check_core(rows_q, W: list[list[int]], b: list[int], m: int, n: int, core: Core, k: int) -> None:
    """Verify that the core's rows cannot all be strictly negative (Motzkin).

    Rows 0..m-1 are the layer's, rows m.. the domain's constraints (g, -h).
    ``W``, ``b`` are all rows scaled to integers; ``rows_q`` the same rows
    as rationals, which an explicit multiplier refers to.  The system is
    { row_i.z + b_i < 0 : i in support } with { g_j.z <= h_j : j in
    domain_support }; it is infeasible iff lambda >= 0, mu >= 0 cancel the
    rows with s = lambda.b + mu.(-h) and (lambda != 0 and s >= 0) or s > 0
    (theory section 4; the near miss "(lambda, mu) != 0 and s >= 0" is not
    enough).
    """
    M = len(W)
    S, T = tuple(core.support), tuple(core.domain_support)
    if not S:
        raise _Invalid(f"core {k} is empty")
    if len(set(S)) != len(S) or any(not (0 <= i < M) for i in S):
        raise _Invalid(f"core {k} names rows outside 0..{M - 1} or repeats one")
    if len(set(T)) != len(T) or any(not (m <= j < M) for j in T):
        raise _Invalid(f"core {k} names domain rows outside {m}..{M - 1} or repeats one")
    idx = S + T
    if core.multiplier is not None:
        lam = core.multiplier
        if len(lam) != len(idx):
            raise _Invalid(f"core {k} multiplier has {len(lam)} entries for {len(idx)} rows")
        rows = [rows_q[i][0] for i in idx]
        offs = [rows_q[i][1] for i in idx]
    else:
        cols = [[W[i][j] for i in idx] for j in range(n)]
        basis = linalg.nullspace(cols, len(idx))
        if len(basis) != 1:
            raise _Invalid(
                f"core {k}: the support fixes no unique multiplier (null space of dimension {len(basis)}); "
                "an explicit multiplier is needed"
            )
        lam = basis[0]
        if all(x <= 0 for x in lam):
            lam = [-x for x in lam]
        rows = [W[i] for i in idx]
        offs = [b[i] for i in idx]
    if any(x < 0 for x in lam):
        raise _Invalid(f"core {k}: the multiplier has a negative entry")
    for j in range(n):
        if sum(l * r[j] for l, r in zip(lam, rows)) != 0:
            raise _Invalid(f"core {k}: the multiplier does not cancel the rows (column {j})")
    s = sum(l * c for l, c in zip(lam, offs))
    strict_part = any(lam[: len(S)])
    if not ((strict_part and s >= 0) or s > 0):
        if not strict_part:
            raise _Invalid(f"core {k}: the multiplier is zero on the strict rows and s = 0")
        raise _Invalid(f"core {k}: the multiplier gives lambda.b < 0, so the rows can all be negative")


def _rows(net: Network, domain: Domain) -> tuple[list, list[list[int]], list[int], int, int]:
    """Layer rows then domain constraint rows: rational, and integer-scaled."""
    if not net.is_single_relu_layer:
        raise _Invalid("this proof kind applies to a single ReLU layer only")
    layer = net.layers[0]
    n, m = layer.in_dim, layer.out_dim
    G, h = domain.constraints(n)
    rw = list(layer.weight) + [tuple(r) for r in G]
    rb = list(layer.bias) + [-v for v in h]
    W, b = linalg.integer_rows(rw, rb)
    return list(zip(rw, rb)), W, b, m, n


def _check_tree(net: Network, proof: TreeProof, domain: Domain) -> str:
    if domain.is_empty():
        raise _Invalid("the domain is empty; use an empty_domain proof")
    rows_q, W, b, m_layer, n = _rows(net, domain)
    m = len(W)  # every row, layer and domain, can be split
    for k, core in enumerate(proof.cores):
        check_core(rows_q, W, b, m_layer, n, core, k)
    core_masks = [sum(1 << i for i in c.support) for c in proof.cores]
    tree = proof.tree
    # Iterative preorder replay.  The stack holds the (P, N) of second children
    # still to visit; the first child is visited at once.
    pos = 0
    P = N = 0
    stack: list[tuple[int, int]] = []
    leaves = 0
    rank_cache: dict[int, int] = {}
    while True:
        if pos >= len(tree):
            raise _Invalid("the tree ends before every case is closed")
        code = tree[pos]
        pos += 1
        if code >= 0:
            if code >= m:
                raise _Invalid(f"tree node {pos - 1} splits on row {_num(code)}, but the layer has {m} rows")
            bit = 1 << code
            if (P | N) & bit:
                raise _Invalid(f"tree node {pos - 1} splits on row {code}, which is already decided")
            stack.append((P, N | bit))
            P |= bit
            continue
        if code == RANK_LEAF:
            r = rank_cache.get(P)
            if r is None:
                r = linalg.rank([W[i] for i in range(m) if P >> i & 1], n)
                rank_cache[P] = r
            if r != n:
                raise _Invalid(f"rank leaf at node {pos - 1}: its orthogonal rows have rank {r} < {n}")
        else:
            k = CORE_BASE - code
            if not (0 <= k < len(core_masks)):
                raise _Invalid(f"tree node {pos - 1} names core {_num(k)}, which does not exist")
            if core_masks[k] & ~N:
                raise _Invalid(f"core leaf at node {pos - 1}: core {k} has rows not fixed negative on this branch")
        leaves += 1
        if not stack:
            break
        P, N = stack.pop()
    if pos != len(tree):
        raise _Invalid(f"the tree has {len(tree) - pos} entries after its last leaf")
    where = "" if domain.kind == "reals" else f" on {domain.describe()}"
    return f"case-split tree{where}: {leaves} leaves and {len(proof.cores)} cores verified exactly"


def _check_structural(net: Network, proof: StructuralProof) -> str:
    layer = net.layers[0] if net.is_single_relu_layer else None
    if layer is None:
        raise _Invalid("a structural proof applies to a single ReLU layer only")
    n, m = layer.in_dim, layer.out_dim
    if len(proof.pairs) != n:
        raise _Invalid(f"a structural proof needs {n} pairs, got {len(proof.pairs)}")
    used = [i for p in proof.pairs for i in p]
    if any(not (0 <= i < m) for i in used) or len(set(used)) != len(used):
        raise _Invalid("structural pairs name rows outside the layer or repeat a row")
    # Rows are read sparsely (a convolution's rows come from its kernel), so
    # a big conv layer is checked without its dense operator.
    b = layer.bias
    B = []
    for k, (i, j) in enumerate(proof.pairs):
        wi, wj = layer.sparse_row(i), layer.sparse_row(j)
        if not wi:
            raise _Invalid(f"pair {k}: row {i} is zero")
        c = min(wi)
        d = -wj.get(c, Fraction(0)) / wi[c]
        if d <= 0 or wj.keys() != wi.keys() or any(wj[c] != -d * v for c, v in wi.items()):
            raise _Invalid(f"pair {k}: row {j} is not a negative multiple of row {i}")
        if d * b[i] + b[j] < 0:
            raise _Invalid(f"pair {k}: bias condition d*b_{i} + b_{j} >= 0 fails ({_num(d * b[i] + b[j])})")
        B.append(wi)
    spec = getattr(layer, "spec", None)
    # A convolution's B, ordered position-major, is banded: its rank mod a
    # prime costs n (band)^2 (exact_inj/modrank.py); False or None there
    # proves nothing, and the general test below decides.
    banded = spec is not None and modrank.banded_full_rank(spec.position_major([i for i, _ in proof.pairs]))
    if not banded and not _independent(B, n):
        raise _Invalid("the rows named as B are not linearly independent")
    return f"structural [B; -DB] proof on {2 * n} of {m} rows, bias condition holds"


# Below this many entries B's rank is computed exactly over Q; above it, mod
# a prime first (rank mod p = n proves rank n over Q: exact_inj/modrank.py).
_EXACT_RANK_ENTRIES = 40_000


def _independent(rows: list[dict[int, Fraction]], n: int) -> bool:
    """The n sparse rows are linearly independent over Q, decided exactly."""
    if n * n > _EXACT_RANK_ENTRIES:
        # Two primes: an unlucky prime (one dividing det B) costs a second
        # try.  If both fail, det B is very likely 0; the exact rank below
        # settles it when that is affordable, and otherwise the proof is
        # refused (never accepted on a guess).
        for p in ((1 << 61) - 1, (1 << 62) - 57):
            try:
                if modrank.rows_have_full_rank(rows, n, p):
                    return True
            except ValueError:  # above the memory budget: not checkable here, so not accepted
                return False
        if n * n > 100 * _EXACT_RANK_ENTRIES:
            return False
    dense = [[r.get(c, Fraction(0)) for c in range(n)] for r in rows]
    return linalg.rank_q(dense, n) == n


def _check_conv_structural(net: Network, proof: ConvStructuralProof) -> str:
    """Theory section 8 ("Convolutions") with the rank shown by frequencies.

    Recomputed here: the layer is a periodic convolution whose outputs cover
    every shift, the prime, the orders of the roots, every channel pair and
    its bias condition, and the symbol's rank at every frequency."""
    layer = net.layers[0] if net.is_single_relu_layer else None
    spec = getattr(layer, "spec", None)
    if spec is None:
        raise _Invalid("a conv_structural proof applies to a single ReLU convolutional layer only")
    if spec.padding != "periodic" or any(o < s for o, s in zip(spec.output_size, spec.input_size)):
        raise _Invalid("a conv_structural proof needs periodic padding with at least as many output "
                       "positions as input positions in every dimension")
    p, roots, sizes = proof.modulus, proof.roots, spec.input_size
    if not (modrank.PRIME_FLOOR <= p < modrank.PRIME_CEILING) or not modrank.is_prime(p):
        raise _Invalid(f"modulus {p} is not a prime in [2^61, 2^62)")
    if len(roots) != len(sizes):
        raise _Invalid(f"{len(roots)} roots for {len(sizes)} spatial dimensions")
    for t, (r, N) in enumerate(zip(roots, sizes)):
        if not modrank.has_order(r, N, p):
            raise _Invalid(f"root {t} does not have order {N} modulo the prime")
    used = [c for pr in proof.channel_pairs for c in pr]
    if any(not (0 <= c < spec.out_channels) for c in used) or len(set(used)) != len(used):
        raise _Invalid("channel pairs name channels outside the layer or repeat a channel")
    flat = [spec.channel_kernel(o) for o in range(spec.out_channels)]
    for k, (o, o2) in enumerate(proof.channel_pairs):
        a, c = flat[o], flat[o2]
        piv = next((i for i, v in enumerate(a) if v != 0), None)
        if piv is None:
            raise _Invalid(f"channel pair {k}: channel {o} has a zero kernel")
        if len(a) != len(c):  # pragma: no cover - ConvSpec forbids ragged kernels
            raise _Invalid(f"channel pair {k}: the kernels have different sizes")
        d = -c[piv] / a[piv]
        if d <= 0 or any(y != -d * x for x, y in zip(a, c)):
            raise _Invalid(f"channel pair {k}: channel {o2}'s kernel is not a negative multiple of channel {o}'s")
        if d * spec.bias[o] + spec.bias[o2] < 0:
            raise _Invalid(f"channel pair {k}: bias condition d*b_{o} + b_{o2} >= 0 fails "
                           f"({_num(d * spec.bias[o] + spec.bias[o2])})")
    try:
        bad = modrank.symbol_rank_deficiency(spec.kernel, spec.in_channels, [o for o, _ in proof.channel_pairs],
                                             sizes, p, roots)
    except ValueError as e:  # more frequencies than are visited: not checkable here, so not accepted
        raise _Invalid(f"cannot be checked: {e}") from None
    if bad is not None:
        raise _Invalid(f"the symbol of channels {[o for o, _ in proof.channel_pairs]} has rank < "
                       f"{spec.in_channels} modulo the prime at frequency {list(bad)}")
    n = spec.in_dim
    return (f"convolutional [C; -DC] proof: {len(proof.channel_pairs)} channel pairs, C of full column rank {n} "
            f"(symbol full rank at all {n // spec.in_channels} frequencies mod a prime), bias condition holds")


# sympy's rref on big rational matrices is slow (theory notes, section 4), so
# the rank cross-check is skipped above this many matrix entries.
SYMPY_RANK_LIMIT = 1000
# sympy's Rational arithmetic costs ~20 us an operation: its re-evaluation is
# skipped above this many weights (about a second's work).
SYMPY_EVAL_LIMIT = 2500


def _sympy_crosscheck(net: Network, w: Witness) -> str:
    import sympy

    def ev(x):
        h = [sympy.Rational(v.numerator, v.denominator) for v in x]
        for layer in net.layers:
            pre = [sum((sympy.Rational(a.numerator, a.denominator) * hv for a, hv in zip(row, h)),
                       sympy.Rational(bb.numerator, bb.denominator)) for row, bb in zip(layer.weight, layer.bias)]
            h = [max(p, 0) for p in pre] if layer.activation == "relu" else pre
        return h

    size = sum(layer.in_dim * layer.out_dim for layer in net.layers)
    if size > SYMPY_EVAL_LIMIT:
        return f"sympy cross-check skipped ({size} weights > {SYMPY_EVAL_LIMIT})"
    if ev(w.x) != ev(w.y):
        raise _Invalid("sympy cross-check: the outputs differ")
    if w.active_rows is None or len(w.active_rows) * net.input_dim > SYMPY_RANK_LIMIT:
        return "sympy re-evaluation agrees"
    layer = net.layers[0]
    rows = [[sympy.Rational(a.numerator, a.denominator) for a in layer.weight[i]] for i in w.active_rows]
    rk = len(sympy.Matrix(rows).rref()[1]) if rows else 0
    if rk != w.active_rank:
        raise _Invalid(f"sympy cross-check: midpoint rank {rk} != {w.active_rank}")
    return "sympy re-evaluation and rank agree"


def _check_linear(net: Network, dom: Domain) -> str:
    from . import network as netmod

    if len(net.layers) != 1 or net.layers[0].activation != "linear":
        raise _Invalid("a linear_rank proof applies to a single linear layer")
    layer = net.layers[0]
    if dom.is_empty():
        return f"{dom.describe()} is empty"
    r = netmod.linear_rank(layer, dom)
    if r != layer.in_dim:
        raise _Invalid(f"rank [W; E] = {r} < {layer.in_dim}: the linear map is not injective on {dom.describe()}")
    return f"linear map of rank {r} = n on {dom.describe()}"


def _check_layerwise(net: Network, dom: Domain, proof: LayerwiseProof) -> str:
    """Recompute the stages and what each receives; check each stage's proof.

    Stage 0's stated domain must contain the network's domain; stage k's must
    contain a convex set holding stage k-1's image of ITS stated domain
    (recomputed here: exact interval bounds from a box, the orthant after a
    ReLU otherwise).  Each stage's proof is checked as a one-layer
    certificate of the folded layer on its stated domain.
    """
    from . import network as netmod

    expected = netmod.stages(net)
    if len(proof.stages) != len(expected):
        raise _Invalid(f"the network has {len(expected)} stages, the proof {len(proof.stages)}")
    received = dom
    notes = []
    for k, (st, ex) in enumerate(zip(proof.stages, expected)):
        if (st.start, st.stop) != (ex.start, ex.stop):
            raise _Invalid(f"stage {k} covers layers {st.start}..{st.stop - 1}, expected {ex.start}..{ex.stop - 1}")
        if not st.domain.dim_ok(ex.layer.in_dim):
            raise _Invalid(f"stage {k}'s domain has the wrong dimension")
        if not netmod.contains(st.domain, received):
            raise _Invalid(f"stage {k}'s domain {st.domain.describe()} does not contain what it receives, "
                           f"{received.describe()}")
        if isinstance(st.proof, (Witness, LayerwiseProof)):
            raise _Invalid(f"stage {k} needs a proof of injectivity")
        sub = Certificate(Network((ex.layer,)), st.domain, Status.INJECTIVE, st.proof)
        try:
            notes.append(_check(sub))
        except _Invalid as e:
            raise _Invalid(f"stage {k}: {e}") from None
        received = netmod.image_box(ex.layer, st.domain)
    return f"layerwise proof: {len(expected)} stages, each injective on a convex set containing what it receives"


def verify_infeasible(rows, eqs, cert: Infeasible, zero=None) -> bool:
    """lam >= 0 and free eq with sum lam a + sum eq e = 0 and constant > 0."""
    from .pieces import combine

    if len(cert.support) != len(cert.lam) or len(cert.eq) != len(eqs) or len(set(cert.support)) != len(cert.support):
        return False
    if any(r < 0 or r >= len(rows) for r in cert.support) or any(v < 0 for v in cert.lam):
        return False
    if not rows and not eqs:
        return False
    dim = len(rows[0][0]) if rows else len(eqs[0][0])
    coef, const = combine(rows, eqs, cert.support, cert.lam, cert.eq, dim, zero)
    return not any(coef) and const > 0


def verify_flat(rows, eqs, cert: Flat, n: int, zero=None) -> bool:
    """lam > 0 (each) and free eq with the combination identically 0, so every
    support row is tight; then solve . [A_S; E] = [I, -I] and solve . [c_S; d] = 0."""
    from .pieces import combine

    if len(cert.support) != len(cert.lam) or len(cert.eq) != len(eqs) or len(set(cert.support)) != len(cert.support):
        return False
    if any(r < 0 or r >= len(rows) for r in cert.support) or any(v <= 0 for v in cert.lam):
        return False
    B = [rows[r] for r in cert.support] + list(eqs)
    if not B or len(cert.solve) != n or any(len(m) != len(B) for m in cert.solve):
        return False
    coef, const = combine(rows, eqs, cert.support, cert.lam, cert.eq, 2 * n, zero)
    if any(coef) or const != 0:
        return False
    for k, m in enumerate(cert.solve):
        coef, const = combine(B, [], range(len(B)), m, (), 2 * n, zero)
        if const != 0 or any(v != (int(t == k) - int(t == n + k)) for t, v in enumerate(coef)):
            return False
    return True


def _check_end_to_end(net: Network, dom: Domain, proof: EndToEndProof) -> str:
    """Replay the piece tree, check each empty leaf, then close every pair of pieces.

    Coverage is recomputed here: the neuron order, every row and every
    affine output map come from the certificate's own network
    (exact_inj.pieces); a SPLIT's two closed halves cover their parent, a
    COLLAPSE is accepted only for a pre-activation that is identically 0,
    and the pairs must be exactly (i, j) for i <= j over the pieces found.
    """
    from .pieces import Walker, pair_system, separated

    w = Walker(net, dom)
    full = dom.kind != "box" or all(lo < hi for lo, hi in zip(dom.lower, dom.upper))
    tokens = proof.tree
    pos = 0
    pieces = []
    stack = [w.root()]
    while stack:
        node = stack.pop()
        if pos >= len(tokens):
            raise _Invalid("the piece tree ends before every node is closed")
        tok = tokens[pos]
        pos += 1
        if tok == REGION:
            if not node.complete:
                raise _Invalid(f"tree code {pos - 1}: a piece must fix every neuron ({node.pos} of {w.neurons} fixed)")
            pieces.append(node)
        elif tok in (SPLIT, COLLAPSE):
            if node.complete:
                raise _Invalid(f"tree code {pos - 1}: no neuron is left to split")
            if tok == COLLAPSE:
                a, c = node.next_pre()
                if any(a) or c != 0:
                    raise _Invalid(f"tree code {pos - 1}: collapsing neuron {node.pos} needs a pre-activation "
                                   "that is identically 0")
                stack.append(node.child(False))
            else:
                stack.append(node.child(False))
                stack.append(node.child(True))
        elif 0 <= tok < len(proof.leaves):
            leaf = proof.leaves[tok]
            if isinstance(leaf, Tight):
                if not full:
                    raise _Invalid(f"tree code {pos - 1}: a lower-dimensional prefix may be dropped only on a "
                                   f"full-dimensional domain, and {dom.describe()} is not one")
                if not verify_tight(node.rows(), leaf):
                    raise _Invalid(f"tree code {pos - 1}: leaf certificate {tok} does not put its prefix in a "
                                   "hyperplane")
            elif not (isinstance(leaf, Infeasible) and verify_infeasible(node.rows(), [], leaf)):
                raise _Invalid(f"tree code {pos - 1}: leaf certificate {tok} does not close its prefix")
        else:
            raise _Invalid(f"tree code {pos - 1} = {_num(tok)} is not a valid code")
    if pos != len(tokens):
        raise _Invalid(f"the piece tree has {len(tokens) - pos} codes after its last node")
    R = len(pieces)
    n = w.n
    # From here on in python-flint rationals: each piece's rows are converted
    # once and reused by every pair it is in (exact, and ~20x faster than Fraction).
    zero = flint.fmpq(0)
    rows = [_q_rows(p.rows()) for p in pieces]
    outs = [_q_rows(p.output()) for p in pieces]
    if len(proof.bounds) != R:
        raise _Invalid(f"{R} pieces need {R} lists of output bounds, the proof has {len(proof.bounds)}")
    box = [_piece_box(rows[i], outs[i], _q_bounds(proof.bounds[i]), i, zero) for i in range(R)]
    k = 0
    n_separated = 0
    for i in range(R):
        for j in range(i, R):
            if separated(box[i], box[j]):
                n_separated += 1
                continue
            if k >= len(proof.pairs):
                raise _Invalid(f"pair ({i}, {j}) has no certificate (the proof has {len(proof.pairs)})")
            ineq, eqs = pair_system(rows[i], outs[i], rows[j], outs[j], n)
            cert = _q_comb(proof.pairs[k])
            ok = (verify_flat(ineq, eqs, cert, n, zero) if isinstance(cert, Flat)
                  else verify_infeasible(ineq, eqs, cert, zero) if isinstance(cert, Infeasible) else False)
            if not ok:
                raise _Invalid(f"pair ({i}, {j}): its certificate does not close it")
            k += 1
    if k != len(proof.pairs):
        raise _Invalid(f"the proof has {len(proof.pairs) - k} pair certificates more than the pairs it must close")
    k += n_separated
    return (f"end-to-end proof: {R} pieces cover {dom.describe()}, and none of the {k} pairs of pieces "
            f"holds two distinct points with equal outputs ({n_separated} pairs separated by output bounds)")


def verify_tight(rows, cert: Tight) -> bool:
    """lam >= 0, sum lam a = 0, sum lam c = 0, and lam_r > 0 on a row with a_r != 0."""
    from .pieces import combine

    if len(cert.support) != len(cert.lam) or len(set(cert.support)) != len(cert.support) or not rows:
        return False
    if any(r < 0 or r >= len(rows) for r in cert.support) or any(v < 0 for v in cert.lam):
        return False
    if not any(v > 0 and any(rows[r][0]) for r, v in zip(cert.support, cert.lam)):
        return False
    coef, const = combine(rows, [], cert.support, cert.lam, (), len(rows[0][0]))
    return not any(coef) and const == 0


def bound_value(rows, out, cert: Bound, upper: bool, zero=None):
    """The bound a Bound certifies on the output o.x + o_0, or None if it is not one."""
    from .pieces import combine

    o, o0 = out
    if len(cert.support) != len(cert.lam) or len(set(cert.support)) != len(cert.support):
        return None
    if any(r < 0 or r >= len(rows) for r in cert.support) or any(v < 0 for v in cert.lam):
        return None
    coef, const = combine(rows, [], cert.support, cert.lam, (), len(o), zero)
    if any(a != (b if upper else -b) for a, b in zip(coef, o)):
        return None
    return o0 - const if upper else o0 + const


def _piece_box(rows, outs, bounds, i, zero=None):
    if len(bounds) != len(outs):
        raise _Invalid(f"piece {i} has {len(outs)} outputs but {len(bounds)} bound pairs")
    box = []
    for k, (lu, out) in enumerate(zip(bounds, outs)):
        if not isinstance(lu, (tuple, list)) or len(lu) != 2:
            raise _Invalid(f"piece {i}, output {k}: bounds must be a (lower, upper) pair")
        vals = []
        for b, upper in zip(lu, (False, True)):
            if b is None:
                vals.append(None)
                continue
            v = bound_value(rows, out, b, upper, zero) if isinstance(b, Bound) else None
            if v is None:
                raise _Invalid(f"piece {i}, output {k}: the {'upper' if upper else 'lower'} bound's "
                               "certificate is not valid")
            vals.append(v)
        box.append(tuple(vals))
    return box


def _q_rows(rows):
    return [(tuple(linalg.to_fmpq(v) for v in a), linalg.to_fmpq(c)) for a, c in rows]


def _q_comb(c):
    """A pair or bound certificate with its numbers as fmpq (same values)."""
    from dataclasses import replace

    if c is None or not isinstance(c, (Infeasible, Flat, Bound, Tight)):
        return c
    out = replace(c, lam=tuple(linalg.to_fmpq(v) for v in c.lam))
    if isinstance(c, (Infeasible, Flat)):
        out = replace(out, eq=tuple(linalg.to_fmpq(v) for v in c.eq))
    if isinstance(c, Flat):
        out = replace(out, solve=tuple(tuple(linalg.to_fmpq(v) for v in row) for row in c.solve))
    return out


def _q_bounds(piece_bounds):
    if not isinstance(piece_bounds, (tuple, list)):
        return piece_bounds
    return tuple(tuple(_q_comb(b) for b in lu) if isinstance(lu, (tuple, list)) else lu for lu in piece_bounds)
