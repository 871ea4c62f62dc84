"""``exact-inj verify --property surjective|bijective`` (docs/theory.md, section 13)."""

from __future__ import annotations

import json
import sys

from ..errors import InputError
from ..network.properties import decide_property
from ..numbers import fraction_to_str

__all__ = ["EXIT", "run_property"]

EXIT = {"yes": 0, "no": 1, "unknown": 3}


def run_property(args, net, domain, injectivity, write_certificate) -> int:
    """Answer the property; exit 0 (yes), 1 (no), 3 (unknown), as verify does."""
    if args.results:
        raise InputError("--results", "VNN-COMP result files are for injectivity only (drop --property)")
    a = decide_property(net, args.property, domain, injectivity)
    v = a.injectivity
    if args.certificate:
        if v is None or v.certificate is None:
            print(f"exact-inj: no certificate written to {args.certificate}: the answer rests on no injectivity "
                  "certificate", file=sys.stderr)
        else:
            write_certificate(args.certificate, v.certificate.to_json())
    if args.json:
        out = a.to_json()
        out["file"] = args.file
        print(json.dumps(out))
    else:
        shown = "" if a.outside is None else f"\n  not an output: y = ({', '.join(map(fraction_to_str, a.outside))})"
        print(f"{args.file}: {args.property}: {a.answer.upper()}\n  why: {a.reason}{shown}")
    return EXIT[a.answer]
