"""Losses, the per-sample fitter, its CSV history, plots, and the verifier, on a small fake Dsp.

The fake implements the runtime's Dsp/Instance interface in plain Python so
that these tests do not depend on the compiler; test_cli.py runs the real thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from diffaust.errors import UsageError
from diffaust.train import fit, History, TablePrinter
from diffaust.train.losses import LOSSES, get_loss, l1, l1_grad, l2, l2_grad
from diffaust.verify import print_table, verify


# ------------------------------------------------------------------ the fake
@dataclass
class Param:
    path: str
    label: str
    kind: str = "hslider"
    init: float = 0.0
    min: float = 0.0
    max: float = 1.0
    step: float = 0.001
    meta: dict = field(default_factory=dict)
    diff: bool = True


class FakeInstance:
    def __init__(self, dsp, params=None):
        self.dsp = dsp
        self.values = {p.path: p.init for p in dsp.params}
        for k, v in (params or {}).items():
            self.set_param(k, v)
        self.state = None

    def _path(self, name):
        if isinstance(name, int):
            return self.dsp.params[name].path
        for p in self.dsp.params:
            if name in (p.path, p.label):
                return p.path
        raise UsageError(f"unknown parameter '{name}'")

    def set_param(self, name, value):
        self.values[self._path(name)] = float(value)

    def get_param(self, name):
        return self.values[self._path(name)]

    def reset(self):
        self.state = None

    def step(self, inputs):
        vals = {p.label: self.values[p.path] for p in self.dsp.params}
        ys, dys, self.state = self.dsp.model(vals, self.state, inputs)
        if not self.dsp.diff:
            return tuple(ys)
        flat = [d for row in dys for d in row]  # for each output, for each diff param
        return tuple(ys) + tuple(flat)

    def compute(self, x, n):
        cols = [self.step(tuple(x[:, i]) if x is not None and len(x) else ()) for i in range(n)]
        return np.array(cols).T.reshape(-1, n)


class FakeDsp:
    """model(values_by_label, state, inputs) -> (outputs, d outputs / d diff params, state)."""

    def __init__(self, model, inputs, outputs, params, diff=False, double=True):
        self.model, self.inputs, self.primal_outputs = model, inputs, outputs
        self.params = params
        self.diff_params = [p for p in params if p.diff]
        self.diff = diff
        self.double = double
        self.sample_rate = 44100
        self.derivative_names = [f"d out{o}/d {p.label}" for o in range(outputs) for p in self.diff_params]
        self.outputs = len(self.derivative_names) if diff else outputs

    def instance(self, params=None):
        return FakeInstance(self, params)

    def render(self, x=None, n=None, params=None):
        inst = self.instance(params)
        out = inst.compute(x, n)
        return out[self.primal_outputs:] if self.diff else out

    def render_jvp(self, x=None, n=None, params=None):
        assert self.diff
        out = self.instance(params).compute(x, n)
        P, K = self.primal_outputs, len(self.diff_params)
        return out[:P], out[P:].reshape(P, K, n)


def gain_model(v, s, x):
    return (v["gain"] * x[0],), [(x[0],)], s


def gain_dc_model(v, s, x):
    return (v["gain"] * x[0] + v["dc"],), [(x[0], 1.0)], s


def one_pole_model(v, s, x):
    y1, dy1 = s or (0.0, 0.0)
    a = v["a"]
    y = x[0] + a * y1
    dy = y1 + a * dy1
    return (y,), [(dy,)], (y, dy)


def stereo_model(v, s, x):  # two outputs, one parameter
    g = v["gain"]
    return (g * x[0], g * g * x[0]), [(x[0],), (2 * g * x[0],)], s


def make(model, params, inputs=1, outputs=1, diff=True):
    return FakeDsp(model, inputs, outputs, params, diff=diff)


def noise(n, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, size=(1, n))


# ------------------------------------------------------------------- losses
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_derivative_matches_finite_differences(name):
    loss = get_loss(name)
    rng = np.random.default_rng(0)
    h = 1e-6
    for _ in range(50):
        y, t = rng.uniform(-2, 2, size=2)
        if abs(y - t) < 1e-3:
            continue
        fd = (loss.value(y + h, t) - loss.value(y - h, t)) / (2 * h)
        assert loss.grad(y, t) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_losses_values_and_arrays():
    assert l2(0.5, 0.2) == pytest.approx(0.09)
    assert l2_grad(0.5, 0.2) == pytest.approx(0.6)
    assert l1(0.2, 0.5) == pytest.approx(0.3)
    assert l1_grad(0.2, 0.5) == -1.0 and l1_grad(0.5, 0.2) == 1.0 and l1_grad(0.3, 0.3) == 0.0
    y, t = np.array([1.0, -1.0, 0.0]), np.array([0.0, 0.0, 0.0])
    np.testing.assert_allclose(l2(y, t), [1, 1, 0])
    np.testing.assert_allclose(l1_grad(y, t), [1, -1, 0])


def test_unknown_loss():
    with pytest.raises(UsageError, match="unknown loss"):
        get_loss("l3")


# ---------------------------------------------------------------------- fit
def test_fit_gain_converges_with_seed_stop_rule():
    x = noise(10000)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    target = 0.25 * x
    h = fit(dsp, target, x)
    assert h.converged
    assert h.iterations < 1000
    assert h.final_loss < 1e-6
    assert abs(h.final_values["gain"] - 0.25) < 1e-3
    # stop rule: the last 21 losses are at or below the sensitivity
    assert all(L <= 1e-7 for L in h.loss[-21:])
    assert h.loss[-22] > 1e-7


def test_fit_two_params_and_l1():
    x = noise(20000)
    dsp = make(gain_dc_model, [Param("/p/gain", "gain", init=0.5), Param("/p/dc", "dc", init=0.0, min=-1)])
    target = 0.7 * x - 0.2
    h = fit(dsp, target, x, lr=0.1)
    assert h.converged
    assert abs(h.final_values["gain"] - 0.7) < 1e-3 and abs(h.final_values["dc"] + 0.2) < 1e-3
    # l1 (sign gradient) with a small step gets close too
    h1 = fit(dsp, target, x, loss="l1", lr=0.001, patience=None)
    assert abs(h1.final_values["gain"] - 0.7) < 5e-3 and abs(h1.final_values["dc"] + 0.2) < 5e-3


def test_fit_recursive_one_pole():
    x = noise(10000)
    gt = make(one_pole_model, [Param("/p/a", "a", init=0.7)], diff=False)
    target = gt.render(x, 10000)
    dsp = make(one_pole_model, [Param("/p/a", "a", init=0.3)])
    h = fit(dsp, target, x, lr=0.05)
    assert h.converged and abs(h.final_values["a"] - 0.7) < 1e-3


def test_fit_multi_output_sums_losses():
    x = noise(5000)
    dsp = make(stereo_model, [Param("/p/gain", "gain", init=0.9)], outputs=2)
    target = np.vstack([0.5 * x[0], 0.25 * x[0]])
    h = fit(dsp, target, x, lr=0.1)
    assert h.converged and abs(h.final_values["gain"] - 0.5) < 1e-3


def test_fit_initial_params_and_no_stop():
    x = noise(300)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    h = fit(dsp, 0.25 * x, x, params={"gain": 0.3}, patience=None)
    assert h.initial == [0.3]
    assert h.iterations == 300 and not h.converged


def test_fit_diverges_cleanly():
    x = noise(2000)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    h = fit(dsp, 0.25 * x, x, lr=1e6)
    assert not h.converged and h.stop_reason.startswith("diverged")


def test_fit_rejects_bad_setups():
    x = noise(10)
    primal = make(gain_model, [Param("/g/gain", "gain", init=0.8)], diff=False)
    with pytest.raises(UsageError, match="diff=True"):
        fit(primal, x, x)
    nodiff = make(gain_model, [Param("/g/gain", "gain", init=0.8, diff=False)])
    with pytest.raises(UsageError, match="no \\[diff:1\\]"):
        fit(nodiff, x, x)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    with pytest.raises(UsageError, match="output"):
        fit(dsp, np.vstack([x, x]), x)
    with pytest.raises(UsageError, match="learning rate"):
        fit(dsp, x, x, lr=-1)


def test_fit_speed_10000_iterations():
    import time

    x = noise(10000)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    t0 = time.perf_counter()
    h = fit(dsp, 0.25 * x, x, patience=None)
    dt = time.perf_counter() - t0
    assert h.iterations == 10000
    assert dt < 1.0, f"10,000 iterations took {dt:.2f} s with a pure-Python fake"


# -------------------------------------------------------------- history / csv
def test_csv_round_trip(tmp_path):
    x = noise(500)
    dsp = make(gain_dc_model, [Param("/p/gain", "gain", init=0.5), Param("/p/dc", "dc", init=0.0)])
    h = fit(dsp, 0.7 * x - 0.2, x)
    path = tmp_path / "loss.csv"
    h.write_csv(str(path))
    lines = path.read_text().splitlines()
    assert lines[0] == "iteration,loss,gain_grad,gain,dc_grad,dc"
    assert len(lines) == 1 + h.iterations
    assert lines[1].startswith("1,")
    back = History.read_csv(str(path))
    assert back.labels == ["gain", "dc"]
    assert back.iteration == h.iteration
    np.testing.assert_allclose(back.loss, h.loss)
    np.testing.assert_allclose(back.values[1], h.values[1])


def test_read_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="not a diffaust loss CSV"):
        History.read_csv(str(bad))
    with pytest.raises(UsageError, match="no such file"):
        History.read_csv(str(tmp_path / "missing.csv"))


def test_plot_writes_png(tmp_path):
    from diffaust.train.plot import plot_history

    x = noise(500)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    h = fit(dsp, 0.25 * x, x)
    out = tmp_path / "loss.png"
    plot_history(h, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------ console table
def test_table_printer_format():
    lines = []
    tp = TablePrinter(["b1"], head=3, every=10, write=lines.append)
    from diffaust.train.fit import Row

    for i in range(1, 26):
        tp(Row(i, -0.999, -0.5, 0.2396199852 if i < 25 else 0.0, [0.5978040695], [0.1], i < 25))
    tp.finish()
    assert lines[0] == "-" * 65
    assert lines[1] == " Iter   Ground truth      Learnable           Loss             b1"
    assert lines[3] == "    1  -0.9990000000  -0.5000000000   0.2396199852   0.5978040695"
    assert "  ..." in lines
    assert lines[-1].endswith("0.000e+00              -")
    printed = [ln for ln in lines if ln[:5].strip().isdigit()]
    assert [int(ln[:5]) for ln in printed] == [1, 2, 3, 10, 20, 25]


# --------------------------------------------------------------------- verify
def test_verify_forward_and_central():
    x = noise(100)
    dsp = make(gain_dc_model, [Param("/p/gain", "gain", init=0.5), Param("/p/dc", "dc", init=0.25)])
    v = verify(dsp, x, n=100, epsilon=1e-3)
    assert v.names == ["gain", "dc"]
    assert v.max_delta < 1e-9  # linear in both parameters: finite differences are exact
    vp = verify(make(one_pole_model, [Param("/p/a", "a", init=0.5)]), x, n=100, epsilon=1e-3)
    vc = verify(make(one_pole_model, [Param("/p/a", "a", init=0.5)]), x, n=100, epsilon=1e-3, central=True)
    assert vc.max_delta < vp.max_delta / 10
    lines = []
    print_table(vc, write=lines.append)
    assert lines[0] == "-" * 80
    assert lines[1] == " Iter          Param       Autodiff    Finite diff        |delta|     Rel. error"
    assert lines[3].startswith("    1              a")
    assert lines[3].endswith(" %")
    assert "Parameter: a" in lines
    assert any(ln.startswith("         Mean delta:") for ln in lines)
    assert any(ln.startswith(" Standard deviation:") for ln in lines)
    # header again every 20 samples
    assert sum(1 for ln in lines if ln.startswith(" Iter")) == 5


def test_verify_rejects_unknown_param_and_bad_epsilon():
    x = noise(10)
    dsp = make(gain_model, [Param("/g/gain", "gain", init=0.8)])
    with pytest.raises(UsageError, match="unknown parameter 'nope'"):
        verify(dsp, x, n=10, params={"nope": 1.0})
    with pytest.raises(UsageError, match="epsilon"):
        verify(dsp, x, n=10, epsilon=0)
