"""runtime/kernels.py: the native reductions of a training step equal NumPy's sums."""

from __future__ import annotations

import numpy as np
import pytest

from diffaust.runtime.kernels import pgrad, sqdiff


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 48000])
def test_sqdiff_and_pgrad_match_numpy(dtype, n):
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).astype(dtype)
    t = rng.standard_normal(n)
    g = np.full(n, np.nan)
    d = y.astype(np.float64) - t
    S = sqdiff(y, t, 0.5, g)
    assert S == pytest.approx(float(np.sum(d * d)), rel=1e-12, abs=0.0)
    assert np.array_equal(g, 0.5 * d)  # the same products, exactly
    for P in (0, 1, 3):
        dy = rng.standard_normal((P, n)).astype(dtype)
        want = dy.astype(np.float64) @ g if P else np.empty(0)
        assert pgrad(g, dy) == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_non_contiguous_arrays_take_numpy():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(200)[::2]
    t = rng.standard_normal(100)
    g = np.empty(100)
    assert sqdiff(y, t, 1.0, g) == pytest.approx(float(np.sum((y - t) ** 2)), rel=1e-12)
    dy = rng.standard_normal((6, 100))[::2]
    assert pgrad(g, dy) == pytest.approx(dy @ g, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 33, 1000, 48001])
def test_all_finite(dtype, n):
    """The native check of the batch layers' cotangents: NaN, +Inf and -Inf anywhere (the
    first, a middle and the last entry: the vector loop and its remainder) are found; the
    largest finite value, a subnormal and -0 are finite; non-contiguous arrays take NumPy."""
    from diffaust.runtime.kernels import all_finite

    a = np.random.default_rng(n).standard_normal(n).astype(dtype)
    assert all_finite(a) and all_finite(a.reshape(1, n, 1))
    for v in (np.nan, np.inf, -np.inf):
        for i in {0, n // 2, n - 1}:
            b = a.copy()
            b[i] = v
            assert not all_finite(b)
            assert all_finite(np.stack([b, b])[:, ::2]) == bool(np.isfinite(b[::2]).all())
    for v in (np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal, -0.0):
        b = a.copy()
        b[n - 1] = v
        assert all_finite(b)
    assert all_finite(np.zeros((0, 3), dtype=dtype))
