"""Derivative checks shared by the tests: forward mode against central finite differences.

``check_derivatives(source, n=..., x=..., faust=...)`` compiles a program with ``[diff:1]``
parameters in double, renders its derivative channels, and compares each with the central
finite difference ``(y(p + h) - y(p - h)) / 2h`` of the program's outputs computed

* by diffaust itself (always), and
* by the real Faust compiler (``faust=True``; the caller skips when it is missing).

The error is measured relative to the peak of the finite difference over the whole
signal: ``max_n |ad[n] - fd[n]| / max_n |fd[n]|`` (absolute when the peak is tiny).
Samples where the program is not differentiable (a comparison, ``floor`` or a select
that flips between p - h and p + h) are recognised by a second finite difference with a
step 10 times smaller: at a smooth sample the two agree to O(h²), at a jump they differ
by a factor ~10.  Only samples before the first such jump are compared (after a jump
inside a recursion the perturbed runs follow different paths for good).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import diffaust


@dataclass
class Check:
    label: str
    source: str        # "diffaust" or "faust"
    error: float       # max |ad - fd| / max(peak, floor)
    peak: float        # max |fd|
    worst: tuple       # (output, sample) of the largest error
    compared: int      # samples compared (before the first discontinuity)

    def __str__(self):
        return (f"d/d{self.label} vs {self.source} FD: error {self.error:.3g} of peak {self.peak:.3g} "
                f"at output {self.worst[0]}, sample {self.worst[1]} ({self.compared} samples compared)")


def _renderer(source: str, kind: str, x, n: int):
    if kind == "diffaust":
        plain = diffaust.compile(source, double=True)
        return lambda params: plain.render(x, n=n, params=params)
    from diffaust.reference import render_reference

    return lambda params: render_reference(source, n=n, x=x, params=params, double=True)


def smooth_prefix(fd: np.ndarray, fd_fine: np.ndarray, rtol: float = 1e-3) -> int:
    """Number of leading samples where the two finite differences agree (no jump yet)."""
    scale = 1e-9 + np.maximum(np.abs(fd), np.abs(fd_fine))
    bad = np.abs(fd - fd_fine) > rtol * scale + 1e-7 * max(1.0, float(np.max(np.abs(fd), initial=0)))
    bad_any = np.any(bad, axis=0)
    idx = np.flatnonzero(bad_any)
    return int(idx[0]) if idx.size else fd.shape[-1]


def check_derivatives(source: str, *, n: int = 10000, x=None, faust: bool = False, rel_step: float = 1e-4,
                      sources=None, params=None) -> list:
    """One `Check` per (diff parameter, finite-difference source).  `x`: (inputs, n) or None
    (a deterministic noise in [-0.9, 0.9]).  `params`: base values by label (default: init)."""
    d = diffaust.compile(source, diff=True, double=True)
    if x is None and d.inputs:
        x = np.random.default_rng(7).uniform(-0.9, 0.9, (d.inputs, n))
    base = dict(params or {})
    y, dy = d.render_jvp(x, n=n, params=base or None)
    kinds = sources or (["diffaust", "faust"] if faust else ["diffaust"])
    out = []
    for kind in kinds:
        run = _renderer(source, kind, x, n)
        for k, p in enumerate(d.diff_params):
            v = base.get(p.label, p.init)
            h = rel_step * max(1.0, abs(v))

            def at(value):
                return run({**{q: w for q, w in base.items()}, p.label: value})

            hi, lo = at(v + h), at(v - h)
            fd = (hi - lo) / (2 * h)
            fine = (at(v + h / 10) - at(v - h / 10)) / (2 * h / 10)
            m = smooth_prefix(fd, fine)
            ad = dy[:, k]
            peak = float(np.max(np.abs(fd[:, :m]), initial=0.0))
            err = np.abs(ad[:, :m] - fd[:, :m])
            if err.size:
                o, i = np.unravel_index(int(np.argmax(err)), err.shape)
                e = float(err[o, i]) / max(peak, 1e-6)
            else:
                o, i, e = 0, 0, 0.0
            out.append(Check(p.label, kind, e, peak, (int(o), int(i)), m))
    return out
