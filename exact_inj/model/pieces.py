"""Exact activation-pattern prefixes of a network (docs/theory.md, section 8).

The end-to-end route fixes the ReLU neurons of a network one at a time, in a
fixed global order: every neuron of stage 0, then every neuron of stage 1,
and so on (stages as in :mod:`exact_inj.network`: linear layers folded into
the ReLU layer that follows them).  Because a neuron is fixed only after
every neuron of the earlier stages, its pre-activation is an *affine*
function of the input x at that point, and so is each fixed neuron's closed
constraint:

- active:   pre(x) >= 0, written  -pre(x) <= 0, and the neuron outputs pre(x);
- inactive: pre(x) <= 0,                         and the neuron outputs 0.

Rows are pairs (a, c) meaning a.x + c <= 0.  The region of a prefix is the
input domain's rows (Domain.constraints) followed by one row per fixed
neuron, in order.  Regions are CLOSED: both children of a split cover
everything their parent covers, so the complete patterns of a tree cover the
whole domain (an open region would drop the points where a neuron is exactly
zero, and a zero neuron with zero bias would leave nothing at all).

Both the proof search and the checker build rows here; the rows are checked
against exact evaluation in tests/test_end_to_end.py.

>>> from exact_inj.model import Layer, Network
>>> from exact_inj.model import Domain
>>> net = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, -1]], activation="linear")))
>>> root = Walker(net, Domain()).root()
>>> leaf = root.child(True).child(False)           # x >= 0 and -x <= 0
>>> leaf.rows()[0], leaf.output()                  # -x <= 0; the output is x
(((Fraction(-1, 1),), Fraction(0, 1)), [((Fraction(1, 1),), Fraction(0, 1))])
"""

from __future__ import annotations

from fractions import Fraction

from .domain import Domain
from .network import Network
from .stages import stages

Row = tuple[tuple[Fraction, ...], Fraction]
"""(a, c): the constraint a.x + c <= 0, or the affine function a.x + c."""


class Walker:
    """The neuron order and the domain rows of one network on one domain."""

    def __init__(self, net: Network, domain: Domain) -> None:
        self.n = net.input_dim
        self.domain = domain
        st = stages(net)
        self.final = st[-1].layer if st[-1].layer.activation == "linear" else None
        self.relu = [s.layer for s in (st[:-1] if self.final is not None else st)]
        if any(layer.activation != "relu" for layer in self.relu):
            raise ValueError("every stage but the last must end in a ReLU")  # stages() guarantees it
        self.order = [(k, j) for k, layer in enumerate(self.relu) for j in range(layer.out_dim)]
        self.neurons = len(self.order)
        G, h = domain.constraints(self.n)
        self.domain_rows: list[Row] = [(tuple(g), -hh) for g, hh in zip(G, h)]

    def root(self) -> "Prefix":
        eye = tuple(
            (tuple(Fraction(int(i == j)) for j in range(self.n)), Fraction(0)) for i in range(self.n)
        )
        return Prefix(self, 0, (), eye, (), ())


class Prefix:
    """The first ``pos`` neurons of the order fixed, with their closed rows.

    ``hin`` is the current stage's input as affine functions of x (all of the
    earlier stages' neurons are fixed, so it is affine); ``hout`` holds the
    outputs of this stage's neurons fixed so far.
    """

    __slots__ = ("walker", "pos", "neuron_rows", "hin", "hout", "pattern")

    def __init__(self, walker: Walker, pos: int, neuron_rows: tuple, hin: tuple, hout: tuple, pattern: tuple):
        self.walker = walker
        self.pos = pos
        self.neuron_rows = neuron_rows
        self.hin = hin
        self.hout = hout
        self.pattern = pattern

    @property
    def complete(self) -> bool:
        return self.pos == self.walker.neurons

    def next_pre(self) -> Row:
        """The next neuron's pre-activation, an affine function of x."""
        k, j = self.walker.order[self.pos]
        layer = self.walker.relu[k]
        return _affine(layer.weight[j], layer.bias[j], self.hin, self.walker.n)

    def child(self, active: bool) -> "Prefix":
        """Fix the next neuron: active (pre >= 0, output pre) or inactive (pre <= 0, output 0)."""
        a, c = self.next_pre()
        n = self.walker.n
        if active:
            row = (tuple(-v for v in a), -c)
            out = (a, c)
        else:
            row = (a, c)
            out = ((Fraction(0),) * n, Fraction(0))
        k, j = self.walker.order[self.pos]
        hout = self.hout + (out,)
        hin = self.hin
        if j == self.walker.relu[k].out_dim - 1:  # stage k complete: its outputs feed stage k + 1
            hin, hout = hout, ()
        return Prefix(self.walker, self.pos + 1, self.neuron_rows + (row,), hin, hout, self.pattern + (active,))

    def rows(self) -> list[Row]:
        """The region's rows: the domain's, then one per fixed neuron."""
        return self.walker.domain_rows + list(self.neuron_rows)

    def output(self) -> list[Row]:
        """The network's output as affine functions of x (complete patterns only)."""
        if not self.complete:
            raise ValueError("the output is affine only once every neuron is fixed")
        final = self.walker.final
        if final is None:
            return list(self.hin)
        return [_affine(w, b, self.hin, self.walker.n) for w, b in zip(final.weight, final.bias)]


def _affine(w, b: Fraction, hin, n: int) -> Row:
    """w . h + b with h = hin(x) affine: the coefficients and the constant."""
    coef = [Fraction(0)] * n
    const = b
    for wi, (hc, h0) in zip(w, hin):
        if wi:
            const += wi * h0
            for t, v in enumerate(hc):
                if v:
                    coef[t] += wi * v
    return tuple(coef), const


def pair_system(rows_i: list[Row], out_i: list[Row], rows_j: list[Row], out_j: list[Row], n: int):
    """The pair system of pieces i and j over v = (x, y): the rows of x's piece,
    then y's, and the equations N_i(x) - N_j(y) = 0 (docs/theory.md, section 8)."""
    eqs = [(a + tuple(-v for v in b), c - d) for (a, c), (b, d) in zip(out_i, out_j)]
    return PairRows(rows_i, rows_j, n), eqs


class PairRows:
    """The inequality rows of a pair system, built on demand: a certificate
    touches only its support, so padding every row of both pieces to 2n
    coordinates for every pair would dominate the check."""

    __slots__ = ("rows_i", "rows_j", "zero")

    def __init__(self, rows_i: list[Row], rows_j: list[Row], n: int):
        self.rows_i, self.rows_j, self.zero = rows_i, rows_j, (Fraction(0),) * n

    def __len__(self) -> int:
        return len(self.rows_i) + len(self.rows_j)

    def __getitem__(self, r: int) -> Row:
        if not 0 <= r < len(self):
            raise IndexError(r)
        if r < len(self.rows_i):
            a, c = self.rows_i[r]
            return a + self.zero, c
        a, c = self.rows_j[r - len(self.rows_i)]
        return self.zero + a, c


def combine(rows: list[Row], eqs: list[Row], support, lam, eq, dim: int, zero=None):
    """sum lam_r rows_r + sum eq_q eqs_q, as (coefficients, constant).

    ``zero`` fixes the exact number type (Fraction by default; the checker
    passes python-flint's fmpq, about 20x faster on these small sums)."""
    zero = Fraction(0) if zero is None else zero
    coef = [zero] * dim
    const = zero
    for r, lv in zip(support, lam):
        a, c = rows[r]
        for t, v in enumerate(a):
            if v:
                coef[t] += lv * v
        const += lv * c
    for (e, d), mu in zip(eqs, eq):
        if mu:
            for t, v in enumerate(e):
                if v:
                    coef[t] += mu * v
            const += mu * d
    return coef, const


def separated(box_i, box_j) -> bool:
    """Two pieces cannot collide: on some output, one piece's upper bound is
    strictly below the other's lower bound (a box is a (lower, upper) pair
    per output, None where there is no bound)."""
    return any((ui is not None and lj is not None and ui < lj) or (uj is not None and li is not None and uj < li)
               for (li, ui), (lj, uj) in zip(box_i, box_j))
