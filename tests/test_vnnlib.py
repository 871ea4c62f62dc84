"""VNN-LIB input boxes: exact decimals, disjunctions, ignored outputs, and malformed files."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from exact_inj.io import InputError
from exact_inj.io.vnnlib import Box, BoxUnion, load_vnnlib, parse_vnnlib

# The shape of a VNN-COMP 2021 ACAS Xu property (prop_1), shortened.
ACAS_PROP = """\
; ACAS Xu property 1
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const X_2 Real)
(declare-const X_3 Real)
(declare-const X_4 Real)

(declare-const Y_0 Real)
(declare-const Y_1 Real)

; Unscaled Input 0: (55947.691, 60760)
(assert (<= X_0 0.679857769))
(assert (>= X_0 0.6))
(assert (<= X_1 0.5))
(assert (>= X_1 -0.5))
(assert (<= X_2 0.5))
(assert (>= X_2 -0.5))
(assert (<= X_3 0.5))
(assert (>= X_3 0.45))
(assert (<= X_4 -0.45))
(assert (>= X_4 -0.5))

; output: unsafe if COC >= 1500 (scaled)
(assert (>= Y_0 3.991125645861615))
(assert (<= Y_1 Y_0))
"""


def write(tmp_path, text, name="prop.vnnlib"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_acas_box(tmp_path):
    box = load_vnnlib(write(tmp_path, ACAS_PROP))
    assert isinstance(box, Box) and not box.is_union and box.dim == 5
    assert box.lower == (F(3, 5), F(-1, 2), F(-1, 2), F(9, 20), F(-1, 2))
    assert box.upper == (F(679857769, 10**9), F(1, 2), F(1, 2), F(1, 2), F(-9, 20))
    assert all(type(v) is F for v in box.lower + box.upper)


def test_decimals_are_exact():
    box = parse_vnnlib("(declare-const X_0 Real)(assert (<= X_0 0.6))(assert (>= X_0 1e-3))")
    assert box.lower == (F(1, 1000),) and box.upper == (F(3, 5),)


def test_number_forms_and_chains():
    text = """
    (declare-const X_0 Real) (declare-const X_1 Real) (declare-const X_2 Real)
    (assert (and (>= X_0 (- 0.5)) (<= X_0 (/ 1 3))))
    (assert (<= -2 X_1 7))
    (assert (= X_2 0.25))
    """
    box = parse_vnnlib(text)
    assert box.lower == (F(-1, 2), F(-2), F(1, 4)) and box.upper == (F(1, 3), F(7), F(1, 4))


def test_reversed_operands_and_tightest_bound():
    text = "(declare-const X_0 Real)(assert (>= 1 X_0))(assert (<= 0 X_0))(assert (<= X_0 0.5))(assert (>= X_0 -1))"
    box = parse_vnnlib(text)
    assert box.lower == (F(0),) and box.upper == (F(1, 2),)


def test_degenerate_box():
    box = parse_vnnlib("(declare-const X_0 Real)(assert (<= X_0 1))(assert (>= X_0 1))")
    assert box.lower == box.upper == (F(1),)


def test_disjunction_of_boxes(tmp_path):
    text = """
    (declare-const X_0 Real)
    (declare-const X_1 Real)
    (declare-const Y_0 Real)
    (assert (<= X_0 0.6))
    (assert (>= X_0 -0.5))
    (assert (or
        (and (<= X_1 0.5) (>= X_1 -0.5))
        (and (<= X_1 0.9) (>= X_1 0.7))
    ))
    (assert (or (and (>= Y_0 1)) (and (<= Y_0 -1))))
    """
    u = load_vnnlib(write(tmp_path, text))
    assert isinstance(u, BoxUnion) and u.is_union and u.dim == 2
    assert u.boxes == (
        Box((F(-1, 2), F(-1, 2)), (F(3, 5), F(1, 2))),
        Box((F(-1, 2), F(7, 10)), (F(3, 5), F(9, 10))),
    )
    assert u.bounding_box == Box((F(-1, 2), F(-1, 2)), (F(3, 5), F(9, 10)))
    assert u.contains((F(0), F(4, 5))) and not u.contains((F(0), F(3, 5)))
    assert u.bounding_box.contains((F(0), F(3, 5)))


def test_vnncomp_style_full_disjunction():
    # Some VNN-COMP properties put every input bound inside the or.
    text = """
    (declare-const X_0 Real)
    (assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3)) (and (>= X_0 0) (<= X_0 1))))
    """
    u = parse_vnnlib(text)
    assert len(u.boxes) == 2  # the duplicate is dropped
    assert u.bounding_box == Box((F(0),), (F(3),))


def test_disjunction_collapsing_to_one_box_is_a_box():
    text = "(declare-const X_0 Real)(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 1))))"
    box = parse_vnnlib(text)
    assert isinstance(box, Box) and box == Box((F(0),), (F(1),))  # the empty disjunct is dropped


def test_nested_and_or_distribute():
    text = """
    (declare-const X_0 Real)(declare-const X_1 Real)
    (assert (and (or (<= X_0 0) (>= X_0 1)) (or (<= X_1 0) (>= X_1 1))))
    (assert (<= -1 X_0 2)) (assert (<= -1 X_1 2))
    """
    u = parse_vnnlib(text)
    assert len(u.boxes) == 4


def test_output_constraints_are_ignored():
    text = "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))(assert (< Y_0 2))"
    assert parse_vnnlib(text) == Box((F(0),), (F(1),))


def test_comments_and_ignored_commands():
    text = "; c\n(set-logic QF_LRA) ; trailing\n(declare-const X_0 Real)\n(assert (<= X_0 1)) (assert (>= X_0 0))\n(check-sat)\n"
    assert parse_vnnlib(text) == Box((F(0),), (F(1),))


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("(declare-const X_0 Real)\n(assert (<= X_0 1)", "line 2: '(' is never closed"),
        ("(declare-const X_0 Real))", "line 1: unbalanced ')'"),
        ("(declare-const X_0 Real)\n(assert (<= X_0 1))", "line 1: input X_0 has no lower bound"),
        ("(declare-const X_0 Real)\n\n(assert (<= X_0 abc))", "line 3: 'abc' is neither a declared variable nor an exact number"),
        ("(declare-const X_0 Real)\n(assert (<= X_0 X_1))", "line 2: variable X_1 is used but never declared"),
        ("(declare-const X_0 Real)(declare-const X_1 Real)\n(assert (<= X_0 X_1))", "line 2: (<= X_0 X_1): compares two variables"),
        ("(declare-const X_0 Real)\n(assert (< X_0 1))", "line 2: (< X_0 1): strict inequalities"),
        ("(declare-const X_0 Int)", "line 1: variable X_0 has sort Int"),
        ("(declare-const Z_0 Real)", "line 1: variable 'Z_0' is neither X_i"),
        ("(declare-const X_0 Real)(declare-const X_0 Real)", "line 1: variable X_0 is declared twice"),
        ("(declare-const X_1 Real)", "X_0 is not declared"),
        ("(declare-const Y_0 Real)", "declares no input variables"),
        ("(declare-const X_0 Real)(declare-const Y_0 Real)\n(assert (<= X_0 Y_0))", "line 2: this assert mixes input"),
        ("(declare-const X_0 Real)\n(assert (<= (+ X_0 1) 2))", "line 2: (+ X_0 1): arithmetic on variables"),
        ("(declare-const X_0 Real)\n(assert (not (<= X_0 1)))", "line 2: unsupported operator 'not'"),
        ("(declare-const X_0 Real)\n(define-fun f () Real 1)", "line 2: unsupported command 'define-fun'"),
        ("(declare-const X_0 Real)(assert (<= X_0 (/ 1 0)))", "division by zero"),
        ("(declare-const X_0 Real)(assert (<= X_0 0))(assert (>= X_0 1))", "lower bound 1 > upper bound 0"),
        ("(declare-const X_0 Real)(assert (or (and (<= X_0 0) (>= X_0 1)) (and (<= X_0 2) (>= X_0 3))))", "every disjunct is an empty box"),
        ("(declare-const X_0 Real)(assert (or (and (<= X_0 0) (>= X_0 -1)) (<= X_0 2)))", "no lower bound in one of the disjuncts"),
        ("X_0", "line 1: 'X_0' outside parentheses"),
        ("(declare-const X_0 Real)(assert (<= X_0 nan))", "'nan' is neither"),
    ],
)
def test_malformed(tmp_path, text, fragment):
    p = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_vnnlib(p)
    msg = str(info.value)
    assert msg.startswith(p + ": ") and "\n" not in msg
    assert fragment in msg, msg


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_vnnlib(str(tmp_path / "missing.vnnlib"))
    with pytest.raises(InputError, match="file is empty"):
        load_vnnlib(write(tmp_path, "  \n"))
    p = tmp_path / "bin.vnnlib"
    p.write_bytes(b"\x00\x01")
    with pytest.raises(InputError, match="binary data"):
        load_vnnlib(str(p))


def test_box_validation():
    with pytest.raises(ValueError, match="empty box"):
        Box((F(1),), (F(0),))
    with pytest.raises(TypeError):
        Box((0.5,), (1.0,))
