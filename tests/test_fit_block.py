"""Block-mode fitting (diffaust.train.block, diffaust.fit): gradients, recovery, bounds, errors."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import diffaust
from diffaust.errors import UsageError
from diffaust.train import fit as fit_sample
from diffaust.train.block import FitResult, fit_block, loss_and_grad
from diffaust.train.losses import parse_loss

ONE_POLE = 'process = _ : *(1-a) : + ~ *(a) with { a = hslider("a [diff:1]", 0.3, 0, 0.99, 0.001); };'
ONE_POLE_GT = "process = _ : *(1-a) : + ~ *(a) with { a = 0.7; };"
LP_GAIN = ('import("stdfaust.lib"); process = fi.lowpass(1, hslider("fc [diff:1][unit:Hz]", 500, 50, 10000, 1))'
           ' * hslider("gain [diff:1]", 0.5, 0, 1, .01);')
LP_GAIN_GT = 'import("stdfaust.lib"); process = fi.lowpass(1, 2000) * 0.8;'
GAIN = 'process = *(hslider("gain [diff:1]", 0.3, 0, 1, .01));'


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(1).standard_normal((1, 2048))


@pytest.fixture(scope="module")
def one_pole():
    return diffaust.compile(ONE_POLE, diff=True, double=True)


@pytest.fixture(scope="module")
def one_pole_target(noise):
    return diffaust.compile(ONE_POLE_GT, double=True).render(noise)


# ------------------------------------------------------------------ (1) gradient
@pytest.mark.parametrize("loss", ["mse", "mrstft", "mse+0.5*mrstft"])
def test_block_gradient_matches_central_differences(one_pole, one_pole_target, noise, loss):
    lossf = parse_loss(loss)
    L, g = loss_and_grad(one_pole, lossf, one_pole_target, noise, noise.shape[1], {"a": 0.4})
    h = 1e-5
    lp, _ = loss_and_grad(one_pole, lossf, one_pole_target, noise, noise.shape[1], {"a": 0.4 + h})
    lm, _ = loss_and_grad(one_pole, lossf, one_pole_target, noise, noise.shape[1], {"a": 0.4 - h})
    fd = (lp - lm) / (2 * h)
    assert g.shape == (1,)
    assert abs(g[0] - fd) <= 1e-5 * abs(fd), (g[0], fd)


# ------------------------------------------------------------------ (2)-(5) fits
def test_fit_one_pole_from_ground_truth(one_pole, one_pole_target, noise):
    res = fit_block(one_pole, one_pole_target, noise, loss="mse", iterations=300)
    assert isinstance(res, FitResult)
    assert abs(res.params["a"] - 0.7) < 1e-3
    assert res.trajectories["a"][0] == pytest.approx(0.3)
    assert res.iterations == len(res.losses) == len(res.trajectories["a"]) == 300
    assert res.loss == min(res.losses)
    assert res.stop_reason == "iterations"


def test_fit_gain_and_log_cutoff(noise):
    dsp = diffaust.compile(LP_GAIN, diff=True, double=True)
    target = diffaust.compile(LP_GAIN_GT, double=True).render(noise)
    res = fit_block(dsp, target, noise, loss="mse", iterations=400)
    assert res.params["fc"] == pytest.approx(2000, rel=1e-6)
    assert res.params["gain"] == pytest.approx(0.8, rel=1e-6)
    # a log slider: the first adam step (~lr in u) is a constant ratio of the value; the
    # adaptive schedule (default) starts at 1 % of the rate
    fc = res.trajectories["fc"]
    assert fc[1] / fc[0] == pytest.approx((10000 / 50) ** (0.05 * 0.01), rel=1e-3)
    res = fit_block(dsp, target, noise, loss="mse", iterations=3, schedule="constant")
    fc = res.trajectories["fc"]
    assert fc[1] / fc[0] == pytest.approx((10000 / 50) ** 0.05, rel=1e-3)


def test_adaptive_schedule_undoes_a_step_that_raises_the_loss(noise):
    dsp = diffaust.compile(LP_GAIN, diff=True, double=True)
    target = diffaust.compile(LP_GAIN_GT, double=True).render(noise)
    res = fit_block(dsp, target, noise, loss="mse", iterations=300, lr=0.5)  # a rate far too large
    L = res.losses
    rejected = [i for i in range(1, len(L)) if L[i] > max(L[max(0, i - 10):i])]
    assert rejected  # some steps overshoot ...
    for i in rejected:  # ... and the next one starts again from an accepted point, closer
        if i + 1 < len(L):
            assert res.trajectories["fc"][i + 1] != res.trajectories["fc"][i]
    assert res.params["fc"] == pytest.approx(2000, rel=1e-4)


def test_fit_gain_with_mrstft(noise):
    dsp = diffaust.compile(GAIN, diff=True, double=True)
    target = 0.8 * noise
    res = fit_block(dsp, target, noise, loss="mrstft", iterations=60)
    assert res.params["gain"] == pytest.approx(0.8, rel=0.03)


def test_values_stay_within_bounds(noise):
    dsp = diffaust.compile(LP_GAIN, diff=True, double=True)
    # unreachable target: gain would have to be 3 (slider max 1), cutoff far above 10 kHz
    res = fit_block(dsp, 3.0 * noise, noise, iterations=80)
    gains, fcs = np.array(res.trajectories["gain"]), np.array(res.trajectories["fc"])
    assert gains.min() >= 0 and gains.max() <= 1 and fcs.min() >= 50 and fcs.max() <= 10000
    assert gains.max() == 1.0  # pinned at the top of its range


def test_stop_rules(one_pole, one_pole_target, noise):
    res = fit_block(one_pole, one_pole_target, noise, iterations=300, tolerance=1e-6)
    assert res.stop_reason == "tolerance" and res.losses[-1] <= 1e-6 and res.iterations < 300
    seen = []
    res = fit_block(one_pole, one_pole_target, noise, iterations=300,
                    callback=lambda i, L, p: seen.append((i, L, p)) or i == 5)
    assert res.stop_reason == "callback" and res.iterations == 5
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5] and set(seen[0][2]) == {"a"}
    # a target the program cannot reach exactly: the best loss stalls
    res = fit_block(one_pole, one_pole_target + 0.1, noise, iterations=2000, patience=10)
    assert res.stop_reason == "patience" and res.iterations < 2000


def test_fixed_params_and_initial_values(noise):
    src = ('process = *(hslider("gain [diff:1]", 0.3, 0, 1, .01)) : +(hslider("dc", 0, -1, 1, .01));')
    dsp = diffaust.compile(src, diff=True, double=True)
    res = fit_block(dsp, 0.5 * noise + 0.25, noise, iterations=200, params={"gain": 0.9, "dc": 0.25})
    assert res.trajectories["gain"][0] == 0.9
    assert res.params["gain"] == pytest.approx(0.5, abs=1e-3) and res.params["dc"] == 0.25


# ------------------------------------------------------------------ (6) errors
def test_divergence_stops(noise):
    dsp = diffaust.compile('process = /(hslider("a [diff:1]", 0.5, 0, 1, .01));', diff=True, double=True)
    res = fit_block(dsp, 1000 * noise, noise, optimizer="sgd", lr=1e3, iterations=50)
    assert res.stop_reason == "diverged"
    assert math.isfinite(res.loss) and res.params["a"] == 0.5  # the best (first) iteration


def test_bad_signals_are_usage_errors(one_pole, one_pole_target, noise):
    bad = one_pole_target.copy()
    bad[0, 7] = np.nan
    with pytest.raises(UsageError, match="target holds NaN"):
        fit_block(one_pole, bad, noise)
    with pytest.raises(UsageError, match="target holds NaN"):
        diffaust.fit(one_pole, bad, noise)
    badx = noise.copy()
    badx[0, 3] = np.inf
    with pytest.raises(UsageError, match="input holds NaN or Inf.*Inf at channel 0, sample 3"):
        diffaust.fit(one_pole, one_pole_target, badx)
    with pytest.raises(UsageError, match="channel"):
        diffaust.fit(one_pole, np.vstack([one_pole_target, one_pole_target]), noise)
    with pytest.raises(UsageError, match="lengths differ"):
        diffaust.fit(one_pole, one_pole_target[:, :1000], noise)
    with pytest.raises(UsageError, match=r"no \[diff:1\] parameter"):
        diffaust.fit("process = *(0.5);", one_pole_target, noise)
    with pytest.raises(UsageError, match="unknown mode"):
        diffaust.fit(one_pole, one_pole_target, noise, mode="batch")


# ------------------------------------------------------------------ (7) save
def test_save_writes_json_atomically(tmp_path, monkeypatch):
    res = FitResult(params={"a": 0.7}, loss=1e-9, losses=[1.0, 1e-9], trajectories={"a": [0.3, 0.7]},
                    iterations=2, stop_reason="iterations", seconds=0.01)
    path = tmp_path / "fit.json"
    path.write_text("old")
    res.save(path)
    data = json.loads(path.read_text())
    assert data == {"params": {"a": 0.7}, "loss": 1e-9, "iterations": 2, "stop_reason": "iterations",
                    "seconds": 0.01, "best_iteration": 0, "diverged_at": None, "ad": "forward"}
    assert os.listdir(tmp_path) == ["fit.json"]
    # a failed replace leaves the old file whole and no temporary behind
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(UsageError, match="cannot write"):
        FitResult(params={"a": 0.1}, loss=math.nan).save(path)
    assert json.loads(path.read_text()) == data and os.listdir(tmp_path) == ["fit.json"]


# ------------------------------------------------------------------ (8) diffaust.fit
def test_diffaust_fit_block_from_source_and_ground_truth_program(noise):
    res = diffaust.fit(ONE_POLE, ONE_POLE_GT, noise, iterations=300)
    assert isinstance(res, FitResult) and abs(res.params["a"] - 0.7) < 1e-3


def test_diffaust_fit_sample_mode_like_before(one_pole, one_pole_target, noise):
    before = fit_sample(one_pole, one_pole_target, noise, loss="l2", lr=0.05, iterations=1500)
    after = diffaust.fit(one_pole, one_pole_target, noise, mode="sample", lr=0.05, iterations=1500)
    assert after.loss == before.loss and after.values == before.values
    assert after.stop_reason == before.stop_reason
    with pytest.raises(UsageError, match="only optimizer='sgd'"):
        diffaust.fit(one_pole, one_pole_target, noise, mode="sample", optimizer="adam")


# ------------------------------------------------------------------ CLI: train --mode block
def _cli(capsys, *argv):
    from diffaust.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_block_mode(capsys, tmp_path):
    from diffaust.examples import EXAMPLES

    path = tmp_path / "fit.json"
    code, out, err = _cli(capsys, "train", "--example", "gain_dc", "--mode", "block", "--samples", "2048",
                          "--iterations", "400", "--json", path, "--every", "100", "--lr-schedule", "constant")
    assert code == 0, err
    assert "Mode: block (2048 samples per iteration)" in out and "Optimizer: adam" in out
    assert "double precision" in out
    assert "Learning rate: 0.05" in out and "Stopped: reached the maximum number of iterations." in out
    rows = [ln.split() for ln in out.splitlines() if ln[:5].strip().isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 21)) + [100, 200, 300, 400]
    data = json.loads(path.read_text())
    assert data["iterations"] == 400 and data["stop_reason"] == "iterations"
    for label, hidden in EXAMPLES["gain_dc"].hidden.items():
        assert abs(data["params"][label] - hidden) < 1e-3


def test_cli_train_block_mode_options(capsys):
    code, out, err = _cli(capsys, "train", "--example", "one_pole", "--mode", "block", "--samples", "2048",
                          "--optimizer", "rmsprop", "--loss", "mse+0.1*mae", "--tolerance", "1e-8", "-q")
    assert code == 0, err
    assert "Optimizer: rmsprop" in out and "Loss function: mse+0.1*mae" in out
    assert " Iter" not in out  # -q: no table
    learned = float(out.split("a = ")[1].split()[0])
    assert abs(learned - 0.7) < 1e-2


@pytest.mark.parametrize("argv, needle", [
    (("--mode", "block", "--sensitivity", "1e-3"), "--sensitivity is for --mode sample"),
    (("--mode", "block", "--loss", "l3"), "unknown loss 'l3'"),
    (("--mode", "block", "-lf", "mse+x"), "unknown loss 'x'"),
    (("--mode", "block", "--optimizer", "lbfgs"), "invalid choice"),
    (("--optimizer", "adam"), "needs --mode block"),
    (("--loss", "mse"), "l1 or l2"),
    (("--mode", "chunk"), "invalid choice"),
    (("--starts", "3"), "--starts is for --mode block or stream"),
    (("--mode", "block", "--window", "64"), "--window is for --mode stream"),
    (("--mode", "stream", "--pair", "a.wav:b.wav"), "--pair is for --mode block"),
    (("--mode", "block", "--lr-param", "gain=0.1", "--lr-param", "nope=0.1"), "unknown parameter 'nope'"),
    (("--mode", "block", "--lr-schedule", "linear"), "invalid choice"),
    (("--mode", "block", "--save", "x.json"), "use --json"),
    (("--mode", "block", "--json", "x.txt"), "ending in .json"),
])
def test_cli_train_mode_errors(capsys, argv, needle):
    code, out, err = _cli(capsys, "train", "--example", "gain", *argv)
    assert code != 0 and "Traceback" not in err
    assert needle in err and len(err.strip().splitlines()) == 1, err
