"""Finite-difference verification of derivative programs: the seed's ``autodiffVerifier``.

For each ``[diff:1]`` parameter p_k the program runs three ways on the same
input, each from a fresh state:

* unchanged:           y(p)
* p_k moved by epsilon: y(..., p_k + eps, ...)   (and p_k - eps with ``central``)
* differentiated:      y'(p) = dy/dp_k, from the derivative program

and, sample by sample, the autodiff value is compared with the finite
difference ``(y(p + eps) - y(p)) / eps`` (forward, the seed's) or
``(y(p + eps) - y(p - eps)) / (2 eps)`` (central, ``central=True``, error
O(eps^2) instead of O(eps)).  ``|delta|`` is their absolute difference and the
relative error is ``100 |delta| / |autodiff|`` (0 where autodiff is 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .errors import UsageError

DEFAULT_EPSILON = 1e-3
DEFAULT_SAMPLES = 100


@dataclass
class Verification:
    """Autodiff vs finite differences, one row per (output, parameter)."""

    names: list              # row names: the parameter label (with [output] when several outputs)
    autodiff: np.ndarray     # (rows, n)
    finite_diff: np.ndarray  # (rows, n)
    epsilon: float
    central: bool
    params: dict             # the base parameter values, by label

    @property
    def delta(self) -> np.ndarray:
        return np.abs(self.autodiff - self.finite_diff)

    @property
    def rel_error(self) -> np.ndarray:
        """100 |delta| / |autodiff| in percent; 0 where autodiff is 0 (the seed's rule)."""
        ad = self.autodiff
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(100.0 * self.delta / ad)
        return np.where(ad == 0, 0.0, r)

    def summary(self) -> dict:
        """name -> (mean |delta|, sample standard deviation of |delta|)."""
        d = self.delta
        out = {}
        for k, name in enumerate(self.names):
            row = d[k]
            std = float(np.std(row, ddof=1)) if row.size > 1 else 0.0
            out[name] = (float(np.mean(row)) if row.size else float("nan"), std)
        return out

    @property
    def max_delta(self) -> float:
        return float(np.max(self.delta)) if self.delta.size else 0.0


def verify(dsp, x=None, *, n: int = DEFAULT_SAMPLES, epsilon: float = DEFAULT_EPSILON,
           central: bool = False, params: Optional[dict] = None) -> Verification:
    """Compare the derivative channels of ``dsp`` with finite differences.

    dsp      a Dsp compiled with ``diff=True`` (``render_jvp`` gives outputs and derivatives)
    x        input signal (dsp.inputs, >= n); ignored for a program without inputs
    n        number of samples
    epsilon  the parameter perturbation
    central  central differences instead of the seed's forward differences
    params   base values (label or path -> value) instead of the sliders' init values
    """
    if not (epsilon > 0):
        raise UsageError(f"epsilon must be a positive number, got {epsilon}")
    if n <= 0:
        raise UsageError(f"the number of samples must be positive, got {n}")
    diff_params = list(dsp.diff_params)
    if not diff_params:
        raise UsageError("the program has no [diff:1] parameter to verify")
    base = _base_values(dsp, params)
    xin = None
    if dsp.inputs:
        xin = np.asarray(x, dtype=np.float64)[:, :n]
        if xin.shape != (dsp.inputs, n):
            raise UsageError(f"the input signal has shape {xin.shape}, need ({dsp.inputs}, {n})")
        if not dsp.double:
            xin = xin.astype(np.float32)

    y, dy = dsp.render_jvp(xin, n=n, params=dict(base))
    y, dy = np.asarray(y, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    P, K = y.shape[0], len(diff_params)
    names, ad, fd = [], [], []
    for k, p in enumerate(diff_params):
        up = dict(base)
        up[p.path] = _perturb(base[p.path], epsilon, dsp.double)
        y_up = np.asarray(dsp.render_jvp(xin, n=n, params=up)[0], dtype=np.float64)
        if central:
            dn = dict(base)
            dn[p.path] = _perturb(base[p.path], -epsilon, dsp.double)
            y_dn = np.asarray(dsp.render_jvp(xin, n=n, params=dn)[0], dtype=np.float64)
            fdk = (y_up - y_dn) / (2.0 * epsilon)
        else:
            fdk = (y_up - y) / epsilon
        for o in range(P):
            names.append(p.label if P == 1 else f"{p.label}[{o}]")
            ad.append(dy[o, k])
            fd.append(fdk[o])
    # rows in (output, parameter) order, like the derivative channels
    order = [k * P + o for o in range(P) for k in range(K)]
    return Verification([names[i] for i in order], np.array([ad[i] for i in order]).reshape(len(order), n),
                        np.array([fd[i] for i in order]).reshape(len(order), n), epsilon, central,
                        {p.label: base[p.path] for p in diff_params})


def _perturb(value: float, eps: float, double: bool) -> float:
    v = value + eps
    return v if double else float(np.float32(v))


def _base_values(dsp, params: Optional[dict]) -> dict:
    """path -> value for every parameter, from init values and ``params`` (label or path)."""
    base = {p.path: float(p.init) for p in dsp.params}
    by_label = {}
    for p in dsp.params:
        by_label.setdefault(p.label, p.path)
    for name, v in (params or {}).items():
        path = name if name in base else by_label.get(name)
        if path is None:
            raise UsageError(f"unknown parameter '{name}' (known: {', '.join(p.label for p in dsp.params)})")
        base[path] = float(v)
    return base


# ------------------------------------------------------------ console table
def print_table(v: Verification, write: Callable[[str], None] = print, every: int = 20) -> None:
    """The seed's table (header every 20 samples) and per-parameter summary."""
    n = v.autodiff.shape[1]
    delta, rel = v.delta, v.rel_error
    for i in range(n):
        if i % every == 0:
            write("-" * 80)
            write(f"{'Iter':>5}{'Param':>15}{'Autodiff':>15}{'Finite diff':>15}{'|delta|':>15}{'Rel. error':>15}")
            write("-" * 80)
        for k, name in enumerate(v.names):
            d = delta[k, i]
            dtext = f"{d:15.3e}" if d < 1e-3 else f"{d:15.3f}"
            lead = f"{i + 1:5d}{name:>15}" if k == 0 else f"{name:>20}"
            write(f"{lead}{v.autodiff[k, i]:15.10f}{v.finite_diff[k, i]:15.10f}{dtext}{rel[k, i]:13.3f} %")
    for name, (mean, std) in v.summary().items():
        fmt = "11.3e" if mean < 1e-3 else "11.3f"
        write("")
        write(f"Parameter: {name}")
        write("=" * 31)
        write(f"{'Mean delta:':>20}{mean:{fmt}}")
        write(f"{'Standard deviation:':>20}{std:{fmt}}")
    write("")
