"""Checks of single-layer proofs: witnesses, case-split trees with exact
Motzkin cores and rank leaves, the structural [B; -DB] rule, its convolution
form, and linear maps (docs/theory.md, section 4).

Rational and integer arithmetic only; rows are read from the certificate's own
network, and every split and rank is recomputed here, never trusted.
"""

from __future__ import annotations

from fractions import Fraction

import flint
import numpy as np

from ..exact import linalg, modrank, ndrank
from ..model import Domain, Network
from ..model.stages import linear_rank
from .base import Invalid, num, nums
from .schema import ConvStructuralProof, Core, StructuralProof, Witness

__all__ = ["check_conv_structural", "check_core", "check_linear", "check_structural", "check_witness",
           "layer_rows"]


def check_witness(net: Network, w: Witness, domain: Domain | None = None) -> str:
    n = net.input_dim
    if len(w.x) != n or len(w.y) != n:
        raise Invalid(f"witness points must have {n} coordinates")
    if w.x == w.y:
        raise Invalid("witness points are equal")
    if domain is not None:
        for name, pt in (("x", w.x), ("y", w.y)):
            if not domain.contains(pt):
                raise Invalid(f"witness point {name} lies outside {domain.describe()}")
    fx, fy = net.evaluate(w.x), net.evaluate(w.y)
    for k, (a, b) in enumerate(zip(fx, fy)):
        if a != b:
            raise Invalid(f"outputs differ at coordinate {k}: {num(a)} != {num(b)}")
    if w.active_rows is not None or w.active_rank is not None:
        if len(net.layers) != 1:
            raise Invalid("active_rows/active_rank are defined for single layers only")
        layer = net.layers[0]
        mid = tuple((a + b) / 2 for a, b in zip(w.x, w.y))
        pre = layer.pre_activation(mid)
        active = tuple(i for i, a in enumerate(pre) if a >= 0)
        if w.active_rows is not None and tuple(w.active_rows) != active:
            raise Invalid(f"active_rows {nums(w.active_rows)} differ from the rows active at the midpoint {nums(active)}")
        Wi, _ = linalg.integer_rows(layer.weight, layer.bias)
        rk = linalg.rank([Wi[i] for i in active], n)
        if w.active_rank is not None and w.active_rank != rk:
            raise Invalid(f"active_rank {num(w.active_rank)} differs from the exact rank {rk}")
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
    (docs/theory.md, section 4; the near miss "(lambda, mu) != 0 and s >= 0" is not
    enough).
    """
    M = len(W)
    S, T = tuple(core.support), tuple(core.domain_support)
    if not S:
        raise Invalid(f"core {k} is empty")
    if len(set(S)) != len(S) or any(not (0 <= i < M) for i in S):
        raise Invalid(f"core {k} names rows outside 0..{M - 1} or repeats one")
    if len(set(T)) != len(T) or any(not (m <= j < M) for j in T):
        raise Invalid(f"core {k} names domain rows outside {m}..{M - 1} or repeats one")
    idx = S + T
    if core.multiplier is not None:
        lam = core.multiplier
        if len(lam) != len(idx):
            raise Invalid(f"core {k} multiplier has {len(lam)} entries for {len(idx)} rows")
        rows = [rows_q[i][0] for i in idx]
        offs = [rows_q[i][1] for i in idx]
    else:
        # The null space of the support's columns, in flint: the rows as an
        # |idx| x n integer matrix, transposed.  Its cancellation is verified
        # below by an exact flint product (the same integers, in C).
        A = flint.fmpz_mat([W[i] for i in idx]).transpose()
        X, nullity = A.nullspace()
        if nullity != 1:
            raise Invalid(
                f"core {k}: the support fixes no unique multiplier (null space of dimension {nullity}); "
                "an explicit multiplier is needed"
            )
        lam = [int(X[r, 0]) for r in range(len(idx))]
        if all(x <= 0 for x in lam):
            lam = [-x for x in lam]
        if any(x < 0 for x in lam):
            raise Invalid(f"core {k}: the multiplier has a negative entry")
        if not (A * flint.fmpz_mat(len(idx), 1, lam)).is_zero():
            raise Invalid(f"core {k}: the multiplier does not cancel the rows")
        s = sum(l * b[i] for l, i in zip(lam, idx))
        strict_part = any(lam[: len(S)])
        if not ((strict_part and s >= 0) or s > 0):
            if not strict_part:
                raise Invalid(f"core {k}: the multiplier is zero on the strict rows and s = 0")
            raise Invalid(f"core {k}: the multiplier gives lambda.b < 0, so the rows can all be negative")
        return
    if any(x < 0 for x in lam):
        raise Invalid(f"core {k}: the multiplier has a negative entry")
    for j in range(n):
        if sum(l * r[j] for l, r in zip(lam, rows)) != 0:
            raise Invalid(f"core {k}: the multiplier does not cancel the rows (column {j})")
    s = sum(l * c for l, c in zip(lam, offs))
    strict_part = any(lam[: len(S)])
    if not ((strict_part and s >= 0) or s > 0):
        if not strict_part:
            raise Invalid(f"core {k}: the multiplier is zero on the strict rows and s = 0")
        raise Invalid(f"core {k}: the multiplier gives lambda.b < 0, so the rows can all be negative")


def layer_rows(net: Network, domain: Domain) -> tuple[list, list[list[int]], list[int], int, int]:
    """Layer rows then domain constraint rows: rational, and integer-scaled."""
    if not net.is_single_relu_layer:
        raise Invalid("this proof kind applies to a single ReLU layer only")
    layer = net.layers[0]
    n, m = layer.in_dim, layer.out_dim
    G, h = domain.constraints(n)
    rw = list(layer.weight) + [tuple(r) for r in G]
    rb = list(layer.bias) + [-v for v in h]
    W, b = linalg.integer_rows(rw, rb)
    return list(zip(rw, rb)), W, b, m, n


def check_structural(net: Network, proof: StructuralProof) -> str:
    layer = net.layers[0] if net.is_single_relu_layer else None
    if layer is None:
        raise Invalid("a structural proof applies to a single ReLU layer only")
    n, m = layer.in_dim, layer.out_dim
    check_pair_indices(proof.pairs, n, m, "structural")
    # Rows are read sparsely (a convolution's rows come from its kernel), so
    # a big conv layer is checked without its dense operator; a pair of
    # rows at one position of two channels whose kernels are negative
    # multiples is checked once per channel pair.
    b = layer.bias
    same_channels = _channel_pair_check(layer)
    B: list[dict[int, Fraction]] | None = []
    for k, (i, j) in enumerate(proof.pairs):
        if same_channels is not None and same_channels(i, j, k):
            B = None  # the rows are read again by the fallback rank test only if it runs
            continue
        wi, wj = layer.sparse_row(i), layer.sparse_row(j)
        if not wi:
            raise Invalid(f"pair {k}: row {i} is zero")
        c = min(wi)
        d = -wj.get(c, Fraction(0)) / wi[c]
        if d <= 0 or wj.keys() != wi.keys() or any(wj[c] != -d * v for c, v in wi.items()):
            raise Invalid(f"pair {k}: row {j} is not a negative multiple of row {i}")
        if d * b[i] + b[j] < 0:
            raise Invalid(f"pair {k}: bias condition d*b_{i} + b_{j} >= 0 fails ({num(d * b[i] + b[j])})")
        if B is not None:
            B.append(wi)
    check_b_independent(layer, proof.pairs, B, n)
    return f"structural [B; -DB] proof on {2 * n} of {m} rows, bias condition holds"


def _channel_pair_check(layer):
    """For a convolution (rows o * per + r: channel o at position r), a test
    ``ok(i, j, k)``: rows i and j sit at one position of channels o, o' with
    K_o' = -d K_o for some d > 0 and d b_o + b_o' >= 0; then row j is -d
    times row i (both read the same inputs through the same taps) and the
    bias condition holds.  True only when that settles the pair (raises
    Invalid when the channels' bias condition fails); None for other layers."""
    spec = getattr(layer, "spec", None)
    if spec is None or not hasattr(spec, "channel_kernel") or not hasattr(spec, "output_size"):
        return None
    per = 1
    for size in spec.output_size:
        per *= size
    memo: dict[tuple[int, int], Fraction | None] = {}
    # The integer kernel (one positive common factor, which the ratio d
    # does not see) compares channels in numpy; Fractions otherwise.
    ints = spec.channel_array() if hasattr(spec, "channel_array") else None

    def ratio(o: int, o2: int) -> Fraction | None:
        """d > 0 with K_o2 = -d K_o, or None."""
        if ints is not None:
            a, c = ints[o], ints[o2]
            nz = np.flatnonzero(a)
            if nz.size == 0:
                return None
            d = Fraction(-int(c[nz[0]]), int(a[nz[0]]))
            # |entries| < 2^31 (channel_array), so both products are exact in int64.
            same = np.array_equal(c * d.denominator, -d.numerator * a)
            return d if d > 0 and same else None
        a, c = spec.channel_kernel(o), spec.channel_kernel(o2)
        piv = next((t for t, v in enumerate(a) if v != 0), None)
        d = None if piv is None else -c[piv] / a[piv]
        return d if d is not None and d > 0 and all(y == -d * x for x, y in zip(a, c)) else None

    def ok(i: int, j: int, k: int) -> bool:
        (o, r), (o2, r2) = divmod(i, per), divmod(j, per)
        if r != r2:
            return False
        if (o, o2) not in memo:
            memo[(o, o2)] = ratio(o, o2)
        d = memo[(o, o2)]
        if d is None:
            return False
        if d * spec.bias[o] + spec.bias[o2] < 0:
            raise Invalid(f"pair {k}: bias condition d*b_{i} + b_{j} >= 0 fails "
                          f"({num(d * spec.bias[o] + spec.bias[o2])})")
        return True

    return ok


def check_pair_indices(pairs, n: int, m: int, what: str) -> None:
    """A [B; -DB] proof names n disjoint pairs of rows of an m-row layer."""
    if len(pairs) != n:
        raise Invalid(f"a {what} proof needs {n} pairs, got {len(pairs)}")
    used = [i for p in pairs for i in p]
    if any(not (0 <= i < m) for i in used) or len(set(used)) != len(used):
        raise Invalid(f"{what} pairs name rows outside the layer or repeat a row")


def check_b_independent(layer, pairs, B: list[dict[int, Fraction]] | None, n: int) -> None:
    """The pairs' first rows B (sparse; None: read them from the layer when
    needed) are linearly independent."""
    spec = getattr(layer, "spec", None)
    first = [i for i, _ in pairs]
    # A convolution's B: first the nested-dissection elimination mod a prime
    # (exact_inj/exact/ndrank.py, recomputed here from the kernel), then the
    # banded one (position-major order, n (band)^2: exact_inj/modrank.py).
    # Not shown there proves nothing, and the general test below decides.
    if spec is not None and hasattr(spec, "grid_operator") and ndrank.rows_nonsingular(spec, first):
        return
    if spec is not None and modrank.banded_full_rank(spec.position_major(first)):
        return
    if B is None:
        B = [layer.sparse_row(i) for i in first]
    if not _independent(B, n):
        raise Invalid("the rows named as B are not linearly independent")


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


def check_conv_structural(net: Network, proof: ConvStructuralProof) -> str:
    """Theory section 8 ("Convolutions") with the rank shown by frequencies.

    Recomputed here: the layer is a periodic convolution whose outputs cover
    every shift, the prime, the orders of the roots, every channel pair and
    its bias condition, and the symbol's rank at every frequency."""
    layer = net.layers[0] if net.is_single_relu_layer else None
    spec = getattr(layer, "spec", None)
    if spec is None:
        raise Invalid("a conv_structural proof applies to a single ReLU convolutional layer only")
    if spec.padding != "periodic" or any(o < s for o, s in zip(spec.output_size, spec.input_size)):
        raise Invalid("a conv_structural proof needs periodic padding with at least as many output "
                       "positions as input positions in every dimension")
    p, roots, sizes = proof.modulus, proof.roots, spec.input_size
    if not (modrank.PRIME_FLOOR <= p < modrank.PRIME_CEILING) or not modrank.is_prime(p):
        raise Invalid(f"modulus {p} is not a prime in [2^61, 2^62)")
    if len(roots) != len(sizes):
        raise Invalid(f"{len(roots)} roots for {len(sizes)} spatial dimensions")
    for t, (r, N) in enumerate(zip(roots, sizes)):
        if not modrank.has_order(r, N, p):
            raise Invalid(f"root {t} does not have order {N} modulo the prime")
    used = [c for pr in proof.channel_pairs for c in pr]
    if any(not (0 <= c < spec.out_channels) for c in used) or len(set(used)) != len(used):
        raise Invalid("channel pairs name channels outside the layer or repeat a channel")
    flat = [spec.channel_kernel(o) for o in range(spec.out_channels)]
    for k, (o, o2) in enumerate(proof.channel_pairs):
        a, c = flat[o], flat[o2]
        piv = next((i for i, v in enumerate(a) if v != 0), None)
        if piv is None:
            raise Invalid(f"channel pair {k}: channel {o} has a zero kernel")
        if len(a) != len(c):  # pragma: no cover - ConvSpec forbids ragged kernels
            raise Invalid(f"channel pair {k}: the kernels have different sizes")
        d = -c[piv] / a[piv]
        if d <= 0 or any(y != -d * x for x, y in zip(a, c)):
            raise Invalid(f"channel pair {k}: channel {o2}'s kernel is not a negative multiple of channel {o}'s")
        if d * spec.bias[o] + spec.bias[o2] < 0:
            raise Invalid(f"channel pair {k}: bias condition d*b_{o} + b_{o2} >= 0 fails "
                           f"({num(d * spec.bias[o] + spec.bias[o2])})")
    try:
        bad = modrank.symbol_rank_deficiency(spec.kernel, spec.in_channels, [o for o, _ in proof.channel_pairs],
                                             sizes, p, roots)
    except ValueError as e:  # more frequencies than are visited: not checkable here, so not accepted
        raise Invalid(f"cannot be checked: {e}") from None
    if bad is not None:
        raise Invalid(f"the symbol of channels {[o for o, _ in proof.channel_pairs]} has rank < "
                       f"{spec.in_channels} modulo the prime at frequency {list(bad)}")
    n = spec.in_dim
    return (f"convolutional [C; -DC] proof: {len(proof.channel_pairs)} channel pairs, C of full column rank {n} "
            f"(symbol full rank at all {n // spec.in_channels} frequencies mod a prime), bias condition holds")


def check_linear(net: Network, dom: Domain) -> str:
    if len(net.layers) != 1 or net.layers[0].activation != "linear":
        raise Invalid("a linear_rank proof applies to a single linear layer")
    layer = net.layers[0]
    if dom.is_empty():
        return f"{dom.describe()} is empty"
    r = linear_rank(layer, dom)
    if r != layer.in_dim:
        raise Invalid(f"rank [W; E] = {r} < {layer.in_dim}: the linear map is not injective on {dom.describe()}")
    return f"linear map of rank {r} = n on {dom.describe()}"
