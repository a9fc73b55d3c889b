"""Issue 8: derivatives through recursions nested in recursions, over 10,000 samples.

The bug: an inner recursion whose coefficients do not depend on p, fed by an outer one
that does, lost its tangent feedback (its dependence on p was decided while the outer
group's was still provisional).  Each program of tests/programs/nested/ is one shape of
nesting: depth 3, letrec, a lambda reading the outer feedback, iterations (par/seq/sum),
a sub-recursion shared inside and outside a loop, coupled two-output loops.
"""

import os

import numpy as np
import pytest

import diffaust
from derivcheck import check_derivatives

HERE = os.path.join(os.path.dirname(__file__), "programs", "nested")
PROGRAMS = sorted(f for f in os.listdir(HERE) if f.endswith(".dsp"))
N = 10000
TOL = 1e-6  # of the finite difference's peak


def _source(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


@pytest.mark.parametrize("name", PROGRAMS)
def test_nested_recursion_vs_own_finite_differences(name):
    for c in check_derivatives(_source(name), n=N):
        assert c.compared == N, str(c)
        assert c.error < TOL, f"{name}: {c}"


@pytest.mark.reference
@pytest.mark.parametrize("name", PROGRAMS)
def test_nested_recursion_vs_faust_finite_differences(name):
    for c in check_derivatives(_source(name), n=N, sources=["faust"]):
        assert c.compared == N, str(c)
        assert c.error < TOL, f"{name}: {c}"


def test_inner_recursion_keeps_its_tangent_feedback():
    """The issue's listing: the tangent of the inner loop is a recursion of its own."""
    d = diffaust.compile(_source("issue8_minimal.dsp"), diff=True, double=True)
    listing = d.listing()
    assert "R2_d0" in listing, listing
    # and the value: at g = 0.7 the impulse response's derivative matches the recurrence
    n = 400
    x = np.zeros((1, n))
    x[0, 0] = 1.0
    y, dy = d.render_jvp(x, n=n)
    g = 0.7
    # y[n] = (x + 0.1 g z)[n-10],  z[n] = y[n-1] + 0.5 z[n-1]
    yy, zz, yd, zd = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(n):
        zz[k] = (yy[k - 1] if k >= 1 else 0) + 0.5 * (zz[k - 1] if k >= 1 else 0)
        zd[k] = (yd[k - 1] if k >= 1 else 0) + 0.5 * (zd[k - 1] if k >= 1 else 0)
        if k >= 10:
            yy[k] = x[0, k - 10] + 0.1 * g * zz[k - 10]
            yd[k] = 0.1 * zz[k - 10] + 0.1 * g * zd[k - 10]
    np.testing.assert_allclose(y[0], yy, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dy[0, 0], yd, rtol=1e-9, atol=1e-15)


def test_a_nested_recursion_is_computed_once_per_sample_in_a_derivative_program():
    """Forward mode closes an outer recursion inside the tangents' bodies, which rebuilds the
    recursions nested in it; the scheduler keys a group by its name, so the rebuilt (closed)
    group and the open one inside the outer bodies are one computation, not two."""
    import re
    from collections import Counter

    from diffaust.codegen.schedule import Let
    from diffaust.runtime.pipeline import CompileOptions, run_pipeline

    src = """import("stdfaust.lib");
fc = hslider("fc [diff:1]", 1000, 50, 5000, 1);
g = hslider("g [diff:1]", 0.5, 0, 0.9, 0.01);
process = (+ : fi.lowpass(2, fc)) ~ (*(g) : fi.lowpass(1, fc));
"""
    st = run_pipeline(src, "<nested>", CompileOptions(diff=True))
    groups = {name: len(g.args) for name, g in st.types.groups.items()}
    assert len(groups) >= 6  # the primal's nested groups and each tangent's
    made = Counter()
    for s in st.program.sample:
        m = re.fullmatch(r"(.*)_(\d+)", s.var.name) if isinstance(s, Let) else None
        if m and m.group(1) in groups:
            made[m.group(1)] += 1
    assert made == Counter(groups)
