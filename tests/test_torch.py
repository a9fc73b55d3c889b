"""diffaust.torch.FaustModule: a Faust program as a PyTorch layer (issue 12, PyTorch part).

gradcheck in double on a recursion, a fractional delay, a table oscillator and a parameter
given per sample; gradients w.r.t. the input; batch items against single renders; threads
against one thread; bad input; `import diffaust` without torch.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffaust  # noqa: E402
from diffaust.errors import UsageError  # noqa: E402
from diffaust.torch import FaustModule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SR = 48000

ONE_POLE = 'process = + ~ *(hslider("a [diff:1]", 0.5, 0, 0.99, 0.01));'
FDELAY = ('import("stdfaust.lib");\n'
          'process = de.fdelay(64, hslider("d [diff:1]", 10.3, 0, 60, 0.01)) '
          ': *(hslider("g [diff:1]", 1, 0, 2, 0.01));')
OSCI = 'import("stdfaust.lib"); process = os.osci(hslider("f [diff:1]", 440, 50, 2000, 1));'
OSC = 'import("stdfaust.lib"); process = os.osc(hslider("f [diff:1]", 440, 50, 2000, 1));'
RESONLP = ('import("stdfaust.lib");\n'
           'fc = hslider("fc [diff:1]", 1000, 50, 10000, 1);\n'
           'q = hslider("q [diff:1]", 1, 0.5, 20, 0.01);\n'
           'gain = hslider("gain [diff:1]", 1, 0, 2, 0.01);\n'
           'process = fi.resonlp(fc, q, gain);\n')
STEREO = ('process = _, _ <: (+ : *(hslider("g [diff:1]", 0.5, 0, 1, 0.01))), '
          '(- : *(hslider("h", 0.25, 0, 1, 0.01)));')
NO_DIFF_NO_INPUT = 'import("stdfaust.lib"); process = os.osc(hslider("f", 440, 50, 2000, 1));'
NO_DIFF_INPUT = 'process = _ : *(hslider("g", 0.5, 0, 1, 0.01)) : + ~ *(0.5);'

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def mods():
    """The double-precision modules, compiled once for the file."""
    return {name: FaustModule(src, double=True, sample_rate=SR, threads=2)
            for name, src in [("one_pole", ONE_POLE), ("fdelay", FDELAY), ("osci", OSCI), ("osc", OSC),
                              ("resonlp", RESONLP)]}


# ---------------------------------------------------------------- gradcheck (double)
def test_gradcheck_recursion(mods):
    m = mods["one_pole"]
    x = torch.randn(2, 1, 40, dtype=F64, generator=gen(0), requires_grad=True)
    a = torch.tensor([0.3, 0.8], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a: m(x, {"a": a}), (x, a))


def test_gradcheck_fractional_delay(mods):
    m = mods["fdelay"]
    x = torch.randn(2, 1, 48, dtype=F64, generator=gen(1), requires_grad=True)
    d = torch.tensor([10.3, 20.7], dtype=F64, requires_grad=True)  # away from whole samples
    g = torch.tensor([0.9, 1.2], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, d, g: m(x, {"d": d, "g": g}), (x, d, g))


def test_gradcheck_table_oscillator(mods):
    """os.osci (linear interpolation in the table): finite differences are smooth."""
    m = mods["osci"]
    f = torch.tensor([440.0, 1234.5], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: m(None, {"f": f}, n=64), (f,))


def test_table_oscillator_without_interpolation_matches_vjp(mods):
    """os.osc steps through its table: finite differences see the steps, so the layer's
    gradient is checked against the compiled reverse mode of the same program."""
    m = mods["osc"]
    d = diffaust.compile(OSC, double=True, sample_rate=SR)
    f = torch.tensor([440.0, 997.0], dtype=F64, requires_grad=True)
    y = m(None, {"f": f}, n=256)
    w = torch.randn(2, 1, 256, dtype=F64, generator=gen(2))
    (y * w).sum().backward()
    for b in range(2):
        g = d.vjp(None, w[b].numpy(), {"f": f[b].item()}, n=256)
        np.testing.assert_allclose(y[b].detach().numpy(), g.output, rtol=0, atol=0)
        assert f.grad[b].item() == pytest.approx(g.params["f"], rel=1e-12, abs=1e-15)
        assert abs(g.params["f"]) > 0


def test_gradcheck_time_varying_parameter(mods):
    m = mods["resonlp"]
    n = 48
    x = torch.randn(2, 1, n, dtype=F64, generator=gen(3), requires_grad=True)
    fc = (800 + 1000 * torch.rand(2, n, dtype=F64, generator=gen(4))).requires_grad_()  # (batch, samples)
    q = torch.tensor([2.0, 5.0], dtype=F64, requires_grad=True)  # (batch,): constant
    assert torch.autograd.gradcheck(lambda x, fc, q: m(x, {"fc": fc, "q": q}), (x, fc, q))


def test_time_varying_matches_dsp_vjp(mods):
    m = mods["resonlp"]
    d = diffaust.compile(RESONLP, double=True, sample_rate=SR)
    n = 300
    x = torch.randn(3, 1, n, dtype=F64, generator=gen(5), requires_grad=True)
    fc = torch.linspace(200, 4000, n, dtype=F64).repeat(3, 1).requires_grad_()
    gain = torch.tensor([0.5, 1.0, 1.5], dtype=F64, requires_grad=True)
    y = m(x, {"fc": fc, "gain": gain})
    w = torch.randn(3, 1, n, dtype=F64, generator=gen(6))
    (y * w).sum().backward()
    for b in range(3):
        p = {"fc": fc[b].detach().numpy(), "gain": gain[b].item()}
        g = d.vjp(x[b].detach().numpy(), w[b].numpy(), p)
        np.testing.assert_allclose(y[b].detach().numpy(), g.output, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(x.grad[b].numpy(), g.input, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(fc.grad[b].numpy(), g.params["fc"], rtol=1e-12, atol=1e-15)
        assert gain.grad[b].item() == pytest.approx(g.params["gain"], rel=1e-12)


# ---------------------------------------------------------------- shapes, batches, threads
# ---------------------------------------------------------------- forward mode (ad=)
def _grads(m, x, params, w):
    for t in params.values():
        t.grad = None
    y = m(x, params)
    (y * w).sum().backward()
    return y.detach().clone(), {k: t.grad.clone() for k, t in params.items()}


@pytest.mark.parametrize("src, values", [
    (RESONLP, {"fc": [300.0, 2500.0, 7000.0], "q": [0.7, 3.0, 12.0], "gain": [0.5, 1.0, 1.7]}),
    (FDELAY, {"d": [3.3, 20.7, 51.2], "g": [0.2, 1.0, 1.9]}),
    (STEREO, {"g": [0.1, 0.5, 0.9]}),
])
def test_forward_mode_gradients_equal_reverse_mode(src, values):
    """Parameters constant over the block, x without grad: ad='forward' (the derivative
    program and Σ ȳ·∂y/∂p) gives reverse mode's gradients and the same outputs."""
    inputs = diffaust.compile(src, sample_rate=SR).inputs
    B, n = 3, 4000
    x = torch.randn(B, inputs, n, dtype=F64, generator=gen(40))
    w = torch.randn(B, diffaust.compile(src, sample_rate=SR).primal_outputs, n, dtype=F64, generator=gen(41))
    out = {}
    for ad in ("forward", "reverse"):
        m = FaustModule(src, double=True, sample_rate=SR, threads=2, ad=ad)
        params = {k: torch.tensor(v, dtype=F64, requires_grad=True) for k, v in values.items()}
        out[ad] = _grads(m, x, params, w)
    yf, gf = out["forward"]
    yr, gr = out["reverse"]
    assert torch.equal(yf, yr)
    for k in values:
        scale = float(gr[k].abs().max()) + 1e-12
        assert float((gf[k] - gr[k]).abs().max()) <= 1e-9 * scale, k


def test_forward_mode_gradcheck():
    m = FaustModule(RESONLP, double=True, sample_rate=SR, threads=2, ad="forward")
    x = torch.randn(2, 1, 64, dtype=F64, generator=gen(42))
    fc = torch.tensor([800.0, 3000.0], dtype=F64, requires_grad=True)
    q = torch.tensor([2.0, 5.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda fc, q: m(x, {"fc": fc, "q": q}), (fc, q))


def test_auto_mode_picks_forward_or_reverse_and_both_agree():
    """auto: forward for <= 2 [diff:1] parameters when only constant parameters need a
    gradient; reverse when x does; for 3 parameters the faster of the two, timed once."""
    m = FaustModule(STEREO, double=True, sample_rate=SR, threads=1)
    x = torch.randn(2, 2, 500, dtype=F64, generator=gen(43))
    g = torch.tensor([0.3, 0.6], dtype=F64, requires_grad=True)
    y = m(x, {"g": g})
    assert y.grad_fn is not None
    y.sum().backward()
    assert m._jvp_dsp is not None  # forward mode ran
    m3 = FaustModule(RESONLP, double=True, sample_rate=SR, threads=1)
    fc = torch.tensor([500.0, 5000.0], dtype=F64, requires_grad=True)
    m3(torch.randn(2, 1, 3000, dtype=F64, generator=gen(44)), {"fc": fc}).sum().backward()
    assert m3._ad_timed in ("forward", "reverse")
    xg = torch.randn(2, 1, 300, dtype=F64, generator=gen(45), requires_grad=True)
    m4 = FaustModule(ONE_POLE, double=True, sample_rate=SR, threads=1)
    m4(xg, {"a": torch.tensor([0.2, 0.4], dtype=F64, requires_grad=True)}).sum().backward()
    assert m4._jvp_dsp is None and xg.grad is not None  # x needs its gradient: reverse mode


def test_forward_mode_keeps_no_derivatives_and_a_second_backward_is_right():
    """Forward mode's backward pass runs the gradient program on what the forward pass kept
    (its inputs and parameters): a second backward pass through a kept graph (retain_graph),
    after other steps, gives the same gradients."""
    m = FaustModule(RESONLP, double=True, sample_rate=SR, threads=2, ad="forward")
    x = torch.randn(3, 1, 2000, dtype=F64, generator=gen(47))
    fc = torch.tensor([300.0, 1000.0, 5000.0], dtype=F64, requires_grad=True)
    y = m(x, {"fc": fc})
    y.sum().backward(retain_graph=True)
    first = fc.grad.clone()
    fc.grad = None
    for k in range(3):  # other steps, whose graphs are freed: their buffers are reused
        m(x * (2 + k), {"fc": fc * 1.5}).sum().backward()
    assert m._free == []  # forward mode keeps no buffer of derivatives
    fc.grad = None
    y.sum().backward()
    assert float((fc.grad - first).abs().max()) <= 1e-9 * float(first.abs().max())


def test_forward_mode_refuses_what_it_cannot_give():
    m = FaustModule(ONE_POLE, double=True, sample_rate=SR, threads=1, ad="forward")
    x = torch.randn(2, 1, 100, dtype=F64, generator=gen(46), requires_grad=True)
    with pytest.raises(UsageError, match="x requires grad"):
        m(x, {"a": torch.tensor([0.2, 0.4], dtype=F64, requires_grad=True)})
    a = torch.full((2, 100), 0.3, dtype=F64, requires_grad=True)
    with pytest.raises(UsageError, match="per-sample parameter requires grad"):
        m(x.detach(), {"a": a})
    with pytest.raises(UsageError, match="ad must be one of"):
        FaustModule(ONE_POLE, ad="sideways")


def test_shapes_dtype_and_defaults():
    m = FaustModule(STEREO, threads=2)  # float32
    assert (m.inputs, m.outputs) == (2, 2) and [p.label for p in m.diff_params] == ["g"]
    x = torch.randn(4, 2, 100, dtype=F64, generator=gen(7), requires_grad=True)
    y = m(x)  # parameters not given: their init values
    assert y.shape == (4, 2, 100) and y.dtype == torch.float32
    xs = x.detach().float()
    torch.testing.assert_close(y[:, 0], 0.5 * (xs[:, 0] + xs[:, 1]))
    torch.testing.assert_close(y[:, 1], 0.25 * (xs[:, 0] - xs[:, 1]))
    y.sum().backward()
    assert x.grad.dtype == F64 and x.grad.shape == x.shape  # the gradient in the input's dtype
    torch.testing.assert_close(x.grad[:, 0], torch.full((4, 100), 0.75, dtype=F64))
    # a number for every item; a path names the widget too; no gradient asked: none computed
    y2 = m(x.detach(), {"/dsp/g": 1.0, "h": torch.tensor(0.5)})
    assert not y2.requires_grad
    torch.testing.assert_close(y2[:, 0], xs[:, 0] + xs[:, 1])


def test_batch_items_equal_single_renders():
    m = FaustModule(RESONLP, threads=3)
    d = diffaust.compile(RESONLP, sample_rate=SR)
    B, n = 5, 2000
    x = torch.randn(B, 1, n, generator=gen(8))
    fc = torch.tensor([100.0, 500.0, 1000.0, 4000.0, 9000.0])
    q = torch.rand(B, n, generator=gen(9)) * 10 + 0.5
    y = m(x, {"fc": fc, "q": q})
    assert y.dtype == torch.float32
    for b in range(B):
        ref = d.render(x[b].numpy(), params={"fc": float(fc[b]), "q": q[b].numpy()})
        np.testing.assert_array_equal(y[b].numpy(), ref)


def test_threads_equal_one_thread():
    B, n = 6, 3000
    x = torch.randn(B, 1, n, generator=gen(10), requires_grad=True)
    fc = torch.tensor([200.0, 700.0, 1500.0, 3000.0, 6000.0, 9000.0], requires_grad=True)
    q = (1 + torch.rand(B, n, generator=gen(11))).requires_grad_()
    w = torch.randn(B, 1, n, generator=gen(12))
    res = []
    for threads in (1, 4):
        m = FaustModule(RESONLP, threads=threads)
        for t in (x, fc, q):
            t.grad = None
        y = m(x, {"fc": fc, "q": q})
        (y * w).sum().backward()
        res.append((y.detach().clone(), x.grad.clone(), fc.grad.clone(), q.grad.clone()))
    for a, b in zip(*res):
        assert torch.equal(a, b)


def test_clamp_out_of_range():
    m = FaustModule(ONE_POLE, double=True, threads=1)
    x = torch.randn(3, 1, 50, dtype=F64, generator=gen(13))
    a = torch.tensor([-0.5, 0.5, 2.0], dtype=F64, requires_grad=True)
    y = m(x, {"a": a})
    edge = m(x, {"a": torch.tensor([0.0, 0.5, 0.99], dtype=F64)})
    assert torch.equal(y, edge)
    y.sum().backward()
    assert a.grad[0] == 0 and a.grad[2] == 0 and a.grad[1] != 0
    # per sample: clamped by the compiled program, zero gradient outside
    a2 = torch.full((1, 50), 3.0, dtype=F64, requires_grad=True)
    y2 = m(x[:1], {"a": a2})
    torch.testing.assert_close(y2, m(x[:1], {"a": torch.tensor([0.99], dtype=F64)}))
    y2.sum().backward()
    assert torch.all(a2.grad == 0)


def test_scalar_parameter_and_clamp_bounds():
    """A 0-d parameter tensor is every item's value: its gradient is the batch's sum (gradcheck);
    a value on a slider's bound passes its gradient, as torch.clamp does."""
    m = FaustModule(ONE_POLE, double=True, threads=2)
    x = torch.randn(9, 1, 40, dtype=F64, generator=gen(21))  # 9 items: groups of 4, 4 and 1 in lanes
    a = torch.tensor(0.6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: m(x, {"a": a}), (a,))
    y = m(x, {"a": a})
    y.sum().backward()
    ref = torch.tensor([0.6] * 9, dtype=F64, requires_grad=True)
    m(x, {"a": ref}).sum().backward()
    torch.testing.assert_close(a.grad, ref.grad.sum())
    edge = torch.tensor([0.0, 0.99, 0.5, 1.2], dtype=F64, requires_grad=True)  # min, max, inside, outside
    m(x[:4], {"a": edge}).sum().backward()
    assert torch.all(edge.grad[:3] != 0) and edge.grad[3] == 0


def test_concurrent_calls_share_nothing():
    """Two threads calling one module at once: each call runs on instances and buffers of its
    own (the module's free lists), the results those of calls one after the other."""
    import threading

    m = FaustModule(FDELAY, threads=2)
    xs = [torch.randn(12, 1, 300, generator=gen(30 + k), requires_grad=True) for k in range(2)]
    ds = [torch.linspace(3, 50, 12).requires_grad_() for _ in range(2)]

    def run(k, out):
        for _ in range(20):
            xs[k].grad = ds[k].grad = None
            y = m(xs[k], {"d": ds[k]})
            (y * y).sum().backward()
        out[k] = (y.detach().clone(), xs[k].grad.clone(), ds[k].grad.clone())

    alone = [None, None]
    for k in range(2):
        run(k, alone)
    both = [None, None]
    ts = [threading.Thread(target=run, args=(k, both)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for k in range(2):
        for a, b in zip(alone[k], both[k]):
            assert torch.equal(a, b)


def test_native_pool_matches_one_thread():
    """The lane groups on the native pool (2 threads), on the Python thread pool and on one
    thread: the same outputs and gradients, bit for bit, in the render, reverse mode and
    forward mode's gradient program."""
    x = torch.randn(21, 1, 700, generator=gen(40))
    d = torch.linspace(2, 55, 21)
    w = torch.randn(21, 1, 700, generator=gen(41))
    res = []
    for threads, native in ((1, True), (2, True), (2, False)):
        m = FaustModule(FDELAY, threads=threads)
        m.native_pool = native
        got = []
        for ad, x_grad in (("reverse", True), ("forward", False)):
            m.ad = ad
            xi, di = x.clone().requires_grad_(x_grad), d.clone().requires_grad_()
            y = m(xi, {"d": di})
            (y * w).sum().backward()
            got += [y.detach(), di.grad] + ([xi.grad] if x_grad else [])
        with torch.no_grad():
            got.append(m(x, {"d": d}))
        assert (m._npool is not None) == (threads > 1 and native)
        res.append(got)
    for other in res[1:]:
        for a, b in zip(res[0], other):
            assert torch.equal(a, b)


def test_planned_passes_match_prepared_ones(monkeypatch):
    """A pass's calls are prepared once and laid out again on each call's arrays
    (runtime.lanes.CallPlan): step after step, with new inputs, parameters and cotangents,
    a per-sample parameter, groups with fewer items than lanes (21 items) and every pass
    (the render, the tape and adjoint programs, forward mode's gradient program), the
    outputs and gradients are those of calls prepared anew (the Python thread pool's path),
    bit for bit, and the plans are reused — with the parameters written by the jobs
    themselves, or (a parameter shared by every lane: "python") by the layer before each run."""
    import diffaust.torch as layer

    res = {}
    for threads, native in ((1, True), (2, True), (2, False), (2, "python")):
        if native == "python":
            monkeypatch.setattr(layer, "_param_writes", lambda *a: None)
        m = FaustModule(FDELAY, threads=threads)
        m.native_pool = bool(native)
        got, plans = [], []
        for step in range(3):
            x = torch.randn(21, 1, 300, generator=gen(50 + step))
            d = torch.linspace(2, 55, 21) + step
            g = torch.linspace(0.5, 1.5, 21).flip(0) * (1 + step / 10)
            w = torch.randn(21, 1, 300, generator=gen(60 + step))
            sweep = (d[:, None] * (1 + 0.1 * torch.sin(torch.linspace(0, 6, 300))[None])).requires_grad_()
            for ad, x_grad, dd in (("reverse", True, None), ("forward", False, None), ("reverse", False, sweep)):
                m.ad = ad
                xi, di, gi = x.clone().requires_grad_(x_grad), d.clone().requires_grad_(), g.clone().requires_grad_()
                y = m(xi, {"d": di if dd is None else dd, "g": gi})
                (y * w).sum().backward()
                got += [y.detach(), gi.grad] + ([xi.grad] if x_grad else []) + [(di if dd is None else dd).grad]
            with torch.no_grad():
                got.append(m(x, {"d": d, "g": g}))
            plans.append({k: [id(p) for p in v] for k, v in m._plans.items()})
        if native:
            assert plans[0] and plans[1] == plans[0] == plans[2]  # built by the first step, reused
            assert all(p.native_ready == (native is True) for v in m._plans.values() for p in v)
        else:
            assert not m._plans
        res[threads, native] = got
    ref = res[2, False]
    for key in ((1, True), (2, True), (2, "python")):
        assert len(res[key]) == len(ref)
        for a, b in zip(ref, res[key]):
            assert torch.equal(a, b)


def test_planned_tape_history_zeroed_each_step():
    """fi.resonlp's tape has a history (its first samples, read by the adjoint before time 0):
    a reused tape buffer holding garbage is zeroed there by the plan's jobs, step after step
    (the gradients those of calls prepared anew, bit for bit)."""
    res = {}
    for native in (True, False):
        m = FaustModule(RESONLP, threads=2)
        m.native_pool = native
        got = []
        for step in range(3):
            x = torch.randn(11, 1, 256, generator=gen(80 + step))
            fc = torch.linspace(300, 4000, 11).requires_grad_()
            q = torch.linspace(0.7, 6, 11).flip(0).requires_grad_()
            xi = x.clone().requires_grad_()
            with m._lock:  # the module's spare buffers (the next step's tape among them): garbage
                while not m._returned.empty():
                    m._free.append(m._returned.get_nowait())
                for a in m._free:
                    a[...] = 1e30
            y = m(xi, {"fc": fc, "q": q})
            y.backward(torch.cos(torch.arange(256.0))[None, None].expand(11, 1, 256))
            got += [y.detach(), xi.grad, fc.grad, q.grad]
        assert all(torch.isfinite(t).all() for t in got)
        res[native] = got
    for a, b in zip(res[False], res[True]):
        assert torch.equal(a, b)


def test_planned_pass_nan_cotangent_then_recovers():
    """A reused plan still checks ȳ: NaN in it is an error naming it, and the next step runs."""
    m = FaustModule(FDELAY, threads=2)
    x = torch.randn(16, 1, 200, generator=gen(70))
    d = torch.linspace(2, 40, 16)
    outs = []
    for step in range(3):
        di = d.clone().requires_grad_()
        y = m(x, {"d": di})
        w = torch.ones_like(y)
        if step == 1:
            w[5, 0, 17] = float("nan")
            with pytest.raises(UsageError, match="y_bar holds NaN"):
                y.backward(w)
            continue
        y.backward(w)
        outs.append(di.grad.clone())
    assert torch.equal(outs[0], outs[1])


def test_program_without_inputs_and_gradients_to_x_only():
    m = FaustModule(OSCI, threads=2)
    y = m(None, {"f": torch.tensor([440.0, 880.0])}, n=128)
    assert y.shape == (2, 1, 128)
    assert m(None, n=64, batch=3).shape == (3, 1, 64)
    assert m(None, n=64).shape == (1, 1, 64)
    # no [diff:1] parameter, but an input: the gradient w.r.t. x
    m2 = FaustModule(NO_DIFF_INPUT, double=True, threads=1)
    x = torch.randn(2, 1, 30, dtype=F64, generator=gen(14), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m2(x), (x,))


def test_deepcopy_and_inference_mode():
    m = FaustModule(ONE_POLE, threads=1)
    m2 = copy.deepcopy(m)
    x = torch.randn(2, 1, 64, generator=gen(15))
    with torch.inference_mode():
        assert torch.equal(m(x, {"a": torch.tensor([0.1, 0.2])}), m2(x, {"a": torch.tensor([0.1, 0.2])}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_move_to_the_cpu_and_back():
    m = FaustModule(RESONLP, double=True, threads=2)
    x = torch.randn(2, 1, 256, dtype=F64, generator=gen(16))
    fc = torch.tensor([500.0, 2000.0], dtype=F64)
    xc, fcc = x.cuda().requires_grad_(), fc.cuda().requires_grad_()
    y = m(xc, {"fc": fcc})
    assert y.device == xc.device
    y.backward(torch.ones_like(y))
    assert xc.grad.device == xc.device and fcc.grad.device == fcc.device
    x.requires_grad_(), fc.requires_grad_()
    y0 = m(x, {"fc": fc})
    y0.backward(torch.ones_like(y0))
    assert torch.equal(y.cpu(), y0.detach())
    assert torch.equal(xc.grad.cpu(), x.grad) and torch.equal(fcc.grad.cpu(), fc.grad)


# ---------------------------------------------------------------- bad input
def err(fn, *words):
    with pytest.raises(UsageError) as e:
        fn()
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_bad_input():
    m = FaustModule(RESONLP, threads=1)
    x = torch.randn(2, 1, 32)
    fc = torch.tensor([500.0, 600.0])
    err(lambda: m(torch.randn(2, 32), {"fc": fc}), "x must have shape (batch, inputs, samples)", "(2, 32)")
    err(lambda: m(torch.randn(2, 2, 32), {"fc": fc}), "(batch, 1, samples)", "(2, 2, 32)")
    err(lambda: m(None, {"fc": fc}, n=32), "the program has 1 input")
    err(lambda: m(x, {"cutoff": fc}), "no parameter 'cutoff'", "fc, gain, q")
    err(lambda: m(x, {"fc": torch.ones(3) * 500}), "parameter 'fc'", "batch size 2")
    err(lambda: m(x, {"fc": torch.ones(2, 31) * 500}), "parameter 'fc'", "(2, 31)", "(2, 32)")
    err(lambda: m(x, {"fc": torch.ones(2, 32, 1)}), "parameter 'fc'", "(batch,)")
    err(lambda: m(x, {"fc": torch.tensor([500.0, float("nan")])}), "'fc'", "NaN")
    err(lambda: m(x, {"fc": fc, "q": torch.tensor(float("inf"))}), "'q'", "NaN or Inf")
    err(lambda: m(x, {"fc": torch.full((2, 32), 500.0).index_fill(1, torch.tensor([7]), float("nan"))}),
        "'fc'", "NaN")
    err(lambda: m(x, {"fc": fc, "/dsp/fc": fc}), "given twice")
    err(lambda: m(x, [fc]), "params must be a dict")
    err(lambda: m(x.numpy(), {"fc": fc}), "torch.Tensor")
    err(lambda: m(x, {"fc": fc}, n=16), "n=16", "32 samples")
    err(lambda: FaustModule(RESONLP, diff=True), "unknown option", "diff")
    err(lambda: FaustModule(RESONLP, threads=0), "threads")
    # gradients asked where there is none
    m2 = FaustModule(NO_DIFF_NO_INPUT, threads=1)
    f = torch.tensor([440.0], requires_grad=True)
    err(lambda: m2(None, {"f": f}, n=16), "'f'", "no [diff:1] parameter and no input")
    assert m2(None, {"f": f.detach()}, n=16).shape == (1, 1, 16)
    m3 = FaustModule(STEREO, threads=1)
    err(lambda: m3(torch.randn(1, 2, 8), {"h": torch.tensor([0.5], requires_grad=True)}),
        "'h' is not marked [diff:1]")
    with torch.no_grad():  # no gradient asked: fine
        m3(torch.randn(1, 2, 8), {"h": torch.tensor([0.5], requires_grad=True)})


# ---------------------------------------------------------------- packaging, README
def test_import_diffaust_does_not_import_torch():
    code = ("import sys, diffaust; d = diffaust.compile('process = *(0.5);'); d.render(n=4); "
            "print('torch' in sys.modules, 'jax' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_missing_torch_message():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import diffaust.torch\nexcept ImportError as e:\n    print(e)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "pip install 'diffaust[torch]'" in out.stdout, out.stdout + out.stderr


def test_readme_pytorch_block_runs(tmp_path, monkeypatch):
    """The README's PyTorch block (fenced ```python torch, left out of test_readme's run
    where torch may be missing) runs as written."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python torch\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no PyTorch block"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_lanes_give_what_one_item_per_instance_gives(double):
    """Items in SIMD lanes (the default: groups of 8 in float, 4 in double; 11 items = uneven
    groups) give the outputs and forward-mode gradients of one item per instance, bit for bit."""
    dt = F64 if double else torch.float32
    B, n = 11, 1500
    x = torch.randn(B, 1, n, dtype=dt, generator=gen(60))
    w = torch.randn(B, 1, n, dtype=dt, generator=gen(61))
    fc = torch.linspace(200.0, 8000.0, B, dtype=dt)
    q = torch.linspace(0.7, 15.0, B, dtype=dt)
    res = {}
    for lanes in (1, None, 3):
        m = FaustModule(RESONLP, double=double, sample_rate=SR, threads=2, ad="forward", lanes=lanes)
        params = {"fc": fc.clone().requires_grad_(), "q": q.clone().requires_grad_()}
        y, g = _grads(m, x, params, w)
        with torch.no_grad():
            y_plain = m(x, {"fc": fc, "q": q})
        res[lanes] = (y, g, y_plain)
        if lanes != 1:
            assert m._jvp().dsp.__dict__.get("_lanes") and m.dsp.__dict__.get("_lanes"), "lanes were not used"
    for lanes in (None, 3):
        assert torch.equal(res[lanes][0], res[1][0])
        assert torch.equal(res[lanes][2], res[1][2])
        for k in ("fc", "q"):
            assert torch.equal(res[lanes][1][k], res[1][1][k]), k


def test_bad_lanes_argument():
    with pytest.raises(UsageError, match="lanes must be a whole number"):
        FaustModule(ONE_POLE, lanes=0)
    with pytest.raises(UsageError, match="lanes must be a whole number"):
        FaustModule(ONE_POLE, lanes=2.5)


@pytest.mark.parametrize("src", [RESONLP, FDELAY, STEREO], ids=["resonlp", "fdelay", "stereo"])
def test_reverse_mode_in_lanes_gives_what_one_item_per_instance_gives(src):
    """Reverse mode (x requires grad, a parameter per sample) with the items in lanes: the
    tape and adjoint programs in lanes give the outputs and every gradient of one item per
    instance, bit for bit (9 items: a group of 8 and one of 1... as even as can be: 5 and 4)."""
    d = diffaust.compile(src, sample_rate=SR)
    B, n = 9, 1200
    x0 = torch.randn(B, d.inputs, n, dtype=torch.float32, generator=gen(70))
    w = torch.randn(B, d.primal_outputs, n, dtype=torch.float32, generator=gen(71))
    diffs = [p for p in d.params if p.diff]
    labels = [p.label for p in diffs]
    res = {}
    for lanes in (1, None):
        m = FaustModule(src, sample_rate=SR, threads=2, ad="reverse", lanes=lanes)
        x = x0.clone().requires_grad_()
        params = {}
        for i, lab in enumerate(labels):
            p = diffs[i]
            lo, hi = float(p.min), float(p.max)
            if i == 0:  # per sample
                params[lab] = (lo + (hi - lo) * (0.2 + 0.6 * torch.rand(B, n, generator=gen(72)))).requires_grad_()
            else:
                params[lab] = (lo + (hi - lo) * (0.2 + 0.6 * torch.rand(B, generator=gen(73 + i)))).requires_grad_()
        y = m(x, params)
        (y * w).sum().backward()
        res[lanes] = (y.detach(), x.grad, {k: t.grad for k, t in params.items()})
        if lanes is None:  # the tape and adjoint programs ran in lanes
            rev = [v for paths, v in m._variants.items() if paths][0].reverse()
            assert rev.tape_dsp.__dict__.get("_lanes") and rev.adjoint_dsp.__dict__.get("_lanes")
    assert torch.equal(res[None][0], res[1][0])
    assert torch.equal(res[None][1], res[1][1])
    for k in labels:
        assert torch.equal(res[None][2][k], res[1][2][k]), k
