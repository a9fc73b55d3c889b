"""Optimizers, schedules, clipping and normalized parameter coordinates (train/optim.py)."""

import math

import numpy as np
import pytest

from diffaust.errors import UsageError
from diffaust.runtime.dsp import Param
from diffaust.train import optim
from diffaust.train.optim import (OPTIMIZERS, SCHEDULES, clip_by_norm, dvalue_du, finite, from_unit,
                                  get_optimizer, global_norm, is_log, lr_at, make_schedule,
                                  param_bounds, project, to_unit)

try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

# ------------------------------------------------------------------ helpers
A = np.diag([1.0, 10.0])              # ill-conditioned quadratic ½ pᵀAp − bᵀp
B = np.array([1.0, -2.0])
P_STAR = np.linalg.solve(A, B)
START = np.array([3.0, 4.0])


def quad_grad(p):
    return A @ p - B


def rosen_grad(p):
    x, y = p
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


def run(opt, grad, p0, lr, n, schedule="constant"):
    p, s = np.array(p0, float), opt.init(p0)
    for i in range(n):
        step, s = opt.update(grad(p), s, lr_at(schedule, lr, i, n))
        p = p + step
    return p


# --------------------------------------------------------------- optimizers
@pytest.mark.parametrize("name,lr,n", [("sgd", 0.1, 300), ("momentum", 0.02, 500),
                                       ("adam", 0.05, 2000), ("rmsprop", 0.01, 2000)])
def test_minimizes_quadratic(name, lr, n):
    p = run(get_optimizer(name), quad_grad, START, lr, n, schedule="cosine")
    assert np.allclose(p, P_STAR, atol=1e-2), (name, p)


def test_adam_rosenbrock():
    p = run(optim.adam, rosen_grad, np.array([-1.2, 1.0]), 0.02, 5000, schedule="cosine")
    assert np.allclose(p, [1.0, 1.0], atol=2e-2), p


def test_adam_first_step_is_lr_sign_g():
    g = np.array([3.0, -0.5, 0.0, 250.0])   # |g| >> eps
    step, s = optim.adam.update(g, optim.adam.init(np.zeros(4)), 0.01)
    assert np.allclose(step, -0.01 * np.sign(g), rtol=1e-6, atol=0)
    assert s.count == 1


def test_sgd_matches_fit_rule():
    step, _ = optim.sgd.update([2.0, -1.0], optim.sgd.init([0.0, 0.0]), 0.1)
    assert step.tolist() == [-0.2, 0.1]


def _torch_reference(name, grads, lr):
    """torch.optim's documented algorithms, written out (defaults, one parameter vector)."""
    m = v = np.zeros_like(grads[0])
    steps = []
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            steps.append(-lr * g)
        elif name == "momentum":
            m = g if t == 1 else 0.9 * m + g
            steps.append(-lr * m)
        elif name == "adam":
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            denom = np.sqrt(v) / math.sqrt(1 - 0.999 ** t) + 1e-8
            steps.append(-(lr / (1 - 0.9 ** t)) * m / denom)
        elif name == "rmsprop":
            v = 0.99 * v + 0.01 * g * g
            steps.append(-lr * g / (np.sqrt(v) + 1e-8))
    return steps


def _grads(P=3, n=6):
    rng = np.random.default_rng(7)
    return [rng.normal(size=P) for _ in range(n)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_matches_torch_algorithms(name):
    grads = _grads()
    opt = get_optimizer(name)
    s = opt.init(np.zeros(3))
    for g, ref in zip(grads, _torch_reference(name, grads, 0.05)):
        step, s = opt.update(g, s, 0.05)
        assert np.allclose(step, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    cls = {"sgd": lambda q: torch.optim.SGD(q, lr=0.05),
           "momentum": lambda q: torch.optim.SGD(q, lr=0.05, momentum=0.9),
           "adam": lambda q: torch.optim.Adam(q, lr=0.05),
           "rmsprop": lambda q: torch.optim.RMSprop(q, lr=0.05, eps=1e-8)}[name]
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    topt = cls([w])
    opt = get_optimizer(name)
    p, s = np.zeros(3), opt.init(np.zeros(3))
    for g in _grads():
        w.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        step, s = opt.update(g, s, 0.05)
        p = p + step
        assert np.allclose(p, w.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_is_pure(name):
    opt = get_optimizer(name)
    p = np.array([1.0, 2.0])
    s0 = opt.init(p)
    s1 = opt.update(np.array([0.5, -0.5]), s0, 0.1)[1]
    snap = {k: np.array(v, copy=True) for k, v in vars(s1).items()}
    g = np.array([1.0, 1.0])
    step_a, s2 = opt.update(g, s1, 0.1)
    step_b, _ = opt.update(g, s1, 0.1)           # same input → same output
    assert np.array_equal(step_a, step_b)
    for k, v in vars(s1).items():
        assert np.array_equal(v, snap[k]), k
    assert s2 is not s1 and s2.count == s1.count + 1
    assert p.tolist() == [1.0, 2.0] and g.tolist() == [1.0, 1.0]
    for v in vars(s1).values():                   # arrays are read-only
        if isinstance(v, np.ndarray):
            with pytest.raises(ValueError):
                v[0] = 9.0


def test_registry_and_errors():
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adam", "rmsprop"}
    assert all(o.description for o in OPTIMIZERS.values())
    with pytest.raises(UsageError, match="sgd, momentum, adam, rmsprop"):
        get_optimizer("lbfgs")
    assert get_optimizer("adam", beta1=0.8).beta1 == 0.8
    with pytest.raises(UsageError, match="beta1"):
        get_optimizer("adam", momentum=0.5)
    with pytest.raises(UsageError):
        get_optimizer("momentum", beta=1.0)
    with pytest.raises(UsageError, match="learning rate"):
        optim.sgd.update([1.0], optim.sgd.init([0.0]), -0.1)
    with pytest.raises(UsageError, match="gradient has 3"):
        optim.adam.update(np.zeros(3), optim.adam.init(np.zeros(2)), 0.1)


# ----------------------------------------------------------------- schedules
def test_schedules():
    assert lr_at("constant", 0.1, 57, 100) == 0.1
    assert lr_at("cosine", 0.1, 0, 100) == pytest.approx(0.1)
    assert lr_at("cosine", 0.1, 50, 100) == pytest.approx(0.05)
    assert lr_at("cosine", 0.1, 100, 100) == pytest.approx(0.0, abs=1e-15)
    assert 0 < lr_at("cosine", 0.1, 99, 100) < 1e-4
    fl = make_schedule("cosine", floor=0.01)
    assert lr_at(fl, 0.1, 50, 100) == pytest.approx(0.055)
    assert lr_at(fl, 0.1, 500, 100) == pytest.approx(0.01)
    ex = make_schedule("exponential", gamma=0.5)
    assert [lr_at(ex, 1.0, i, 10) for i in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert lr_at("exponential", 1.0, 1000, 10) == pytest.approx(0.999 ** 1000)
    assert set(SCHEDULES) == {"constant", "cosine", "exponential", "plateau", "adaptive"}


@pytest.mark.parametrize("call,match", [
    (lambda: lr_at("linear", 0.1, 0, 10), "constant, cosine, exponential"),
    (lambda: make_schedule("exponential", gamma=1.5), "gamma"),
    (lambda: make_schedule("exponential", gamma=0.0), "gamma"),
    (lambda: make_schedule("cosine", floor=-1), "floor"),
    (lambda: lr_at(make_schedule("cosine", floor=1.0), 0.1, 0, 10), "floor"),
    (lambda: lr_at("cosine", 0.0, 0, 10), "learning rate"),
    (lambda: lr_at("cosine", 0.1, -1, 10), "iteration"),
    (lambda: lr_at("cosine", 0.1, 0, 0), "iterations"),
])
def test_schedule_errors(call, match):
    with pytest.raises(UsageError, match=match):
        call()


# ------------------------------------------------------------------ clipping
def test_clip_by_norm():
    g = np.array([3.0, 4.0])
    c = clip_by_norm(g, 1.0)
    assert np.allclose(c, [0.6, 0.8]) and global_norm(c) == pytest.approx(1.0)
    assert g.tolist() == [3.0, 4.0]                      # not changed in place
    assert clip_by_norm(g, 5.0).tolist() == [3.0, 4.0]   # at the limit: unchanged
    assert clip_by_norm(g, math.inf).tolist() == [3.0, 4.0]
    bad = np.array([np.nan, 1.0])
    out = clip_by_norm(bad, 1.0)                         # returned as is, no error
    assert np.isnan(out[0]) and out[1] == 1.0 and not finite(out)
    assert not finite([np.inf]) and finite(c)
    with pytest.raises(UsageError, match="clipping norm"):
        clip_by_norm(g, 0.0)


# ---------------------------------------------------- normalized coordinates
def test_linear_and_log_mapping():
    assert to_unit(5.0, 0.0, 10.0, False) == 0.5
    assert from_unit(0.5, 0.0, 10.0, False) == 5.0
    assert to_unit(1000.0, 10.0, 100000.0, True) == pytest.approx(0.5)
    assert from_unit(0.25, 10.0, 100000.0, True) == pytest.approx(100.0)
    assert to_unit(-3.0, -1.0, 1.0, True) == 0.0          # log with lo <= 0: linear, clamped
    assert to_unit(0.0, -1.0, 1.0, True) == 0.5
    assert to_unit(20.0, 0.0, 10.0) == 1.0 and from_unit(-1.0, 0.0, 10.0) == 0.0
    assert project(11.0, 0.0, 10.0) == 10.0
    assert project(np.array([-1.0, 3.0]), 0.0, 10.0).tolist() == [0.0, 3.0]
    assert np.allclose(to_unit(np.array([10.0, 100.0]), 10.0, 1000.0, True), [0.0, 0.5])
    assert to_unit(3.0, 3.0, 3.0) == 0.0 and from_unit(0.7, 3.0, 3.0) == 3.0
    with pytest.raises(UsageError, match="min <= max"):
        to_unit(1.0, 2.0, 1.0)


@pytest.mark.parametrize("lo,hi,log", [(20.0, 20000.0, True), (-1.0, 3.0, False), (0.0, 1.0, True)])
def test_derivative_vs_finite_differences(lo, hi, log):
    h = 1e-6
    for u in np.linspace(0.05, 0.95, 7):
        fd = (from_unit(u + h, lo, hi, log) - from_unit(u - h, lo, hi, log)) / (2 * h)
        assert dvalue_du(u, lo, hi, log) == pytest.approx(fd, rel=1e-6)


def _param(meta, lo=20.0, hi=20000.0):
    return Param("/x/f", "f", "hslider", 440.0, lo, hi, 1.0, dict(meta), True)


def test_is_log():
    assert is_log(_param({"unit": "Hz"}))
    assert is_log(_param({"scale": "log"}))
    assert is_log(_param({"unit": "hz", "diff": "1"}))
    assert not is_log(_param({"unit": "dB"}))
    assert not is_log(_param({}))
    assert not is_log(_param({"scale": "log"}, lo=0.0))     # log needs min > 0
    assert is_log(_param([("scale", "log")]))               # pairs work too
    assert param_bounds(_param({"unit": "Hz"})) == (20.0, 20000.0, True)


if given is not None:
    ranges = st.tuples(st.floats(1e-3, 1e3), st.floats(1.001, 1e4)).map(lambda t: (t[0], t[0] * t[1]))

    @settings(max_examples=150, deadline=None)
    @given(ranges, st.floats(0.0, 1.0), st.booleans())
    def test_unit_round_trip(r, u, log):
        lo, hi = r
        v = from_unit(u, lo, hi, log)
        assert lo <= v <= hi
        assert to_unit(v, lo, hi, log) == pytest.approx(u, abs=1e-9)
        assert from_unit(to_unit(v, lo, hi, log), lo, hi, log) == pytest.approx(v, rel=1e-9)

    @settings(max_examples=100, deadline=None)
    @given(st.floats(-1e3, 1e3), st.floats(0.0, 1e3), st.floats(-1e4, 1e4))
    def test_linear_round_trip_any_sign(lo, width, v):
        hi = lo + width
        u = to_unit(v, lo, hi, True)                     # lo may be <= 0: linear fallback
        assert 0.0 <= u <= 1.0
        assert from_unit(u, lo, hi, True) == pytest.approx(project(v, lo, hi), abs=1e-9 * (1 + abs(hi)))


# ----------------------------------------------------------------- plateau
def test_plateau_halves_after_patience_without_a_new_best():
    from diffaust.train.optim import plateau_init, plateau_update

    sched = make_schedule("plateau", patience=3, factor=0.5, min_ratio=0.1, warmup=1.0)
    s = plateau_init(1.0, sched)
    for loss in (5.0, 4.0, 3.0):  # new bests: no cut
        s = plateau_update(s, loss, sched)
    assert s.lr == 1.0 and s.best == 3.0
    for _ in range(3):  # 3 iterations without a new best: still the rate
        s = plateau_update(s, 3.5, sched)
    assert s.lr == 1.0
    s = plateau_update(s, 3.5, sched)  # the 4th: halved, the count restarts
    assert s.lr == 0.5 and s.bad == 0
    for _ in range(40):  # never below base_lr·min_ratio
        s = plateau_update(s, 9.0, sched)
    assert s.lr == pytest.approx(0.1)
    with pytest.raises(UsageError, match="plateau"):
        lr_at("plateau", 0.1, 0, 10)
    # warm-up: 1 % of the rate, ×growth after each loss below the previous one, up to 1
    sched = make_schedule("plateau", warmup=0.01, growth=10.0)
    s = plateau_init(0.5, sched)
    assert s.lr == pytest.approx(0.005)
    s = plateau_update(s, 1.0, sched)
    assert s.lr == pytest.approx(0.05)
    s = plateau_update(s, 2.0, sched)  # higher: no growth
    assert s.lr == pytest.approx(0.05)
    s = plateau_update(s, 0.5, sched)
    s = plateau_update(s, 0.4, sched)
    assert s.lr == pytest.approx(0.5)
    with pytest.raises(UsageError, match="factor"):
        make_schedule("plateau", factor=1.0)


def test_unit_box_is_the_scalar_functions_vectorized():
    from diffaust.train.optim import UnitBox

    bounds = [(50.0, 10000.0, True), (-1.0, 3.0, False), (0.0, 5.0, True), (2.0, 2.0, False)]
    box = UnitBox(bounds)
    for u in (np.zeros(4), np.full(4, 0.37), np.ones(4), np.array([-0.5, 1.5, 0.2, 0.9])):
        assert box.values(u) == pytest.approx([from_unit(ui, *b) for ui, b in zip(u, bounds)], rel=1e-14)
        assert box.dvalue_du(u) == pytest.approx([dvalue_du(ui, *b) for ui, b in zip(u, bounds)], rel=1e-14)
