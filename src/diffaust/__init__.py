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
                     import_dirs=(), trace=False, use_cache=True, nondiff=(),
                     allow_native=False) -> Dsp

nondiff: C names of ffunctions declared constant for differentiation (derivative 0),
like ``--nondiff NAME``; see docs/DERIVATIVES.md.
use_cache: read and write the on-disk compile cache (DIFFAUST_NO_CACHE=1 turns it off).
allow_native: compile and load a C/C++ header that is not one of an installed Faust's
own (an ffunction's header next to the program, in import_dirs or the working folder).
"""
