"""Output a user can rely on (issue #18, items 5 and 6).

- Reproducible: the same input and options give a byte-identical certificate,
  across processes with different hash seeds (set order must not leak into a
  certificate).  Where this cannot hold, and what is stable instead, is in
  docs/certificates.md ("Reproducibility").
- Interruptions lose nothing: SIGTERM or SIGINT during `verify --certificate F`
  never leaves a partial F, and `experiment` resumes after a kill at any
  moment with the same totals as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ROOT / "instances"

# One instance per route and proof kind in the default suite; every instance with -m slow.
QUICK = ["fig2_not_injective.json", "quickstart.json", "fig2_injective.json", "dcgan_1d_injective.json",
         "networks/relu_identity_after_fig2.json", "networks/b_minus_b_difference.json",
         "networks/abs_value_fold.json", "networks/fig2_then_full_rank_linear.json"]
ALL = sorted(str(p.relative_to(INSTANCES)) for p in INSTANCES.rglob("*.json")
             if p.name != "expected.json" and "heuristics" not in p.parts)


def _env(hashseed: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=hashseed)
    env.pop("EXACT_INJ_DEBUG", None)
    return env


def _certificate(name: str, out: Path, hashseed: str) -> bytes | None:
    r = subprocess.run([sys.executable, "-m", "exact_inj", "verify", str(INSTANCES / name), "--quiet",
                        "--certificate", str(out), "--time-limit", "120"],
                       env=_env(hashseed), capture_output=True, text=True, timeout=600)
    assert r.returncode in (0, 1, 3), r.stderr
    return out.read_bytes() if out.exists() else None


def _reproducible(names, tmp_path):
    for name in names:
        a = _certificate(name, tmp_path / "a.json", "1")
        b = _certificate(name, tmp_path / "b.json", "2")
        assert a is not None, f"{name}: no certificate"
        assert a == b, f"{name}: two runs wrote different certificates"
        (tmp_path / "a.json").unlink()
        (tmp_path / "b.json").unlink()


def test_certificates_are_reproducible(tmp_path):
    _reproducible(QUICK, tmp_path)


@pytest.mark.slow
def test_certificates_are_reproducible_on_every_instance(tmp_path):
    _reproducible(ALL, tmp_path)


# --------------------------------------------------------------------------
# atomic certificate files
# --------------------------------------------------------------------------


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    # The write is interrupted half-way (as SIGINT would, by KeyboardInterrupt):
    # the previous certificate stays whole and no temporary file is left.
    from exact_inj.cli import app

    out = tmp_path / "cert.json"
    out.write_text('{"old": true}\n')
    real_dumps = json.dumps

    class Interrupting(str):
        """The text of the certificate, whose second piece never comes."""
        pieces = 0

        def __getitem__(self, key):
            Interrupting.pieces += 1
            if Interrupting.pieces == 2:
                raise KeyboardInterrupt
            return str.__getitem__(self, key)

    # The text is written in pieces of 1000 characters: the first reaches the
    # temporary file (flushed), then the interrupt comes.
    monkeypatch.setattr(app, "_WRITE_CHUNK", 1000)
    monkeypatch.setattr(app.json, "dumps", lambda obj, **kw: Interrupting(real_dumps({"partial": "x" * 10000})))
    for name in ("cert.json", "cert.json.gz"):
        Interrupting.pieces = 0
        target = tmp_path / name
        if name.endswith(".gz"):
            target.write_bytes(b"old")
        with pytest.raises(KeyboardInterrupt):
            app.write_json(str(target), {"new": True})
        assert Interrupting.pieces == 2
    assert out.read_text() == '{"old": true}\n' and (tmp_path / "cert.json.gz").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.json", "cert.json.gz"]
    monkeypatch.setattr(app.json, "dumps", real_dumps)
    app.write_json(str(out), {"new": True})
    assert json.loads(out.read_text()) == {"new": True}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_verify_never_leaves_a_partial_certificate(sig, tmp_path):
    # A conv layer whose certificate is about 100 kB (written in ~10 ms), killed
    # at seeded random moments around the write: the file is absent or whole.
    name = "conv/same_3to3_32x32.json"
    rng = random.Random(18)
    out = tmp_path / "cert.json"
    t0 = time.perf_counter()
    whole = _certificate(name, out, "0")
    full = time.perf_counter() - t0
    assert whole is not None and json.loads(whole)
    outcomes = {"absent": 0, "whole": 0}
    for _ in range(3):
        out.unlink(missing_ok=True)
        p = subprocess.Popen([sys.executable, "-m", "exact_inj", "verify", str(INSTANCES / name), "--quiet",
                              "--certificate", str(out)], env=_env("0"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 1.1) * full)
        p.send_signal(sig)
        p.wait(timeout=120)
        if out.exists():
            assert out.read_bytes() == whole, "a partial or different certificate was left"
            outcomes["whole"] += 1
        else:
            outcomes["absent"] += 1
        leftovers = [q.name for q in tmp_path.iterdir() if q.name != "cert.json"]
        assert all(q.startswith(".cert.json.") and q.endswith(".tmp") for q in leftovers), leftovers
    assert sum(outcomes.values()) == 3


# --------------------------------------------------------------------------
# the experiment resumes after a kill at any moment
# --------------------------------------------------------------------------

EXPERIMENT = ["experiment", "gaussian", "--n", "2,3", "--ratio", "1:4:1", "--trials", "8", "--seed", "5",
              "--no-plot", "--quiet", "--time-limit", "120"]


def _experiment(out: Path, **kw):
    return subprocess.Popen([sys.executable, "-m", "exact_inj", *EXPERIMENT, "--out", str(out)], env=_env("0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def test_experiment_resumes_after_kills_at_random_moments(tmp_path):
    clean = tmp_path / "clean"
    p = _experiment(clean)
    t0 = time.perf_counter()
    assert p.wait(timeout=600) == 0, p.stderr.read()
    full = time.perf_counter() - t0
    want = (clean / "gaussian.csv").read_text()

    rng = random.Random(6)
    killed = tmp_path / "killed"
    for k in range(5):
        p = _experiment(killed)
        # From right after start-up (the trials file being created) to the end.
        time.sleep(rng.uniform(0.1, 1.0) * full)
        p.send_signal(signal.SIGKILL if k % 2 == 0 else signal.SIGTERM)
        p.wait(timeout=120)
    p = _experiment(killed)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    assert (killed / "gaussian.csv").read_text() == want
    lines = (killed / "trials.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["experiment"] == "gaussian"
    trials = {(r["n"], r["m"], r["trial"]) for r in map(json.loads, lines[1:])}
    assert len(trials) == 8 * 8  # every trial recorded, none twice counted


def test_empty_trials_file_is_started_afresh(tmp_path):
    # What a kill between creating trials.jsonl and writing its header left
    # before the header was written atomically: resumed, not refused.
    out = tmp_path / "run"
    out.mkdir()
    (out / "trials.jsonl").write_text("")
    p = _experiment(out)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    assert (out / "gaussian.csv").exists()
