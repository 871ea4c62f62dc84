"""What `exact-inj verify` prints for a person (docs/cli.md): the verdict in
one line, why, the witness or what the proof is, and for unknown what was
tried and what limit stopped it."""

from __future__ import annotations

from ..certify.schema import Status
from ..collision import describe
from ..numbers import fraction_to_str
from ..verdict import approx

__all__ = ["SHOWN_COORDINATES", "approx_vector", "collision_lines", "human", "plural", "vector"]

# Longer vectors are shortened on screen (an image has thousands of inputs);
# --json and --certificate always hold every coordinate.
SHOWN_COORDINATES = 24


def plural(k: int, word: str) -> str:
    """'1 input', '2 inputs'.

    >>> plural(1, "input"), plural(784, "input")
    ('1 input', '784 inputs')
    """
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def vector(v) -> str:
    """(1/2, 0, 3) in full, or the first coordinates of a long vector and a count.

    >>> from fractions import Fraction
    >>> vector([Fraction(1, 2), Fraction(0)])
    '(1/2, 0)'
    """
    head = ", ".join(fraction_to_str(a) for a in v[:SHOWN_COORDINATES])
    if len(v) <= SHOWN_COORDINATES:
        return f"({head})"
    return f"({head}, ...)  [{len(v)} coordinates; --json or --certificate gives all]"


def approx_vector(v) -> str:
    """The same vector as decimals, 6 significant digits (an approximation).

    >>> from fractions import Fraction
    >>> approx_vector([Fraction(1, 3), Fraction(-2)])
    '(0.333333, -2)'
    """
    head = ", ".join(f"{approx(a):.6g}" for a in v[:SHOWN_COORDINATES])
    return f"({head}{', ...' if len(v) > SHOWN_COORDINATES else ''})"


def _listed(d: dict, what: str = "") -> str:
    """'3 (0, 4, 7)' or '300 (0, 1, ..., 63, and 236 more)' for an indices() dict."""
    shown = ", ".join(map(str, d["indices"][:SHOWN_COORDINATES]))
    more = d["count"] - min(len(d["indices"]), SHOWN_COORDINATES)
    if not d["count"]:
        return f"0{what}"
    return f"{d['count']}{what} ({shown}{f', ... and {more} more' if more else ''})"


def collision_lines(net, w) -> list[str]:
    """The direction y - x and, per layer, the active neurons at x and at y
    and where the two first have equal outputs (exact_inj.collision).

    >>> from fractions import Fraction as F
    >>> from exact_inj.model import Layer, Network
    >>> from exact_inj.certify.schema import Witness
    >>> net = Network((Layer.from_rows([[1, 0], [0, 1]]), Layer.from_rows([[1, 1], [1, -1]])))
    >>> print("\\n".join(collision_lines(net, Witness((F(-1), F(1)), (F(-2), F(1))))))
      direction y - x: changes 1 of 2 inputs (input 0 by -1)
      layer 1 (dense, 2 relu): active at x 1 (1), at y 1 (1); outputs equal at x and y: the collision happens here
        at the midpoint of its inputs at x and y, 1 row (1) is active, of rank 1 < 2 inputs
      layer 2 (dense, 2 relu): active at x 1 (0), at y 1 (0); outputs equal at x and y
    """
    d = describe(net, w.x, w.y)
    dr = d["direction"]
    moved = ", ".join(f"input {j} by {v}" for j, v in zip(dr["indices"][:SHOWN_COORDINATES], dr["values"]))
    more = dr["changed"] - min(len(dr["indices"]), SHOWN_COORDINATES)
    lines = [f"  direction y - x: changes {dr['changed']} of {plural(net.input_dim, 'input')} "
             f"({moved}{f', ... and {more} more' if more else ''})"]
    if d["layers"] is None:
        lines.append(f"  layers: {d['layers_note']}")
    for e in d["layers"] or []:
        head = f"  layer {e['layer']} ({e['type']}, {e['units']} {e['activation']}): "
        if "active_at_x" in e:
            head += f"active at x {_listed(e['active_at_x'])}, at y {_listed(e['active_at_y'])}; "
        if e["outputs_differ"]:
            head += f"outputs differ in {plural(e['outputs_differ'], 'coordinate')}"
        else:
            head += "outputs equal at x and y"
        c = e.get("collision")
        if c is None:
            lines.append(head)
            continue
        lines.append(head + ": the collision happens here")
        rank = (f"of rank {c['rank']} < {plural(c['inputs'], 'input')}" if c["rank"] is not None
                else f"rank {c['rank_note']}")
        a = c["active"]
        one = a["count"] == 1
        lines.append(f"    at the midpoint of its inputs at x and y, {_listed(a, ' row' if one else ' rows')} "
                     f"{'is' if one else 'are'} active, {rank}")
    return lines


def human(path: str, net, verdict, certificate_file: str | None = None, notes: list[str] | None = None) -> str:
    layer = net.layers[0]
    head = {
        Status.INJECTIVE: "INJECTIVE",
        Status.NOT_INJECTIVE: "NOT INJECTIVE",
        Status.UNKNOWN: "UNKNOWN",
    }[verdict.status]
    dom = verdict.certificate.domain if verdict.certificate is not None else None
    on = "" if dom is None or dom.kind == "reals" else f" on {dom.describe()}"
    if net.is_single_relu_layer and hasattr(layer, "spec"):
        shape = (f"x -> ReLU(Cx + b), C a {layer.spec.describe()}, {plural(layer.in_dim, 'input')}, "
                 f"{plural(layer.out_dim, 'row')}")
    elif net.is_single_relu_layer:
        shape = f"x -> ReLU(Wx + b), {plural(layer.in_dim, 'input')}, {plural(layer.out_dim, 'row')}"
    else:
        acts = " -> ".join(f"{L.out_dim} {L.activation}" for L in net.layers)
        shape = f"network {plural(net.input_dim, 'input')} -> {acts}"
    lines = [
        f"{path}: {head}{on}  ({shape}; route: {verdict.route}; {verdict.seconds:.3f} s)",
        f"  why: {verdict.reason}",
    ]
    info = verdict.info
    if verdict.status is Status.NOT_INJECTIVE:
        w = verdict.witness
        lines.append(f"  x      = {vector(w.x)}")
        lines.append(f"  y      = {vector(w.y)}")
        if hasattr(net, "evaluate"):
            lines.append(f"  f(x) = f(y) = {vector(net.evaluate(w.x))}")
        else:  # irrational batch normalisations: equal before them, so equal after (never evaluated)
            lines.append(f"  W1 x + b1 = W1 y + b1 = {vector(net.layers[0].pre_activation(w.x))} (layer 1's affine "
                         "map, before any normalisation)")
        lines.append("  approximately (decimals, for reading only; the exact values above are the answer):")
        lines.append(f"    x ~ {approx_vector(w.x)}")
        lines.append(f"    y ~ {approx_vector(w.y)}")
        lines.extend(collision_lines(net, w))
    elif verdict.status is Status.INJECTIVE:
        lines.append(f"  meaning: {verdict.meaning}")
    if verdict.certificate is not None:
        lines.append(f"  checked exactly: {info.get('check')} in {info.get('check_seconds', 0):.4f} s; "
                     f"certificate size {info.get('certificate_size')}")
    if certificate_file and verdict.certificate is not None:
        lines.append(f"  certificate written to {certificate_file} (re-check: exact-inj check {certificate_file})")
    if "nodes" in info:
        lines.append(f"  search: {info['nodes']} nodes, {info.get('leaves')} leaves, {info.get('cores')} cores, "
                     f"{info.get('lps', 0) + info.get('core_lps', 0)} LPs")
    if verdict.status is Status.UNKNOWN:
        lines.append(f"  tried: {', '.join(info.get('tried', []))}")
        if info.get("fewest_active_rows_found") is not None:
            lines.append(f"  bound: the fewest rows active at any point found is {info['fewest_active_rows_found']}")
        if info.get("open_cases") is not None:
            notes_ = info.get("notes") or []
            if any("node limit" in s for s in notes_):
                lines.append(f"  open cases: {info['open_cases']}; raise --max-nodes to go further")
            else:
                lines.append(f"  open cases: {info['open_cases']}; raise --time-limit to go further")
    for note in notes or []:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
