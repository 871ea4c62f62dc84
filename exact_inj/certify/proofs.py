"""What a certificate's evidence is: the proof and witness objects the
checker verifies (docs/certificates.md), as frozen dataclasses.  Their JSON
form is in certify/schema.py.

Evidence kinds
--------------
- :class:`Witness`: rational x != y with N(x) = N(y) (verdict not_injective).
- :class:`TreeProof`: a case-split tree over the rows (verdict injective).
- :class:`StructuralProof`: rows forming [B; -DB] with the bias condition
  (verdict injective, by the sub-layer rule).
- :class:`ConvStructuralProof`: the same rule for a convolution [C; -DC],
  with rank C = n shown by frequencies modulo a prime (verdict injective).
- the network proofs (layer by layer, end to end, carry) and the empty domain.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence, Union

from ..model import Domain, Vector

__all__ = ["Bound", "COLLAPSE", "CORE_BASE", "CarryProof", "ConvStructuralProof", "Core", "EmptyDomainProof", "EndToEndProof", "Evidence", "Flat", "Infeasible", "LayerwiseProof", "LinearRankProof", "PACK_MIN", "REGION", "SPLIT", "RANK_LEAF", "StageProof", "Status", "StructuralProof", "SurdStructuralProof", "Tight", "TreeProof", "Witness"]


class Status(enum.StrEnum):
    """The three answers the engine gives."""

    INJECTIVE = "injective"
    """No two distinct inputs in the domain share an output; a checked proof backs it."""

    NOT_INJECTIVE = "not_injective"
    """Two distinct rational inputs in the domain have exactly equal outputs."""

    UNKNOWN = "unknown"
    """Undecided within the limits; the verdict carries what is known instead."""


@dataclass(frozen=True)
class Witness:
    """Two distinct inputs with identical outputs.

    ``active_rows`` and ``active_rank`` (single layers only) describe the
    midpoint z = (x + y)/2: the rows with w.z + b >= 0 and their exact rank,
    which is < n by docs/theory.md, section 1.  The checker recomputes both.
    """

    x: Vector
    y: Vector
    active_rows: tuple[int, ...] | None = None
    active_rank: int | None = None


@dataclass(frozen=True)
class Core:
    """Rows that cannot all be strictly negative at one point.

    The Motzkin multiplier lambda >= 0, lambda != 0, sum lambda_i w_i = 0,
    sum lambda_i b_i >= 0 is fixed up to scale by its support when the rows'
    transposed null space is one-dimensional; the checker then recomputes it.
    Otherwise ``multiplier`` holds it explicitly (rationals, one per support row).
    """

    support: tuple[int, ...]
    multiplier: tuple[Fraction, ...] | None = None
    domain_support: tuple[int, ...] = ()
    """On a domain, the constraint rows used as the non-strict part
    G z <= h of the system (row numbers m + j); the multiplier, when
    explicit, lists the support's entries and then these."""


# Tree codes, in preorder: r >= 0 splits on row r (first child: r orthogonal to
# v, i.e. r joins P; second child: r strictly negative at z, i.e. r joins N);
# RANK_LEAF closes a node whose P rows have rank n; CORE_BASE - k closes a
# node whose N contains core k.
RANK_LEAF = -1
CORE_BASE = -2
PACK_MIN = 100_000
"""Trees of at least this many codes are written packed (certify/packing.py)."""


@dataclass(frozen=True)
class TreeProof:
    """A case-split tree (docs/theory.md, section 4) over the rows of one layer."""

    cores: tuple[Core, ...]
    tree: Sequence[int]
    """Preorder codes: a tuple, or a compact ``array.array`` when read packed."""

    @property
    def size(self) -> int:
        return len(self.tree) + sum(len(c.support) for c in self.cores)


@dataclass(frozen=True)
class StructuralProof:
    """Pairs (i_k, j_k): rows i_k form an invertible B and w_{j_k} = -d_k w_{i_k}
    with d_k > 0 and d_k b_{i_k} + b_{j_k} >= 0 (docs/theory.md, section 4)."""

    pairs: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return 2 * len(self.pairs)


@dataclass(frozen=True)
class ConvStructuralProof:
    """A convolutional layer [C; -D C] shown injective through its kernel.

    ``channel_pairs`` (o_k, o'_k): output channel o'_k's kernel is -d_k times
    channel o_k's (d_k > 0), with the bias condition d_k b_o + b_o' >= 0.
    With periodic padding whose outputs cover every shift, the operator C of
    the channels o_k is block-circulant; it has full column rank when its
    symbol has rank ``in_channels`` at every frequency modulo the prime
    ``modulus``, using ``roots[t]`` of order ``input_size[t]`` (exact_inj/
    modrank.py).  Then n independent rows of C and their partners form the
    structural rule's [B; -DB] (docs/theory.md, section 8, "Convolutions"), though
    no row is ever named.  The checker verifies the prime, the orders, the
    channel pairs, the bias condition and every frequency itself."""

    channel_pairs: tuple[tuple[int, int], ...]
    modulus: int
    roots: tuple[int, ...]

    @property
    def size(self) -> int:
        return 2 * len(self.channel_pairs) + 1 + len(self.roots)


@dataclass(frozen=True)
class SurdStructuralProof:
    """A ReLU layer followed by a batch normalisation with irrational roots:
    the structural rule on its pulled-out rows (exact_inj/model/normalised.py),
    each bias a quadratic surd, the bias conditions decided exactly
    (certify/surd.py; docs/theory.md, section 12)."""

    pairs: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return 2 * len(self.pairs)


@dataclass(frozen=True)
class EmptyDomainProof:
    """The domain has no points, so nothing in it can collide."""

    @property
    def size(self) -> int:
        return 0


@dataclass(frozen=True)
class LinearRankProof:
    """A linear stage h -> W h + c is injective on its domain: rank [W; E] = n,
    with E the unit rows of the coordinates a box fixes (docs/theory.md, section 8).
    The checker computes the rank itself."""

    @property
    def size(self) -> int:
        return 0


@dataclass(frozen=True)
class StageProof:
    """Stage [start, stop) of a network (linear layers folded into the layer
    that ends the stage) is injective on ``domain``."""

    start: int
    stop: int
    domain: "Domain"
    proof: "Evidence"


@dataclass(frozen=True)
class LayerwiseProof:
    """Every stage is injective on a convex set containing what it receives
    (the paper's Corollary 1, docs/theory.md, section 8).  The checker recomputes the
    stages, the folds, each stage's received set, and each stage's proof."""

    stages: tuple[StageProof, ...]

    @property
    def size(self) -> int:
        return sum(_evidence_size(st.proof) for st in self.stages)


# Region-tree codes of an end-to-end proof, in preorder: SPLIT fixes the next
# neuron (first child active, second inactive); COLLAPSE fixes it inactive only,
# allowed when its pre-activation is identically zero (both closed halves are
# the parent and the output is 0 either way); REGION is a complete pattern;
# k >= 0 closes an empty prefix by ``empty[k]``.
SPLIT, COLLAPSE, REGION = -1, -2, -3


@dataclass(frozen=True)
class Infeasible:
    """Rows a_r.v + c_r <= 0 (r in ``support``) and equations e_q.v + d_q = 0
    that no v satisfies: lam >= 0 and free ``eq`` with
    sum lam_r a_r + sum eq_q e_q = 0 and sum lam_r c_r + sum eq_q d_q > 0."""

    support: tuple[int, ...]
    lam: tuple[Fraction, ...]
    eq: tuple[Fraction, ...] = ()

    @property
    def size(self) -> int:
        return len(self.support) + len(self.eq)


@dataclass(frozen=True)
class Tight:
    """A prefix region lies in a hyperplane: lam >= 0 with sum lam_r a_r = 0 and
    sum lam_r c_r = 0 makes every row with lam_r > 0 tight on the region, and
    one of them has a_r != 0.  On a full-dimensional domain the closed
    full-dimensional pieces alone cover it (their union is closed and what is
    left has empty interior), so such a prefix can be dropped."""

    support: tuple[int, ...]
    lam: tuple[Fraction, ...]

    @property
    def size(self) -> int:
        return len(self.support)


@dataclass(frozen=True)
class Bound:
    """An exact bound on one output of a piece: lam >= 0 over the piece's rows
    with sum lam_r a_r = o (upper) or -o (lower), for the output o.x + o_0;
    then o.x + o_0 <= o_0 - sum lam_r c_r, or >= o_0 + sum lam_r c_r."""

    support: tuple[int, ...]
    lam: tuple[Fraction, ...]

    @property
    def size(self) -> int:
        return len(self.support)


@dataclass(frozen=True)
class Flat:
    """Every point of a pair system has x = y.

    lam > 0 (each entry) and free ``eq`` with sum lam_r a_r + sum eq_q e_q = 0
    and sum lam_r c_r + sum eq_q d_q = 0 show that every support row is tight
    on the system; then ``solve`` (n rows over the support rows followed by
    the equations) with solve . [A_S; E] = [I, -I] and solve . [c_S; d] = 0
    gives x - y = 0 on the affine set they cut out (docs/theory.md, section 8)."""

    support: tuple[int, ...]
    lam: tuple[Fraction, ...]
    eq: tuple[Fraction, ...]
    solve: tuple[tuple[Fraction, ...], ...]

    @property
    def size(self) -> int:
        return len(self.support) + len(self.eq) + sum(len(r) for r in self.solve)


@dataclass(frozen=True)
class EndToEndProof:
    """No two points of the domain collide, pattern pair by pattern pair.

    ``tree`` (codes above) splits the network's ReLU neurons in the order of
    :mod:`exact_inj.model.pieces`; a leaf k >= 0 is closed by ``leaves[k]``: an
    Infeasible prefix is empty, a Tight one lies in a hyperplane (allowed only
    on a full-dimensional domain).  The REGION leaves, numbered in preorder,
    are the pieces; they cover the domain.  ``bounds[i][k]`` is (lower,
    upper) for output k on piece i, each a Bound or None (no bound).  Pieces i
    and j are *separated* when some output's upper bound on one is below its
    lower bound on the other.  ``pairs`` closes every other pair (i, j),
    i <= j, in the order (0,0), (0,1), ..., (1,1), ...: the system x in piece
    i, y in piece j, N_i(x) = N_j(y) over v = (x, y) -- rows of x's piece,
    then rows of y's piece, then the output equations -- is Infeasible or
    Flat.  Pairs (j, i) follow by swapping x and y."""

    tree: tuple[int, ...]
    leaves: tuple[Union[Infeasible, Tight], ...]
    bounds: tuple[tuple[tuple[Union[Bound, None], Union[Bound, None]], ...], ...]
    pairs: tuple[Union[Infeasible, Flat], ...]

    @property
    def size(self) -> int:
        return (len(self.tree) + sum(c.size for c in self.leaves) + sum(c.size for c in self.pairs)
                + sum(b.size for piece in self.bounds for lu in piece for b in lu if b is not None))


@dataclass(frozen=True)
class CarryProof:
    """The input is carried to the outputs: ``units[k][j]`` = (a, b) are the
    units of layer k holding g(x_j) and g(-x_j); layer 0's rows are +e_j and
    -e_j, every later layer's select the previous pair, all with bias 0
    (docs/theory.md, section 4, "Carry proof").  Injective on R^n."""

    units: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def size(self) -> int:
        return sum(2 * len(layer) for layer in self.units)


def _evidence_size(ev) -> int:
    return getattr(ev, "size", 0)


Evidence = Union[Witness, TreeProof, StructuralProof, SurdStructuralProof, ConvStructuralProof, EmptyDomainProof, LinearRankProof, LayerwiseProof,
                 EndToEndProof, CarryProof]
