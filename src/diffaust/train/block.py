"""Block-mode fitting: one whole rendered block per iteration, any optimizer.

Each iteration::

    y, dy = dsp.render_jvp(x, n, params)        # from a reset state, current values
    L, g  = loss(y, target)                     # g = dL/dy, shape (channels, samples)
    dL/dp = sum_c sum_n g[c, n] * dy[c, p, n]   # float64
    dL/du = dL/dp * dvalue/du                   # normalized slider coordinates
    u     = clamp(u + optimizer step, 0, 1)     # values never leave [min, max]

The parameters are optimized in normalized coordinates ``u`` in [0, 1]
(``optim.to_unit``): linear in the slider's [min, max], logarithmic for
``[scale:log]`` or ``[unit:Hz]`` sliders with min > 0.  The learning rate is
therefore in units of "fraction of the slider's range" and needs no tuning per
parameter: adam's default, 0.05, moves a parameter at most about 5 % of its
range per iteration.

    from diffaust.train.block import fit_block
    res = fit_block(diff_dsp, target, x, loss="mse", iterations=300)
    res.params, res.loss, res.stop_reason
    res.save("fit.json")
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import UsageError
from .losses import parse_loss
from .optim import clip_by_norm, dvalue_du, finite, from_unit, get_optimizer, lr_at, make_schedule, \
    param_bounds, to_unit

#: Default learning rate per optimizer, in normalized coordinates (fraction of a
#: slider's range per unit step).  adam and rmsprop take steps of about lr;
#: sgd and momentum take steps of lr * dL/du, which depends on the loss's scale.
DEFAULT_LRS = {"adam": 0.05, "rmsprop": 0.01, "sgd": 0.1, "momentum": 0.01}
DEFAULT_ITERATIONS = 500


@dataclass
class FitResult:
    """What a block fit found.

    params        label -> value of the best iteration (the lowest loss), in the
                  widget's own units; fixed (non-diff) values given in ``params`` too
                  (a widget whose label is not unique is keyed by its path)
    loss          the best loss (nan when no iteration gave a finite loss)
    losses        the loss of each iteration (evaluated at that iteration's values)
    trajectories  label -> the value used at each iteration (diff parameters)
    iterations    iterations done (renders)
    stop_reason   "iterations", "tolerance", "patience", "diverged" or "callback"
    seconds       wall-clock time of the fit
    """

    params: dict
    loss: float
    losses: list = field(default_factory=list)
    trajectories: dict = field(default_factory=dict)
    iterations: int = 0
    stop_reason: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        """``{"params", "loss", "iterations", "stop_reason", "seconds"}`` (JSON-ready;
        a non-finite loss is written as null)."""
        loss = float(self.loss)
        return {"params": {k: float(v) for k, v in self.params.items()},
                "loss": loss if math.isfinite(loss) else None,
                "iterations": int(self.iterations), "stop_reason": self.stop_reason,
                "seconds": float(self.seconds)}

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` atomically (a temporary file in the same
        folder, then ``os.replace``): a reader never sees a half-written file."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        text = json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None


# ------------------------------------------------------------------ checks
def as_block(a, what: str) -> np.ndarray:
    """``a`` as a float64 (channels, samples) array (1-D: one channel); UsageError when it
    is not a real 1-D/2-D array or holds NaN or Inf."""
    try:
        b = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise UsageError(f"the {what} must be an array of shape (channels, samples): {e}") from None
    if b.dtype.kind not in "fiub":
        raise UsageError(f"the {what} must hold real numbers, got dtype {b.dtype}")
    b = b.astype(np.float64)
    if b.ndim == 1:
        b = b[None, :]
    if b.ndim != 2:
        raise UsageError(f"the {what} must have shape (channels, samples) or (samples,), got shape {np.shape(a)}")
    bad = ~np.isfinite(b)
    if bad.any():
        c, s = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(b[c, s]) else "Inf"
        raise UsageError(f"the {what} holds NaN or Inf values (first: {kind} at channel {c}, sample {s})")
    return b


def check_signals(dsp, target, x, n: Optional[int]):
    """(target (P, n), x (inputs, n) or None, n) checked against ``dsp``'s channel counts."""
    t = as_block(target, "target")
    P = dsp.primal_outputs
    if t.shape[0] != P:
        raise UsageError(f"the target has {t.shape[0]} channel(s), the program has {P} output(s)")
    if n is None:
        n = t.shape[1]
    n = int(n)
    if n < 1:
        raise UsageError(f"the block must have at least 1 sample, got n={n}")
    if t.shape[1] < n:
        raise UsageError(f"the target has {t.shape[1]} samples, need {n}")
    if dsp.inputs == 0:
        xx = None
    else:
        if x is None:
            raise UsageError(f"the input is missing: the program has {dsp.inputs} input(s)")
        xx = as_block(x, "input")
        if xx.shape[0] != dsp.inputs:
            raise UsageError(f"the input has {xx.shape[0]} channel(s), the program has {dsp.inputs} input(s)")
        if xx.shape[1] < n:
            raise UsageError(f"the input has {xx.shape[1]} samples and the target {n}: lengths differ")
        xx = xx[:, :n]
    return t[:, :n], xx, n


def _positive_int(value, what: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise UsageError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


# ------------------------------------------------------------------ fit
def loss_and_grad(dsp, lossf, target, x, n, values):
    """The block loss and its gradient w.r.t. the diff parameters, in their own units.

    Renders ``n`` samples of ``dsp`` (diff=True) from a reset state with ``values``
    (name -> value); ``target`` (primal_outputs, n), ``x`` (inputs, n) or None.
    Returns ``(L, dL/dp)`` with ``dL/dp[p] = sum_c sum_n dL/dy[c, n] * dy[c, p, n]``
    (float64, shape (n_diff,), ``dsp.diff_params`` order).
    """
    y, dy = dsp.render_jvp(x, n, params=values)
    L, g = lossf(y.astype(np.float64), target)
    g = np.asarray(g, dtype=np.float64).reshape(y.shape)
    return float(L), np.einsum("cn,cpn->p", g, dy.astype(np.float64))


def fit_block(dsp, target, x=None, *, loss="mse", optimizer="adam", lr: Optional[float] = None,
              iterations: int = DEFAULT_ITERATIONS, params: Optional[dict] = None,
              schedule="constant", clip: Optional[float] = None, tolerance: float = 0.0,
              patience: Optional[int] = None, n: Optional[int] = None,
              callback: Optional[Callable] = None) -> FitResult:
    """Fit the ``[diff:1]`` parameters of ``dsp`` so that its output matches ``target``.

    dsp         a Dsp compiled with ``diff=True`` (``double=True`` recommended)
    target      the target signal, shape (primal_outputs, samples) (1-D for one output)
    x           the input signal, shape (dsp.inputs, samples); ignored (None) without inputs
    loss        a block loss spec: a name of ``losses.BLOCK_LOSSES`` or a weighted sum
                such as ``"mse+0.5*mrstft"``, or a callable ``f(y, t) -> (value, dL/dy)``
    optimizer   ``adam`` (default), ``rmsprop``, ``momentum``, ``sgd`` or an optimizer object
    lr          learning rate in normalized coordinates (fraction of a slider's range);
                default ``DEFAULT_LRS[optimizer]`` (adam: 0.05)
    iterations  at most this many iterations (one render of the block each)
    params      initial values (label, path or index -> value, clamped into [min, max]) of
                diff parameters, and fixed values of other widgets
    schedule    learning-rate schedule: a name (constant, cosine, exponential) or ``optim.Schedule``
    clip        clip the gradient (in normalized coordinates) to this global L2 norm
    tolerance   stop once the loss is <= tolerance ("tolerance")
    patience    stop when the best loss has not improved for this many iterations ("patience")
    n           samples per block (default: the target's length)
    callback    ``callback(iteration, loss, params_dict)`` after each iteration (1-based);
                returning True stops the fit ("callback")

    A NaN or infinite loss or gradient stops the fit with ``stop_reason == "diverged"``.
    Returns a :class:`FitResult` whose ``params`` are those of the best iteration.
    """
    start = time.perf_counter()
    diff_params = list(getattr(dsp, "diff_params", []) or [])
    if not diff_params:
        raise UsageError("the differentiable program has no [diff:1] parameter to learn")
    if not getattr(dsp, "diff", False):
        raise UsageError("fit_block needs a program compiled with diff=True")
    lossf = parse_loss(loss) if isinstance(loss, str) else loss
    if not callable(lossf):
        raise UsageError(f"loss must be a loss name such as 'mse' or a callable, got {loss!r}")
    opt = get_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    if lr is None:
        lr = DEFAULT_LRS.get(getattr(opt, "name", ""), 0.05)
    lr = float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"the learning rate must be a positive number, got {lr}")
    sched = make_schedule(schedule) if isinstance(schedule, str) else schedule
    iterations = _positive_int(iterations, "iterations")
    patience = _positive_int(patience, "patience", allow_none=True)
    tolerance = float(tolerance)
    if clip is not None and not (float(clip) > 0):
        raise UsageError(f"the gradient clipping norm must be a positive number, got {clip}")
    t, xx, n = check_signals(dsp, target, x, n)
    if params is not None and not hasattr(params, "items"):
        raise UsageError(f"params must be a dict {{name: value}}, got {type(params).__name__}")

    # initial values: slider inits, overridden by `params`
    values = {p.path: float(p.init) for p in dsp.params}
    given = set()
    for k, v in (params or {}).items():
        i = dsp.param_index(k)
        given.add(i)
        p = dsp.params[i]
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"parameter '{p.label}': the value must be a real number, got {v!r}") from None
        if not math.isfinite(v):
            raise UsageError(f"parameter '{p.label}': the initial value must be finite, got {v}")
        values[p.path] = v
    def key(p):  # the label, or the path when another widget has the same label
        return p.label if sum(q.label == p.label for q in dsp.params) == 1 else p.path

    labels = [key(p) for p in diff_params]
    bounds = [param_bounds(p) for p in diff_params]
    u = np.array([to_unit(values[p.path], *b) for p, b in zip(diff_params, bounds)])
    diff_paths = {p.path for p in diff_params}
    fixed = {key(dsp.params[i]): values[dsp.params[i].path] for i in sorted(given)
             if dsp.params[i].path not in diff_paths}

    def current(uu):
        return [from_unit(ui, *b) for ui, b in zip(uu, bounds)]

    state = opt.init(u)
    losses, traj = [], {lab: [] for lab in labels}
    best_loss, best_vals, best_it = math.inf, current(u), 0
    stop = "iterations"
    it = 0
    for it in range(1, iterations + 1):
        vals = current(u)
        for p, v in zip(diff_params, vals):
            values[p.path] = v
        L, grad_p = loss_and_grad(dsp, lossf, t, xx, n, values)
        losses.append(L)
        for lab, v in zip(labels, vals):
            traj[lab].append(v)
        if not math.isfinite(L) or not finite(grad_p):
            stop = "diverged"
            break
        if L < best_loss:
            best_loss, best_vals, best_it = L, vals, it
        if callback is not None and callback(it, L, dict(zip(labels, vals))) is True:
            stop = "callback"
            break
        if L <= tolerance:
            stop = "tolerance"
            break
        if patience is not None and it - best_it >= patience:
            stop = "patience"
            break
        if it == iterations:
            break
        grad_u = grad_p * np.array([dvalue_du(ui, *b) for ui, b in zip(u, bounds)])
        if clip is not None:
            grad_u = clip_by_norm(grad_u, clip)
        step, state = opt.update(grad_u, state, lr_at(sched, lr, it - 1, max(iterations, 1)))
        u = np.clip(u + step, 0.0, 1.0)
    result = dict(zip(labels, best_vals))
    result.update(fixed)
    return FitResult(params=result, loss=best_loss if best_loss < math.inf else math.nan,
                     losses=losses, trajectories=traj, iterations=len(losses), stop_reason=stop,
                     seconds=time.perf_counter() - start)


# ------------------------------------------------------------- diffaust.fit
_COMPILE_OPTIONS = ("double", "sample_rate", "import_dirs", "nondiff", "allow_native", "use_cache")


def _compile_diff(diff, copts: dict):
    """A Dsp compiled with diff=True from a path, source text or Dsp."""
    from ..runtime.dsp import Dsp, compile as _compile

    if isinstance(diff, Dsp):
        if diff.diff:
            dsp = diff
        else:  # recompile its source with derivatives, same precision and rate
            src = diff.filename if os.path.isfile(diff.filename) else diff.source
            dsp = _compile(src, diff=True, double=diff.double, sample_rate=diff.sample_rate,
                           import_dirs=diff.options.import_dirs, nondiff=copts.get("nondiff", ()),
                           allow_native=diff.options.allow_native)
    elif isinstance(diff, (str, os.PathLike)):
        dsp = _compile(diff, diff=True, **copts)
    else:
        raise UsageError(f"fit: the program to fit must be a path, Faust source text or a compiled Dsp, "
                         f"got {type(diff).__name__}")
    if not dsp.diff_params:
        raise UsageError("fit: the program has no [diff:1] parameter to learn "
                         "(mark one, e.g. hslider(\"gain [diff:1]\", ...))")
    return dsp


def _input_for(x, inputs: int, who: str) -> np.ndarray:
    """The input of a program with `inputs` channels as a (inputs, samples) array, or UsageError."""
    if x is None:
        raise UsageError(f"fit: {who} has {inputs} input(s): give an input")
    x = as_block(x, "input")
    if x.shape[0] != inputs:
        raise UsageError(f"fit: the input has {x.shape[0]} channel(s), {who} has {inputs} input(s)")
    return x


def _render_target(target, x, n, copts: dict) -> np.ndarray:
    """The target as a (channels, samples) array: given, or rendered by a Dsp/path with input x."""
    from ..runtime.dsp import Dsp, compile as _compile

    if isinstance(target, (str, os.PathLike)):
        target = _compile(target, **{k: v for k, v in copts.items() if k != "nondiff"})
    if not isinstance(target, Dsp):
        return as_block(target, "target")
    if target.inputs:
        xx = _input_for(x, target.inputs, "the target program")
    else:
        xx = None
        if n is None:
            if x is None:
                raise UsageError("fit: the target program has no input: give n (samples to render)")
            n = as_block(x, "input").shape[1]
    y = target.instance().compute(xx, n)[:target.primal_outputs]
    return as_block(y, "target (rendered by the target program)")


def _read_files(input, target, copts: dict):
    """Read a .wav/.npy ``input`` and ``target`` (checked finite); a WAV's rate becomes
    ``copts["sample_rate"]`` (an error when ``sample_rate`` was given otherwise or two WAVs
    differ).  Returns (input, target, wav_rate or None, input was a file)."""
    from ..audio import is_signal_file, read_signal

    rates = []
    input_file = is_signal_file(input)
    if input_file:
        path = os.fspath(input)
        input, sr = read_signal(path, "input")
        if sr is not None:
            rates.append(("input", path, sr))
    if is_signal_file(target):
        path = os.fspath(target)
        target, sr = read_signal(path, "target")
        if sr is not None:
            rates.append(("target", path, sr))
    if not rates:
        return input, target, None, input_file
    what, path, sr = rates[0]
    for w2, p2, sr2 in rates[1:]:
        if sr2 != sr:
            raise UsageError(f"fit: {what} {path} is at {sr} Hz but {w2} {p2} at {sr2} Hz "
                             "(diffaust does not resample)")
    given = copts.get("sample_rate")
    if given is not None and int(given) != sr:
        raise UsageError(f"fit: sample_rate={given} but {what} {path} is at {sr} Hz "
                         "(diffaust does not resample)")
    copts["sample_rate"] = sr
    return input, target, sr, input_file


def fit(diff, target, input=None, *, mode: str = "block", loss: Optional[str] = None,
        optimizer: Optional[str] = None, lr: Optional[float] = None, iterations: Optional[int] = None,
        params: Optional[dict] = None, callback: Optional[Callable] = None, **options):
    """Fit the ``[diff:1]`` parameters of a Faust program to a target signal.

    diff       the program to fit: a .dsp path, Faust source text or a compiled ``Dsp``
               (compiled or recompiled with ``diff=True`` when needed; it must have at
               least one ``[diff:1]`` parameter)
    target     the target: an array of shape (channels, samples) (1-D: one channel), in
               the program's sample units (full scale ±1), one channel per program output;
               or a ground-truth ``Dsp``, path or source rendered with the same input;
               or a .wav/.npy file (its length sets the samples; NaN/Inf is an error)
    input      the input signal, shape (inputs, samples), or a .wav/.npy file (cut to the
               target's length); None for a program without input.  A WAV file's sample
               rate is the compile rate (an error when ``sample_rate`` or another WAV differs)
    mode       ``"block"`` (default): :func:`fit_block`, whole-block loss, any optimizer;
               ``"sample"``: the per-sample trainer :func:`diffaust.train.fit.fit`
               (plain SGD, a step per sample; returns its ``History``)
    loss       block mode: a ``BLOCK_LOSSES`` spec (default ``"mse"``);
               sample mode: ``"l2"`` (default) or ``"l1"``
    optimizer  block mode: adam (default), rmsprop, momentum, sgd; sample mode: sgd only
    lr         block mode: in normalized coordinates (default: adam 0.05, see ``DEFAULT_LRS``);
               sample mode: in parameter units (default 0.1)
    iterations block mode: iterations (default 500); sample mode: samples (default 10000)
    params     initial values (label or path -> value, in the widget's units)
    callback   block mode: ``callback(iteration, loss, params_dict)``, True stops;
               sample mode: called with a ``Row`` per sample
    options    compile options for paths and source text: double (default True),
               sample_rate (Hz, default 44100), import_dirs, nondiff, allow_native, use_cache;
               n (samples; default the target's length); then the options of the chosen
               mode (block: schedule, clip, tolerance, patience; sample: sensitivity, patience)

    Returns a :class:`FitResult` (block mode) or a ``History`` (sample mode).
    """
    copts = {k: options.pop(k) for k in _COMPILE_OPTIONS if k in options}
    copts.setdefault("double", True)
    n = options.pop("n", None)
    if mode not in ("block", "sample"):
        raise UsageError(f"fit: unknown mode '{mode}' (expected 'block' or 'sample')")
    input, target, wav_rate, input_file = _read_files(input, target, copts)
    dsp = _compile_diff(diff, copts)
    if wav_rate is not None and dsp.sample_rate != wav_rate:
        raise UsageError(f"fit: the program was compiled at {dsp.sample_rate} Hz but the WAV file is at "
                         f"{wav_rate} Hz (diffaust does not resample)")
    t = _render_target(target, input, n, copts)
    if n is not None and int(n) > t.shape[1]:
        raise UsageError(f"fit: n={n} asks for more samples than the target holds ({t.shape[1]})")
    if input_file and input is not None:
        xin = as_block(input, "input")
        if xin.shape[1] > t.shape[1]:  # a longer input file: its first samples
            input = xin[:, :t.shape[1]]
    if t.shape[0] != dsp.primal_outputs:
        raise UsageError(f"fit: the target has {t.shape[0]} channel(s), the program to fit has "
                         f"{dsp.primal_outputs} output(s)")
    x = None
    if dsp.inputs:
        x = _input_for(input, dsp.inputs, "the program")
        if x.shape[1] != t.shape[1]:
            raise UsageError(f"fit: the input has {x.shape[1]} samples and the target {t.shape[1]}: "
                             "lengths differ")
    if mode == "sample":
        from .fit import DEFAULT_ITERATIONS as SAMPLE_ITERATIONS, DEFAULT_LR as SAMPLE_LR, fit as _fit_sample

        if optimizer not in (None, "sgd"):
            raise UsageError(f"fit: mode='sample' supports only optimizer='sgd', got '{optimizer}'")
        unknown = set(options) - {"sensitivity", "patience"}
        if unknown:
            raise UsageError(f"fit: mode='sample' does not take {', '.join(sorted(unknown))}")
        if n is not None:
            t = t[:, :n]
        return _fit_sample(dsp, t, x, loss=loss or "l2", lr=SAMPLE_LR if lr is None else lr,
                           iterations=SAMPLE_ITERATIONS if iterations is None else iterations,
                           params=params, callback=callback, **options)
    unknown = set(options) - {"schedule", "clip", "tolerance", "patience"}
    if unknown:
        raise UsageError(f"fit: mode='block' does not take {', '.join(sorted(unknown))}")
    return fit_block(dsp, t, x, loss=loss or "mse", optimizer=optimizer or "adam", lr=lr,
                     iterations=DEFAULT_ITERATIONS if iterations is None else iterations,
                     params=params, callback=callback, n=n, **options)
