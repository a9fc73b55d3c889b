"""diffaust.jax: a Faust program as a JAX function (custom VJP through the compiled reverse
mode): gradients against finite differences (check_grads, float64), jit, vmap (a batch
equals its items), per-sample parameters, errors."""

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy
from jax.test_util import check_grads  # noqa: E402

jax.config.update("jax_enable_x64", True)

from diffaust.errors import UsageError  # noqa: E402
from diffaust.jax import faust_function  # noqa: E402

PROGRAMS = {
    "recursion": 'process = _ * hslider("g[diff:1]", 0.5, 0, 1, 0.01) : + ~ *(hslider("a[diff:1]", 0.6, 0, 0.95, 0.01));',
    "fdelay": ('import("stdfaust.lib");\n'
               'process = _ <: _, de.fdelay(64, hslider("d[diff:1]", 10.3, 1, 40, 0.01)) :> '
               '*(hslider("g[diff:1]", 0.5, 0, 1, 0.01));'),
    "table": ('import("stdfaust.lib");\n'
              'process = _ + os.osci(hslider("f[diff:1]", 440, 50, 1000, 0.01)) * hslider("a[diff:1]", 0.3, 0, 1, 0.01);'),
    "resonlp": ('import("stdfaust.lib");\n'
                'process = fi.resonlp(hslider("fc[diff:1]", 1000, 50, 5000, 0.01), hslider("q[diff:1]", 2, 0.5, 10, 0.01), 1);'),
}
VALUES = {"recursion": {"g": 0.5, "a": 0.6}, "fdelay": {"d": 10.3, "g": 0.5}, "table": {"f": 440.0, "a": 0.3},
          "resonlp": {"fc": 1000.0, "q": 2.0}}


def _x(n=300, seed=0, channels=1):
    return jnp.asarray(np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, n)))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_check_grads(name):
    f = faust_function(PROGRAMS[name], double=True)
    x = _x()
    labels = sorted(VALUES[name])

    def fn(x, *values):
        return f(x, dict(zip(labels, values)))

    check_grads(fn, (x, *[VALUES[name][k] for k in labels]), order=1, modes=["rev"], eps=1e-4,
                atol=1e-5, rtol=1e-5)


def test_per_sample_parameter_gradient():
    f = faust_function(PROGRAMS["resonlp"], double=True)
    x = _x(200)
    fc = jnp.linspace(500.0, 2000.0, 200)
    check_grads(lambda fc: f(x, {"fc": fc, "q": 2.0}), (fc,), order=1, modes=["rev"], eps=1e-3, atol=1e-5,
                rtol=1e-5)


def test_jit_and_vmap_equal_single_calls():
    f = faust_function(PROGRAMS["resonlp"], double=True)
    x = _x(256)

    def loss(p, x):
        return jnp.sum(f(x, p) ** 2)

    p = {"fc": 1000.0, "q": 2.0}
    g = jax.grad(loss)(p, x)
    gj = jax.jit(jax.grad(loss))(p, x)
    for k in p:
        assert float(gj[k]) == pytest.approx(float(g[k]), rel=1e-12)
    xs = jnp.stack([x, 2 * x, 3 * x])
    ps = {"fc": jnp.array([500.0, 1000.0, 2000.0]), "q": jnp.array([1.0, 2.0, 3.0])}
    ys = jax.vmap(f)(xs, ps)
    gs = jax.vmap(jax.grad(loss))(ps, xs)
    for b in range(3):
        pb = {k: float(v[b]) for k, v in ps.items()}
        np.testing.assert_allclose(ys[b], f(xs[b], pb), rtol=0, atol=0)
        gb = jax.grad(loss)(pb, xs[b])
        for k in pb:
            assert float(gs[k][b]) == pytest.approx(float(gb[k]), rel=1e-12)


def test_program_without_inputs():
    f = faust_function('import("stdfaust.lib");\nprocess = os.osci(hslider("f[diff:1]", 440, 50, 1000, 0.01));',
                       double=True, n=128)
    y = f(None, {"f": 300.0})
    assert y.shape == (1, 128)
    g = jax.grad(lambda fr: jnp.sum(f(None, {"f": fr}) ** 2))(300.0)
    # against forward mode (a linearly interpolated table: finite differences cross its kinks)
    import diffaust

    d = diffaust.compile(f.dsp.source, diff=True, double=True, sample_rate=f.dsp.sample_rate)
    y, dy = d.render_jvp(None, 128, params={"f": 300.0})
    assert float(g) == pytest.approx(float(np.sum(2 * y * dy[:, 0])), rel=1e-12)


def test_out_of_range_constant_is_clamped_with_zero_gradient():
    f = faust_function(PROGRAMS["resonlp"], double=True)
    x = _x(128)
    np.testing.assert_array_equal(f(x, {"fc": 9000.0, "q": 2.0}), f(x, {"fc": 5000.0, "q": 2.0}))
    g = jax.grad(lambda fc: jnp.sum(f(x, {"fc": fc, "q": 2.0}) ** 2))(9000.0)
    assert float(g) == 0.0


def test_errors():
    f = faust_function(PROGRAMS["resonlp"], double=True)
    with pytest.raises(UsageError, match="no parameter 'cutoff'"):
        f(_x(), {"cutoff": 1.0})
    with pytest.raises(UsageError, match="shape"):
        f(jnp.zeros((2, 10)), {})
    with pytest.raises(UsageError, match="fc"):
        f(_x(10), {"fc": jnp.zeros(11)})
    with pytest.raises(UsageError, match="x64"):
        jax.config.update("jax_enable_x64", False)
        try:
            faust_function(PROGRAMS["resonlp"], double=True)
        finally:
            jax.config.update("jax_enable_x64", True)


def test_import_diffaust_does_not_import_jax():
    r = subprocess.run([sys.executable, "-c", "import sys, diffaust; print('jax' in sys.modules)"],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stdout + r.stderr


def test_readme_jax_block_runs():
    import os
    import re

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python jax\n(.*?)```", readme, re.S)
    assert blocks, "README has no ```python jax block"
    for code in blocks:
        exec(compile(code, "README.md (python jax)", "exec"), {})


def test_vmap_in_lanes_equals_one_item_per_call():
    """Under vmap with a scalar per item for every parameter, the items run in SIMD lanes
    (render and reverse mode): outputs and gradients equal those of one item per call
    (lanes=1) exactly, a clamped value's gradient 0 included."""
    src = ('import("stdfaust.lib");\nprocess = fi.resonlp(hslider("fc[diff:1]", 1000, 50, 5000, 0.01), '
           'hslider("q[diff:1]", 2, 0.5, 10, 0.01), hslider("gain", 1, 0, 2, 0.01));')
    xs = jnp.asarray(np.random.default_rng(3).uniform(-0.5, 0.5, (5, 1, 700)))
    ps = {"fc": jnp.array([300.0, 900.0, 2000.0, 4500.0, 9000.0]),  # 9000: clamped to 5000
          "q": jnp.array([0.7, 1.0, 3.0, 6.0, 9.0]), "gain": jnp.array([0.5, 1.0, 1.5, 2.0, 1.0])}

    def loss(f):
        return lambda p, x: jnp.sum(f(x, p) ** 2)

    res = {}
    for lanes in (None, 1):
        f = faust_function(src, double=True, lanes=lanes)
        res[lanes] = (jax.vmap(f)(xs, ps), jax.vmap(jax.grad(loss(f)))(ps, xs),
                      jax.vmap(jax.grad(lambda x, p: jnp.sum(f(x, p) ** 2)))(xs, ps))
        if lanes is None:
            assert f.dsp.__dict__.get("_lanes") and f.dsp.reverse().tape_dsp.__dict__.get("_lanes")
    np.testing.assert_array_equal(res[None][0], res[1][0])
    for k in ps:
        np.testing.assert_array_equal(res[None][1][k], res[1][1][k])
    assert float(res[None][1]["fc"][4]) == 0.0 and float(res[None][1]["gain"][0]) == 0.0
    np.testing.assert_array_equal(res[None][2], res[1][2])
    with pytest.raises(UsageError, match="lanes must be"):
        faust_function(src, lanes=0)
