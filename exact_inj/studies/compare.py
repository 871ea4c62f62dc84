"""`exact-inj compare`: the exact engine and every heuristic, side by side.

For each instance the engine decides injectivity on R^n (with a checked
certificate, or "unknown"), each heuristic of exact_inj/studies/heuristics.py
(and exact_inj/studies/ball.py) makes its claim, and every claim is held against
the engine's answer (docs/theory.md, section 10):

- a claim is **refuted** only by a certificate that passed the exact checker:
  an "injective" claim by a collision whose two points lie in the claim's
  domain (on R^n: the engine's witness; on a ball: that witness if both points
  lie in the ball, or, for a bias-free layer, the witness scaled into the ball,
  re-checked); a "not_injective" claim by a proof of injectivity on a domain
  containing the claim's (the engine's proofs are about R^n, which contains
  every ball);
- "no_counterexample" is never refuted, and an engine "unknown" refutes nothing;
- a claim that carries its own checked collision is never refuted; if the
  engine also produced a checked proof, both cannot be right and the row is
  flagged as a conflict (an engine or checker bug).

Each refutation names the certificate that refutes it (written to
``OUT/certificates/``), which ``exact-inj check`` re-checks on its own.

Outputs: a terminal table, and ``compare.json``, ``compare.csv`` and
``compare.md`` in the output directory.  The JSON object is
``{"rows": [{"instance", "exact": {"verdict", "seconds"}, "heuristics": {NAME:
{"claim", "seconds", "refuted", ...}}}]}``; other tools script against it.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import os
import sys
import time
from fractions import Fraction
from math import isqrt
from typing import Any, Callable, Iterable, Sequence

from ..certify.schema import Certificate, Witness
from ..model.domain import Domain
from ..certify.check import check
from ..errors import OperatorTooLarge
from .claim import INJECTIVE, NO_COUNTEREXAMPLE, NOT_INJECTIVE, REALS, Claim
from .heuristics import HEURISTICS, run_heuristic
from ..cli.argtypes import positive_float as _positive_float
from ..errors import InputError
from ..io.load import load_network
from ..numbers import parse_exact
from ..run import work_done
from ..model.network import Layer, Network
from ..certify.schema import Status
from ..api import verify
from ..verdict import Verdict

SUFFIXES = (".json", ".npz")
SKIP_NAMES = ("expected.json",)

CSV_HEADER = [
    "instance", "exact_verdict", "exact_seconds", "heuristic", "claim", "domain", "supported",
    "seconds", "refuted", "refuting_certificate",
]

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- instances


def collect(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Instance files from files and folders (a folder: its *.json and *.npz,
    sorted, without expected.json).  Bad paths raise InputError (one line)."""
    out: list[str] = []
    paths = list(paths)
    if not paths:
        raise InputError(None, "compare needs at least one instance file or folder")
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted(
                os.path.join(p, f) for f in os.listdir(p)
                if f.endswith(SUFFIXES) and f not in SKIP_NAMES and os.path.isfile(os.path.join(p, f))
            )
            if not found:
                raise InputError(p, "folder holds no instance files (*.json or *.npz)")
            out.extend(found)
        elif os.path.isfile(p):
            out.append(p)
        elif os.path.exists(p):
            raise InputError(p, "not a regular file or folder")
        else:
            raise InputError(p, "no such file or folder")
    return out


# --------------------------------------------------------------------------- refutation


def _in_ball(x: Sequence[Fraction], r: Fraction) -> bool:
    return sum(v * v for v in x) <= r * r


def _scaled_into_ball(net: Network, w: Witness, r: Fraction) -> Certificate | None:
    """A bias-free layer is positively homogeneous (ReLU(W tx) = t ReLU(Wx), t > 0),
    so t x and t y collide whenever x and y do.  Scale a witness into the ball
    of radius r and re-check it exactly; None if the layer has a bias."""
    layer = net.layers[0]
    if any(b != 0 for b in layer.bias):
        return None
    q = max(sum(v * v for v in w.x), sum(v * v for v in w.y))
    # t = 1/k with k^2 >= q / r^2, so |t x| <= r and |t y| <= r.
    ratio = q / (r * r)
    k = max(1, isqrt(ratio.numerator // ratio.denominator + 1) + 1)
    t = Fraction(1, k)
    x = tuple(t * v for v in w.x)
    y = tuple(t * v for v in w.y)
    cert = Certificate(net, Domain(), Status.NOT_INJECTIVE, Witness(x, y))
    if not check(cert).valid or not (_in_ball(x, r) and _in_ball(y, r)):
        return None  # pragma: no cover - homogeneity makes both hold
    return cert


def domains_supported() -> bool:
    """True: the engine decides on boxes.  Kept one release for callers of 0.1,
    which asked because domains were then still to come."""
    return True


def inner_box(n: int, r: Fraction):
    """The box [-r/k, r/k]^n with k = ceil(sqrt n): inside the closed ball of radius r
    (|x|^2 <= n r^2 / k^2 <= r^2)."""
    k = isqrt(n)
    k += k * k < n
    return Domain.box([-r / k] * n, [r / k] * n)


def outer_box(n: int, r: Fraction):
    """The box [-r, r]^n, which contains the closed ball of radius r."""
    return Domain.box([-r] * n, [r] * n)


BoxDecider = Callable[[Any], Verdict]


def refute(claim: Claim, verdict: Verdict, net: Network, decide_on: BoxDecider | None = None) -> dict[str, Any]:
    """Hold one claim against the engine's verdict.

    Returns ``{"refuted": bool, "reason": str, "certificate": Certificate|None,
    "conflict": bool}``.  Only a certificate that passes :func:`check` here
    refutes anything.  ``decide_on(domain)`` (the engine on a box; compare
    passes a cached one when the engine has domains) settles ball claims the
    R^n verdict cannot: a witness on a box inside the ball, or a proof on a
    box containing it (docs/theory.md, section 10).
    """
    res: dict[str, Any] = {"refuted": False, "reason": "", "certificate": None, "conflict": False}
    if claim.claim == NO_COUNTEREXAMPLE:
        res["reason"] = "'no counterexample' claims nothing and is never refuted"
        return res
    cert = verdict.certificate
    if verdict.status is Status.UNKNOWN or cert is None:
        res["reason"] = "the exact verdict is unknown: it refutes nothing"
        return res
    checked = check(cert)
    if not checked.valid:  # pragma: no cover - the engine checks before returning
        res["reason"] = f"the engine's certificate failed the exact check ({checked.reason}): it refutes nothing"
        res["conflict"] = True
        return res
    on_ball = claim.domain != REALS
    if on_ball and claim.ball_radius is None:  # pragma: no cover - every ball claim carries its radius
        res["reason"] = "the claim's domain is not understood here: not refutable"
        return res
    r = claim.ball_radius
    n = net.input_dim
    if claim.claim == INJECTIVE:
        if verdict.status is Status.INJECTIVE:
            res["reason"] = "the engine agrees (checked proof on R^n" + (
                ", which contains the ball)" if on_ball else ")")
            return res
        w = verdict.witness
        if not on_ball:
            res.update(refuted=True, certificate=cert, reason="the engine's collision, checked exactly, is in R^n")
            return res
        if _in_ball(w.x, r) and _in_ball(w.y, r):
            res.update(refuted=True, certificate=cert,
                       reason=f"both points of the engine's checked collision lie in {claim.domain} (checked exactly)")
            return res
        scaled = _scaled_into_ball(net, w, r)
        if scaled is not None:
            res.update(refuted=True, certificate=scaled,
                       reason=f"the layer is bias-free, so the engine's collision scaled into {claim.domain} is one "
                       "too (re-checked exactly)")
            return res
        if decide_on is None:
            res["reason"] = (f"the engine's collision lies outside {claim.domain}, and the engine has no domains yet "
                             "(issue #7): not refutable here")
            return res
        box = inner_box(n, r)
        bv = decide_on(box)
        if bv.status is Status.NOT_INJECTIVE and bv.certificate is not None and check(bv.certificate).valid \
                and box.contains(bv.witness.x) and box.contains(bv.witness.y) \
                and _in_ball(bv.witness.x, r) and _in_ball(bv.witness.y, r):
            res.update(refuted=True, certificate=bv.certificate,
                       reason=f"the engine's checked collision on {box.describe()}, a box inside {claim.domain}")
            return res
        res["reason"] = (f"the engine's collision on R^n lies outside {claim.domain}, and on {box.describe()} "
                         f"inside it the engine says {bv.status.value}: not refuted")
        return res
    # claim == not_injective
    if claim.supported:
        if verdict.status is Status.INJECTIVE:
            res["conflict"] = True
            res["reason"] = ("CONFLICT: the claim carries a checked collision and the engine a checked proof of "
                             "injectivity; one of them is wrong (please report)")
        else:
            res["reason"] = "the claim carries its own checked collision"
        return res
    if verdict.status is Status.INJECTIVE:
        res.update(refuted=True, certificate=cert,
                   reason="the engine's checked proof of injectivity on R^n" + (
                       f", which contains {claim.domain}" if on_ball else ""))
        return res
    if not on_ball:
        res["reason"] = "the engine agrees (checked collision)"
        return res
    if decide_on is None:
        res["reason"] = (f"the engine's collision is about R^n, not {claim.domain}, and the engine has no domains "
                         "yet (issue #7): not refutable here")
        return res
    box = outer_box(n, r)
    bv = decide_on(box)
    if bv.status is Status.INJECTIVE and bv.certificate is not None and check(bv.certificate).valid:
        res.update(refuted=True, certificate=bv.certificate,
                   reason=f"the engine's checked proof of injectivity on {box.describe()}, "
                   f"which contains {claim.domain}")
        return res
    res["reason"] = (f"on {box.describe()}, which contains {claim.domain}, the engine says "
                     f"{bv.status.value}: not refuted")
    return res


# --------------------------------------------------------------------------- the run


def _cert_name(instance: str, used: set[str], suffix: str = "") -> str:
    base = os.path.splitext(os.path.basename(instance))[0] + suffix
    name, k = base, 2
    while name in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name)
    return name + ".json"


def compare(
    paths: Iterable[str | os.PathLike],
    time_limit: float = 60.0,
    seed: int = 0,
    heuristics: Sequence[str] | None = None,
    outdir: str | os.PathLike | None = None,
    *,
    milp: str = "none",
    ball_radius: Fraction | int | str = 1,
    progress: Progress | None = None,
) -> dict:
    """Run the exact engine and the heuristics on every instance.

    Returns the JSON object described in the module docstring.  With
    ``outdir``, also writes compare.json, compare.csv, compare.md and the
    refuting certificates (certificates/NAME.json) there.  Bad paths or
    heuristic names raise InputError.
    """
    names = list(HEURISTICS) if heuristics is None else list(heuristics)
    unknown = [h for h in names if h not in HEURISTICS]
    if unknown:
        raise InputError(None, f"unknown heuristic(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(HEURISTICS)})")
    if not names:
        raise InputError(None, "no heuristics selected")
    if time_limit <= 0:
        raise InputError(None, "time limit must be positive")
    radius = Fraction(ball_radius)
    if radius <= 0:
        raise InputError(None, "ball radius must be positive")
    files = collect(paths)
    say = progress or (lambda s: None)
    certdir = None
    if outdir is not None:
        outdir = os.fspath(outdir)
        certdir = os.path.join(outdir, "certificates")
        try:
            os.makedirs(certdir, exist_ok=True)
        except OSError as e:
            raise InputError(outdir, f"cannot create the output folder: {e.strerror or e}") from None
    used: set[str] = set()
    rows = []
    # Every input is read and checked before any is decided: a bad file
    # found after an hour of work would waste it (docs/cli.md, compare).
    nets, bad = [], []
    for path in files:
        try:
            net = load_network(path)
            if not net.is_single_relu_layer:
                raise InputError(path, "compare runs the heuristics on a single ReLU layer; "
                                       "decide a network with `exact-inj verify`")
            try:
                net.layers[0].weight  # noqa: B018 - the heuristics read the dense matrix
            except OperatorTooLarge as e:
                raise InputError(path, f"{e}; the heuristics need it dense") from None
            nets.append(net)
        except InputError as e:
            bad.append(e)
    if bad:
        more = f" (and {len(bad) - 1} more bad file(s); nothing was decided)" if len(bad) > 1 else \
            " (nothing was decided)"
        raise InputError(bad[0].path, bad[0].message + more)
    started = time.perf_counter()
    for k, (path, net) in enumerate(zip(files, nets), 1):
        layer: Layer = net.layers[0]
        verdict = verify(net, time_limit=time_limit, milp=milp)
        say(f"[{k}/{len(files)}] {path}: exact {verdict.status.value} ({verdict.seconds:.3f} s); "
            f"{work_done(k - 1, len(files), time.perf_counter() - started, 'files done')}")
        engine_cert_file = None
        hrow: dict[str, dict] = {}
        box_cache: dict[tuple, Verdict] = {}

        def decide_on(box, net=net):
            key = (box.kind, box.lower, box.upper)
            if key not in box_cache:
                box_cache[key] = verify(net, time_limit=time_limit, milp=milp, domain=box)
                say(f"  on {box.describe()}: exact {box_cache[key].status.value} ({box_cache[key].seconds:.3f} s)")
            return box_cache[key]

        decider = decide_on
        for name in names:
            kw = {"radius": radius} if name in ("ball_bias_bound", "ball_sampled") else {}
            if name == "lemma1":
                kw = {"time_limit": time_limit}
            claim = run_heuristic(name, layer, seed, **kw)
            ref = refute(claim, verdict, net, decider)
            entry = {
                "claim": claim.claim,
                "seconds": round(claim.seconds, 6),
                "refuted": bool(ref["refuted"]),
                **{k2: v for k2, v in claim.to_json().items() if k2 not in ("claim", "seconds")},
                "against_exact": ref["reason"],
                "refuting_certificate": None,
            }
            if ref["conflict"]:
                entry["conflict"] = True
                say(f"  {name}: {ref['reason']}")
            if ref["refuted"] and certdir is not None:
                cert: Certificate = ref["certificate"]
                if cert is verdict.certificate:
                    if engine_cert_file is None:
                        engine_cert_file = os.path.join(certdir, _cert_name(path, used))
                        _write_json(engine_cert_file, cert.to_json())
                    entry["refuting_certificate"] = engine_cert_file
                else:
                    f = os.path.join(certdir, _cert_name(path, used, f"__{name}"))
                    _write_json(f, cert.to_json())
                    entry["refuting_certificate"] = f
            hrow[name] = entry
        rows.append({
            "instance": path,
            "exact": {"verdict": verdict.status.value, "seconds": round(verdict.seconds, 6)},
            "heuristics": hrow,
        })
    result = {"rows": rows}
    if outdir is not None:
        _write_text(os.path.join(outdir, "compare.json"), json.dumps(result, indent=1) + "\n")
        _write_text(os.path.join(outdir, "compare.csv"), to_csv(result))
        _write_text(os.path.join(outdir, "compare.md"), to_markdown(result))
    return result


# --------------------------------------------------------------------------- formats

_SHORT = {INJECTIVE: "inj", NOT_INJECTIVE: "not", NO_COUNTEREXAMPLE: "-"}
_EXACT_SHORT = {"injective": "INJ", "not_injective": "NOT", "unknown": "UNKNOWN"}


def _cell(h: dict) -> str:
    c = _SHORT[h["claim"]]
    if h["claim"] == NOT_INJECTIVE and not h.get("supported", False):
        c += "?"
    if h.get("domain", REALS) != REALS and h["claim"] != NO_COUNTEREXAMPLE:
        c += "@ball"
    if h["refuted"]:
        c += " REFUTED"
    if h.get("conflict"):
        c += " CONFLICT"
    return c


LEGEND = ("inj / not: the heuristic claims injective / not injective; not?: not injective without an exact "
          "collision (unsupported); -: no counterexample or no claim (never refuted); @ball: the claim is about "
          "the closed ball, not R^n; REFUTED: a checked engine certificate proves the opposite on the claim's "
          "domain. Times in seconds.")


def _names(result: dict) -> list[str]:
    names: list[str] = []
    for row in result["rows"]:
        for n in row["heuristics"]:
            if n not in names:
                names.append(n)
    return names


def format_table(result: dict) -> str:
    """The terminal table: one line per instance."""
    names = _names(result)
    head = ["instance", "exact"] + names
    body = []
    for row in result["rows"]:
        ex = row["exact"]
        cells = [os.path.basename(row["instance"]), f"{_EXACT_SHORT[ex['verdict']]} {ex['seconds']:.3f}"]
        for n in names:
            h = row["heuristics"].get(n)
            cells.append("" if h is None else f"{_cell(h)} {h['seconds']:.3f}")
        body.append(cells)
    widths = [max(len(r[j]) for r in [head] + body) for j in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    refuted = sum(h["refuted"] for row in result["rows"] for h in row["heuristics"].values())
    lines.append("")
    lines.append(f"{len(result['rows'])} instances, {refuted} refuted claims. " + LEGEND)
    return "\n".join(lines)


def to_markdown(result: dict) -> str:
    names = _names(result)
    out = ["| instance | exact (s) | " + " | ".join(names) + " |",
           "|---|---|" + "---|" * len(names)]
    for row in result["rows"]:
        ex = row["exact"]
        cells = [f"`{os.path.basename(row['instance'])}`", f"{ex['verdict']} ({ex['seconds']:.3f})"]
        for n in names:
            h = row["heuristics"].get(n)
            if h is None:
                cells.append("")
                continue
            c = _cell(h).replace(" REFUTED", " **REFUTED**")
            cells.append(f"{c} ({h['seconds']:.3f})")
        out.append("| " + " | ".join(cells) + " |")
    refuted = [(os.path.basename(row["instance"]), n, h) for row in result["rows"]
               for n, h in row["heuristics"].items() if h["refuted"]]
    out.append("")
    out.append(LEGEND)
    if refuted:
        out.append("")
        out.append("Refutations:")
        out.append("")
        for inst, n, h in refuted:
            where = f" (`{h['refuting_certificate']}`)" if h.get("refuting_certificate") else ""
            out.append(f"- `{inst}`, {n} claimed {h['claim']} on {h['domain']}: {h['against_exact']}{where}")
    return "\n".join(out) + "\n"


def to_csv(result: dict) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for row in result["rows"]:
        ex = row["exact"]
        for name, h in row["heuristics"].items():
            w.writerow([row["instance"], ex["verdict"], ex["seconds"], name,
                        h["claim"], h.get("domain", REALS), h.get("supported", False), h["seconds"],
                        h["refuted"], h.get("refuting_certificate") or ""])
    return buf.getvalue()


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror or e}") from None


def _write_json(path: str, obj) -> None:
    _write_text(path, json.dumps(obj, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------- command line


def _positive_rational(s: str) -> Fraction:
    try:
        x = parse_exact(s, "--ball-radius")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {s!r}")
    return x


def _heuristic_list(s: str) -> list[str]:
    names = [h.strip() for h in s.split(",") if h.strip()]
    bad = [h for h in names if h not in HEURISTICS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown heuristic(s) {', '.join(map(repr, bad)) or '(none given)'}; known: {', '.join(HEURISTICS)}")
    return names


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` on the CLI's subparsers object."""
    p = subparsers.add_parser(
        "compare",
        help="run the exact engine and the literature's heuristics side by side",
        description="Decide each instance exactly and run every heuristic on it (docs/heuristics.md). A claim is "
        "REFUTED only by an engine certificate that passed the exact checker on the claim's domain; "
        "'no counterexample' is never refuted and an engine 'unknown' refutes nothing. Writes compare.json, "
        "compare.csv, compare.md and the refuting certificates to --out. Every input is read and checked "
        "before any is decided: one bad file stops the run at once (exit 2), naming it.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="instance files or folders (*.json, *.npz)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--out", metavar="DIR", default="compare-out", help="output folder (default: compare-out)")
    p.add_argument("--time-limit", metavar="S", type=_positive_float, default=60.0,
                   help="engine time limit per instance, seconds (default: 60)")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed for every heuristic (default: 0)")
    p.add_argument("--heuristics", metavar="A,B", type=_heuristic_list, default=None,
                   help=f"comma-separated subset of: {', '.join(HEURISTICS)} (default: all)")
    p.add_argument("--ball-radius", metavar="R", type=_positive_rational, default=Fraction(1),
                   help="radius of the ball the ball heuristics speak about (default: 1)")
    p.add_argument("--milp", choices=("none", "highs", "cbc"), default="none",
                   help="the engine's side witness search (default: none; small instances never need it)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


def run(args) -> int:
    """Carry out ``exact-inj compare``; returns the exit code (0 when the run completes)."""
    progress = None if args.quiet else (lambda msg: print(f"exact-inj compare: {msg}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    result = compare(args.paths, time_limit=args.time_limit, seed=args.seed, heuristics=args.heuristics,
                     outdir=args.out, milp=args.milp, ball_radius=args.ball_radius, progress=progress)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
    if progress:
        progress(f"wrote {os.path.join(args.out, 'compare.json')}, compare.csv, compare.md and certificates/ "
                 f"({time.perf_counter() - t0:.1f} s)")
    return 0
