"""Differential tests on input domains: the engine against the reference.

``exact_inj.verify(..., domain=...)`` decides injectivity on the nonnegative
orthant or on a box (docs/theory.md, sections 1b, 3 and 4).  tests/reference.py decides
the same question independently (it never imports exact_inj):
``reference_decide_on`` by section 3's domain reduction over [W; G] with
Fourier-Motzkin, and, for n <= 2, ``reference_injective_box_cells`` by
section 1b's pointwise criterion on open cells.

For every case of a seeded random mix (n = 1..3, m <= 8; integer and rational
entries; with and without bias; zero, repeated, parallel and rank-deficient
rows) on a random domain (the orthant; boxes around the origin, far from it,
tiny boxes around one point, thin boxes, boxes with degenerate sides, boxes
spanned by a collision on R^n and empty boxes) the engine must
- return a decided verdict ("unknown" on instances this small is a failure,
  docs/theory.md, section 6),
- agree with the reference,
- emit a certificate about the requested network and domain that
  exact_inj.check accepts,
- for "not_injective", give x != y, both inside the domain, that collide
  under the reference's own exact evaluation.

The mix is asserted: at least 30% of the cases are injective on their domain
and at least 20% have a different answer on the domain than on R^n (theory
section 1b: "the instant rules of R^n do not carry over"), so that a
generator change cannot quietly turn this into a test of R^n again.

A certificate is also checked against a different domain on which the
answer differs (confirmed by the reference): exact_inj.check must reject it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from reference import (
    as_fraction_matrix,
    box_constraints,
    in_domain,
    is_collision,
    is_collision_on,
    orthant_constraints,
    rank,
    reference_decide,
    reference_decide_box,
    reference_decide_on,
    reference_injective,
    reference_injective_box_cells,
    reference_injective_on,
    solve_square,
)
from test_differential import CI_SEED as R_CI_SEED, _bias, _gauss_rat, _gauss_rows, _structural, generate_layers

F = Fraction
TIME_LIMIT = 20  # seconds per instance for the engine
MILP_EVERY = 5  # every 5th case also runs the engine's default MILP witness search

CI_SEED, CI_COUNT = 20250611, 200
FULL_SEED, FULL_COUNT = 31_415_926, 1200

MIN_INJECTIVE = 0.30
MIN_DIFFERS = 0.20


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DCase:
    layer_kind: str
    domain_kind: str
    W: tuple  # tuple of tuples of Fraction
    b: tuple
    lower: tuple | None  # a box's bounds; None for the orthant
    upper: tuple | None

    @property
    def n(self) -> int:
        return len(self.W[0])

    @property
    def m(self) -> int:
        return len(self.W)

    @property
    def is_box(self) -> bool:
        return self.lower is not None

    def constraints(self):
        """(G, h) built by the reference, independently of exact_inj.Domain."""
        if self.is_box:
            return box_constraints(self.lower, self.upper)
        return orthant_constraints(self.n)

    def domain(self):
        from exact_inj.model.domain import Domain

        return Domain.box(self.lower, self.upper) if self.is_box else Domain.orthant()

    def cell_bounds(self):
        if self.is_box:
            return list(self.lower), list(self.upper)
        return [F(0)] * self.n, [None] * self.n

    def repro(self) -> str:
        Ws = [[str(v) for v in r] for r in self.W]
        bs = [str(v) for v in self.b]
        if self.is_box:
            dom = f"Domain.box({[str(v) for v in self.lower]}, {[str(v) for v in self.upper]})"
        else:
            dom = "Domain.orthant()"
        return f"Layer.from_rows({Ws}, {bs}), domain={dom}  # {self.layer_kind}/{self.domain_kind}"


def _rat(rng, scale, max_den):
    return _gauss_rat(rng, scale, max_den)


def _pos(rng, scale, max_den=4):
    """A positive rational of size about scale."""
    den = int(rng.integers(1, max_den + 1))
    return F(int(rng.integers(1, max(2, int(scale * den) + 1))), den)


# ---- layers (m <= 8) ------------------------------------------------------


def layer_gauss_int(rng):
    n = int(rng.integers(1, 4))
    m = int(rng.integers(n, 9))
    W = _gauss_rows(rng, m, n, 3.0, 1)
    b = [F(0)] * m if rng.random() < 0.4 else [F(int(round(rng.normal() * 2))) for _ in range(m)]
    return W, b


def layer_gauss_rat(rng):
    n = int(rng.integers(1, 4))
    m = int(rng.integers(max(n, 2), 9))
    return _gauss_rows(rng, m, n, 3.0, 6), _bias(rng, m, str(rng.choice(["zero", "small", "sparse", "full"])))


def layer_few_rows(rng):
    # m < 2n: never injective on R^n (docs/theory.md, section 7), often injective on a box.
    n = int(rng.integers(1, 4))
    m = int(rng.integers(1, 2 * n))
    return _gauss_rows(rng, m, n, 3.0, int(rng.integers(1, 4))), _bias(rng, m, str(rng.choice(["zero", "sparse", "full"])))


def layer_many_rows(rng):
    n = int(rng.choice([1, 2, 2, 3]))
    m = int(rng.integers(2 * n, 9))
    return _gauss_rows(rng, m, n, 4.0, int(rng.integers(1, 4))), _bias(rng, m, str(rng.choice(["zero", "sparse", "small"])))


def layer_rank_deficient(rng):
    # rank W < n: never injective on R^n; injective on a box only through the
    # box's own sides (a degenerate side, docs/theory.md, section 1b).
    n = int(rng.integers(1, 4))
    m = int(rng.integers(1, 9))
    r = int(rng.integers(0, n))
    U = _gauss_rows(rng, m, r, 2.0, 1) if r else [[] for _ in range(m)]
    V = _gauss_rows(rng, r, n, 2.0, 2)
    W = [[sum((U[i][k] * V[k][j] for k in range(r)), F(0)) for j in range(n)] for i in range(m)]
    return W, _bias(rng, m, str(rng.choice(["zero", "sparse", "full"])))


def layer_degenerate(rng):
    n = int(rng.integers(1, 4))
    m = int(rng.integers(max(1, n - 1), 7))
    W = _gauss_rows(rng, m, n, 3.0, 2)
    b = _bias(rng, m, str(rng.choice(["zero", "sparse", "full"])))
    for _ in range(int(rng.integers(1, 3))):
        if len(W) >= 8:
            break
        op = rng.choice(["zero", "dup", "parallel"])
        i = int(rng.integers(len(W)))
        if op == "zero":
            W.append([F(0)] * n)
            b.append(rng.choice([F(0), F(1), F(-1)]))
        elif op == "dup":
            W.append(list(W[i]))
            b.append(b[i] if rng.random() < 0.5 else _rat(rng, 1.0, 2))
        else:
            c = rng.choice([F(1, 2), F(2), F(-1), F(-3)])
            W.append([c * v for v in W[i]])
            b.append(c * b[i] if rng.random() < 0.5 else _rat(rng, 1.0, 2))
    return W, b


def layer_structural(rng):
    n = int(rng.integers(1, 4))
    W, b = _structural(rng, n, str(rng.choice(["ok", "edge", "zero", "broken", "broken"])))
    while len(W) < 8 and rng.random() < 0.3:
        W.append([_rat(rng, 2.0, 2) for _ in range(n)])
        b.append(_rat(rng, 2.0, 2))
    return W, b


def layer_magnitude(rng):
    # Another family's layer with rows (and their biases) scaled by 10^k,
    # k in -9..9: the same layer, but numbers across 18 orders of magnitude.
    names = [k for k in LAYERS if k != "magnitude"]
    W, b = LAYERS[names[int(rng.integers(len(names)))]][0](rng)
    for i in range(len(W)):
        s = F(10) ** int(rng.integers(-9, 10))
        W[i] = [s * v for v in W[i]]
        b[i] = s * b[i]
    return W, b


LAYERS = {
    "gauss_int": (layer_gauss_int, 14),
    "gauss_rat": (layer_gauss_rat, 14),
    "few_rows": (layer_few_rows, 16),
    "many_rows": (layer_many_rows, 14),
    "rank_deficient": (layer_rank_deficient, 12),
    "degenerate": (layer_degenerate, 14),
    "structural": (layer_structural, 10),
    "magnitude": (layer_magnitude, 10),
}


# ---- domains --------------------------------------------------------------


def _box_origin(rng, n, W, b):
    # Contains the origin, sometimes on its boundary; sizes from 1/10 to 1000.
    R = F(rng.choice([F(1, 10), F(1), F(3), F(10), F(1000)]))
    lo = [F(0) if rng.random() < 0.2 else -R * _pos(rng, 3) / 3 for _ in range(n)]
    up = [F(0) if rng.random() < 0.2 else R * _pos(rng, 3) / 3 for _ in range(n)]
    return lo, up


def _box_far(rng, n, W, b):
    k = int(rng.integers(2, 7))
    c = [F(int(rng.choice([-1, 1]))) * F(10) ** k * _pos(rng, 3, 3) for _ in range(n)]
    half = [rng.choice([F(1, 100), F(1), F(10) ** k / 2, F(10) ** (k + 1)]) for _ in range(n)]
    return [ci - hi for ci, hi in zip(c, half)], [ci + hi for ci, hi in zip(c, half)]


def _box_cell(rng, n, W, b):
    # A small box around a random point: usually inside few linear pieces.
    z = [_rat(rng, 3.0, 4) for _ in range(n)]
    r = rng.choice([F(1, 2), F(1, 10), F(1, 1000)])
    return [v - r for v in z], [v + r for v in z]


def _box_thin(rng, n, W, b):
    lo, up = (_box_origin if rng.random() < 0.5 else _box_cell)(rng, n, W, b)
    k = int(rng.integers(n))
    up[k] = lo[k] + F(1, 10 ** int(rng.integers(3, 10)))
    return lo, up


def _box_degenerate(rng, n, W, b):
    lo, up = (_box_origin if rng.random() < 0.5 else _box_cell)(rng, n, W, b)
    ks = [k for k in range(n) if rng.random() < 0.5] or [int(rng.integers(n))]
    for k in ks:
        v = lo[k] if rng.random() < 0.5 else up[k]
        lo[k] = up[k] = v
    return lo, up


def _box_witness(rng, n, W, b):
    # The bounding box of an R^n collision, which puts both points on the
    # box's boundary; then grown, kept, or cut so one point falls out.  (The
    # reference's collision lies in an open set of collisions, so the cut box
    # still has some: this family is about collisions on a box's boundary.)
    inj, wit = reference_decide(W, b)
    if inj:
        return _box_origin(rng, n, W, b)
    x, y = wit
    lo = [min(p, q) for p, q in zip(x, y)]
    up = [max(p, q) for p, q in zip(x, y)]
    mode = rng.choice(["keep", "grow", "cut"])
    if mode == "grow":
        g = rng.choice([F(1, 10**6), F(1, 3), F(5)])
        lo, up = [v - g for v in lo], [v + g for v in up]
    elif mode == "cut":
        ks = [k for k in range(n) if lo[k] < up[k]]
        if ks:
            k = ks[int(rng.integers(len(ks)))]
            w = up[k] - lo[k]
            share = rng.choice([F(1, 10**int(rng.integers(1, 7))), F(1, 2), F(9, 10)])
            if rng.random() < 0.5:
                lo[k] += w * share
            else:
                up[k] -= w * share
    return lo, up


def _arrangement_vertex(rng, n, W, b):
    """A point where n independent rows of the layer are all zero, or None."""
    for _ in range(6):
        S = sorted(rng.choice(len(W), size=n, replace=False)) if len(W) >= n else None
        if S is None:
            return None
        A = [list(W[i]) for i in S]
        if rank(A, n) == n:
            return solve_square(A, [-b[i] for i in S])
    return None


def _box_aligned(rng, n, W, b):
    # Sides through vertices of the layer's arrangement: a box corner where n
    # rows vanish, and sides lying in the rows' own hyperplanes.
    p = _arrangement_vertex(rng, n, W, b)
    if p is None:
        return _box_cell(rng, n, W, b)
    q = _arrangement_vertex(rng, n, W, b)
    if q is None or q == p or rng.random() < 0.4:
        q = [v + rng.choice([F(0), F(1, 1000), F(1), F(-1), F(5)]) for v in p]
    return [min(u, v) for u, v in zip(p, q)], [max(u, v) for u, v in zip(p, q)]


def _box_empty(rng, n, W, b):
    lo, up = _box_origin(rng, n, W, b)
    k = int(rng.integers(n))
    lo[k], up[k] = up[k] + F(1, 10 ** int(rng.integers(0, 10))), lo[k]
    return lo, up


DOMAINS = {
    "orthant": (None, 16),
    "origin": (_box_origin, 16),
    "far": (_box_far, 10),
    "cell": (_box_cell, 16),
    "thin": (_box_thin, 10),
    "degenerate": (_box_degenerate, 12),
    "witness": (_box_witness, 14),
    "aligned": (_box_aligned, 14),
    "empty": (_box_empty, 4),
}


def _pick(rng, table):
    names = list(table)
    w = np.array([table[k][1] for k in names], dtype=float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def generate_cases(seed: int, count: int) -> list[DCase]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        lk = _pick(rng, LAYERS)
        W, b = LAYERS[lk][0](rng)
        W = as_fraction_matrix(W)
        b = [F(v) for v in b]
        n = len(W[0])
        dk = _pick(rng, DOMAINS)
        if dk == "orthant":
            lo = up = None
        else:
            lo, up = DOMAINS[dk][0](rng, n, W, b)
            lo, up = tuple(lo), tuple(up)
        out.append(DCase(lk, dk, tuple(tuple(r) for r in W), tuple(b), lo, up))
    return out


# --------------------------------------------------------------------------
# reference answers and the mix
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    on_domain: bool
    on_reals: bool
    witness: tuple | None
    seconds: float


_REF_CACHE: dict = {}


def reference_answers(seed, count):
    key = (seed, count)
    if key not in _REF_CACHE:
        cases = generate_cases(seed, count)
        refs = []
        for c in cases:
            t0 = time.perf_counter()
            G, h = c.constraints()
            inj, wit = reference_decide_on(c.W, c.b, G, h, c.n)
            refs.append(Ref(inj, reference_injective(c.W, c.b), wit, time.perf_counter() - t0))
        _REF_CACHE[key] = (cases, refs)
    return _REF_CACHE[key]


def mix_report(cases, refs) -> tuple[str, float, float]:
    total = len(cases)
    inj = sum(r.on_domain for r in refs)
    differs = sum(r.on_domain != r.on_reals for r in refs)
    lines = [
        f"{total} cases: injective on the domain {inj} ({inj / total:.1%}), "
        f"answer differs from R^n {differs} ({differs / total:.1%}), "
        f"injective on R^n {sum(r.on_reals for r in refs)}, reference {sum(r.seconds for r in refs):.1f} s"
    ]
    by_n = Counter(c.n for c in cases)
    lines.append("by n: " + ", ".join(f"n={k}: {by_n[k]}" for k in sorted(by_n)))
    for attr, title in (("layer_kind", "layer"), ("domain_kind", "domain")):
        tot = Counter(getattr(c, attr) for c in cases)
        ij = Counter(getattr(c, attr) for c, r in zip(cases, refs) if r.on_domain)
        df = Counter(getattr(c, attr) for c, r in zip(cases, refs) if r.on_domain != r.on_reals)
        for k in sorted(tot):
            lines.append(f"  {title} {k:15s} {tot[k]:5d}  injective {ij[k]:5d}  differs {df[k]:5d}")
    return "\n".join(lines), inj / total, differs / total


def check_mix(seed, count):
    cases, refs = reference_answers(seed, count)
    report, inj_frac, diff_frac = mix_report(cases, refs)
    print("\n" + report)
    assert inj_frac >= MIN_INJECTIVE, "too few cases injective on their domain\n" + report
    assert diff_frac >= MIN_DIFFERS, "too few cases whose answer on the domain differs from R^n\n" + report
    # Injective on R^n implies injective on every subset: the only possible
    # difference is "not injective on R^n, injective on the domain".
    assert all(r.on_domain for r in refs if r.on_reals), report
    # Every domain family must contribute both answers (except the empty box).
    for dk in DOMAINS:
        got = {r.on_domain for c, r in zip(cases, refs) if c.domain_kind == dk}
        assert got == ({True} if dk == "empty" else {True, False}), f"domain family {dk} gave only {got}\n" + report
    assert {c.n for c in cases} == {1, 2, 3}


# --------------------------------------------------------------------------
# the engine comparison
# --------------------------------------------------------------------------


def _net(W, b):
    from exact_inj.model import Layer, Network

    return Network((Layer.from_rows([list(r) for r in W], list(b)),))


_ENGINE_CACHE: dict = {}


def engine_run(engine, seed, count):
    """(failures, stats, verdicts); verdicts[i] is None where verify raised."""
    key = (seed, count)
    if key in _ENGINE_CACHE:
        return _ENGINE_CACHE[key]
    cases, refs = reference_answers(seed, count)
    failures, stats, verdicts = [], Counter(), []
    slowest = 0.0
    t_all = time.perf_counter()
    for idx, (c, ref) in enumerate(zip(cases, refs)):
        net, dom = _net(c.W, c.b), c.domain()
        milp = "highs" if idx % MILP_EVERY == 0 else "none"
        t0 = time.perf_counter()
        try:
            v = engine.verify(net, time_limit=TIME_LIMIT, milp=milp, domain=dom)
        except Exception as exc:
            failures.append(f"verify raised {exc!r}: {c.repro()}")
            verdicts.append(None)
            continue
        slowest = max(slowest, time.perf_counter() - t0)
        verdicts.append(v)
        status = v.status.value
        stats[status] += 1
        expected = "injective" if ref.on_domain else "not_injective"
        if status != expected:
            failures.append(f"engine said {status}, reference says {expected} (milp={milp}): {c.repro()}")
            continue
        cert = v.certificate
        if cert is None or cert.domain != dom or cert.network != net:
            failures.append(f"certificate missing or about another network/domain: {c.repro()}")
            continue
        stats[type(cert.evidence).__name__] += 1
        try:
            res = engine.check(cert)
        except Exception as exc:
            failures.append(f"check raised {exc!r} on a {status} certificate: {c.repro()}")
            continue
        if not res.valid:
            failures.append(f"certificate rejected ({res.reason}): {c.repro()}")
        if status == "not_injective":
            w = v.witness
            G, h = c.constraints()
            if w is None or not (in_domain(G, h, w.x) and in_domain(G, h, w.y)):
                failures.append(f"witness {w!r} is not inside the domain: {c.repro()}")
            elif not is_collision(c.W, c.b, w.x, w.y):
                failures.append(f"witness {w!r} does not collide under exact evaluation: {c.repro()}")
    stats["slowest_s"] = round(slowest, 3)
    stats["engine_s"] = round(time.perf_counter() - t_all, 1)
    _ENGINE_CACHE[key] = (failures, stats, verdicts)
    return _ENGINE_CACHE[key]


def _run_differential(engine, seed, count):
    cases, refs = reference_answers(seed, count)
    report, _, _ = mix_report(cases, refs)
    failures, stats, _ = engine_run(engine, seed, count)
    print(f"\n{report}\nengine on {count} cases: {dict(stats)}")
    assert not failures, f"{len(failures)} failures, first ones:\n" + "\n".join(failures[:15])
    inj = sum(r.on_domain for r in refs)
    assert stats["injective"] == inj and stats["not_injective"] == count - inj


# ---- a certificate checked against another domain -------------------------


def _other_domains(case: DCase, seed: int):
    """Candidate other domains for the case's layer: boxes from every box
    family (three rounds), the orthant and R^n.  Each is (family, lower,
    upper) with None for an unbounded side, so R^n is all None and the
    orthant is lower 0, upper None.  Those two come first and do not end the
    search; the first box with the other answer does."""
    rng = np.random.default_rng(seed)
    W, b = [list(r) for r in case.W], list(case.b)
    n = case.n
    yield "orthant", (F(0),) * n, (None,) * n
    yield "reals", (None,) * n, (None,) * n
    for _ in range(3):
        for dk, (gen, _) in DOMAINS.items():
            if gen is not None:
                lo, up = gen(rng, n, W, b)
                yield dk, tuple(lo), tuple(up)


def _engine_domain(lo, up):
    from exact_inj.model.domain import Domain

    if all(v is None for v in lo + up):
        return Domain.reals()
    if all(v is None for v in up):
        assert all(v == 0 for v in lo)
        return Domain.orthant()
    return Domain.box(lo, up)


def _reference_on(W, b, lo, up) -> bool:
    """The reference's answer on a box with None = unbounded (so also R^n and the orthant)."""
    if all(v is None for v in lo + up):
        return reference_injective(W, b)  # the R^n procedure itself
    return reference_decide_box(W, b, list(lo), list(up))[0]


def mutation_results(engine, seed, count, limit_per_direction):
    """Move each certificate to another domain where the reference's answer
    differs (a box, or the orthant / R^n); exact_inj.check must reject every
    one.  The verdict is right for the old domain and wrong for the new one,
    so accepting it would be unsound: the mutation is invalid by an
    independent decision, not by assumption (docs/theory.md, section 6)."""
    cases, refs = reference_answers(seed, count)
    _, _, verdicts = engine_run(engine, seed, count)
    accepted, tried = [], Counter()
    for idx, (c, ref, v) in enumerate(zip(cases, refs, verdicts)):
        if v is None or v.certificate is None:
            continue
        if v.status.value != ("injective" if ref.on_domain else "not_injective"):
            continue  # already a differential failure
        direction = "injective cert -> non-injective box" if ref.on_domain else "witness -> injective box"
        if tried[direction] >= limit_per_direction:
            continue
        here = c.cell_bounds()
        for dk, lo, up in _other_domains(c, seed * 7919 + idx):
            if (list(lo), list(up)) == [list(here[0]), list(here[1])]:
                continue
            other = _reference_on(c.W, c.b, lo, up)
            if other == ref.on_domain:
                continue
            if c.n <= 2:  # confirm by the second reference procedure
                assert reference_injective_box_cells(c.W, c.b, list(lo), list(up)) is other, c.repro()
            target = _engine_domain(lo, up)
            mutated = dataclasses.replace(v.certificate, domain=target)
            res = engine.check(mutated)
            if target.kind == "box":
                tried[direction] += 1
            else:
                tried[f"other kind: {direction}"] += 1
            tried[f"{type(v.certificate.evidence).__name__} ({c.domain_kind} -> {dk})"] += 1
            if res.valid:
                accepted.append(f"check accepted a {v.status.value} certificate moved to {target.describe()} "
                                f"(reference: {'injective' if other else 'not injective'} there): {c.repro()}")
            if target.kind == "box":
                break
    return accepted, tried


# --------------------------------------------------------------------------
# tests of the reference itself (no engine)
# --------------------------------------------------------------------------

N = None  # an unbounded side
KNOWN = [
    # (W, b, lower, upper, injective, why)
    ([[1]], [0], [1], [2], True, "W=[1] on [1,2]: rank W = n but m < 2n"),
    ([[1, 0], [-1, 0]], [0, 0], [-5, 0], [5, 0], True, "rank W = 1 < 2 on the degenerate box {x_2 = 0}"),
    ([[1, 0], [-1, 0]], [0, 0], [-5, 0], [5, F(1, 10**9)], False, "the same box made 1e-9 thick"),
    ([[1]], [0], [-1], [2], False, "W=[1] on [-1,2]: [-1,0] maps to 0"),
    ([[1], [-1]], [-1, -1], [2], [3], True, "bias condition violated, but [2,3] avoids the flat piece"),
    ([[1], [-1]], [-1, -1], [F(-1, 2)], [3], False, "[-1/2, 1] maps to (0, 0)"),
    ([[1], [-1]], [-1, -1], [1], [3], True, "the flat piece [-1, 1] touches the box in one point"),
    ([[1], [-1]], [-1, -1], [F(1, 2)], [F(1, 2)], True, "degenerate box: one point"),
    ([[1], [-1]], [-1, -1], [3], [2], True, "empty box"),
    ([[0]], [5], [4], [3], True, "empty box, constant layer"),
    ([[0]], [5], [4], [4], True, "constant layer on one point"),
    ([[0]], [5], [4], [5], False, "constant layer on an interval"),
    ([[1, 0], [0, 1]], [0, 0], [0, 0], [N, N], True, "identity on the orthant"),
    ([[1, 0], [0, 1]], [-1, 0], [0, 0], [N, N], False, "x_1 in [0, 1] maps to 0"),
    ([[1, 0], [0, 1]], [0, 0], [N, N], [N, N], False, "identity on R^2"),
    ([[1, 1]], [0], [0, 0], [N, N], False, "one row on the orthant: f(1,0) = f(0,1)"),
    ([[1, 1]], [0], [0, 1], [N, 1], True, "one row on the ray {x_2 = 1, x_1 >= 0}"),
    ([[1, 0], [0, 1], [-1, -1]], [0, 0, 1], [0, 0], [N, N], True, "3 rows on the orthant"),
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], [0, 0, 0], [0, 0, 0], [N, N, N], True, "identity n=3 on the orthant"),
    ([[1, 0, 0], [0, 1, 0]], [0, 0], [0, 0, 7], [1, 1, 7], True, "rank 2 < 3, third coordinate fixed"),
    ([[1, 0, 0], [0, 1, 0]], [0, 0], [0, 0, 7], [1, 1, 8], False, "rank 2 < 3, box full-dimensional"),
    ([[1, -1, 0], [-1, 1, 0], [0, 0, 1]], [0, 0, 0], [0, 0, 1], [2, 2, 2], False, "x_1 = x_2 direction is flat"),
    ([[1, -1, 0], [-1, 1, 0], [0, 0, 1]], [0, 0, 0], [0, 3, 1], [2, 3, 2], True, "... unless x_2 is fixed"),
]


@pytest.mark.parametrize("W,b,lo,up,expected,why", KNOWN, ids=[k[5] for k in KNOWN])
def test_reference_known_domain_answers(W, b, lo, up, expected, why):
    W = as_fraction_matrix(W)
    b = [F(v) for v in b]
    inj, wit = reference_decide_box(W, b, lo, up)
    assert inj is expected, why
    if not inj:
        G, h = box_constraints(lo, up)
        assert is_collision_on(W, b, G, h, *wit), why
    if len(lo) <= 2:
        assert reference_injective_box_cells(W, b, lo, up) is expected, why


def test_reference_rank_rule_does_not_carry_over():
    # Theory section 1b: rank W < n and m < 2n decide R^n, never a domain.
    assert reference_injective([[1]], [0]) is False
    assert reference_decide_box([[1]], [0], [1], [2]) == (True, None)
    assert reference_injective([[1, 0], [-1, 0]], [0, 0]) is False
    assert reference_decide_box([[1, 0], [-1, 0]], [0, 0], [-5, 0], [5, 0]) == (True, None)


def test_reference_domain_with_no_constraints_is_reals():
    # With G empty the domain procedure must reduce to the established R^n
    # reference on the R^n differential mix.
    cases = generate_layers(R_CI_SEED, 80)
    for c in cases:
        inj, wit = reference_decide_on(c.W, c.b, [], [], c.n)
        assert inj is reference_injective(c.W, c.b), c.repro()
        if not inj:
            assert is_collision(c.W, c.b, *wit)


def _assert_procedures_agree(cases, refs):
    compared = Counter()
    for c, r in zip(cases, refs):
        if c.n <= 2:
            lo, up = c.cell_bounds()
            assert reference_injective_box_cells(c.W, c.b, lo, up) is r.on_domain, c.repro()
            compared[r.on_domain] += 1
    return compared


def test_reference_procedures_agree_on_domain_mix():
    cases, refs = reference_answers(CI_SEED, CI_COUNT)
    compared = _assert_procedures_agree(cases, refs)
    assert compared[True] > 25 and compared[False] > 25, compared


def test_reference_monotone_in_the_domain():
    # Metamorphic: D' inside D and injective on D => injective on D'; a
    # collision in D is one in every box containing D.
    cases, refs = reference_answers(CI_SEED, CI_COUNT)
    rng = np.random.default_rng(99)
    used = Counter()
    for c, r in zip(cases, refs):
        if not c.is_box or any(l > u for l, u in zip(c.lower, c.upper)):
            continue
        if r.on_domain:
            # shrink: each side moves inward by a random share of its width
            lo = [l + (u - l) * F(int(rng.integers(0, 4)), 8) for l, u in zip(c.lower, c.upper)]
            up = [u - (u - l) * F(int(rng.integers(0, 4)), 8) for l, u in zip(c.lower, c.upper)]
            assert reference_decide_box(c.W, c.b, lo, up)[0] is True, c.repro()
            used["shrunk"] += 1
        else:
            g = F(int(rng.integers(1, 5)), int(rng.integers(1, 5)))
            lo = [l - g * int(rng.integers(0, 2)) for l in c.lower]
            up = [u + g * int(rng.integers(0, 2)) for u in c.upper]
            inj, wit = reference_decide_box(c.W, c.b, lo, up)
            assert inj is False, c.repro()
            G, h = box_constraints(lo, up)
            assert is_collision_on(c.W, c.b, G, h, *r.witness)  # the old witness too
            used["grown"] += 1
    assert used["shrunk"] > 20 and used["grown"] > 20, used


def test_reference_witnesses_are_inside_and_collide():
    cases, refs = reference_answers(CI_SEED, CI_COUNT)
    for c, r in zip(cases, refs):
        if not r.on_domain:
            G, h = c.constraints()
            assert is_collision_on(c.W, c.b, G, h, *r.witness), c.repro()
        else:
            assert r.witness is None


def test_domain_mix_ci():
    check_mix(CI_SEED, CI_COUNT)


@pytest.mark.slow
def test_domain_mix_full():
    check_mix(FULL_SEED, FULL_COUNT)


@pytest.mark.slow
def test_reference_procedures_agree_full():
    cases, refs = reference_answers(FULL_SEED, FULL_COUNT)
    _assert_procedures_agree(cases, refs)


# --------------------------------------------------------------------------
# engine vs reference
# --------------------------------------------------------------------------


def test_engine_known_domain_answers(engine):
    from exact_inj.model.domain import Domain

    for W, b, lo, up, expected, why in KNOWN:
        net = _net(as_fraction_matrix(W), [F(v) for v in b])
        n = len(lo)
        if all(v is None for v in lo + up):
            dom = Domain.reals()
        elif lo == [0] * n and up == [N] * n:
            dom = Domain.orthant()
        elif any(v is None for v in lo + up):
            continue  # a half-bounded box is not an engine domain
        else:
            dom = Domain.box(lo, up)
        v = engine.verify(net, time_limit=TIME_LIMIT, milp="none", domain=dom)
        assert v.status.value == ("injective" if expected else "not_injective"), why
        assert engine.check(v.certificate).valid, why
        if not expected:
            G, h = box_constraints(lo, up)
            assert is_collision_on(W, b, G, h, v.witness.x, v.witness.y), why


def test_engine_domain_differential_ci(engine):
    _run_differential(engine, CI_SEED, CI_COUNT)


@pytest.mark.slow
def test_engine_domain_differential_full(engine):
    _run_differential(engine, FULL_SEED, FULL_COUNT)


def _run_mutations(engine, seed, count, per_direction, minimum):
    accepted, tried = mutation_results(engine, seed, count, per_direction)
    dirs = {k: v for k, v in tried.items() if "(" not in k}
    kinds = Counter()
    for k, v in tried.items():
        if "(" in k:
            kinds[k.split(" (")[0]] += v
    print(f"\ncertificates moved to a domain with the other answer: {dirs}; by evidence: {dict(kinds)}")
    assert not accepted, f"{len(accepted)} accepted:\n" + "\n".join(accepted[:10])
    for d in ("injective cert -> non-injective box", "witness -> injective box"):
        assert tried[d] >= minimum, tried
        # Witnesses rarely move to the orthant with the other answer (never to
        # R^n: not injective on a box means not injective on R^n).
        assert tried[f"other kind: {d}"] >= 1, tried
    assert tried["other kind: injective cert -> non-injective box"] >= minimum, tried


def test_certificate_rejected_on_other_box_ci(engine):
    _run_mutations(engine, CI_SEED, CI_COUNT, 40, 20)


@pytest.mark.slow
def test_certificate_rejected_on_other_box_full(engine):
    _run_mutations(engine, FULL_SEED, FULL_COUNT, 400, 150)


def test_certificate_rejected_on_other_kind_of_domain(engine):
    # The same check across domain kinds: box -> orthant / R^n and back.
    from exact_inj.model.domain import Domain

    pairs = [
        # (W, b, domain with the certificate, other domain)
        ([[1]], [0], Domain.box([1], [2]), Domain.reals()),
        ([[1]], [-1], Domain.box([2], [3]), Domain.orthant()),
        ([[1, 0], [-1, 0]], [0, 0], Domain.box([-5, 0], [5, 0]), Domain.box([-5, 0], [5, 1])),
        ([[1, 0], [0, 1]], [0, 0], Domain.orthant(), Domain.reals()),
        ([[1, 0], [0, 1]], [0, 0], Domain.orthant(), Domain.box([-1, 0], [1, 1])),
        ([[1], [-1]], [-1, -1], Domain.box([F(-1, 2)], [3]), Domain.box([2], [3])),
        ([[1], [-1]], [-1, -1], Domain.box([3], [2]), Domain.box([-1], [1])),  # empty-domain proof
        ([[1, 0], [0, 1]], [-1, 0], Domain.orthant(), Domain.box([2, 0], [3, 1])),  # witness
    ]
    for W, b, d1, d2 in pairs:
        net = _net(as_fraction_matrix(W), [F(v) for v in b])
        v = engine.verify(net, time_limit=TIME_LIMIT, milp="none", domain=d1)
        assert v.certificate is not None and engine.check(v.certificate).valid
        n = len(W[0])

        def ref(d):
            if d.kind == "reals":
                return reference_injective(W, b)
            if d.kind == "orthant":
                return reference_injective_on(W, b, *orthant_constraints(n))
            return reference_decide_box(W, b, list(d.lower), list(d.upper))[0]

        assert ref(d1) != ref(d2), (W, b, d1, d2)
        assert (v.status.value == "injective") is ref(d1)
        bad = dataclasses.replace(v.certificate, domain=d2)
        assert not engine.check(bad).valid, (W, b, d1, d2)
