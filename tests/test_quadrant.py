"""The Toeplitz elimination of stride-2 transposed convolutions (exact.quadrant).

Against an independent oracle: the operator built densely from the kernel's
definition in this file (not from the spec's own tap tables), ranked by
python-flint over Q.  Shown nonsingular must mean rank n; the modular
solve must solve; rows whose structure differs (a piece moved, doubled or
changed) must be refused (None) or still be right.
"""

from __future__ import annotations

import flint
import numpy as np
import pytest

from exact_inj.certify.peel import square_rows
from exact_inj.exact import ndrank, quadrant
from exact_inj.exact.densemod import SingularBlock
from exact_inj.model.kernels import KernelSpec

P = ndrank.PRIMES[0]


def dense_transposed(K: np.ndarray, h: int, w: int, pad: int, out_pad: int) -> np.ndarray:
    """The transposed convolution's matrix from its definition: input
    (c, i, j) adds K[o, c, ky, kx] x to output (o, 2i - pad + ky, 2j - pad + kx)."""
    cout, cin, k, _ = K.shape
    H, W = 2 * (h - 1) - 2 * pad + k + out_pad, 2 * (w - 1) - 2 * pad + k + out_pad
    M = np.zeros((cout * H * W, cin * h * w), dtype=object)
    for o in range(cout):
        for c in range(cin):
            for i in range(h):
                for j in range(w):
                    for ky in range(k):
                        for kx in range(k):
                            Y, X = 2 * i - pad + ky, 2 * j - pad + kx
                            if 0 <= Y < H and 0 <= X < W:
                                M[(o * H + Y) * W + X, (c * h + i) * w + j] += int(K[o, c, ky, kx])
    return M


def rank_q(M: np.ndarray) -> int:
    return flint.fmpq_mat(M.shape[0], M.shape[1], [int(v) for v in M.ravel()]).rank()


def attempt(spec, reps, p):
    try:
        return quadrant.factor(spec, reps, p)
    except SingularBlock:
        return "singular"


GEOMETRIES = [(4, 1, 0), (3, 1, 1), (2, 0, 0), (6, 2, 0), (5, 2, 1), (4, 0, 0)]


@pytest.mark.parametrize("seed", range(4))
def test_shown_means_full_rank_and_the_solve_solves(seed):
    rng = np.random.default_rng([seed, 17])
    shown = refused = 0
    for _ in range(80):
        # Half of them the generator's geometry (kernel 4, padding 1).
        k, pad, op_ = GEOMETRIES[0] if rng.random() < 0.5 else GEOMETRIES[rng.integers(len(GEOMETRIES))]
        cout = int(rng.integers(1, 3))
        cin = 4 * cout
        h, w = int(rng.integers(2, 6)), int(rng.integers(3, 5))
        K = rng.integers(-3, 4, size=(cout, cin, k, k))
        if rng.random() < 0.2:   # degenerate: a dead tap row, or a dead input channel
            K[:, :, int(rng.integers(k)), :] = 0
        if rng.random() < 0.1:
            K[:, int(rng.integers(cin))] = 0
        pairs = rng.random() < 0.5   # [C; -4 C], as the generator's stages
        Kf = np.concatenate([K, -4 * K]) if pairs else K
        try:
            spec = KernelSpec.build(Kf.tolist(), cin, len(Kf), [h, w], strides=[2, 2], pads=[pad, pad],
                                    output_padding=[op_, op_], transposed=True)
        except ValueError:
            continue
        sq = square_rows(spec.layer(), range(spec.out_dim))
        if sq is None or len(sq[0]) != spec.in_dim:
            continue
        reps = sq[0]
        M = dense_transposed(Kf, h, w, pad, op_)[reps]
        p = 101 if rng.random() < 0.3 else P   # a small prime: singular pivot blocks are common
        got = attempt(spec, reps, p)
        if got is None or got == "singular":
            refused += 1
            continue
        shown += 1
        assert rank_q(M) == spec.in_dim
        b = rng.integers(0, p, size=spec.in_dim)
        x = got.solve(b.astype(np.float64)).astype(np.int64)
        assert not ((M.astype(np.int64) @ x - b) % p).any()
    assert shown >= 15 and refused >= 1


def test_singular_operators_are_never_shown():
    rng = np.random.default_rng(5)
    tried = 0
    for _ in range(40):
        cout = int(rng.integers(1, 3))
        cin = 4 * cout
        K = rng.integers(-3, 4, size=(cout, cin, 4, 4))
        K[:, 1] = 2 * K[:, 0]   # input channel 1 = 2 x channel 0: dependent columns
        spec = KernelSpec.build(K.tolist(), cin, cout, [3, 4], strides=[2, 2], pads=[1, 1], transposed=True)
        for p in ndrank.PRIMES + (101,):
            got = attempt(spec, range(spec.out_dim), p)
            assert got is None or got == "singular"
        assert ndrank.rows_nonsingular(spec, range(spec.out_dim)) is None
        tried += 1
    assert tried == 40


class Tampered:
    """A spec whose pieces (rows_by_tap) are changed by ``edit``: the
    structure checks must refuse what no longer has the structure."""

    def __init__(self, spec, edit):
        self._spec, self._edit = spec, edit

    def __getattr__(self, name):
        return getattr(self._spec, name)

    def rows_by_tap(self, indices):
        return self._edit([(ks.copy(), src.copy(), V.copy()) for ks, src, V in self._spec.rows_by_tap(indices)])


def _spec(rng):
    K = rng.integers(-3, 4, size=(2, 8, 4, 4))
    return KernelSpec.build(K.tolist(), 8, 2, [4, 4], strides=[2, 2], pads=[1, 1], transposed=True)


def _change_interior(taps):
    ks, src, V = taps[0]
    V[len(V) // 2, 0] += 1   # one entry of one interior row: no longer Toeplitz
    return taps


def _double(taps):
    ks, src, V = taps[0]
    return taps + [(ks[:1], src[:1], V[:1])]   # a (row, pixel) given twice


def _move(taps):
    ks, src, V = taps[0]
    src[len(src) // 2] = (src[len(src) // 2] + 5) % 16   # a piece read at a far pixel
    return taps


def _drop(taps):
    ks, src, V = taps[1]
    keep = np.ones(len(ks), dtype=bool)
    keep[len(ks) // 2] = False   # an interior row loses a tap
    taps[1] = (ks[keep], src[keep], V[keep])
    return taps


@pytest.mark.parametrize("edit", [_change_interior, _double, _move, _drop])
def test_tampered_structure_is_refused_or_still_right(edit):
    rng = np.random.default_rng(11)
    spec = _spec(rng)
    assert quadrant.factor(spec, range(spec.out_dim), P) is not None   # the untouched one is shown
    bad = Tampered(spec, edit)
    got = attempt(bad, range(spec.out_dim), P)
    if got is None or got == "singular":
        return
    # Shown: then the tampered matrix (built from its pieces) must have full rank.
    n = spec.in_dim
    M = np.zeros((n, n), dtype=object)
    for ks, src, V in bad.rows_by_tap(range(spec.out_dim)):
        for r, s, row in zip(ks.tolist(), src.tolist(), V.tolist()):
            for c, v in enumerate(row):
                M[r, c * 16 + s] += v
    assert rank_q(M) == n


@pytest.mark.parametrize("edit", [_change_interior, _double, _move])
def test_these_tamperings_are_refused(edit):
    spec = _spec(np.random.default_rng(11))
    assert quadrant.factor(Tampered(spec, edit), range(spec.out_dim), P) is None


def test_rows_nonsingular_takes_the_toeplitz_route_and_remembers_it():
    spec = _spec(np.random.default_rng(12))
    got = ndrank.rows_factor(spec, range(spec.out_dim))
    assert got is not None and got[0] is None and isinstance(got[2], quadrant.QuadrantFactor)
    assert ndrank.rows_nonsingular(spec, range(spec.out_dim)) is True


def _interior_piece(spec, taps, offset, last=False):
    """(tap, piece) of an interior row (not in the last interior cell, where
    the Toeplitz blocks are read) whose pixel is the row's cell minus
    ``offset``."""
    h, w = spec.input_size
    per, W2 = spec.output_size[0] * spec.output_size[1], spec.output_size[1]
    for t, (ks, src, V) in enumerate(taps):
        q = ks % per
        a0, a1 = (q // W2 + 1) // 2, (q % W2 + 1) // 2
        ok = (a0 >= 1) & (a1 >= 1) & (a0 < h) & (a1 < w) & ((a0 < h - 1) | (a1 < w - 1))
        ok &= (a0 - src // w == offset[0]) & (a1 - src % w == offset[1]) & V.any(axis=1)
        ok &= (src // w >= 1) & (src % w >= 1)   # an interior pixel: the Toeplitz part
        ok &= (a1 >= 3) if last else True
        hits = np.flatnonzero(ok)
        if hits.size:
            return t, int(hits[0])
    raise AssertionError("no such piece")


def test_a_piece_beyond_the_reach_is_refused():
    # A (1, 0)-offset piece moved to offset (0, 2): the Toeplitz index 2 d_0 + d_1
    # is the same, so only the reach test tells them apart.
    spec = _spec(np.random.default_rng(11))

    def edit(taps):
        t, j = _interior_piece(spec, taps, (1, 0), last=True)
        ks, src, V = taps[t]
        src[j] = src[j] + spec.input_size[1] - 2   # one pixel row down, two columns left
        return taps

    assert quadrant.factor(Tampered(spec, edit), range(spec.out_dim), P) is None


def test_a_missing_interior_piece_is_refused():
    spec = _spec(np.random.default_rng(11))

    def edit(taps):
        t, j = _interior_piece(spec, taps, (1, 1))
        ks, src, V = taps[t]
        keep = np.arange(len(ks)) != j
        taps[t] = (ks[keep], src[keep], V[keep])
        return taps

    assert quadrant.factor(Tampered(spec, edit), range(spec.out_dim), P) is None


def test_a_first_row_reaching_the_interior_is_refused():
    spec = _spec(np.random.default_rng(11))
    w = spec.input_size[1]

    def edit(taps):
        for ks, src, V in taps:
            q = ks % (spec.output_size[0] * spec.output_size[1])
            first = np.flatnonzero(q // spec.output_size[1] == 0)[:1]   # a row of output row Y = 0
            if first.size:
                return taps + [(ks[first], np.array([w + 1]), V[first])]   # now also reading pixel (1, 1)
        raise AssertionError("no row of output row 0")

    assert quadrant.factor(Tampered(spec, edit), range(spec.out_dim), P) is None


def _first_column_piece(spec, taps, deep: bool):
    """A piece of a row in the first column of cells (X = 0), at a row cell
    i >= 2 when ``deep``, else in the first row of cells (Y = 0, X >= 1)."""
    per, W2 = spec.output_size[0] * spec.output_size[1], spec.output_size[1]
    for t, (ks, src, V) in enumerate(taps):
        q = ks % per
        Y, X = q // W2, q % W2
        ok = (X == 0) & ((Y + 1) // 2 >= 2) if deep else (Y == 0) & ((X + 1) // 2 >= 1)
        hits = np.flatnonzero(ok & V.any(axis=1))
        if hits.size:
            return t, int(hits[0])
    raise AssertionError("no such piece")


@pytest.mark.parametrize("deep", [True, False])
def test_an_edge_row_reaching_where_it_must_not_is_refused(deep):
    # deep: row cell (i, 0), i >= 2, reading pixel (1, 1) -- past that pixel
    # on the chain, so only the interior test refuses it.  Else: row cell
    # (0, j) reading pixel (0, w - 1), later on the chain (M[N, P] would not
    # be block lower triangular).
    spec = _spec(np.random.default_rng(11))
    w = spec.input_size[1]

    def edit(taps):
        t, j = _first_column_piece(spec, taps, deep)
        ks, src, V = taps[t]
        return taps + [(ks[j:j + 1], np.array([w + 1 if deep else w - 1]), V[j:j + 1])]

    assert quadrant.factor(Tampered(spec, edit), range(spec.out_dim), P) is None


def test_w_rows_reading_no_interior_pixel_review():
    # Review: kernel 7, pads (1, 4): the last output row and column read no
    # interior pixel, and the grouping of their pieces met an empty group
    # (IndexError out of rows_nonsingular).  The matrix is nonsingular.
    rng = np.random.default_rng(1)
    K = np.zeros((1, 4, 7, 7), dtype=np.int64)
    for a in (0, 1, 3, 6):
        for b in (0, 1, 3, 6):
            K[:, :, a, b] = rng.integers(-3, 4, size=(1, 4))
    spec = KernelSpec.build(K.tolist(), 4, 1, [3, 3], strides=[2, 2], pads=[(1, 4), (1, 4)], transposed=True)
    M = np.array([[int(v) for v in row] for row in spec.operator()], dtype=object)
    assert rank_q(M) == 36
    assert ndrank.rows_nonsingular(spec, range(spec.out_dim)) is True


def test_kernel_of_zeros_and_bad_moduli():
    K = np.zeros((1, 4, 4, 4), dtype=np.int64).tolist()
    spec = KernelSpec.build(K, 4, 1, [3, 3], strides=[2, 2], pads=[1, 1], transposed=True)
    assert quadrant.factor(spec, range(spec.out_dim), P) is None
    assert ndrank.rows_nonsingular(spec, range(spec.out_dim)) is None
    good = _spec(np.random.default_rng(11))
    for p in (15, 1 << 20, (1 << 61) - 1):   # composite, or too large for exact float64 products
        with pytest.raises(ValueError):
            quadrant.factor(good, range(good.out_dim), p)


def test_verify_of_a_stage_whose_last_row_reads_nothing_review():
    # Review: kernel 2, pads (1, 0), output padding 1 (the last output row and
    # column read nothing): verify raised instead of answering.
    from exact_inj import verify
    from exact_inj.model import Network
    from exact_inj.verdict import Status

    C = np.random.default_rng(0).integers(-3, 4, size=(1, 4, 2, 2))
    spec = KernelSpec.build(np.concatenate([C, -C]).tolist(), 4, 2, [3, 3], strides=[2, 2],
                            pads=[(1, 0), (1, 0)], output_padding=[1, 1], transposed=True)
    assert verify(Network((spec.layer(),))).status is Status.NOT_INJECTIVE


def test_too_large_for_the_dense_arrays_is_left_to_the_dissection(monkeypatch):
    spec = _spec(np.random.default_rng(11))
    assert quadrant.factor(spec, range(spec.out_dim), P) is not None
    monkeypatch.setattr(quadrant, "MAX_BYTES", 1000)
    assert quadrant.factor(spec, range(spec.out_dim), P) is None
    assert ndrank.rows_nonsingular(spec, range(spec.out_dim)) is True   # by the dissection
