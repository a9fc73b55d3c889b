"""Compile time that scales with the program (issue 9, point 8), without timing anything.

* The dependence of every signal on every ``[diff:1]`` parameter is one analysis per
  compile (autodiff/jvp.py ``dependence``: one bit per parameter), not one search per
  parameter, and it decides exactly what the per-parameter search decided.
* The common-divisor search of the normal form looks at the pairs of terms that can have
  a common divisor only, with the same result as comparing every pair.
* Very large loop bodies are lowered in chunks, one LLVM function each
  (codegen/llvm.py ``_Lower.chunks``): the output is the same, bit for bit.

The 100-parameter chain itself is compiled by a slow test (``-m slow``);
``benchmarks/compile_scaling.py`` times it against the Faust compiler.
"""

import os
import sys
import time

import numpy as np
import pytest

import diffaust
from diffaust.autodiff import jvp
from diffaust.codegen import llvm as L
from diffaust.runtime.pipeline import CompileOptions, run_pipeline
from diffaust.signals import normalize as N
from diffaust.signals.nodes import walk

sys.path.insert(0, os.path.dirname(__file__))
import progen  # noqa: E402

HERE = os.path.dirname(__file__)
PROGRAMS = os.path.join(HERE, "programs")
EXAMPLES = os.path.join(os.path.dirname(diffaust.__file__), "examples")


def chain(n: int) -> str:
    """n one-pole filters in series, each with its own [diff:1] coefficient."""
    return ('one_pole(i) = _ : *(1-a) : + ~ *(a) with { a = hslider("a%i [diff:1]", 0.5, 0, 0.99, 0.01); };\n'
            f"process = seq(i, {n}, one_pole(i));\n")


def _dsp_files(*dirs):
    out = []
    for d in dirs:
        for root, _, files in os.walk(d):
            out += [os.path.join(root, f) for f in sorted(files) if f.endswith(".dsp")]
    return sorted(out)


# ------------------------------------------------------------------ dependence analysis

def test_dependence_is_computed_once_per_compile(monkeypatch):
    calls = []
    real = jvp.dependence

    def counting(order, variables):
        calls.append(len(variables))
        return real(order, variables)

    monkeypatch.setattr(jvp, "dependence", counting)
    d = diffaust.compile(chain(6), diff=True, use_cache=False)
    assert len(d.diff_params) == 6
    assert calls == [6]  # one analysis, for the six parameters at once


def _reference_dependents(order, var):
    """The per-parameter search dependence() replaces: breadth-first from p over the reversed
    edges (argument → node, group v → every recvar(v))."""
    parents, refs = {}, {}
    for n in order:
        if n.op == "recvar":
            refs.setdefault(n.attr, []).append(n)
        for a in n.args:
            parents.setdefault(a, []).append(n)
    dep = dict.fromkeys(order, False)
    frontier = [var] if var in dep else []
    for n in frontier:
        dep[n] = True
    while frontier:
        n = frontier.pop()
        nxt = parents.get(n, [])
        if n.op == "rec":
            nxt = nxt + refs.get(n.attr, [])
        for m in nxt:
            if not dep[m]:
                dep[m] = True
                frontier.append(m)
    return dep


def _check_dependence(source):
    st = run_pipeline(source, "<string>", CompileOptions(diff=True), until="normalize_signals")
    variables = jvp.diff_variables(st.outputs)
    order = walk(st.outputs)
    masks = jvp.dependence(order, variables)
    assert set(masks) == set(order)
    for k, v in enumerate(variables):
        ref = _reference_dependents(order, v)
        assert {n for n in order if masks[n] >> k & 1} == {n for n in order if ref[n]}, v.attr.label


@pytest.mark.parametrize("name", [os.path.basename(f) for f in _dsp_files(os.path.join(PROGRAMS, "nested"),
                                                                         os.path.join(PROGRAMS, "campaign"))])
def test_dependence_equals_per_parameter_search(name):
    path = next(f for f in _dsp_files(PROGRAMS) if os.path.basename(f) == name)
    with open(path) as f:
        _check_dependence(f.read())


@pytest.mark.parametrize("seed", range(24))
def test_dependence_equals_per_parameter_search_random(seed):
    _check_dependence(progen.generate(seed).source())


# ------------------------------------------------------------------ common divisors

def _all_pairs_divisor(self):
    """Faust's search: every pair of terms."""
    best, best_c = N.MTerm(self.norm, self.ctx), 0
    ms = self.ordered()
    for i, m1 in enumerate(ms):
        for m2 in ms[i + 1:]:
            g = N._gcd(m1, m2)
            c = g.complexity()
            if c > best_c:
                best, best_c = g, c
    return best


def test_greatest_divisor_equals_all_pairs(monkeypatch):
    fast = N.ATerm.greatest_divisor
    seen = []

    def both(self):
        a, b = fast(self), _all_pairs_divisor(self)
        assert (a.coef, a.factors) == (b.coef, b.factors)
        seen.append(len(self.terms))
        return a

    monkeypatch.setattr(N.ATerm, "greatest_divisor", both)
    sources = [open(f).read() for f in _dsp_files(PROGRAMS) if "campaign" not in f]
    sources += [progen.generate(seed).source() for seed in range(24)]
    sources += ["process = _ <: *(3), *(3), *(2) :> _;", "process = _, _ <: 2*_*_, 2*_*_, _*_ :> _;",
                'g = hslider("g", 1, 0, 2, 0.1); process = _ <: g*_*_, g*_, 3*g*_, 3*_ :> _;']
    for src in sources:
        try:
            run_pipeline(src, "<string>", CompileOptions(), until="normalize_signals")
        except diffaust.errors.DiffaustError:
            pass  # the malformed-program fixtures
    assert sum(1 for k in seen if k > 2) > 20  # the comparisons above did happen


# ------------------------------------------------------------------ lowering in chunks

CHUNKED = [f for f in _dsp_files(PROGRAMS) if "malformed" not in f] + \
    [os.path.join(EXAMPLES, d, "diff.dsp") for d in sorted(os.listdir(EXAMPLES))
     if os.path.exists(os.path.join(EXAMPLES, d, "diff.dsp"))]


@pytest.mark.parametrize("path", CHUNKED, ids=lambda p: os.path.relpath(p, os.path.dirname(HERE)))
@pytest.mark.parametrize("size", [1, 40])
def test_chunked_lowering_gives_the_same_output(path, size, monkeypatch):
    diff = os.path.basename(path) == "diff.dsp"
    kw = dict(use_cache=False, diff=diff, import_dirs=(os.path.dirname(path),))
    try:
        monkeypatch.setattr(L, "CHUNK_ABOVE", None)
        whole = diffaust.compile(path, **kw)
    except diffaust.errors.DiffaustError:
        pytest.skip("not a compilable program")
    monkeypatch.setattr(L, "CHUNK_ABOVE", 0)
    monkeypatch.setattr(L, "CHUNK_SIZE", size)
    chunked = diffaust.compile(path, **kw)
    assert "_chunk1" in chunked.listing("llvm")
    n = 1500
    x = np.random.default_rng(3).uniform(-1, 1, (whole.inputs, n)).astype(whole.dtype)
    y = whole.instance().compute(x, n)
    np.testing.assert_array_equal(y, chunked.instance().compute(x, n))
    inst = chunked.instance()  # the state carries over from one call to the next
    parts = [inst.compute(x[:, i:i + 256]) for i in range(0, n, 256)]
    np.testing.assert_array_equal(y, np.concatenate(parts, axis=1))


def test_large_programs_are_chunked_and_small_ones_not():
    def lower(src, diff=False):
        st = run_pipeline(src, "<string>", CompileOptions(diff=diff))
        return L._Lower(st.program, L.ir.Module(), "t").chunks()

    assert lower("process = par(i, 100, _);") is None
    assert lower(chain(3), diff=True) is None
    chunks = lower("process = par(i, 2000, _);")  # 4,000 memory accesses
    assert chunks is not None and len(chunks) > 10


# ------------------------------------------------------------------ the 100-parameter chain

@pytest.mark.slow
def test_chain_of_100_one_poles_compiles_and_differentiates():
    t0 = time.perf_counter()
    d = diffaust.compile(chain(100), diff=True, use_cache=False)
    elapsed = time.perf_counter() - t0
    assert len(d.diff_params) == 100
    assert elapsed < 120, f"compiling the 100-parameter chain took {elapsed:.1f} s"
    n = 2000
    x = np.random.default_rng(5).uniform(-0.9, 0.9, (1, n))
    _, dy = d.render_jvp(x.astype(np.float32), n=n)
    primal = diffaust.compile(chain(100), double=True, use_cache=False)
    labels = [p.label for p in d.diff_params]  # UI order: a0, a1, a10, a11...
    for k in (0, 57, 99):
        label, h = f"a{k}", 1e-4
        fd = (primal.render(x, n=n, params={label: 0.5 + h})[0]
              - primal.render(x, n=n, params={label: 0.5 - h})[0]) / (2 * h)
        ad = dy[0, labels.index(label)]
        err = np.max(np.abs(ad - fd)) / np.max(np.abs(fd))
        assert err < 1e-3, (label, err)
