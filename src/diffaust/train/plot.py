"""Plots of a fit: loss (log scale), parameter trajectories and spectrograms, to a PNG (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError


def plot_history(history, path: str, title: str | None = None) -> None:
    """A PNG of a per-sample fit (``diffaust.train.fit.History``, from ``fit`` or
    ``History.read_csv``): the loss with its running mean, and each parameter's value."""
    plot_fit(path, iterations=history.iteration, losses=history.loss,
             trajectories=dict(zip(history.labels, history.values)), running_mean=True,
             title=title or "diffaust train")


def _running_mean(a: np.ndarray, width: int) -> np.ndarray:
    """Mean over the last ``width`` values (fewer at the start): c[i] = mean(a[max(0, i-w+1) .. i])."""
    c = np.cumsum(np.concatenate([[0.0], a]))
    i = np.arange(1, len(a) + 1)
    lo = np.maximum(0, i - width)
    return (c[i] - c[lo]) / (i - lo)


def plot_fit(path, *, iterations, losses, trajectories: dict, units: dict | None = None,
             hidden: dict | None = None, target=None, fitted=None, sample_rate: float = 44100,
             running_mean: bool = False, title: str | None = None) -> None:
    """A PNG of a fit, written atomically: the loss curve (log scale; a running mean when the
    losses are per sample), one panel per parameter in its own unit (a dashed line at the
    hidden value when known), and spectrograms of the target and of the fitted output
    (channel 0, dB) when both signals (shape (channels, samples)) are given."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from ..outfile import atomic_output

    units, hidden = units or {}, hidden or {}
    it = np.asarray(iterations, dtype=float)
    loss = np.asarray(losses, dtype=float)
    labels = list(trajectories)
    spectra = target is not None and fitted is not None and np.shape(target)[-1] >= 64
    rows = 1 + len(labels) + (1 if spectra else 0)
    fig = plt.figure(figsize=(8, 2.2 * rows + 0.6))
    grid = fig.add_gridspec(rows, 2)
    try:
        ax = fig.add_subplot(grid[0, :])
        finite = loss[np.isfinite(loss)]
        positive = finite[finite > 0]
        floor = positive.min() / 10 if positive.size else 1e-12
        shown = np.where(np.isfinite(loss) & (loss > 0), loss, floor)
        if running_mean and len(loss) >= 10:
            width = min(max(2, len(loss) // 20), 500)  # ~20 independent points along the curve
            ax.semilogy(it, shown, lw=0.4, color="0.75", label="per sample")
            ax.semilogy(it, np.maximum(_running_mean(shown, width), floor), lw=1.0, color="C3",
                        label=f"running mean over {width}")
            ax.legend(loc="upper right", fontsize="small")
        else:
            ax.semilogy(it, shown, lw=1.0, color="C3")
        ax.set_ylabel("loss")
        ax.set_xlabel("iteration")
        ax.grid(color="0.9")
        ax.set_title(title or "diffaust train")
        for k, label in enumerate(labels, start=1):
            ax = fig.add_subplot(grid[k, :])
            ax.plot(it[:len(trajectories[label])], trajectories[label], lw=1.0, color=f"C{k % 10}",
                    label="learned")
            if label in hidden:
                ax.axhline(hidden[label], color="0.3", ls="--", lw=0.8, label=f"hidden {hidden[label]:g}")
                ax.legend(loc="best", fontsize="small")
            unit = units.get(label, "")
            ax.set_ylabel(f"{label}" + (f" ({unit})" if unit else ""))
            ax.set_xlabel("iteration")
            ax.grid(color="0.9")
        if spectra:
            nfft = 1024 if np.shape(target)[-1] >= 4096 else 256
            for col, (name, sig) in enumerate((("target", target), ("fitted", fitted))):
                ax = fig.add_subplot(grid[rows - 1, col])
                s = np.atleast_2d(np.asarray(sig, dtype=float))[0]
                ax.specgram(s, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma",
                            vmin=-140, scale="dB")
                ax.set_title(f"{name} (channel 0)", fontsize="small")
                ax.set_xlabel("time (s)")
                ax.set_ylabel("frequency (Hz)")
        fig.tight_layout()
        ext = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
        if ext not in fig.canvas.get_supported_filetypes():
            raise UsageError(f"cannot write {path}: unknown image type '.{ext}' (use .png, .pdf or .svg)")
        with atomic_output(path, "wb") as f:
            fig.savefig(f, dpi=100, format=ext)
    finally:
        plt.close(fig)
