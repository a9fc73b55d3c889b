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
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import UsageError
from ..outfile import write_text
from .losses import parse_loss
from .optim import UnitBox, clip_by_norm, finite, from_unit, get_optimizer, lr_at, make_schedule, \
    param_bounds, plateau_init, plateau_update, to_unit

#: Default learning rate per optimizer, in normalized coordinates (fraction of a
#: slider's range per unit step).  adam and rmsprop take steps of about lr;
#: sgd and momentum take steps of lr * dL/du, which depends on the loss's scale.
DEFAULT_LRS = {"adam": 0.05, "rmsprop": 0.01, "sgd": 0.1, "momentum": 0.01}
#: A loss with a spectral term (mrstft, logmel) gets 0.4× the default rate: its
#: log-magnitude part is an L1 distance whose gradient does not shrink near the
#: optimum, and larger steps overshoot (measured: docs/DESIGN-NOTES.md, "Default rates").
SPECTRAL_LR_FACTOR = 0.4
SPECTRAL_LOSSES = ("mrstft", "logmel")
DEFAULT_ITERATIONS = 500


def default_lr(optimizer: str, loss) -> float:
    """The default learning rate (normalized coordinates) of ``optimizer`` for ``loss``
    (a spec string or a parsed loss): ``DEFAULT_LRS[optimizer]``, times
    ``SPECTRAL_LR_FACTOR`` when the loss has a spectral term."""
    base = DEFAULT_LRS.get(optimizer, 0.05)
    if isinstance(loss, str):
        loss = parse_loss(loss)
    names = {getattr(term, "name", "") for _w, term in getattr(loss, "terms", ())}
    if names & set(SPECTRAL_LOSSES):
        return base * SPECTRAL_LR_FACTOR
    return base


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
    diverged_at   the iteration whose loss or gradient was NaN/Inf (stop "diverged"), else None
    best_iteration  the iteration whose values are ``params``
    start         with several starts: the index of the best one (0: the initial values)
    starts        one summary per start: ``{"start": values, "loss", "iterations", "stop_reason"}``
    ad            how the gradients were computed: "forward" or "reverse"
    """

    params: dict
    loss: float
    losses: list = field(default_factory=list)
    trajectories: dict = field(default_factory=dict)
    iterations: int = 0
    stop_reason: str = ""
    seconds: float = 0.0
    diverged_at: Optional[int] = None
    best_iteration: int = 0
    start: int = 0
    starts: list = field(default_factory=list)
    ad: str = "forward"

    def to_json(self) -> dict:
        """``{"params", "loss", "iterations", "stop_reason", "seconds", "best_iteration",
        "diverged_at", "ad"}`` and, with several starts, ``"start"`` and ``"starts"`` (JSON-ready;
        a non-finite loss is written as null)."""
        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None

        def value(v):
            return [float(x) for x in v] if isinstance(v, np.ndarray) else float(v)

        out = {"params": {k: value(v) for k, v in self.params.items()}, "loss": num(self.loss),
               "iterations": int(self.iterations), "stop_reason": self.stop_reason,
               "seconds": float(self.seconds), "best_iteration": int(self.best_iteration),
               "diverged_at": self.diverged_at, "ad": self.ad}
        if len(self.starts) > 1:
            out["start"] = int(self.start)
            out["starts"] = [dict(st, loss=num(st["loss"]), start={k: value(v) for k, v in st["start"].items()})
                             for st in self.starts]
        return out

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` atomically (a temporary file in the same
        folder, then ``os.replace``): a reader never sees a half-written file."""
        write_text(path, json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")


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
def loss_and_grad(dsp, lossf, target, x, n, values, ad: str = "forward"):
    """The block loss and its gradient w.r.t. the diff parameters, in their own units.

    Renders ``n`` samples of ``dsp`` (diff=True) from a reset state with ``values``
    (name -> value); ``target`` (primal_outputs, n), ``x`` (inputs, n) or None.
    Returns ``(L, dL/dp)`` with ``dL/dp[p] = sum_c sum_n dL/dy[c, n] * dy[c, p, n]``
    (float64, shape (n_diff,), ``dsp.diff_params`` order).
    ad: ``"forward"`` (render_jvp: one tangent per parameter) or ``"reverse"`` (``Dsp.vjp``:
    the tape and adjoint programs, a cost independent of the number of parameters).
    """
    from ..runtime.dsp import Dsp
    from .losses import cached_bind, is_pure_loss, param_gradient

    if ad == "reverse":
        return _loss_and_grad_reverse(dsp, lossf, target, x, n, values)
    if any(isinstance(values.get(p.path), np.ndarray) for p in dsp.diff_params):
        raise UsageError("a [diff:1] parameter given per sample is learned per sample by reverse mode "
                         "(ad='reverse' or 'auto'): forward mode gives one derivative per parameter")

    if not isinstance(dsp, Dsp):  # a stand-in with render_jvp only
        y, dy = dsp.render_jvp(x, n, params=values)
        L, g = lossf(y.astype(np.float64), target)
        g = np.asarray(g, dtype=np.float64).reshape(y.shape)
        return float(L), np.einsum("cn,cpn->p", g, dy.astype(np.float64))
    # the render goes into this thread's buffers (render_jvp's reuse): a step allocates no
    # large array it has to fault in (which cost more than the render of a small program)
    y, dy = dsp.render_jvp(x, n, params=values, reuse=True)
    if not is_pure_loss(lossf):
        y64 = y.astype(np.float64)  # a loss of the caller's own may keep its argument
    elif y.dtype == np.float64:
        y64 = y  # read, not kept, by the loss
    else:
        y64 = dsp._scratch("loss_and_grad.y", y.shape)
        np.copyto(y64, y)
    # a loss with target features (mrstft) computes them once per target (kept per thread)
    bound = cached_bind(dsp._tls, lossf, target)
    L, g = bound(y64) if bound is not None else lossf(y64, target)
    return float(L), param_gradient(np.asarray(g, dtype=np.float64).reshape(y.shape), dy)


def _loss_and_grad_reverse(dsp, lossf, target, x, n, values):
    """loss_and_grad by reverse mode: dL/dy is the cotangent of the backward sweep."""
    from .losses import cached_bind

    rev = dsp.reverse()
    bound = cached_bind(dsp._tls, lossf, target)
    box = {}

    def cotangent(y):
        y64 = y.astype(np.float64)
        L, g = bound(y64) if bound is not None else lossf(y64, target)
        g = np.asarray(g, dtype=np.float64).reshape(y.shape)
        box["L"] = float(L)
        if not (math.isfinite(box["L"]) and np.all(np.isfinite(g))):
            box["L"] = math.nan  # the fit stops as diverged; the sweep runs on zeros
            return np.zeros_like(g)
        return g

    const, vary = dsp._split_params(values)
    if not vary:
        G = rev.run(x, n, values, cotangent)
        grad = [G.by_path[p.path] for p in dsp.diff_params]
    else:  # curves: the variant reading them from inputs; a curve's gradient is per sample
        variant, x2, p2, paths, n = dsp._with_varying(x, n, values)
        G = variant.reverse().run(x2, n, p2, cotangent)
        grad = [G.input[dsp.inputs + paths.index(p.path)] if p.path in vary else [G.by_path[p.path]]
                for p in dsp.diff_params]
    if math.isnan(box["L"]):
        return math.nan, np.full(sum(np.size(g) for g in grad), math.nan)
    return box["L"], np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grad])


AD_MODES = ("auto", "forward", "reverse")


def choose_ad(dsp, ad: str, trial: Optional[Callable] = None, curves: bool = False) -> str:
    """The differentiation mode of a fit: ``forward`` or ``reverse`` as asked; ``auto``:
    forward for up to 2 parameters (one tangent each costs less than the tape and the
    backward sweep), else whichever of the two computes `trial(mode)` (one gradient of the
    fit's first block) faster, each timed twice; forward when reverse mode cannot be built
    for the program (a DerivativeError: rwtable...)."""
    if ad not in AD_MODES:
        raise UsageError(f"unknown differentiation mode '{ad}' (expected {', '.join(AD_MODES)})")
    if ad != "auto":
        return ad
    if curves:
        return "reverse"  # a curve has one gradient per sample: reverse mode only
    if len(dsp.diff_params) <= 2 or trial is None:
        return "forward"
    from ..errors import DerivativeError

    try:
        dsp.reverse()
    except DerivativeError:
        return "forward"
    return faster_mode(trial)


def faster_mode(trial: Callable, modes=("forward", "reverse"), reps: int = 2) -> str:
    """The mode m of `modes` for which trial(m) runs fastest (best of `reps` timings each)."""
    best = {}
    for mode in modes:
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            trial(mode)
            ts.append(time.perf_counter() - t0)
        best[mode] = min(ts)
    return min(best, key=best.get)


@dataclass
class _Setup:
    """What every iteration of a fit needs: the blocks, the loss, the optimizer and the
    parameter coordinates (built once by :func:`_setup`)."""

    dsp: object
    lossf: Callable
    opt: object
    lr: float
    lr_scale: np.ndarray        # per-parameter multiplier of lr (lr_params / lr)
    sched: object
    clip: Optional[float]
    diff_params: list
    labels: list
    bounds: list
    values: dict                # path -> value (fixed values and initial diff values)
    fixed: dict                 # label -> value of the non-diff widgets given in params
    blocks: list                # [(target (P, n), x (inputs, n) or None)], one per pair
    n: int
    ad: str = "forward"         # differentiation mode: forward | reverse (see choose_ad)
    sizes: list = field(default_factory=list)  # coordinates per diff parameter: 1, or n for a curve

    def size(self, k: int) -> int:
        return self.sizes[k] if self.sizes else 1

    def coordinate_bounds(self) -> list:
        """The bounds of every coordinate: a curve's n samples share its parameter's."""
        return [b for k, b in enumerate(self.bounds) for _ in range(self.size(k))]

    def split(self, flat) -> list:
        """A flat coordinate (or value) vector → one float or (n,) array per diff parameter."""
        out, a = [], 0
        for k in range(len(self.diff_params)):
            m = self.size(k)
            out.append(flat[a:a + m].copy() if m > 1 else float(flat[a]))
            a += m
        return out

    @property
    def curves(self) -> bool:
        return any(m > 1 for m in self.sizes)


def _key(dsp, p):
    """A widget's label, or its path when another widget has the same label."""
    return p.label if sum(q.label == p.label for q in dsp.params) == 1 else p.path


def _setup(dsp, target, x, *, loss, optimizer, lr, params, schedule, clip, n, lr_params) -> _Setup:
    diff_params = list(getattr(dsp, "diff_params", []) or [])
    if not diff_params:
        raise UsageError("the differentiable program has no [diff:1] parameter to learn")
    if not getattr(dsp, "diff", False):
        raise UsageError("fitting needs a program compiled with diff=True")
    lossf = parse_loss(loss) if isinstance(loss, str) else loss
    if not callable(lossf):
        raise UsageError(f"loss must be a loss name such as 'mse' or a callable, got {loss!r}")
    opt = get_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    if lr is None:
        lr = default_lr(getattr(opt, "name", ""), lossf)
    lr = float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"the learning rate must be a positive number, got {lr}")
    sched = make_schedule(schedule) if isinstance(schedule, str) else schedule
    if clip is not None and not (float(clip) > 0 and math.isfinite(float(clip))):
        raise UsageError(f"the gradient clipping norm must be a positive number, got {clip}")
    # one block or a batch of (target, input) pairs
    if isinstance(target, (list, tuple)):
        if not target:
            raise UsageError("the batch of targets is empty")
        xs = list(x) if isinstance(x, (list, tuple)) else [x] * len(target)
        if len(xs) != len(target):
            raise UsageError(f"the batch has {len(target)} target(s) but {len(xs)} input(s)")
    else:
        target, xs = [target], [x]
    blocks, lengths = [], set()
    for k, (tk, xk) in enumerate(zip(target, xs)):
        try:
            t, xx, nk = check_signals(dsp, tk, xk, n)
        except UsageError as e:
            if len(target) == 1:
                raise
            raise UsageError(f"pair {k + 1} of the batch: {e}") from None
        blocks.append((t, xx))
        lengths.add(nk)
    if len(lengths) > 1:
        raise UsageError(f"the pairs of a batch must have the same length, got {sorted(lengths)} samples "
                         "(give n to cut them)")
    n = lengths.pop()
    if params is not None and not hasattr(params, "items"):
        raise UsageError(f"params must be a dict {{name: value}}, got {type(params).__name__}")
    values = {p.path: float(p.init) for p in dsp.params}
    given = set()
    for k, v in (params or {}).items():
        i = dsp.param_index(k)
        given.add(i)
        p = dsp.params[i]
        if isinstance(v, (np.ndarray, list, tuple)) and np.ndim(v) >= 1:
            # a curve: one value per sample (learned per sample when [diff:1], else a fixed automation)
            a = np.asarray(v, dtype=np.float64)
            if a.ndim != 1 or a.shape[0] != n:
                raise UsageError(f"parameter '{p.label}' given per sample must have shape ({n},) (the block's "
                                 f"samples), got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise UsageError(f"parameter '{p.label}' given per sample holds NaN or Inf")
            values[p.path] = a
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"parameter '{p.label}': the value must be a real number, got {v!r}") from None
        if not math.isfinite(v):
            raise UsageError(f"parameter '{p.label}': the initial value must be finite, got {v}")
        values[p.path] = v
    diff_paths = {p.path for p in diff_params}
    fixed = {_key(dsp, dsp.params[i]): values[dsp.params[i].path] for i in sorted(given)
             if dsp.params[i].path not in diff_paths}
    lr_scale = np.ones(len(diff_params))
    for k, v in (lr_params or {}).items():
        i = dsp.param_index(k)
        p = dsp.params[i]
        if p.path not in diff_paths:
            raise UsageError(f"learning rate given for '{p.label}', which is not a [diff:1] parameter "
                             f"(learnable: {', '.join(_key(dsp, q) for q in diff_params)})")
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"the learning rate of '{p.label}' must be a number, got {v!r}") from None
        if not (v >= 0 and math.isfinite(v)):
            raise UsageError(f"the learning rate of '{p.label}' must be a finite number >= 0, got {v}")
        lr_scale[[q.path for q in diff_params].index(p.path)] = v / lr
    sizes = [n if isinstance(values[p.path], np.ndarray) else 1 for p in diff_params]
    return _Setup(dsp, lossf, opt, lr, lr_scale, sched, None if clip is None else float(clip), diff_params,
                  [_key(dsp, p) for p in diff_params], [param_bounds(p) for p in diff_params],
                  values, fixed, blocks, n, sizes=sizes)


def _batch_loss_and_grad(s: _Setup, values: dict):
    """Loss and dL/dp averaged over the batch's pairs: L = (1/K) Σ_k L_k."""
    if len(s.blocks) == 1:
        t, xx = s.blocks[0]
        return loss_and_grad(s.dsp, s.lossf, t, xx, s.n, values, s.ad)
    L, g = 0.0, 0.0
    for t, xx in s.blocks:
        Lk, gk = loss_and_grad(s.dsp, s.lossf, t, xx, s.n, values, s.ad)
        L, g = L + Lk, g + gk
    K = len(s.blocks)
    return L / K, g / K


class _Schedule:
    """The learning rate of each step: a fixed schedule (lr_at) or the plateau rule."""

    def __init__(self, sched, lr: float, total: int):
        self.sched, self.total = sched, max(total, 1)
        self.plateau = plateau_init(lr, sched) if sched.name == "plateau" else None
        self.lr = lr

    def after(self, it: int, loss: float) -> float:
        """The rate of the step that follows iteration ``it`` (1-based) whose loss is ``loss``."""
        if self.plateau is not None:
            self.plateau = plateau_update(self.plateau, loss, self.sched)
            return self.plateau.lr
        return lr_at(self.sched, self.lr, it - 1, self.total)


#: adaptive schedule: a step is accepted when its loss is at most the largest of the last
#: NONMONOTONE accepted losses (a non-monotone line search, Grippo et al. 1986), so the fit
#: is not trapped in the small pits of a rough loss (a table oscillator's staircase)
NONMONOTONE = 10


def _optimize(s: _Setup, u0: np.ndarray, iterations: int, tolerance: float, patience: Optional[int],
              callback: Optional[Callable], step_fn: Callable) -> dict:
    """The optimization loop in normalized coordinates from ``u0``.

    ``step_fn(values, it) -> (L, dL/dp)`` evaluates one iteration (a block render, or
    a window of a stream).  Returns the best iteration's values, the history and the
    stop reason ("iterations", "tolerance", "patience", "diverged", "callback")."""
    box = UnitBox(s.coordinate_bounds())
    lr_scale = np.repeat(s.lr_scale, [s.size(k) for k in range(len(s.diff_params))])

    def current(uu):
        return s.split(box.values(uu)) if s.curves else box.values(uu).tolist()

    values = dict(s.values)
    u = np.array(u0, dtype=np.float64)
    state = s.opt.init(u)
    adaptive = s.sched.name == "adaptive"
    sched = None if adaptive else _Schedule(s.sched, s.lr, iterations)
    accepted = None   # adaptive: (u, L, dL/du, optimizer state) of the last accepted point
    warm, rejects = s.sched.warmup, 0
    recent = [math.inf]  # adaptive: the last NONMONOTONE accepted losses
    losses, traj = [], {lab: [] for lab in s.labels}
    best_loss, best_vals, best_it = math.inf, current(u), 0
    stop, diverged_at = "iterations", None
    for it in range(1, iterations + 1):
        vals = current(u)
        for p, v in zip(s.diff_params, vals):
            values[p.path] = v
        L, grad_p = step_fn(values, it)
        if not math.isfinite(L) or not finite(grad_p):
            stop, diverged_at = "diverged", it
            break
        losses.append(L)
        for lab, v in zip(s.labels, vals):
            if not isinstance(v, np.ndarray):  # a curve's values are not kept per iteration
                traj[lab].append(v)
        if L < best_loss:
            best_loss, best_vals, best_it = L, vals, it
        if callback is not None and callback(it, L, dict(zip(s.labels, vals))) is True:
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
        # dL/du = dL/dp · dp/du (normalized coordinates)
        grad_u = grad_p * box.dvalue_du(u)
        if s.clip is not None:
            grad_u = clip_by_norm(grad_u, s.clip)
        if not adaptive:
            step, state = s.opt.update(grad_u, state, sched.after(it, L))
            u = np.clip(u + step * lr_scale, 0.0, 1.0)
            continue
        # backtracking: accept u when L <= the accepted loss (then the rate grows), else undo
        # the step and take it again from the accepted point at half the rate; after 8
        # rejections in a row the optimizer's moments restart (their direction may not descend)
        if accepted is None or L <= max(recent):
            if accepted is not None:
                warm = min(1.0, warm * s.sched.growth)
            accepted, rejects = (u, L, grad_u, state), 0
            recent.append(L)
            del recent[:-NONMONOTONE]
        else:
            rejects += 1
            warm = max(warm * 0.5, 1e-12)
            if rejects % 8 == 0:
                accepted = accepted[:3] + (s.opt.init(accepted[0]),)
        u_a, _L_a, g_a, state_a = accepted
        step, state = s.opt.update(g_a, state_a, s.lr * warm)
        u = np.clip(u_a + step * lr_scale, 0.0, 1.0)
    return {"values": best_vals, "loss": best_loss, "losses": losses, "traj": traj, "stop": stop,
            "diverged_at": diverged_at, "best_iteration": best_it}


def start_points(s: _Setup, starts: int, seed: int = 0) -> list:
    """``starts`` initial points in normalized coordinates: the given/initial values first,
    then points spread over the ranges (a scrambled Halton sequence, deterministic by
    ``seed``; never the slider ends, which are often degenerate: e.g. a gain of 0)."""
    u0 = np.concatenate([np.atleast_1d(to_unit(s.values[p.path], *b)) for p, b in zip(s.diff_params, s.bounds)])
    if s.curves:  # the spread points: each curve constant at its parameter's point
        sizes = [s.size(k) for k in range(len(s.diff_params))]
        return [u0] + [np.repeat(p, sizes) for p in _spread(len(s.diff_params), starts, seed)]
    return [u0] + _spread(len(u0), starts, seed)


def _spread(dims: int, starts: int, seed: int) -> list:
    """``starts - 1`` points of [0.05, 0.95]^dims (a scrambled Halton sequence)."""
    points = []
    u0 = np.zeros(dims)
    primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53]
    rng = np.random.default_rng(seed)
    shift = rng.random(len(u0))
    for k in range(1, starts):
        pt = []
        for d in range(len(u0)):
            b, f, r, i = primes[d % len(primes)], 1.0, 0.0, k
            while i > 0:  # radical inverse of k in base b
                f /= b
                r += f * (i % b)
                i //= b
            pt.append((r + shift[d]) % 1.0)
        points.append(0.05 + 0.9 * np.array(pt))
    return points


def _result(s: _Setup, runs: list, best: int, seconds: float) -> FitResult:
    r = runs[best]
    params = dict(zip(s.labels, r["values"]))
    params.update(s.fixed)
    summary = [{"start": dict(zip(s.labels, run["init"])), "loss": (run["loss"] if run["loss"] < math.inf
                                                                   else math.nan),
                "iterations": len(run["losses"]), "stop_reason": run["stop"]} for run in runs]
    return FitResult(params=params, loss=r["loss"] if r["loss"] < math.inf else math.nan, losses=r["losses"],
                     trajectories=r["traj"], iterations=len(r["losses"]), stop_reason=r["stop"],
                     seconds=seconds, diverged_at=r["diverged_at"], best_iteration=r["best_iteration"],
                     start=best, starts=summary)


def _fit_starts(s: _Setup, iterations, tolerance, patience, callback, starts, seed, step_fn_for) -> FitResult:
    start = time.perf_counter()
    starts = _positive_int(starts, "starts")
    if starts < 1:
        raise UsageError("starts must be at least 1")
    runs = []
    for k, u0 in enumerate(start_points(s, starts, seed)):
        run = _optimize(s, u0, iterations, tolerance, patience, callback, step_fn_for())
        run["init"] = s.split(UnitBox(s.coordinate_bounds()).values(u0)) if s.curves else \
            [from_unit(ui, *b) for ui, b in zip(u0, s.bounds)]
        runs.append(run)
        if run["stop"] in ("callback", "tolerance"):
            break
    best = min(range(len(runs)), key=lambda k: (runs[k]["loss"], k))
    return _result(s, runs, best, time.perf_counter() - start)


def fit_block(dsp, target, x=None, *, loss="mse", optimizer="adam", lr: Optional[float] = None,
              iterations: int = DEFAULT_ITERATIONS, params: Optional[dict] = None,
              schedule="adaptive", clip: Optional[float] = None, tolerance: float = 0.0,
              patience: Optional[int] = None, n: Optional[int] = None,
              callback: Optional[Callable] = None, lr_params: Optional[dict] = None,
              starts: int = 1, seed: int = 0, ad: str = "auto") -> FitResult:
    """Fit the ``[diff:1]`` parameters of ``dsp`` so that its output matches ``target``.

    dsp         a Dsp compiled with ``diff=True`` (``double=True`` recommended)
    target      the target signal, shape (primal_outputs, samples) (1-D for one output);
                or a list of targets (a batch: the loss is the mean over its pairs)
    x           the input signal, shape (dsp.inputs, samples); ignored (None) without inputs;
                with a batch, a list of inputs (one per target) or one input for all
    loss        a block loss spec: a name of ``losses.BLOCK_LOSSES`` or a weighted sum
                such as ``"mse+0.5*mrstft"``, or a callable ``f(y, t) -> (value, dL/dy)``
    optimizer   ``adam`` (default), ``rmsprop``, ``momentum``, ``sgd`` or an optimizer object
    lr          learning rate in normalized coordinates (fraction of a slider's range);
                default :func:`default_lr` (adam: 0.05; 0.02 with a spectral loss)
    iterations  at most this many iterations per start (one render of the block each)
    params      initial values (label, path or index -> value, clamped into [min, max]) of
                diff parameters, and fixed values of other widgets; an array (n,) gives a
                curve, one value per sample: a diff parameter's curve is learned per sample
                (reverse mode; its result is an array, its trajectory is not kept), another
                widget's is a fixed automation
    schedule    learning-rate schedule: ``adaptive`` (default: warm-up from 1 % of lr, growing
                ×1.25 per accepted step; a step whose loss exceeds the largest of the last 10
                accepted ones is undone and retried at half the rate), ``plateau`` (halve the
                rate after 50 iterations without a new best), ``constant``, ``cosine``,
                ``exponential``, or an ``optim.Schedule``
    clip        clip the gradient (in normalized coordinates) to this global L2 norm
    tolerance   stop once the loss is <= tolerance ("tolerance")
    patience    stop when the best loss has not improved for this many iterations ("patience")
    n           samples per block (default: the target's length)
    callback    ``callback(iteration, loss, params_dict)`` after each iteration (1-based; it
                starts again at 1 with each start); returning True stops the fit ("callback")
    lr_params   per-parameter learning rates (label -> lr in normalized coordinates)
    starts      multi-start: run from the initial values, then from ``starts - 1`` points
                spread over the sliders' ranges, and keep the best
    seed        the spread of the extra starting points
    ad          how gradients are computed: ``forward`` (one tangent per parameter),
                ``reverse`` (tape and backward sweep: a cost independent of the number of
                parameters) or ``auto`` (default: see :func:`choose_ad`); ``FitResult.ad``
                says which ran

    A NaN or infinite loss or gradient stops a start with ``stop_reason == "diverged"``
    (``diverged_at`` = that iteration); the values kept are those of the best iteration.
    Returns a :class:`FitResult` whose ``params`` are those of the best iteration.
    """
    iterations = _positive_int(iterations, "iterations")
    patience = _positive_int(patience, "patience", allow_none=True)
    s = _setup(dsp, target, x, loss=loss, optimizer=optimizer, lr=lr, params=params, schedule=schedule,
               clip=clip, n=n, lr_params=lr_params)
    t0, x0 = s.blocks[0]
    s.ad = choose_ad(dsp, ad, lambda mode: loss_and_grad(dsp, s.lossf, t0, x0, s.n, dict(s.values), mode),
                     curves=s.curves)
    if s.curves and s.ad != "reverse":
        raise UsageError("a [diff:1] parameter given per sample is learned per sample by reverse mode: "
                         "ad='reverse' or 'auto', not 'forward'")

    def step_fn_for():
        return lambda values, it: _batch_loss_and_grad(s, values)

    res = _fit_starts(s, iterations, float(tolerance), patience, callback, starts, seed, step_fn_for)
    res.ad = s.ad
    return res


DEFAULT_WINDOW = 2048


class _Stream:
    """Consecutive windows of one signal, state and tangent state carried across them.

    Each iteration renders the next ``hop`` samples with the current values (the
    instance keeps running: its state, and the derivative channels' tangent state,
    continue from the previous window), keeps the last ``window`` samples of outputs
    and derivatives, and returns the loss over them and dL/dp.  At the end of the
    signal the instance is reset and the stream starts again from sample 0 (an epoch).
    The derivative is that of a run whose parameters were constant over the window's
    history (the usual truncation of online, real-time recurrent learning)."""

    def __init__(self, s: _Setup, window: int, hop: int):
        if len(s.blocks) != 1:
            raise UsageError("stream mode takes one input/target pair, not a batch")
        self.s, self.window, self.hop = s, window, hop
        self.t, self.x = s.blocks[0]
        self.inst = None
        self.pos = 0            # next sample of the signal to render
        self.y = self.dy = None

    def __call__(self, values: dict, it: int):
        s, P, K = self.s, self.s.dsp.primal_outputs, len(self.s.diff_params)
        if self.inst is None or self.pos >= s.n:  # fixed widgets set once per epoch
            self.inst, self.pos = s.dsp.instance(params=values), 0
            self.y = np.zeros((P, 0))
            self.dy = np.zeros((P, K, 0))
        for p in s.diff_params:
            self.inst.set_param(p.path, values[p.path])
        h = min(self.hop, s.n - self.pos)
        xx = None if self.x is None else self.x[:, self.pos:self.pos + h]
        out = np.asarray(self.inst.compute(xx, h), dtype=np.float64)
        self.y = np.concatenate([self.y, out[:P]], axis=1)[:, -self.window:]
        self.dy = np.concatenate([self.dy, out[P:].reshape(P, K, h)], axis=2)[:, :, -self.window:]
        self.pos += h
        w = self.y.shape[1]
        t = self.t[:, self.pos - w:self.pos]
        L, g = s.lossf(self.y, t)
        g = np.asarray(g, dtype=np.float64).reshape(self.y.shape)
        return float(L), np.einsum("cn,cpn->p", g, self.dy)


def fit_stream(dsp, target, x=None, *, window: int = DEFAULT_WINDOW, hop: Optional[int] = None,
               loss="mse", optimizer="adam", lr: Optional[float] = None, iterations: int = DEFAULT_ITERATIONS,
               params: Optional[dict] = None, schedule="plateau", clip: Optional[float] = None,
               tolerance: float = 0.0, patience: Optional[int] = None, n: Optional[int] = None,
               callback: Optional[Callable] = None, lr_params: Optional[dict] = None,
               starts: int = 1, seed: int = 0) -> FitResult:
    """Fit on consecutive windows of a stream: one update per ``hop`` new samples.

    The form that can run against live audio: the program keeps running (state and
    tangent state carried from window to window, parameters changed between windows);
    the loss of an iteration is taken over the last ``window`` samples (default 2048;
    ``hop`` default = ``window``: no overlap); when the signal ends it starts again from
    a reset state.  Arguments as :func:`fit_block`; ``iterations`` counts windows.
    A window's loss depends on where it lies in the signal, so the best iteration is that
    of the lowest window loss, and ``tolerance``/``patience`` see window losses; for the same
    reason the default schedule is ``plateau`` and ``adaptive`` (which compares the losses of
    successive iterations) is refused.
    """
    iterations = _positive_int(iterations, "iterations")
    patience = _positive_int(patience, "patience", allow_none=True)
    window = _positive_int(window, "window")
    hop = window if hop is None else _positive_int(hop, "hop")
    if window < 1 or hop < 1:
        raise UsageError("window and hop must be at least 1 sample")
    if hop > window:
        raise UsageError(f"the hop ({hop}) must not exceed the window ({window})")
    s = _setup(dsp, target, x, loss=loss, optimizer=optimizer, lr=lr, params=params, schedule=schedule,
               clip=clip, n=n, lr_params=lr_params)
    if s.curves:
        raise UsageError("a [diff:1] parameter given per sample is learned by block fits (mode='block'), "
                         "not by stream fits")
    if window > s.n:
        raise UsageError(f"the window ({window} samples) is longer than the signal ({s.n} samples)")
    if s.sched.name == "adaptive":
        raise UsageError("the adaptive schedule compares the losses of successive iterations, which in "
                         "stream mode are different windows: use plateau (default), constant, cosine or "
                         "exponential")
    return _fit_starts(s, iterations, float(tolerance), patience, callback, starts, seed,
                       lambda: _Stream(s, window, hop))


# ------------------------------------------------------------- diffaust.fit
_COMPILE_OPTIONS = ("double", "sample_rate", "import_dirs", "nondiff", "allow_native", "use_cache", "block_size")


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
                           allow_native=diff.options.allow_native, block_size=diff.block_size)
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
               or a sound file (.wav .flac .aiff .ogg) or .npy file (its length sets the
               samples; NaN/Inf is an error).  Block mode also takes a list of targets, a
               batch, with a list of inputs (one per target): the loss is their mean
    input      the input signal, shape (inputs, samples), or a sound/.npy file (cut to the
               target's length); None for a program without input.  A sound file's sample
               rate is the compile rate (an error when ``sample_rate`` or another file differs)
    mode       ``"block"`` (default): :func:`fit_block`, whole-block loss, any optimizer;
               ``"stream"``: :func:`fit_stream`, consecutive windows (``window``, ``hop``
               options), state carried, one update per window;
               ``"sample"``: the per-sample trainer :func:`diffaust.train.fit.fit`
               (plain SGD, a step per sample; returns its ``History``)
    loss       block/stream: a ``BLOCK_LOSSES`` spec such as ``"l2"`` (default, the mean of
               (y - t)²), ``"mrstft"`` or ``"l2+0.5*mrstft"``; sample mode: ``"l2"`` or ``"l1"``
    optimizer  block/stream: adam (default), rmsprop, momentum, sgd; sample mode: sgd only
    lr         block/stream: in normalized coordinates (default: adam 0.05, 0.02 with a spectral
               loss term; see :func:`default_lr`);
               sample mode: in parameter units (default 0.1)
    iterations block/stream: iterations (default 500); sample mode: samples (default 10000)
    params     initial values (label or path -> value, in the widget's units)
    callback   block/stream: ``callback(iteration, loss, params_dict)``, True stops;
               sample mode: called with a ``Row`` per sample
    options    compile options for paths and source text: double (default True),
               sample_rate (Hz, default 44100), import_dirs, nondiff, allow_native, use_cache,
               block_size (samples per compute() call, default 256: Faust's `count`);
               n (samples; default the target's length); progress (block/stream: a tqdm
               progress bar on stderr after one second, default False); then the options of the chosen
               mode (block/stream: schedule, clip, tolerance, patience, lr_params, starts,
               seed; block: ad ("auto", "forward", "reverse"); stream: window, hop; sample:
               sensitivity, patience)

    Returns a :class:`FitResult` (block and stream modes) or a ``History`` (sample mode).

    >>> res = diffaust.fit("learn.dsp", "target.wav", "input.wav", loss="l2+mrstft")
    >>> res.params                       # {label: value}
    >>> res.save("fit.json")
    """
    copts = {k: options.pop(k) for k in _COMPILE_OPTIONS if k in options}
    copts.setdefault("double", True)
    n = options.pop("n", None)
    progress = options.pop("progress", False)
    if mode not in ("block", "stream", "sample"):
        raise UsageError(f"fit: unknown mode '{mode}' (expected 'block', 'stream' or 'sample')")
    if isinstance(target, (list, tuple)):
        if mode != "block":
            raise UsageError(f"fit: a batch (a list of targets) needs mode='block', not mode='{mode}'")
        inputs = list(input) if isinstance(input, (list, tuple)) else [input] * len(target)
        if len(inputs) != len(target):
            raise UsageError(f"fit: {len(target)} targets but {len(inputs)} inputs")
        if not target:
            raise UsageError("fit: the batch of targets is empty")
    else:
        inputs, target = [input], [target]
    read = [_read_files(i, t, copts) for i, t in zip(inputs, target)]
    rates = {r[2] for r in read if r[2] is not None}
    if len(rates) > 1:
        raise UsageError(f"fit: the files of the batch have different sample rates ({sorted(rates)} Hz); "
                         "diffaust does not resample")
    wav_rate = rates.pop() if rates else None
    dsp = _compile_diff(diff, copts)
    if wav_rate is not None and dsp.sample_rate != wav_rate:
        raise UsageError(f"fit: the program was compiled at {dsp.sample_rate} Hz but the sound file is at "
                         f"{wav_rate} Hz (diffaust does not resample)")
    ts, xs = [], []
    for k, (inp, tgt, _rate, input_file) in enumerate(read):
        where = f"fit: pair {k + 1} of the batch: " if len(read) > 1 else ""
        try:
            t, x = _prepare_pair(dsp, inp, tgt, input_file, n, copts)
        except UsageError as e:
            raise UsageError(where + str(e)) if where else e from None
        ts.append(t)
        xs.append(x)
    if mode == "sample":
        from .fit import DEFAULT_ITERATIONS as SAMPLE_ITERATIONS, DEFAULT_LR as SAMPLE_LR, fit as _fit_sample

        if optimizer not in (None, "sgd"):
            raise UsageError(f"fit: mode='sample' supports only optimizer='sgd', got '{optimizer}'")
        unknown = set(options) - {"sensitivity", "patience"}
        if unknown:
            raise UsageError(f"fit: mode='sample' does not take {', '.join(sorted(unknown))}")
        t = ts[0] if n is None else ts[0][:, :n]
        return _fit_sample(dsp, t, xs[0], loss=loss or "l2", lr=SAMPLE_LR if lr is None else lr,
                           iterations=SAMPLE_ITERATIONS if iterations is None else iterations,
                           params=params, callback=callback, **options)
    allowed = {"schedule", "clip", "tolerance", "patience", "lr_params", "starts", "seed"}
    if mode == "stream":
        allowed |= {"window", "hop"}
        if options.get("ad", "forward") not in ("auto", "forward"):
            raise UsageError("fit: mode='stream' carries the tangents from window to window: forward mode "
                             "only (ad='forward' or 'auto')")
        options.pop("ad", None)
    else:
        allowed |= {"ad"}
    unknown = set(options) - allowed
    if unknown:
        raise UsageError(f"fit: mode='{mode}' does not take {', '.join(sorted(unknown))}")
    iterations = DEFAULT_ITERATIONS if iterations is None else iterations
    bar = None
    if progress:
        from .progress import Progress

        bar = Progress(iterations * int(options.get("starts", 1) or 1))
        user_callback = callback

        def callback(i, L, values):
            bar.update(L, values)
            return None if user_callback is None else user_callback(i, L, values)
    kw = dict(loss=loss or "l2", optimizer=optimizer or "adam", lr=lr, iterations=iterations,
              params=params, callback=callback, n=n, **options)
    try:
        if mode == "stream":
            return fit_stream(dsp, ts[0], xs[0], **kw)
        if len(ts) > 1:
            return fit_block(dsp, ts, xs, **kw)
        return fit_block(dsp, ts[0], xs[0], **kw)
    finally:
        if bar is not None:
            bar.close()


def _prepare_pair(dsp, input, target, input_file: bool, n, copts: dict):
    """(target (P, samples), input (inputs, samples) or None) of one pair, checked."""
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
    return t, x
