"""diffaust: the Faust audio DSP language in Python, made differentiable.

    import diffaust
    dsp = diffaust.compile("process = _ * hslider('gain [diff:1]', .5, 0, 1, .01);", diff=True)
    y, dy = dsp.render_jvp(x)   # x: (inputs, n)
"""

__version__ = "0.1.0"


def compile(source_or_path, **kwargs):
    """Compile Faust source text or a .dsp file: see `diffaust.runtime.dsp.compile`."""
    from .runtime.dsp import compile as _compile

    return _compile(source_or_path, **kwargs)


compile.__doc__ = """Compile Faust source text or a .dsp file to a `Dsp`.

    diffaust.compile(source_or_path, *, double=False, diff=False, sample_rate=44100,
                     import_dirs=(), trace=False, use_cache=True, nondiff=()) -> Dsp

nondiff: C names of ffunctions declared constant for differentiation (derivative 0),
like ``--nondiff NAME``; see docs/DERIVATIVES.md.
"""
