"""The ``diffaust`` command.

    diffaust compile FILE.dsp [-diff] [-d] [-double] [-lang c|llvm|cpp|json] [--nondiff NAME]...
    diffaust render  FILE.dsp [-n N] [--sr 44100] [--input KIND|FILE] [--param NAME=VALUE]...
                              [-double] [-diff] [--nondiff NAME]... [-o OUT.npy|OUT.wav]
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
    _add_common(p)
    p.set_defaults(func=cmd_render)

    # train
    p = sub.add_parser("train", allow_abbrev=False, help="fit [diff:1] parameters by gradient descent",
                       description="The seed's per-sample gradient descent: the learnable program "
                                   "(--diff) is fitted to the ground truth (--gt), both fed by --input.")
    p.add_argument("--example", metavar="NAME", help="use a bundled example (see 'diffaust examples')")
    p.add_argument("--input", metavar="FILE",
                   help="input: a .dsp program (default: the bundled noise.dsp), .npy, .wav, or "
                        "impulse|noise|zeros|ones")
    p.add_argument("--gt", metavar="FILE", help="ground truth: a program (.dsp, hidden parameters) or a target "
                                                "signal (.wav or .npy, shape (channels, samples)); a file "
                                                "target sets the number of samples")
    p.add_argument("--diff", metavar="FILE.dsp", help="learnable program, parameters marked [diff:1]")
    p.add_argument("-lf", "--lossfunction", choices=("l1", "l2"), default=None,
                   help="loss function (default l2)")
    p.add_argument("-lr", "--learningrate", type=_positive_float, default=None, metavar="RATE",
                   help="learning rate (default 0.1)")
    p.add_argument("--iterations", type=_nonneg_int, default=None, metavar="N",
                   help="maximum number of iterations = samples (default 10000)")
    p.add_argument("--sensitivity", type=float, default=None, metavar="S",
                   help="no update while the loss is <= S (default 1e-7)")
    p.add_argument("--patience", type=_nonneg_int, default=None, metavar="K",
                   help="stop after more than K consecutive iterations with loss <= sensitivity (default 20); "
                        "--mode block: stop when the best loss has not improved for K iterations (default: never)")
    p.add_argument("--mode", choices=("sample", "block"), default="sample",
                   help="sample (default): the seed's per-sample SGD, one step per sample; block: render a "
                        "whole block (--samples) per iteration, block loss (--loss), any --optimizer, "
                        "parameters in normalized [0, 1] slider coordinates")
    p.add_argument("--optimizer", choices=("adam", "rmsprop", "momentum", "sgd"), default=None,
                   help="--mode block: optimizer (default adam); --mode sample: sgd only")
    p.add_argument("--loss", metavar="SPEC", default=None,
                   help="--mode block: block loss, e.g. mse (default), mae, mrstft, logmel or "
                        "'mse+0.5*mrstft'")
    p.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                   help="--mode block: samples per block (default 8192)")
    p.add_argument("--save", metavar="FIT.json",
                   help="--mode block: write the best parameters, loss, iterations and stop reason as JSON")
    p.add_argument("--no-stop", action="store_true", help="never stop early: run all iterations")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="initial value of a learnable parameter instead of its slider's; repeatable")
    p.add_argument("--csv", metavar="loss.csv", help="write the history: iteration,loss,<label>_grad,<label>,...")
    p.add_argument("--plot", metavar="loss.png", help="plot loss and parameter trajectories to a PNG")
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

    low = spec.lower()
    if low.endswith(".npy"):
        return read_npy(spec).shape[1]
    if low.endswith(".wav"):
        return read_wav(spec)[0].shape[1]
    return None


DEFAULT_SR = 44100


def _is_file_signal(spec) -> bool:
    return bool(spec) and str(spec).lower().endswith((".wav", ".npy"))


def _read_signal_file(path: str, what: str):
    from .audio import read_signal

    return read_signal(path, what)


def _resolve_sr(args, *files) -> None:
    """Set ``args.sr``: a WAV file's rate among ``files`` ((what, path) pairs), checked against
    ``--sr`` and the other WAVs (no resampling), else --sr, else 44100."""
    from .audio import read_wav

    given = getattr(args, "sr_given", args.sr)
    rates = []
    for what, path in files:
        if path and str(path).lower().endswith(".wav"):
            rates.append((what, path, read_wav(path)[1]))
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
    from .audio import input_signal, write_npy, write_wav

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
        x = input_signal(args.input, dsp.inputs, n, sample_rate=args.sr, double=args.double,
                         import_dirs=args.import_dirs)
        x = x if args.double else x.astype(np.float32)
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
    """The input signal; ``strict``: a .wav/.npy file shorter than ``n`` is an error (no zero padding)."""
    from .audio import input_signal

    if _is_file_signal(spec):
        data, _sr = _read_signal_file(spec, "input")
        if strict and data.shape[1] < n:
            raise UsageError(f"input {spec} holds {data.shape[1]} samples, but {n} are asked for")
    x = input_signal(spec, channels, n, sample_rate=args.sr, double=args.double, import_dirs=args.import_dirs)
    return x if args.double else x.astype(np.float32)


def _train_signals(args, inp, gt_path, diff_path, n, flag, n_given):
    """Compile the learnable program and build (learn, init, x, target, n, channels) for train.

    ``gt_path`` is a .dsp (rendered with the input for ``n`` samples) or a .wav/.npy target,
    whose length sets ``n`` (``n_given``: ``flag`` asked for n samples: at most the file's)."""
    file_target = _is_file_signal(gt_path)
    _resolve_sr(args, ("input", inp), ("target", gt_path if file_target else None))
    t = None
    if file_target:
        t, _sr = _read_signal_file(gt_path, "target")
        if n_given:
            if n > t.shape[1]:
                raise UsageError(f"{flag} {n} asks for more samples than the target {gt_path} holds "
                                 f"({t.shape[1]})")
        else:
            n = t.shape[1]
        t = t[:, :n]
    learn = _compile(diff_path, args, diff=True)
    if not learn.diff_params:
        raise UsageError(f"{diff_path}: no parameter is marked [diff:1]: nothing to learn")
    init = _check_params(learn, args.param, f" in {diff_path}")
    if file_target:
        if t.shape[0] != learn.primal_outputs:
            raise UsageError(f"the target {gt_path} has {t.shape[0]} channel(s), "
                             f"the learnable program {diff_path} has {learn.primal_outputs} output(s)")
        channels = learn.inputs
        x = _signal_for(inp, channels, n, args, strict=True) if channels else None
        return learn, init, x, t, n, channels
    gt = _compile(gt_path, args)
    if gt.outputs != learn.primal_outputs:
        raise UsageError(f"the ground truth {gt_path} has {gt.outputs} output(s), "
                         f"the learnable program {diff_path} has {learn.primal_outputs}")
    if gt.inputs and learn.inputs and gt.inputs != learn.inputs:
        raise UsageError(f"the ground truth has {gt.inputs} input(s), the learnable program {learn.inputs}")
    channels = gt.inputs or learn.inputs
    x = _signal_for(inp, channels, n, args, strict=True) if channels else None
    target = np.asarray(gt.render(x if gt.inputs else None, n=n), dtype=np.float64)
    return learn, init, x, target, n, channels


def cmd_train(args) -> int:
    from .train.fit import (DEFAULT_ITERATIONS, DEFAULT_LR, DEFAULT_PATIENCE, DEFAULT_SENSITIVITY,
                            TablePrinter, fit)

    if args.mode == "block":
        return _train_block(args)
    if args.optimizer not in (None, "sgd"):
        raise UsageError(f"--optimizer {args.optimizer} needs --mode block (--mode sample is plain sgd)")
    for flag, value in (("--loss", args.loss), ("--samples", args.samples), ("--save", args.save)):
        if value is not None:
            raise UsageError(f"{flag} is for --mode block (--mode sample: -lf l1|l2, --iterations, --csv)")
    if args.patience is None:
        args.patience = DEFAULT_PATIENCE
    inp, gt_path, diff_path, ex = _resolve_files(args, need_gt=True)
    lr = args.learningrate if args.learningrate is not None else (ex.lr if ex else DEFAULT_LR)
    loss = args.lossfunction or (ex.loss if ex else "l2")
    iterations = args.iterations if args.iterations is not None else (ex.iterations if ex else DEFAULT_ITERATIONS)
    sensitivity = args.sensitivity if args.sensitivity is not None else DEFAULT_SENSITIVITY

    learn, init, x, target, iterations, channels = _train_signals(
        args, inp, gt_path, diff_path, iterations, "--iterations", args.iterations is not None)

    out = sys.stdout.write
    if ex:
        print(f"Example: {ex.name} ({ex.description})")
    print(f"Input: {inp if channels else 'none (no program input)'}\nGround truth: {gt_path}\n"
          f"Learnable: {diff_path}")
    print(f"Samples: {iterations} at {args.sr} Hz")
    print(f"Loss function: {loss}")
    print(f"Learning rate: {lr:g}")
    print(f"Sensitivity: {sensitivity:g}\n")
    probe = learn.instance(params=init)
    for p in learn.diff_params:
        v0 = float(probe.get_param(p.path))
        print(f"Learnable parameter: {p.label}, value: {v0 if args.double else float(f'{v0:.7g}'):g}")
    print()

    printer = None
    if not args.quiet:
        printer = TablePrinter([p.label for p in learn.diff_params], sensitivity,
                               head=args.head, every=args.every, write=lambda s: out(s + "\n"))
    hist = fit(learn, target, x if learn.inputs else None, loss=loss, lr=lr, iterations=iterations,
               sensitivity=sensitivity, patience=None if args.no_stop else args.patience,
               params=init, callback=printer)
    if printer is not None:
        printer.finish()
        print()
    if hist.converged:
        print(f"Converged: {hist.stop_reason}.")
    else:
        print(f"{hist.stop_reason[0].upper()}{hist.stop_reason[1:]}.")
    print(f"Iterations: {hist.iterations}, final loss: {hist.final_loss:.3e}")
    _print_values(hist.final_values, ex)
    if args.csv:
        hist.write_csv(args.csv)
        print(f"History written to {args.csv}")
    if args.plot:
        from .train.plot import plot_history

        plot_history(hist, args.plot)
        print(f"Plot written to {args.plot}")
    return 0 if hist.stop_reason and not hist.stop_reason.startswith("diverged") else 1


DEFAULT_BLOCK_SAMPLES = 8192


def _train_block(args) -> int:
    """``train --mode block``: diffaust.train.block.fit_block on one rendered block."""
    from .train.block import DEFAULT_ITERATIONS, DEFAULT_LRS, fit_block
    from .train.losses import parse_loss

    for flag, value in (("--csv", args.csv), ("--plot", args.plot)):
        if value:
            raise UsageError(f"{flag} is for --mode sample; with --mode block use --save FIT.json")
    inp, gt_path, diff_path, ex = _resolve_files(args, need_gt=True)
    optimizer = args.optimizer or "adam"
    lr = args.learningrate if args.learningrate is not None else DEFAULT_LRS[optimizer]
    loss = args.loss or args.lossfunction or "mse"
    lossf = parse_loss(loss)
    iterations = args.iterations if args.iterations is not None else DEFAULT_ITERATIONS
    n = args.samples or DEFAULT_BLOCK_SAMPLES
    tolerance = 0.0 if args.no_stop or args.sensitivity is None else args.sensitivity
    patience = None if args.no_stop else args.patience

    learn, init, x, target, n, channels = _train_signals(
        args, inp, gt_path, diff_path, n, "--samples", args.samples is not None)

    if ex:
        print(f"Example: {ex.name} ({ex.description})")
    print(f"Input: {inp if channels else 'none (no program input)'}\nGround truth: {gt_path}\n"
          f"Learnable: {diff_path}")
    print(f"Mode: block ({n} samples per iteration)")
    print(f"Sample rate: {args.sr} Hz")
    print(f"Loss function: {loss}")
    print(f"Optimizer: {optimizer}")
    print(f"Learning rate: {lr:g} (normalized slider coordinates)\n")
    probe = learn.instance(params=init)
    for p in learn.diff_params:
        v0 = float(probe.get_param(p.path))
        print(f"Learnable parameter: {p.label}, value: {v0 if args.double else float(f'{v0:.7g}'):g}")
    print()

    w = 15

    def print_row(i, L, values):
        if i <= args.head or i % args.every == 0:
            print(f"{i:5d}{L:{w}.6e}" + "".join(f"{v:{w}.10g}" for v in values.values()))

    callback = None if args.quiet else print_row
    if callback is not None:
        print(f"{'Iter':>5}{'Loss':>{w}}" + "".join(f"{p.label[-(w - 1):]:>{w}}" for p in learn.diff_params))
    res = fit_block(learn, target, x if learn.inputs else None, loss=lossf, optimizer=optimizer, lr=lr,
                    iterations=iterations, params=init, tolerance=tolerance, patience=patience, n=n,
                    callback=callback)
    if callback is not None:
        print()
    print(f"Stopped: {res.stop_reason}.")
    print(f"Iterations: {res.iterations}, best loss: {res.loss:.3e}, time: {res.seconds:.2f} s")
    _print_values(res.params, ex)
    if args.save:
        res.save(args.save)
        print(f"Result written to {args.save}")
    return 1 if res.stop_reason == "diverged" else 0


def cmd_verify(args) -> int:
    from .verify import print_table, step_text, verify

    inp, _gt, diff_path, _ex = _resolve_files(args, need_gt=False, default_input="noise")
    _resolve_sr(args, ("input", inp))
    dsp = _compile(diff_path, args, diff=True)
    if not dsp.diff_params:
        raise UsageError(f"{diff_path}: no parameter is marked [diff:1]: nothing to verify")
    params = _check_params(dsp, args.param)
    n = args.n if args.n is not None else args.sr  # one second: long enough for a reverb's feedback
    x = _signal_for(inp, dsp.inputs, n, args) if dsp.inputs else None
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
