"""`control(x, c)` and `enable(x, c)` as Faust 2.54.9 runs them (issue 13, point 4).

Faust runs the statements of the signals that only a control's x uses under
`if (c != 0) {...}`: their state (an oscillator's phase, a filter's memory, a delay line, a
waveform's index) freezes while c is 0, and the control's value is x's last computed one;
x shared with code outside runs every sample and passes through.  docs/SEMANTICS.md
("control / enable") has the rules, codegen/schedule.py (`conditions`, `If`) the design.

- against the real Faust (reference tests, skipped without `faust`): an oscillator under
  `enable` with a checkbox toggled mid-render, recursions under `control` (checkbox and
  sample-rate conditions), `control(sig, sig)`, shared state, nested and or-ed conditions,
  short and long delay lines, a waveform; float and double;
- every backend of the scheduled program agrees: the LLVM JIT, the interpreter, the C++
  export (`compile -lang cpp`, built against Faust's headers), the C-like listing;
- derivatives: forward mode's tangent state freezes with the primal's (against central
  finite differences of Faust's output and of diffaust's own); reverse mode is exact when
  what the condition guards holds no state (dot product against forward mode) and an
  error naming control/enable otherwise.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import diffaust
from diffaust.codegen import interp
from diffaust.codegen.clike import format_schedule
from diffaust.codegen.schedule import If
from diffaust.errors import DerivativeError
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

sys.path.insert(0, str(Path(__file__).parent))

BS = 16  # block size of the renders: a checkbox changes between compute() calls

OSC = ('import("stdfaust.lib"); c = checkbox("on"); '
       'process = enable(os.osc(440), c), control(os.osc(1000) + (_ : fi.lowpass(2, 800)), c);')
OSC_ON = {"on": [(0, 0.0), (32, 1.0), (96, 0.0), (160, 1.0)]}

COUNTERS = 'import("stdfaust.lib"); c = (ba.time % 4) < 2; process = control(3 : + ~ _, c), enable(2 : + ~ _, c);'

CASES = {
    # a recursion under control, a checkbox; the counter shared with outside runs every sample
    "recursion": ('import("stdfaust.lib"); c = checkbox("on"); r = 1 : + ~ _; '
                  'process = control(r, c), r, control(_ : + ~ *(0.9), c), control(control(r * 2, c) + (5 : + ~ _), '
                  'button("b")), control(r@3, c), control((2 : + ~ _)@3, c);',
                  1, {"on": [(0, 0.0), (16, 1.0), (48, 0.0), (80, 1.0)], "b": [(0, 1.0), (32, 0.0), (64, 1.0)]}),
    # control(sig, sig), a delay read in place (short line) and a held input
    "signal_condition": ('process = control(_, _), control(_\', _ > 0.2), control(_ * 2, _ < 0);', 6, {}),
    # x shared: computed every sample, the control passes it through; what is only under c holds
    "shared": ('import("stdfaust.lib"); c = checkbox("on"); o = os.osc(500); '
               'process = control(o * 2, c), (o > 0), control(o, c), enable(_ + (fi.lowpass(1, 500) ~ *(0.5)), c);',
               1, {"on": [(0, 0.0), (32, 1.0), (96, 0.0), (128, 1.0)]}),
    # lines: shift registers (below 16) frozen and read in place, rings (16 and more) on the
    # global IOTA and held, a variable delay of a short line held
    "lines": ('c = checkbox("on"); process = control(_@15, c), control(_@16, c), '
              'control(_@(hslider("d", 1, 0, 5, 1)), c), (_ <: control(_@100, c), _), control(_@3 : + ~ *(0.5), c);',
              5, {"on": [(0, 1.0), (48, 0.0), (96, 1.0), (128, 0.0), (144, 1.0)]}),
    # a waveform's index freezes; constant conditions; c1 | c2; nested c1 & c2
    "conditions": ('import("stdfaust.lib"); c = checkbox("on"); c2 = checkbox("two"); w = waveform{1, 2, 3} : !, _; '
                   'process = control(w, c), control(_, 0), control(_, 1), '
                   '(_ * 7 <: control(_ + 1, c), control(_ + 1, c2)), '
                   'control(control(os.osc(300) + (1 : + ~ _), c2) * (0.5 : + ~ _), (ba.time % 7) < 4);',
                   3, {"on": [(0, 1.0), (48, 0.0), (96, 1.0)], "two": [(0, 0.0), (64, 1.0), (128, 0.0)]}),
    # a control inside a recursion's loop
    "in_recursion": ('import("stdfaust.lib"); c = checkbox("on"); '
                     'process = (+ : control(_, c)) ~ *(0.5), + ~ (control(_ * 0.5, c)), '
                     '(+ : control(_ : fi.lowpass(1, 500), c)) ~ *(0.5);',
                     3, {"on": [(0, 1.0), (48, 0.0), (96, 1.0), (128, 0.0), (144, 1.0)]}),
    # enable of each output of a two-output recursion; a table read with a held index
    "multi_output": ('import("stdfaust.lib"); c = checkbox("on"); '
                     'g = (route(4, 4, 1, 1, 2, 3, 3, 2, 4, 4) : +, + : fi.lowpass(1, 300), fi.highpass(1, 300)) '
                     '~ (*(0.3), *(0.2)); r = 1 : + ~ _; '
                     'process = (g : par(i, 2, enable(_, c))), '
                     'control(rdtable(10, (r : float : sin), int(_ * 4.5 + 4.5)), c), control(r, r % 3 == 0);',
                     3, {"on": [(0, 1.0), (48, 0.0), (96, 1.0), (128, 0.0), (144, 1.0)]}),
    # a widget-rate x passes through whatever the condition (Faust computes it per block)
    "slow": ('c = checkbox("on"); s = hslider("s", 1, 0, 10, 0.1); '
             'process = control(s * 4, c), control(s * 5, _), control(sin(s), c) + 1;', 1,
             {"on": [(0, 0.0), (48, 1.0)], "s": [(0, 2.0), (32, 3.0), (64, 4.0)]}),
}


def _compile(src, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return diffaust.compile(src, use_cache=False, **kw)


def _render_blocks(dsp, x, n, schedule, bs=BS):
    """dsp run in compute() calls of `bs` samples, each widget of `schedule` ({label:
    [(offset, value)]}) set before the call of the block starting at offset (as
    reference.render_reference does)."""
    inst = dsp.instance()
    out = []
    for b0 in range(0, n, bs):
        for name, events in schedule.items():
            for off, v in events:
                if off == b0:
                    inst.set_param(name, v)
        xb = None if x is None else np.ascontiguousarray(x[:, b0:b0 + bs])
        out.append(inst.compute(xb, min(bs, n - b0), block_size=bs))
    return np.concatenate(out, axis=1)


def _noise(channels, n, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (channels, n)) if channels else None


def _assert_close(got, ref, double):
    if double:
        bad = np.abs(got - ref) > 1e-9 * (1 + np.abs(ref))
    else:
        bad = ~np.isclose(got, ref, rtol=1e-5, atol=1e-6)
    assert not bad.any(), f"first mismatch at {np.argwhere(bad)[0]}: diffaust {got[bad][:4]}, faust {ref[bad][:4]}"


def _against_faust(faust_ref, src, nin, schedule, double, n=192):
    d = _compile(src, double=double)
    assert d.inputs == nin
    x = _noise(nin, n)
    ref = faust_ref.render_reference(src, n=n, x=x, params=schedule, double=double, block_size=BS)
    got = _render_blocks(d, None if x is None else (x if double else x.astype(np.float32)), n, schedule)
    _assert_close(np.asarray(got, dtype=np.float64), ref, double)
    return got, ref


# ------------------------------------------------------------------ against Faust

@pytest.mark.reference
@pytest.mark.parametrize("double", [True, False], ids=["double", "float"])
def test_oscillator_under_enable_checkbox_toggled(faust_ref, double):
    got, ref = _against_faust(faust_ref, OSC, 1, OSC_ON, double, n=256)
    # the phase froze: after the checkbox comes back, the oscillator resumes where it stopped
    # (a running phase would be 64 samples further on)
    free = _compile('import("stdfaust.lib"); process = os.osc(440);', double=double).render(n=256)[0]
    np.testing.assert_allclose(got[0, 32:96], free[:64], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0, 96:160], np.full(64, got[0, 95]), rtol=0, atol=0)  # held
    np.testing.assert_allclose(got[0, 160:224], free[64:128], rtol=1e-5, atol=1e-6)
    assert np.all(got[:, :32] == 0)  # 0 before c was first on


@pytest.mark.reference
@pytest.mark.parametrize("double", [True, False], ids=["double", "float"])
def test_counters_as_measured(faust_ref, double):
    got, _ = _against_faust(faust_ref, COUNTERS, 0, {}, double, n=16)
    assert list(got[0, :8]) == [3, 6, 6, 6, 9, 12, 12, 12]
    assert list(got[1, :8]) == [2, 4, 4, 4, 6, 8, 8, 8]


@pytest.mark.reference
@pytest.mark.parametrize("double", [True, False], ids=["double", "float"])
@pytest.mark.parametrize("name", list(CASES))
def test_against_faust(faust_ref, name, double):
    src, nin, schedule = CASES[name]
    _against_faust(faust_ref, src, nin, schedule, double)


def test_control_of_signal_by_signal_passes_it_while_on():
    d = _compile("process = control(_, _);", double=True)
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0, 1.0, 0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_array_equal(d.render(x)[0], [0, 2, 2, 2, 5, 6])


# ------------------------------------------------------------------ backends

BACKEND_PROGRAMS = [
    'import("stdfaust.lib"); c = (ba.time % 50) < 20; '
    'process = enable(os.osc(440), c), control(_@100, c), control(_@3, c), control(_\', c);',
    'import("stdfaust.lib"); c1 = (ba.time % 37) < 20; c2 = (ba.time % 7) < 4; '
    'process = control(control(os.osc(300) + (1 : + ~ _), c1) * (0.5 : + ~ _), c2), '
    'enable(enable(_ : fi.lowpass(2, 1000), c2), c1), (_ * 7 <: control(_ + 1, c1), control(_ + 1, c2));',
    'c = _ > 0.3; w = waveform{1, 2, 3} : !, _; '
    'process = control(w, c), control(_@(hslider("d", 1, 0, 5, 1)) : + ~ *(0.5), c), '
    'control(rwtable(8, 0.0, int((_ + 1) * 3.5), _ * 2, int((mem(_) + 1) * 3.5)), c);',
]


@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
@pytest.mark.parametrize("k", range(len(BACKEND_PROGRAMS)))
def test_llvm_matches_interpreter(k, double):
    src = BACKEND_PROGRAMS[k]
    d = _compile(src, double=double)
    st = run_pipeline(src, "<string>", CompileOptions(double=double))
    assert any(isinstance(s, If) for s in st.program.sample)
    x = _noise(d.inputs, 300, seed=5)
    y = d.render(x)
    yi = interp.run(st.program, x, 300)
    tol = 1e-12 if double else 1e-6  # libm and NumPy may round a transcendental one ulp apart
    np.testing.assert_allclose(y, yi, rtol=tol, atol=tol)
    text = format_schedule(st.program)
    assert re.search(r"if \(\(t\d+ != 0\)\) \{", text)


@pytest.mark.reference
@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
@pytest.mark.parametrize("k", range(len(BACKEND_PROGRAMS)))
def test_cpp_export_and_faust(faust_ref, k, double):
    from diffaust.codegen.cpp import emit_cpp_stages

    src = BACKEND_PROGRAMS[k]
    d = _compile(src, double=double)
    st = run_pipeline(src, "<string>", CompileOptions(double=double))
    x = _noise(d.inputs, 300, seed=5)
    y = np.asarray(d.render(x, block_size=64), dtype=np.float64)
    exported = faust_ref.run_binary(faust_ref.build_cpp(emit_cpp_stages(st, CompileOptions(double=double)),
                                                        double=double), n=300, x=x, block_size=64)
    np.testing.assert_array_equal(y, exported)  # the same operations in the same order
    ref = faust_ref.render_reference(src, n=300, x=x, double=double, block_size=64)
    _assert_close(y, ref, double)


def test_no_condition_no_if():
    st = run_pipeline('import("stdfaust.lib"); process = os.osc(440) : fi.lowpass(2, 1000);', "<string>",
                      CompileOptions())
    assert not any(isinstance(s, If) for s in st.program.sample + st.program.post)


# ------------------------------------------------------------------ derivatives

DIFF = '''import("stdfaust.lib");
a = hslider("a [diff:1]", 0.6, 0, 0.99, 0.01);
f = hslider("f [diff:1]", 300, 50, 1000, 1);
c = (ba.time % 300) < 140;
process = enable(_ : + ~ *(a), c), control(sin(2 * ma.PI * (f / ma.SR : + ~ ma.frac)), c),
          enable(_ : fi.lowpass(1, f), c);
'''
# the phase runs every sample for a use whose derivative is 0 (a comparison): its tangent
# must run every sample too, not freeze with the control that alone reads it
TIED = '''import("stdfaust.lib");
f = hslider("f [diff:1]", 300, 50, 1000, 1);
c = checkbox("on");
o = f / ma.SR : + ~ ma.frac;
process = control(sin(2 * ma.PI * o), c), (o > 0.5);
'''
# a delay line that runs every sample for a comparison (derivative 0) and is differentiated
# only under a control: its tangent's line must still be written every sample (a ring line
# at 20 samples, a shift register at 3)
TIED_LINE = '''import("stdfaust.lib");
f = hslider("f [diff:1]", 0.5, 0, 1, 0.01);
c = checkbox("on");
process = _ * f : @(DELAY) <: control(_, c), >(0);
'''
STEPS = {"a": 1e-5, "f": 1e-3}


def _fd_check(src, nin, schedule, faust_ref=None, n=2000, tol=1e-7, outputs=None):
    x = _noise(nin, n, seed=3)
    d = _compile(src, double=True, diff=True)
    got = _render_blocks(d, x, n, schedule, bs=100)
    P = d.primal_outputs
    dy = got[P:].reshape(P, len(d.diff_params), n)
    plain = _compile(src, double=True)
    for k, p in enumerate(d.diff_params):
        h = STEPS[p.label]
        hi = dict(schedule, **{p.label: [(0, p.init + h)]})
        lo = dict(schedule, **{p.label: [(0, p.init - h)]})
        fds = [(_render_blocks(plain, x, n, hi, bs=100) - _render_blocks(plain, x, n, lo, bs=100)) / (2 * h)]
        if faust_ref is not None:
            fds.append((faust_ref.render_reference(src, n=n, x=x, params=hi, double=True, block_size=100)
                        - faust_ref.render_reference(src, n=n, x=x, params=lo, double=True, block_size=100))
                       / (2 * h))
        for fd in fds:
            for o in outputs if outputs is not None else range(P):
                err = np.max(np.abs(dy[o, k] - fd[o])) / (1 + np.max(np.abs(fd[o])))
                assert err < tol, f"d out{o} / d {p.label}: {err:.3g}"


def test_forward_mode_freezes_tangents_own_fd():
    _fd_check(DIFF, 2, {})
    _fd_check(TIED, 0, {"on": [(0, 0.0), (300, 1.0), (700, 0.0), (1100, 1.0)]}, outputs=[0])


@pytest.mark.parametrize("delay", [20, 3])
def test_a_tangent_line_runs_with_its_primal_line(delay):
    _fd_check(TIED_LINE.replace("DELAY", str(delay)), 1,
              {"on": [(0, 0.0), (300, 1.0), (700, 0.0), (1100, 1.0)]}, outputs=[0])


@pytest.mark.reference
@pytest.mark.parametrize("delay", [20, 3])
def test_a_tangent_line_runs_with_its_primal_line_against_faust(faust_ref, delay):
    _fd_check(TIED_LINE.replace("DELAY", str(delay)), 1,
              {"on": [(0, 0.0), (300, 1.0), (700, 0.0), (1100, 1.0)]}, faust_ref=faust_ref, outputs=[0])


@pytest.mark.reference
def test_forward_mode_against_faust_fd(faust_ref):
    _fd_check(DIFF, 2, {}, faust_ref=faust_ref)
    _fd_check(TIED, 0, {"on": [(0, 0.0), (300, 1.0), (700, 0.0), (1100, 1.0)]}, faust_ref=faust_ref, outputs=[0])


def test_reverse_mode_stateless_guard_dot_product():
    from test_reverse import dot_check

    src = '''import("stdfaust.lib");
g = hslider("g [diff:1]", 0.6, 0, 2, 0.01);
c = (ba.time % 30) < 14;
r = _ : + ~ *(0.5);
process = (r <: control(sin(_ * g), c), _), enable(_ * g, c) : + ~ *(0.3), _, _;
'''
    d = _compile(src, double=True, diff=True)
    for label, fwd, rev, err in dot_check(d, _noise(d.inputs, 500), 500):
        assert err < 1e-9, (label, fwd, rev)


@pytest.mark.parametrize("body", ["enable(_ : + ~ *(g), c)", "control(_@20 * g, c)",
                                  "control(os.osc(440) * g, c)"])
def test_reverse_mode_refuses_frozen_state(body):
    src = ('import("stdfaust.lib"); g = hslider("g [diff:1]", 0.6, 0, 0.9, 0.01); '
           f'c = (ba.time % 30) < 14; process = {body};')
    d = _compile(src, double=True, diff=True)
    with pytest.raises(DerivativeError, match="control/enable"):
        d.vjp(_noise(d.inputs, 100), np.ones((1, 100)))


@pytest.mark.parametrize("k", range(len(BACKEND_PROGRAMS)))
def test_llvm_in_chunks(monkeypatch, k):
    """A loop lowered in chunks (codegen/llvm.py: chunks) with `if` blocks: a value set in a
    block and read in a later chunk goes through the scratch buffer."""
    from diffaust.codegen import llvm

    src = BACKEND_PROGRAMS[k]
    whole = _compile(src, double=True)
    x = _noise(whole.inputs, 300, seed=5)
    monkeypatch.setattr(llvm, "CHUNK_ABOVE", 10)
    monkeypatch.setattr(llvm, "CHUNK_SIZE", 12)
    st = run_pipeline(src, "<string>", CompileOptions(double=True))
    assert "_chunk2" in str(llvm.build_module(st.program, "t"))
    cut = _compile(src, double=True)
    np.testing.assert_array_equal(cut.render(x), whole.render(x))


@pytest.mark.reference
def test_dx7_algorithm_selector(faust_ref):
    """dx7.lib's `dx7_ui` runs its 32 algorithms each under `control(algorithm == i)`: the
    operators of an algorithm not selected freeze, and resume when it is selected again."""
    src = 'import("stdfaust.lib"); process = dx.dx7_ui;'
    schedule = {"gate": [(0, 1.0), (2048, 0.0)], "algorithm": [(0, 3.0), (1024, 7.0), (3072, 3.0)]}
    d = _compile(src, double=True)
    got = _render_blocks(d, None, 4096, schedule, bs=256)
    ref = faust_ref.render_reference(src, n=4096, params=schedule, double=True, block_size=256)
    _assert_close(got, ref, True)
