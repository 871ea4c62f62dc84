"""Checks of end-to-end network proofs: the piece tree is replayed from the
certificate's own network, every empty leaf and every pair of pieces is closed
by its own exact evidence (Farkas multipliers, tight rows, bounds, flat
solves; docs/theory.md, section 8).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import replace

import flint

from ..exact import linalg
from ..model import Domain, Network
from ..numbers import limits, over_limit
from ..model.pieces import Walker, combine, pair_system
from .base import Invalid, num
from .schema import COLLAPSE, REGION, SPLIT, Bound, EndToEndProof, Flat, Infeasible, Tight

__all__ = ["bound_value", "check_end_to_end", "open_pairs", "verify_flat", "verify_infeasible", "verify_tight"]


def verify_infeasible(rows, eqs, cert: Infeasible, zero=None) -> bool:
    """lam >= 0 and free eq with sum lam a + sum eq e = 0 and constant > 0."""
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


def check_end_to_end(net: Network, dom: Domain, proof: EndToEndProof) -> str:
    """Replay the piece tree, check each empty leaf, then close every pair of pieces.

    Coverage is recomputed here: the neuron order, every row and every
    affine output map come from the certificate's own network
    (exact_inj.model.pieces); a SPLIT's two closed halves cover their parent, a
    COLLAPSE is accepted only for a pre-activation that is identically 0,
    and the pairs must be exactly (i, j) for i <= j over the pieces found.
    """
    w = Walker(net, dom)
    full = dom.kind != "box" or all(lo < hi for lo, hi in zip(dom.lower, dom.upper))
    tokens = proof.tree
    pos = 0
    pieces = []
    stack = [w.root()]
    while stack:
        node = stack.pop()
        if pos >= len(tokens):
            raise Invalid("the piece tree ends before every node is closed")
        tok = tokens[pos]
        pos += 1
        if tok == REGION:
            if not node.complete:
                raise Invalid(f"tree code {pos - 1}: a piece must fix every neuron ({node.pos} of {w.neurons} fixed)")
            pieces.append(node)
        elif tok in (SPLIT, COLLAPSE):
            if node.complete:
                raise Invalid(f"tree code {pos - 1}: no neuron is left to split")
            if tok == COLLAPSE:
                a, c = node.next_pre()
                if any(a) or c != 0:
                    raise Invalid(f"tree code {pos - 1}: collapsing neuron {node.pos} needs a pre-activation "
                                   "that is identically 0")
                stack.append(node.child(False))
            else:
                stack.append(node.child(False))
                stack.append(node.child(True))
        elif 0 <= tok < len(proof.leaves):
            leaf = proof.leaves[tok]
            if isinstance(leaf, Tight):
                if not full:
                    raise Invalid(f"tree code {pos - 1}: a lower-dimensional prefix may be dropped only on a "
                                   f"full-dimensional domain, and {dom.describe()} is not one")
                if not verify_tight(node.rows(), leaf):
                    raise Invalid(f"tree code {pos - 1}: leaf certificate {tok} does not put its prefix in a "
                                   "hyperplane")
            elif not (isinstance(leaf, Infeasible) and verify_infeasible(node.rows(), [], leaf)):
                raise Invalid(f"tree code {pos - 1}: leaf certificate {tok} does not close its prefix")
        else:
            raise Invalid(f"tree code {pos - 1} = {num(tok)} is not a valid code")
    if pos != len(tokens):
        raise Invalid(f"the piece tree has {len(tokens) - pos} codes after its last node")
    R = len(pieces)
    if R > limits().max_pieces:
        # open_pairs holds an R-bit mask per piece and output (docs/cli.md, Limits).
        raise Invalid(f"cannot be checked: {over_limit('max_pieces', f'{R} pieces')}")
    n = w.n
    # From here on in python-flint rationals: each piece's rows are converted
    # once and reused by every pair it is in (exact, and ~20x faster than Fraction).
    zero = flint.fmpq(0)
    rows = [_q_rows(p.rows()) for p in pieces]
    outs = [_q_rows(p.output()) for p in pieces]
    if len(proof.bounds) != R:
        raise Invalid(f"{R} pieces need {R} lists of output bounds, the proof has {len(proof.bounds)}")
    box = [_piece_box(rows[i], outs[i], _q_bounds(proof.bounds[i]), i, zero) for i in range(R)]
    k = 0
    # Every pair i <= j that the bounds do not separate, in order, each closed
    # by the next listed certificate; the others are separated (counted).
    for i, j in open_pairs(box):
        if k >= len(proof.pairs):
            raise Invalid(f"pair ({i}, {j}) has no certificate (the proof has {len(proof.pairs)})")
        ineq, eqs = pair_system(rows[i], outs[i], rows[j], outs[j], n)
        cert = _q_comb(proof.pairs[k])
        ok = (verify_flat(ineq, eqs, cert, n, zero) if isinstance(cert, Flat)
              else verify_infeasible(ineq, eqs, cert, zero) if isinstance(cert, Infeasible) else False)
        if not ok:
            raise Invalid(f"pair ({i}, {j}): its certificate does not close it")
        k += 1
    if k != len(proof.pairs):
        raise Invalid(f"the proof has {len(proof.pairs) - k} pair certificates more than the pairs it must close")
    n_separated = R * (R + 1) // 2 - k
    k += n_separated
    return (f"end-to-end proof: {R} pieces cover {dom.describe()}, and none of the {k} pairs of pieces "
            f"holds two distinct points with equal outputs ({n_separated} pairs separated by output bounds)")


def open_pairs(box):
    """The pairs (i, j), i <= j, of pieces that are NOT separated by their
    output boxes, in the order (0, 0), (0, 1), ..., (1, 1), ... (the same
    pairs as exact_inj.model.pieces.separated, which the engine uses).

    Pieces i and j are separated when on some output u_i < l_j or u_j < l_i.
    Instead of testing every pair on every output (R(R+1)/2 x p comparisons),
    each output sorts the pieces by lower and by upper bound once; the pieces
    j with l_j > u_i are then a suffix of the first order and those with
    u_j < l_i a prefix of the second, and they are collected as bit masks.
    Cost: p sorts and R p binary searches, plus R p unions of R-bit masks
    (R/64 machine words each): for R <= max_pieces a small multiple of the
    R p bounds the certificate lists (docs/cli.md, Limits).

    >>> from fractions import Fraction as F
    >>> list(open_pairs([[(F(0), F(1))], [(F(2), F(3))], [(F(1), None)]]))
    [(0, 0), (0, 2), (1, 1), (1, 2), (2, 2)]
    """
    R = len(box)
    if R == 0:
        return
    p = len(box[0])
    sep = [0] * R
    for t in range(p):
        lows = sorted((box[j][t][0], j) for j in range(R) if box[j][t][0] is not None)
        ups = sorted((box[j][t][1], j) for j in range(R) if box[j][t][1] is not None)
        lvals = [v for v, _ in lows]
        uvals = [v for v, _ in ups]
        suffix = [0] * (len(lows) + 1)  # suffix[k]: the pieces lows[k:]
        for k in range(len(lows) - 1, -1, -1):
            suffix[k] = suffix[k + 1] | (1 << lows[k][1])
        prefix = [0] * (len(ups) + 1)  # prefix[k]: the pieces ups[:k]
        for k, (_, j) in enumerate(ups):
            prefix[k + 1] = prefix[k] | (1 << j)
        for i in range(R):
            lo, up = box[i][t]
            if up is not None:
                sep[i] |= suffix[bisect_right(lvals, up)]  # l_j > u_i
            if lo is not None:
                sep[i] |= prefix[bisect_left(uvals, lo)]   # u_j < l_i
    full = (1 << R) - 1
    for i in range(R):
        todo = (full ^ ((1 << i) - 1)) & ~sep[i]  # j >= i, not separated from i
        while todo:
            low = todo & -todo
            yield i, low.bit_length() - 1
            todo ^= low


def verify_tight(rows, cert: Tight) -> bool:
    """lam >= 0, sum lam a = 0, sum lam c = 0, and lam_r > 0 on a row with a_r != 0."""
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
        raise Invalid(f"piece {i} has {len(outs)} outputs but {len(bounds)} bound pairs")
    box = []
    for k, (lu, out) in enumerate(zip(bounds, outs)):
        if not isinstance(lu, (tuple, list)) or len(lu) != 2:
            raise Invalid(f"piece {i}, output {k}: bounds must be a (lower, upper) pair")
        vals = []
        for b, upper in zip(lu, (False, True)):
            if b is None:
                vals.append(None)
                continue
            v = bound_value(rows, out, b, upper, zero) if isinstance(b, Bound) else None
            if v is None:
                raise Invalid(f"piece {i}, output {k}: the {'upper' if upper else 'lower'} bound's "
                               "certificate is not valid")
            vals.append(v)
        box.append(tuple(vals))
    return box


def _q_rows(rows):
    return [(tuple(linalg.to_fmpq(v) for v in a), linalg.to_fmpq(c)) for a, c in rows]


def _q_comb(c):
    """A pair or bound certificate with its numbers as fmpq (same values)."""
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
