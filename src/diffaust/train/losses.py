"""Loss functions for fitting, as pure functions of (output, target).

Per-sample losses (the seed's time-domain losses) compare one output sample
``y`` with one target sample ``t``.  Each comes with its derivative with
respect to the output, ``dL/dy``, which the fitter multiplies by the
derivative channels ``dy/dp`` (chain rule): ``dL/dp = dL/dy * dy/dp``.

They work on Python floats (the per-sample training loop) and on NumPy arrays
(element-wise).

Block losses (e.g. a multi-resolution spectral loss over a window of samples)
are a later feature; they will live in ``BLOCK_LOSSES`` with the signature
``value(y_block, t_block) -> float`` and ``grad(y_block, t_block) -> array``
(one ``dL/dy[n]`` per sample of the block), so that the fitter can use them
with the same chain rule summed over the block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UsageError


def l1(y, t):
    """L1 norm of one sample: ``|y - t|``."""
    d = y - t
    return np.abs(d) if isinstance(d, np.ndarray) else abs(d)


def l1_grad(y, t):
    """d/dy ``|y - t|`` = sign(y - t), defined as 0 where y == t."""
    d = y - t
    if isinstance(d, np.ndarray):
        return np.sign(d)
    return 1.0 if d > 0 else (-1.0 if d < 0 else 0.0)


def l2(y, t):
    """Squared L2 norm of one sample: ``(y - t)**2`` (the seed's default)."""
    d = y - t
    return d * d


def l2_grad(y, t):
    """d/dy ``(y - t)**2`` = 2 (y - t)."""
    return 2.0 * (y - t)


@dataclass(frozen=True)
class Loss:
    """A per-sample loss: its name, value function and derivative w.r.t. the output."""

    name: str
    value: Callable
    grad: Callable
    description: str


LOSSES: dict[str, Loss] = {
    "l1": Loss("l1", l1, l1_grad, "L1 norm |y - t|"),
    "l2": Loss("l2", l2, l2_grad, "squared L2 norm (y - t)^2"),
}

#: Block losses (a whole window of samples at once), e.g. spectral losses: a later feature.
BLOCK_LOSSES: dict[str, object] = {}


def get_loss(name: str) -> Loss:
    """The per-sample loss called ``name`` (``l1`` or ``l2``)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise UsageError(f"unknown loss function '{name}' (expected one of {', '.join(LOSSES)})") from None
