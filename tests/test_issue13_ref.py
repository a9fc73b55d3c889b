"""Issue 13, points 2, 5, 6 and 7 (second bug): diffaust against the real Faust (2.54.9).

Every comparison renders the same program (or, for the newer `ffunction` form that
2.54.9 does not parse, its 2.54 spelling) with Faust's generated C++ and with diffaust,
and requires |err| <= 1e-9·(1+|ref|) in double.  docs/SEMANTICS.md records the facts.

- point 2: audio inputs are typed in [-1, 1] (Faust's assumed range), so a delay
  bounded through an input compiles with Faust's line; out of range, diffaust stays
  memory-safe (a line read wraps in its ring, a table index is clamped), and reverse
  mode's adjoint program does not take its cotangent/tape inputs for audio;
- point 5: an rwtable's type is its initial content's (an integer table truncates a
  real written into it);
- point 6: `ffunction(int isnanf|isnan|isnanl|isnanfx (float), ...)` (current Faust's
  four names: float|double|quad|fixed-point) beside 2.54's one to three names;
- point 7: a function kept inside a diagram (`t(g : _)` matched by `(A : B)`) is
  applied as the function (Faust's lazy a2sb), the wdmodels.lib `buildtree` circuits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import faustref

pytestmark = pytest.mark.reference

TOL = 1e-9


def _diffaust(src, double=True, **kw):
    import diffaust

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return diffaust.compile(src, double=double, **kw)


def _compare(faust_ref, src, n=512, x="noise", params=None, double=True, diff_src=None, scale=1.0):
    """Render `src` with Faust and `diff_src` (default `src`) with diffaust; compare."""
    info = faust_ref.reference_info(src, double=double)
    xs = faust_ref.make_input(x, info["inputs"], n) * scale if info["inputs"] else None
    ref = faust_ref.render_reference(src, n=n, x=xs, params=params, double=double)
    d = _diffaust(diff_src or src, double=double)
    xd = None if xs is None else (xs if double else xs.astype(np.float32))
    got = np.asarray(d.render(x=xd, n=n, params=params), dtype=np.float64)
    assert got.shape == ref.shape
    if double:
        err = np.abs(got - ref)
        bad = ~((err <= TOL * (1 + np.abs(ref))) | (np.isnan(got) & np.isnan(ref)))
    else:
        bad = ~(np.isclose(got, ref, rtol=1e-5, atol=1e-6) | (np.isnan(got) & np.isnan(ref)))
    assert not bad.any(), f"first mismatch at {np.argwhere(bad)[0]}: diffaust {got[bad][:4]}, faust {ref[bad][:4]}"
    return ref


def _faust_cpp(src, *args):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prog.dsp")
        with open(path, "w") as f:
            f.write(src + "\n")
        p = subprocess.run([faustref.FAUST, *args, path], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def _diffaust_code(src, *args):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prog.dsp")
        with open(path, "w") as f:
            f.write(src + "\n")
        p = subprocess.run([sys.executable, "-m", "diffaust", "compile", *args, path],
                           capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------ point 2: input range

INPUT_DELAYS = [
    "process(s, s2) = s@(int(abs(s2)*10));",
    "process(s, s2) = s@(int(s2*5 + 5)), s@(int((s2 + 1)*100));",
    "process(s, s2) = s@(int(abs(s2)*10)) + s@(int(abs(s2)*abs(s)*40)), (s@(int(abs(s)*30)) : + ~ *(0.5));",
    'import("stdfaust.lib"); process(s, s2) = de.fdelay(64, abs(s2)*40, s), de.delay(32, int(abs(s2)*20), s);',
]


@pytest.mark.parametrize("src", INPUT_DELAYS)
def test_delay_bounded_by_input_range(faust_ref, src):
    _compare(faust_ref, src, n=600)


def test_input_delay_line_size_is_faust_s():
    rc, cpp = _faust_cpp(INPUT_DELAYS[0], "-double")
    assert rc == 0 and "fVec0[11]" in cpp  # Faust: a shift register of max + 1 = 11 cells
    rc, code = _diffaust_code(INPUT_DELAYS[0], "-double")
    assert rc == 0 and "& 15]" in code  # diffaust: a ring of 16 cells read `& 15`


def test_input_delay_that_may_be_negative_is_refused():
    src = "process(s, s2) = s@(int(s2*10));"
    rc, out = _faust_cpp(src)
    assert rc != 0 and "possible negative values" in out
    rc, out = _diffaust_code(src)
    assert rc != 0 and "negative delay" in out


def test_input_out_of_range_wraps_in_the_ring():
    """s2 = 2.5 asks for a delay of 25 from a line sized for 10 (16 cells): read modulo 16,
    i.e. 9 samples back; huge, infinite and NaN amounts stay in the ring too (never out of
    bounds; Faust's C++ reads outside its 11-cell array there)."""
    n = 40
    s = np.arange(1.0, n + 1.0)
    d = _diffaust(INPUT_DELAYS[0])
    for v, back in [(2.5, 9), (1.6, 0), (-3.2, 0), (1e9, None), (np.inf, None), (np.nan, None)]:
        y = d.render(x=np.stack([s, np.full(n, v)]), n=n)[0]
        assert np.all(np.isfinite(y))
        if back is not None:
            want = np.array([s[k - back] if k >= back else 0.0 for k in range(n)])
            np.testing.assert_array_equal(y, want)
        else:  # int(huge/inf/nan) is INT_MIN = 0 (mod 16): the current sample
            np.testing.assert_array_equal(y, s)


def test_table_index_from_out_of_range_input_is_clamped_as_faust(faust_ref):
    src = ("process(s) = rdtable(waveform{10, 20, 30, 40, 50}, int(s*2)), "
           "rwtable(6, 0.0, int(s*3), s, int(s*4 + 1));")
    _compare(faust_ref, src, n=300, scale=4.0)  # inputs in [-4, 4): indices far outside


def test_reverse_mode_adjoint_inputs_are_not_audio():
    """A taped delay amount is clamped to the primal amount's range in the adjoint program;
    its tape channel is an input of that program and must not be taken for audio in
    [-1, 1] (that would size the scatter line for amounts <= 1)."""
    src = """
g = hslider("g [diff:1]", 0.7, 0, 1, 0.01);
r = (+(0.37) ~ _) : fmod(_, 40);
vd(a) = max(0, min(50, int(a)));
process(x) = x * g <: @(vd(r)), @(vd(r*3 - 60)), (+ ~ (@(vd(r + 2)) * g * 0.5)), @(int(abs(x)*9));
"""
    d = _diffaust(src, diff=True)
    n = 3000
    x = np.random.default_rng(5).uniform(-0.9, 0.9, (1, n))
    y, dy = d.render_jvp(x, n=n)
    y_bar = np.random.default_rng(1).standard_normal(y.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gr = d.vjp(x, y_bar)
    fwd, rev = float(np.sum(dy[:, 0, :] * y_bar)), float(gr.params["g"])
    assert abs(fwd - rev) <= 1e-9 * max(1.0, abs(fwd)), (fwd, rev)


# ------------------------------------------------------------ point 5: integer tables

RWTABLES = [
    "process = rwtable(8, 0, int(_*4 + 4), _*1.24, int(_*4 + 4));",
    "process = rwtable(waveform{1, 2, 3, 4}, int(_*2 + 2), _*2.7, int(_*3 + 2));",
    "process = rwtable(8, 0.0, int(_*4 + 4), int(_*30), int(_*4 + 4));",
    "process = rwtable(waveform{1.0, 2, 3, 4}, int(_*2 + 2), _*2.7, int(_*2 + 2));",
    "process = rwtable(16, +(1)~_, int(_*8 + 8), _*-7.5, int(_*8 + 8));",
    "process = rwtable(16, float(+(1)~_)*0.5, int(_*8 + 8), _*10, int(_*8 + 8)) + "
    "rwtable(16, int(+(1)~_), int(_*8 + 8), _*10, int(_*8 + 8));",
]


@pytest.mark.parametrize("src", RWTABLES)
def test_rwtable_type_follows_initial_content(faust_ref, src):
    _compare(faust_ref, src, n=400)


@pytest.mark.parametrize("double", [True, False])
def test_integer_rwtable_float(faust_ref, double):
    _compare(faust_ref, RWTABLES[0], n=200, double=double)


def test_integer_rwtable_has_no_derivative():
    """A real written into an integer table is truncated: piecewise constant, derivative 0."""
    src = ('g = hslider("g [diff:1]", 0.5, 0, 2, 0.01);\n'
           "process = rwtable(8, 0, int(_*4 + 4), _*g*10, int(_*4 + 4)), "
           "rwtable(8, 0.0, int(_*4 + 4), _*g*10, int(_*4 + 4));")
    d = _diffaust(src, diff=True)
    x = np.random.default_rng(2).uniform(-0.9, 0.9, (d.inputs, 200))
    y, dy = d.render_jvp(x, n=200)
    assert np.all(y[0] == np.trunc(y[0]))
    assert np.all(dy[0] == 0) and np.any(dy[1] != 0)


# ------------------------------------------------------------ point 6: ffunction names

FFUN_254 = ('isn = ffunction(int isnanf|isnan|isnanl (float), <math.h>, "");\n'
            'cs = ffunction(float copysignf|copysign|copysignl (float, float), <math.h>, "");\n'
            'lg = ffunction(float log1pf|log1p|log1pl (float), <math.h>, "");\n'
            "process(x) = isn(sqrt(x)), cs(0.5, x), lg(abs(x));")
FFUN_NEW = (FFUN_254.replace("isnanl (", "isnanl|isnanfx (").replace("copysignl (", "copysignl|copysignfx (")
            .replace("log1pl (", "log1pl|log1pfx ("))


@pytest.mark.parametrize("double", [True, False])
def test_four_name_ffunction_computes_what_faust_computes(faust_ref, double):
    assert FFUN_NEW != FFUN_254 and "isnanfx" in FFUN_NEW
    _compare(faust_ref, FFUN_254, n=300, double=double, diff_src=FFUN_NEW)


def test_four_name_ffunction_calls_the_precision_s_name():
    """float: the first name, double: the second (as Faust 2.54 with three names)."""
    src = FFUN_NEW
    for args, names, absent in [((), ("isnanf(", "copysignf(", "log1pf("), ("isnan(", "copysign(")),
                                (("-double",), ("isnan(", "copysign(", "log1p("), ("isnanf(", "log1pf("))]:
        rc, code = _diffaust_code(src, *args)
        assert rc == 0, code
        for nm in names:
            assert nm in code
        for nm in absent:
            assert nm not in code
        rc, cpp = _faust_cpp(FFUN_254, *args)
        assert rc == 0 and all(nm in cpp for nm in names)


@pytest.mark.parametrize("double", [True, False])
def test_single_double_libm_name_in_float(faust_ref, double):
    """`ffunction(float hypot(float, float), ...)`: one name, a C function of doubles.  Faust's
    C++ calls the float overload in float; diffaust calls hypotf (it called hypot with float
    arguments: garbage)."""
    src = 'h = ffunction(float hypot(float, float), <math.h>, "");\nprocess = _, (_ : *(2)) : h;'
    _compare(faust_ref, src, n=300, double=double)


def test_int_to_a_negative_power_folds_to_a_real_in_arguments(faust_ref):
    """`f(10*10^-9)` (wdmodels.lib's documented example): the box-level folder made 10^-9 the
    int 0, and 1/c a division by 0; Faust folds it to 1e-9."""
    _compare(faust_ref, "f(c) = 1/c;\nprocess = f(10*10^-9) * 1e-9, 2^-1, 10^-2;", n=4)


def test_faust_2_54_refuses_the_four_name_form_diffaust_accepts():
    rc, out = _faust_cpp(FFUN_NEW)
    assert rc != 0 and "syntax error" in out
    _diffaust(FFUN_NEW)


def test_more_than_four_ffunction_names_is_a_syntax_error():
    from diffaust.errors import FaustSyntaxError
    from diffaust.syntax.parser import parse

    with pytest.raises(FaustSyntaxError, match="at most 4"):
        parse('f = ffunction(float a|b|c|d|e (float), <math.h>, ""); process = f;')


# ------------------------------------------------------------ point 7: functions in diagrams

PATTERN_A_B = """
f = case { (0, x) => x; (1, x) => x*2; };
g(i) = f(i, 3);
apply(A) = A(0) + A(1);
t((A : B)) = apply(A);
process = t(g : _);
"""


def test_function_matched_by_a_composition_pattern_is_applied(faust_ref):
    ref = _compare(faust_ref, PATTERN_A_B, n=4)
    assert np.all(ref == 9)


def test_function_kept_in_a_diagram_is_converted_when_used(faust_ref):
    # the same functions used as diagrams (not matched): eta-converted as before
    src = ("h(a, b) = a*10 + b; k(a) = a*a + 1;\n"
           "t((A : B)) = A(1), (A : B), B(4);\n"
           "process = (k : _), (h : *(2)), t(h : _), t(\\(u).(u+1) : +(3));")
    _compare(faust_ref, src, n=64)


def test_function_converted_where_the_diagram_is_needed_fails_as_faust(faust_ref):
    # Faust converts `g : _` when the diagram is needed: g(x) = f(x, 3) then fails there
    src = "f = case { (0, x) => x; (1, x) => x*2; }; g(i) = f(i, 3);\nprocess = g : _;"
    rc, out = _faust_cpp(src)
    assert rc != 0 and "pattern matching failed" in out
    from diffaust.errors import FaustEvalError

    with pytest.raises(FaustEvalError, match="pattern matching failed"):
        _diffaust(src)


WDF = """
import("stdfaust.lib");
vs1(i) = wd.u_voltage(i, no.noise);
r1(i) = wd.resistor(i, 47*10^3);
c1(i) = wd.capacitor_Vout(i, 10.0e-9);
tree_lowpass = vs1 : wd.series : (r1, c1);
process = wd.buildtree(tree_lowpass);
"""

WDF_INPUT = """
import("stdfaust.lib");
model(in1) = wd.buildtree(tree)
with {
    vin(i) = wd.u_voltage(i, in1);
    r1(i) = wd.resistor(i, 4700);
    c1(i) = wd.capacitor_Vout(i, 47.0e-9);
    r2(i) = wd.resistor_Vout(i, 1000);
    tree = vin : wd.series : (r1, (wd.parallel : (c1, r2)));
};
process = model;
"""


@pytest.mark.skipif(not os.path.exists("/usr/share/faust/wdmodels.lib"), reason="no wdmodels.lib")
@pytest.mark.parametrize("src", [WDF, WDF_INPUT], ids=["lowpass_doc_example", "rlc_with_input"])
def test_wdmodels_buildtree(faust_ref, src):
    _compare(faust_ref, src, n=2000)


def test_matched_function_inside_a_group(faust_ref):
    # the widgets of the function keep their groups, whether it is applied or converted
    src = """
f = case { (0, x) => x*hslider("a", 1, 0, 2, 0.1); (1, x) => x*2; };
g(i) = f(i, 3);
apply(A) = A(0) + A(1);
t((A : B)) = apply(A);
t(x) = 0;
process = hgroup("G", t(g : _)), hgroup("H", (\\(u).(u*hslider("b", 1, 0, 2, 0.1)) : _));
"""
    ref = _compare(faust_ref, src, n=8, params={"a": 1.5, "b": 0.5})
    assert np.all(ref[0] == 10.5)
    d = _diffaust(src)
    assert [p.path.split("/", 2)[2] for p in d.params] == ["G/a", "H/b"]


# ------------------------------------------------------------ x^k as Faust's normal form keeps it
# (found on programs of Faust's own tests: tests/codegen-tests/testpow2.dsp and
# tests/pass-tests/20180211-bug.dsp of grame-cncm/faust)
POWERS = [
    "process(x) = 2*x^2 : /(x);",          # x^2/x is not x: 0/0 at x = 0
    "process(x) = x^2*x^3, (x*x)/(x^2), x^2 + x*x, 3*x^2*x^2;",
    "process(x) = (x + 0.5)^7 / (x + 0.5)^3, x^2/(x^2);",
]


@pytest.mark.parametrize("src", POWERS)
@pytest.mark.parametrize("x", ["impulse", "noise"])
def test_powers_are_one_factor_of_a_product(faust_ref, src, x):
    _compare(faust_ref, src, x=x)


def test_pow_bounds_a_delay(faust_ref):
    """pow(2, n) with n in [5, 16]: a 65536-sample bound, the line Faust allocates."""
    src = 'x = nentry("Log2(Delay)", 15, 5, 16, 1); process = @(pow(2.0, x)), @(1 << int(x));'
    _compare(faust_ref, src, n=300)
    _compare(faust_ref, src, n=300, params={"Log2(Delay)": 5})


def test_a_table_read_bounds_a_delay_by_its_content(faust_ref):
    """A read of an rdtable lies in its generator's range (Faust's typing): a delay by a table
    of a sine mapped to [0, 1], times 100 (tests/codegen-tests/BUG20180710.dsp of Faust)."""
    src = '''import("stdfaust.lib");
phase(f) = f/48000.0 : (+, 1.0 : fmod) ~ _;
sinwave(f) = phase(f) * 2 * ma.PI : sin : +(1) : /(2);
tosc(f) = 48000, sinwave(1), int(max(0, min(phase(f)*48000, 47999))) : rdtable;
process = os.osc(440) : @(tosc(10)*100);'''
    _compare(faust_ref, src, n=4000)


def test_a_foreign_function_without_arguments_runs_every_sample(faust_ref):
    """`ffunction(int random(), <stdlib.h>, "")` is called once per sample, as Faust calls it
    (tests/codegen-tests/test27.dsp of Faust); with an argument, at the argument's rate."""
    import ctypes

    src = ('process = ffunction(int rand(), <stdlib.h>, ""), '
           'ffunction(float sinf(float), <math.h>, "")(hslider("a", 0.3, 0, 1, 0.1));')
    ref = faust_ref.render_reference(src, n=64, double=True)  # its own process: rand() from seed 1
    libc = ctypes.CDLL(None)
    libc.srand(1)
    got = np.asarray(_diffaust(src).render(n=64), dtype=np.float64)
    np.testing.assert_array_equal(got, ref)
    assert len(set(got[0])) > 1


@pytest.mark.parametrize("double", [True, False])
def test_float_named_c_math_functions_in_a_double_program(faust_ref, double):
    """A float-named C math function alone in a -double program: `sinf` is written
    std::sin(double) by Faust's C++ backend, `tanhf`, `ldexpf` are called as written, C++
    rounding the argument to float and widening the float result; diffaust does the same
    (it passed a double to the float function before: garbage)."""
    src = ('process = ffunction(float sinf(float), <math.h>, "")(_), '
           'ffunction(float tanhf(float), <math.h>, "")(_ * 3), '
           'ffunction(float ldexpf(float, int), <math.h>, "")(_, 3), '
           'ffunction(float ldexp(float, int), <math.h>, "")(_, 2);')
    ref = _compare(faust_ref, src, double=double)
    assert np.abs(ref).max() > 0.1


def test_float_named_function_in_the_interpreter_and_the_jit():
    from diffaust.codegen import interp
    from diffaust.runtime.pipeline import CompileOptions, run_pipeline

    src = ('process = _ <: ffunction(float tanhf(float), <math.h>, "")(_), '
           'ffunction(float ldexpf(float, int), <math.h>, "")(_, 2), ffunction(float sinf(float), <math.h>, "")(_) :> _;')
    x = np.linspace(-1, 1, 50)[None, :]
    st = run_pipeline(src, "<t>", CompileOptions(double=True))
    got = interp.run(st.program, x, 50)
    jit = _diffaust(src).render(x)
    # tanhf and ldexpf in float (C's conversions), sinf as std::sin(double) (Faust's mapping)
    want = (np.tanh(x.astype(np.float32)).astype(np.float64) + 4 * x) + np.sin(x)
    np.testing.assert_allclose(jit, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(got), jit)


# ------------------------------------------------------------ pattern matching corners
# (Faust's tests/pass-tests/PM-bug1.dsp, testYO.dsp, PM-bug11.dsp)
PATTERNS = [
    # a function used as a diagram inside a numeric argument: (3,6 : foo : /) is 2
    "foo(x,y) = (y,x); choice0 = case { (1) => *; (2) => /; (x) => +; };\n"
    "process = choice0((6,3:/)), choice0((3,6:foo:/));",
    "foo(x,y) = (y,x); choice2 = case { ((2,3:foo:-)) => *; ((2,4:foo:-)) => /; (x) => +; };\n"
    "process = choice2((4,2:-)), choice2((3,2:-));",
    # a function applied in a pattern is applied: dup(f) is (f, f)
    "f = *(2); dup(x) = (x,x); faa(1, dup(f)) = f; process = faa(1,dup(6));",
]


@pytest.mark.parametrize("src", PATTERNS)
def test_patterns_evaluate_functions(faust_ref, src):
    _compare(faust_ref, src, x="impulse", n=8)


def test_a_group_in_a_pattern_is_refused_clearly():
    from diffaust.errors import FaustEvalError

    with pytest.raises(FaustEvalError, match="group .* in a pattern"):
        _diffaust('foo(hgroup("", x)) = x*2; foo(x) = x*3; process = foo(hgroup("", 10));')
