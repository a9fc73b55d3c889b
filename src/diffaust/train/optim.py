"""Optimizers, learning-rate schedules, gradient clipping and parameter coordinates.

Small pure pieces (no global state, nothing mutated in place):

* **Optimizers** ``sgd``, ``momentum``, ``adam``, ``rmsprop``: each has
  ``init(params) -> state`` and ``update(grad, state, lr) -> (step, new_state)``.
  Parameters and gradients are 1-D float64 arrays of length P.  ``step`` is the
  increment to *add* to the parameters (it already carries the minus sign)::

      opt = get_optimizer("adam")
      state = opt.init(p)
      for i in range(n):
          step, state = opt.update(grad(p), state, lr_at("cosine", 0.1, i, n))
          p = p + step

  A state is a frozen dataclass whose arrays are read-only: ``update`` returns a
  new state and leaves the old one as it was.  The update rules are those of
  ``torch.optim`` with its default hyper-parameters (same sequence of steps).

* **Schedules** ``constant``, ``cosine``, ``exponential``:
  ``lr_at(schedule, base_lr, iteration, total)`` (``schedule``: a name or a
  :class:`Schedule` made by :func:`make_schedule`); ``plateau`` follows the loss:
  ``plateau_init(base_lr)`` and ``plateau_update(state, loss, schedule) -> state``
  (``state.lr`` is the rate of the next step).

* **Clipping** :func:`clip_by_norm` (global L2 norm) and :func:`finite`.

* **Normalized coordinates** (a slider's [min, max] ↔ [0, 1], logarithmic for
  ``[scale:log]`` or ``[unit:Hz]`` sliders): :func:`to_unit`, :func:`from_unit`,
  :func:`dvalue_du` (chain-rule factor), :func:`project` (clamp), :func:`is_log`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Union

import numpy as np

from ..errors import UsageError

__all__ = [
    "SGD", "Momentum", "Adam", "RMSprop", "sgd", "momentum", "adam", "rmsprop",
    "SGDState", "MomentumState", "AdamState", "RMSpropState",
    "OPTIMIZERS", "get_optimizer",
    "Schedule", "SCHEDULES", "make_schedule", "lr_at", "PlateauState", "plateau_init", "plateau_update",
    "global_norm", "clip_by_norm", "finite",
    "to_unit", "from_unit", "dvalue_du", "project", "is_log", "param_bounds", "UnitBox",
]


# ------------------------------------------------------------------ helpers
def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` marked read-only (so that a state can't be changed in place by accident)."""
    a.setflags(write=False)
    return a


def _vector(x, what: str) -> np.ndarray:
    """A fresh 1-D float64 copy of ``x`` (shape (P,))."""
    a = np.array(x, dtype=np.float64, copy=True)
    if a.ndim != 1:
        raise UsageError(f"the {what} must be a 1-D array of parameters, got shape {a.shape}")
    return a


def _grad(grad, like: np.ndarray) -> np.ndarray:
    g = _vector(grad, "gradient")
    if g.shape != like.shape:
        raise UsageError(f"the gradient has {g.shape[0]} entries, the optimizer state {like.shape[0]}")
    return g


def _check_lr(lr: float) -> float:
    # 0 is allowed: a cosine schedule ends there.
    lr = float(lr)
    if not (lr >= 0 and math.isfinite(lr)):
        raise UsageError(f"the learning rate must be a finite number >= 0, got {lr}")
    return lr


def _check_unit_interval(name: str, value: float, *, closed_low: bool = True) -> None:
    ok = (0 <= value < 1) if closed_low else (0 < value < 1)
    if not (isinstance(value, (int, float)) and ok):
        raise UsageError(f"{name} must be in [0, 1), got {value}")


# --------------------------------------------------------------- optimizers
@dataclass(frozen=True)
class SGDState:
    count: int                 # updates done so far


@dataclass(frozen=True)
class MomentumState:
    count: int
    velocity: np.ndarray       # (P,), read-only


@dataclass(frozen=True)
class AdamState:
    count: int                 # t: updates done so far (bias correction)
    m: np.ndarray              # (P,) first moment, read-only
    v: np.ndarray              # (P,) second moment, read-only


@dataclass(frozen=True)
class RMSpropState:
    count: int
    square_avg: np.ndarray     # (P,) running mean of g², read-only


@dataclass(frozen=True)
class SGD:
    """Plain gradient descent (the per-sample trainer's rule in ``fit.py``)."""

    name: str = "sgd"
    description: str = "plain gradient descent: p <- p - lr*g"

    def init(self, params) -> SGDState:
        _vector(params, "parameter vector")
        return SGDState(0)

    def update(self, grad, state: SGDState, lr: float):
        """``(step, new_state)``; ``grad`` shape (P,), ``step`` shape (P,)."""
        lr = _check_lr(lr)
        g = _vector(grad, "gradient")
        # p ← p − lr·g
        return _frozen(-lr * g), SGDState(state.count + 1)


@dataclass(frozen=True)
class Momentum:
    """Heavy-ball momentum, as ``torch.optim.SGD(momentum=beta)`` (no dampening)."""

    beta: float = 0.9
    name: str = "momentum"
    description: str = "heavy-ball momentum (beta 0.9): v <- beta*v + g; p <- p - lr*v"

    def __post_init__(self):
        _check_unit_interval("momentum beta", self.beta)

    def init(self, params) -> MomentumState:
        p = _vector(params, "parameter vector")
        return MomentumState(0, _frozen(np.zeros_like(p)))

    def update(self, grad, state: MomentumState, lr: float):
        lr = _check_lr(lr)
        g = _grad(grad, state.velocity)
        # v ← βv + g;  p ← p − lr·v     (first step: v = g, as torch)
        v = self.beta * state.velocity + g
        return _frozen(-lr * v), MomentumState(state.count + 1, _frozen(v))


@dataclass(frozen=True)
class Adam:
    """Adam with bias correction, as ``torch.optim.Adam`` (no weight decay, no amsgrad)."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: str = "adam"
    description: str = "Adam (beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected)"

    def __post_init__(self):
        _check_unit_interval("adam beta1", self.beta1)
        _check_unit_interval("adam beta2", self.beta2)
        if not (self.eps > 0 and math.isfinite(self.eps)):
            raise UsageError(f"adam eps must be a positive number, got {self.eps}")

    def init(self, params) -> AdamState:
        p = _vector(params, "parameter vector")
        return AdamState(0, _frozen(np.zeros_like(p)), _frozen(np.zeros_like(p)))

    def update(self, grad, state: AdamState, lr: float):
        lr = _check_lr(lr)
        g = _grad(grad, state.m)
        t = state.count + 1
        b1, b2 = self.beta1, self.beta2
        # m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
        m = b1 * state.m + (1 - b1) * g
        v = b2 * state.v + (1 - b2) * g * g
        # m̂ = m/(1−β₁ᵗ);  v̂ = v/(1−β₂ᵗ);  p ← p − lr·m̂/(√v̂+ε)
        # (first step: m̂ = g, v̂ = g², so the step is lr·sign(g) up to ε)
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        step = -lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return _frozen(step), AdamState(t, _frozen(m), _frozen(v))


@dataclass(frozen=True)
class RMSprop:
    """RMSprop, as ``torch.optim.RMSprop`` (not centered, no momentum)."""

    alpha: float = 0.99
    eps: float = 1e-8
    name: str = "rmsprop"
    description: str = "RMSprop (alpha 0.99, eps 1e-8): p <- p - lr*g/(sqrt(E[g^2])+eps)"

    def __post_init__(self):
        _check_unit_interval("rmsprop alpha", self.alpha)
        if not (self.eps > 0 and math.isfinite(self.eps)):
            raise UsageError(f"rmsprop eps must be a positive number, got {self.eps}")

    def init(self, params) -> RMSpropState:
        p = _vector(params, "parameter vector")
        return RMSpropState(0, _frozen(np.zeros_like(p)))

    def update(self, grad, state: RMSpropState, lr: float):
        lr = _check_lr(lr)
        g = _grad(grad, state.square_avg)
        # s ← αs + (1−α)g²;  p ← p − lr·g/(√s+ε)
        s = self.alpha * state.square_avg + (1 - self.alpha) * g * g
        step = -lr * g / (np.sqrt(s) + self.eps)
        return _frozen(step), RMSpropState(state.count + 1, _frozen(s))


sgd = SGD()
momentum = Momentum()
adam = Adam()
rmsprop = RMSprop()

#: name → optimizer with default hyper-parameters (each has ``.description``).
OPTIMIZERS = {o.name: o for o in (sgd, momentum, adam, rmsprop)}

Optimizer = Union[SGD, Momentum, Adam, RMSprop]


def get_optimizer(name: str, **hyper) -> Optimizer:
    """The optimizer called ``name``; keyword arguments override its hyper-parameters
    (e.g. ``get_optimizer("adam", beta1=0.8)``)."""
    try:
        opt = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown optimizer '{name}' (expected one of {', '.join(OPTIMIZERS)})") from None
    if not hyper:
        return opt
    try:
        return replace(opt, **hyper)
    except TypeError:
        known = [f for f in opt.__dataclass_fields__ if f not in ("name", "description")]
        raise UsageError(f"optimizer '{name}' takes {', '.join(known) or 'no hyper-parameter'}; "
                         f"got {', '.join(hyper)}") from None


# ----------------------------------------------------------------- schedules
@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``name`` and its settings.

    constant     lr = base_lr
    cosine       lr = floor + (base_lr − floor)·½(1 + cos(π·min(i/total, 1)))
                 (base_lr at i = 0, floor at i = total, like torch's
                 CosineAnnealingLR with T_max = total, eta_min = floor)
    exponential  lr = base_lr·gammaⁱ (gamma per iteration, in (0, 1])
    adaptive     backtracking with warm-up, run by the block fitter: the rate starts at
                 base_lr·warmup and grows ×growth (up to base_lr) after each accepted step;
                 a step whose loss is above the last accepted one is undone and retried
                 from the accepted point at half the rate
    plateau      lr ← max(lr·factor, base_lr·min_ratio) once the best loss has not
                 improved by more than ``threshold`` (relative) for ``patience``
                 iterations (torch's ReduceLROnPlateau, mode "min", threshold_mode
                 "rel"); the state lives in :class:`PlateauState`
    """

    name: str = "constant"
    floor: float = 0.0          # cosine: final learning rate (absolute, <= base_lr)
    gamma: float = 0.999        # exponential: factor per iteration
    factor: float = 0.5         # plateau: lr multiplier on a plateau, in (0, 1)
    patience: int = 50          # plateau: iterations without a new best loss before a cut
    threshold: float = 0.0      # plateau: relative improvement that counts (0: any new best)
    min_ratio: float = 1e-4     # plateau: lr never goes below base_lr·min_ratio
    warmup: float = 0.01        # plateau/adaptive: the first step's rate is base_lr·warmup ...
    growth: float = 1.25        # ... multiplied by growth after each step that lowers the loss, up to 1


SCHEDULES = {
    "constant": "the same learning rate at every iteration",
    "cosine": "cosine decay from the learning rate to a floor (default 0) over the iterations",
    "exponential": "multiply the learning rate by gamma (default 0.999) at each iteration",
    "plateau": "halve the learning rate when the best loss has not improved for 50 iterations",
    "adaptive": "start at 1 % of the learning rate and grow it ×1.25 per step that lowers the loss; a step "
                "that raises it is undone and retried at half the rate (backtracking; block mode)",
}


def make_schedule(name: str, *, floor: float = 0.0, gamma: float = 0.999, factor: float = 0.5,
                  patience: int = 50, threshold: float = 0.0, min_ratio: float = 1e-4,
                  warmup: float = 0.01, growth: float = 1.25) -> Schedule:
    """A checked :class:`Schedule` (UsageError for an unknown name or a bad setting)."""
    if name not in SCHEDULES:
        raise UsageError(f"unknown learning-rate schedule '{name}' "
                         f"(expected one of {', '.join(SCHEDULES)})")
    floor, gamma = float(floor), float(gamma)
    if not (floor >= 0 and math.isfinite(floor)):
        raise UsageError(f"the cosine schedule's floor must be a finite number >= 0, got {floor}")
    if not (0 < gamma <= 1):
        raise UsageError(f"the exponential schedule's gamma must be in (0, 1], got {gamma}")
    factor, threshold, min_ratio = float(factor), float(threshold), float(min_ratio)
    if not (0 < factor < 1):
        raise UsageError(f"the plateau schedule's factor must be in (0, 1), got {factor}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise UsageError(f"the plateau schedule's patience must be an integer >= 1, got {patience!r}")
    if not (0 <= threshold < 1):
        raise UsageError(f"the plateau schedule's threshold must be in [0, 1), got {threshold}")
    if not (0 < min_ratio <= 1):
        raise UsageError(f"the plateau schedule's min_ratio must be in (0, 1], got {min_ratio}")
    warmup, growth = float(warmup), float(growth)
    if not (0 < warmup <= 1):
        raise UsageError(f"the plateau schedule's warmup must be in (0, 1], got {warmup}")
    if not (growth >= 1 and math.isfinite(growth)):
        raise UsageError(f"the plateau schedule's growth must be a finite number >= 1, got {growth}")
    return Schedule(name, floor, gamma, factor, patience, threshold, min_ratio, warmup, growth)


def lr_at(schedule: Union[str, Schedule], base_lr: float, iteration: int, total: int) -> float:
    """The learning rate of iteration ``iteration`` (0-based) out of ``total``.

    ``schedule`` is a name (default settings) or a :class:`Schedule`.  Iterations
    past ``total`` keep the cosine floor; ``total`` is ignored by ``constant``
    and ``exponential``.
    """
    s = make_schedule(schedule) if isinstance(schedule, str) else \
        make_schedule(schedule.name, floor=schedule.floor, gamma=schedule.gamma)
    if s.name in ("plateau", "adaptive"):
        raise UsageError(f"the {s.name} schedule follows the loss: it has no rate per iteration (lr_at)")
    base_lr = float(base_lr)
    if not (base_lr > 0 and math.isfinite(base_lr)):
        raise UsageError(f"the learning rate must be a positive number, got {base_lr}")
    if iteration < 0:
        raise UsageError(f"the iteration must be >= 0, got {iteration}")
    if total < 1:
        raise UsageError(f"the number of iterations must be >= 1, got {total}")
    if s.name == "constant":
        return base_lr
    if s.name == "exponential":
        return base_lr * s.gamma ** iteration
    if s.floor > base_lr:
        raise UsageError(f"the cosine schedule's floor ({s.floor}) is above the learning rate ({base_lr})")
    frac = min(iteration / total, 1.0)
    return s.floor + (base_lr - s.floor) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class PlateauState:
    """The plateau schedule's state: the rate of the next step (``lr·warm``), the plateau
    rate, the best and the previous loss, iterations since the best improved, the warm-up
    fraction and the base rate (for the floor)."""

    plateau_lr: float
    best: float
    previous: float
    bad: int
    warm: float
    base_lr: float

    @property
    def lr(self) -> float:
        return self.plateau_lr * self.warm


def plateau_init(base_lr: float, schedule: Schedule = Schedule("plateau")) -> PlateauState:
    base_lr = float(base_lr)
    if not (base_lr > 0 and math.isfinite(base_lr)):
        raise UsageError(f"the learning rate must be a positive number, got {base_lr}")
    return PlateauState(base_lr, math.inf, math.inf, 0, schedule.warmup, base_lr)


def plateau_update(state: PlateauState, loss: float, schedule: Schedule = Schedule("plateau")) -> PlateauState:
    """The state after an iteration whose loss is ``loss``.

    Warm-up: the rate starts at base_lr·warmup and is multiplied by ``growth`` after each
    iteration whose loss is below the previous one, up to base_lr (a first step of a few %
    of a slider's range can leave a narrow valley — an oscillator's frequency — for good).
    Plateau: an improvement is loss < best·(1 − threshold) (for best > 0; any decrease when
    best <= 0); after ``patience`` iterations without one, lr ← max(lr·factor, base_lr·min_ratio)."""
    loss = float(loss)
    warm = state.warm
    if loss < state.previous:
        warm = min(1.0, warm * schedule.growth)
    state = replace(state, previous=loss, warm=warm)
    better = loss < state.best * (1.0 - schedule.threshold) if state.best > 0 else loss < state.best
    if better:
        return replace(state, best=loss, bad=0)
    bad = state.bad + 1
    if bad > schedule.patience:
        lr = max(state.plateau_lr * schedule.factor, state.base_lr * schedule.min_ratio)
        return replace(state, plateau_lr=lr, bad=0)
    return replace(state, bad=bad)


# ------------------------------------------------------------------ clipping
def finite(grad) -> bool:
    """Whether every entry of ``grad`` is finite (no NaN, no ±inf)."""
    return bool(np.all(np.isfinite(np.asarray(grad, dtype=np.float64))))


def global_norm(grad) -> float:
    """‖g‖₂ over the whole vector (shape (P,))."""
    g = np.asarray(grad, dtype=np.float64)
    return float(np.sqrt(np.sum(g * g)))


def clip_by_norm(grad, max_norm: float) -> np.ndarray:
    """``grad`` (shape (P,)) scaled as a whole so that its L2 norm is at most ``max_norm``.

    g ← g·max_norm/‖g‖₂ when ‖g‖₂ > max_norm, else g unchanged: the direction is
    kept.  A gradient with a NaN or an infinite entry is returned as it is (a
    copy), without error: the caller checks :func:`finite` and decides (skip the
    step, stop the fit).  ``max_norm = inf`` never clips.  Returns a new array.
    """
    max_norm = float(max_norm)
    if not (max_norm > 0):
        raise UsageError(f"the gradient clipping norm must be a positive number, got {max_norm}")
    g = _vector(grad, "gradient")
    if not finite(g):
        return g
    n = global_norm(g)
    if n > max_norm:
        g = g * (max_norm / n)
    return g


# ------------------------------------------------- normalized coordinates
# A slider's value v in [lo, hi] ↔ u in [0, 1]:
#   linear:  u = (v − lo)/(hi − lo);        v = lo + u·(hi − lo);   dv/du = hi − lo
#   log:     u = ln(v/lo)/ln(hi/lo);        v = lo·(hi/lo)ᵘ;        dv/du = v·ln(hi/lo)
# A gradient in value units becomes one in unit coordinates by the chain rule:
#   dL/du = dL/dv · dv/du.
# Log needs 0 < lo < hi; otherwise the mapping falls back to linear.

def _bounds(lo: float, hi: float) -> tuple:
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise UsageError(f"a parameter's range must be finite with min <= max, got [{lo}, {hi}]")
    return lo, hi


def _use_log(lo: float, hi: float, log: bool) -> bool:
    # (a range too narrow for ln(hi) − ln(lo) to be > 0 in floating point: linear)
    return bool(log) and lo > 0 and hi > lo and _log_ratio(lo, hi) > 0


def _log_ratio(lo: float, hi: float) -> float:
    # ln(hi/lo), without overflow of hi/lo for tiny lo
    return math.log(hi) - math.log(lo)


def project(value, lo: float, hi: float):
    """``value`` (scalar or array) clamped to [lo, hi]."""
    lo, hi = _bounds(lo, hi)
    out = np.clip(np.asarray(value, dtype=np.float64), lo, hi)
    return float(out) if out.ndim == 0 else out


def to_unit(value, lo: float, hi: float, log: bool = False):
    """``value`` in [lo, hi] (clamped first) → u in [0, 1]; scalar or array.

    Logarithmic when ``log`` and ``lo > 0``; linear otherwise (a log request with
    ``lo <= 0`` falls back to linear).  A range with lo == hi maps to 0.
    """
    lo, hi = _bounds(lo, hi)
    v = np.clip(np.asarray(value, dtype=np.float64), lo, hi)
    if hi == lo:
        u = np.zeros_like(v)
    elif _use_log(lo, hi, log):
        u = (np.log(v) - math.log(lo)) / _log_ratio(lo, hi)
    else:
        u = (v - lo) / (hi - lo)
    u = np.clip(u, 0.0, 1.0)
    return float(u) if u.ndim == 0 else u


def from_unit(u, lo: float, hi: float, log: bool = False):
    """u in [0, 1] (clamped first) → value in [lo, hi]; the inverse of :func:`to_unit`."""
    lo, hi = _bounds(lo, hi)
    uu = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if _use_log(lo, hi, log):
        v = np.exp(math.log(lo) + uu * _log_ratio(lo, hi))
    else:
        v = lo + uu * (hi - lo)
    v = np.clip(v, lo, hi)
    return float(v) if v.ndim == 0 else v


def dvalue_du(u, lo: float, hi: float, log: bool = False):
    """The chain-rule factor d value / d u at ``u`` (scalar or array).

    Multiply a gradient dL/dvalue by it to get dL/du.
    """
    lo, hi = _bounds(lo, hi)
    uu = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if _use_log(lo, hi, log):
        r = _log_ratio(lo, hi)
        d = np.exp(math.log(lo) + uu * r) * r
    else:
        d = np.full_like(uu, hi - lo)
    return float(d) if d.ndim == 0 else d


class UnitBox:
    """The normalized coordinates of P parameters at once (vectorized :func:`from_unit`,
    :func:`dvalue_du`): ``bounds`` is a list of ``(lo, hi, log)`` as :func:`param_bounds`
    gives.  Same values as the scalar functions, for the fit loop's every iteration."""

    def __init__(self, bounds):
        lo, hi, use_log, ratio = [], [], [], []
        for b in bounds:
            l, h = _bounds(b[0], b[1])
            lg = _use_log(l, h, b[2] if len(b) > 2 else False)
            lo.append(l)
            hi.append(h)
            use_log.append(lg)
            ratio.append(_log_ratio(l, h) if lg else 0.0)
        self.lo, self.hi = np.array(lo), np.array(hi)
        self.log = np.array(use_log, dtype=bool)
        self.ratio = np.array(ratio)
        self.log_lo = np.log(np.where(self.log, self.lo, 1.0))

    def values(self, u) -> np.ndarray:
        """u (P,) in [0, 1] → values (P,) in [lo, hi]."""
        uu = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        v = np.where(self.log, np.exp(self.log_lo + uu * self.ratio), self.lo + uu * (self.hi - self.lo))
        return np.clip(v, self.lo, self.hi)

    def dvalue_du(self, u) -> np.ndarray:
        """d value / d u at u (P,): ``v·ln(hi/lo)`` on a log axis, ``hi − lo`` on a linear one."""
        uu = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        return np.where(self.log, np.exp(self.log_lo + uu * self.ratio) * self.ratio, self.hi - self.lo)


def _meta_items(meta) -> list:
    if isinstance(meta, dict):
        return list(meta.items())
    return [tuple(kv) for kv in (meta or ())]


def is_log(param) -> bool:
    """Whether a :class:`diffaust.runtime.dsp.Param` is best learned on a log scale.

    True when its metadata has ``[scale:log]`` or ``[unit:Hz]`` (any case) and its
    minimum is > 0 (a log scale needs a positive range; otherwise False: linear).
    """
    asks = False
    for k, v in _meta_items(getattr(param, "meta", None)):
        k, v = str(k).strip().lower(), str(v).strip().lower()
        if (k == "scale" and v == "log") or (k == "unit" and v == "hz"):
            asks = True
    return asks and float(param.min) > 0 and float(param.max) > float(param.min)


def param_bounds(param) -> tuple:
    """``(lo, hi, log)`` of a Param, the arguments of :func:`to_unit` and friends."""
    return float(param.min), float(param.max), is_log(param)
