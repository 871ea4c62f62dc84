"""Issue 17, item 3: a case-split tree checked in several processes, and trees
written packed.

The parallel check must accept exactly what the sequential check accepts: on
real proofs, and on mutants of them (each mutant's validity is decided by the
sequential walk, whose own tests are in test_certificates.py and
test_adversarial.py).  Packed trees must read back as the same codes, and
malformed packed data must be refused with one line (exit 2).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exact_inj
from exact_inj.certify import packing, schema
from exact_inj.certify import parallel as PAR
from exact_inj.certify import tree as T
from exact_inj.certify.check import check
from exact_inj.certify.schema import Certificate, TreeProof
from exact_inj.errors import InputError
from exact_inj.model import Layer, Network


def _tree_certificate(n: int, m: int, seed: int, bias: bool = False) -> Certificate:
    rng = np.random.default_rng([seed, n, m, 0])
    W = rng.standard_normal((m, n))
    b = rng.standard_normal(m) if bias else None
    v = exact_inj.verify(Layer.from_rows(W.tolist(), None if b is None else b.tolist()), milp="none")
    assert isinstance(v.certificate.evidence, TreeProof), v.reason
    return v.certificate


@pytest.fixture(scope="module")
def certificates():
    # Injective Gaussian layers (m/n well above the threshold) and biased ones.
    return [_tree_certificate(5, 34, s) for s in range(3)] + [_tree_certificate(5, 34, 9, bias=True)]


@pytest.fixture
def split_small(monkeypatch):
    """Cut even these small trees into many subtrees, checked by 2 workers."""
    monkeypatch.setattr(T, "PARALLEL_MIN_CODES", 0)
    monkeypatch.setattr(T, "WINDOW", 8)
    yield
    PAR.shutdown()


def _both(cert: Certificate):
    seq = check(cert)
    with T.check_workers(2):
        par = check(cert)
    return seq, par


def test_parallel_check_accepts_what_the_sequential_check_accepts(certificates, split_small):
    for cert in certificates:
        seq, par = _both(cert)
        assert seq.valid and par.valid, (seq.reason, par.reason)
        # The same leaves and cores were counted: the subtrees cover the tree.
        assert par.reason == seq.reason


def _states(tree):
    """The replay state before every code, by a plain replay written here:
    (P, N, rows of P in order, stack of (P, N, len)) at each position."""
    out, P, N, prows, stack = [], 0, 0, [], []
    for code in tree:
        out.append((P, N, list(prows), list(stack)))
        if code >= 0:
            stack.append((P, N | 1 << code, len(prows)))
            P |= 1 << code
            prows.append(code)
        elif stack:
            P, N, k = stack.pop()
            del prows[k:]
    return out


def test_window_states_are_the_replays_states(certificates):
    # Shape.state() at a window's start must be exactly the state one replay
    # of the whole tree holds there, for windows of every size.
    from exact_inj.certify.windows import Shape
    for cert in certificates[:2]:
        tree = list(cert.evidence.tree)
        M = len(cert.network.layers[0].weight)
        ref = _states(tree)
        for size in (1, 2, 3, 7, 64, len(tree)):
            sh = Shape(M, len(tree))
            for lo in range(0, len(tree), size):
                assert sh.state() == ref[lo], (size, lo)
                sh.advance(np.array(tree[lo:lo + size], dtype=np.int64))
            sh.finish()


def test_windows_leaves_add_up(certificates, monkeypatch):
    monkeypatch.setattr(T, "WINDOW", 5)
    cert = certificates[0]
    proof = cert.evidence
    rows_q, W, b, m_layer, n = T.layer_rows(cert.network, cert.domain)
    ctx = T.Rows(W, n, [sum(1 << i for i in c.support) for c in proof.cores])
    from exact_inj.certify.windows import Shape
    sh, total, leaves = Shape(len(W), len(proof.tree)), len(proof.tree), 0
    for lo, chunk in T.windows(proof.tree):
        P, N, prows, stack = sh.state()
        end = lo + len(chunk)
        leaves += T.walk(ctx, chunk.tolist(), 0, len(chunk), P, N, prows, lo, stack, end == total, total - end)
        sh.advance(chunk)
    sh.finish()
    assert leaves == sum(1 for c in proof.tree if c < 0)


def test_mutants_are_judged_alike(certificates, split_small):
    rnd = random.Random(17)
    invalid = 0
    for cert in certificates[:2]:
        tree = list(cert.evidence.tree)
        m = len(cert.network.layers[0].weight)
        for _ in range(40):
            t2 = list(tree)
            i = rnd.randrange(len(t2))
            choice = rnd.randrange(4)
            if choice == 0:
                t2[i] = -1 if t2[i] != -1 else 0          # a leaf for a split, or the reverse
            elif choice == 1:
                t2[i] = rnd.randrange(m)                  # another row
            elif choice == 2:
                del t2[i]                                 # the tree ends early or shifts
            else:
                t2[i] = schema.CORE_BASE - rnd.randrange(len(cert.evidence.cores) + 2)
            mutant = replace(cert, evidence=replace(cert.evidence, tree=tuple(t2)))
            seq, par = _both(mutant)
            assert seq.valid == par.valid, (i, seq.reason, par.reason)
            invalid += not seq.valid
    assert invalid > 20  # the mutations did break proofs, so the comparison means something


def test_a_bad_split_above_the_cuts_is_refused(certificates, split_small):
    cert = certificates[0]
    m = len(cert.network.layers[0].weight)
    tree = list(cert.evidence.tree)
    assert tree[0] >= 0 and tree[1] >= 0
    for at, bad in ((0, m), (1, tree[0])):  # a row the layer lacks; the root's row again, below the root
        t2 = list(tree)
        t2[at] = bad
        seq, par = _both(replace(cert, evidence=replace(cert.evidence, tree=tuple(t2))))
        assert not seq.valid and not par.valid
        assert "row" in par.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-(1 << 62) + 1, max_value=(1 << 62) - 1), max_size=80))
def test_pack_round_trip(values):
    assert list(packing.unpack(packing.pack(values), None, "x")) == values


def test_packed_tree_certificate_round_trip(certificates, monkeypatch):
    monkeypatch.setattr(schema, "PACK_MIN", 10)
    cert = certificates[0]
    obj = cert.to_json()
    assert obj["proof"]["tree"]["encoding"] == packing.ENCODING
    from fuzzing import schema_errors
    assert schema_errors("certificate", json.loads(json.dumps(obj))) == []
    spoiled = json.loads(json.dumps(obj))
    spoiled["proof"]["tree"]["count"] = "12"
    assert schema_errors("certificate", spoiled)  # the schema is able to refuse a packed list
    back = Certificate.from_json(json.loads(json.dumps(obj)))
    assert list(back.evidence.tree) == list(cert.evidence.tree)
    assert back.evidence.cores == cert.evidence.cores
    assert check(back).valid


def _packed_obj(certificates, monkeypatch):
    monkeypatch.setattr(schema, "PACK_MIN", 10)
    return certificates[0].to_json()


@pytest.mark.parametrize("spoil, words", [
    (lambda p: p["tree"].update(data=p["tree"]["data"][:-4] + "!!!!"), "not valid base64"),
    (lambda p: p["tree"].update(count=p["tree"]["count"] + 1), "count"),
    (lambda p: p["tree"].update(encoding="raw"), "unknown encoding"),
    (lambda p: p["tree"].update(extra=1), "exactly the keys"),
    (lambda p: p["tree"].update(data=packing.pack([1, 2])["data"][:-4] + "gA=="), "count"),
    (lambda p: p["cores"].update(packing.pack([5, 1, 2])), "claims 5 rows"),
    (lambda p: p["tree"].update(packing.pack([1 << 62 - 1]) | {"data": "////////////////"}), "count"),
])
def test_malformed_packed_data_is_one_line(certificates, monkeypatch, tmp_path, spoil, words):
    obj = _packed_obj(certificates, monkeypatch)
    spoil(obj["proof"])
    with pytest.raises(InputError) as e:
        Certificate.from_json(json.loads(json.dumps(obj)), "c.json")
    assert words in str(e.value) and "\n" not in str(e.value)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(obj))
    out = subprocess.run([sys.executable, "-m", "exact_inj", "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unfinished_integer_is_refused():
    raw = packing.pack([3, 300])
    import base64
    data = base64.b64encode(base64.b64decode(raw["data"]) + bytes([0x81])).decode()
    with pytest.raises(InputError, match="ends inside an integer"):
        packing.unpack({"encoding": packing.ENCODING, "count": 2, "data": data}, "c.json", "proof tree")


def test_check_cli_workers_option(certificates, tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(certificates[0].to_json()))
    for k in ("1", "2"):
        out = subprocess.run([sys.executable, "-m", "exact_inj", "check", str(path), "--workers", k],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "VALID" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "exact_inj", "check", str(path), "--workers", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2


def test_single_layer_network_required():
    net = Network((Layer.from_rows([[1]], [0]), Layer.from_rows([[1]], [0])))
    cert = Certificate(net, exact_inj.model.Domain(), schema.Status.INJECTIVE, TreeProof((), (-1,)))
    assert not check(cert).valid


def test_a_packed_tree_is_checked_without_a_copy(certificates, monkeypatch):
    """check() keeps a packed tree's compact array (a tuple would cost about 4x its memory),
    and only a signed one: an unsigned array would read row 2^32 - 1 as a code of its own."""
    from array import array

    from exact_inj.certify.check import _normalised_evidence
    monkeypatch.setattr(schema, "PACK_MIN", 10)
    back = Certificate.from_json(json.loads(json.dumps(certificates[0].to_json())))
    assert isinstance(back.evidence.tree, array)
    assert _normalised_evidence(back.evidence).tree is back.evidence.tree
    unsigned = replace(back.evidence, tree=array("I", [max(c, 0) for c in back.evidence.tree]))
    assert isinstance(_normalised_evidence(unsigned).tree, tuple)
    assert check(back).valid
