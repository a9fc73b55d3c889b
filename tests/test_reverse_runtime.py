"""Reverse mode's runtime and interfaces: the scatter op, per-sample parameters, the fit's
--ad choice, the CLI (compile --reverse, verify --reverse, train --ad), bounded caches.
(The gradients themselves: tests/test_reverse.py.)"""

import gc
import json
import subprocess
import sys

import numpy as np
import pytest

import diffaust
from diffaust.errors import UsageError

RESONLP = ('import("stdfaust.lib");\n'
           'process = fi.resonlp(hslider("fc[diff:1]", 1000, 50, 5000, 1), hslider("q[diff:1]", 2, 0.5, 10, 0.01), '
           'hslider("gain[diff:1]", 0.8, 0, 1, 0.01));')


def _noise(shape, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape)


def test_scatter_is_the_transpose_of_a_variable_delay():
    # y[n] = x[n - d[n]]: <y, w> = <x, scatter(w)> with the input gradient of reverse mode
    src = ('import("stdfaust.lib");\n'
           'process = _ @ min(7, max(0, int(4 + 3.9*os.osc(313))));')
    d = diffaust.compile(src, double=True)
    n = 2000
    x, w = _noise((1, n), 1), _noise((1, n), 2)
    y = d.render(x, n)
    g = d.vjp(x, w)
    assert abs(np.sum(y * w) - np.sum(x * g.input)) < 1e-12 * np.sum(np.abs(y * w))
    # and explicitly: x̄[k] = Σ_{n: n - d[n] = k} w[n]
    dd = diffaust.compile('import("stdfaust.lib");\nprocess = min(7, max(0, int(4 + 3.9*os.osc(313))));',
                          double=True).render(None, n)[0].astype(int)
    expect = np.zeros(n)
    for i in range(n):
        if i - dd[i] >= 0:
            expect[i - dd[i]] += w[0, i]
    np.testing.assert_allclose(g.input[0], expect, rtol=0, atol=1e-15)


def test_reverse_gradient_of_a_linear_program_is_exact():
    # y = 0.5·x@3 + g·x: x̄[k] = 0.5 ȳ[k+3] + g ȳ[k]
    d = diffaust.compile('process = _ <: @(3)*0.5, *(hslider("g[diff:1]", 0.25, 0, 1, 0.01)) :> _;', double=True)
    n = 50
    x, w = _noise((1, n), 3), _noise((1, n), 4)
    g = d.vjp(x, w)
    expect = 0.25 * w[0].copy()
    expect[:-3] += 0.5 * w[0, 3:]
    np.testing.assert_allclose(g.input[0], expect, rtol=0, atol=1e-15)
    assert g.params["g"] == pytest.approx(float(np.sum(x * w)), rel=1e-14)
    np.testing.assert_array_equal(g.output, d.render(x, n))


def test_per_sample_parameter_render_and_gradient():
    d = diffaust.compile(RESONLP, diff=True, double=True)
    plain = diffaust.compile(RESONLP, double=True)
    n = 3000
    x, w = _noise((1, n), 5), np.random.default_rng(6).standard_normal((1, n))
    fc = 1000 + 500 * np.sin(np.arange(n) / 300)
    # a constant curve renders as the scalar does
    np.testing.assert_array_equal(plain.render(x, n, params={"fc": np.full(n, 1234.0)}),
                                  plain.render(x, n, params={"fc": 1234.0}))
    y, dy = d.render_jvp(x, n, params={"fc": fc})
    np.testing.assert_array_equal(y, plain.render(x, n, params={"fc": fc}))
    g = d.vjp(x, w, params={"fc": fc})
    assert g.params["fc"].shape == (n,)
    assert isinstance(g.params["q"], float)
    # forward mode's derivative of a per-sample parameter is along a constant offset: the sum
    assert np.sum(g.params["fc"]) == pytest.approx(float(np.sum(dy[:, 0] * w)), rel=1e-10)
    for k in (10, 1500, n - 1):  # each sample's gradient against a central difference
        h = 1e-3
        up, dn = fc.copy(), fc.copy()
        up[k] += h
        dn[k] -= h
        fd = (np.sum(plain.render(x, n, params={"fc": up}) * w)
              - np.sum(plain.render(x, n, params={"fc": dn}) * w)) / (2 * h)
        assert g.params["fc"][k] == pytest.approx(fd, rel=1e-5, abs=1e-12)


def test_per_sample_parameter_errors():
    d = diffaust.compile(RESONLP, diff=True, double=True)
    with pytest.raises(UsageError, match="samples"):
        d.render(np.zeros((1, 100)), 100, params={"fc": np.ones(50)})
    with pytest.raises(UsageError, match="NaN"):
        d.render(np.zeros((1, 10)), 10, params={"fc": np.full(10, np.nan)})
    with pytest.raises(UsageError, match="1-D"):
        d.render(np.zeros((1, 10)), 10, params={"fc": np.ones((2, 10))})


def test_checkpointed_sweep_equals_the_whole_tape():
    d = diffaust.compile(RESONLP, diff=True, double=True)
    n = 10000
    x, w = _noise((1, n), 7), np.random.default_rng(8).standard_normal((1, n))
    whole = d.vjp(x, w)
    cut = d.vjp(x, w, memory=4096)  # segments of 1024 samples
    for k in whole.params:
        assert cut.params[k] == pytest.approx(whole.params[k], rel=1e-12)
    np.testing.assert_allclose(cut.input, whole.input, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cut.output, whole.output)


def test_vjp_bad_input():
    d = diffaust.compile(RESONLP, diff=True, double=True)
    with pytest.raises(UsageError, match="shape"):
        d.vjp(np.zeros((1, 100)), np.zeros((2, 100)))
    with pytest.raises(UsageError, match="NaN"):
        d.vjp(np.zeros((1, 10)), np.full((1, 10), np.nan))
    with pytest.raises(UsageError, match="y_bar"):
        d.vjp(np.zeros((1, 10)))


@pytest.mark.parametrize("ad", ["forward", "reverse", "auto"])
def test_fit_with_each_mode(ad):
    x = _noise((1, 4096), 9)
    target = diffaust.compile(RESONLP, double=True).render(x, params={"fc": 1000, "q": 1, "gain": 0.8})
    res = diffaust.fit(RESONLP, target, x, ad=ad, iterations=300,
                       params={"fc": 700, "q": 2, "gain": 0.5})
    assert res.ad in ("forward", "reverse") and (ad == "auto" or res.ad == ad)
    assert res.params["fc"] == pytest.approx(1000, rel=1e-3)
    assert res.to_json()["ad"] == res.ad


def test_fit_modes_give_the_same_steps():
    x = _noise((1, 2048), 10)
    target = diffaust.compile(RESONLP, double=True).render(x, params={"fc": 900, "q": 1.5, "gain": 0.7})
    a = diffaust.fit(RESONLP, target, x, ad="forward", iterations=30)
    b = diffaust.fit(RESONLP, target, x, ad="reverse", iterations=30)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-8)


def test_fit_reverse_refused_in_stream_mode():
    x = _noise((1, 4096), 11)
    with pytest.raises(UsageError, match="forward"):
        diffaust.fit(RESONLP, x, x, mode="stream", ad="reverse", iterations=2)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "diffaust", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture
def resonlp_file(tmp_path):
    p = tmp_path / "r.dsp"
    p.write_text(RESONLP)
    return p


def test_cli_compile_reverse(resonlp_file):
    r = _cli("compile", str(resonlp_file), "-diff", "--reverse")
    assert r.returncode == 0, r.stderr
    assert "tape program" in r.stdout and "adjoint program" in r.stdout
    assert "fAcc0 = d/d fc" in r.stdout and "count - 1 - i" not in r.stderr
    r = _cli("compile", str(resonlp_file), "--reverse")
    assert r.returncode != 0 and "-diff" in r.stderr and "Traceback" not in r.stderr
    r = _cli("compile", str(resonlp_file), "-diff", "--reverse", "-lang", "cpp")
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_cli_verify_reverse(resonlp_file):
    r = _cli("verify", "--diff", str(resonlp_file), "-double", "--central", "--reverse", "-n", "8000",
             "--tolerance", "1e-5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "Parameter fc: peak error" in r.stdout


def test_cli_train_ad(resonlp_file, tmp_path):
    gt = tmp_path / "gt.dsp"
    gt.write_text(RESONLP.replace("1000, 50", "1200, 50"))
    out = tmp_path / "r.json"
    r = _cli("train", "--input", "noise", "--gt", str(gt), "--diff", str(resonlp_file), "--mode", "block",
             "--ad", "reverse", "--iterations", "200", "-n", "4096", "--json", str(out), "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    js = json.loads(out.read_text())
    assert js["ad"] == "reverse" and js["params"]["fc"] == pytest.approx(1200, rel=1e-3)
    r = _cli("train", "--input", "noise", "--gt", str(gt), "--diff", str(resonlp_file), "--ad", "reverse")
    assert r.returncode != 0 and "--mode block" in r.stderr and "Traceback" not in r.stderr


def test_interpreter_runs_a_reversed_program():
    from diffaust.codegen import interp

    d = diffaust.compile(RESONLP, diff=True, double=True)
    rev = d.reverse()
    n = 300
    x, w = _noise((1, n), 12), np.random.default_rng(13).standard_normal((1, n))
    tape = interp.run(rev.tape_program, x, n, sample_rate=d.sample_rate)
    a_in = np.concatenate([w, tape[1:]])
    xbar = interp.run(rev.adjoint_program, a_in, n, sample_rate=d.sample_rate)
    np.testing.assert_allclose(xbar[0], d.vjp(x, w).input[0], rtol=1e-12, atol=1e-14)


def test_the_intern_table_does_not_grow_with_compiles():
    from diffaust.signals import nodes

    sizes = []
    for k in range(12):
        src = f'import("stdfaust.lib");\nprocess = fi.resonlp({1000 + k}, 2, 1) : fi.lowpass(3, {500 + k});'
        diffaust.compile(src, use_cache=False, diff=True)
        gc.collect()
        sizes.append(len(nodes._INTERN))
    assert max(sizes[4:]) <= max(sizes[:4]) + 50, sizes


def test_fit_learns_a_curve_per_sample():
    # y = g[n]·x[n] + 0.5·y[n-1]: with a learned constant b beside it (a second output, so that
    # the curve cannot absorb it); reverse mode's per-sample gradient finds the curve
    src = ('process = _ <: (* (hslider("g[diff:1]", 0.5, 0, 1, 0.001)) : + ~ *(0.5)), '
           '*(hslider("b[diff:1]", 0.2, 0, 0.9, 0.001));')
    n = 512
    x = np.random.default_rng(14).uniform(0.2, 0.8, (1, n))
    g_true = 0.5 + 0.3 * np.sin(np.arange(n) / 40)
    target = diffaust.compile(src, double=True).render(x, params={"g": g_true, "b": 0.5})
    res = diffaust.fit(src, target, x, params={"g": np.full(n, 0.5)}, iterations=1500, loss="l2")
    assert res.ad == "reverse"
    assert res.params["g"].shape == (n,)
    assert res.params["b"] == pytest.approx(0.5, abs=1e-4)
    assert np.max(np.abs(res.params["g"] - g_true)) < 1e-3
    assert res.trajectories["g"] == [] and len(res.trajectories["b"]) == res.iterations
    js = res.to_json()
    assert len(js["params"]["g"]) == n
    with pytest.raises(UsageError, match="reverse"):
        diffaust.fit(src, target, x, params={"g": np.full(n, 0.5)}, iterations=2, ad="forward")
    with pytest.raises(UsageError, match="shape"):
        diffaust.fit(src, target, x, params={"g": np.full(n - 1, 0.5)}, iterations=2)
    with pytest.raises(UsageError, match="block"):
        diffaust.fit(src, target, x, params={"g": np.full(n, 0.5)}, iterations=2, mode="stream")
