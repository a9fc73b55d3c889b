"""diffaust: the Faust audio DSP language in Python, made differentiable."""

__version__ = "0.1.0"
