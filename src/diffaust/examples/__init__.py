"""The bundled training examples.

Each example is a folder with ``diff.dsp`` (the learnable program: parameters
marked ``[diff:1]``, initial values away from the truth) and ``gt.dsp`` (the
same program with the hidden values written in as constants).  Input programs
sit beside the folders: ``noise.dsp`` (Faust's ``no.noise``), ``ramp.dsp``,
``impulse.dsp`` and ``sine.dsp``.

``EXAMPLES`` holds the per-example defaults of ``diffaust train --example NAME``
(input program, learning rate, loss) and the hidden values, so that a fit can
be checked: each converges with these defaults (loss below 1e-6 within the
iteration budget, learned values within 1e-3 of the hidden ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

#: The folder holding the examples (package data).
EXAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    hidden: dict                      # parameter label -> hidden value (in gt.dsp)
    input: str = "noise.dsp"          # input program, relative to EXAMPLES_DIR
    lr: float = 0.1                   # learning rate
    loss: str = "l2"
    iterations: int = 10000
    extra: dict = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return EXAMPLES_DIR / self.name

    @property
    def diff(self) -> Path:
        return self.folder / "diff.dsp"

    @property
    def gt(self) -> Path:
        return self.folder / "gt.dsp"

    @property
    def input_path(self) -> Path:
        return EXAMPLES_DIR / self.input


_LIST = [
    Example("gain", "learnable gain y = g*x (0.8 -> 0.25)", {"gain": 0.25}),
    Example("gain_dc", "gain and DC offset y = g*x + c, two parameters", {"gain": 0.7, "dc": -0.2}),
    Example("gain_exp", "gain through exp: y = x*exp(k) (-1 -> 0.2)", {"k": 0.2}),
    Example("gain_pow", "pow in base and exponent: y = x*pow(1+g, g) (0.3 -> 0.8)", {"g": 0.8}),
    Example("gain_pow_trig", "trigonometric power: y = x*cos(a)^sin(a) (0.4 -> 1.1)", {"angle": 1.1}),
    Example("gain_sq", "squared gain with ^: y = x*g^2 (0.9 -> 0.45)", {"gain": 0.45}),
    Example("mem", "gain on the one-sample-delayed input: y = g*x[n-1] (0.1 -> 0.6)", {"gain": 0.6}),
    Example("one_zero", "one-zero FIR filter y = x + b1*x[n-1] (0.2 -> 0.75)", {"b1": 0.75}),
    Example("delay", "fractional delay with linear interpolation, on a sine (3.5 -> 6.4 samples)",
            {"delay": 6.4}, input="sine.dsp", lr=0.5),
    Example("one_pole", "one-pole recursive filter y = x + a*y[n-1], derivative through ~ (0.3 -> 0.7)",
            {"a": 0.7}, lr=0.05),
    Example("tremolo", "tremolo: 5 Hz cosine LFO from a recursive phasor, learnable depth (0.2 -> 0.6)",
            {"depth": 0.6}),
]

EXAMPLES: dict[str, Example] = {e.name: e for e in _LIST}

#: Input programs shipped beside the examples, with what they produce.
INPUTS = {
    "noise.dsp": "white noise in [-1, 1) (Faust's no.noise LCG)",
    "ramp.dsp": "sawtooth ramp from -1 in steps of 1/500, period 1000 samples",
    "impulse.dsp": "unit impulse (1, 0, 0, ...)",
    "sine.dsp": "sine wave with a period of 8 samples",
}


def get_example(name: str) -> Example:
    """The example called ``name``; a UsageError listing the known ones otherwise."""
    try:
        return EXAMPLES[name]
    except KeyError:
        raise UsageError(f"unknown example '{name}' (known: {', '.join(EXAMPLES)}; "
                         "see 'diffaust examples')") from None
