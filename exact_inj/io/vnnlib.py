"""Input boxes of VNN-LIB property files, read exactly.

VNN-LIB (the property format of VNN-COMP) is a small SMT-LIB dialect::

    ; ACAS Xu property 1
    (declare-const X_0 Real)
    (declare-const Y_0 Real)
    (assert (<= X_0 0.679857769))
    (assert (>= X_0 0.6))
    (assert (or (and (<= X_1 0.5) (>= X_1 -0.5))
                (and (<= X_1 0.9) (>= X_1 0.7))))
    (assert (>= Y_0 3.991125645861615))

Only the **input** constraints are read: those on the ``X_i`` variables,
which describe the property's input set.  Constraints that mention only
output variables ``Y_j`` are ignored (they are the property, not the domain).
An ``assert`` mixing ``X_`` and ``Y_`` variables in one formula is refused,
because its input part cannot be separated from it soundly.

The input constraints must describe a **box** or a **finite union of boxes**:

* comparisons ``<=``, ``>=`` and ``=`` between one ``X_i`` and a number
  (either side; n-ary chains such as ``(<= -1 X_0 1)`` too);
* ``and`` and ``or`` of those, nested in any way; top-level asserts are
  conjoined.  The formula is expanded into a disjunction of conjunctions
  (at most :data:`MAX_BOXES` of them), and each conjunction must bound every
  declared input from both sides.

Numbers are exact: ``0.6`` is 3/5, ``-0.5`` and ``(- 0.5)`` are -1/2,
``(/ 1 3)`` is 1/3, and ``1e-3`` is 1/1000 (the grammar of exact_inj.io).
Strict ``<`` and ``>`` on an input are refused: a box here is closed, and
reading ``x < 1`` as ``x <= 1`` would change the domain.

:func:`load_vnnlib` returns a :class:`Box`, or a :class:`BoxUnion` (with
``is_union = True``, the boxes and their bounding box) when the disjunction
leaves more than one distinct non-empty box.  Empty disjuncts are dropped; an
empty input set is an error.  Every problem is an
:class:`~exact_inj.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Sequence

from ..errors import InputError
from ..numbers import parse_number_text, short_number
from .files import read_bytes

__all__ = ["MAX_BOXES", "Box", "BoxUnion", "load_vnnlib", "parse_vnnlib"]

# Expanding nested or/and can grow exponentially; real properties have a
# handful of boxes (VNN-COMP's largest input disjunctions have a few dozen).
MAX_BOXES = 10_000

# SMT-LIB commands that carry no input constraint and are skipped.
_IGNORED_COMMANDS = ("set-logic", "set-info", "set-option", "check-sat", "get-model", "exit")

# At most 9 digits per index: a variable X_<5000 digits> is not a variable
# (and int() of it would fail past 4,300 digits).
_VAR_RE = re.compile(r"([XY])_(0|[1-9][0-9]{0,8})")


@dataclass(frozen=True)
class Box:
    """``{x : lower <= x <= upper}`` coordinatewise, exact.  ``lower[i] == upper[i]`` is allowed.

    >>> b = Box((Fraction(0), Fraction(-1)), (Fraction(1), Fraction(-1)))
    >>> b.dim, b.contains((Fraction(1, 2), Fraction(-1))), b.is_union
    (2, True, False)
    """

    lower: tuple[Fraction, ...]
    upper: tuple[Fraction, ...]
    # How many asserts on outputs only (Y_j) the reader skipped: the
    # property, which an injectivity question does not read.
    output_asserts: int = field(default=0, compare=False, repr=False)

    is_union = False

    def __post_init__(self) -> None:
        if len(self.lower) != len(self.upper):
            raise ValueError("lower and upper have different lengths")
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            if type(lo) is not Fraction or type(hi) is not Fraction:
                raise TypeError("box bounds must be fractions.Fraction")
            if lo > hi:
                raise ValueError(f"coordinate {i}: lower bound {lo} > upper bound {hi} (empty box)")

    @property
    def dim(self) -> int:
        return len(self.lower)

    def contains(self, x: Sequence[Fraction]) -> bool:
        return len(x) == self.dim and all(lo <= v <= hi for v, lo, hi in zip(x, self.lower, self.upper))


@dataclass(frozen=True)
class BoxUnion:
    """A union of boxes (not convex in general) and its bounding box.

    An engine may prove injectivity on ``bounding_box`` (a convex superset),
    but a witness must lie in the union (:meth:`contains`); deciding box by box
    would be wrong, since a collision may join two boxes.
    """

    boxes: tuple[Box, ...]
    bounding_box: Box

    is_union = True

    @property
    def dim(self) -> int:
        return self.bounding_box.dim

    def contains(self, x: Sequence[Fraction]) -> bool:
        return any(b.contains(x) for b in self.boxes)


# --------------------------------------------------------------------------
# S-expressions
# --------------------------------------------------------------------------


class _Atom:
    __slots__ = ("text", "line")

    def __init__(self, text: str, line: int) -> None:
        self.text, self.line = text, line


class _List:
    __slots__ = ("items", "line")

    def __init__(self, items: list, line: int) -> None:
        self.items, self.line = items, line


def _sexprs(text: str, path: str | None) -> list:
    """Top-level S-expressions, each atom and list carrying its line number."""
    stack: list[_List] = []
    top: list = []
    line = 1
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == ";":  # comment to the end of the line
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif ch == "(":
            stack.append(_List([], line))
            i += 1
        elif ch == ")":
            if not stack:
                raise InputError(path, f"line {line}: unbalanced ')'")
            done = stack.pop()
            (stack[-1].items if stack else top).append(done)
            i += 1
        elif ch == "|" or ch == '"':
            raise InputError(path, f"line {line}: quoted symbols and strings are not supported")
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "();":
                j += 1
            atom = _Atom(text[i:j], line)
            if not stack:
                raise InputError(path, f"line {line}: {atom.text!r} outside parentheses")
            stack[-1].items.append(atom)
            i = j
    if stack:
        raise InputError(path, f"line {stack[-1].line}: '(' is never closed")
    return top


# --------------------------------------------------------------------------
# Formulas -> disjunctive normal form over input bounds
# --------------------------------------------------------------------------

# A bound is (variable index, lower or None, upper or None); a conjunction is
# a list of bounds; a DNF is a list of conjunctions.  None stands for "false"
# (a comparison of two numbers that fails), dropped when expanding.


def _show(e) -> str:
    if isinstance(e, _Atom):
        return e.text
    text = "(" + " ".join(_show(v) for v in e.items) + ")"
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.declared: dict[str, int] = {}  # name -> line
        self.inputs: set[int] = set()

    def fail(self, line: int, message: str) -> None:
        raise InputError(self.path, f"line {line}: {message}")

    def variables(self, e) -> set[str]:
        if isinstance(e, _Atom):
            return {e.text} if _VAR_RE.fullmatch(e.text) else set()
        out: set[str] = set()
        for v in e.items:
            out |= self.variables(v)
        return out

    def number(self, e) -> Fraction | None:
        """The exact value of a constant term, or None if e is not a number."""
        if isinstance(e, _Atom):
            if _VAR_RE.fullmatch(e.text):
                return None
            try:
                return parse_number_text(e.text)
            except ValueError:
                self.fail(e.line, f"{e.text!r} is neither a declared variable nor an exact number")
        items = e.items
        if not items or not isinstance(items[0], _Atom):
            self.fail(e.line, f"malformed term {_show(e)}")
        head = items[0].text
        args = [self.number(v) for v in items[1:]]
        if any(a is None for a in args):
            self.fail(e.line, f"{_show(e)}: arithmetic on variables is not a box constraint")
        if head == "-" and len(args) == 1:
            return -args[0]
        if head == "-" and len(args) >= 2:
            return args[0] - sum(args[1:])
        if head == "+" and args:
            return sum(args, Fraction(0))
        if head == "/" and len(args) == 2:
            if args[1] == 0:
                self.fail(e.line, f"{_show(e)}: division by zero")
            return args[0] / args[1]
        self.fail(e.line, f"unsupported term {_show(e)} (numbers may be written n, -n, (- n) or (/ p q))")

    def dnf(self, e) -> list:
        """A list of conjunctions (lists of bounds) equivalent to formula e."""
        if isinstance(e, _Atom) or not e.items or not isinstance(e.items[0], _Atom):
            if isinstance(e, _Atom) and e.text in ("true", "false"):
                return [[]] if e.text == "true" else []
            self.fail(e.line, f"expected a formula, got {_show(e)}")
        head, args = e.items[0].text, e.items[1:]
        if head == "and":
            result: list = [[]]
            for a in args:
                sub = self.dnf(a)
                result = [c + d for c in result for d in sub]
                if len(result) > MAX_BOXES:
                    self.fail(e.line, f"the input constraints expand into more than {MAX_BOXES} boxes")
            return result
        if head == "or":
            result = []
            for a in args:
                result += self.dnf(a)
                if len(result) > MAX_BOXES:
                    self.fail(e.line, f"the input constraints expand into more than {MAX_BOXES} boxes")
            return result
        if head in ("<=", ">=", "=", "<", ">"):
            return self.comparison(head, args, e)
        self.fail(e.line, f"unsupported operator {head!r} in {_show(e)} (expected and, or, <=, >=, =)")

    def comparison(self, op: str, args: list, e) -> list:
        if len(args) < 2:
            self.fail(e.line, f"{_show(e)}: a comparison needs two operands")
        if op in ("<", ">"):
            self.fail(
                e.line,
                f"{_show(e)}: strict inequalities on inputs are not supported (a box is closed; write <= or >=)",
            )
        conj = []
        for a, b in zip(args, args[1:]):  # (<= a b c) means a <= b and b <= c
            if op == ">=":
                a, b = b, a  # now a <= b (or a = b)
            va, vb = self.number(a), self.number(b)
            if va is not None and vb is not None:
                if not (va == vb if op == "=" else va <= vb):
                    return []  # a false comparison: this conjunction is empty
                continue
            if va is None and vb is None:
                self.fail(e.line, f"{_show(e)}: compares two variables; only bounds on single inputs form a box")
            var, value = (a, vb) if va is None else (b, va)
            k = self.input_index(var)
            if op == "=":
                conj.append((k, value, value))
            elif va is None:  # var <= value
                conj.append((k, None, value))
            else:  # value <= var
                conj.append((k, value, None))
        return [conj]

    def input_index(self, atom: _Atom) -> int:
        m = _VAR_RE.fullmatch(atom.text)
        if atom.text not in self.declared:
            self.fail(atom.line, f"variable {atom.text} is used but never declared")
        return int(m.group(2))


def parse_vnnlib(text: str, path: str | os.PathLike | None = None) -> Box | BoxUnion:
    """The input set of a VNN-LIB property given as text (module docstring)."""
    p = None if path is None else os.fspath(path)
    r = _Reader(p)
    asserts = []
    for cmd in _sexprs(text, p):
        if not cmd.items or not isinstance(cmd.items[0], _Atom):
            r.fail(cmd.line, f"expected a command such as (declare-const X_0 Real), got {_show(cmd)}")
        head = cmd.items[0].text
        if head == "declare-const":
            if len(cmd.items) != 3 or not all(isinstance(v, _Atom) for v in cmd.items[1:]):
                r.fail(cmd.line, f"malformed declaration {_show(cmd)}; expected (declare-const X_0 Real)")
            name, sort = cmd.items[1].text, cmd.items[2].text
            m = _VAR_RE.fullmatch(name)
            if not m:
                r.fail(cmd.line, f"variable {name!r} is neither X_i (input) nor Y_j (output)")
            if sort != "Real":
                r.fail(cmd.line, f"variable {name} has sort {sort}; expected Real")
            if name in r.declared:
                r.fail(cmd.line, f"variable {name} is declared twice (first at line {r.declared[name]})")
            r.declared[name] = cmd.line
            if m.group(1) == "X":
                r.inputs.add(int(m.group(2)))
        elif head == "assert":
            if len(cmd.items) != 2:
                r.fail(cmd.line, f"malformed assert {_show(cmd)}; expected (assert FORMULA)")
            asserts.append(cmd.items[1])
        elif head in _IGNORED_COMMANDS:
            continue
        else:
            r.fail(cmd.line, f"unsupported command {head!r}")

    n = len(r.inputs)
    if n == 0:
        raise InputError(p, "declares no input variables X_0, X_1, ...")
    if r.inputs != set(range(n)):
        missing = min(set(range(n)) - r.inputs)
        raise InputError(p, f"input variables must be X_0 ... X_{n - 1} without gaps; X_{missing} is not declared")

    dnf: list = [[]]
    outputs = 0
    for a in asserts:
        names = r.variables(a)
        for name in sorted(names):
            if name not in r.declared:
                r.fail(a.line, f"variable {name} is used but never declared")
        kinds = {name[0] for name in names}
        if kinds == {"Y"}:
            outputs += 1
            continue  # an output constraint: the property, not the input set
        if kinds == {"X", "Y"}:
            r.fail(a.line, "this assert mixes input (X_) and output (Y_) variables; only input constraints can be read")
        dnf = [c + d for c in dnf for d in r.dnf(a)]
        if len(dnf) > MAX_BOXES:
            r.fail(a.line, f"the input constraints expand into more than {MAX_BOXES} boxes")

    boxes: list[Box] = []
    for conj in dnf:
        lo: list[Fraction | None] = [None] * n
        hi: list[Fraction | None] = [None] * n
        for k, a, b in conj:
            if a is not None and (lo[k] is None or a > lo[k]):
                lo[k] = a
            if b is not None and (hi[k] is None or b < hi[k]):
                hi[k] = b
        for k in range(n):
            if lo[k] is None or hi[k] is None:
                side = "lower" if lo[k] is None else "upper"
                where = " in one of the disjuncts" if len(dnf) > 1 else ""
                line = r.declared[f"X_{k}"]
                raise InputError(p, f"line {line}: input X_{k} has no {side} bound{where}; the input set must be a box")
        if any(a > b for a, b in zip(lo, hi)):
            if len(dnf) == 1:
                k = next(k for k in range(n) if lo[k] > hi[k])
                raise InputError(p, f"input X_{k} has lower bound {short_number(lo[k])} > upper bound "
                                    f"{short_number(hi[k])}: "
                                    "the input box is empty")
            continue  # an empty disjunct adds nothing to the union
        box = Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]
        if box not in boxes:
            boxes.append(box)
    if not boxes:
        raise InputError(p, "the input constraints are unsatisfiable: every disjunct is an empty box")
    if len(boxes) == 1:
        return replace(boxes[0], output_asserts=outputs)
    bounding = Box(
        tuple(min(b.lower[k] for b in boxes) for k in range(n)),
        tuple(max(b.upper[k] for b in boxes) for k in range(n)),
    )
    return BoxUnion(tuple(boxes), bounding)


def load_vnnlib(path: str | os.PathLike) -> Box | BoxUnion:
    """Read the input box (or union of boxes) of a VNN-LIB file.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "prop.vnnlib")
    ...     _ = open(p, "w").write("(declare-const X_0 Real)\\n(assert (<= X_0 0.6))\\n(assert (>= X_0 -0.5))\\n")
    ...     load_vnnlib(p)
    Box(lower=(Fraction(-1, 2),), upper=(Fraction(3, 5),))
    """
    p = os.fspath(path)
    data = read_bytes(p)
    if not data.strip():
        raise InputError(p, "file is empty")
    if b"\x00" in data:
        raise InputError(p, "binary data, not a VNN-LIB text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(p, f"not UTF-8 text (byte {e.start})") from None
    return parse_vnnlib(text, p)
