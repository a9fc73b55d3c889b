"""Plots of a fit: loss (log scale) and parameter trajectories, to a PNG (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError


def plot_history(history, path: str, title: str | None = None) -> None:
    """Write a two-panel PNG: loss per iteration (log scale) and each parameter's value.

    ``history`` is a :class:`diffaust.train.fit.History` (from ``fit`` or ``History.read_csv``).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    it = np.asarray(history.iteration, dtype=float)
    loss = np.asarray(history.loss, dtype=float)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    try:
        positive = loss[np.isfinite(loss) & (loss > 0)]
        floor = positive.min() / 10 if positive.size else 1e-12
        ax1.semilogy(it, np.where(loss > 0, loss, floor), lw=0.8, color="C3")
        sens = getattr(history, "sensitivity", None)
        if sens:
            ax1.axhline(sens, color="0.5", ls="--", lw=0.8, label=f"sensitivity {sens:g}")
            ax1.legend(loc="upper right", fontsize="small")
        ax1.set_ylabel("loss (per sample)")
        ax1.grid(color="0.9")
        ax1.set_title(title or "diffaust train")
        for k, label in enumerate(history.labels):
            ax2.plot(it, history.values[k], lw=1.0, label=label)
        ax2.set_xlabel("iteration")
        ax2.set_ylabel("parameter value")
        ax2.grid(color="0.9")
        if history.labels:
            ax2.legend(loc="best", fontsize="small")
        fig.tight_layout()
        try:
            fig.savefig(path, dpi=100)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        except ValueError as e:  # unknown image format from the file name
            raise UsageError(f"cannot write {path}: {e}") from None
    finally:
        plt.close(fig)
