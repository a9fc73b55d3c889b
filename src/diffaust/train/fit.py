"""Per-sample gradient descent: the seed's ``autodiff`` trainer, as a function.

The set-up (the seed's flowchart)::

    input ──▶ ground truth DSP (hidden parameters)  ──▶ target t[n]
          └─▶ differentiable DSP (learnable params) ──▶ y[n], dy[n]/dp
                                                  loss L(y[n], t[n])
    p ← p − lr · dL/dy · dy/dp            (once per sample)

The input and the target do not depend on the learnable parameters, so they
are rendered once, in one block each, before the loop.  The learnable DSP is
compiled with ``diff=True``: one stateful instance gives the primal outputs and
the derivative channels of each sample through ``Instance.step`` (the
parameters change between samples and the state carries on, exactly like the
seed's buffer-size-1 audio driver).

Stop rule (the seed's): a step is taken only while the sample's loss is above
``sensitivity`` (1e-7); the fit stops once the loss has stayed at or below it
for more than ``patience`` (20) consecutive samples.  Otherwise it runs for
``iterations`` samples.

Everything per sample is plain Python floats: about a microsecond of work
around each ``step`` call.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import UsageError
from .losses import get_loss

DEFAULT_LR = 0.1
DEFAULT_SENSITIVITY = 1e-7
DEFAULT_ITERATIONS = 10000
DEFAULT_PATIENCE = 20


@dataclass
class Row:
    """One iteration, as handed to a progress callback."""

    iteration: int
    ground_truth: float      # target sample (output 0)
    learnable: float         # learnable output sample (output 0)
    loss: float
    values: list             # parameter values after this iteration's update
    grads: list              # dL/dp of this sample
    updated: bool            # whether a step was taken (loss > sensitivity)


@dataclass
class History:
    """What a fit did, one entry per iteration (sample)."""

    labels: list                                  # learnable parameter labels, UI order
    paths: list = field(default_factory=list)     # their full paths
    initial: list = field(default_factory=list)   # initial values
    iteration: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    ground_truth: list = field(default_factory=list)
    learnable: list = field(default_factory=list)
    values: list = field(default_factory=list)    # values[k][i]: parameter k after iteration i
    grads: list = field(default_factory=list)     # grads[k][i]
    converged: bool = False
    stop_reason: str = ""
    loss_name: str = "l2"
    lr: float = DEFAULT_LR
    sensitivity: float = DEFAULT_SENSITIVITY

    @property
    def iterations(self) -> int:
        return len(self.iteration)

    @property
    def final_loss(self) -> float:
        return self.loss[-1] if self.loss else math.nan

    @property
    def final_values(self) -> dict:
        """Learned value of each parameter, by label."""
        return {lab: (vals[-1] if vals else init)
                for lab, vals, init in zip(self.labels, self.values, self.initial or [math.nan] * len(self.labels))}

    def csv_header(self) -> list:
        head = ["iteration", "loss"]
        for lab in self.labels:
            head += [f"{lab}_grad", lab]
        return head

    def write_csv(self, path: str) -> None:
        """Write ``iteration,loss,<label>_grad,<label>,...``, one row per iteration, atomically."""
        from ..outfile import atomic_output

        with atomic_output(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.csv_header())
            cols = [self.iteration, self.loss]
            for g, v in zip(self.grads, self.values):
                cols += [g, v]
            for row in zip(*cols):
                w.writerow([row[0]] + [repr(float(v)) for v in row[1:]])

    @classmethod
    def read_csv(cls, path: str) -> "History":
        """Read a CSV written by :meth:`write_csv` (values and gradients; no signals)."""
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file")
        try:
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None
        if not rows or rows[0][:2] != ["iteration", "loss"] or len(rows[0]) % 2:
            raise UsageError(f"{path}: not a diffaust loss CSV "
                             "(expected a header 'iteration,loss,<label>_grad,<label>,...')")
        head = rows[0]
        labels = [head[j] for j in range(3, len(head), 2)]
        h = cls(labels=labels, values=[[] for _ in labels], grads=[[] for _ in labels])
        for lineno, r in enumerate(rows[1:], start=2):
            if not r:
                continue
            try:
                nums = [float(v) for v in r]
            except ValueError:
                raise UsageError(f"{path}:{lineno}: not a number in {r!r}") from None
            if len(nums) != len(head):
                raise UsageError(f"{path}:{lineno}: expected {len(head)} columns, got {len(nums)}")
            h.iteration.append(int(nums[0]))
            h.loss.append(nums[1])
            for k in range(len(labels)):
                h.grads[k].append(nums[2 + 2 * k])
                h.values[k].append(nums[3 + 2 * k])
        h.initial = [v[0] if v else math.nan for v in h.values]
        return h


def _as_rows(a: Optional[np.ndarray], channels: int, n: int, what: str) -> list:
    """Per-sample tuples of plain floats from a (channels, >=n) array."""
    if channels == 0:
        return [()] * n
    if a is None:
        raise UsageError(f"the {what} is missing: the program has {channels} input(s)")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.shape[0] != channels:
        raise UsageError(f"the {what} has {a.shape[0]} channel(s), expected {channels}")
    if a.shape[1] < n:
        raise UsageError(f"the {what} has {a.shape[1]} samples, need {n}")
    return list(zip(*a[:, :n].tolist()))


def fit(dsp, target, x=None, *, loss: str = "l2", lr: float = DEFAULT_LR,
        iterations: int = DEFAULT_ITERATIONS, sensitivity: float = DEFAULT_SENSITIVITY,
        patience: Optional[int] = DEFAULT_PATIENCE, params: Optional[dict] = None,
        callback: Optional[Callable[[Row], None]] = None) -> History:
    """Fit the ``[diff:1]`` parameters of ``dsp`` so that its output follows ``target``.

    dsp         a Dsp compiled with ``diff=True`` (its ``instance().step`` returns the
                primal outputs, then for each output the derivative w.r.t. each parameter)
    target      the ground-truth signal, shape (primal_outputs, N) (1-D for one output)
    x           the input signal, shape (dsp.inputs, N); ignored when the DSP has no input
    loss        per-sample loss: ``l2`` (default) or ``l1``; summed over outputs
    lr          learning rate
    iterations  at most this many samples (one parameter update per sample)
    sensitivity no update while the loss is at or below it; with ``patience``:
    patience    stop after more than this many consecutive low-loss samples
                (``None``: never stop early)
    params      initial values of any parameters (label or path → value), instead of
                the sliders' init values
    callback    called with a :class:`Row` after each iteration (progress printing)

    Returns a :class:`History` (one entry per iteration, ``converged`` set when the
    stop rule ended the fit).
    """
    lossdef = get_loss(loss)
    lossf, dlossf = lossdef.value, lossdef.grad
    diff_params = list(getattr(dsp, "diff_params", []) or [])
    if not diff_params:
        raise UsageError("the differentiable program has no [diff:1] parameter to learn")
    if lr <= 0 or not math.isfinite(lr):
        raise UsageError(f"the learning rate must be a positive number, got {lr}")
    if iterations < 0:
        raise UsageError(f"the number of iterations must be >= 0, got {iterations}")
    P, K = dsp.primal_outputs, len(diff_params)
    t = np.asarray(target, dtype=np.float64)
    if t.ndim == 1:
        t = t[None, :]
    if t.shape[0] != P:
        raise UsageError(f"the ground truth has {t.shape[0]} output(s), "
                         f"the differentiable program has {P}")
    n = min(iterations, t.shape[1])
    xs = _as_rows(x, dsp.inputs, n, "input signal")
    ts = t[0, :n].tolist() if P == 1 else list(zip(*t[:, :n].tolist()))

    inst = dsp.instance(params=params)
    if n:
        width = len(dsp.instance(params=params).step(xs[0]))
        if width != P * (1 + K):
            raise UsageError("fit needs the differentiable program compiled with diff=True "
                             f"({P * (1 + K)} channels per sample, got {width})")
    names = [p.path for p in diff_params]
    values = [float(inst.get_param(nm)) for nm in names]
    h = History(labels=[p.label for p in diff_params], paths=names, initial=list(values),
                values=[[] for _ in range(K)], grads=[[] for _ in range(K)],
                loss_name=lossdef.name, lr=lr, sensitivity=sensitivity)

    step, set_param = inst.step, inst.set_param
    it_a, loss_a, gt_a, ln_a = h.iteration.append, h.loss.append, h.ground_truth.append, h.learnable.append
    val_a = [v.append for v in h.values]
    grad_a = [g.append for g in h.grads]
    krange = range(K)
    low = 0
    limit = math.inf if patience is None else patience
    grads = [0.0] * K
    for i in range(n):
        out = step(xs[i])
        if P == 1:
            y, tt = out[0], ts[i]
            L = lossf(y, tt)
            dl = dlossf(y, tt)
            for k in krange:
                grads[k] = dl * out[1 + k]
            gt0, y0 = tt, y
        else:
            L = 0.0
            grads = [0.0] * K
            for o in range(P):
                y, tt = out[o], ts[i][o]
                L += lossf(y, tt)
                dl = dlossf(y, tt)
                base = P + o * K
                for k in krange:
                    grads[k] += dl * out[base + k]
            gt0, y0 = ts[i][0], out[0]
        updated = L > sensitivity
        if updated:
            low = 0
            for k in krange:
                values[k] -= lr * grads[k]
                set_param(names[k], values[k])
        else:
            low += 1
        it_a(i + 1)
        loss_a(L)
        gt_a(gt0)
        ln_a(y0)
        for k in krange:
            val_a[k](values[k])
            grad_a[k](grads[k])
        if callback is not None:
            callback(Row(i + 1, gt0, y0, L, list(values), list(grads), updated))
        if not math.isfinite(L) or not all(math.isfinite(v) for v in values):
            h.stop_reason = f"diverged at iteration {i + 1} (loss or parameter not finite); try a smaller learning rate"
            return h
        if low > limit:
            h.converged = True
            h.stop_reason = (f"loss <= {sensitivity:g} for {low} consecutive iterations "
                             f"(stopped at iteration {i + 1})")
            return h
    h.stop_reason = "reached maximum number of iterations"
    return h


# ----------------------------------------------------------- console table
COLUMN_WIDTH = 15


class TablePrinter:
    """The seed's console table: Iter, Ground truth, Learnable, Loss, one column per parameter.

    Prints the first ``head`` rows, then every ``every``-th row (``every=1``: every row,
    like the seed), a ``...`` line where rows are skipped, and the header again every
    20 printed rows.
    """

    def __init__(self, labels: Sequence[str], sensitivity: float = DEFAULT_SENSITIVITY,
                 head: int = 20, every: int = 500, write: Callable[[str], None] = print):
        self.labels = list(labels)
        self.sensitivity = sensitivity
        self.head, self.every = head, max(1, every)
        self.write = write
        self.printed = 0
        self.last_printed = 0
        self.pending: Optional[Row] = None
        self.width = 5 + (3 + len(self.labels)) * COLUMN_WIDTH

    def header(self) -> str:
        w = COLUMN_WIDTH
        line = "-" * self.width
        cols = f"{'Iter':>5}{'Ground truth':>{w}}{'Learnable':>{w}}{'Loss':>{w}}"
        cols += "".join(f"{lab[-(w - 1):]:>{w}}" for lab in self.labels)
        return f"{line}\n{cols}\n{line}"

    def format_row(self, r: Row) -> str:
        w = COLUMN_WIDTH
        s = f"{r.iteration:5d}{r.ground_truth:{w}.10f}{r.learnable:{w}.10f}"
        s += f"{r.loss:{w}.3e}" if r.loss < 1e-3 else f"{r.loss:{w}.10f}"
        for v in r.values:
            s += f"{v:{w}.10f}" if r.loss > self.sensitivity else f"{'-':>{w}}"
        return s

    def __call__(self, r: Row) -> None:
        i = r.iteration
        if i <= self.head or i % self.every == 0:
            self._emit(r)
            self.pending = None
        else:
            self.pending = r

    def _emit(self, r: Row) -> None:
        if self.printed % 20 == 0:
            for line in self.header().split("\n"):
                self.write(line)
        elif r.iteration > self.last_printed + 1:
            self.write(f"{'...':>5}")
        self.write(self.format_row(r))
        self.printed += 1
        self.last_printed = r.iteration

    def finish(self) -> None:
        """Print the last row if it was skipped."""
        if self.pending is not None:
            self._emit(self.pending)
            self.pending = None
