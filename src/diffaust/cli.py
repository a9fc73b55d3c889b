"""The ``diffaust`` command.

    diffaust compile FILE.dsp [-diff] [-d] [-double] [-lang c|llvm|cpp|json] [--nondiff NAME]...
    diffaust render  FILE.dsp [-n N] [--sr 44100] [--input KIND|FILE] [--param NAME=VALUE]...
                              [-double] [-diff] [--nondiff NAME]... [-o OUT.npy|OUT.wav]
                              [--block-size N]
    diffaust train   --input FILE --gt FILE.dsp|FILE.wav|FILE.npy --diff FILE [-lf l1|l2] [-lr RATE]
                     [--iterations N] [--csv loss.csv] [--plot loss.png] | --example NAME
                     [--mode sample|block] [--optimizer adam|rmsprop|momentum|sgd]
                     [--loss SPEC] [--samples N] [--save FIT.json]       (block mode)
    diffaust verify  --diff FILE [--input noise|FILE] [-n SR] [--central] [-double]
                     [--epsilon EPS] [--tolerance T] [--tol T] [-q] | --example NAME

``verify`` runs one second (``-n``, default the ``--sr`` rate) of the deterministic noise
(one independent channel per program input; none for a program without inputs) through
the program, compares each derivative channel with finite differences, prints the
seed's table (the first ``--rows`` samples), mean |delta| and standard deviation per
row, the peak error max|ad-fd|/max|fd| and a summary line with the worst parameter,
sample and error; ``--tolerance T`` exits with status 1 when that peak error exceeds T
(``--tol T`` on the absolute |ad-fd|).  Relative steps by default: 1e-4*max(1,|p|) for
``--central -double``, 1e-3*max(1,|p|) otherwise.

A WAV input or target (train, render, verify) sets the sample rate: ``--sr`` with another
rate, or two WAVs at different rates, is an error (no resampling); without either, 44100.

``--nondiff NAME`` (compile, render, train, verify; repeatable) declares the ffunction
NAME constant for differentiation (tangent 0); without it an ffunction with no known
derivative is an error naming it.
    diffaust plot    loss.csv [-o loss.png]
    diffaust examples

Flags follow Faust's autodiff tools where they have one (single-dash ``-diff``,
``-double``, ``-lf``, ``-lr``).  A user error (bad program, missing file, bad
flag value, unknown parameter) prints one line on stderr (plus the source line
and a caret for an error in a program) and exits with a non-zero status.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
from typing import Optional, Sequence

import numpy as np

from .errors import DiffaustError, UsageError

PROG = "diffaust"


# ---------------------------------------------------------------- argparse
class _ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised instead of printed."""

    def error(self, message):  # noqa: D401 - argparse API
        raise _ArgError(message)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def block_size_arg(text: str) -> int:
    """--block-size N: samples per compute() call, 1 .. 2147483647."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: '{text}'") from None
    if not 1 <= v <= 2**31 - 1:  # compute(int count): a C int
        raise argparse.ArgumentTypeError(f"must be a whole number of samples between 1 and 2147483647, got {v}")
    return v


BLOCK_SIZE_HELP = ("samples per compute() call (default 256, the Faust reference harness's): what "
                   "fvariable(int count) reads; the last block is shorter")


def _sample_rate(text: str) -> int:
    v = _positive_int(text)
    if v > 2**31 - 1:  # init(int sample_rate): a C int
        raise argparse.ArgumentTypeError(f"must be at most 2147483647 Hz, got {v}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: '{text}'") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}'") from None
    if not (v > 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}'") from None
    if not (v >= 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def _lr_param(text: str) -> tuple:
    name, value = _param(text)
    if not (value >= 0) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"the learning rate in '{text}' must be a finite number >= 0")
    return name, value


def _param(text: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value in '{text}': '{value}' is not a number") from None


def _add_common(p, *, inputs=True):
    p.add_argument("-double", "--double", action="store_true", help="compute in double precision (float64)")
    p.add_argument("--sr", type=_sample_rate, default=None, metavar="RATE",
                   help="sample rate (default: a WAV input's or target's rate, else 44100)")
    p.add_argument("-I", dest="import_dirs", action="append", default=[], metavar="DIR",
                   help="add a folder to the library search path (repeatable)")
    p.add_argument("--nondiff", action="append", default=[], metavar="NAME",
                   help="declare the ffunction NAME (any of its C names: sinhf|sinh|sinhl) constant "
                        "for differentiation: its derivative is 0 (repeatable)")
    p.add_argument("--no-cache", dest="no_cache", action="store_true",
                   help="neither read nor write the compile caches (also DIFFAUST_NO_CACHE=1)")
    p.add_argument("--allow-native", dest="allow_native", action="store_true",
                   help="allow an ffunction whose C/C++ header is not one of an installed Faust's own: "
                        "the header is compiled with the C++ compiler and loaded into this process")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="The Faust audio DSP language in Python, made differentiable.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # compile
    p = sub.add_parser("compile", allow_abbrev=False, help="print the generated per-sample program",
                       description="Print the generated per-sample program (a C-like listing of the "
                                   "compute loop by default) and its parameter/derivative channel table.")
    p.add_argument("file", metavar="FILE.dsp")
    p.add_argument("-diff", "--diff", action="store_true", help="differentiate w.r.t. the [diff:1] parameters")
    p.add_argument("-d", "--details", action="store_true", help="print the differentiation trace")
    p.add_argument("--reverse", action="store_true",
                   help="with -diff: print reverse mode's programs instead (the tape program and the adjoint "
                        "program that runs backward in time; -lang c or llvm)")
    p.add_argument("-lang", "--lang", choices=("c", "llvm", "cpp", "json"), default="c",
                   help="c: C-like listing of the compute loop (default); llvm: optimized LLVM IR; "
                        "cpp: a C++ class mydsp with Faust's dsp interface (for Faust's architecture files); "
                        "json: inputs, outputs, metadata and parameters, shaped like faust -json")
    p.add_argument("--dump", choices=("ast", "box", "sig", "sched"), default=None,
                   help="print one stage of the pipeline instead: ast, box, sig (signals, with "
                        "derivatives under -diff) or sched (the scheduled program)")
    _add_common(p)
    p.set_defaults(func=cmd_compile)

    # render
    p = sub.add_parser("render", allow_abbrev=False, help="run a program and write its outputs",
                       description="Run a program (from a fresh state) and write its outputs, "
                                   "shape (channels, N); with -diff the derivative channels.")
    p.add_argument("file", metavar="FILE.dsp")
    p.add_argument("-n", type=_nonneg_int, default=None, metavar="N",
                   help="number of samples (default: the input file's length, else one second)")
    p.add_argument("--input", default="impulse", metavar="SIGNAL",
                   help="impulse (default), noise, zeros, ones, FILE.npy, FILE.wav or FILE.dsp")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (label or path) before the first sample; repeatable")
    p.add_argument("-diff", "--diff", action="store_true", help="output the derivative channels")
    p.add_argument("-o", "--output", metavar="OUT.npy|OUT.wav", help="write the outputs (.npy or .wav)")
    p.add_argument("--wav-format", choices=("float32", "pcm16"), default="float32",
                   help="sample format of a .wav output (default float32)")
    p.add_argument("--print", dest="print_n", type=_nonneg_int, default=None, metavar="K",
                   help="print the first K samples of each channel (default 8 without -o)")
    p.add_argument("--block-size", dest="block_size", type=block_size_arg, default=256, metavar="N",
                   help=BLOCK_SIZE_HELP)
    _add_common(p)
    p.set_defaults(func=cmd_render)

    # train
    p = sub.add_parser("train", allow_abbrev=False, help="fit [diff:1] parameters by gradient descent",
                       description="Fit the learnable program (--diff) to the ground truth (--gt: a .dsp with "
                                   "hidden values, or a recorded .wav/.npy target), both fed by --input. "
                                   "--mode sample is the seed's per-sample gradient descent; block and stream "
                                   "fit whole blocks or windows with block losses and adam.")
    p.add_argument("--example", metavar="NAME", help="use a bundled example (see 'diffaust examples')")
    p.add_argument("--input", metavar="FILE",
                   help="input: a .dsp program (default: the bundled noise.dsp), .npy, .wav, or "
                        "impulse|noise|zeros|ones")
    p.add_argument("--gt", metavar="FILE", help="ground truth: a program (.dsp, hidden parameters) or a target "
                                                "signal (.wav or .npy, shape (channels, samples)); a file "
                                                "target sets the number of samples")
    p.add_argument("--diff", metavar="FILE.dsp", help="learnable program, parameters marked [diff:1]")
    p.add_argument("-lf", "--lossfunction", "--loss", dest="lossfunction", default=None, metavar="LOSS",
                   help="loss: --mode sample: l1 or l2 per sample (default l2); block/stream: l2 (mean "
                        "squared, default), l1, mse, mae, mrstft, logmel or a weighted sum such as "
                        "'l2+0.5*mrstft'")
    p.add_argument("-lr", "--learningrate", type=_positive_float, default=None, metavar="RATE",
                   help="learning rate (sample: default 0.1, in parameter units; block/stream: in normalized "
                        "slider coordinates, default adam 0.05)")
    p.add_argument("--iterations", type=_nonneg_int, default=None, metavar="N",
                   help="maximum number of iterations (sample: = samples, default 10000; block/stream: "
                        "renders or windows, default 500)")
    p.add_argument("--sensitivity", type=float, default=None, metavar="S",
                   help="--mode sample: no update while the loss is <= S (default 1e-7)")
    p.add_argument("--patience", type=_nonneg_int, default=None, metavar="K",
                   help="sample: stop after more than K consecutive iterations with loss <= sensitivity "
                        "(default 20); block/stream: stop when the best loss has not improved for K "
                        "iterations (default: never)")
    p.add_argument("--tolerance", type=_nonneg_float, default=None, metavar="L",
                   help="block/stream: stop once the loss is <= L")
    p.add_argument("--mode", choices=("sample", "block", "stream"), default="sample",
                   help="sample (default): the seed's per-sample SGD, one step per sample; block: render the "
                        "whole signal (or -n N samples) per iteration from a reset state, block loss, any "
                        "--optimizer, parameters in normalized [0, 1] slider coordinates; stream: consecutive "
                        "windows (--window, --hop), state carried, one update per window")
    p.add_argument("--optimizer", choices=("adam", "rmsprop", "momentum", "sgd"), default=None,
                   help="block/stream: optimizer (default adam); sample: sgd only")
    p.add_argument("--lr-schedule", dest="lr_schedule",
                   choices=("adaptive", "plateau", "constant", "cosine", "exponential"), default=None,
                   help="learning-rate schedule; block default adaptive (warm-up, and a step that raises the "
                        "loss is undone and retried at half the rate); stream default plateau (halve the rate "
                        "when the best loss has not improved for 50 iterations)")
    p.add_argument("--ad", choices=("auto", "forward", "reverse"), default=None,
                   help="--mode block: how gradients are computed: forward (one tangent per parameter), "
                        "reverse (a tape and a backward sweep: a cost independent of the number of "
                        "parameters) or auto (default: forward for up to 2 parameters, else the faster of "
                        "the two, timed on the first block)")
    p.add_argument("--clip", type=_positive_float, default=None, metavar="NORM",
                   help="block/stream: clip the gradient (normalized coordinates) to this L2 norm")
    p.add_argument("--lr-param", dest="lr_param", type=_lr_param, action="append", default=[],
                   metavar="NAME=RATE", help="block/stream: the learning rate of one parameter; repeatable")
    p.add_argument("--starts", type=_positive_int, default=None, metavar="K",
                   help="block/stream: fit from K starting points (the initial values, then K-1 spread over "
                        "the sliders' ranges) and keep the best")
    p.add_argument("--seed", type=_nonneg_int, default=None, metavar="S",
                   help="block/stream: the spread of the --starts points (default 0)")
    p.add_argument("--samples", "-n", dest="samples", type=_positive_int, default=None, metavar="N",
                   help="block/stream: samples of the signal (default: a file target's length, else 8192)")
    p.add_argument("--window", type=_positive_int, default=None, metavar="N",
                   help="--mode stream: samples per window (default 2048)")
    p.add_argument("--hop", type=_positive_int, default=None, metavar="N",
                   help="--mode stream: new samples per iteration (default: the window)")
    p.add_argument("--pair", action="append", default=[], metavar="IN:TARGET",
                   help="--mode block: one input/target pair of a batch (loss averaged over the pairs); "
                        "repeatable, replaces --input/--gt")
    p.add_argument("--json", metavar="result.json",
                   help="write {params: {label: value}, loss, iterations, time, stop_reason, ...}")
    p.add_argument("--save", metavar="learned.dsp",
                   help="write the learnable program with the learned values as its sliders' defaults")
    p.add_argument("--no-stop", action="store_true", help="never stop early: run all iterations")
    p.add_argument("--block-size", dest="block_size", type=block_size_arg, default=256, metavar="N",
                   help=BLOCK_SIZE_HELP + " (block/stream modes; --mode sample runs one sample per call)")
    p.add_argument("--float", dest="single", action="store_true",
                   help="block/stream: compute in single precision (their default is double; sample mode's "
                        "is float, -double for double)")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="initial value of a learnable parameter instead of its slider's; repeatable")
    p.add_argument("--csv", metavar="history.csv", help="write the history, one row per iteration: "
                                                         "iteration,loss,<label>,... (start first with --starts)")
    p.add_argument("--plot", metavar="fit.png", help="plot the loss, each parameter (with the hidden value when "
                                                     "the target is a .dsp) and target/fitted spectrograms")
    p.add_argument("--every", type=_positive_int, default=500, metavar="K",
                   help="after the first rows, print every K-th iteration (default 500; 1: every one)")
    p.add_argument("--head", type=_nonneg_int, default=20, metavar="N",
                   help="print the first N iterations (default 20)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    # verify
    p = sub.add_parser("verify", allow_abbrev=False, help="check derivatives against finite differences",
                       description="The seed's verifier: autodiff derivative channels vs finite differences "
                                   "(see diffaust.verify for the measures). Exit status 1 when --tolerance "
                                   "or --tol is exceeded.")
    p.add_argument("--example", metavar="NAME", help="use a bundled example's diff.dsp and input")
    p.add_argument("--input", metavar="SIGNAL",
                   help="input: noise (default: the deterministic noise, one independent channel per "
                        "program input), impulse, zeros, ones, FILE.npy, FILE.wav or FILE.dsp")
    p.add_argument("--diff", metavar="FILE.dsp", help="program with [diff:1] parameters")
    p.add_argument("--epsilon", "-e", type=_positive_float, default=None, metavar="EPS",
                   help="absolute parameter step for every parameter (default: relative, "
                        "1e-4*max(1,|p|) for --central -double, else 1e-3*max(1,|p|))")
    p.add_argument("-n", type=_positive_int, default=None, metavar="N",
                   help="number of samples (default: one second, the --sr value)")
    p.add_argument("--central", action="store_true", help="central differences instead of forward")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="parameter value to differentiate at (default: the slider's init); repeatable")
    p.add_argument("--tolerance", type=_positive_float, default=None, metavar="T",
                   help="exit with status 1 when the error relative to the peak of the finite "
                        "difference, max|ad-fd|/max|fd| of some (output, parameter), exceeds T")
    p.add_argument("--tol", type=_positive_float, default=None, metavar="T",
                   help="exit with status 1 when some absolute |delta| = |ad-fd| exceeds T")
    p.add_argument("--all-samples", action="store_true",
                   help="compare every sample, also after a jump of the output in a parameter")
    p.add_argument("--reverse", action="store_true",
                   help="check reverse mode instead: the gradient of sum(w*y) over 10 growing prefixes of the "
                        "signal (w seeded noise), by the backward sweep, against the same sums of the finite "
                        "differences")
    p.add_argument("--rows", type=_nonneg_int, default=100, metavar="K",
                   help="print the table for the first K samples (default 100)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no per-sample table: only the per-parameter summary and the summary line")
    _add_common(p)
    p.set_defaults(func=cmd_verify)

    # plot
    p = sub.add_parser("plot", allow_abbrev=False, help="plot a training CSV",
                       description="Plot loss (log scale) and parameter trajectories from a training CSV.")
    p.add_argument("csv", metavar="loss.csv")
    p.add_argument("-o", "--output", metavar="loss.png", help="output PNG (default: the CSV name with .png)")
    p.set_defaults(func=cmd_plot)

    # conformance (its own parser: diffaust.conformance.main)
    sub.add_parser("conformance", allow_abbrev=False, add_help=False,
                   help="render real Faust programs with diffaust and with the faust compiler, compare "
                        "(see 'diffaust conformance --help')")

    # examples
    p = sub.add_parser("examples", allow_abbrev=False, help="list the bundled examples")
    p.add_argument("--path", action="store_true", help="print the examples folder and exit")
    p.set_defaults(func=cmd_examples)
    return parser


# ----------------------------------------------------------------- helpers
def _runtime():
    from . import runtime

    if not hasattr(runtime, "compile"):
        raise UsageError("the compiler is not available in this build (diffaust.runtime.compile is missing)")
    return runtime


def _compile(path: str, args, **kw):
    from .audio import _check_file

    _check_file(path)
    rt = _runtime()
    nondiff = tuple(getattr(args, "nondiff", ()) or ())
    if nondiff and kw.get("diff"):
        kw["nondiff"] = nondiff
    if getattr(args, "block_size", None) is not None:
        kw.setdefault("block_size", args.block_size)
    return rt.compile(path, double=args.double, sample_rate=args.sr, import_dirs=tuple(args.import_dirs),
                      use_cache=not getattr(args, "no_cache", False),
                      allow_native=getattr(args, "allow_native", False), **kw)


def _warn_nondiff_unused(args) -> None:
    """--nondiff only changes a differentiated program."""
    if getattr(args, "nondiff", None) and not args.diff:
        print(f"{PROG}: warning: --nondiff has no effect without -diff", file=sys.stderr)


def _accepts_kw(fn, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _check_params(dsp, params: Sequence[tuple], what: str = "") -> dict:
    """{name: value} from --param pairs, every name checked against the program's controls."""
    out = {}
    for name, value in params:
        try:  # a label, a path, a path's tail, or a path in Faust's MapUI spelling
            p = dsp.params[dsp.param_index(name)]
        except UsageError:
            labels = ", ".join(p.label for p in dsp.params) or "none"
            raise UsageError(f"unknown parameter '{name}'{what} (the program's parameters: {labels})") from None
        out[p.path] = value
    return out


def _default_input() -> str:
    from .examples import EXAMPLES_DIR

    return str(EXAMPLES_DIR / "noise.dsp")


def _input_length(spec: str) -> Optional[int]:
    from .audio import read_npy, read_wav

    from .audio import SOUND_FILE_SUFFIXES

    low = spec.lower()
    if low.endswith(".npy"):
        return read_npy(spec).shape[1]
    if low.endswith(SOUND_FILE_SUFFIXES):
        return read_wav(spec)[0].shape[1]
    return None


DEFAULT_SR = 44100


def _is_file_signal(spec) -> bool:
    from .audio import is_signal_file

    return bool(spec) and is_signal_file(str(spec))


def _read_signal_file(path: str, what: str):
    from .audio import read_signal

    return read_signal(path, what)


def _resolve_sr(args, *files) -> None:
    """Set ``args.sr``: a WAV file's rate among ``files`` ((what, path) pairs), checked against
    ``--sr`` and the other WAVs (no resampling), else --sr, else 44100."""
    from .audio import SOUND_FILE_SUFFIXES, sound_file_rate

    given = getattr(args, "sr_given", args.sr)
    rates = []
    for what, path in files:
        if path and str(path).lower().endswith(SOUND_FILE_SUFFIXES):
            rates.append((what, path, sound_file_rate(path)))
    for what, path, sr in rates[1:]:
        w0, p0, sr0 = rates[0]
        if sr != sr0:
            raise UsageError(f"{w0} {p0} is at {sr0} Hz but {what} {path} at {sr} Hz: "
                             "resample one of them (diffaust does not resample)")
    if rates:
        what, path, sr = rates[0]
        if given is not None and given != sr:
            raise UsageError(f"--sr {given} but {what} {path} is at {sr} Hz: drop --sr or resample the file "
                             "(diffaust does not resample)")
        args.sr = sr
    else:
        args.sr = given if given is not None else DEFAULT_SR


def _print_values(values: dict, ex) -> None:
    """The learned values, one a line, with the hidden value and the error for an example."""
    for label, value in values.items():
        line = f"  {label} = {_fmt_value(value)}"
        if ex and label in ex.hidden:
            line += f"   (hidden: {ex.hidden[label]:g}, error: {abs(value - ex.hidden[label]):.1e})"
        print(line)


def _fmt_value(v: float) -> str:
    return f"{v:.10g}"


# ---------------------------------------------------------------- commands
def cmd_compile(args) -> int:
    if args.dump:
        from .runtime.pipeline import dump_stage

        _warn_nondiff_unused(args)
        text = dump_stage(args.file, args.dump, double=args.double, diff=args.diff,
                          import_dirs=tuple(args.import_dirs),
                          nondiff=tuple(args.nondiff) if args.diff else (),
                          allow_native=getattr(args, "allow_native", False))
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    rt = _runtime()
    kw = {"diff": args.diff}
    if args.reverse:
        if not args.diff:
            raise UsageError("--reverse lists the reverse-mode programs of -diff: give -diff too")
        if args.lang not in ("c", "llvm"):
            raise UsageError(f"--reverse lists its programs as -lang c or llvm, not {args.lang}")
        if args.details:
            raise UsageError("-d prints forward mode's trace: not with --reverse")
        _warn_nondiff_unused(args)
        dsp = _compile(args.file, args, **kw)
        if not dsp.diff_params and not dsp.inputs:
            raise UsageError(f"{args.file}: no [diff:1] parameter and no input: reverse mode has nothing "
                             "to differentiate")
        text = dsp.reverse().listing(args.lang)
        sys.stdout.write(text)
        return 0
    if args.details:
        if not _accepts_kw(rt.compile, "trace"):
            raise UsageError("-d (differentiation trace) is not supported by this build")
        kw["trace"] = True
    _warn_nondiff_unused(args)
    dsp = _compile(args.file, args, **kw)
    if args.details:
        trace = getattr(dsp, "trace", None)
        print(trace if trace else "(no differentiation trace: the program has no [diff:1] parameter"
              + ("" if args.diff else " or -diff was not given") + ")")
        print()
    lister = getattr(rt, "listing", None)
    text = lister(dsp, lang=args.lang) if lister is not None else dsp.listing(args.lang)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_render(args) -> int:
    from .audio import write_npy, write_wav

    _warn_nondiff_unused(args)
    _resolve_sr(args, ("input", args.input))
    dsp = _compile(args.file, args, diff=args.diff)
    if dsp.inputs and _is_file_signal(args.input):
        _read_signal_file(args.input, "input")  # NaN/Inf: an error naming the file
    if args.diff and not dsp.diff_params:
        raise UsageError(f"{args.file}: -diff, but no parameter is marked [diff:1]: no derivative channel")
    params = _check_params(dsp, args.param)
    n = args.n
    if n is None:
        n = (_input_length(args.input) if dsp.inputs else None) or args.sr
    x = None
    if dsp.inputs:
        x = _signal_for(args.input, dsp.inputs, n, args, strict=True)
    y = np.asarray(dsp.render(x, n=n, params=params))
    names = list(dsp.derivative_names) if args.diff else [f"out{i}" for i in range(y.shape[0])]
    out = args.output
    if out:
        low = out.lower()
        if low.endswith(".npy"):
            write_npy(out, y.astype(np.float64 if args.double else np.float32))
        elif low.endswith(".wav"):
            write_wav(out, y, args.sr, args.wav_format)
        else:
            raise UsageError(f"unknown output type '{out}': use a .npy or .wav file name")
        print(f"{args.file}: {dsp.inputs} input(s), {y.shape[0]} output channel(s), {n} samples "
              f"at {args.sr} Hz ({'double' if args.double else 'float'}) -> {out}")
        if args.diff:
            print("channels: " + ", ".join(names))
    k = args.print_n if args.print_n is not None else (0 if out else 8)
    if k:
        k = min(k, n)
        if not out:
            print(f"{args.file}: {dsp.inputs} input(s), {y.shape[0]} output channel(s), {n} samples "
                  f"at {args.sr} Hz ({'double' if args.double else 'float'})")
        width = max([len(s) for s in names] + [4])
        for name, row in zip(names, y):
            print(f"{name:>{width}}: " + " ".join(f"{v: .8g}" for v in row[:k]) + (" ..." if n > k else ""))
    return 0


def _resolve_files(args, need_gt: bool, default_input: Optional[str] = None):
    """(input, gt, diff, example) from --example and explicit flags (explicit ones win);
    without either, the input is ``default_input`` (else the bundled noise.dsp)."""
    ex = None
    inp, gt, diff = args.input, getattr(args, "gt", None), args.diff
    if args.example:
        from .examples import get_example

        ex = get_example(args.example)
        inp = inp or str(ex.input_path)
        gt = gt or str(ex.gt)
        diff = diff or str(ex.diff)
    missing = [flag for flag, v in (("--gt", gt if need_gt else "x"), ("--diff", diff)) if not v]
    if missing:
        raise UsageError(f"missing {' and '.join(missing)} (or use --example NAME; see 'diffaust examples')")
    return inp or default_input or _default_input(), gt, diff, ex


def _signal_for(spec, channels, n, args, strict=False):
    """The input signal; ``strict``: a sound/.npy file shorter than ``n`` is an error (no zero padding)."""
    from .audio import input_signal

    if _is_file_signal(spec):
        data, _sr = _read_signal_file(spec, "input")
        if strict and data.shape[1] < n:
            raise UsageError(f"input {spec} holds {data.shape[1]} samples, but {n} are asked for "
                             "(diffaust does not pad with zeros: ask for fewer with -n)")
    x = input_signal(spec, channels, n, sample_rate=args.sr, double=args.double, import_dirs=args.import_dirs)
    return x if args.double else x.astype(np.float32)


def cmd_train(args) -> int:
    from .train import command

    return command.run(args, sys.modules[__name__])


def cmd_verify(args) -> int:
    from .verify import print_table, step_text, verify

    inp, _gt, diff_path, _ex = _resolve_files(args, need_gt=False, default_input="noise")
    _resolve_sr(args, ("input", inp))
    dsp = _compile(diff_path, args, diff=True)
    if not dsp.diff_params:
        raise UsageError(f"{diff_path}: no parameter is marked [diff:1]: nothing to verify")
    params = _check_params(dsp, args.param)
    n = args.n if args.n is not None else args.sr  # one second: long enough for a reverb's feedback
    if args.n is None and dsp.inputs and _is_file_signal(inp):  # a shorter file: all of it
        n = min(n, _input_length(inp))
    x = _signal_for(inp, dsp.inputs, n, args, strict=True) if dsp.inputs else None
    if args.reverse:
        return _verify_reverse(args, dsp, x, n, params, inp, diff_path)
    v = verify(dsp, x, n=n, epsilon=args.epsilon, central=args.central, params=params,
               jump_check=not args.all_samples)
    what = (f"{inp} ({dsp.inputs} channel{'s' if dsp.inputs != 1 else ''})" if dsp.inputs
            else "none (the program has no inputs)")
    print(f"Input: {what}\nDifferentiable: {diff_path}")
    print(f"Samples: {n} at {args.sr} Hz")
    print(f"Epsilon: {step_text(v)} ({'central' if args.central else 'forward'} differences, "
          f"{'double' if args.double else 'float'})")
    print("Parameters: " + ", ".join(f"{k} = {_fmt_value(val)}" for k, val in v.params.items())
          + ("" if args.quiet else "\n"))
    print_table(v, rows=args.rows, table=not args.quiet)
    status = 0
    if args.tolerance is not None:
        k, i, err = v.worst()
        if v.unchecked:
            print(f"FAIL: not checked: {', '.join(v.unchecked)}")
            print(f"{PROG}: error: no sample compared for {v.unchecked[0]}: the output jumps in it at the "
                  f"first sample (a non-differentiable point: move it with --param, or --all-samples)",
                  file=sys.stderr)
            status = 1
        elif err > args.tolerance:
            print(f"FAIL: error {err:.3e} > --tolerance {args.tolerance:g}")
            print(f"{PROG}: error: derivative error {err:.3e} of the finite-difference peak "
                  f"({v.names[k]}, sample {i + 1}) exceeds --tolerance {args.tolerance:g}", file=sys.stderr)
            status = 1
        else:
            print(f"PASS: error {err:.3e} <= --tolerance {args.tolerance:g}")
    if args.tol is not None and v.max_delta > args.tol:
        print(f"{PROG}: error: max |delta| {v.max_delta:.3e} exceeds --tol {args.tol:g}", file=sys.stderr)
        status = 1
    return status


def _verify_reverse(args, dsp, x, n, params, inp, diff_path) -> int:
    from .verify import print_reverse, step_text, verify_reverse

    r = verify_reverse(dsp, x, n=n, epsilon=args.epsilon, central=args.central, params=params,
                       jump_check=not args.all_samples)
    v = r.forward
    what = (f"{inp} ({dsp.inputs} channel{'s' if dsp.inputs != 1 else ''})" if dsp.inputs
            else "none (the program has no inputs)")
    print(f"Input: {what}\nDifferentiable: {diff_path}")
    print(f"Samples: {n} at {args.sr} Hz")
    print(f"Reverse mode: the gradient of sum(w*y) over the first m samples, w seeded noise (seed {r.seed})")
    print(f"Epsilon: {step_text(v)} ({'central' if args.central else 'forward'} differences, "
          f"{'double' if args.double else 'float'})")
    print("Parameters: " + ", ".join(f"{k} = {_fmt_value(val)}" for k, val in v.params.items()) + "\n")
    print_reverse(r)
    if args.tolerance is None:
        return 0
    if r.unchecked:
        print(f"FAIL: not checked: {', '.join(r.unchecked)}")
        print(f"{PROG}: error: no prefix compared for {r.unchecked[0]}: the output jumps in it at the first "
              f"sample (move it with --param, or --all-samples)", file=sys.stderr)
        return 1
    if r.max_error > args.tolerance:
        print(f"FAIL: error {r.max_error:.3e} > --tolerance {args.tolerance:g}")
        print(f"{PROG}: error: reverse gradient error {r.max_error:.3e} of the finite-difference peak exceeds "
              f"--tolerance {args.tolerance:g}", file=sys.stderr)
        return 1
    print(f"PASS: error {r.max_error:.3e} <= --tolerance {args.tolerance:g}")
    return 0


def cmd_plot(args) -> int:
    from .train.fit import History
    from .train.plot import plot_history

    hist = History.read_csv(args.csv)
    out = args.output or (os.path.splitext(args.csv)[0] + ".png")
    plot_history(hist, out)
    print(f"Plot written to {out}")
    return 0


def cmd_examples(args) -> int:
    from .examples import EXAMPLES, EXAMPLES_DIR, INPUTS

    if args.path:
        print(EXAMPLES_DIR)
        return 0
    width = max(len(n) for n in EXAMPLES)
    print("Examples (diffaust train --example NAME, diffaust verify --example NAME):")
    for name, ex in EXAMPLES.items():
        print(f"  {name:<{width}}  {ex.description}")
    print(f"\nInput programs (in {EXAMPLES_DIR}):")
    for name, what in INPUTS.items():
        print(f"  {name:<{width}}  {what}")
    return 0


# -------------------------------------------------------------------- main
def _format_error(e: DiffaustError) -> str:
    text = e.format() if e.location() else str(e)
    if not e.location():
        text = f"{PROG}: {text}"
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``diffaust`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return 2
    if argv[0] == "conformance":
        from .conformance import main as conformance_main

        try:
            return conformance_main(argv[1:], prog=f"{PROG} conformance")
        except SystemExit as e:  # its --help or a usage error
            return e.code if isinstance(e.code, int) else 0
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
    try:
        args = parser.parse_args(argv)
    except _ArgError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    if hasattr(args, "sr"):  # None: not given; a command may take a WAV file's rate (_resolve_sr)
        args.sr_given = args.sr
        args.sr = DEFAULT_SR if args.sr is None else args.sr
    import warnings

    from .errors import DiffaustWarning

    def show(message, category, *rest, **kw):
        if issubclass(category, DiffaustWarning):
            print(f"{PROG}: warning: {message}", file=sys.stderr)
        else:
            _show_default(message, category, *rest, **kw)

    _show_default = warnings.showwarning
    warnings.showwarning = show
    warnings.simplefilter("always", DiffaustWarning)
    try:
        return int(args.func(args) or 0)
    except DiffaustError as e:
        print(_format_error(e), file=sys.stderr)
        return 1
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except RecursionError:  # a stage without its own depth guard (e.g. printing a very deep box)
        print(f"{PROG}: error: program too deeply nested to process", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{PROG}: error: out of memory (program too large?)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    finally:
        warnings.showwarning = _show_default


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
