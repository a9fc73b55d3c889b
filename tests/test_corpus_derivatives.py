"""-diff on the corpus (tests/programs, every primitive of the language core, recursion
included) against central finite differences in float64: within 1e-6 relative."""

import os

import numpy as np
import pytest

import diffaust

HERE = os.path.join(os.path.dirname(__file__), "programs")
PROGRAMS = sorted(f for f in os.listdir(HERE) if f.endswith(".dsp")
                  and "diff:1" in open(os.path.join(HERE, f)).read().replace(" ", ""))


def _noise(channels, n, seed=7):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (channels, n))


@pytest.mark.parametrize("name", PROGRAMS)
def test_corpus_program_derivatives(name):
    path = os.path.join(HERE, name)
    d = diffaust.compile(path, diff=True, double=True)
    plain = diffaust.compile(path, double=True)
    n = 512
    x = _noise(d.inputs, n) if d.inputs else None
    y, dy = d.render_jvp(x, n=n)
    np.testing.assert_array_equal(y, plain.render(x, n=n))  # the primal outputs are the program's
    for k, p in enumerate(d.diff_params):
        h = 1e-6 * max(1.0, abs(p.init))
        hi = plain.render(x, n=n, params={p.path: p.init + h})
        lo = plain.render(x, n=n, params={p.path: p.init - h})
        fd = (hi - lo) / (2 * h)
        scale = 1 + np.abs(fd)
        # an output that jumps under a nudge of the parameter is a discontinuity, not a derivative
        smooth = np.abs(hi - lo) < 1e-3 * scale
        err = np.where(smooth, np.abs(dy[:, k] - fd) / scale, 0.0)
        assert np.max(err) < 1e-6, f"{name}: d/d{p.label} off by {np.max(err):.3g} (relative)"
        assert np.mean(smooth) > 0.95, f"{name}: d/d{p.label}: too many discontinuous samples"
