"""Fitting Faust programs: per-sample losses, gradient descent, history and plots.

    from diffaust.train import fit, History
    hist = fit(diff_dsp, target, x, loss="l2", lr=0.1)
"""

from .block import FitResult, fit_block
from .fit import History, Row, TablePrinter, fit
from .losses import LOSSES, get_loss

__all__ = ["fit", "fit_block", "FitResult", "History", "Row", "TablePrinter", "LOSSES", "get_loss"]
