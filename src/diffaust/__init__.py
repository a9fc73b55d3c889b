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


def fit(diff, target, input=None, **kwargs):
    """Fit a program's ``[diff:1]`` parameters to a target: see `diffaust.train.block.fit`."""
    from .train.block import fit as _fit

    return _fit(diff, target, input, **kwargs)


fit.__doc__ = """Fit the ``[diff:1]`` parameters of a Faust program to a target signal.

    diffaust.fit(diff, target, input=None, *, mode="block", loss=None, optimizer=None,
                 lr=None, iterations=None, params=None, callback=None, **options)
        -> FitResult (mode="block") or History (mode="sample")

diff: a .dsp path, Faust source text or compiled Dsp (compiled with diff=True when needed).
target: array (channels, samples) (1-D: one channel), a .wav/.npy file, or a ground-truth
Dsp/path/source rendered with the same input.  input: array (inputs, samples), a .wav/.npy
file, or None.  A WAV file's sample rate is the compile rate (no resampling: a different
sample_rate, or input and target WAVs at different rates, is an error); NaN/Inf in a file
is an error naming the file and the first bad sample.
mode="block": whole-block loss (default "mse", e.g. "mse+0.5*mrstft"), optimizer adam
(default lr 0.05 in normalized slider coordinates), 500 iterations; mode="sample": the
per-sample SGD trainer (`diffaust.train.fit`).  Full description:
`diffaust.train.block.fit`.
"""
