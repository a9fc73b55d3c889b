"""Forward-mode derivatives against central finite differences (float64), rule by rule.

Every primitive with a derivative rule gets a program where its arguments
depend smoothly on a `[diff:1]` parameter; the derivative channel must match
(y(p+h) - y(p-h)) / 2h within 1e-6 relative.
"""

import re

import numpy as np
import pytest

import diffaust
from diffaust.errors import DerivativeError, DiffaustWarning
from diffaust.primitives.table import PRIMITIVES

P = 'p = hslider("p [diff:1]", 0.3, -1, 1, 0.001);'
Q = 'q = hslider("q [diff:1]", 0.7, -2, 2, 0.001);'

# primitive → expression of the input `_` and the parameters p, q (kept in each domain)
CASES = {
    "+": "_ + p",
    "-": "p - _*q",
    "*": "_ * p * q",
    "/": "(_ + p) / (2 + q)",
    "%": "(_*3 + p*5) % (1.5 + q)",
    "^": "(1.5 + p*_) ^ (q + 0.5)",
    "pow": "pow(2 + _*p, q)",
    "sin": "sin(_ * p + q)",
    "cos": "cos(_ * p + q)",
    "tan": "tan(_ * p * 0.5 + q * 0.3)",
    "asin": "asin(_ * p * 0.5 + q * 0.2)",
    "acos": "acos(_ * p * 0.5 - q * 0.2)",
    "atan": "atan(_ * p + q)",
    "atan2": "atan2(_ + p, q + 0.1*_)",
    "exp": "exp(_ * p + q)",
    "log": "log(2 + _ * p + q)",
    "log10": "log10(2.5 + _ * p + q)",
    "sqrt": "sqrt(2 + _ * p + q)",
    "abs": "abs(_ * p + q*0.25)",
    "min": "min(_ * p, q * 0.5)",
    "max": "max(_ * p, q * 0.5)",
    "fmod": "fmod(_*3 + p*5, 1.5 + q)",
    "remainder": "remainder(_*3 + p*5, 1.5 + q)",
    "floor": "floor(_ * 4 + p) + p",
    "ceil": "ceil(_ * 4 + p) * q",
    "rint": "rint(_ * 4 + p) + q",
    "round": "round(_ * 4 + p) + q",
    "int": "int(_ * 4 + p) + q",
    "float": "float(_ * p) + q",
    "select2": "select2(_ > 0, _ * p, q * _)",
    "select3": "select3(int(_*1.4 + 1.5), p*_, q*_, p*q)",
    "<": "(_ < p) + _ * q",
    "mem": "(_ * p : mem) + q",
    "@": "(_ * p) @ 3 + q",
    "prefix": "prefix(p, _ * q)",
}

# primitives whose derivative is tested elsewhere or that have no continuous argument
NOT_HERE = {"<=", ">", ">=", "==", "!=", "&", "|", "xor", "<<", ">>", "rdtable", "rwtable",
            "attach", "enable", "control", "lowest", "highest", "assertbounds"}


def _check(body, x, params=None, eps=1e-6, tol=1e-6, prelude=""):
    src = prelude + P + Q + f"process = {body};"
    d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    if d.inputs != x.shape[0]:  # one shifted copy of the test signal per input
        x = np.stack([np.roll(x[0], 7 * c) * (1 - 0.1 * c) for c in range(d.inputs)])
    y, dy = d.render_jvp(x, params=params)
    base = {p.label: p.init for p in d.diff_params}
    base.update(params or {})
    plain = diffaust.compile(src, double=True, use_cache=False)
    assert dy.shape == (d.primal_outputs, len(d.diff_params), x.shape[1])
    for k, p in enumerate(d.diff_params):
        hi = dict(base, **{p.label: base[p.label] + eps})
        lo = dict(base, **{p.label: base[p.label] - eps})
        fd = (plain.render(x, params=hi) - plain.render(x, params=lo)) / (2 * eps)
        err = np.abs(fd - dy[:, k]) / (1 + np.abs(fd))
        assert np.max(err) < tol, f"d/d{p.label}: max rel err {np.max(err):.3g}"
    return y, dy


@pytest.fixture(scope="module")
def x():
    # smooth input away from the kinks of floor/int (their derivative is 0 almost everywhere)
    n = 64
    return (0.8 * np.sin(np.arange(n) * 0.37 + 0.2) + 0.05)[None, :]


@pytest.mark.parametrize("name", sorted(CASES))
def test_primitive_rule(name, x):
    _check(CASES[name], x)


def test_every_primitive_has_a_rule_or_a_test():
    for name, p in PRIMITIVES.items():
        if name in NOT_HERE:
            continue
        assert name in CASES or name in ("mem", "@", "prefix"), f"no derivative test for {name}"


def test_gain_dc_order_and_values():
    src = ('gain = hslider("gain [diff:1]", .5, 0, 1, .001);'
           'dc = hslider("dc [diff:1]", .25, -.5, .5, .001);'
           'process = _*gain, dc : +;')
    d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    assert d.derivative_names == ["d out0/d dc", "d out0/d gain"]
    x = np.linspace(-1, 1, 16)[None]
    dy = d.render(x)
    np.testing.assert_allclose(dy[0], 1.0)
    np.testing.assert_allclose(dy[1], x[0])


def test_one_pole_recursion_is_exact():
    # y[n] = x[n] + a y[n-1]; dy/da[n] = y[n-1] + a dy/da[n-1]
    src = 'a = hslider("a [diff:1]", 0.6, 0, 0.99, 0.01); process = + ~ *(a);'
    d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 300))
    y, dy = d.render_jvp(x)
    a = 0.6
    yy = np.zeros(300)
    dd = np.zeros(300)
    for n in range(300):
        prev = yy[n - 1] if n else 0.0
        dprev = dd[n - 1] if n else 0.0
        yy[n] = x[0, n] + a * prev
        dd[n] = prev + a * dprev
    np.testing.assert_allclose(y[0], yy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dy[0, 0], dd, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("body", [
    "_ : (+ : *(p)) ~ *(q)",                                      # gain inside and on the feedback
    "f ~ (_, _) : + with { f(a, b, x) = a*p*0.5 + x, b*q*0.5 + a*0.3; }",  # two-output recursion
    "_ : (+ ~ *(p)) : (+ ~ *(q*0.5))",                            # two recursions in series
    "_ : (+ : (+ ~ *(p*0.5))) ~ *(q*0.3)",                        # nested recursion
    "_ * p : (+ ~ (mem : *(q * 0.4)))",                           # delay inside the feedback
    "_ : (+ ~ (*(p) : sin))",                                    # nonlinear feedback
])
def test_recursion_against_finite_differences(body, x):
    _check(body, x)


def test_variable_delay_and_tables(x):
    # delay by a parameter-independent variable amount
    _check("_ * p @ int(3 + 2*max(-1, min(1, _)))", x)
    # rwtable written with a differentiable signal, read one sample later
    _check("rwtable(8, 0.0, int((_ + 1) * 3.5), _ * p + q, int((mem(_) + 1) * 3.5))", x)
    # rdtable: content fixed at init, piecewise-constant index: derivative only from p
    _check("rdtable(16, float(+(1)~_) * 0.1, int((_ + 1) * 7.5)) + p*q", x)


def test_select_and_atan2_in_recursion(x):
    _check("_ : (+ : atan2(p)) ~ (*(q) <: select2(_ > 0, _, _*0.5))", x)


def test_unknown_ffunction_derivative_is_an_error():
    src = ('f = ffunction(float mysteryf(float), <math.h>, "");'
           'process = _ * hslider("p [diff:1]", 1, 0, 2, .1) : f;')
    with pytest.raises(DerivativeError, match="mysteryf"):
        diffaust.compile(src, diff=True, use_cache=False)


def test_no_diff_params_gives_no_channels():
    d = diffaust.compile("process = _ * 2;", diff=True, use_cache=False)
    assert d.derivative_names == []
    assert d.render(np.ones((1, 4))).shape == (0, 4)


def test_trace_is_recorded():
    d = diffaust.compile(P + "process = _ * p;", diff=True, trace=True)
    assert "Differentiate wrt." in d.trace and "DERIVATIVE" in d.trace


# foreign (libm) functions reached through ffunction: one case per rule of primitives/foreign.py
FOREIGN_CASES = {
    "tanh": "tanh(_ * p + q)", "sinh": "sinh(_ * p + q)", "cosh": "cosh(_ * p + q)",
    "asinh": "asinh(_ * p + q)", "acosh": "acosh(2 + _ * p + q)", "atanh": "atanh((_ * p + q) * 0.3)",
    "cbrt": "cbrt(2 + _ * p + q)", "hypot": "hypot(_ + p, q)", "exp2": "exp2(_ * p + q)",
    "exp10": "exp10(_ * p + q)", "expm1": "expm1(_ * p + q)", "log2": "log2(2 + _ * p + q)",
    "log1p": "log1p(1 + _ * p + q)", "erf": "erf(_ * p + q)", "erfc": "erfc(_ * p + q)",
    "sin": "sin(_ * p + q)", "cos": "cos(_ * p + q)", "tan": "tan((_ * p + q) * 0.3)",
    "exp": "exp(_ * p + q)", "log": "log(2 + _ * p + q)", "log10": "log10(2 + _ * p + q)",
    "sqrt": "sqrt(2 + _ * p + q)", "fabs": "fabs(_ * p + q * 0.25)", "fmin": "fmin(_ * p, q * 0.5)",
    "fmax": "fmax(_ * p, q * 0.5)", "copysign": "copysign(_ * p + 2, q - 0.3 * _)",
    "floor": "floor(_ * 4 + p) + p", "ceil": "ceil(_ * 4 + p) * q", "rint": "rint(_ * 4 + p) + q",
    "round": "round(_ * 4 + p) + q", "trunc": "trunc(_ * 4 + p) + q", "nearbyint": "nearbyint(_ * 4 + p) + q",
}


def _foreign_decl(name: str, arity: int) -> str:
    """`ff_NAME`: the libm function NAME as an ffunction (primitive names are keywords)."""
    args = ", ".join(["float"] * arity)
    return f'ff_{name} = ffunction(float {name}f|{name}|{name}l ({args}), <math.h>, "");'


@pytest.mark.parametrize("name", sorted(FOREIGN_CASES))
def test_foreign_rule(name, x):
    from diffaust.primitives.foreign import FOREIGN

    # the functions of the case, declared as ffunctions (the primitives of the same name are shadowed)
    used = {n for n in FOREIGN if re.search(rf"\b{n}\(", FOREIGN_CASES[name])}
    body = re.sub(r"\b(" + "|".join(used) + r")\(", r"ff_\1(", FOREIGN_CASES[name])
    _check(body, x, prelude="".join(_foreign_decl(n, FOREIGN[n].arity) for n in used))


def test_every_foreign_function_has_a_rule_test_or_is_refused():
    from diffaust.primitives.foreign import FOREIGN

    for name, fn in FOREIGN.items():
        if fn.jvp is None:
            src = _foreign_decl(name, 1) + f'process = _ * hslider("p [diff:1]", 1, 0.5, 2, .1) : ff_{name};'
            with pytest.raises(DerivativeError, match=name):
                diffaust.compile(src, diff=True, use_cache=False)
        else:
            assert name in FOREIGN_CASES, f"no derivative test for foreign function {name}"


# ------------------------------------------------ derivative conventions (docs/DERIVATIVES.md)
# At a point where a primitive is not differentiable (a tie, a kink, a step) the derivative
# is a convention; between such points most of these are the true derivative, 0 for a
# piecewise-constant signal.  Each row: (program, value of p, input or None, expected
# derivative d out/d p per sample).  `x` is 1, 4, 9, 16 (a signal whose differences are
# easy to read).
_XS = [1.0, 4.0, 9.0, 16.0]
_FF = {n: f'ff_{n} = ffunction(float {n}f|{n}|{n}l ({", ".join(["float"] * k)}), <math.h>, "");'
       for n, k in (("fabs", 1), ("fmin", 2), ("fmax", 2), ("copysign", 2))}
TIE_CASES = [
    # |x|' = sign(x) x', 0 at x = 0; the libm fabs takes +x' there
    ("abs at 0", "abs(p)", 0.0, None, [0.0]),
    ("abs(-p) at 0", "abs(-p)", 0.0, None, [0.0]),
    ("fabs at 0", _FF["fabs"] + "process = ff_fabs(p);", 0.0, None, [1.0]),
    # min/max (and fmin/fmax) at a tie: the first argument's derivative
    ("min tie first", "min(p, 0)", 0.0, None, [1.0]),
    ("min tie first (const)", "min(0, p)", 0.0, None, [0.0]),
    ("min tie 2p", "min(2*p, p)", 0.0, None, [2.0]),
    ("max tie first", "max(p, 0)", 0.0, None, [1.0]),
    ("max tie first (const)", "max(0, p)", 0.0, None, [0.0]),
    ("max tie 2p", "max(2*p, p)", 0.0, None, [2.0]),
    ("fmin tie", _FF["fmin"] + "process = ff_fmin(p, 0), ff_fmin(0, p);", 0.0, None, [1.0, 0.0]),
    ("fmax tie", _FF["fmax"] + "process = ff_fmax(p, 0), ff_fmax(0, p);", 0.0, None, [1.0, 0.0]),
    # copysign(x, y)' = ±x': + where x and the result have the same sign (so + at x = 0)
    ("copysign at 0", _FF["copysign"] + "process = ff_copysign(p, -1);", 0.0, None, [1.0]),
    ("copysign", _FF["copysign"] + "process = ff_copysign(p, -1);", 0.2, None, [-1.0]),
    # piecewise constant: 0, also exactly at a step
    ("floor", "floor(p)", 0.3, None, [0.0]),
    ("floor at a step", "floor(p)", 0.0, None, [0.0]),
    ("ceil", "ceil(p)", 0.3, None, [0.0]),
    ("rint tie", "rint(p + 0.5)", 0.0, None, [0.0]),
    ("round tie", "round(p + 0.5)", 0.0, None, [0.0]),
    # every int-nature signal: casts, comparisons, bitwise, int %, ba.time-like counters
    ("int cast", "int(p * 10)", 0.3, None, [0.0]),
    ("float of int", "float(int(p * 10))", 0.3, None, [0.0]),
    ("comparison", "p > 0", 0.0, None, [0.0]),
    ("comparison times p", "(p > 0) * p", 0.5, None, [1.0]),
    ("bitwise", "int(p * 100) & 3", 0.3, None, [0.0]),
    ("int %", "int(p * 100) % 7", 0.3, None, [0.0]),
    # f mod g: (f mod g)' = f' - g' q, q = (f - f mod g)/g: the jump at a multiple is ignored
    ("% at a multiple", "p % 0.25", 0.25, None, [1.0]),
    ("fmod at a multiple", "fmod(p, 0.25)", 0.25, None, [1.0]),
    ("fmod divisor", "fmod(1, p)", 0.3, None, [-3.0]),
    ("remainder tie", "remainder(p, 0.25)", 0.125, None, [1.0]),
    # select2/select3: the selector gets no derivative, the chosen branch does
    ("select2 first", "select2(p > 0, p, 2*p)", -0.5, None, [1.0]),
    ("select2 second", "select2(p > 0, p, 2*p)", 0.5, None, [2.0]),
    ("select2 at the switch", "select2(p > 0, p, 2*p)", 0.0, None, [1.0]),
    ("select3", "select3(int(p*3), p, 2*p, 3*p)", 0.4, None, [2.0]),
    # tables: rdtable 0; rwtable carries the written signal's derivative
    ("rdtable index", "rdtable(4, 0.5, int((p + 1)*1.5))", 0.5, None, [0.0]),
    ("rwtable written", "rwtable(4, 0.0, 0, p, 0)", 0.3, None, [1.0]),
    # delays: an int amount carries no derivative; a real amount the one-sample difference
    # Faust truncates a delay amount: x@d is piecewise constant in d, (x@d)' = x'@d
    ("delay int amount", "_ @ int((p + 1) * 1.5)", 0.0, _XS, [0.0, 0.0, 0.0, 0.0]),
    ("delay real amount", "_ @ ((p + 1) * 1.5)", 0.0, _XS, [0.0, 0.0, 0.0, 0.0]),
    ("delay real amount at an integer", "_ @ ((p + 1) * 1.5)", 1.0 / 3.0, _XS, [0.0, 0.0, 0.0, 0.0]),
]


@pytest.mark.parametrize("case", TIE_CASES, ids=[c[0] for c in TIE_CASES])
def test_tie_conventions(case):
    name, body, p, xs, expected = case
    src = 'p = hslider("p [diff:1]", 0, -1, 1, 0.001);' + (body if "process" in body else f"process = {body};")
    d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    n = len(xs) if xs else 1
    x = np.array([xs]) if d.inputs else None
    dy = d.render(x, n=n, params={"p": p})
    got = dy[:, 0] if xs is None else dy[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)


def test_delay_by_a_real_amount_is_truncated_and_says_so():
    # x@d with a real d: Faust truncates d, so y(p) is piecewise constant in p: the
    # derivative is 0 (finite differences agree), and compiling warns that the amount's
    # derivative is lost; de.fdelay interpolates and its derivative is exact
    src = ('import("stdfaust.lib"); p = hslider("p [diff:1]", 0.5, 0, 1, 0.001);'
           'process = _ <: @(p*3), de.fdelay(8, p*3);')
    with pytest.warns(DiffaustWarning, match="Faust truncates a delay amount"):
        d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    plain = diffaust.compile(src, double=True, use_cache=False)
    x = np.array([_XS * 2])
    dy = d.render(x)
    h = 1e-6
    fd = (plain.render(x, params={"p": 0.5 + h}) - plain.render(x, params={"p": 0.5 - h})) / (2 * h)
    np.testing.assert_allclose(fd[0], 0.0, atol=1e-9)            # truncating @: flat in p
    np.testing.assert_allclose(dy[0], 0.0, atol=0)               # ... and so is its derivative
    np.testing.assert_allclose(fd[1], dy[1], rtol=1e-6, atol=1e-6)  # fdelay: exact
    assert np.max(np.abs(dy[1])) > 0.1


@pytest.mark.parametrize("widget", ['button("b [diff:1]")', 'checkbox("b [diff:1]")',
                                    'nentry("b [diff:1]", 0, 0, 1, 1)'])
def test_buttons_and_checkboxes_are_real_variables(widget):
    # a [diff:1] button or checkbox is differentiated as if its value were continuous
    d = diffaust.compile(f"process = _ * {widget} * {widget};", diff=True, double=True, use_cache=False)
    assert d.derivative_names == ["d out0/d b"]
    np.testing.assert_allclose(d.render(np.full((1, 2), 3.0), params={"b": 1.0}), [[6.0, 6.0]])


def test_unknown_ffunction_names_the_nondiff_flag_and_nondiff_gives_zero():
    src = ('f = ffunction(float mysteryf(float), <math.h>, "");'
           'p = hslider("p [diff:1]", 1, 0, 2, .1); process = _ <: (_ * p : f), _ * p;')
    with pytest.raises(DerivativeError, match=r"'mysteryf'.*--nondiff mysteryf"):
        diffaust.compile(src, diff=True, use_cache=False)
    src = src.replace("mysteryf", "tgammaf|tgamma|tgammal")  # one that links
    d = diffaust.compile(src, diff=True, double=True, use_cache=False, nondiff=("tgamma",), trace=True)
    assert "ffunction tgammaf|tgamma|tgammal: declared non-differentiable by --nondiff tgamma" in d.trace
    np.testing.assert_allclose(d.render(np.full((1, 2), 0.5)), [[0.0, 0.0], [0.5, 0.5]])
    from diffaust.errors import UsageError

    with pytest.raises(UsageError, match="calls no ffunction of that name"):
        diffaust.compile(src, diff=True, use_cache=False, nondiff=("sinh",))
