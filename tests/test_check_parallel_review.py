"""Adversarial review of the parallel tree check (certify/tree.py): ways the
worker pool could hand one check the answers meant for another, and inputs on
which the parallel path answered differently from the sequential one.

Every test compares against the sequential check in this process, whose own
tests are in test_certificates.py and test_adversarial.py; each mutant below
is invalid for a stated reason (a core leaf naming a core that does not exist,
a split on a row the layer lacks).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from array import array
from dataclasses import replace

import numpy as np
import pytest

import exact_inj
from exact_inj import ipc
from exact_inj.certify import parallel as PAR
from exact_inj.certify import tree as T
from exact_inj.certify.base import Invalid
from exact_inj.certify.check import check
from exact_inj.certify.schema import CORE_BASE, TreeProof
from exact_inj.model import Layer


@pytest.fixture(scope="module")
def cert():
    rng = np.random.default_rng([0, 5, 34, 0])
    v = exact_inj.verify(Layer.from_rows(rng.standard_normal((34, 5)).tolist()), milp="none")
    assert isinstance(v.certificate.evidence, TreeProof), v.reason
    return v.certificate


@pytest.fixture
def two_tasks(monkeypatch, cert):
    """Two windows: a tree without cores is two tasks on two workers, and a check that reads two stale answers reads nothing of
    its own."""
    monkeypatch.setattr(T, "PARALLEL_MIN_CODES", 0)
    monkeypatch.setattr(T, "WINDOW", (len(cert.evidence.tree) + 1) // 2)
    PAR.shutdown()
    yield
    PAR.shutdown()


def _coreless(cert):
    # Every core leaf now names a core that does not exist: invalid, in every subtree.
    return replace(cert, evidence=replace(cert.evidence, cores=()))


def _par(c):
    with T.check_workers(2):
        return check(c)


def test_an_interrupted_check_leaves_no_answers_for_the_next(cert, two_tasks, monkeypatch):
    # A check interrupted while its workers still hold tasks (Ctrl-C, or any
    # exception out of the wait) must not leave their answers in the pipes:
    # the next check would read them as its own.
    real = ipc.Child.recv
    calls = []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(ipc.Child, "recv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _par(cert)
    monkeypatch.setattr(ipc.Child, "recv", real)
    bad = _coreless(cert)
    assert not check(bad).valid
    res = _par(bad)
    assert not res.valid, res.reason
    assert _par(cert).valid


def _while_a_check_waits(cert, monkeypatch, during) -> dict:
    """Check ``cert`` in parallel in a thread that stops before reading its
    first answer (its workers hold its first tasks); run ``during(out)`` then,
    and return the results ("good": that check's; whatever ``during`` adds)."""
    real = ipc.Child.recv
    first = threading.Event()
    go_on = threading.Event()
    holder: list[threading.Thread] = []

    def gated(self):
        if not holder:
            holder.append(threading.current_thread())
        if threading.current_thread() is holder[0] and not first.is_set():
            first.set()
            go_on.wait(30)
        return real(self)

    monkeypatch.setattr(ipc.Child, "recv", gated)
    out: dict = {}
    th = threading.Thread(target=lambda: out.__setitem__("good", _par(cert)))
    th.start()
    assert first.wait(30)
    try:
        during(out)
    finally:
        go_on.set()
        th.join(60)
    return out


def test_two_threads_never_share_the_workers(cert, two_tasks, monkeypatch):
    # verify's decision thread is left running past its time limit (run.py,
    # supervise) and a library caller may check from several threads: a
    # second check must not send its subtrees to workers that hold the first
    # one's rows, nor read the first one's answers.
    out = _while_a_check_waits(cert, monkeypatch, lambda out: out.__setitem__("bad", _par(_coreless(cert))))
    assert not out["bad"].valid, out["bad"].reason
    assert out["good"].valid, out["good"].reason


def test_a_second_check_leaves_the_first_ones_workers_alone(cert, two_tasks, monkeypatch):
    # Two threads writing to one worker's pipe interleave their messages (a
    # task is far larger than the pipe's atomic write): the worker may read a
    # garbled pickle, or a length that never arrives and wait forever.  So a
    # check started while another holds the workers is checked in its own
    # process, and the first check keeps its workers to the end.
    pids = []

    def during(out):
        pids.extend(w.proc.pid for w in PAR._POOL)
        assert len(pids) == 2
        out["bad"] = _par(_coreless(cert))
        assert [w.proc.pid for w in PAR._POOL] == pids and all(w.alive() for w in PAR._POOL)

    out = _while_a_check_waits(cert, monkeypatch, during)
    assert not out["bad"].valid and out["good"].valid
    assert [w.proc.pid for w in PAR._POOL] == pids  # the first check ran to its end on them


@pytest.fixture
def split_small(monkeypatch):
    monkeypatch.setattr(T, "PARALLEL_MIN_CODES", 0)
    monkeypatch.setattr(T, "WINDOW", 8)
    yield
    PAR.shutdown()


@pytest.mark.parametrize("code", [1 << 70, CORE_BASE - (1 << 70), 10 ** 40])
def test_a_code_beyond_64_bits_gets_the_sequential_reason(cert, split_small, code):
    # numpy cannot hold it; the parallel check must leave such a tree to the
    # sequential walk, which names the node, not fail as "malformed".
    tree = list(cert.evidence.tree)
    tree[5] = code
    mutant = replace(cert, evidence=replace(cert.evidence, tree=tuple(tree)))
    seq, par = check(mutant), _par(mutant)
    assert not seq.valid and not par.valid
    assert par.reason == seq.reason


def test_an_unsigned_array_tree_is_read_as_its_values(cert, split_small):
    # check_tree is public and takes any sequence of codes.  In an array of
    # unsigned 32-bit integers, 2^32 - 1 is a row index (far beyond the layer),
    # not the rank leaf -1 that its bytes spell as a signed integer.
    proof = cert.evidence
    unsigned = array("I", [c % (1 << 32) for c in proof.tree])
    bad = TreeProof(proof.cores, unsigned)
    with pytest.raises(Invalid, match="splits on row 4294967"):
        T.check_tree(cert.network, bad, cert.domain, workers=1)
    with pytest.raises(Invalid, match="splits on row 4294967"):
        T.check_tree(cert.network, bad, cert.domain, workers=2)
    # The signed arrays the packed reader makes are read as they are.
    for typecode in "iq":
        packed = TreeProof(proof.cores, array(typecode, proof.tree))
        assert T.check_tree(cert.network, packed, cert.domain, workers=2) == \
            T.check_tree(cert.network, proof, cert.domain, workers=1)


def test_a_worker_that_cannot_start_leaves_the_check_to_this_process(cert, split_small, monkeypatch):
    # exact-inj check --workers K takes any K; past the process limit (or out
    # of memory) a worker fails to start.  That says nothing about the
    # certificate: the sequential check decides, and the workers that did
    # start are stopped, not left waiting on their pipes.
    real = ipc.Child.__init__
    started: list[ipc.Child] = []

    def spawn(self, module):
        if started:
            raise OSError(11, "Resource temporarily unavailable")
        real(self, module)
        started.append(self)

    PAR.shutdown()
    monkeypatch.setattr(ipc.Child, "__init__", spawn)
    res = _par(cert)
    assert res.valid, res.reason
    assert res.reason == check(cert).reason
    assert len(started) == 1
    started[0].proc.wait(10)  # stopped: its exit code is there to read


_AGREEABLE_WORKER = '''
import os, pickle, struct, sys
r, w = int(sys.argv[1]), int(sys.argv[2])

def read(k):
    b = b""
    while len(b) < k:
        c = os.read(r, k - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b

while True:
    (k,) = struct.unpack("<Q", read(8))
    msg = pickle.loads(read(k))
    if msg[0] != "init":
        data = pickle.dumps(("ok", msg[1], 0))
        os.write(w, struct.pack("<Q", len(data)) + data)
'''


def test_the_workers_run_this_checker_not_one_in_the_current_directory(cert, two_tasks, tmp_path, monkeypatch):
    # python -m puts the current directory first on sys.path: run from a
    # folder holding another exact_inj (an old checkout, or a planted one),
    # the workers would run its code, and a worker that answers "ok" to
    # everything makes any tree pass.
    fake = tmp_path / "exact_inj" / "certify"
    fake.mkdir(parents=True)
    (tmp_path / "exact_inj" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "worker.py").write_text(_AGREEABLE_WORKER)
    monkeypatch.chdir(tmp_path)
    res = _par(_coreless(cert))
    assert not res.valid, res.reason


def test_ctrl_c_is_left_to_the_process_that_started_the_workers(cert, split_small, capfd):
    # A terminal's Ctrl-C reaches every process of the group: the workers kept
    # for later checks must not each die with a KeyboardInterrupt traceback.
    assert _par(cert).valid
    pids = [w.proc.pid for w in PAR._POOL]
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    time.sleep(1.0)
    assert all(w.alive() for w in PAR._POOL)
    assert "Traceback" not in capfd.readouterr().err
    assert _par(cert).valid and [w.proc.pid for w in PAR._POOL] == pids
