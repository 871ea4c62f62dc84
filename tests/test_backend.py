"""Solver back ends: status maps, and both MILP routes (HiGHS and PuLP's CBC).

A solver answer is a hint: these tests assert the solver status AND that the
hint repairs into an exactly verified witness (MIPVerify's habit).
"""

from fractions import Fraction

import highspy
import numpy as np
import pytest

import exact_inj
from exact_inj import solver as backend
from exact_inj.layer import formulation
from exact_inj.layer import milp_worker
from exact_inj.certify.schema import Certificate
from exact_inj.model.domain import Domain
from exact_inj.layer.rules import witness_from_negative_set
from exact_inj.model import Layer, Network
from exact_inj.layer.data import LayerData
from exact_inj.verdict import Status


class _FakeHighs:
    """Just enough of highspy.Highs to feed highs_outcome a raw status."""

    def __init__(self, status, primal_status=0):
        self._status = status
        self._primal = primal_status

    def getModelStatus(self):
        return self._status

    def getInfo(self):
        class Info:
            primal_solution_status = self._primal

        return Info()


@pytest.mark.parametrize(
    "raw, expected",
    [
        (highspy.HighsModelStatus.kOptimal, backend.Outcome.OPTIMAL),
        (highspy.HighsModelStatus.kInfeasible, backend.Outcome.INFEASIBLE),
        (highspy.HighsModelStatus.kTimeLimit, backend.Outcome.LIMIT),
        # Statuses the map does not list must become UNKNOWN, never a verdict.
        (highspy.HighsModelStatus.kUnboundedOrInfeasible, backend.Outcome.UNKNOWN),
        (highspy.HighsModelStatus.kModelError, backend.Outcome.UNKNOWN),
        (highspy.HighsModelStatus.kNotset, backend.Outcome.UNKNOWN),
    ],
)
def test_highs_status_map(raw, expected):
    assert backend.highs_outcome(_FakeHighs(raw)) is expected


def test_time_limit_with_incumbent_is_feasible_not_optimal():
    # A MIP stopped by its limit with a point in hand is FEASIBLE: usable as a
    # hint, but never reported as a proven optimum.
    out = backend.highs_outcome(_FakeHighs(highspy.HighsModelStatus.kTimeLimit, primal_status=2))
    assert out is backend.Outcome.FEASIBLE


FIG2_NOT = Layer.from_rows([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]])


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_both_milp_routes_give_exact_witnesses(solver):
    data = LayerData(FIG2_NOT)
    res = milp_worker.run({"Wf": data.Wf.tolist(), "bf": data.bf.tolist(), "time_limit": 20, "solver": solver})
    assert res["kind"] == "point", res
    negative = sum(1 << i for i, d in enumerate(res["delta"]) if d > 0.5)
    w = witness_from_negative_set(data, negative)
    assert w is not None
    net = Network((FIG2_NOT,))
    assert exact_inj.check(Certificate(net, Domain(), Status.NOT_INJECTIVE, w)).valid
    assert w.x != w.y and FIG2_NOT.apply(w.x) == FIG2_NOT.apply(w.y)


def test_milp_hint_far_out_is_repaired_or_dropped():
    # Both rows are strictly negative only for x in (10^7 - 1, 10^7): far
    # outside the MILP's box, and with row coefficients near 1e-7 that HiGHS's
    # tolerances treat as zero (docs/theory.md, section 6: floats get thin cases wrong).
    # Whatever the MILP returns, its hint either repairs into an exactly
    # verified witness or is dropped; the engine decides exactly.
    far = Layer.from_rows([[1], [-1]], [-(10**7), 10**7 - 1])
    data = LayerData(far)
    model = formulation.witness_milp(data.Wf, data.bf, box=1e4)
    out, x = backend.solve_milp_highs(model, 10)
    if x is not None:
        negative = sum(1 << i for i, d in enumerate(model.delta(x)) if d > 0.5)
        w = witness_from_negative_set(data, negative)
        assert w is None or (w.x != w.y and far.apply(w.x) == far.apply(w.y))
    v = exact_inj.verify(Network((far,)), milp="none")
    assert v.status is Status.NOT_INJECTIVE and exact_inj.check(v.certificate).valid
    assert all(10**7 - 1 < c < 10**7 for c in v.witness.x + v.witness.y)


def test_export_roundtrip_through_pulp(tmp_path):
    data = LayerData(FIG2_NOT)
    prob, xs = backend.to_pulp(formulation.witness_milp(data.Wf, data.bf))
    path = tmp_path / "m.lp"
    prob.writeLP(str(path))
    text = path.read_text()
    assert "Subject To" in text and len(xs) == 2 * 2 + 1 + 4 + 4


def test_float_rows_keep_tiny_rows_alive():
    # Scaling happens in exact arithmetic before rounding, so a row of 1e-9
    # entries is not flushed towards zero.
    Wf, bf = formulation.float_rows([[Fraction(1, 10**9), Fraction(2, 10**9)]], [Fraction(0)])
    assert np.allclose(Wf, [[0.5, 1.0]]) and bf[0] == 0.0
