"""Compiles from several threads at once, and compiles that follow other compiles.

Issue 9, point 6: the compile pipeline shares process-wide state (the hash-consing table
of signals and its creation serials, which order the terms of the normal form; the
typing memo tables; the recursion limit; LLVM's context).  `run_pipeline` holds one
re-entrant lock (`COMPILE_LOCK`), each compile starts a fresh serial epoch and empty
typing memos, so a compile's result never depends on what was compiled before or beside it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import diffaust
from diffaust.examples import EXAMPLES_DIR
from diffaust.runtime.pipeline import dump_stage

pytestmark = pytest.mark.usefixtures("diffaust_compile")  # skip while the runtime is missing

TREMOLO = EXAMPLES_DIR / "tremolo" / "diff.dsp"

# a few programs with recursions, library code and several sums (normal-form ordering)
PROGRAMS = {
    "tremolo.dsp": TREMOLO.read_text(),
    "reso.dsp": 'import("stdfaust.lib");\n'
                'f = hslider("freq[diff:1]", 800, 50, 5000, 0.01);\n'
                'q = hslider("q[diff:1]", 2, 0.5, 10, 0.01);\n'
                'process = fi.resonlp(f, q, 1);\n',
    "comp.dsp": 'import("stdfaust.lib");\n'
                'r = hslider("ratio[diff:1]", 4, 1, 20, 0.0001);\n'
                't = hslider("thresh[diff:1]", -12, -60, 0, 0.0001);\n'
                'a = hslider("att[diff:1]", 0.005, 0.0001, 1, 0.0001);\n'
                'process = co.compressor_mono(r, t, a, 0.1);\n',
    "sum.dsp": 'a = hslider("a[diff:1]", 0.3, 0, 1, 0.01);\n'
               'b = hslider("b[diff:1]", 0.2, 0, 1, 0.01);\n'
               'process = _ <: (_ * b + a + 0.25) + (_ * a + b + 0.5) : + ~ *(0.5 * a);\n',
}
# written in the other order: compiled first, it creates the shared nodes in another order
SUM_REVERSED = ('b = hslider("b[diff:1]", 0.2, 0, 1, 0.01);\n'
                'a = hslider("a[diff:1]", 0.3, 0, 1, 0.01);\n'
                'process = _ <: (_ * a + b + 0.5) + (_ * b + a + 0.25) : + ~ *(0.5 * b);\n')

N = 512


@pytest.fixture
def programs(tmp_path):
    paths = {}
    for name, text in PROGRAMS.items():
        p = tmp_path / name
        p.write_text(text)
        paths[name] = p
    return paths


def _input(dsp):
    return np.random.default_rng(1).uniform(-1, 1, (dsp.inputs, N)).astype(dsp.dtype)


def _in_threads(jobs, n_threads):
    """Run the callables of `jobs` in `n_threads` threads started together; results in order."""
    results = [None] * len(jobs)
    errors = []
    barrier = threading.Barrier(n_threads)

    def worker(k):
        barrier.wait()
        for i in range(k, len(jobs), n_threads):
            try:
                results[i] = jobs[i]()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: compiles interleave
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in threads:
                t.start()
            for t in threads:
                t.join(600)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, repr(errors[0])
    return results


@pytest.mark.parametrize("diff", [False, True], ids=["primal", "diff"])
@pytest.mark.parametrize("use_cache", [False, True], ids=["nocache", "cache"])
def test_same_file_four_threads(programs, tmp_path, monkeypatch, diff, use_cache):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    path = programs["comp.dsp"]
    dsps = _in_threads([lambda: diffaust.compile(path, diff=diff, use_cache=use_cache)] * 4, 4)
    ref = diffaust.compile(path, diff=diff, use_cache=False)
    x = _input(ref)
    want_c, want_llvm, want_y = ref.listing("c"), ref.listing("llvm"), ref.render(x)
    for d in dsps:
        assert d.listing("c") == want_c
        assert d.listing("llvm") == want_llvm
        assert np.array_equal(d.render(x), want_y, equal_nan=True)


def test_different_files_at_once(programs):
    jobs = [lambda p=p, d=d: diffaust.compile(p, diff=d, use_cache=False)
            for p in programs.values() for d in (False, True)]
    dsps = _in_threads(jobs, 4)
    for (p, d), got in zip([(p, d) for p in programs.values() for d in (False, True)], dsps):
        ref = diffaust.compile(p, diff=d, use_cache=False)
        x = _input(ref)
        assert got.listing("c") == ref.listing("c"), p
        assert np.array_equal(got.render(x), ref.render(x), equal_nan=True), p


def test_programs_sharing_signals_at_once(tmp_path):
    """Two programs building the same signals in opposite orders, and a third, compiled side
    by side (threads switching often): each gets the code it gets when compiled alone."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b, c = tmp_path / "a" / "prog.dsp", tmp_path / "b" / "prog.dsp", tmp_path / "a" / "comp.dsp"
    a.write_text(SUM_REVERSED)
    b.write_text(PROGRAMS["sum.dsp"])
    c.write_text(PROGRAMS["comp.dsp"])
    want = {p: dump_stage(str(p), "sched", diff=True) for p in (a, b, c)}
    jobs = [a, b, c, b] * 3
    got = _in_threads([lambda p=p: dump_stage(str(p), "sched", diff=True) for p in jobs], 4)
    assert [g == want[p] for g, p in zip(got, jobs)] == [True] * len(jobs)


def test_listings_from_threads():
    """listing() re-runs the pipeline and LLVM's optimizer: safe beside compiles."""
    d = diffaust.compile(PROGRAMS["reso.dsp"], diff=True, use_cache=False)
    want = d.listing("c"), d.listing("llvm")
    got = _in_threads([lambda: (d.listing("c"), d.listing("llvm"))] * 6, 3)
    assert all(g == want for g in got)


def _alone(path, diff):
    """The scheduled program of `path` compiled first thing in a fresh interpreter."""
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            "from diffaust.runtime.pipeline import dump_stage\n"
            "sys.stdout.write(dump_stage(sys.argv[1], 'sched', diff=sys.argv[2] == '1'))\n")
    p = subprocess.run([sys.executable, "-c", code, str(path), "1" if diff else "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _after(first, path, diff, first_diff=None):
    """The same after compiling `first` in this process."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dump_stage(str(first), "sched", diff=diff if first_diff is None else first_diff)
        return dump_stage(str(path), "sched", diff=diff)


@pytest.mark.parametrize("diff", [False, True], ids=["primal", "diff"])
def test_result_does_not_depend_on_earlier_compiles(tmp_path, diff):
    """Program B alone, and after A, which builds B's signals in another order: same code.
    (The normal form orders the terms of a sum by creation order, as Faust.)"""
    # one file name: the widgets' paths (/prog/a) and so the signals are the same
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "prog.dsp", tmp_path / "b" / "prog.dsp"
    a.write_text(SUM_REVERSED)
    b.write_text(PROGRAMS["sum.dsp"])
    assert _after(a, b, diff) == _alone(b, diff)
    # the simplest case: the terms of one sum, created in the other order by a first program
    a.write_text('process = hslider("y",1,0,2,0.1) + hslider("x",1,0,2,0.1) + _;')
    b.write_text('process = hslider("x",1,0,2,0.1) + hslider("y",1,0,2,0.1) + _;')
    assert _after(a, b, diff) == _alone(b, diff)


def test_typing_does_not_depend_on_earlier_compiles(tmp_path):
    """The primal compile of a program, then its diff compile: the diff compile types its
    recursions as it does alone (the typing memos used to carry natures over)."""
    p = tmp_path / "guitar.dsp"
    p.write_text('import("stdfaust.lib");\n'
                 'exc = (ba.time % 11025) == 0;\n'
                 'l = hslider("length[diff:1]", 0.6731, 0.1, 2, 0.0001);\n'
                 'pp = hslider("pluckPosition[diff:1]", 0.3, 0, 1, 0.0001);\n'
                 'process = float(exc) : pm.elecGuitarModel(l, pp, 0.9);\n')
    assert _after(p, p, True, first_diff=False) == _alone(p, True)
