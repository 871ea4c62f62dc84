"""Proofs for convolutional layers found through the kernel, not the matrix.

A DCGAN-style layer [C; -s^2 C] is injective when the operator C has full
column rank at the given size (docs/theory.md, section 8, "Convolutions"): n
independent rows of C and their negative multiples form the structural
rule's [B; -DB].  This module finds such proofs for a
:class:`~exact_inj.model.conv.ConvLayer` without building its dense operator:

1. **Channel pairs**: output channels whose kernels are negative multiples of
   each other, with the bias condition d b_o + b_o' >= 0 (one check per
   channel instead of one per row).
2. **Rank of C**, exactly, by one of
   - *frequencies* (periodic padding, outputs covering every shift): the
     symbol has full rank at each of the N frequencies modulo a prime
     (:class:`~exact_inj.certify.schema.ConvStructuralProof`; nothing but the
     kernel is ever built);
   - *named rows* (any padding): n rows of C independent modulo a prime,
     selected by one modular elimination of C's transpose, or the first n
     rows shown nonsingular by a nested-dissection elimination mod a prime
     (:class:`~exact_inj.certify.schema.StructuralProof`; the checker reads those
     n rows sparsely and recomputes their rank mod p).

A rank mod p that falls short proves nothing (exact_inj/modrank.py), so a
failure here only means "not shown": the engine goes on to the dense routes
when the operator is small enough, and otherwise answers unknown.
"""

from __future__ import annotations

import time
from fractions import Fraction
from itertools import product
from math import ceil, prod

import flint
import numpy as np

from ..certify.schema import ConvStructuralProof, StructuralProof
from ..exact import linalg, modrank, ndrank
from ..model.conv import ConvLayer, ConvSpec

# Primes tried before a frequency or row-rank test is given up: one unlucky
# prime (dividing a non-zero minor) is already rare near 2^61.
PRIMES_TRIED = 3


def channel_pairs(layer: ConvLayer) -> tuple[tuple[int, int], ...]:
    """Disjoint channel pairs (o, o') with K_o' = -d K_o, d > 0, and
    d b_o + b_o' >= 0; each channel is used at most once.

    >>> from exact_inj.model import ConvSpec
    >>> L = ConvSpec.build([[[1, 2]], [[-3, -6]], [[0, 1]]], 1, 3, [4], "periodic", [[0, 1]], [0, 0, 0]).layer()
    >>> channel_pairs(L)
    ((0, 1),)
    """
    spec = layer.spec
    ints = spec.channel_array() if hasattr(spec, "channel_array") else None
    if ints is not None:
        # The integer kernel (one positive common factor: ratios and the
        # primitive vectors are those of the kernel), in numpy.
        groups_i: dict[tuple, list[int]] = {}
        for o, row in enumerate(ints):
            g = int(np.gcd.reduce(np.abs(row)))
            if g:
                groups_i.setdefault(tuple((row // g).tolist()), []).append(o)
        rows = {o: ints[o].tolist() for idx in groups_i.values() for o in idx}
        return tuple(opposite_pairs(groups_i, rows, lambda o, o2, d: d * spec.bias[o] + spec.bias[o2] >= 0))
    flat = [spec.channel_kernel(o) for o in range(spec.out_channels)]
    groups: dict[tuple, list[int]] = {}
    for o, k in enumerate(flat):
        if not any(k):
            continue
        # The primitive integer vector (sign kept) is the kernel up to a
        # positive factor, as v / |pivot| is, without a Fraction division
        # per entry (2M of them at the full-size generator's first stage).
        groups.setdefault(tuple(linalg.primitive(linalg.common_denominator(k)[0])), []).append(o)
    return tuple(opposite_pairs(groups, flat, lambda o, o2, d: d * spec.bias[o] + spec.bias[o2] >= 0))


def opposite_pairs(groups: dict[tuple, list[int]], vectors, accept) -> list[tuple[int, int]]:
    """Disjoint pairs (i, j) with v_j = -c v_i, c > 0, that ``accept(i, j, c)``
    takes (a bias condition), each index used once; ``groups`` maps a key
    that is the same for positive multiples of a vector (v / |pivot|, or its
    primitive integer vector) to the indices with that key.  One orientation
    is enough: c b_i + b_j >= 0 and b_i + (1/c) b_j >= 0 say the same for c > 0.

    >>> opposite_pairs({(1,): [0], (-1,): [1]}, [(2,), (-3,)], lambda i, j, c: c == Fraction(3, 2))
    [(0, 1)]
    """
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for key, idx in groups.items():
        neg = tuple(-v for v in key)
        opp = groups.get(neg)
        if not opp or key < neg:
            continue
        for i in idx:
            for j in opp:
                if i in used or j in used:
                    continue
                a, b = vectors[i], vectors[j]
                piv = next(t for t, v in enumerate(a) if v != 0)
                c = Fraction(-b[piv]) / a[piv]
                if accept(i, j, c):
                    pairs.append((i, j))
                    used.update((i, j))
                    break
    return pairs
    return tuple(pairs)


def full_column_rank(spec: ConvSpec, chans: list[int], deadline: float | None = None):
    """Show that the operator of output channels ``chans`` has full column
    rank, modulo a prime (which proves it over Q).

    Returns ``("frequencies", (p, roots))`` (periodic padding covering every
    shift), ``("rows", picked)`` (indices, into the rows of ``chans`` in
    channel-major order, of n rows independent mod p), or ``(None, note)``
    saying why it was not shown.

    >>> from exact_inj.model import ConvSpec
    >>> full_column_rank(ConvSpec.build([[[1, 1]]], 1, 1, [3], "zero", [[1, 0]]), [0])
    ('rows', [0, 1, 2])
    >>> full_column_rank(ConvSpec.build([[[1, -1]]], 1, 1, [3], "periodic", [[1, 0]]), [0])[0] is None
    True
    """
    try:
        return _full_column_rank(spec, chans, deadline)
    except TimeoutError as e:
        return None, str(e)


def _past(deadline: float | None, cost: float = 0.0) -> bool:
    """Past the deadline, or too close to it for a step of about ``cost``
    seconds (one flint elimination cannot be interrupted)."""
    return deadline is not None and time.perf_counter() + cost > deadline


# Seconds per n^2 x rows entry operation of python-flint's nmod_mat
# elimination near 2^61, measured on this machine (3072^3 in about 5 s with
# the list building): used only to skip a step that cannot finish in time.
_NMOD_SECONDS_PER_OP = 2e-10


def _full_column_rank(spec: ConvSpec, chans: list[int], deadline: float | None):
    n = spec.in_dim
    per = prod(spec.output_size)
    if len(chans) * per < n:
        return None, f"channels {chans} give {len(chans) * per} rows, fewer than n = {n}"
    if spec.padding == "periodic" and all(o >= s for o, s in zip(spec.output_size, spec.input_size)):
        if prod(spec.input_size) > modrank.MAX_FREQUENCIES:
            return None, f"{prod(spec.input_size)} frequencies, more than the {modrank.MAX_FREQUENCIES} visited"
        for attempt in range(PRIMES_TRIED):
            p, roots = modrank.primes_with_roots(spec.input_size, skip=attempt)
            bad = modrank.symbol_rank_deficiency(spec.kernel, spec.in_channels, chans, spec.input_size, p, roots,
                                                 deadline)
            if bad is None:
                return "frequencies", (p, roots)
        return None, (f"the symbol of channels {chans} is rank-deficient at frequency {list(bad)} modulo "
                      f"{PRIMES_TRIED} primes, so their operator is very likely not of full column rank")
    # First guess: the first n of these rows (whole channels, all positions),
    # a square system that is generically nonsingular.  In position-major
    # order it is banded, and the banded elimination (what the checker runs
    # too) costs n (band)^2 instead of n^3; failing that, one dense n x n
    # elimination mod p; choosing rows from all of them costs an n x (rows)
    # elimination, several times more again.
    first = [o * per + r for o in chans for r in range(per)][:n]
    # Nested dissection first (exact/ndrank.py: matrix products mod a prime,
    # about (separator)^3 work); it needs rows and columns balanced on the
    # grid cells, as a stride-s transposed convolution with s^d C_out = C_in
    # has, and says "not shown" otherwise.  The checker runs the same
    # elimination (certify/layer.py, check_b_independent).
    if hasattr(spec, "grid_operator") and ndrank.rows_nonsingular(spec, first, deadline):
        return "rows", list(range(n))
    if modrank.banded_full_rank(spec.position_major(first), deadline=deadline):
        return "rows", list(range(n))
    if _past(deadline):
        raise TimeoutError("time limit reached after the banded elimination")
    try:
        modrank.check_size(len(chans) * per, n, "row selection")
    except ValueError as e:
        return None, str(e)
    sparse = [spec.sparse_row(o * per + r) for o in chans for r in range(per)]
    if _past(deadline, _NMOD_SECONDS_PER_OP * n ** 3):
        raise TimeoutError("not enough time left for a dense elimination mod p")
    if modrank.rows_have_full_rank(sparse[:n], n, modrank.primes_with_roots([1])[0]):
        return "rows", list(range(n))
    for attempt in range(PRIMES_TRIED):
        if _past(deadline, _NMOD_SECONDS_PER_OP * n * n * len(sparse)):
            raise TimeoutError("not enough time left to select rows mod p")
        p, _ = modrank.primes_with_roots([1], skip=attempt)
        picked = modrank.independent_rows(sparse, n, p)
        if picked is not None:
            return "rows", picked
    return None, f"the rows of channels {chans} have rank < {n} modulo {PRIMES_TRIED} primes"


def structural_proof(layer: ConvLayer, deadline: float | None = None
                     ) -> tuple[ConvStructuralProof | StructuralProof | None, str]:
    """A proof that the layer is injective on R^n, or None; and a one-line
    note of what was shown or tried (for the verdict's reason and ``info``).

    Never builds the dense operator; where the row route's matrix mod p would
    exceed :data:`~exact_inj.exact.modrank.MAX_MODULAR_ENTRIES` the note says so.
    """
    spec = layer.spec
    pairs = channel_pairs(layer)
    if not pairs:
        return None, "no pair of output channels with kernels K and -dK (d > 0) meets the bias condition"
    chans = [o for o, _ in pairs]
    how, what = full_column_rank(spec, chans, deadline)
    if how == "frequencies":
        return ConvStructuralProof(pairs, *what), "frequencies"
    if how == "rows":
        return StructuralProof(named_row_pairs(spec, pairs, what)), "named rows"
    return None, what


def named_row_pairs(spec: ConvSpec, pairs, picked) -> tuple[tuple[int, int], ...]:
    """The row pairs (o * per + r, o' * per + r) for channel pairs (o, o') and
    the rows ``picked`` by :func:`full_column_rank` (indices into the rows of
    the pairs' first channels, channel-major; per = positions per channel)."""
    per = prod(spec.output_size)
    chans = [o for o, _ in pairs]
    partner = dict(pairs)
    out = []
    for k in picked:
        o, r = divmod(k, per)
        o = chans[o]
        out.append((o * per + r, partner[o] * per + r))
    return tuple(out)


# Patch sizes tried by :func:`few_rows_witness`, per spatial dimension.
_PATCH_LIMIT = 64

# How many patch sizes (from the smallest that works) few_rows_witness
# reduces a null space on; the shortest vector found is the witness's step.
_PATCHES_TRIED = 4


def few_rows_witness(layer: ConvLayer, seed: int = 0) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None:
    """A collision of a convolution with fewer than 2n non-zero rows on R^n,
    built from its kernel (docs/theory.md, section 7; the dense route's rule, made
    local).

    Along a direction u, one of u, -u has fewer than n rows positive (the
    "active" rows, with the rows orthogonal to u whose bias is >= 0); far out
    along it the others are strictly negative.  u is drawn with small
    entries first, and the step is short (an LLL-reduced null vector, a power
    of 1/2), so that the witness is readable.  A null vector v of the active rows then
    gives x and x + eps v with the same output.  v is sought on a small
    patch J of input positions (all channels): rows that do not touch J are
    orthogonal to any v supported on J, so only the active rows touching J
    constrain it, and once they are fewer than |J| a null vector exists.
    Convolution rows are local, so a patch a few kernels wide suffices and
    the exact null space is that of a small matrix.  Returns None when the
    rule does not apply; the pair is still to be checked by the caller.

    >>> from exact_inj.model import ConvSpec
    >>> L = ConvSpec.build([[[1, 2, -1]]], 1, 1, [40], "periodic", "same").layer()
    >>> x, y = few_rows_witness(L)
    >>> x != y and L.apply(x) == L.apply(y)
    True
    """
    spec = layer.spec
    n, m = layer.in_dim, layer.out_dim
    rows = [layer.sparse_row(i) for i in range(m)]
    if sum(1 for r in rows if r) >= 2 * n:
        return None
    rng = np.random.default_rng(seed)
    b = layer.bias
    # Small entries first, so that the witness is short (issue #14): signs,
    # then 1..9, then a wide range.  A row orthogonal to u keeps its bias all
    # along u: it counts as active when that is >= 0 (its w.v = 0 is then
    # required too), as negative otherwise.
    for top in (1, 1, 1, 9, 9, 9, 1 << 20, 1 << 20, 1 << 20):
        u = [int(v) if v else 1 for v in rng.integers(-top, top + 1, size=n)]
        dots = [sum(w * u[c] for c, w in r.items()) for r in rows]
        for sign in (1, -1):
            active = [i for i, (d, r) in enumerate(zip(dots, rows))
                      if r and (sign * d > 0 or (d == 0 and b[i] >= 0))]
            if len(active) < n:
                break
        else:
            continue
        break
    else:
        return None
    # Input columns of each spatial position, and the active rows touching each column.
    plane = prod(spec.input_size)
    touching: dict[int, list[int]] = {}
    for i in active:
        for c in rows[i]:
            touching.setdefault(c, []).append(i)
    strides = [prod(spec.input_size[t + 1:]) for t in range(len(spec.input_size))]
    found: list[list[int]] = []  # column sets J with fewer active rows touching them than columns
    for P in range(1, _PATCH_LIMIT + 1):
        sizes = [min(P, N) for N in spec.input_size]
        positions = [sum(s * k for s, k in zip(strides, q)) for q in product(*map(range, sizes))]
        J = sorted(c * plane + pos for c in range(spec.in_channels) for pos in positions)
        near = sorted({i for c in J for i in touching.get(c, ())})
        if len(near) < len(J) and (not found or J != found[-1]):
            found.append(J)
            if len(found) == _PATCHES_TRIED:  # larger patches: more null vectors, a shorter one after LLL
                break
        if sizes == list(spec.input_size):
            break
    if not found:
        return None
    v = None
    for J in found:
        near = sorted({i for c in J for i in touching.get(c, ())})
        sub = [linalg.common_denominator([rows[i].get(c, Fraction(0)) for c in J])[0] for i in near]
        vJ = _short_null_vector(sub, len(J))
        if vJ is not None and (v is None or max(map(abs, vJ)) < max(abs(a) for a in v.values())):
            v = {c: Fraction(a) for c, a in zip(J, vJ) if a}
    if v is None:  # pragma: no cover - fewer rows than columns
        return None
    # Far enough out that every non-active row is strictly negative at x
    # (t an integer: x stays integral).
    t = Fraction(1)
    for i, (d, r) in enumerate(zip(dots, rows)):
        if r and sign * d < 0 and b[i] >= 0:
            t = max(t, Fraction(b[i], -sign * d) + 1)
    t = Fraction(ceil(t))
    x = [sign * t * c for c in u]
    # Those rows stay negative at x + eps v while eps |w.v| < -(w.x + b).
    on = set(active)
    bound = Fraction(2)
    for i, (d, r) in enumerate(zip(dots, rows)):
        if r and i not in on:
            wv = sum(w * v[c] for c, w in r.items() if c in v)
            if wv:
                bound = min(bound, -(sign * t * d + b[i]) / abs(wv))
    eps = Fraction(1)  # the simplest step strictly inside: a power of 1/2 <= bound / 2
    while eps > bound / 2:
        eps /= 2
    y = list(x)
    for c, val in v.items():
        y[c] += eps * val
    return tuple(x), tuple(y)


def _short_null_vector(sub: list[list[int]], ncols: int) -> list[int] | None:
    """A short primitive integer null vector of a small integer matrix.

    LLL on the rows (e_j, C * column j of ``sub``), C large: a reduced
    vector with a zero tail is (its head) an integer null vector, and LLL
    puts the short ones first; this reduces the whole integer kernel, not
    just the lattice a rational basis happens to span.  Every vector
    returned is checked against ``sub`` exactly (the caller checks the
    collision too).

    >>> _short_null_vector([[1, 1, 1]], 3)
    [-1, 1, 0]
    """
    if not sub:
        return [1] + [0] * (ncols - 1)
    if linalg.rank(sub, ncols) == ncols:
        return None
    C = 1 << 40
    M = flint.fmpz_mat([[int(i == j) for i in range(ncols)] + [C * r[j] for r in sub] for j in range(ncols)])
    best = None
    for row in M.lll().tolist():
        head, tail = [int(a) for a in row[:ncols]], row[ncols:]
        if any(head) and not any(tail) and all(sum(a * c for a, c in zip(r, head)) == 0 for r in sub):
            if best is None or max(map(abs, head)) < max(map(abs, best)):
                best = head
    if best is None:  # C too small to separate the kernel: the rational basis
        best = linalg.nullspace(sub, ncols)[0]
    return linalg.primitive(best)


def periodic_null_vector(layer: ConvLayer) -> tuple[list[Fraction], str] | None:
    """A non-zero rational v with C v = 0 for a periodic convolution, from
    the two frequencies whose Fourier vectors are rational: 0 (constant
    images) and, for even N_t, N_t / 2 (signs alternating along dimension t).

    On such an image x[c, s] = v_c * prod_t sign_t^(s_t), every row of C gives
    sum_(c, q) K[o, c, q] v_c prod_t sign_t^(p_t + q_t - before_t) = (unit) x
    (K^(sign) v)_o, with K^(sign)[o, c] = sum_q K[o, c, q] prod_t sign_t^(q_t)
    (with periodic padding the wrap mod N_t keeps the sign, N_t being even
    when sign_t = -1).  So a null vector of that small C_out x C_in matrix
    gives C x = 0, and x, x + t(that image) collide: the layer is not
    injective.  Typical cases: kernels summing to zero (edge or difference
    filters), fewer output than input channels.  Returns (v over all n
    inputs, a phrase naming the image) or None.

    >>> from exact_inj.model import ConvSpec
    >>> L = ConvSpec.build([[[1, -2, 1]]], 1, 1, [6], "periodic", "same").layer()
    >>> periodic_null_vector(L)[1]
    'a constant image'
    """
    spec = layer.spec
    if spec.padding != "periodic":
        return None
    d = len(spec.input_size)

    def sign_at(signs, pos) -> int:  # prod_t sign_t^(pos_t)
        return -1 if sum(pos[t] for t in range(d) if signs[t] < 0) % 2 else 1

    choices = [[1, -1] if N % 2 == 0 else [1] for N in spec.input_size]
    for signs in product(*choices):
        M = []
        for taps in spec.taps:
            row = [Fraction(0)] * spec.in_channels
            for c, q, w in taps:
                row[c] += sign_at(signs, q) * w
            M.append(linalg.common_denominator(row)[0])
        basis = linalg.nullspace(M, spec.in_channels)
        if not basis:
            continue
        vc = linalg.primitive(basis[0])
        v = [Fraction(sign_at(signs, pos) * vc[c])
             for c in range(spec.in_channels) for pos in product(*map(range, spec.input_size))]
        what = "a constant image" if all(sg == 1 for sg in signs) else (
            "an image alternating in sign along " + " and ".join(
                ("rows", "columns")[t] if d == 2 else "its length" for t in range(d) if signs[t] < 0))
        return v, what
    return None


def kernel_null_vector(layer: ConvLayer) -> list[Fraction] | None:
    """A non-zero v with C v = 0 read off the kernel alone, for any
    convolution (stride, dilation, transposed, any padding): a vector u of
    channel values with sum_c K[o, c, q] u_c = 0 for every output channel o
    and tap q.  Put u at one input position p (all channels) and 0
    elsewhere: every output reads position p through some taps q (or none),
    and each such tap contributes K[o, :, q] . u = 0, so every row of C is
    orthogonal to it.  Typical case: two input channels (two latent
    coordinates) that enter identically.  Returns v over all n inputs, or None.

    >>> from exact_inj.model import KernelSpec
    >>> L = KernelSpec.build([[[1, 2], [1, 2]]], 2, 1, [3], strides=[2], transposed=True).layer()
    >>> v = kernel_null_vector(L)
    >>> any(v) and all(sum(w * v[c] for c, w in L.sparse_row(i).items()) == 0 for i in range(L.out_dim))
    True
    """
    spec = layer.spec
    if hasattr(spec, "tap_rows"):
        # A KernelSpec: its per-tap integer matrices (also what exact
        # evaluation uses), instead of Fraction sums per tap.
        rows = spec.tap_rows()
    else:
        rows = []
        for o in range(spec.out_channels):
            per_q: dict = {}
            for c, q, w in spec.taps[o]:
                per_q.setdefault(q, [Fraction(0)] * spec.in_channels)[c] += w
            rows.extend(linalg.common_denominator(r)[0] for r in per_q.values())
    if rows and len(rows) >= spec.in_channels:
        # Rank in_channels modulo a prime proves it over Q: no null vector, and
        # the exact null space of a tall integer matrix is not computed.
        p = modrank.primes_with_roots([1])[0]
        if flint.nmod_mat([[v % p for v in r] for r in rows], p).rank() == spec.in_channels:
            return None
    basis = linalg.nullspace(rows, spec.in_channels) if rows else [[1] + [0] * (spec.in_channels - 1)]
    if not basis:
        return None
    u = linalg.primitive(basis[0])
    plane = prod(spec.input_size)
    v = [Fraction(0)] * spec.in_dim
    for c in range(spec.in_channels):
        v[c * plane] = Fraction(u[c])
    return v
