"""render_jvp of a large derivative program runs its P tangents in P SIMD lanes, one
directional program seeded with e_k in lane k (runtime/jvpdir.py): the same derivatives as
the per-variable program to rounding, and the per-variable program's answer wherever a
lane's tangent is not finite (a 0·∞ from another variable's infinite partial)."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import diffaust
from diffaust.runtime import jvpdir

HERE = os.path.dirname(os.path.abspath(__file__))

ZITA = """import("stdfaust.lib");
t60dc = hslider("t60dc [diff:1]", 2, 0.5, 8, 0.01);
t60m = hslider("t60m [diff:1]", 1.5, 0.5, 8, 0.01);
process = re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000);"""


def _per_variable(d, x, n, params=None):
    y = d.instance(params).compute(x, n)
    O, P = d.primal_outputs, len(d.diff_params)
    return y[:O], y[O:].reshape(O, P, n)


def _close(dy, ref, tol):
    for o in range(ref.shape[0]):
        for j in range(ref.shape[1]):
            scale = float(np.max(np.abs(ref[o, j]))) or 1.0
            assert float(np.max(np.abs(dy[o, j] - ref[o, j]))) <= tol * scale, (o, j)


@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_zita_runs_its_tangents_in_lanes_and_matches_the_per_variable_program(double):
    d = diffaust.compile(ZITA, diff=True, double=double, sample_rate=48000)
    assert d._directional() is not None  # 1,278 loop statements, P = 2
    n = 12000  # past the reverb's first feedback
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (2, n)).astype(d.dtype)
    params = {"t60dc": 3.1, "t60m": 0.9}
    y, dy = d.render_jvp(x, n, params=params)
    ry, rdy = _per_variable(d, x, n, params)
    assert np.array_equal(y, ry)  # the primal, computed once as scalars, is the primal
    assert dy.shape == rdy.shape and dy.flags.c_contiguous
    assert float(np.max(np.abs(rdy))) > 0
    _close(dy, rdy, 1e-5 if not double else 1e-12)
    y2, dy2 = d.render_jvp(x, n, params=params, reuse=True)  # the reused buffers: the same
    assert np.array_equal(dy2, dy) and np.array_equal(y2, y)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(HERE, "programs", "*.dsp"))),
                         ids=lambda p: os.path.basename(p))
def test_small_programs_in_lanes_match_the_per_variable_program(path, monkeypatch):
    """With the threshold at 0 every program with 2+ parameters takes the lanes (those with
    control/enable excepted): derivatives equal to rounding, or the per-variable program's."""
    monkeypatch.setattr(jvpdir, "MIN_LOOP_STATEMENTS", 0)
    d = diffaust.compile(path, diff=True, double=True, sample_rate=48000)
    if len(d.diff_params) < 2:
        pytest.skip("fewer than 2 [diff:1] parameters")
    n = 700
    x = np.random.default_rng(2).uniform(-1, 1, (d.inputs, n))
    y, dy = d.render_jvp(x if d.inputs else None, n)
    ry, rdy = _per_variable(d, x if d.inputs else None, n)
    assert np.array_equal(y, ry)
    _close(dy, rdy, 1e-12)


def test_an_infinite_partial_of_another_variable_falls_back_to_the_per_variable_program(monkeypatch):
    """d/db of sqrt(a)·b + x·b at a = 0 is finite (sqrt(0) + x) though d/da is infinite:
    in the lanes, b's lane gets 0·∞ = NaN from a's contribution; render_jvp answers with the
    per-variable program."""
    monkeypatch.setattr(jvpdir, "MIN_LOOP_STATEMENTS", 0)
    src = ('a = hslider("a [diff:1]", 0, 0, 1, 0.01); b = hslider("b [diff:1]", 0.5, 0, 1, 0.01);\n'
           'process(x) = sqrt(a) * b + x * b;')
    d = diffaust.compile(src, diff=True, double=True)
    lanes = d._directional()
    assert lanes is not None
    x = np.linspace(-1, 1, 64)[None]
    assert lanes.render(x, 64, None, 256, False) is None  # the lanes saw the NaN
    y, dy = d.render_jvp(x, 64)
    ry, rdy = _per_variable(d, x, 64)
    assert np.array_equal(dy[0, 1], rdy[0, 1]) and np.all(np.isfinite(dy[0, 1]))
    np.testing.assert_array_equal(dy[0, 1], x[0])  # d/db = sqrt(0) + x


def test_small_derivative_programs_keep_the_per_variable_program():
    src = ('import("stdfaust.lib"); process = fi.resonlp(hslider("fc [diff:1]", 1000, 50, 10000, 1), '
           'hslider("q [diff:1]", 1, 0.5, 20, 0.01), 1);')
    assert diffaust.compile(src, diff=True)._directional() is None


def _library_cases():
    import library_cases as L

    cases = [c for c in L.CASES if len(c.labels) >= 2]
    for k, c in enumerate(cases):
        big = c.func.startswith(("re.", "pm.", "sy."))
        marks = () if (big or k % 4 == 0) else (pytest.mark.slow,)
        yield pytest.param(c, id=c.func, marks=marks)


@pytest.mark.parametrize("case", list(_library_cases()))
def test_library_programs_in_lanes_match_the_per_variable_program(case, monkeypatch):
    """The library programs with 2+ [diff:1] parameters (filters, envelopes, compressors,
    reverbs, physical models), every one forced into the lanes: y bit for bit, dy to 1e-9 of
    each channel's peak (double), or the per-variable program's own answer (fallback)."""
    monkeypatch.setattr(jvpdir, "MIN_LOOP_STATEMENTS", 0)
    d = diffaust.compile(case.source, diff=True, double=True, sample_rate=48000)
    n = 8000
    x = np.random.default_rng(4).uniform(-0.5, 0.5, (d.inputs, n)) if d.inputs else None
    y, dy = d.render_jvp(x, n)
    ry, rdy = _per_variable(d, x, n)
    assert np.array_equal(y, ry)
    _close(dy, rdy, 1e-9)
