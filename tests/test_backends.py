"""Backend cross-checks: the LLVM JIT against the plain Python interpreter of the same schedule."""

import numpy as np
import pytest

import diffaust
from diffaust.codegen import interp
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

PROGRAMS = [
    "process = +~*(0.5);",
    "process = _ <: _@3, mem, prefix(0.5, _) :> _;",
    'process = _ * hslider("g", 0.5, 0, 1, .01) : + ~ (_ * 0.9);',
    "process = int(_ * 100) % 7, int(_ * 100) << 2, int(_*100) >> 1, int(_*50) & 12, int(_*50) | 3, int(_*50) xor 5;",
    "process = _ <: sin, cos, atan, exp, abs, floor, ceil, rint, sqrt(abs(_)), log(abs(_) + 1), min(0.2), max(-0.2), fmod(_, 0.3), remainder(_, 0.3), _ ^ 2;",
    "process = _ <: select2(_ > 0, _, 0-_), select3(int(_ * 2 + 1), 1, 2, 3);",
    "process = rdtable(16, float(+(1)~_) * 0.1, int((_ + 1) * 7.5));",
    "process = rwtable(8, 0.0, int((_ + 1) * 3.5), _ * 2, int((mem(_) + 1) * 3.5));",
    'process = _ @ int(hslider("d", 3, 0, 10, 1));',
    "process = +(1) ~ _ : float : /(100);",
    'import("stdfaust.lib"); process = no.noise, os.osc(440);',
]


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("src", PROGRAMS)
def test_llvm_matches_interpreter(src, double):
    dsp = diffaust.compile(src, double=double, use_cache=False)
    st = run_pipeline(src, "<string>", CompileOptions(double=double))
    x = np.random.default_rng(5).uniform(-1, 1, (dsp.inputs, 200))
    y = dsp.render(x)
    yi = interp.run(st.program, x, 200)
    # libm (LLVM) and NumPy may round transcendental functions one ulp apart
    tol = 1e-12 if double else 1e-6
    np.testing.assert_allclose(y, yi, rtol=tol, atol=tol)


def test_block_size_does_not_matter():
    dsp = diffaust.compile("process = _ : + ~ *(0.99) : _ @ 17;", use_cache=False)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 1000))
    whole = dsp.render(x)
    inst = dsp.instance()
    parts = [inst.compute(x[:, i:i + 7]) for i in range(0, 1000, 7)]
    np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))
    inst = dsp.instance()
    steps = np.array([inst.step((v,)) for v in x[0]]).T
    np.testing.assert_array_equal(whole, steps)


def test_disk_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path))
    src = 'process = _ * hslider("gain [diff:1]", 0.5, 0, 1, 0.01);'
    a = diffaust.compile(src, diff=True)
    b = diffaust.compile(src, diff=True)  # from the cache
    assert list((tmp_path / "dsp").glob("*.entry"))
    x = np.linspace(-1, 1, 32)[None]
    np.testing.assert_array_equal(a.render(x), b.render(x))
    assert b.derivative_names == a.derivative_names == ["d out0/d gain"]


def test_cache_sees_library_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    lib = tmp_path / "mine.lib"
    lib.write_text("k = 2;")
    dsp = tmp_path / "p.dsp"
    dsp.write_text('import("mine.lib"); process = _ * k;')
    assert diffaust.compile(str(dsp)).render(np.ones((1, 1)))[0, 0] == 2
    import os
    import time
    lib.write_text("k = 3;")
    os.utime(lib, (time.time() + 5, time.time() + 5))
    assert diffaust.compile(str(dsp)).render(np.ones((1, 1)))[0, 0] == 3
