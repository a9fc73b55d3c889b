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
import threading
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
    from ..runtime.kernels import sqdiff

    ya = y if isinstance(y, np.ndarray) and y.dtype in (np.float32, np.float64) else np.asarray(y, np.float64)
    y2, t2 = _channels(ya, t)
    if ya.dtype == np.float32:  # read as float32 by the kernel, widened as it goes
        y2 = np.atleast_2d(ya)
    n = y2.shape[1]
    g = np.empty(y2.shape)
    # one pass: S = Σ (y - t)², g = 2 (y - t) / N
    value = sqdiff(np.ascontiguousarray(y2), np.ascontiguousarray(t2), 2.0 / n, g) / n
    return value, g.reshape(np.shape(y))


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


def _check_stft(length: int, n_fft: int, hop: int) -> int:
    """The reflect padding n_fft // 2, or UsageError when the block is too short for it."""
    pad = n_fft // 2
    if length <= pad:
        raise UsageError(f"STFT: block of {length} samples is too short for FFT size {n_fft} "
                         f"(reflect padding needs more than {pad} samples)")
    if hop < 1:
        raise UsageError(f"STFT: hop size {hop} must be at least 1")
    return pad


def _frame_index(length: int, n_fft: int, hop: int) -> np.ndarray:
    """Index array ``idx`` (frames, n_fft) such that frame m is ``x[idx[m]]``.

    The signal is reflect-padded by ``n_fft // 2`` samples on both sides (torch.stft's
    ``center=True, pad_mode="reflect"``: ``x[-i] = x[i]``, edge not repeated), then cut into
    ``1 + (length + 2 * (n_fft // 2) - n_fft) // hop`` frames ``hop`` samples apart.
    """
    pad = _check_stft(length, n_fft, hop)
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


# ---- the same STFT, fast (the multi-resolution STFT loss)


_WORK = threading.local()  # this thread's work buffers of the fast STFT (see _work)
_POOL: list = []  # [executor or None]: the loss terms' threads, made on first use (_pool)
_POOL_LOCK = threading.Lock()


def _pool():
    """The process's thread pool for the terms of a multi-resolution loss (one thread per
    core), or None on one core."""
    with _POOL_LOCK:
        if not _POOL:
            import os
            from concurrent.futures import ThreadPoolExecutor

            cores = os.cpu_count() or 1
            _POOL.append(ThreadPoolExecutor(max_workers=cores, thread_name_prefix="diffaust-loss")
                         if cores > 1 else None)
        return _POOL[0]


def _work(name: str, shape: tuple, dtype=np.float64, zeroed: bool = False) -> np.ndarray:
    """This thread's work buffer `name`, as an uninitialized array of `shape` (a view of a
    flat buffer grown as needed and kept: big temporaries made anew at every call of a loss
    are fresh memory, whose page faults cost more than the arithmetic).  zeroed: zeros when
    (re)made, else what the last user left."""
    bufs = getattr(_WORK, "bufs", None)
    if bufs is None:
        bufs = _WORK.bufs = {}
    size = math.prod(shape)
    b = bufs.get(name)
    if b is None or b.size < size or b.dtype != dtype:
        b = bufs[name] = (np.zeros if zeroed else np.empty)(max(size, 1), dtype=dtype)
    return b[:size].reshape(shape)


class _Frames:
    """The STFT of signals of one length at one resolution (torch.stft's convention, as
    `_stft`), computed without gathering whole frames.

    The window is zero outside its ``win`` samples: a frame is cut to those samples only (a
    strided view of the padded signal) and rfft pads them with zeros to ``n_fft`` at the
    end, instead of around them.  That moves the frame by ``left`` samples, which multiplies
    each bin by a phase: the magnitudes, all that the losses read, are the same.  `adjoint`
    is that of this transform: irfft, window, then overlap-add a hop at a time and fold the
    reflect padding back.  Results live in this thread's work buffers (see `_work`).
    """

    def __init__(self, length: int, n_fft: int, hop: int, win: int):
        w = _hann(win, n_fft)  # checks the window
        pad = _check_stft(length, n_fft, hop)
        self.length, self.n_fft, self.hop, self.win, self.pad = length, n_fft, hop, win, pad
        self.left = (n_fft - win) // 2
        self.w = w[self.left:self.left + win].copy()
        self.wn = (0.5 * n_fft) * self.w  # the adjoint's scale and window (see adjoint_add)
        self.frames = 1 + (length + 2 * pad - n_fft) // hop
        self.bins = n_fft // 2 + 1

    def forward(self, x, name: str = "stft.X"):
        """The complex STFT (frames, n_fft // 2 + 1) of the 1-D float64 signal ``x`` (phases
        moved, see the class), in the work buffer `name`."""
        n, pad = self.length, self.pad
        xp = _work("stft.xp", (n + 2 * pad,))
        xp[pad:pad + n] = x
        xp[:pad] = x[pad:0:-1]  # reflect padding: x[-i] = x[i], as _frame_index
        xp[pad + n:] = x[n - 2:n - 2 - pad:-1] if n - 2 - pad >= 0 else x[n - 2::-1]
        frames = np.lib.stride_tricks.as_strided(xp[self.left:], shape=(self.frames, self.win),
                                                 strides=(self.hop * xp.strides[0], xp.strides[0]),
                                                 writeable=False)
        # the windowed frames, zero-padded to n_fft: a buffer of this resolution's own, whose
        # columns past the window stay zero (an rfft of whole rows is faster than rfft's padding)
        seg = _work(f"stft.seg.{self.frames}.{self.n_fft}.{self.win}", (self.frames, self.n_fft), zeroed=True)
        np.multiply(frames, self.w, out=seg[:, :self.win])
        return np.fft.rfft(seg, axis=-1, out=_work(name, (self.frames, self.bins), np.complex128))

    def adjoint_add(self, g, into):
        """Add to ``into`` the gradient w.r.t. ``x`` from ``g = dL/dRe(X) + i dL/dIm(X)``
        (as `_stft_adjoint`; ``g`` is overwritten)."""
        n_fft, hop, win, pad, n = self.n_fft, self.hop, self.win, self.pad, self.length
        # the bins irfft counts twice (all but DC and, for even N, Nyquist) are halved: the
        # others doubled here, and all halved in the window's scale (powers of 2: exact)
        g[:, 0] *= 2.0
        if n_fft % 2 == 0:
            g[:, n_fft // 2] *= 2.0
        df = np.fft.irfft(g, n=n_fft, axis=-1, out=_work("stft.df", (self.frames, n_fft)))[:, :win]
        df *= self.wn
        out = _work("stft.ola", (n + 2 * pad,))
        out[:] = 0.0
        step = out.strides[0]
        for j in range(0, win, hop):  # overlap-add: frame m's samples j..j+hop go to left + m hop + j
            c = min(hop, win - j)
            view = np.lib.stride_tricks.as_strided(out[self.left + j:], shape=(self.frames, c),
                                                   strides=(hop * step, step))
            view += df[:, j:j + c]
        into += out[pad:pad + n]
        into[1:pad + 1] += out[:pad][::-1]  # the reflect padding's adjoint
        into[n - 1 - pad:n - 1] += out[pad + n:][::-1]


def _sum_squares(a) -> float:
    """sum(a ** 2) of a real array: numpy's pairwise sum of the squares, in a work buffer (not
    BLAS, whose threads can wait on each other for milliseconds on a busy machine; and not
    einsum, whose plain running sum's rounding, which varies from one input to the next, is
    as large as what finite differences of the loss measure)."""
    return float(np.sum(np.square(a, out=_work("sum_squares", a.shape))))


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

    ``loss.bind(t)`` computes the target's spectra once: a function ``y -> (value, dL/dy)``
    of the same values as ``loss(y, t)`` (for a fitting loop, where the target stays).
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
        _, t2 = _channels(y, t)  # the shape checks first
        # the target's spectra made for this call only, in work buffers
        return _BoundMRSTFT(self, t2, precompute=False)(y)

    def bind(self, t) -> "_BoundMRSTFT":
        """The loss against the target ``t`` (its current content), as a function of ``y``."""
        return _BoundMRSTFT(self, t)


class _BoundMRSTFT:
    """`MRSTFT` with the target's magnitudes, logs and norms computed once (see MRSTFT.bind)."""

    def __init__(self, loss: MRSTFT, t, precompute: bool = True):
        self.loss = loss
        # the target as bound: a copy (precompute=False: MRSTFT.__call__'s own array)
        self.t = t2 = np.atleast_2d(np.array(t, dtype=np.float64) if precompute else t)
        if t2.ndim != 2 or t2.shape[1] == 0:
            _channels(t, t)  # its error
        self.plans = [_Frames(t2.shape[1], n_fft, hop, win)
                      for n_fft, hop, win in zip(loss.fft_sizes, loss.hop_sizes, loss.win_lengths)]
        # per channel, per resolution: (|T|, log|T|, ‖|T|‖_F); None: made at each call
        self.target = None
        if precompute:
            feats = [self._target_features(plan, t2[c]) for c in range(t2.shape[0]) for plan in self.plans]
            r = len(self.plans)
            self.target = [feats[c * r:(c + 1) * r] for c in range(t2.shape[0])]

    def _magnitude(self, x, out=None):
        """``|X| = sqrt(max(Re² + Im², eps))`` of a complex STFT (in the work buffer, or
        `out`), and where the clamp is active (Re² + Im² <= eps).  (|X| as hypot(Re, Im),
        then the clamp as max(|X|, sqrt(eps)): the same up to the last bit, in fewer passes.)"""
        a = np.abs(x, out=_work("mr.a", x.shape) if out is None else out)
        floor = math.sqrt(self.loss.eps)
        clamped = np.less_equal(a, floor, out=_work("mr.clamped", x.shape, np.bool_)) if out is None else None
        m = np.maximum(a, floor, out=a)
        return m, clamped

    def _target_features(self, plan, t, transient: bool = False):
        """(|T|, log|T|, ‖|T|‖_F) of one channel at one resolution: new arrays, or with
        `transient`, work buffers (valid until the next target's)."""
        shape = (plan.frames, plan.bins)
        x = plan.forward(t)
        mt = self._magnitude(x, out=_work("mr.mt", shape) if transient else np.empty(shape))[0]
        log_mt = np.log(mt, out=_work("mr.logmt", shape) if transient else None)
        return mt, log_mt, math.sqrt(_sum_squares(mt))

    def __call__(self, y):
        y2, _ = _channels(y, self.t)
        r = len(self.plans)

        def term(job):  # one channel at one resolution, in this thread's work buffers
            c, k = job
            plan = self.plans[k]
            return self._term(plan, self.target[c][k] if self.target is not None
                              else self._target_features(plan, self.t[c], transient=True), y2[c])

        # the terms on the cores (numpy's FFTs and array loops release the GIL), summed in
        # order below whatever the threads: the same value and gradient as one at a time
        jobs = [(c, k) for c in range(y2.shape[0]) for k in range(r)]
        pool = _pool() if len(jobs) > 1 else None
        terms = list(pool.map(term, jobs)) if pool is not None else [term(j) for j in jobs]
        value, grad = 0.0, np.empty_like(y2)
        for c in range(y2.shape[0]):
            v, g = 0.0, None
            for tv, tg in terms[c * r:(c + 1) * r]:  # in the order of the resolutions
                v += tv
                g = tg if g is None else np.add(g, tg, out=g)
            value += v / r
            np.divide(g, r, out=grad[c])
        return float(value), grad.reshape(np.shape(y))

    def _term(self, plan, target, y):
        """One channel at one resolution: L_r and its gradient w.r.t. ``y`` (a new array)."""
        loss = self.loss
        w_sc, w_log = loss.w_sc, loss.w_log_mag
        mt, log_mt, norm_t = target
        xy = plan.forward(y)
        my, clamped = self._magnitude(xy)
        shape = my.shape
        diff = np.subtract(my, mt, out=_work("mr.diff", shape))
        norm_d = math.sqrt(_sum_squares(diff))
        logd = np.log(my, out=_work("mr.logd", shape))
        logd -= log_mt
        k = logd.size
        g_mag = np.sign(logd, out=_work("mr.g", shape))
        value = w_sc * norm_d / norm_t + w_log * float(np.mean(np.abs(logd, out=logd)))
        # d LOG / d|Y| = sign(log|Y| - log|T|) / (K |Y|),  K = frames × bins
        g_mag *= w_log / k
        g_mag /= my
        # d SC / d|Y| = (|Y| - |T|) / (‖|Y| - |T|‖_F ‖|T|‖_F)   (0 when the norm is 0)
        if norm_d > 0 and w_sc != 0.0:
            diff *= w_sc / (norm_d * norm_t)
            g_mag += diff
        # d|Y| / dRe = Re / |Y|, d|Y| / dIm = Im / |Y| (0 where clamped)
        g_mag /= my
        g_mag[clamped] = 0.0
        xy *= g_mag
        grad = np.zeros(y.shape[0])
        plan.adjoint_add(xy, grad)
        return value, grad


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

    def bind(self, t):
        """The loss against the target ``t`` as a function of ``y`` (see `WeightedLoss.bind`)."""
        bind = getattr(self.fn, "bind", None)
        return bind(t) if bind is not None else _BoundFn(self.fn, t)


class _BoundFn:
    """``fn(y, t)`` with ``t`` fixed (a copy of the target as bound)."""

    def __init__(self, fn, t):
        self.fn, self.t = fn, np.array(t, dtype=np.float64)

    def __call__(self, y):
        return self.fn(y, self.t)


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
        return _weighted_sum([(w, loss, (y, t)) for w, loss in self.terms])

    def bind(self, t) -> Callable:
        """The loss against the target ``t`` (its current content), as a function
        ``y -> (value, dL/dy)`` of the same values as ``loss(y, t)``: what depends on the
        target alone (the spectra of `MRSTFT`) is computed once, here.  For a fitting loop."""
        terms = tuple((w, loss, loss.bind(t) if hasattr(loss, "bind") else _BoundFn(loss, t))
                      for w, loss in self.terms)
        return _BoundWeighted(terms)


class _BoundWeighted:
    """`WeightedLoss.bind`'s function of ``y``."""

    def __init__(self, terms):
        self.terms = terms  # ((weight, loss, bound loss), ...)

    def __call__(self, y):
        return _weighted_sum([(w, loss, (y,), bound) for w, loss, bound in self.terms])


def _weighted_sum(terms):
    """``sum_i weight_i * loss_i(*args_i)``, with the gradient summed alike; a term is
    (weight, loss, args) or (weight, loss, args, callable to call instead of loss)."""
    value, grad = 0.0, None
    for term in terms:
        weight, loss, args = term[:3]
        v, g = (term[3] if len(term) > 3 else loss)(*args)
        value += weight * v
        if is_pure_loss(loss):  # g is a new array of its own: scaled and summed in place
            g = np.asarray(g, dtype=np.float64)
            if weight != 1.0:
                np.multiply(g, weight, out=g)
            if grad is None:
                grad = g
            else:
                np.add(grad, g, out=grad)
        else:
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


# ---- the chain rule of a block step (train.block.loss_and_grad)


def is_pure_loss(f) -> bool:
    """Whether ``f`` is one of this module's block losses (or a weighted sum of them): they
    read ``y`` and ``t`` and keep neither, so ``y`` may be a buffer that is overwritten later."""
    if isinstance(f, WeightedLoss):
        return all(is_pure_loss(loss) for _, loss in f.terms)
    if isinstance(f, BlockLoss):
        return is_pure_loss(f.fn)
    return isinstance(f, (MRSTFT, LogMel)) or f is mse or f is mae


def _precomputes(f) -> bool:
    """Whether binding ``f`` to a target saves work (a term computes target features)."""
    if isinstance(f, WeightedLoss):
        return any(_precomputes(loss) for _, loss in f.terms)
    if isinstance(f, BlockLoss):
        return _precomputes(f.fn)
    return isinstance(f, MRSTFT)


def cached_bind(store, f, t):
    """``f`` bound to the target ``t`` (``f.bind(t)``), kept in ``store`` (an object, such as a
    thread-local, that the caller keeps for a loop) for the next call with the same loss and
    the same target object of the same content; None when binding saves nothing (then call
    ``f(y, t)``)."""
    if not (is_pure_loss(f) and _precomputes(f)):
        return None
    entry = getattr(store, "bound_loss", None)
    if entry is not None and entry[0] is f and entry[1] is t and np.array_equal(entry[2], t):
        return entry[3]
    copy = np.array(t, dtype=np.float64)
    bound = f.bind(copy)
    store.bound_loss = (f, t, copy, bound)
    return bound


def param_gradient(g, dy) -> np.ndarray:
    """``dL/dp[p] = sum_c sum_n g[c, n] * dy[c, p, n]`` (float64, shape (params,)).

    ``g``: dL/dy, float64 (channels, n); ``dy``: the derivative channels (channels, params, n),
    float64 or float32 (summed in float64 by a native loop, ``runtime.kernels.pgrad``: no
    float64 copy of the block, and no BLAS, whose threads can wait on each other for
    milliseconds on a busy machine)."""
    from ..runtime.kernels import pgrad

    out = np.zeros(dy.shape[1])
    for c in range(dy.shape[0]):
        out += pgrad(np.ascontiguousarray(g[c], dtype=np.float64), np.ascontiguousarray(dy[c]))
    return out
