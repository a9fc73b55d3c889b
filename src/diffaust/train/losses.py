"""Loss functions for fitting, as pure functions of (output, target).

Per-sample losses (the seed's time-domain losses) compare one output sample
``y`` with one target sample ``t``.  Each comes with its derivative with
respect to the output, ``dL/dy``, which the fitter multiplies by the
derivative channels ``dy/dp`` (chain rule): ``dL/dp = dL/dy * dy/dp``.

They work on Python floats (the per-sample training loop) and on NumPy arrays
(element-wise).

Block losses compare a whole block of output with a block of target at once
(arrays of shape ``(channels, samples)``; a 1-D array is one channel).  Each is
a pure function ``f(y, t) -> (value, grad)``: the loss (a float) and its analytic
gradient ``dL/dy`` (float64, ``y``'s shape), which the fitter uses with the same
chain rule summed over the block.  Over several channels the loss is the sum of
the per-channel losses.  They live in ``BLOCK_LOSSES``; ``parse_loss`` builds a
weighted sum such as ``"l2+0.5*mrstft"``.
"""

from __future__ import annotations

import math
import re
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

def get_loss(name: str) -> Loss:
    """The per-sample loss called ``name`` (``l1`` or ``l2``)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise UsageError(f"unknown loss function '{name}' (expected one of {', '.join(LOSSES)})") from None


# ------------------------------------------------------------------ block losses


def _channels(y, t):
    """``y`` and ``t`` as float64 arrays of shape (channels, samples), checked alike."""
    y2 = np.atleast_2d(np.asarray(y, dtype=np.float64))
    t2 = np.atleast_2d(np.asarray(t, dtype=np.float64))
    if y2.ndim != 2 or y2.shape != t2.shape:
        raise UsageError(f"block loss: output shape {np.shape(y)} and target shape {np.shape(t)} differ "
                         "(expected equal (channels, samples) or (samples,) arrays)")
    if y2.shape[1] == 0:
        raise UsageError("block loss: empty block (no samples)")
    return y2, t2


def _per_channel(channel_loss, y, t, **kw):
    """Sum of ``channel_loss(y[c], t[c])`` over channels; the gradient has ``y``'s shape."""
    y2, t2 = _channels(y, t)
    value, grad = 0.0, np.empty_like(y2)
    for c in range(y2.shape[0]):
        v, grad[c] = channel_loss(y2[c], t2[c], **kw)
        value += v
    return float(value), grad.reshape(np.shape(y))


def mse(y, t):
    """Mean squared error: ``L = sum_c mean_n (y - t)**2``;  ``dL/dy = 2 (y - t) / N``."""
    y2, t2 = _channels(y, t)
    d = y2 - t2
    n = d.shape[1]
    return float(np.sum(d * d) / n), (2.0 * d / n).reshape(np.shape(y))


def mae(y, t):
    """Mean absolute error: ``L = sum_c mean_n |y - t|``;  ``dL/dy = sign(y - t) / N``.

    Convention: the derivative of ``|d|`` at ``d == 0`` is taken as 0 (as in ``l1_grad``).
    """
    y2, t2 = _channels(y, t)
    d = y2 - t2
    n = d.shape[1]
    return float(np.sum(np.abs(d)) / n), (np.sign(d) / n).reshape(np.shape(y))


# ---- STFT (torch.stft convention, center=True) and its adjoint


def _hann(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` (torch.hann_window), zero-padded and
    centred in ``n_fft`` samples (left offset ``(n_fft - win_length) // 2``), as torch.stft does."""
    if not 0 < win_length <= n_fft:
        raise UsageError(f"STFT: window length {win_length} must be between 1 and the FFT size {n_fft}")
    w = np.zeros(n_fft)
    n = np.arange(win_length)
    left = (n_fft - win_length) // 2
    w[left:left + win_length] = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    return w


def _frame_index(length: int, n_fft: int, hop: int) -> np.ndarray:
    """Index array ``idx`` (frames, n_fft) such that frame m is ``x[idx[m]]``.

    The signal is reflect-padded by ``n_fft // 2`` samples on both sides (torch.stft's
    ``center=True, pad_mode="reflect"``: ``x[-i] = x[i]``, edge not repeated), then cut into
    ``1 + (length + 2 * (n_fft // 2) - n_fft) // hop`` frames ``hop`` samples apart.
    """
    pad = n_fft // 2
    if length <= pad:
        raise UsageError(f"STFT: block of {length} samples is too short for FFT size {n_fft} "
                         f"(reflect padding needs more than {pad} samples)")
    if hop < 1:
        raise UsageError(f"STFT: hop size {hop} must be at least 1")
    q = np.arange(-pad, length + pad)
    q = np.abs(q)                                        # reflect at the start
    q = np.where(q > length - 1, 2 * (length - 1) - q, q)  # reflect at the end
    frames = 1 + (length + 2 * pad - n_fft) // hop
    return q[np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]]


def _stft(x, idx, w):
    """Complex STFT (frames, n_fft // 2 + 1) of the 1-D signal ``x``: ``X = rfft(x[idx] * w)``."""
    return np.fft.rfft(x[idx] * w, axis=-1)


def _stft_adjoint(g, idx, w, length):
    """Gradient w.r.t. ``x`` from ``g = dL/dRe(X) + i dL/dIm(X)`` (the STFT is linear).

    With ``X_f = sum_k F_k exp(-2 pi i f k / N)``:  ``dL/dF_k = Re sum_f g_f exp(2 pi i f k / N)``
    over the rfft bins ``f = 0..N/2``, i.e. ``N * irfft(g')`` where ``g'`` halves the bins
    counted twice by irfft (all but DC and, for even N, Nyquist).  Then windowing is a
    product (multiply by ``w``), and framing + padding is a gather ``x[idx]`` whose adjoint
    is the scatter-add ``bincount``.
    """
    n_fft = w.shape[0]
    g = g.copy()
    g[:, 1:(n_fft + 1) // 2] *= 0.5
    df = n_fft * np.fft.irfft(g, n=n_fft, axis=-1) * w
    return np.bincount(idx.ravel(), weights=df.ravel(), minlength=length)


# ---- multi-resolution STFT loss


@dataclass(frozen=True)
class MRSTFT:
    """Multi-resolution STFT loss (defaults: auraloss's ``MultiResolutionSTFTLoss``).

    For each resolution (FFT size N, hop H, window length W) and each channel, with
    ``|Y| = sqrt(max(Re² + Im², eps))`` the clamped STFT magnitudes of the output and
    ``|T|`` those of the target (frames × bins):

        SC  = ‖|Y| - |T|‖_F / ‖|T|‖_F                (spectral convergence)
        LOG = mean |log|Y| - log|T||                   (log-magnitude L1, mean over frames × bins)
        L_r = w_sc * SC + w_log_mag * LOG

    The loss is the mean of ``L_r`` over the resolutions, summed over channels (auraloss
    instead pools a (batch, channels) input into one norm; for one channel they agree).

    STFT convention (torch.stft with ``center=True, pad_mode="reflect"``, as auraloss):
    periodic Hann window of length W zero-padded and centred in N samples; the block is
    reflect-padded by N // 2 on both sides; ``1 + len // H`` frames (even N); one-sided rfft
    bins, no normalisation.  The block must be longer than N // 2 samples.

    Gradient conventions: where the clamp is active (Re² + Im² < eps) the magnitude has
    zero derivative; SC's gradient is 0 when |Y| == |T| (norm zero), and the derivative of
    |d| at d == 0 is 0.
    """

    fft_sizes: tuple = (1024, 2048, 512)
    hop_sizes: tuple = (120, 240, 50)
    win_lengths: tuple = (600, 1200, 240)
    w_sc: float = 1.0
    w_log_mag: float = 1.0
    eps: float = 1e-8

    def __post_init__(self):
        if not len(self.fft_sizes) == len(self.hop_sizes) == len(self.win_lengths) > 0:
            raise UsageError("mrstft: fft_sizes, hop_sizes and win_lengths must be non-empty and of equal length")

    def __call__(self, y, t):
        return _per_channel(self._channel, y, t)

    def _channel(self, y, t):
        value, grad = 0.0, np.zeros_like(y)
        for n_fft, hop, win in zip(self.fft_sizes, self.hop_sizes, self.win_lengths):
            w, idx = _hann(win, n_fft), _frame_index(y.shape[0], n_fft, hop)
            xy, xt = _stft(y, idx, w), _stft(t, idx, w)
            py, pt = xy.real ** 2 + xy.imag ** 2, xt.real ** 2 + xt.imag ** 2
            my, mt = np.sqrt(np.maximum(py, self.eps)), np.sqrt(np.maximum(pt, self.eps))
            diff, norm_t = my - mt, np.linalg.norm(mt)
            norm_d = np.linalg.norm(diff)
            logd = np.log(my) - np.log(mt)
            value += self.w_sc * norm_d / norm_t + self.w_log_mag * np.mean(np.abs(logd))
            # d SC / d|Y| = (|Y| - |T|) / (‖|Y| - |T|‖_F ‖|T|‖_F)   (0 when the norm is 0)
            g_mag = self.w_sc * (diff / (norm_d * norm_t) if norm_d > 0 else 0.0)
            # d LOG / d|Y| = sign(log|Y| - log|T|) / (K |Y|),  K = frames × bins
            g_mag = g_mag + self.w_log_mag * np.sign(logd) / (logd.size * my)
            # d|Y| / dRe = Re / |Y|, d|Y| / dIm = Im / |Y| (0 where clamped)
            g = np.where(py > self.eps, g_mag / my, 0.0) * xy
            grad += _stft_adjoint(g, idx, w, y.shape[0])
        r = len(self.fft_sizes)
        return value / r, grad / r


def mrstft(y, t, **options):
    """Multi-resolution STFT loss and gradient; ``options`` are the fields of `MRSTFT`."""
    return MRSTFT(**options)(y, t)


# ---- log mel-spectrogram loss


def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int, f_min: float = 0.0, f_max=None) -> np.ndarray:
    """Triangular mel filters, shape (n_fft // 2 + 1, n_mels), HTK mel scale, unnormalised.

    ``mel(f) = 2595 log10(1 + f / 700)``; ``n_mels + 2`` points equally spaced in mel from
    ``f_min`` to ``f_max`` (default ``sample_rate / 2``) give the filters' feet and peaks; each
    filter is the triangle ``max(0, min(rising, falling))`` of peak 1 evaluated at the bins'
    frequencies ``k * sample_rate / n_fft`` (torchaudio's ``melscale_fbanks``, ``norm=None``,
    ``mel_scale="htk"``).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = 700.0 * (10.0 ** (np.linspace(mel(f_min), mel(f_max), n_mels + 2) / 2595.0) - 1.0)
    f = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    rising = (f[:, None] - hz[None, :-2]) / (hz[1:-1] - hz[:-2])
    falling = (hz[None, 2:] - f[:, None]) / (hz[2:] - hz[1:-1])
    return np.maximum(0.0, np.minimum(rising, falling))


@dataclass(frozen=True)
class LogMel:
    """Log mel-spectrogram distance: mean squared difference (L2) of log mel energies.

    Per channel, with ``P = Re² + Im²`` the power STFT (same STFT convention as `MRSTFT`:
    centred, reflect-padded, periodic Hann of ``win_length`` (default ``n_fft``)) and ``M``
    the HTK `mel_filterbank`:

        L = mean over frames × mels of (log(P_y M + eps) - log(P_t M + eps))²

    summed over channels.  Gradient: ``dL/dP_y = (2 (Ly - Lt) / K / (P_y M + eps)) Mᵀ`` and
    ``dP/dRe = 2 Re, dP/dIm = 2 Im``, then the STFT adjoint.
    """

    sample_rate: float = 44100.0
    n_fft: int = 2048
    hop_size: int = 512
    win_length: int = 0  # 0: n_fft
    n_mels: int = 128
    eps: float = 1e-5

    def __call__(self, y, t):
        return _per_channel(self._channel, y, t)

    def _channel(self, y, t):
        w = _hann(self.win_length or self.n_fft, self.n_fft)
        idx = _frame_index(y.shape[0], self.n_fft, self.hop_size)
        fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels)
        xy, xt = _stft(y, idx, w), _stft(t, idx, w)
        my = (xy.real ** 2 + xy.imag ** 2) @ fb + self.eps
        mt = (xt.real ** 2 + xt.imag ** 2) @ fb + self.eps
        d = np.log(my) - np.log(mt)
        g_p = (2.0 * d / d.size / my) @ fb.T                  # dL/dP_y
        return float(np.mean(d * d)), _stft_adjoint(2.0 * g_p * xy, idx, w, y.shape[0])


def logmel(y, t, **options):
    """Log mel-spectrogram loss and gradient; ``options`` are the fields of `LogMel`."""
    return LogMel(**options)(y, t)


# ---- registry and weighted sums


@dataclass(frozen=True)
class BlockLoss:
    """A block loss: its name, ``fn(y, t) -> (value, dL/dy)`` and a description."""

    name: str
    fn: Callable
    description: str

    def __call__(self, y, t):
        return self.fn(y, t)


BLOCK_LOSSES: dict[str, BlockLoss] = {
    "mse": BlockLoss("mse", mse, "mean squared error over the block, summed over channels"),
    "mae": BlockLoss("mae", mae, "mean absolute error over the block, summed over channels"),
    "l2": BlockLoss("l2", mse, "block form of l2: the mean of (y - t)^2 over the block (same as mse)"),
    "l1": BlockLoss("l1", mae, "block form of l1: the mean of |y - t| over the block (same as mae)"),
    "mrstft": BlockLoss("mrstft", MRSTFT(), "multi-resolution STFT loss (auraloss defaults)"),
    "logmel": BlockLoss("logmel", LogMel(), "mean squared log mel-spectrogram distance (44.1 kHz, 128 HTK mels)"),
}


@dataclass(frozen=True)
class WeightedLoss:
    """``sum_i weight_i * loss_i(y, t)``, with the gradient summed alike."""

    terms: tuple  # ((weight, BlockLoss), ...)

    def __call__(self, y, t):
        value, grad = 0.0, None
        for weight, loss in self.terms:
            v, g = loss(y, t)
            value += weight * v
            grad = weight * g if grad is None else grad + weight * g
        return value, grad


def parse_loss(spec: str) -> WeightedLoss:
    """A block loss from a weighted sum such as ``"l2+0.5*mrstft"`` (weights finite, >= 0)."""
    known = ", ".join(BLOCK_LOSSES)
    terms = []
    for token in re.split(r"(?<!\d[eE])\+", spec):  # a '+' in '1e+3' is no separator
        weight, star, name = token.strip().rpartition("*")
        name, weight = name.strip(), weight.strip()
        if star and not weight:
            raise UsageError(f"loss '{spec}': missing weight before '*' in term '{token.strip()}'")
        if not name:
            raise UsageError(f"loss '{spec}': empty term '{token.strip()}' (expected [weight*]name, "
                             f"name one of {known})")
        if name not in BLOCK_LOSSES:
            raise UsageError(f"loss '{spec}': unknown loss '{name}' (expected one of {known})")
        try:
            w = float(weight) if star else 1.0
        except ValueError:
            raise UsageError(f"loss '{spec}': bad weight '{weight}' in term '{token.strip()}'") from None
        if not math.isfinite(w) or w < 0:
            raise UsageError(f"loss '{spec}': weight '{weight}' must be a finite number >= 0")
        terms.append((w, BLOCK_LOSSES[name]))
    return WeightedLoss(tuple(terms))
