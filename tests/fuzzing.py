"""Shared machinery of the fuzz tests (tests/test_fuzz_*.py): hostile documents and the contract.

The contract every reader and every certificate kind must keep on ANY input
(issue #18, docs/cli.md "Limits"): exit 0/1/3 with a correct result, or exit 2
with exactly one stderr line that names the file; never exit 4, never a
traceback, and within a time bound.  "Correct" is decided here independently
of exact_inj: an accepted witness is replayed by tests/reference_network.py's
evaluation, an accepted proof of injectivity (on a network small enough) is
compared with tests/reference_network.py's decision, and a conv layer is
densified by the in-test convolution of tests/test_conv_structured.py.

Near-valid documents start from a valid one and change one to three things:
a field deleted, replaced by a hostile value (huge integers and exponents,
wrong types, deep nesting), duplicated, wrapped in a list, enlarged,
retyped, or two entries swapped; or the text is truncated, a byte changed,
or replaced by random bytes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
import time
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import reference
import reference_network as refnet

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ROOT / "instances"

# Examples per target: a few hundred in the default suite, 10^4 with -m slow
# (docs/testing.md records the slow run).  EXACT_INJ_FUZZ overrides both.
DEFAULT_EXAMPLES = int(os.environ.get("EXACT_INJ_FUZZ", "200"))
SLOW_EXAMPLES = int(os.environ.get("EXACT_INJ_FUZZ_SLOW", "10000"))

# One example may take this long (wall clock, seconds) on a loaded 2-core
# machine.  The documents are small (< 60 kB) and the limits in docs/cli.md
# keep their checks linear, so an example near this is a finding.
TIME_BOUND = 20.0


def fuzz_settings(n: int) -> settings:
    # derandomize: the same examples on every run, so a failure reproduces
    # (and CI does not flake on a new draw); the slow run explores further
    # from the same seed.
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------
# running the command line in-process
# --------------------------------------------------------------------------


def run_cli(argv: list[str]) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds) of ``exact-inj ARGV``, in this process.

    In-process so that hundreds of examples fit the default suite; the CLI's
    own top-level handler (exit 4 on an unexpected exception) is what is
    being tested, so nothing here catches exceptions for it.
    """
    from exact_inj.cli import app, main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    env = os.environ.pop("EXACT_INJ_DEBUG", None)
    # The CLI leaves through os._exit when it abandons a reading or deciding
    # thread past --time-limit (app._exit_now); in this process that would end
    # the test run itself (exit 3, no report: the first safetensors example
    # imports safetensors, which can take more than the 1 s limit).  Here it
    # raises SystemExit with the same code instead.
    real_exit = app._exit_now

    def exit_here(code: int) -> None:
        raise SystemExit(code)

    app._exit_now = exit_here
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse usage errors exit through SystemExit
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        app._exit_now = real_exit
        if env is not None:
            os.environ["EXACT_INJ_DEBUG"] = env
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0


# Exit codes seen by assert_contract in this process (the slow runs print them).
CONTRACT_COUNTS: dict[int, int] = {}


def assert_contract(rc: int, out: str, err: str, seconds: float, path: str, allowed: set[int]) -> None:
    """The CLI contract on hostile input (module docstring)."""
    CONTRACT_COUNTS[rc] = CONTRACT_COUNTS.get(rc, 0) + 1
    assert rc != 4, f"exit 4 (internal error) on {path}: {err.strip()[:500]}"
    assert "Traceback" not in err and "Traceback" not in out, err[:2000]
    assert rc in allowed | {2}, f"exit {rc} not in {sorted(allowed | {2})}: {err.strip()[:300]}"
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"exit 2 needs exactly one stderr line, got {len(lines)}: {err[:500]}"
        assert path in lines[0], f"the message must name the file {path}: {lines[0][:300]}"
        assert len(lines[0]) < 2000, f"a message of {len(lines[0])} characters"
    assert seconds < TIME_BOUND, f"{seconds:.1f} s on {path}"


# --------------------------------------------------------------------------
# hostile JSON documents
# --------------------------------------------------------------------------


class Raw:
    """A JSON literal written as is (Python cannot json.dumps a 5000-digit int)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:30]!r})"


class DupDict(list):
    """An object whose (key, value) pairs may repeat a key."""


def dumps(obj) -> str:
    if isinstance(obj, Raw):
        return obj.text
    if isinstance(obj, DupDict):
        return "{" + ",".join(json.dumps(k) + ":" + dumps(v) for k, v in obj) + "}"
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dumps(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    return json.dumps(obj)


BIG = "1" + "0" * 5000
HOSTILE = [
    Raw(BIG), Raw("-" + BIG), Raw("1e10000"), Raw("-1e10000"), Raw("1e-10000"), Raw("1e10001"), Raw("1e999999999"),
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("0.1"), Raw("-0.0"), Raw("2.5"), Raw("1E400"),
    Raw("[" * 300 + "]" * 300), BIG, "1e10000", "1/0", "1/3", "-7/2", "0x10", "", " ", "nan", "1_000",
    0, 1, -1, 2, 3, 7, 2**31, 2**61 - 1, 2**62, -(2**63), True, False, None, "relu", "linear", "box", "reals",
    "injective", "not_injective", "unknown", "tree", "end_to_end", "x" * 5000, "\u202e\n\x00", [], {}, [[]], [0],
    [[0]], [1, 2], [[1, 0], [0, 1]], {"kind": "reals"}, {"kind": "box", "lower": ["0"], "upper": ["1"]},
    [[1, 2], [3, 4], [5]], {"layers": []},
]


def _paths(obj, prefix=()):
    """Every location in a document (the root is ())."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def _mutate_once(data, doc):
    paths = _paths(doc)
    path = data.draw(st.sampled_from(paths), label="where")
    op = data.draw(st.sampled_from(["delete", "replace", "replace", "replace", "duplicate", "wrap", "enlarge",
                                    "retype", "swap", "dupkey"]), label="op")
    node = _get(doc, path)
    if not path:  # the root
        return copy.deepcopy(data.draw(st.sampled_from(HOSTILE))) if op in ("delete", "replace") else [doc]
    parent = _get(doc, path[:-1])
    key = path[-1]
    if op == "delete":
        del parent[key]
    elif op == "replace":
        parent[key] = copy.deepcopy(data.draw(st.sampled_from(HOSTILE), label="value"))
    elif op == "duplicate" and isinstance(parent, list):
        # A deep copy, not a JSON round trip: the node may hold Raw literals.
        parent.insert(key, copy.deepcopy(node))
    elif op == "wrap":
        parent[key] = [node]
    elif op == "enlarge" and isinstance(node, list) and node:
        parent[key] = copy.deepcopy(node * data.draw(st.integers(2, 40), label="times"))
    elif op == "enlarge" and isinstance(node, str):
        parent[key] = node * data.draw(st.integers(2, 200), label="times")
    elif op == "retype":
        if isinstance(node, str):
            try:
                parent[key] = Raw(node) if node.lstrip("-").replace("/", "").isdigit() and "/" not in node else int(node)
            except ValueError:
                parent[key] = [node]
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            parent[key] = str(node)
        elif isinstance(node, list):
            parent[key] = {str(i): v for i, v in enumerate(node)}
        elif isinstance(node, dict):
            parent[key] = list(node.values())
        else:
            parent[key] = str(node)
    elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
        other = data.draw(st.integers(0, len(parent) - 1), label="other")
        parent[key], parent[other] = parent[other], parent[key]
    elif op == "dupkey" and isinstance(parent, dict):
        dup = DupDict(parent.items())
        dup.append((key, copy.deepcopy(data.draw(st.sampled_from(HOSTILE[:20]), label="value"))))
        if len(path) == 1:
            return dup
        _get(doc, path[:-2])[path[-2]] = dup
    else:
        parent[key] = copy.deepcopy(data.draw(st.sampled_from(HOSTILE), label="value"))
    return doc


def _has_dup(doc) -> bool:
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, DupDict):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def mutated_json(data, base: dict) -> bytes:
    """A near-valid document: 1-3 structural changes, then maybe a text-level one."""
    doc = json.loads(json.dumps(base))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        if not isinstance(doc, (dict, list)) or isinstance(doc, DupDict) or _has_dup(doc):
            break  # a duplicated key is written as text: the last change
        doc = _mutate_once(data, doc)
    text = dumps(doc).encode()
    tail = data.draw(st.sampled_from(["none"] * 6 + ["truncate", "byte", "bom", "random"]), label="text")
    if tail == "truncate" and text:
        text = text[: data.draw(st.integers(0, len(text) - 1), label="cut")]
    elif tail == "byte" and text:
        i = data.draw(st.integers(0, len(text) - 1), label="at")
        text = text[:i] + bytes([data.draw(st.integers(0, 255), label="byte")]) + text[i + 1:]
    elif tail == "bom":
        text = b"\xef\xbb\xbf" + text
    elif tail == "random":
        text = data.draw(st.binary(max_size=200), label="bytes")
    return text


def mutated_bytes(data, base: bytes) -> bytes:
    """A binary file (NPZ, ONNX, safetensors, torch) truncated, with bytes changed, or random."""
    op = data.draw(st.sampled_from(["truncate", "flip", "flip", "insert", "random", "same"]), label="op")
    if op == "truncate":
        return base[: data.draw(st.integers(0, len(base) - 1), label="cut")]
    if op == "random":
        return data.draw(st.binary(max_size=400), label="bytes")
    if op == "same":
        return base
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8), label="count")):
        i = data.draw(st.integers(0, len(out) - 1), label="at")
        b = data.draw(st.integers(0, 255), label="byte")
        if op == "flip":
            out[i] = b
        else:
            out[i:i] = bytes([b])
    return bytes(out)


# --------------------------------------------------------------------------
# base documents: one valid certificate of every kind, made by the engine
# --------------------------------------------------------------------------

CERT_SOURCES = {
    # kind: (network file, --domain)
    "witness": ("fig2_not_injective.json", "reals"),
    "witness_box": ("fig2_not_injective.json", "box:-2:2,-2:2"),
    "tree": ("quickstart.json", "reals"),
    "tree_box": ("quickstart.json", "box:-1:1,-1:1,-1:1"),
    "structural": ("fig2_injective.json", "reals"),
    "conv_structural": ("dcgan_1d_injective.json", "reals"),
    "layerwise": ("networks/relu_identity_after_fig2.json", "reals"),
    "linear_rank": ("networks/fig2_then_full_rank_linear.json", "reals"),
    "end_to_end": ("networks/b_minus_b_difference.json", "reals"),
    "empty_domain": ("fig2_injective.json", "box:1:0,0:1"),
    # issue #15: a normalised network (irrational batch normalisation kept
    # symbolic) proved layer by layer with surd_structural stages.
    "surd_structural": ("generators/irrational_keep.onnx", "reals"),
}


# The kinds issue #16 added, made by their own commands: a carry proof
# (`injectivize`) and the three preimage answers of `invert` (empty, point,
# set), each a self-contained file that `exact-inj check` reads.
ARGV_SOURCES = {
    "carry": ["injectivize", "networks/abs_value_fold.json"],
    "inverse_empty": ["invert", "networks/abs_value_fold.json", "--y=-1"],
    "inverse_point": ["invert", "networks/b_minus_b_difference.json", "--from-input", "1/2,-3"],
    "inverse_set": ["invert", "networks/abs_value_fold.json", "--from-input", "1"],
    # The layer-by-layer answers (certificate kind "peel"): a point, an empty
    # answer closed by an inconsistent-equations multiplier u, and a partial
    # peel (chain, then a case split on the layer below).
    "inverse_point_peel": ["invert", "fig2_injective.json", "--from-input", "1/2,1/2"],
    "inverse_empty_peel": ["invert", "fig2_injective.json", "--y=1,1,1,1"],
    "inverse_point_chain": ["invert", "networks/fig2_then_full_rank_linear.json", "--from-input", "1/2,1/2"],
}
PEEL_SHAPES = {"inverse_point_peel": {"kind"}, "inverse_empty_peel": {"kind", "chain", "u"},
               "inverse_point_chain": {"kind", "chain", "then"}}
CERT_KINDS = sorted(CERT_SOURCES) + sorted(ARGV_SOURCES)


def base_certificate(kind: str) -> dict:
    """A valid certificate of this kind, as plain JSON (numbers as strings); a fresh copy
    each call, so that a test changing it cannot change another's."""
    return copy.deepcopy(_base_certificate(kind))


@lru_cache(maxsize=None)
def _argv_certificate(kind: str) -> dict:
    import tempfile

    cmd, name, *rest = ARGV_SOURCES[kind]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        if cmd == "injectivize":
            argv = [cmd, str(INSTANCES / name), "-o", str(Path(tmp) / "net.json"), "--certificate", str(out)]
        else:
            argv = [cmd, str(INSTANCES / name), *rest, "--quiet", "--certificate", str(out)]
        rc, _, err, _ = run_cli(argv)
        assert rc == 0, f"{kind}: exit {rc}: {err}"
        obj = json.loads(out.read_text())
    if cmd == "injectivize":
        assert obj["proof"]["kind"] == "carry", obj
    else:
        assert obj["preimage"] == kind.split("_")[1], obj["preimage"]
        cert = obj["certificate"]
        if kind in PEEL_SHAPES:
            assert cert["kind"] == "peel" and set(cert) == PEEL_SHAPES[kind], cert
        else:
            assert cert["kind"] == "cover", cert
    return obj


@lru_cache(maxsize=None)
def _base_certificate(kind: str) -> dict:
    if kind in ARGV_SOURCES:
        return _argv_certificate(kind)
    import exact_inj
    from exact_inj.cli.app import parse_domain
    from exact_inj.io.load import load_network

    name, dom = CERT_SOURCES[kind]
    net = load_network(INSTANCES / name)
    # The empty box is meant here (the empty_domain kind), so it is allowed explicitly.
    v = exact_inj.verify(net, domain=parse_domain(dom, net.input_dim, allow_empty=True), time_limit=60)
    assert v.certificate is not None, f"{name} on {dom}: {v.status} ({v.reason})"
    obj = v.certificate.to_json()
    want = kind.split("_box")[0]
    got = obj["proof"]["kind"] if "proof" in obj else "witness"
    if want in ("linear_rank", "surd_structural"):
        assert got == "layerwise" and any(s["proof"]["kind"] == want for s in obj["proof"]["stages"])
    else:
        assert got == want, f"{name}: expected a {want} certificate, got {got}"
    return json.loads(json.dumps(obj))


# --------------------------------------------------------------------------
# the independent oracle for accepted certificates
# --------------------------------------------------------------------------


def _dense_layers(net_obj) -> list | None:
    """The network as (W, b, act) lists of Fractions, read here (not by exact_inj),
    with conv layers densified by the in-test convolution; None if too big."""
    from test_conv_structured import ksize_of, ref_operator, ref_pads

    layers = []
    for L in net_obj["layers"]:
        if L.get("type") == "conv":
            K = L["kernel"]
            N = L["input_size"]
            pads = ref_pads(L.get("pad", 0), ksize_of(K))
            if L["in_channels"] * prod_(N) > 64:
                return None
            W = ref_operator(K, N, L.get("padding", "zero"), pads)
            per = len(W) // len(K)
            b = [Fraction(L["bias"][o]) if "bias" in L else Fraction(0) for o in range(len(K)) for _ in range(per)]
        else:
            W = [[Fraction(v) for v in row] for row in L["weight"]]
            b = [Fraction(v) for v in L.get("bias", [0] * len(W))]
        layers.append((W, b, L.get("activation", "relu")))
    return layers


def pytest_fail(msg: str):
    raise AssertionError(msg)


def prod_(xs) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def _domain(obj) -> object:
    d = obj.get("domain", {"kind": "reals"})
    if d["kind"] == "box":
        return ([Fraction(v) for v in d["lower"]], [Fraction(v) for v in d["upper"]])
    return d["kind"]


def confirm_accepted(path: Path) -> None:
    """A certificate `exact-inj check` accepted says something true (module docstring)."""
    # The oracle reads numbers of any length; the limit on int() is restored
    # at once, since the product under test must work with it in place.
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        _confirm_accepted(path)
    finally:
        sys.set_int_max_str_digits(old)


def _confirm_accepted(path: Path) -> None:
    # Read as the documented format says (a number is the decimal it spells),
    # with the standard library only.
    obj = json.loads(path.read_bytes().decode("utf-8-sig"), parse_float=Fraction,
                     parse_constant=lambda c: pytest_fail(f"accepted {c}"))
    if "normalisations" in obj["network"]:
        # Irrational batch normalisations: not a rational network, so this
        # oracle cannot evaluate it; tests/test_generators_review15.py replays
        # such networks with the roots in 80-digit decimals instead.
        return
    layers = _dense_layers(obj["network"])
    if layers is None:
        return
    dom = _domain(obj)
    if obj.get("format") == "exact_inj/inverse":
        _confirm_preimage(obj, layers, dom)
        return
    if obj["verdict"] == "not_injective":
        w = obj["witness"]
        assert refnet.is_network_collision(layers, dom, [Fraction(v) for v in w["x"]], [Fraction(v) for v in w["y"]]), \
            "an accepted witness is not a collision"
        return
    n = len(layers[0][0][0])
    relus = sum(len(W) for W, _, act in layers if act == "relu")
    if len(layers) == 1 and layers[0][2] == "relu" and n <= 3 and len(layers[0][0]) <= 40:
        # One layer: tests/reference.py's finite reduction (fast for n <= 3).
        W, b, _ = layers[0]
        if dom == "reals":
            ok, pair = reference.reference_decide(W, b)
        elif dom == "orthant":
            ok, pair = reference.reference_decide_on(W, b, *reference.orthant_constraints(n), n)
        else:
            ok, pair = reference.reference_decide_box(W, b, *dom)
        assert ok, f"an accepted proof of injectivity, but tests/reference.py finds {pair}"
    elif n <= 3 and relus <= 8:
        got, pair = refnet.decide_network(layers, dom)
        assert got == "injective", f"an accepted proof of injectivity, but the reference finds {pair}"


def _confirm_preimage(obj, layers, dom) -> None:
    """An accepted preimage answer against tests/test_invert.py's brute force
    (every activation pattern, Fourier-Motzkin; no exact_inj import)."""
    from test_invert import reference_preimage

    if any(act not in ("relu", "linear") for _, _, act in layers):
        return  # the reference evaluates relu and linear layers only
    n = len(layers[0][0][0])
    y = [Fraction(v) for v in obj["y"]]
    points = [tuple(Fraction(v) for v in p) for p in obj.get("points", [])]
    for p in points:
        assert refnet.in_domain(dom, p), f"an accepted preimage point {p} is outside the domain"
        assert list(refnet.evaluate(layers, p)) == y, f"an accepted preimage point {p} does not map to y"
    relus = sum(len(W) for W, _, act in layers if act == "relu")
    if n > 3 or relus > 8:
        return
    ref_dom = ("reals",) if dom == "reals" else ("orthant",) if dom == "orthant" else ("box",) + tuple(dom)
    got, x = reference_preimage(layers, y, n, ref_dom)
    assert got == obj["preimage"], f"an accepted '{obj['preimage']}' answer, but the reference says {got}"
    if got == "point":
        assert points == [tuple(x)], f"an accepted point {points}, but the reference's point is {x}"


# --------------------------------------------------------------------------
# the shipped JSON Schemas (exact_inj/schemas/)
# --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def schema_validator(name: str):
    """A jsonschema validator for exact_inj/schemas/NAME.schema.json, read from the installed package."""
    from importlib.resources import files

    import jsonschema
    from referencing import Registry, Resource

    texts = {n: json.loads(files("exact_inj").joinpath(f"schemas/{n}.schema.json").read_text())
             for n in ("network", "certificate", "inverse")}
    registry = Registry().with_resources((t["$id"], Resource.from_contents(t)) for t in texts.values())
    cls = jsonschema.validators.validator_for(texts[name])
    cls.check_schema(texts[name])
    return cls(texts[name], registry=registry)


def schema_errors(name: str, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in schema_validator(name).iter_errors(doc)]


def plain_json(path: Path):
    """The document as the standard library reads it, or None where it cannot
    (a number past int()'s digit limit, a duplicated key is kept as the last)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except ValueError:
        return None
