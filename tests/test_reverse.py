"""Reverse mode (`Dsp.vjp`): proved against forward mode, finite differences and Faust.

1. Dot product against forward mode: for the cotangent ȳ and each [diff:1] parameter p,
   <J e_p, ȳ> = Σ ȳ·∂y/∂p (forward mode, `render_jvp`) must equal g.params[p] (reverse
   mode, <e_p, Jᵀ ȳ>) to 1e-9 relative in double: on the corpus (tests/programs), on
   hand-written programs (nested recursion, fractional / variable delays, table slope,
   selects, prefix, tanh feedback, pow/log/exp, zita_rev1) and on random programs
   (tests/progen.py).
2. The input gradient: each program is wrapped so that input i becomes x_i + c·v_i (c a
   [diff:1] slider at 0, v_i an extra input): forward mode's d/dc along ȳ equals
   Σ g.input·v of the unwrapped program.
3. Checkpointing: a small `memory` (segments of 1024 or 1500 samples) gives the result of
   the whole-signal tape to ~1e-12.
4. Against the real Faust compiler (`reference`): g.params equals central finite
   differences of Σ ȳ·y rendered by Faust itself, within 1e-5.
5. Errors: a bad ȳ is a one-line UsageError.

The relative error of a dot product is
|fwd - rev| / max(|fwd|, |rev|, 1e-3 Σ|ȳ·∂y/∂p|, 1e-15 Σ|ȳ|): the last two terms keep a
gradient that cancels to nearly 0, or is 0 up to rounding (a fractional delay of a signal
that has settled to a constant), from asking for more digits than the sum has.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import diffaust
import library_cases as L
import progen
from diffaust.errors import UsageError

HERE = os.path.join(os.path.dirname(__file__), "programs")
CORPUS = sorted(f for f in os.listdir(HERE) if f.endswith(".dsp")
                and "diff:1" in open(os.path.join(HERE, f)).read().replace(" ", ""))

TOL = 1e-9
NOISE = 1e-15  # a gradient below NOISE·Σ|ȳ| is rounding noise (a derivative of size ~1 rounds to ~1e-16)


# ------------------------------------------------------------------ helpers

def _noise(channels, n, seed=7):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (channels, n))


def _compile(src, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the warning on an integer delay amount depending on p
        return diffaust.compile(src, **kw)


def _vjp(d, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.vjp(*a, **kw)


def _rel(a, b, scale=0.0):
    den = max(abs(a), abs(b), scale)
    return abs(a - b) / den if den > 0 else 0.0


def dot_check(d, x, n, seed=1, params=None):
    """[(label, forward, reverse, relative error)] for every diff parameter of `d`, with a
    Gaussian ȳ; also checks g.output against the primal outputs of forward mode."""
    y, dy = d.render_jvp(x, n=n, params=params)
    y_bar = np.random.default_rng(seed).standard_normal(y.shape)
    g = _vjp(d, x, y_bar, params=params)
    assert g.output.shape == y.shape
    np.testing.assert_allclose(g.output, y, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(y)))))
    assert set(g.params) == {p.label for p in d.diff_params}
    if d.inputs:
        assert g.input.shape == (d.inputs, n)
    out = []
    for k, p in enumerate(d.diff_params):
        terms = dy[:, k, :] * y_bar
        fwd, rev = float(np.sum(terms)), float(g.params[p.label])
        assert np.isfinite(rev), f"d/d{p.label}: reverse mode gave {rev}"
        scale = max(1e-3 * float(np.sum(np.abs(terms))), NOISE * float(np.sum(np.abs(y_bar))))
        out.append((p.label, fwd, rev, _rel(fwd, rev, scale)))
    return out


def assert_dot(d, x, n, tol=TOL, seed=1, params=None, what=""):
    res = dot_check(d, x, n, seed=seed, params=params)
    bad = [f"d/d{lab}: forward {f!r}, reverse {r!r} (relative {e:.3g})" for lab, f, r, e in res if not e <= tol]
    assert not bad, f"{what}: " + "; ".join(bad)
    return res


def with_direction(src: str, inputs: int) -> str:
    """`src` with every input i replaced by x_i + vjpdir·v_i: inputs x_0..x_{I-1}, v_0..v_{I-1}."""
    body = re.sub(r"\bprocess\b", "vjpinner", src)
    xs = [f"vjpx{i}" for i in range(inputs)]
    vs = [f"vjpv{i}" for i in range(inputs)]
    sums = ", ".join(f"{a} + vjpdir*{b}" for a, b in zip(xs, vs))
    return (body + '\nvjpdir = hslider("vjpdir [diff:1]", 0, -1, 1, 0);\n'
            f"process = \\({', '.join(xs + vs)}).({sums}) : vjpinner;\n")


def input_check(src, n, seed=3, x=None):
    """(forward d/dc along ȳ, Σ g.input·v, scale) for a random direction v."""
    d = _compile(src, diff=True, double=True)
    I = d.inputs
    assert I > 0
    rng = np.random.default_rng(seed)
    x = _noise(I, n, seed=seed + 1) if x is None else x
    v = rng.standard_normal((I, n))
    w = _compile(with_direction(src, I), diff=True, double=True)
    labels = [p.label for p in w.diff_params]
    y, dy = w.render_jvp(np.concatenate([x, v]), n=n)
    y_bar = rng.standard_normal(y.shape)
    g = _vjp(d, x, y_bar)
    np.testing.assert_allclose(g.output, y, rtol=1e-12, atol=1e-12)
    # no input reaches an output: the wrapper's slider is gone, the derivative is 0
    terms = dy[:, labels.index("vjpdir"), :] * y_bar if "vjpdir" in labels else np.zeros_like(y)
    fwd = float(np.sum(terms))
    rev = float(np.sum(g.input * v))
    return fwd, rev, max(1e-3 * float(np.sum(np.abs(terms))), NOISE * float(np.sum(np.abs(y_bar))))


# ------------------------------------------------------------------ programs

HAND = {
    # an allpass (itself a recursion) inside a feedback loop
    "nested_allpass": """
g = hslider("g [diff:1]", 0.5, 0, 0.9, 0.01);
a = hslider("a [diff:1]", 0.6, -0.9, 0.9, 0.01);
ap(c) = (+ <: @(7), *(c)) ~ *(-c) : mem, _ : +;
process = + ~ (ap(a) : *(g));
""",
    # two levels of nesting, the inner loop reading the outer one's input
    "nested_three": """
a = hslider("a [diff:1]", 0.3, -0.9, 0.9, 0.01);
b = hslider("b [diff:1]", 0.4, -0.9, 0.9, 0.01);
inner(c) = + ~ (*(c) : sin);
mid = (+ : inner(b)) ~ (*(a) : @(3));
process = mid : (+ ~ *(0.5*a));
""",
    # fractional delays, modulated amounts (linear and Lagrange), in and out of a loop
    "fdelay": """
import("stdfaust.lib");
d = hslider("d [diff:1]", 10.3, 1, 50, 0.01);
m = hslider("m [diff:1]", 3.0, 0, 5, 0.01);
process = _ <: de.fdelay(128, d + m*os.osc(3)), de.fdelay4(128, d + m*os.osc(2)),
               (+ ~ (de.fdelay(128, d*0.7 + m*os.osc(5)) * 0.6));
""",
    # variable integer delays: the amount follows an oscillator, a parameter, the input
    "vdelay": """
import("stdfaust.lib");
d = hslider("d [diff:1]", 10, 1, 50, 1);
g = hslider("g [diff:1]", 0.7, 0, 1, 0.01);
vd(a) = max(0, min(100, int(a)));
process = _ * g <: @(vd(d + 5*os.osc(5))), (+ ~ (@(vd(d*0.5 + 3*os.osc(7))) * g * 0.5)),
                   @(vd(abs(_)*20 + 1)), (_ <: @(vd(abs(_)*30)));
""",
    # os.osc's frequency: the table read's slope, inside a phase recursion
    "osc": """
import("stdfaust.lib");
f = hslider("f [diff:1]", 440, 20, 2000, 0.1);
process = os.osc(f) * (1 + _ * 0.1), os.osc(f*1.5 + 100*os.osc(3));
""",
    "select": """
a = hslider("a [diff:1]", 0.3, -1, 1, 0.01);
b = hslider("b [diff:1]", 0.7, -2, 2, 0.01);
process(x, y) = select2(x > a, x*b, y*a), min(x*a, y*b), max(x, y*a) * b, abs(x - a) * b,
                select2(y > 0, sin(x*a), cos(y*b)), select3(int(abs(x)*3), x*a, y*b, x*y*a*b);
""",
    "prefix": """
a = hslider("a [diff:1]", 0.3, -1, 1, 0.01);
process(x) = (x * a)', 0.5' * a, (+ ~ *(a)) (x)', (x*a : + ~ (_' * 0.5)), prefix(a * 3 + x, x * a),
             (prefix(a, _) ~ *(0.5)) + x;
""",
    "tanh_feedback": """
import("stdfaust.lib");
k = hslider("k [diff:1]", 1.5, 0, 3, 0.01);
g = hslider("g [diff:1]", 0.9, 0, 1, 0.01);
process = + ~ (ma.tanh * g : fi.lowpass(1, 2000)) : *(k) : ma.tanh;
""",
    "pow_log_exp": """
p = hslider("p [diff:1]", 1.3, 0.5, 3, 0.01);
q = hslider("q [diff:1]", 0.4, 0.1, 1, 0.01);
process(x) = pow(abs(x) + 0.1, p), log(abs(x)*q + 0.5), exp(x * q), (abs(x) + 0.2)^q, pow(q, x),
             log10(p + x*x), sqrt(abs(x) + q), pow(abs(x) + 0.5, x * p);
""",
    # delays longer than a checkpoint segment (1024 samples), in and out of a loop
    "long_delay": """
g = hslider("g [diff:1]", 0.5, 0, 0.9, 0.01);
process = _ <: @(2500) * g, (+ ~ (@(1499) * g)), @(min(3000, int(abs(_)*3000)));
""",
    "waveform_select_rec": """
p = hslider("p [diff:1]", 0.5, 0, 0.9, 0.01);
w = waveform{0.1, 0.5, -0.3, 0.8, 0.2};
process = _ <: ((w, int(abs(_)*4.9)) : rdtable : *(p) : + ~ *(p)),
               (+ ~ (_ <: select2(_ > p, _ * p, sin(_) * 0.5))),
               (_ * p : + ~ (int(_ * 1000) : float : /(1000) : *(0.9)));
""",
    "division_fmod_atan2": """
p = hslider("p [diff:1]", 0.5, 0.1, 0.9, 0.01);
process(x) = x / (p + 1), p / (abs(x) + 0.5), fmod(x*3, p + 0.3), atan2(x, p), remainder(x*3, p+0.3);
""",
    # a parameter with a zero derivative, an output that depends on no parameter
    "degenerate": """
a = hslider("a [diff:1]", 0.3, -1, 1, 0.01);
b = hslider("b [diff:1]", 0.5, -1, 1, 0.01);
process(x) = select2(b > 5, x * a, x * b), x * int(b + 2), x * 2, 1.0;
""",
}

ZITA = """
import("stdfaust.lib");
t60dc = hslider("t60dc [diff:1]", 3, 1, 8, 0.01);
t60m = hslider("t60m [diff:1]", 2, 1, 8, 0.01);
process = re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000);
"""


# ------------------------------------------------------------------ 1. dot products

@pytest.mark.parametrize("name", CORPUS)
def test_corpus_dot_product(name):
    path = os.path.join(HERE, name)
    d = _compile(path, diff=True, double=True)
    n = 2000
    x = _noise(d.inputs, n) if d.inputs else None
    assert_dot(d, x, n, what=name)


NESTED = [os.path.join(sub, f) for sub in ("nested", "campaign")
          for f in sorted(os.listdir(os.path.join(HERE, sub))) if f.endswith(".dsp")]


@pytest.mark.parametrize("name", NESTED)
def test_nested_and_campaign_dot_product(name):
    """tests/programs/nested (recursions in recursions, issue 8) and the campaign's kept programs."""
    src = open(os.path.join(HERE, name)).read()
    d = _compile(src, diff=True, double=True)
    n = 3000
    x = _noise(d.inputs, n) if d.inputs else None
    assert_dot(d, x, n, what=name)
    if d.inputs:
        fwd, rev, scale = input_check(src, n)
        assert _rel(fwd, rev, scale) < TOL, f"{name}: forward {fwd!r}, Σ g.input·v {rev!r}"


def _library_case(case, n=4000):
    d = _compile(case.source, diff=True, double=True)
    x = _noise(d.inputs, n) if d.inputs else None
    assert_dot(d, x, n, what=case.func)
    if d.inputs:
        fwd, rev, scale = input_check(case.source, n)
        assert _rel(fwd, rev, scale) < TOL, f"{case.func}: forward {fwd!r}, Σ g.input·v {rev!r}"


@pytest.mark.parametrize("case", [c for c in L.CASES if c.fast], ids=lambda c: c.func)
def test_library_dot_product_fast(case):
    """The fast subset of tests/library_cases.py (every case: -m slow)."""
    _library_case(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", L.CASES, ids=[c.func for c in L.CASES])
def test_library_dot_product(case):
    _library_case(case)


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_written_dot_product(name):
    d = _compile(HAND[name], diff=True, double=True)
    n = 3000
    x = _noise(d.inputs, n) if d.inputs else None
    res = assert_dot(d, x, n, what=name)
    if name == "degenerate":
        assert dict((lab, r) for lab, _, r, _ in res)["b"] == 0.0


def test_dot_product_at_other_parameter_values():
    """params= reaches the tape and the adjoint programs alike; a later call without params
    is back at the init values."""
    src = HAND["nested_allpass"].replace("process = ", 'v = hslider("v", 0.3, 0, 1, 0.01);\nprocess = ')
    src = src.replace("*(g));", "*(g)) : *(v);")
    d = _compile(src, diff=True, double=True)
    n = 2000
    x = _noise(1, n)
    base = dot_check(d, x, n)
    moved = assert_dot(d, x, n, params={"g": 0.2, "a": -0.4, "v": 0.9}, what="moved")
    assert all(abs(b[2] - m[2]) > 1e-6 for b, m in zip(base, moved))
    again = dot_check(d, x, n)
    assert [r for _, _, r, _ in again] == [r for _, _, r, _ in base]


def test_zita_dot_product():
    d = _compile(ZITA, diff=True, double=True)
    n = 24000  # long enough for the feedback of the FDN to come round several times
    res = assert_dot(d, _noise(2, n), n, what="zita")
    assert all(abs(f) > 1e-6 for _, f, _, _ in res)


def test_float_smoke():
    """double=False: float32 tape and adjoint, same gradient to ~1e-3."""
    src = HAND["tanh_feedback"]
    n = 3000
    x = _noise(1, n)
    d64 = _compile(src, diff=True, double=True)
    d32 = _compile(src, diff=True, double=False)
    y, dy = d32.render_jvp(x, n=n)
    y_bar = np.random.default_rng(1).standard_normal(y.shape)
    g32 = _vjp(d32, x, y_bar)
    g64 = _vjp(d64, x, y_bar)
    assert g32.output.dtype == np.float32
    for k, p in enumerate(d32.diff_params):
        fwd = float(np.sum(dy[:, k].astype(np.float64) * y_bar))
        assert _rel(fwd, g32.params[p.label]) < 1e-3, (p.label, fwd, g32.params[p.label])
        assert _rel(g64.params[p.label], g32.params[p.label]) < 1e-3
    scale = float(np.max(np.abs(g64.input)))
    assert np.max(np.abs(g32.input - g64.input)) < 1e-3 * scale


# ------------------------------------------------------------------ 2. the input gradient

def test_input_gradient_by_hand():
    """Exact cases: a gain, a delay (its adjoint is an advance), a one-pole (a reversed one-pole)."""
    n = 500
    rng = np.random.default_rng(0)
    x, yb = rng.standard_normal((1, n)), rng.standard_normal((1, n))
    g = _vjp(_compile("process = *(2.5);", double=True), x, yb)
    np.testing.assert_allclose(g.input, 2.5 * yb, rtol=1e-15)
    g = _vjp(_compile("process = @(3);", double=True), x, yb)
    np.testing.assert_allclose(g.input[0, :-3], yb[0, 3:], rtol=1e-15)
    np.testing.assert_array_equal(g.input[0, -3:], 0.0)
    g = _vjp(_compile("process = + ~ *(0.5);", double=True), x, yb)
    ref = np.zeros(n)
    acc = 0.0
    for m in range(n - 1, -1, -1):
        acc = yb[0, m] + 0.5 * acc
        ref[m] = acc
    np.testing.assert_allclose(g.input[0], ref, rtol=1e-12, atol=1e-12)


INPUT_CASES = [
    ("corpus:biquad.dsp", 2000),
    ("corpus:delays.dsp", 2000),
    ("corpus:composition.dsp", 2000),  # 2 inputs
    ("corpus:minmax.dsp", 2000),       # 2 inputs
    ("corpus:vdelay.dsp", 2000),
    ("corpus:rdtable.dsp", 2000),
    ("corpus:nested_rec.dsp", 2000),
    ("hand:nested_allpass", 3000),
    ("hand:fdelay", 3000),
    ("hand:vdelay", 3000),
    ("hand:select", 3000),             # 2 inputs
    ("hand:tanh_feedback", 3000),
    ("hand:pow_log_exp", 3000),
    ("hand:prefix", 3000),
]


@pytest.mark.parametrize("case,n", INPUT_CASES)
def test_input_gradient_against_forward(case, n):
    kind, name = case.split(":")
    src = open(os.path.join(HERE, name)).read() if kind == "corpus" else HAND[name]
    fwd, rev, scale = input_check(src, n)
    assert _rel(fwd, rev, scale) < TOL, f"{case}: forward {fwd!r}, Σ g.input·v {rev!r}"


def test_zita_input_gradient():
    fwd, rev, scale = input_check(ZITA, 24000)
    assert _rel(fwd, rev, scale) < TOL, f"zita: forward {fwd!r}, Σ g.input·v {rev!r}"


# ------------------------------------------------------------------ 3. random programs

def _progen_check(seed, n=2000):
    """Dot product on the params (and on the inputs, through `with_direction`) of progen's
    program `seed` (returned)."""
    prog = progen.generate(seed)
    src = prog.source()
    d = _compile(src, diff=True, double=True)
    x = _noise(d.inputs, n, seed=seed) if d.inputs else None
    res = dot_check(d, x, n, seed=seed)
    bad = [f"d/d{lab}: forward {f!r}, reverse {r!r} (relative {e:.3g})" for lab, f, r, e in res if not e <= TOL]
    if d.inputs:
        fwd, rev, scale = input_check(src, n, seed=seed, x=x)
        if not _rel(fwd, rev, scale) <= TOL:
            bad.append(f"input: forward {fwd!r}, Σ g.input·v {rev!r}")
    assert not bad, f"progen seed {seed}: " + "; ".join(bad) + "\n" + src
    return prog


def test_random_programs():
    checked, kinds = 0, set()
    for seed in range(0, 60):
        prog = _progen_check(seed)
        if prog is not None:
            checked += 1
            kinds |= prog.kinds()
    assert checked == 60, checked
    for family in ("recursion", "coupled", "feedback", "delay", "fdelay", "table", "select", "discrete",
                   "iteration", "foreign"):
        assert family in kinds, f"no random program exercised {family}"


@pytest.mark.slow
def test_random_programs_hypothesis():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(st.integers(min_value=1000, max_value=10**7))
    def check(seed):
        hypothesis.assume(_progen_check(seed) is not None)

    check()


# ------------------------------------------------------------------ 4. checkpoints

def _segments(monkeypatch):
    """Counts the tape program's restores (one per checkpointed segment, replayed backward)."""
    from diffaust.runtime.dsp import Instance

    calls = []
    orig = Instance.restore

    def restore(self, *a, **kw):
        calls.append(1)
        return orig(self, *a, **kw)

    monkeypatch.setattr(Instance, "restore", restore)
    return calls


@pytest.mark.parametrize("name,n", [("nested_allpass", 10000), ("tanh_feedback", 10000), ("vdelay", 10000),
                                    ("long_delay", 10000),
                                    ("zita", 24000)])
def test_checkpoints_equal_whole_tape(name, n, monkeypatch):
    src = ZITA if name == "zita" else HAND[name]
    d = _compile(src, diff=True, double=True)
    x = _noise(d.inputs, n)
    y_bar = np.random.default_rng(5).standard_normal((d.primal_outputs, n))
    whole = _vjp(d, x, y_bar)
    rev = d.reverse()
    per_sample = (rev.n_outputs + rev.n_tape) * 8
    calls = _segments(monkeypatch)
    for memory, k in ((1, 1024), (1500 * per_sample, 1500)):
        calls.clear()
        seg = _vjp(d, x, y_bar, memory=memory)
        assert len(calls) == -(-n // k), f"memory={memory}: {len(calls)} segments"
        np.testing.assert_array_equal(seg.output, whole.output)
        for lab, v in whole.params.items():
            assert _rel(seg.params[lab], v) < 1e-12, (memory, lab, seg.params[lab], v)
        scale = float(np.max(np.abs(whole.input)))
        assert np.max(np.abs(seg.input - whole.input)) <= 1e-12 * scale


# ------------------------------------------------------------------ 5. against Faust

REFERENCE = [
    ("resonlp", """
import("stdfaust.lib");
fc = hslider("fc [diff:1]", 1000, 50, 10000, 0.01);
q = hslider("q [diff:1]", 4, 0.5, 20, 0.01);
g = hslider("gain [diff:1]", 0.8, 0, 1, 0.01);
process = fi.resonlp(fc, q, g);
""", 4000, {}),
    ("recursion", HAND["nested_allpass"], 4000, {}),
    ("tanh_feedback", HAND["tanh_feedback"], 4000, {}),
    ("zita", ZITA, 24000, {}),
]


@pytest.mark.reference
@pytest.mark.parametrize("name,src,n,steps", REFERENCE, ids=[r[0] for r in REFERENCE])
def test_against_faust_finite_differences(name, src, n, steps):
    from diffaust.reference import render_reference

    d = _compile(src, diff=True, double=True)
    x = _noise(d.inputs, n) if d.inputs else None
    y_bar = np.random.default_rng(11).standard_normal((d.primal_outputs, n))
    g = _vjp(d, x, y_bar)
    base = render_reference(src, n=n, x=x, double=True)
    np.testing.assert_allclose(g.output, base, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(base))))
    for p in d.diff_params:
        h = steps.get(p.label, 1e-5) * max(1.0, abs(p.init))
        hi = render_reference(src, n=n, x=x, params={p.label: p.init + h}, double=True)
        lo = render_reference(src, n=n, x=x, params={p.label: p.init - h}, double=True)
        fd = float(np.sum(y_bar * (hi - lo))) / (2 * h)
        assert _rel(fd, g.params[p.label]) < 1e-5, f"{name}: d/d{p.label}: Faust FD {fd!r}, vjp {g.params[p.label]!r}"


# ------------------------------------------------------------------ 6. errors

def _one_line(e):
    s = str(e.value)
    assert s and "\n" not in s.strip(), s
    return s


def test_bad_cotangent():
    d = _compile(HAND["select"], diff=True, double=True)
    n = 100
    x = _noise(2, n)
    O = d.primal_outputs
    for bad in (np.ones((O + 1, n)), np.ones((O - 1, n)), np.ones((O,)), np.ones((1, O, n)),
                np.ones((O, n, 1))):
        with pytest.raises(UsageError) as e:
            _vjp(d, x, bad)
        _one_line(e)
    with pytest.raises(UsageError) as e:  # more samples asked than x has
        _vjp(d, x[:, :50], np.ones((O, n)))
    _one_line(e)
    for value in (np.nan, np.inf, -np.inf):
        yb = np.ones((O, n))
        yb[1, 37] = value
        with pytest.raises(UsageError) as e:
            _vjp(d, x, yb)
        _one_line(e)
    with pytest.raises(UsageError) as e:
        _vjp(d, x, None)
    _one_line(e)
    with pytest.raises(UsageError) as e:
        _vjp(d, x, np.full((O, n), "a"))
    _one_line(e)
    with pytest.raises(UsageError) as e:  # x of the wrong arity
        _vjp(d, _noise(3, n), np.ones((O, n)))
    _one_line(e)
    # NaN in y_bar with checkpoints too
    yb = np.ones((O, 3000))
    yb[0, -1] = np.nan
    with pytest.raises(UsageError) as e:
        _vjp(d, _noise(2, 3000), yb, memory=1)
    _one_line(e)
    # after the errors, the Dsp still works
    assert_dot(d, x, n, what="after errors")


def test_rwtable_depending_on_parameter():
    """Writes of a parameter's signal into an rwtable: transposed (the write takes the
    cotangent its cell gathered since); both orders of read and write indices."""
    for ridx in ("(w + 27) % 32", "w", "(w * 7 + 3) % 32"):
        src = f"""
g = hslider("g [diff:1]", 0.6, 0, 1, 0.01);
w = (+(1) ~ _) - 1 : %(32);
process = _ <: rwtable(32, 0.0, w, _ * g, {ridx}), *(g);
"""
        d = _compile(src, diff=True, double=True)
        assert_dot(d, _noise(1, 500), 500, what=f"rwtable read at {ridx}")


def test_rwtable_not_depending_on_parameter():
    """A table written with a signal of neither the parameters nor the inputs has nothing to
    transpose: reverse mode must accept it."""
    src = """
g = hslider("g [diff:1]", 0.6, 0, 1, 0.01);
w = (+(1) ~ _) - 1 : %(32);
process(x) = rwtable(32, 0.0, w, sin(float(w)), (w + 27) % 32) * g + x * g;
"""
    d = _compile(src, diff=True, double=True)
    assert_dot(d, _noise(1, 1000), 1000, what="rwtable of a constant signal")


# ------------------------------------------------------------------ odds and ends

def test_parameter_given_per_sample():
    """params={label: ndarray (n,)}: g.params[label] is the gradient w.r.t. each sample's
    value; its sum is the derivative along a constant offset (forward mode's, and the scalar
    gradient when the values are constant)."""
    d = _compile(HAND["nested_allpass"], diff=True, double=True)
    n = 3000
    x = _noise(1, n)
    y_bar = np.random.default_rng(2).standard_normal((1, n))
    scalar = _vjp(d, x, y_bar, params={"g": 0.5})
    flat = _vjp(d, x, y_bar, params={"g": np.full(n, 0.5)})
    assert flat.params["g"].shape == (n,)
    assert _rel(float(np.sum(flat.params["g"])), scalar.params["g"]) < 1e-12
    assert _rel(flat.params["a"], scalar.params["a"]) < 1e-12
    np.testing.assert_allclose(flat.input, scalar.input, rtol=1e-12, atol=1e-12 * np.max(np.abs(scalar.input)))
    auto = 0.4 + 0.3 * np.sin(np.arange(n) / 300)
    g = _vjp(d, x, y_bar, params={"g": auto})
    y, dy = d.render_jvp(x, n=n, params={"g": auto})
    labels = [p.label for p in d.diff_params]
    np.testing.assert_array_equal(g.output, y)
    assert _rel(float(np.sum(dy[:, labels.index("g")] * y_bar)), float(np.sum(g.params["g"]))) < TOL
    assert _rel(float(np.sum(dy[:, labels.index("a")] * y_bar)), g.params["a"]) < TOL
    # each sample's gradient against central differences of diffaust's own render
    plain = _compile(HAND["nested_allpass"], double=True)
    for j in (0, 1, 1234, n - 2, n - 1):
        h = 1e-6
        hi, lo = auto.copy(), auto.copy()
        hi[j] += h
        lo[j] -= h
        fd = float(np.sum(y_bar * (plain.render(x, n=n, params={"g": hi}) - plain.render(x, n=n, params={"g": lo})))) / (2 * h)
        assert abs(fd - g.params["g"][j]) <= 1e-6 * max(1.0, abs(fd)), (j, fd, g.params["g"][j])


def test_no_inputs_and_short_signals():
    d = _compile('g = hslider("g [diff:1]", 0.5, 0, 0.9, 0.01); process = 1 : + ~ *(g);', diff=True, double=True)
    for n in (1, 2, 100):
        g = _vjp(d, None, np.ones((1, n)))
        assert g.input.shape == (0, n)
        y, dy = d.render_jvp(None, n=n)
        assert _rel(g.params["g"], float(np.sum(dy))) < 1e-13
    d = _compile(HAND["tanh_feedback"], diff=True, double=True)
    rng = np.random.default_rng(4)
    for n in (1, 1023, 1024, 1025, 2048):  # around the segment length of memory=1
        x, y_bar = rng.standard_normal((1, n)), rng.standard_normal((1, n))
        whole, seg = _vjp(d, x, y_bar), _vjp(d, x, y_bar, memory=1)
        assert whole.params == pytest.approx(seg.params, rel=1e-12, abs=0)
        np.testing.assert_allclose(seg.input, whole.input, rtol=1e-12, atol=1e-14)


def test_threads_share_a_dsp():
    import threading

    d = _compile(HAND["nested_allpass"], diff=True, double=True)
    n = 3000
    x = _noise(1, n)
    cots = [np.random.default_rng(i).standard_normal((1, n)) for i in range(4)]
    expect = [_vjp(d, x, yb).params for yb in cots]
    got = {i: [] for i in range(4)}

    def work(i):
        for _ in range(4):
            got[i].append(d.vjp(x, cots[i], memory=1 if i % 2 else None).params)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in range(4):
        assert len(got[i]) == 4
        for p in got[i]:
            assert p == pytest.approx(expect[i], rel=1e-12, abs=0)


def test_vjp_on_a_program_compiled_without_diff():
    src = HAND["nested_allpass"]
    n = 1000
    x = _noise(1, n)
    y_bar = np.random.default_rng(3).standard_normal((1, n))
    a = _vjp(_compile(src, double=True), x, y_bar)
    b = _vjp(_compile(src, diff=True, double=True), x, y_bar)
    assert a.params == b.params
    np.testing.assert_array_equal(a.input, b.input)


@pytest.mark.parametrize("body", ["de.fdelay(128, d)", "@(int(d))"])
def test_reverse_mode_warns_as_forward_mode(body):
    src = ('import("stdfaust.lib");\nd = hslider("d [diff:1]", 10.3, 1, 50, 0.01);\n'
           f"process = _ * d : {body};\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = diffaust.compile(src, diff=True, double=True, use_cache=False)
        d.render_jvp(np.ones((1, 10)), n=10)  # forward mode: no warning
        d.vjp(np.ones((1, 10)), np.ones((1, 10)))
