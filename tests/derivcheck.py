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

``mask="pointwise"`` compares every sample where the two finite differences agree, not
only the ones before the first jump: for programs that are piecewise smooth in p and come
back to the same path after a jump (a phasor's wrap, an envelope's corner, a compressor's
threshold), where the comparison of the two steps is the validity test of each sample.
``mask="kinks"`` also leaves out the samples where the output has a corner in p within
the step (a branch of a ``min``/``max``/``abs``/select, or a linearly interpolated table or
delay, that changes between p - h and p + h, in a recursion too): there the central
difference is off by |y(p+h) - 2 y(p) + y(p-h)| / 2h (exactly, for one corner), so a sample
is compared only where that bound is below `kink_tol` times the peak.  On a smooth sample
the bound is h |y''| / 2: the step must be small enough for it to stay below.
``Check.compared`` says how many samples were compared either way.
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
    compared: int      # samples compared (see `mask`)
    ad_peak: float = float("nan")  # max |ad| over the compared samples

    def __str__(self):
        return (f"d/d{self.label} vs {self.source} FD: error {self.error:.3g} of peak {self.peak:.3g} "
                f"at output {self.worst[0]}, sample {self.worst[1]} ({self.compared} samples compared)")


def _renderer(source: str, kind: str, x, n: int):
    if kind == "diffaust":
        plain = diffaust.compile(source, double=True)
        return lambda params: plain.render(x, n=n, params=params)
    from diffaust.reference import render_reference

    return lambda params: render_reference(source, n=n, x=x, params=params, double=True)


def smooth_samples(fd: np.ndarray, fd_fine: np.ndarray, rtol: float = 1e-3, atol: float = 1e-7) -> np.ndarray:
    """Boolean (samples,): True where the two finite differences agree on every output
    (within `rtol` of the larger, plus `atol` times the peak of `fd` or 1)."""
    scale = 1e-9 + np.maximum(np.abs(fd), np.abs(fd_fine))
    bad = np.abs(fd - fd_fine) > rtol * scale + atol * max(1.0, float(np.max(np.abs(fd), initial=0)))
    return ~np.any(bad, axis=0)


def smooth_prefix(fd: np.ndarray, fd_fine: np.ndarray, rtol: float = 1e-3, atol: float = 1e-7) -> int:
    """Number of leading samples where the two finite differences agree (no jump yet)."""
    idx = np.flatnonzero(~smooth_samples(fd, fd_fine, rtol, atol))
    return int(idx[0]) if idx.size else fd.shape[-1]


def check_derivatives(source: str, *, n: int = 10000, x=None, faust: bool = False, rel_step=1e-4,
                      sources=None, params=None, mask: str = "prefix", kink_tol: float = 1e-6,
                      jump_atol: float = 1e-7) -> list:
    """One `Check` per (diff parameter, finite-difference source).  `x`: (inputs, n) or None
    (a deterministic noise in [-0.9, 0.9]).  `params`: base values by label (default: init).
    `rel_step`: the step is rel_step * max(1, |p|); a dict gives one per label (default 1e-4).
    `mask`: "prefix" (samples before the first jump), "pointwise" (every sample without a
    jump) or "kinks" (every sample without a jump or a corner within the step).
    `jump_atol`: the absolute part of the jump test, times the peak (the rounding of the
    h/10 difference must stay below it where the derivative crosses zero; a jump it misses
    moves the h difference by less than about that much)."""
    if mask not in ("prefix", "pointwise", "kinks"):
        raise ValueError(f"mask must be 'prefix', 'pointwise' or 'kinks', not {mask!r}")
    d = diffaust.compile(source, diff=True, double=True)
    if x is None and d.inputs:
        x = np.random.default_rng(7).uniform(-0.9, 0.9, (d.inputs, n))
    base = dict(params or {})
    y, dy = d.render_jvp(x, n=n, params=base or None)
    kinds = sources or (["diffaust", "faust"] if faust else ["diffaust"])
    out = []
    for kind in kinds:
        run = _renderer(source, kind, x, n)
        mid = run(dict(base)) if mask == "kinks" else None
        for k, p in enumerate(d.diff_params):
            v = base.get(p.label, p.init)
            r = rel_step.get(p.label, 1e-4) if isinstance(rel_step, dict) else rel_step
            h = r * max(1.0, abs(v))

            def at(value):
                return run({**{q: w for q, w in base.items()}, p.label: value})

            hi, lo = at(v + h), at(v - h)
            fd = (hi - lo) / (2 * h)
            fine = (at(v + h / 10) - at(v - h / 10)) / (2 * h / 10)
            if mask == "prefix":
                keep = np.zeros(fd.shape[-1], dtype=bool)
                keep[:smooth_prefix(fd, fine, atol=jump_atol)] = True
            else:
                keep = smooth_samples(fd, fine, atol=jump_atol)
            if mask == "kinks":
                bound = np.max(np.abs(hi - 2 * mid + lo), axis=0) / (2 * h)
                keep &= bound <= kink_tol * float(np.max(np.abs(fd[:, keep]), initial=0.0))
            cols = np.flatnonzero(keep)
            ad = dy[:, k]
            peak = float(np.max(np.abs(fd[:, cols]), initial=0.0))
            err = np.abs(ad[:, cols] - fd[:, cols])
            if err.size:
                o, j = np.unravel_index(int(np.argmax(err)), err.shape)
                i = cols[j]
                e = float(err[o, j]) / max(peak, 1e-6)
            else:
                o, i, e = 0, 0, 0.0
            ad_peak = float(np.max(np.abs(ad[:, cols]), initial=0.0))
            out.append(Check(p.label, kind, e, peak, (int(o), int(i)), int(cols.size), ad_peak))
    return out
