#!/usr/bin/env python
"""Benchmark exact_inj's single-layer engine against three baselines, in one run.

    python benchmarks/bench_layer.py --smoke
    python benchmarks/bench_layer.py --sizes 4-6,gauss4:25 --seeds 1
    python benchmarks/bench_layer.py [--sizes SPEC] [--families gauss67,gauss10,gauss4,biased67]
        [--seeds 3] [--baselines milp,hyperplanes,depth] [--engine-time-limit S]
        [--baseline-time-limit S] [--out results.json] [--markdown table.md]

Instances are seeded iid Gaussian layers (see ``make_instance``); the baselines
are in baselines.py next to this file (and benchmarks/README.md says what every
column means).  Progress goes to stderr, the Markdown table to stdout and to
--markdown, every row to the --out JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baselines  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _m67(n: int) -> int:
    return int(math.floor(6.7 * n + 0.5))  # round half up: 27, 34, 40, 47, 54, 60, 67, 74, 80


# family -> (m as a function of n, biased?, default sizes)
FAMILIES = {
    "gauss67": (_m67, False, list(range(4, 13))),
    "gauss10": (lambda n: 10 * n, False, list(range(4, 13))),
    "gauss4": (lambda n: 4 * n, False, list(range(4, 13)) + [25, 50, 100]),
    "biased67": (_m67, True, list(range(4, 13))),
}
FAMILY_CODE = {"gauss67": 67, "gauss10": 10, "gauss4": 4, "biased67": 1067}


# --- instances ------------------------------------------------------------------


def make_instance(family: str, n: int, seed: int) -> dict:
    """W (m x n) and b with iid N(0, 1) float64 entries (b = 0 unless biased).

    The generator is numpy.random.default_rng(entropy) with entropy
    [seed, n, m, family code], so every (family, n, seed) gets its own
    independent draw (with a bare seed, gauss10's W would extend gauss67's).
    W is drawn first, then b.
    """
    mfun, biased, _ = FAMILIES[family]
    m = mfun(n)
    entropy = [seed, n, m, FAMILY_CODE[family]]
    rng = np.random.default_rng(entropy)
    W = rng.standard_normal((m, n))
    b = rng.standard_normal(m) if biased else np.zeros(m)
    return {"family": family, "n": n, "m": m, "seed": seed, "entropy": entropy, "W": W, "b": b}


def to_network(W: np.ndarray, b: np.ndarray):
    """The exact layer: Fraction(float) is the float's exact binary value."""
    from exact_inj.model import Layer, Network

    weight = tuple(tuple(Fraction(float(x)) for x in row) for row in W)
    bias = tuple(Fraction(float(x)) for x in b)
    return Network((Layer(weight, bias),))


def parse_sizes(spec: str | None, families: list[str]) -> dict[str, list[int]]:
    """'4-6,25,gauss4:50' -> sizes per family.  Unprefixed items apply to every
    selected family; 'family:N' or 'family:A-B' only to that family."""
    if not spec:
        return {f: list(FAMILIES[f][2]) for f in families}
    out: dict[str, set[int]] = {f: set() for f in families}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        fam = None
        if ":" in item:
            fam, item = item.split(":", 1)
            if fam not in FAMILIES:
                raise SystemExit(f"--sizes: unknown family {fam!r}")
        if "-" in item:
            a, c = item.split("-", 1)
            ns = range(int(a), int(c) + 1)
        elif ".." in item:
            a, c = item.split("..", 1)
            ns = range(int(a), int(c) + 1)
        else:
            ns = [int(item)]
        for f in ([fam] if fam else families):
            if f in out:
                out[f].update(ns)
    return {f: sorted(v) for f, v in out.items() if v}


# --- the engine -------------------------------------------------------------------


def run_engine(net, time_limit: float, recheck: bool) -> dict:
    import exact_inj

    t0 = time.perf_counter()
    try:
        v = exact_inj.verify(net, time_limit=time_limit)
    except Exception as e:  # an engine crash is a result too
        return {"verdict": "error", "seconds": time.perf_counter() - t0, "error": repr(e)}
    info = v.info
    row = {
        "verdict": "unknown (limit)" if v.status.value == "unknown" else v.status.value,
        "seconds": v.seconds,  # wall time of verify(), including its own exact check
        "check_seconds": info.get("check_seconds"),
        "route": v.route,
        "certificate_size": info.get("certificate_size"),
    }
    if row["check_seconds"] is not None:
        row["solve_seconds"] = max(v.seconds - row["check_seconds"], 0.0)
    for k in ("nodes", "leaves", "lps", "core_lps", "cores", "max_depth", "repair_failures", "exact_lps",
              "open_cases", "notes", "tried", "internal_error"):
        if k in info:
            row[k] = info[k]
    if v.certificate is not None:
        text = json.dumps(v.certificate.to_json(), separators=(",", ":"))
        row["certificate_bytes"] = len(text.encode())
        if recheck:
            from exact_inj.certify.schema import Certificate

            t1 = time.perf_counter()
            res = exact_inj.check(Certificate.from_json(json.loads(text)))
            row["recheck_seconds"] = time.perf_counter() - t1
            row["recheck_valid"] = res.valid
    return row


# --- skip rules ---------------------------------------------------------------------


def skip_reason(method: str, inst: dict, args, depth_ok: bool) -> str | None:
    n, m = inst["n"], inst["m"]
    biased = bool(np.any(inst["b"] != 0))
    if method == "depth":
        if not depth_ok:
            return "n/a"
        if biased:
            return "n/a (bias)"
        if n > args.depth_max_n:
            return "skipped (size)"
    if method == "hyperplanes" and math.comb(m, n - 1) > args.max_hyperplanes:
        return "skipped (size)"
    if method == "milp" and n > args.milp_max_n:
        return "skipped (size)"
    return None


# --- summary ----------------------------------------------------------------------

DECIDED = ("injective", "not_injective")


def _median(vals: list[tuple[float, int]]) -> tuple[float, int] | None:
    """Median of (value, bound) pairs: bound 0 exact, +1 a lower bound (a
    timeout), -1 an upper bound.  A median that rests on a bound keeps it."""
    if not vals:
        return None
    s = sorted(vals, key=lambda p: p[0])
    k = len(s)
    if k % 2:
        return s[k // 2]
    a, c = s[k // 2 - 1], s[k // 2]
    flags = {a[1], c[1]} - {0}
    return ((a[0] + c[0]) / 2, flags.pop() if len(flags) == 1 else (0 if not flags else 2))


def _fmt(med: tuple[float, int] | None, digits: int = 3, unit: str = "") -> str:
    if med is None:
        return "-"
    v, bound = med
    if v >= 100:
        txt = f"{v:.0f}"
    elif v >= 10:
        txt = f"{v:.1f}"
    else:
        txt = f"{v:.{digits}g}"
    return {0: "", 1: ">", -1: "<", 2: "~"}[int(bound)] + txt + unit


def _fmt_int(vals: list) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    return f"{statistics.median(vals):.0f}"


def _verdict_counts(rows: list[dict]) -> str:
    c = {"I": 0, "N": 0, "U": 0}
    for r in rows:
        v = r["verdict"]
        c["I" if v == "injective" else "N" if v == "not_injective" else "U"] += 1
    return "/".join(f"{c[k]}{k}" for k in ("I", "N", "U") if c[k]) or "-"


def summarise(rows: list[dict], methods: list[str], args) -> str:
    groups: dict[tuple, dict[str, list[dict]]] = {}
    order: list[tuple] = []
    for r in rows:
        key = (r["family"], r["n"], r["m"])
        if key not in groups:
            groups[key] = {}
            order.append(key)
        groups[key].setdefault(r["method"], []).append(r)

    lines = []
    lines.append("### Engine (exact_inj)")
    lines.append("")
    rechecked = any(r.get("recheck_seconds") is not None for r in rows)
    lines.append("| family | n | m | seeds | verdicts | total s | solve s | check s |"
                 + (" recheck s |" if rechecked else "") + " cert size | cert bytes | nodes | leaves | route |")
    lines.append("|---" * (13 + rechecked) + "|")
    for key in order:
        er = groups[key].get("engine", [])
        tot = [(r["seconds"], int(r["verdict"] not in DECIDED)) for r in er]
        solve = [(r["solve_seconds"], 0) for r in er if r.get("solve_seconds") is not None]
        chk = [(r["check_seconds"], 0) for r in er if r.get("check_seconds") is not None]
        routes = sorted({r.get("route", "?") for r in er})
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {len(er)} | {_verdict_counts(er)} | {_fmt(_median(tot))} "
            f"| {_fmt(_median(solve))} | {_fmt(_median(chk))} |"
            + (f" {_fmt(_median([(r['recheck_seconds'], 0) for r in er if r.get('recheck_seconds') is not None]))} |"
               if rechecked else "")
            + f" {_fmt_int([r.get('certificate_size') for r in er])} "
            f"| {_fmt_int([r.get('certificate_bytes') for r in er])} | {_fmt_int([r.get('nodes') for r in er])} "
            f"| {_fmt_int([r.get('leaves') for r in er])} | {','.join(routes)} |"
        )
    lines.append("")
    if methods:
        lines.append("### Baselines, same run (ratio = baseline s / engine total s, median over seeds)")
        lines.append("")
        head = "| family | n | m |"
        sep = "|---|---|---|"
        for meth in methods:
            head += f" {meth} verdicts | {meth} s | {meth} ratio | {meth} agree |"
            sep += "---|---|---|---|"
        lines.append(head)
        lines.append(sep)
        for key in order:
            eng = {r["seed"]: r for r in groups[key].get("engine", [])}
            cells = f"| {key[0]} | {key[1]} | {key[2]} |"
            for meth in methods:
                br = groups[key].get(meth, [])
                skipped = [r for r in br if r["verdict"].startswith(("skipped", "n/a"))]
                if br and len(skipped) == len(br):
                    reasons = sorted({r["verdict"] for r in skipped})
                    cells += f" {', '.join(reasons)} | | | |"
                    continue
                live = [r for r in br if r not in skipped]
                secs, ratios = [], []
                agree = total = 0
                for r in live:
                    cens = int(r["verdict"] not in DECIDED)  # a timeout: a lower bound on its time
                    secs.append((r["seconds"], cens))
                    e = eng.get(r["seed"])
                    if e and e.get("seconds"):
                        e_cens = int(e["verdict"] not in DECIDED)
                        if not (cens and e_cens):  # both undecided: no ratio at all
                            ratios.append((r["seconds"] / e["seconds"], cens - e_cens))
                    if e and e["verdict"] in DECIDED and r["verdict"] in DECIDED:
                        total += 1
                        agree += r["verdict"] == e["verdict"]
                vc = _verdict_counts(live)
                timeouts = sum(1 for r in live if r["verdict"] == "timeout")
                if timeouts:
                    vc += f" ({timeouts} timeout)"
                if skipped:
                    vc += f" (+{len(skipped)} skipped)"
                cells += (f" {vc} | {_fmt(_median(secs))} | {_fmt(_median(ratios), unit='x')} "
                          f"| {agree}/{total} |")
            lines.append(cells)
        lines.append("")
    # Disagreements and the MILP's unsound "injective" answers.
    dis = [r for r in rows if r["method"] != "engine" and r.get("agrees") is False]
    lines.append(f"Disagreements with the engine's certified verdict: {len(dis)}")
    for r in dis:
        lines.append(f"- {r['family']} n={r['n']} m={r['m']} seed={r['seed']}: {r['method']} says "
                     f"{r['verdict']}, engine {r['engine_verdict']}")
    if "milp" in methods:
        mi = [r for r in rows if r["method"] == "milp" and r["verdict"] == "injective"]
        right = sum(1 for r in mi if r.get("agrees") is True)
        wrong = sum(1 for r in mi if r.get("agrees") is False)
        lines.append("")
        lines.append(f"MILP 'injective' answers (infeasible big-M model, box [-{args.milp_box:g}, {args.milp_box:g}]^n, "
                     f"margin {args.milp_margin:g}; NOT sound, docs/theory.md, section 6): {len(mi)}; {right} match a certified "
                     f"engine verdict, {wrong} contradict one, {len(mi) - right - wrong} have no certified verdict "
                     "to compare with.")
        bad = [r for r in rows if r["method"] == "milp" and r["verdict"] == "not_injective"
               and r.get("exact_witness") is False]
        if bad:
            lines.append(f"MILP 'not_injective' points that failed exact verification: {len(bad)}")
    lines.append("")
    lines.append("Soundness: engine = exact, every verdict's certificate passed the exact checker; "
                 + "; ".join(f"{k} = {baselines.SOUNDNESS[k]}" for k in methods) + ".")
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    for pkg in ("exact_inj", "highspy", "numpy", "python-flint", "data-depth"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", help="n values: '4-12', '4,5,25', 'gauss4:25' (family-only); default: per family")
    p.add_argument("--families", default="gauss67,gauss10,gauss4,biased67")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 per size (default 3)")
    p.add_argument("--baselines", default="milp,hyperplanes,depth",
                   help="comma list of milp,hyperplanes,depth; '' or 'none' for none")
    p.add_argument("--engine-time-limit", type=float, default=300.0)
    p.add_argument("--baseline-time-limit", type=float, default=120.0)
    p.add_argument("--max-hyperplanes", type=float, default=1e6,
                   help="skip hyperplane enumeration when C(m, n-1) exceeds this (default 1e6)")
    p.add_argument("--depth-max-n", type=int, default=8, help="skip data-depth beyond this n (default 8)")
    p.add_argument("--milp-max-n", type=int, default=10**9, help="skip the MILP beyond this n (default: never)")
    p.add_argument("--milp-box", type=float, default=1e4, help="the MILP's box [-R, R]^n (default 1e4)")
    p.add_argument("--milp-margin", type=float, default=1.0, help="the MILP's 'strictly negative' margin")
    p.add_argument("--recheck", action="store_true",
                   help="also time exact_inj.check on the JSON round trip of each certificate")
    p.add_argument("--out", default=os.path.join(HERE, "results", "bench_layer.json"))
    p.add_argument("--markdown", default=os.path.join(HERE, "results", "bench_layer.md"))
    p.add_argument("--smoke", action="store_true",
                   help="n = 4 only, 1 seed, every family and baseline, 30 s limits (< 60 s in all)")
    p.add_argument("--summarise", metavar="JSON",
                   help="only rebuild the Markdown table from an earlier run's --out file")
    args = p.parse_args(argv)

    if args.summarise:
        with open(args.summarise) as f:
            saved = json.load(f)
        meta = saved["meta"]
        args.milp_box, args.milp_margin = meta["milp_box"], meta["milp_margin"]
        table = summarise(saved["rows"], meta["baselines"], args)
        if args.markdown:
            os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
            with open(args.markdown, "w") as f:
                f.write(table)
        sys.stdout.write(table)
        return 0

    if args.smoke:
        args.sizes, args.seeds = "4", 1
        args.engine_time_limit = min(args.engine_time_limit, 30.0)
        args.baseline_time_limit = min(args.baseline_time_limit, 30.0)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        if f not in FAMILIES:
            p.error(f"unknown family {f!r} (known: {', '.join(FAMILIES)})")
    methods = [] if args.baselines.strip() in ("", "none") else [x.strip() for x in args.baselines.split(",")]
    for meth in methods:
        if meth not in baselines.METHODS:
            p.error(f"unknown baseline {meth!r} (known: {', '.join(baselines.METHODS)})")
    sizes = parse_sizes(args.sizes, families)

    depth_ok, depth_note = baselines.depth_available()
    if "depth" in methods and not depth_ok:
        print(f"note: {depth_note}; the depth column is 'n/a' (pip install data-depth)", file=sys.stderr)

    # Import costs stay outside every timing: the engine's witness check runs a
    # sympy cross-check, whose first import (~0.25 s) would land on one instance.
    import exact_inj  # noqa: F401
    import sympy  # noqa: F401

    workers = {meth: baselines.Worker(meth) for meth in methods}
    rows: list[dict] = []
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    opts = {"milp": {"box": args.milp_box, "margin": args.milp_margin}, "hyperplanes": {}, "depth": {}}
    try:
        for fam in families:
            for n in sizes.get(fam, []):
                for seed in range(args.seeds):
                    inst = make_instance(fam, n, seed)
                    base = {k: inst[k] for k in ("family", "n", "m", "seed", "entropy")}
                    tag = f"{fam} n={n} m={inst['m']} seed={seed}"
                    net = to_network(inst["W"], inst["b"])
                    er = run_engine(net, args.engine_time_limit, args.recheck)
                    rows.append({**base, "method": "engine", **er})
                    print(f"[{time.perf_counter() - t_start:7.1f}s] {tag}  engine: {er['verdict']} "
                          f"{er['seconds']:.3f}s route={er.get('route')} nodes={er.get('nodes', '-')} "
                          f"check={er.get('check_seconds')}", file=sys.stderr, flush=True)
                    for meth in methods:
                        why = skip_reason(meth, inst, args, depth_ok)
                        if why is not None:
                            res = {"verdict": why, "seconds": None}
                        else:
                            res = workers[meth].run(inst["W"], inst["b"], args.baseline_time_limit, **opts[meth])
                        row = {**base, "method": meth, **res, "engine_verdict": er["verdict"]}
                        if res["verdict"] in DECIDED and er["verdict"] in DECIDED:
                            row["agrees"] = res["verdict"] == er["verdict"]
                        rows.append(row)
                        secs = res.get("seconds")
                        mark = "" if row.get("agrees", True) else "  <-- DISAGREES with engine"
                        print(f"[{time.perf_counter() - t_start:7.1f}s] {tag}  {meth}: {res['verdict']}"
                              + (f" {secs:.3f}s" if secs is not None else "") + mark,
                              file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing the rows so far", file=sys.stderr)
    finally:
        for w in workers.values():
            w.stop()

    table = summarise(rows, methods, args)
    meta = {
        "argv": sys.argv[1:] if argv is None else argv,
        "families": families, "sizes": sizes, "seeds": args.seeds, "baselines": methods,
        "engine_time_limit": args.engine_time_limit, "baseline_time_limit": args.baseline_time_limit,
        "max_hyperplanes": args.max_hyperplanes, "depth_max_n": args.depth_max_n,
        "milp_box": args.milp_box, "milp_margin": args.milp_margin,
        "versions": _versions(), "soundness": baselines.SOUNDNESS,
        "wall_seconds": time.perf_counter() - t_start,
        "started": started,
    }
    for path, text in ((args.out, json.dumps({"meta": meta, "rows": rows}, indent=1, default=str)),
                       (args.markdown, table)):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    sys.stdout.write(table)
    print(f"done in {meta['wall_seconds']:.1f} s; rows in {args.out}, table in {args.markdown}", file=sys.stderr)
    dis = [r for r in rows if r.get("agrees") is False and r["method"] != "milp"]
    return 1 if dis else 0


if __name__ == "__main__":
    sys.exit(main())
