"""The LLVM lowering's own choices (codegen/llvm.py): short delay lines in registers,
x86 float->int conversion, the native block driver used by the benchmarks."""

import ctypes

import numpy as np
import pytest

import diffaust
from diffaust.codegen import interp
from diffaust.codegen import llvm as L
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

# x@2, x@3 (constant delays: shift registers), a biquad-like recursion through x'' and a
# variable delay (ring buffer) side by side
SHORT_LINES = [
    "process = _ <: _@2, _@3, _ + _@1 + _@2;",
    "process = + ~ (_ <: _@1 * 0.5, _@2 * -0.25 :> _);",
    'process = _ <: _@2, _@int(hslider("d", 3, 0, 9, 1)) :> _;',
]


def _lines(src):
    st = run_pipeline(src, "<string>", CompileOptions())
    return L._Lower(st.program, L.ir.Module(), "t").shift_lines()


@pytest.mark.parametrize("src", SHORT_LINES)
@pytest.mark.parametrize("shift_max", [0, 16])
def test_short_lines_same_result_in_blocks(src, shift_max, monkeypatch):
    monkeypatch.setattr(L, "SHIFT_MAX", shift_max)
    dsp = diffaust.compile(src, use_cache=False)
    st = run_pipeline(src, "<string>", CompileOptions())
    x = np.random.default_rng(1).uniform(-1, 1, (dsp.inputs, 600))
    whole = dsp.render(x)
    np.testing.assert_allclose(whole, interp.run(st.program, x, 600), rtol=1e-6, atol=1e-6)
    for bs in (1, 5, 64):
        inst = dsp.instance()
        parts = [inst.compute(x[:, i:i + bs]) for i in range(0, 600, bs)]
        np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))


def test_short_lines_found():
    assert _lines(SHORT_LINES[0])  # constant delays 2 and 3: registers
    assert _lines(SHORT_LINES[2]) == {}  # read at a variable delay: stays a ring buffer


def test_shift_budget(monkeypatch):
    monkeypatch.setattr(L, "SHIFT_BUDGET", 1)
    assert _lines(SHORT_LINES[0]) == {}


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("cvtt", [False, True])
def test_float_to_int_like_c_on_x86(double, cvtt, monkeypatch):
    """int(x): truncation; NaN and out-of-range values give INT_MIN (what (int)x gives on x86)."""
    monkeypatch.setattr(L, "X86_CVTT", cvtt)
    dsp = diffaust.compile("process = int;", double=double, use_cache=False)
    x = np.array([[0.0, 1.9, -1.9, 2.5e9, -2.5e9, np.inf, -np.inf, np.nan, 2147483520.0, -2147483648.0]])
    y = dsp.render(x)[0]
    want = [0, 1, -1, -2**31, -2**31, -2**31, -2**31, -2**31, 2147483520, -2**31]
    np.testing.assert_array_equal(y, np.array(want, dtype=y.dtype))


def test_block_driver_matches_compute():
    dsp = diffaust.compile("process = + : + ~ *(0.5) <: _, *(2);", use_cache=False)
    n = 1000
    x = np.random.default_rng(3).uniform(-1, 1, (2, n)).astype(np.float32)
    y = np.zeros((2, n), np.float32)
    inst = dsp.instance()
    ip = (ctypes.c_void_p * 2)(*[x[i].ctypes.data for i in range(2)])
    op = (ctypes.c_void_p * 2)(*[y[i].ctypes.data for i in range(2)])
    L.block_driver(False)(ctypes.cast(dsp._compute, ctypes.c_void_p).value, inst._addr, n, 256, 2, 2,
                          ctypes.addressof(ip), ctypes.addressof(op))
    np.testing.assert_array_equal(y, dsp.render(x))
