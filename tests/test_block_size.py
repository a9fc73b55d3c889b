"""Issue 13, point 3: the block size (samples per compute() call, Faust's `count`).

Faust's architectures call compute(count, ...) once per block; `fvariable(int count)`
reads that block length, and controls are read once per block.  diffaust renders in
blocks of `Dsp.block_size` (default 256, as Faust's reference harness here does); a
program that does not read `count` computes the same whatever the block size, so it is
run as one compute() call (docs/SEMANTICS.md, "Block size").

The reference comparisons use `reference.render_reference(..., block_size=B)` (the
real faust 2.54.9 and g++), |err| <= 1e-9·(1+|ref|) in double.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import faustref

TOL = 1e-9

COUNT = "process = fvariable(int count, <math.h>);"
# count through the libraries (math.lib's BS), in arithmetic with state and an input
COUNT_MIX = """
import("stdfaust.lib");
bs = fvariable(int count, <math.h>);
process = _ <: (_ : + ~ *(0.5)) * bs, (_ + bs : @(3)), ma.BS / 256.0 + ba.time * 0.001;
"""
PLAIN = 'import("stdfaust.lib"); process = _ * hslider("g", 0.5, 0, 1, 0.01) : fi.lowpass(2, 1000) : + ~ *(0.3);'


def _dsp(src, **kw):
    import diffaust

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return diffaust.compile(src, double=kw.pop("double", True), **kw)


def _close(got, ref):
    assert got.shape == ref.shape
    err = np.abs(got - ref)
    assert np.all(err <= TOL * (1 + np.abs(ref))), float(err.max())


# ------------------------------------------------------------------ without faust
def test_count_is_the_block_length_with_a_shorter_last_block():
    d = _dsp(COUNT)
    assert d.block_dependent and d.block_size == 256
    y = d.render(n=600)[0]
    np.testing.assert_array_equal(y, np.r_[np.full(512, 256.0), np.full(88, 88.0)])
    np.testing.assert_array_equal(d.render(n=600, block_size=100)[0], np.full(600, 100.0))
    np.testing.assert_array_equal(d.render(n=600, block_size=4096)[0], np.full(600, 600.0))
    # Instance.compute: blocks of the Dsp's size unless told; block_size=n is one call
    np.testing.assert_array_equal(d.instance().compute(n=10, block_size=3)[0], [3] * 9 + [1])
    np.testing.assert_array_equal(d.instance().compute(n=300, block_size=300)[0], np.full(300, 300.0))
    d.block_size = 64
    np.testing.assert_array_equal(d.render(n=100)[0], np.r_[np.full(64, 64.0), np.full(36, 36.0)])
    assert _dsp(COUNT, block_size=32).render(n=40)[0][0] == 32


def test_programs_without_count_are_block_independent():
    d = _dsp(PLAIN)
    assert not d.block_dependent
    x = np.random.default_rng(1).uniform(-1, 1, (1, 1000))
    y = d.render(x)
    for bs in (1, 7, 256, 5000):
        np.testing.assert_array_equal(d.render(x, block_size=bs), y)
    assert not _dsp("process = fvariable(int count, <math.h>) * 0;").block_dependent


def test_block_size_is_checked():
    from diffaust.errors import UsageError

    d = _dsp(COUNT)
    for bad in (0, -1, 2.5, True, "256"):
        with pytest.raises(UsageError, match="block_size"):
            d.render(n=10, block_size=bad)
    with pytest.raises(UsageError, match="block_size"):
        d.block_size = 0


def test_forward_mode_follows_the_blocks():
    src = 'process = _ * hslider("g [diff:1]", 1, 0, 2, 0.1) * fvariable(int count, <math.h>);'
    d = _dsp(src, diff=True)
    x = np.ones((1, 600))
    y, dy = d.render_jvp(x, block_size=100)
    np.testing.assert_array_equal(y[0], np.full(600, 100.0))
    np.testing.assert_array_equal(dy[0, 0], np.full(600, 100.0))
    y, dy = d.render_jvp(x, reuse=True)
    np.testing.assert_array_equal(dy[0, 0], np.r_[np.full(512, 256.0), np.full(88, 88.0)])


def test_reverse_mode_tapes_the_block_counts_or_refuses():
    from diffaust.errors import UsageError

    src = 'process = _ * hslider("g [diff:1]", 1, 0, 2, 0.1) * fvariable(int count, <math.h>);'
    d = _dsp(src)
    x, yb = np.ones((1, 600)), np.ones((1, 600))
    for bs in (100, 256, 600, 1000):
        counts = d.render(x, block_size=bs)[0]
        g = d.vjp(x, yb, block_size=bs)
        np.testing.assert_array_equal(g.output[0], counts)
        assert g.params["g"] == pytest.approx(float(np.sum(counts)))
        np.testing.assert_array_equal(g.input[0], counts)
    rev = d.reverse()
    run = rev.forward(x, 600, {}, block_size=100)
    assert rev.backward(run, yb).params["g"] == pytest.approx(60000.0)
    # an adjoint program that read `count` itself (it runs backward in time) is refused
    # beyond one block, never a wrong gradient (fvariable is taped: no program does today)
    rev.adjoint_dsp.block_dependent = True
    try:
        with pytest.raises(UsageError, match="count"):
            d.vjp(x, yb, block_size=100)
        d.vjp(x, yb, block_size=600)  # one block: fine
    finally:
        rev.adjoint_dsp.block_dependent = False


def test_reverse_mode_checkpoints_on_block_boundaries():
    """A signal longer than the tape memory is replayed in segments: they start on block
    boundaries, so the gradient is the blocked render's (checked by finite differences)."""
    src = ('process = _ <: (_ * hslider("g [diff:1]", 0.5, 0, 2, 0.1) * (fvariable(int count, <math.h>) * 0.01)'
           ' : + ~ *(hslider("r [diff:1]", 0.5, 0, 0.9, 0.01))), _@7 : *;')
    d = _dsp(src)
    rng = np.random.default_rng(0)
    n = 3000
    x, yb = rng.uniform(-1, 1, (1, n)), rng.uniform(-1, 1, (1, n))
    for bs in (100, 256):
        whole = d.vjp(x, yb, block_size=bs)
        seg = d.vjp(x, yb, block_size=bs, memory=10)  # segments of ~1024 samples
        np.testing.assert_allclose(seg.output, d.render(x, block_size=bs), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(seg.input, whole.input, rtol=1e-10, atol=1e-12)
        for k in ("g", "r"):
            assert seg.params[k] == pytest.approx(whole.params[k], rel=1e-10)
            h = 1e-6
            f = [float(np.sum(yb * d.render(x, params={k: 0.5 + s}, block_size=bs))) for s in (h, -h)]
            assert seg.params[k] == pytest.approx((f[0] - f[1]) / (2 * h), rel=1e-6)


def test_a_per_sample_parameter_keeps_the_blocks():
    d = _dsp('process = hslider("g", 1, 0, 2, 0.1) * fvariable(int count, <math.h>);')
    y = d.render(n=300, params={"g": np.full(300, 2.0)}, block_size=100)
    np.testing.assert_array_equal(y[0], np.full(300, 200.0))


def test_cli_render_block_size(tmp_path):
    f = tmp_path / "count.dsp"
    f.write_text(COUNT)
    out = tmp_path / "y.npy"
    r = subprocess.run([sys.executable, "-m", "diffaust", "render", str(f), "-n", "300", "--block-size", "128",
                        "-double", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out)[0], np.r_[np.full(256, 128.0), np.full(44, 44.0)])
    for bad in ("0", "-3", "x"):
        r = subprocess.run([sys.executable, "-m", "diffaust", "render", str(f), "--block-size", bad],
                           capture_output=True, text=True)
        assert r.returncode != 0
        assert len(r.stderr.strip().splitlines()) == 1 and "--block-size" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ against faust
@pytest.mark.reference
@pytest.mark.parametrize("bs,n", [(256, 1000), (64, 1000), (100, 1000), (256, 256), (1000, 600)])
def test_count_matches_faust(faust_ref, bs, n):
    ref = faustref.render_reference(COUNT, n=n, double=True, block_size=bs)
    _close(_dsp(COUNT).render(n=n, block_size=bs), ref)


@pytest.mark.reference
@pytest.mark.parametrize("bs", [256, 64, 100])
def test_count_in_arithmetic_matches_faust(faust_ref, bs):
    n = 1000  # not a multiple of any bs here: a shorter last block
    x = faustref.noise_input(1, n)
    ref = faustref.render_reference(COUNT_MIX, n=n, x=x, double=True, block_size=bs)
    d = _dsp(COUNT_MIX)
    assert d.block_dependent
    _close(d.render(x, block_size=bs), ref)
    d.block_size = bs  # the attribute is what render uses by default
    _close(d.render(x), ref)


@pytest.mark.reference
def test_block_independent_program_matches_faust_at_any_block_size(faust_ref):
    x = faustref.noise_input(1, 1000)
    d = _dsp(PLAIN)
    for bs in (256, 64, 100):
        _close(d.render(x, block_size=bs), faustref.render_reference(PLAIN, n=1000, x=x, double=True, block_size=bs))


# ------------------------------------------------------------------ reference automation
@pytest.mark.reference
def test_reference_params_change_at_block_offsets(faust_ref):
    src = 'process = checkbox("on") + button("b") * 10 + hslider("s", 0.5, 0, 1, 0.01) * 100;'
    ref = faustref.render_reference(src, n=600, double=True, block_size=128,
                                    params={"on": [(0, 0.0), (256, 1.0)], "b": [(384, 1.0), (512, 0.0)], "s": 0.25})
    want = np.full(600, 25.0)
    want[256:] += 1
    want[384:512] += 10
    np.testing.assert_array_equal(ref[0], want)
    # the same schedule as a per-sample parameter on diffaust's side
    d = _dsp(src)
    got = d.render(n=600, params={"on": faustref.schedule_array([(0, 0.0), (256, 1.0)], 600, 0.0),
                                  "b": faustref.schedule_array([(384, 1.0), (512, 0.0)], 600, 0.0), "s": 0.25})
    np.testing.assert_array_equal(got[0], want)
    with pytest.raises(ValueError, match="multiple of the block size"):
        faustref.render_reference(src, n=600, block_size=128, params={"on": [(100, 1.0)]})
    with pytest.raises(ValueError, match="block_size"):
        faustref.render_reference(src, n=600, block_size=0)


@pytest.mark.reference
@pytest.mark.parametrize("bs", [256, 64, 100])
def test_library_block_smoother_matches_faust(faust_ref, bs):
    """signals.lib's si.bsmooth interpolates over ma.BS samples: a real library use of count."""
    src = 'import("stdfaust.lib"); process = _ : si.bsmooth;'
    x = faustref.noise_input(1, 1000)
    ref = faustref.render_reference(src, n=1000, x=x, double=True, block_size=bs)
    d = _dsp(src)
    assert d.block_dependent
    _close(d.render(x, block_size=bs), ref)
