"""Runtime: compile a program (with an on-disk cache) and run it."""

from .dsp import Dsp, Instance, Param, compile

__all__ = ["Dsp", "Instance", "Param", "compile"]
