"""Finite-difference verification of derivative programs: the seed's ``autodiffVerifier``,
made able to catch a derivative that is silently wrong.

For each ``[diff:1]`` parameter p_k the program runs on the same input, each run
from a fresh state:

* unchanged:              y(p)                      (and the autodiff channels dy/dp_k)
* p_k moved by +h_k:      y(..., p_k + h_k, ...)    (and p_k - h_k with ``central``)
* the same with h_k / 10  (the jump check, below)

Finite difference of sample n (``y`` one output channel):

    forward (the seed's):   fd[n] = (y(p + h)[n] - y(p)[n]) / h               error O(h)
    central:                fd[n] = (y(p + h)[n] - y(p - h)[n]) / (2 h)       error O(h^2)

where h is the step actually taken (in float, ``float32(p + h) - float32(p)``).

Step.  ``epsilon`` given: h_k = epsilon for every parameter (the seed's absolute step).
Otherwise h_k = rel_step * max(1, |p_k|), rel_step = 1e-4 for central differences in
double (truncation ~1e-8 of the peak on smooth programs, round-off ~1e-16/1e-4 = 1e-12
relative: measured 5e-9 of the peak on the Zita reverb), 1e-3 otherwise (the seed's
epsilon for parameters of magnitude <= 1; float32 round-off ~1e-7/h needs a large step).

Columns and measures (one row per (output, parameter), ``ad`` autodiff, ``fd`` finite
difference, ``n`` the sample):

* ``|delta|[n] = |ad[n] - fd[n]|`` (the seed's); mean and sample standard deviation
  over the compared samples (the seed's summary).
* ``Rel. error[n] = 100 |ad[n] - fd[n]| / max(|ad[n]|, |fd[n]|)`` in percent, 0 where
  both are 0: a derivative that autodiff says is 0 while the finite difference is not
  shows as 100 %.
* the **peak error** of a row, what ``tolerance`` bounds (inf when a compared sample
  has a NaN or inf difference: a NaN derivative never passes):
  ``max_n |ad[n] - fd[n]| / max(max_n |fd[n]|, 1e-6)`` over the compared samples: the
  worst error relative to the peak of the finite difference over the whole signal
  (absolute, times 1e6, for a row whose finite difference never exceeds 1e-6: there is
  no scale to be relative to).  A row whose derivative is 0.1 % wrong at its peak has
  peak error 1e-3.

Jumps.  Where the output is not differentiable in p (a comparison, ``floor``, ``int`` or
a select of a signal that depends on p) the finite difference is a jump over the step,
not a derivative.  A second finite difference with step h/10 recognises it: at a smooth
sample the two agree up to their truncation error, at a jump one of them is ~10 times
the other (or ~0).  A sample is a jump when

    |fd - fd_fine| > 0.5 max(|fd|, |fd_fine|) + 1e-2 P + 100 u max|y| / (h/10)

(P: the row's peak |fd| over the samples where the two agree within a factor 2;
u: the unit round-off, 2^-52 or 2^-23, so the last term is the finite differences'
round-off).  After a jump inside a recursion the perturbed runs follow other paths
for good, so only the samples **before the first jump** of a parameter (on any
output) are compared; ``compared`` says how many, and the summary says where the
first jump is.  ``jump_check=False`` compares every sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .errors import UsageError

DEFAULT_EPSILON = 1e-3   # the seed's epsilon: the relative step of forward and float differences
CENTRAL_DOUBLE_STEP = 1e-4  # the relative step of central differences in double
DEFAULT_SAMPLES = 100    # samples when neither n nor an input gives a length (the seed's)
PEAK_FLOOR = 1e-6        # peak error is relative to max(peak |fd|, PEAK_FLOOR)
JUMP_RTOL = 0.5          # |fd - fd_fine| above this fraction of the larger one: not smooth ...
JUMP_PEAK = 1e-2         # ... and above this fraction of the row's smooth peak
NOISE_ULPS = 100.0       # finite-difference round-off allowance, in units of u max|y|


def default_rel_step(central: bool, double: bool) -> float:
    """The relative step h / max(1, |p|) used when no epsilon is given."""
    return CENTRAL_DOUBLE_STEP if (central and double) else DEFAULT_EPSILON


@dataclass
class Verification:
    """Autodiff vs finite differences, one row per (output, parameter), rows in the order
    of the derivative channels (for each output, for each parameter)."""

    names: list              # row names: the parameter label (label[o] when several outputs)
    autodiff: np.ndarray     # (rows, n)
    finite_diff: np.ndarray  # (rows, n)
    epsilon: Optional[float]  # the absolute step asked for, or None (relative steps)
    central: bool
    params: dict             # the base parameter values, by label
    steps: dict = field(default_factory=dict)   # label -> the step h actually taken
    rel_step: Optional[float] = None             # h = rel_step * max(1, |p|) when epsilon is None
    compared: Optional[np.ndarray] = None        # (rows,) samples compared (before the first jump)
    jump_output: dict = field(default_factory=dict)  # label -> output of the first jump (if any)

    def __post_init__(self):
        if self.compared is None:
            self.compared = np.full(len(self.names), self.autodiff.shape[1], dtype=np.int64)

    @property
    def samples(self) -> int:
        return int(self.autodiff.shape[1])

    @property
    def delta(self) -> np.ndarray:
        """|ad - fd|, (rows, n)."""
        return np.abs(self.autodiff - self.finite_diff)

    @property
    def rel_error(self) -> np.ndarray:
        """100 |ad - fd| / max(|ad|, |fd|) in percent, (rows, n); 0 where both are 0
        (so ad = 0 with fd != 0 is 100 %)."""
        ad, fd = self.autodiff, self.finite_diff
        scale = np.maximum(np.abs(ad), np.abs(fd))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = 100.0 * self.delta / scale
        return np.where(scale == 0, 0.0, r)

    def _compared_rows(self):
        """|delta| over the compared samples of each row, a NaN (autodiff or finite
        difference NaN, or inf - inf) counted as inf: a NaN never passes."""
        d = self.delta
        d = np.where(np.isnan(d), np.inf, d)
        return [d[k, :int(self.compared[k])] for k in range(len(self.names))]

    def summary(self) -> dict:
        """name -> (mean |delta|, sample standard deviation of |delta|) over the compared samples."""
        out = {}
        for name, row in zip(self.names, self._compared_rows()):
            with np.errstate(invalid="ignore", over="ignore"):  # inf (a NaN) gives nan, quietly
                std = float(np.std(row, ddof=1)) if row.size > 1 else 0.0
                out[name] = (float(np.mean(row)) if row.size else float("nan"), std)
        return out

    @property
    def peak(self) -> np.ndarray:
        """(rows,) max |fd| over the compared samples (finite values)."""
        fd = np.abs(self.finite_diff)
        fd = np.where(np.isfinite(fd), fd, 0.0)  # a non-finite fd is an error, not a scale
        return np.array([float(np.max(fd[k, :int(m)], initial=0.0)) for k, m in enumerate(self.compared)])

    @property
    def peak_error(self) -> np.ndarray:
        """(rows,) max |ad - fd| / max(peak |fd|, 1e-6) over the compared samples."""
        worst = np.array([float(np.max(row, initial=0.0)) for row in self._compared_rows()])
        return worst / np.maximum(self.peak, PEAK_FLOOR)

    def worst(self) -> tuple:
        """(row, sample, peak error) of the largest peak error; sample counts from 0."""
        if not self.names:
            return 0, 0, 0.0
        err = self.peak_error
        k = int(np.argmax(err))
        row = self._compared_rows()[k]
        return k, (int(np.argmax(row)) if row.size else 0), float(err[k])

    @property
    def max_error(self) -> float:
        """The largest peak error of all rows (what ``tolerance`` bounds)."""
        return float(np.max(self.peak_error, initial=0.0))

    @property
    def max_delta(self) -> float:
        """The largest |delta| over the compared samples of all rows."""
        return float(max((float(np.max(r, initial=0.0)) for r in self._compared_rows()), default=0.0))

    @property
    def unchecked(self) -> list:
        """Row names with no compared sample (the output jumps in p at the first sample)."""
        return [name for name, m in zip(self.names, self.compared) if m == 0]

    def passed(self, tolerance: float) -> bool:
        """Every row compared on at least one sample, and every peak error <= tolerance."""
        return not self.unchecked and self.max_error <= tolerance


def verify(dsp, x=None, *, n: Optional[int] = None, epsilon: Optional[float] = None,
           central: bool = False, params: Optional[dict] = None, rel_step: Optional[float] = None,
           jump_check: bool = True) -> Verification:
    """Compare the derivative channels of ``dsp`` with finite differences.

    dsp         a Dsp compiled with ``diff=True`` (``render_jvp`` gives outputs and derivatives)
    x           input signal, (dsp.inputs, >= n); ignored for a program without inputs
    n           number of samples (default: x's length, else 100)
    epsilon     an absolute step for every parameter (the seed's); default: relative steps
    rel_step    h = rel_step * max(1, |p|) (default ``default_rel_step(central, double)``)
    central     central differences instead of the seed's forward differences
    params      base values (label or path -> value) instead of the sliders' init values
    jump_check  compare only the samples before the first jump (see the module docstring)
    """
    if epsilon is not None and not (epsilon > 0):
        raise UsageError(f"epsilon must be a positive number, got {epsilon}")
    if rel_step is not None and not (rel_step > 0):
        raise UsageError(f"the relative step must be a positive number, got {rel_step}")
    if n is None:
        n = np.asarray(x).shape[-1] if (x is not None and dsp.inputs) else DEFAULT_SAMPLES
    if n <= 0:
        raise UsageError(f"the number of samples must be positive, got {n}")
    diff_params = list(dsp.diff_params)
    if not diff_params:
        raise UsageError("the program has no [diff:1] parameter to verify")
    if epsilon is None and rel_step is None:
        rel_step = default_rel_step(central, dsp.double)
    base = _base_values(dsp, params)
    xin = None
    if dsp.inputs:
        if x is None:
            raise UsageError(f"the program has {dsp.inputs} input(s): give an input signal")
        xin = np.asarray(x, dtype=np.float64)
        xin = xin[None, :] if xin.ndim == 1 else xin
        xin = xin[:, :n]
        if xin.shape != (dsp.inputs, n):
            raise UsageError(f"the input signal has shape {xin.shape}, need ({dsp.inputs}, {n})")
        if not dsp.double:
            xin = xin.astype(np.float32)

    y, dy = dsp.render_jvp(xin, n=n, params=dict(base))
    y, dy = np.asarray(y, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    P, K = y.shape[0], len(diff_params)
    unit = 2.0 ** -52 if dsp.double else 2.0 ** -23

    def primal(path, value):
        vals = dict(base)
        vals[path] = value
        return np.asarray(dsp.render_jvp(xin, n=n, params=vals)[0], dtype=np.float64)

    def finite_difference(p, h):
        """(fd (P, n), step actually taken)."""
        v = _stored(base[p.path], dsp.double)
        up = _stored(v + h, dsp.double)
        dn = _stored(v - h, dsp.double) if central else v
        if up == dn:
            raise UsageError(f"the step {h:g} does not change parameter '{p.label}' = {v:g} "
                             f"at {'double' if dsp.double else 'float'} precision: use a larger --epsilon")
        y_up = primal(p.path, up)
        y_dn = primal(p.path, dn) if central else y
        return (y_up - y_dn) / (up - dn), up - dn

    names, ad, fd, steps, compared, jump_out = [], [], [], {}, [], {}
    for k, p in enumerate(diff_params):
        h = epsilon if epsilon is not None else rel_step * max(1.0, abs(base[p.path]))
        fdk, step = finite_difference(p, h)
        steps[p.label] = step / (2.0 if central else 1.0)
        m = n
        if jump_check:
            fine, fine_step = finite_difference(p, h / 10.0)
            noise = NOISE_ULPS * unit * np.max(np.abs(y), axis=1, initial=0.0) / abs(fine_step)  # (P,)
            m, o = first_jump(fdk, fine, noise)
            if m < n:
                jump_out[p.label] = o
        for o in range(P):
            names.append(p.label if P == 1 else f"{p.label}[{o}]")
            ad.append(dy[o, k])
            fd.append(fdk[o])
            compared.append(m)
    # rows in (output, parameter) order, like the derivative channels
    order = [k * P + o for o in range(P) for k in range(K)]
    return Verification([names[i] for i in order], np.array([ad[i] for i in order]).reshape(len(order), n),
                        np.array([fd[i] for i in order]).reshape(len(order), n), epsilon, central,
                        {p.label: base[p.path] for p in diff_params}, steps, rel_step,
                        np.array([compared[i] for i in order], dtype=np.int64), jump_out)


def first_jump(fd: np.ndarray, fine: np.ndarray, noise: np.ndarray) -> tuple:
    """(first sample where the output jumps in p, its output) from two finite differences
    with steps h and h/10, (outputs, n) each; (n, None) when there is none.

    Jump: |fd - fine| > 0.5 max(|fd|, |fine|) + 1e-2 P + noise, P the peak |fd| over the
    samples where the two agree within a factor 2 (jumps left out of the scale)."""
    big = np.maximum(np.abs(fd), np.abs(fine))
    diff = np.abs(fd - fine)
    smooth = diff <= JUMP_RTOL * big
    peak = np.max(np.where(smooth, np.abs(fd), 0.0), axis=1, initial=0.0)  # (outputs,)
    bad = diff > JUMP_RTOL * big + JUMP_PEAK * peak[:, None] + np.asarray(noise)[:, None]
    cols = np.flatnonzero(np.any(bad, axis=0))
    if not cols.size:
        return fd.shape[1], None
    i = int(cols[0])
    return i, int(np.flatnonzero(bad[:, i])[0])


def _stored(value: float, double: bool) -> float:
    """The value a parameter slot holds (float32 rounding in float mode)."""
    return float(value) if double else float(np.float32(value))


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
def step_text(v: Verification) -> str:
    """How the steps were chosen, e.g. '0.0001 x max(1, |p|): t60 0.0003, hfdamp 0.6'."""
    each = ", ".join(f"{k} {s:.3g}" for k, s in v.steps.items())
    if v.epsilon is not None:
        return f"{v.epsilon:g}"
    return f"{v.rel_step:g} x max(1, |p|): {each}" if each else f"{v.rel_step:g} x max(1, |p|)"


def summary_line(v: Verification) -> str:
    """One line: the worst (parameter, sample, error) and how many samples were compared."""
    total = v.samples
    m = int(np.min(v.compared)) if len(v.compared) else total
    cmp = (f"all {total} samples compared" if m == total
           else f"{m} of {total} samples compared (first jump, see above)")
    if int(np.max(v.compared, initial=0)) == 0:
        return f"Worst: none: no sample compared (the outputs jump at the first sample); {cmp}"
    k, i, err = v.worst()
    d = float(v.delta[k, i])
    peak = float(v.peak[k])
    if peak < PEAK_FLOOR:  # the error is relative to the floor, not to the (vanishing) peak
        return (f"Worst: {v.names[k]}, sample {i + 1}: |delta| {d:.3e}, error {err:.3e} = |delta| / {PEAK_FLOOR:g} "
                f"(the finite differences are below {PEAK_FLOOR:g} on the compared samples); {cmp}")
    return (f"Worst: {v.names[k]}, sample {i + 1}: |delta| {d:.3e}, error {err:.3e} of the finite-difference "
            f"peak {peak:.3e}; {cmp}")


def _num(x: float) -> str:
    """A table cell: the seed's 15.10f, or 15.6e when that would not fit."""
    return f"{x:15.10f}" if abs(x) < 1e4 else f"{x:15.6e}"


def print_table(v: Verification, write: Callable[[str], None] = print, every: int = 20,
                rows: Optional[int] = None, table: bool = True) -> None:
    """The seed's table (header every ``every`` samples, the first ``rows`` samples, all by
    default), the per-parameter summary (mean |delta|, standard deviation, peak error,
    samples compared) and the summary line (``summary_line``).  ``table=False``: no
    per-sample rows."""
    n = v.samples
    delta, rel = v.delta, v.rel_error
    shown = n if rows is None else min(rows, n)
    if table:
        for i in range(shown):
            if i % every == 0:
                write("-" * 80)
                write(f"{'Iter':>5}{'Param':>15}{'Autodiff':>15}{'Finite diff':>15}{'|delta|':>15}{'Rel. error':>15}")
                write("-" * 80)
            for k, name in enumerate(v.names):
                d = delta[k, i]
                dtext = f"{d:15.3e}" if d < 1e-3 else f"{d:15.3f}"
                lead = f"{i + 1:5d}{name:>15}" if k == 0 else f"{name:>20}"
                write(f"{lead}{_num(v.autodiff[k, i])}{_num(v.finite_diff[k, i])}{dtext}{rel[k, i]:13.3f} %")
        if shown < n:
            write(f"  ... ({n - shown} more samples; --rows {n} prints them all)")
    summ = v.summary()
    peak_err, peak = v.peak_error, v.peak
    for k, name in enumerate(v.names):
        mean, std = summ[name]
        fmt = "11.3e" if not (mean >= 1e-3) else "11.3f"
        write("")
        write(f"Parameter: {name}")
        write("=" * 31)
        if v.compared[k]:
            write(f"{'Mean delta:':>20}{mean:{fmt}}")
            write(f"{'Standard deviation:':>20}{std:{fmt}}")
        else:
            write(f"{'Mean delta:':>20}{'-':>11}")
            write(f"{'Standard deviation:':>20}{'-':>11}")
        if v.compared[k]:
            write(f"{'Peak error:':>20}{peak_err[k]:11.3e}   (max |delta| / max |finite diff| = "
                  f"{peak_err[k] * max(peak[k], PEAK_FLOOR):.3e} / {peak[k]:.3e})")
        else:
            write(f"{'Peak error:':>20}{'-':>11}   (not checked: the output jumps in the parameter "
                  f"at the first sample)")
        write(f"{'Samples compared:':>20}{int(v.compared[k]):11d} of {n}")
    write("")
    for label, o in v.jump_output.items():
        m = int(v.compared[v.names.index(label if label in v.names else f"{label}[{o}]")])
        write(f"Jump: output {o} jumps in {label} at sample {m + 1} (the finite differences with "
              f"steps h and h/10 disagree): only the {m} samples before it are compared")
    write(summary_line(v))


# ------------------------------------------------------------------ reverse mode
@dataclass
class ReverseCheck:
    """Reverse-mode gradients vs finite differences.

    For a seeded noise w (outputs, n) and prefix lengths m_1 < ... < m_J = n, row k
    compares, for parameter k, the reverse gradient of L_j = Σ_c Σ_{i<m_j} w[c, i]·y[c, i]
    (one backward sweep of ``Dsp.vjp`` each, ȳ = w cut at m_j) with the same sum of the
    forward verifier's finite differences of y.  A prefix past the parameter's first jump
    (see ``verify``) is not compared."""

    names: list               # parameter labels
    ends: list                # the prefix lengths m_j
    autodiff: np.ndarray      # (params, J) reverse gradients
    finite_diff: np.ndarray   # (params, J) Σ w·fd over the prefix
    compared: np.ndarray      # (params,) prefixes compared
    seed: int = 0
    forward: Optional[Verification] = None  # the finite differences it used

    @property
    def peak_error(self) -> np.ndarray:
        """(params,) max_j |ad - fd| / max(max_j |fd|, 1e-6) over the compared prefixes (a NaN: inf)."""
        out = []
        for k in range(len(self.names)):
            m = int(self.compared[k])
            d = np.abs(self.autodiff[k, :m] - self.finite_diff[k, :m])
            d = np.where(np.isnan(d), np.inf, d)
            peak = float(np.max(np.abs(self.finite_diff[k, :m]), initial=0.0))
            out.append(float(np.max(d, initial=0.0)) / max(peak, PEAK_FLOOR))
        return np.array(out)

    @property
    def max_error(self) -> float:
        return float(np.max(self.peak_error, initial=0.0))

    @property
    def unchecked(self) -> list:
        return [name for name, m in zip(self.names, self.compared) if m == 0]

    def passed(self, tolerance: float) -> bool:
        return not self.unchecked and self.max_error <= tolerance


def verify_reverse(dsp, x=None, *, n: Optional[int] = None, epsilon: Optional[float] = None,
                   central: bool = False, params: Optional[dict] = None, rel_step: Optional[float] = None,
                   jump_check: bool = True, prefixes: int = 10, seed: int = 0) -> ReverseCheck:
    """Check ``dsp.vjp``'s parameter gradients against finite differences (`ReverseCheck`);
    the arguments are those of `verify`, plus the number of prefixes and the noise's seed."""
    v = verify(dsp, x, n=n, epsilon=epsilon, central=central, params=params, rel_step=rel_step,
               jump_check=jump_check)
    n = v.samples
    diff_params = list(dsp.diff_params)
    P, K = dsp.primal_outputs, len(diff_params)
    base = _base_values(dsp, params)
    xin = None
    if dsp.inputs:
        xin = np.asarray(x, dtype=np.float64)
        xin = (xin[None, :] if xin.ndim == 1 else xin)[:, :n]
    w = np.random.default_rng(seed).standard_normal((P, n))
    ends = sorted({int(round(n * (j + 1) / prefixes)) for j in range(max(1, prefixes))} - {0})
    ad = np.zeros((K, len(ends)))
    fd = np.zeros((K, len(ends)))
    fd_rows = v.finite_diff.reshape(P, K, n)
    for j, m in enumerate(ends):
        yb = w.copy()
        yb[:, m:] = 0.0
        g = dsp.vjp(xin, yb, params=dict(base), n=n)
        for k, p in enumerate(diff_params):
            ad[k, j] = g.by_path[p.path]
            fd[k, j] = float(np.sum(w[:, :m] * fd_rows[:, k, :m]))
    comp = v.compared.reshape(P, K).min(axis=0)
    compared = np.array([sum(1 for m in ends if m <= c) for c in comp], dtype=np.int64)
    return ReverseCheck([p.label for p in diff_params], ends, ad, fd, compared, seed, v)


def print_reverse(r: ReverseCheck, write: Callable[[str], None] = print) -> None:
    """The reverse check's table (one line per parameter and prefix) and per-parameter peak errors."""
    write("-" * 80)
    write(f"{'Param':>15}{'Samples':>10}{'Reverse':>18}{'Finite diff':>18}{'|delta|':>12}{'Rel. error':>12}")
    write("-" * 80)
    for k, name in enumerate(r.names):
        for j, m in enumerate(r.ends):
            a, f = r.autodiff[k, j], r.finite_diff[k, j]
            d = abs(a - f)
            rel = 0.0 if max(abs(a), abs(f)) == 0 else 100.0 * d / max(abs(a), abs(f))
            mark = "" if j < r.compared[k] else "  (after a jump: not compared)"
            write(f"{name if j == 0 else '':>15}{m:>10}{a:18.9e}{f:18.9e}{d:12.3e}{rel:10.3f} %{mark}")
    err = r.peak_error
    write("")
    for k, name in enumerate(r.names):
        if r.compared[k]:
            write(f"Parameter {name}: peak error {err[k]:.3e} over {r.compared[k]} of {len(r.ends)} prefixes")
        else:
            write(f"Parameter {name}: not checked (the output jumps in it at the first sample)")
