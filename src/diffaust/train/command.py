"""``diffaust train``: the three training modes behind one command.

    sample  the seed's per-sample SGD (diffaust.train.fit.fit), its table unchanged
    block   one whole block per iteration (diffaust.train.block.fit_block)
    stream  consecutive windows, state carried (diffaust.train.block.fit_stream)

The command reads the data (``--input``/``--gt`` or ``--pair IN:TARGET``, each a
.dsp, a sound file, a .npy or a built-in signal), runs the fit with a progress bar
(tqdm, after one second, off with ``-q``), prints the summary and writes the outputs
asked for — ``--json``, ``--save learned.dsp``, ``--csv``, ``--plot`` — each atomically.
Flags that do not apply to the chosen mode are refused with a one-line error.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import UsageError

DEFAULT_BLOCK_SAMPLES = 8192

#: flags of each mode beyond the common ones (for the "is for --mode ..." errors)
_MODE_FLAGS = {
    "lr_schedule": ("--lr-schedule", ("block", "stream")),
    "clip": ("--clip", ("block", "stream")),
    "lr_param": ("--lr-param", ("block", "stream")),
    "starts": ("--starts", ("block", "stream")),
    "seed": ("--seed", ("block", "stream")),
    "tolerance": ("--tolerance", ("block", "stream")),
    "samples": ("--samples/-n", ("block", "stream")),
    "window": ("--window", ("stream",)),
    "hop": ("--hop", ("stream",)),
    "pair": ("--pair", ("block",)),
    "ad": ("--ad", ("block",)),
    "sensitivity": ("--sensitivity", ("sample",)),
    "single": ("--float", ("block", "stream")),
}


@dataclass
class _Run:
    """What the fit did, whatever the mode: for the summary and the output files."""

    params: dict                     # label -> learned value (the best / last good)
    loss: float
    iterations: int
    stop_reason: str
    seconds: float
    diverged_at: Optional[int] = None
    rows: list = field(default_factory=list)    # (start, iteration, loss, [values])
    extra: dict = field(default_factory=dict)   # more JSON fields


def _check_mode_flags(args) -> None:
    for dest, (flag, modes) in _MODE_FLAGS.items():
        value = getattr(args, dest, None)
        if value in (None, [], False):
            continue
        if args.mode not in modes:
            raise UsageError(f"{flag} is for --mode {' or '.join(modes)}, not --mode {args.mode}")
    if args.mode == "sample" and args.optimizer not in (None, "sgd"):
        raise UsageError(f"--optimizer {args.optimizer} needs --mode block or stream "
                         "(--mode sample is the seed's plain sgd)")
    if args.pair and (args.input or args.gt or args.example):
        raise UsageError("--pair replaces --input, --gt and --example: give either")
    if args.save and not args.save.lower().endswith(".dsp"):
        if args.save.lower().endswith(".json"):
            raise UsageError(f"--save writes the learned program (a .dsp file); for {args.save} use --json")
        raise UsageError(f"--save {args.save}: the learned program is written as a .dsp file")
    if args.json and not args.json.lower().endswith(".json"):
        raise UsageError(f"--json {args.json}: expected a file name ending in .json")


def _lr_params(args) -> dict:
    return {name: value for name, value in (args.lr_param or [])}


# ------------------------------------------------------------------ data
def _pairs(args, cli):
    """[(input spec, gt spec)], the diff path and the example (or None)."""
    if args.pair:
        if not args.diff:
            raise UsageError("missing --diff (the learnable program)")
        pairs = []
        for text in args.pair:
            parts = text.split(":")
            if len(parts) != 2 or not all(parts):
                raise UsageError(f"--pair '{text}': expected INPUT:TARGET (e.g. in.wav:target.wav)")
            pairs.append((parts[0], parts[1]))
        return pairs, args.diff, None
    inp, gt, diff, ex = cli._resolve_files(args, need_gt=True)
    if args.input is None and not ex and cli._is_file_signal(gt):
        inp = None  # a recorded target: the input must be given too (checked once the program is known)
    return [(inp, gt)], diff, ex


def _load(args, cli, pairs, diff_path, n, n_given):
    """Compile the learnable program; (learn, init, [(x, target)], n, channels, gt programs)."""
    files = []
    for k, (inp, gt) in enumerate(pairs):
        tag = f" (pair {k + 1})" if len(pairs) > 1 else ""
        files += [("input" + tag, inp), ("target" + tag, gt)]
    cli._resolve_sr(args, *files)
    learn = cli._compile(diff_path, args, diff=True)
    if not learn.diff_params:
        raise UsageError(f"{diff_path}: no parameter is marked [diff:1]: nothing to learn")
    init = cli._check_params(learn, args.param, f" in {diff_path}")
    data, gts = [], []
    for k, (inp, gt_path) in enumerate(pairs):
        where = f"pair {k + 1} ({inp}:{gt_path}): " if len(pairs) > 1 else ""
        try:
            x, t, nk, gt = _load_pair(args, cli, learn, inp, gt_path, diff_path, n, n_given)
        except UsageError as e:
            raise UsageError(where + str(e)) from None
        data.append((x, t, nk))
        gts.append(gt)
    lengths = sorted({nk for _x, _t, nk in data})
    if len(lengths) > 1:
        raise UsageError(f"the pairs have different lengths ({', '.join(map(str, lengths))} samples): "
                         "cut them to one length, or give --samples N")
    n = lengths[0]
    return learn, init, [(x, t) for x, t, _nk in data], n, learn.inputs, gts


def _load_pair(args, cli, learn, inp, gt_path, diff_path, n, n_given):
    flag = "--samples" if args.mode != "sample" else "--iterations"
    if cli._is_file_signal(gt_path):
        t, _sr = cli._read_signal_file(gt_path, "target")
        if n_given:
            if n > t.shape[1]:
                raise UsageError(f"{flag} {n} asks for more samples than the target {gt_path} holds "
                                 f"({t.shape[1]})")
        else:
            n = t.shape[1]
        t = t[:, :n]
        if inp is None and learn.inputs:
            raise UsageError(f"the learnable program {diff_path} has {learn.inputs} input(s): give the input "
                             f"that produced the target {gt_path} with --input")
        if t.shape[0] != learn.primal_outputs:
            raise UsageError(f"the target {gt_path} has {t.shape[0]} channel(s), "
                             f"the learnable program {diff_path} has {learn.primal_outputs} output(s)")
        x = cli._signal_for(inp, learn.inputs, n, args, strict=True) if learn.inputs else None
        return x, t, n, None
    if not gt_path.lower().endswith(".dsp"):
        raise UsageError(f"target {gt_path}: expected a .dsp program, a sound file (.wav .flac .aiff .ogg) "
                         "or a .npy file")
    gt = cli._compile(gt_path, args)
    if gt.outputs != learn.primal_outputs:
        raise UsageError(f"the ground truth {gt_path} has {gt.outputs} output(s), "
                         f"the learnable program {diff_path} has {learn.primal_outputs}")
    if gt.inputs and learn.inputs and gt.inputs != learn.inputs:
        raise UsageError(f"the ground truth has {gt.inputs} input(s), the learnable program {learn.inputs}")
    channels = gt.inputs or learn.inputs
    if cli._is_file_signal(inp) and not n_given:  # an input file sets the length
        n = cli._input_length(inp)
    x = cli._signal_for(inp, channels, n, args, strict=True) if channels else None
    target = np.asarray(gt.render(x if gt.inputs else None, n=n), dtype=np.float64)
    return (x if learn.inputs else None), target, n, gt


def hidden_values(learn, gts, ex) -> dict:
    """label -> the value hidden in the ground truth: a bundled example's, or the default of
    the ground-truth program's slider with the same label."""
    hidden = dict(ex.hidden) if ex else {}
    for gt in gts:
        if gt is None:
            continue
        for p in gt.params:
            if any(q.label == p.label for q in learn.diff_params):
                hidden.setdefault(p.label, float(p.init))
    return hidden


# ------------------------------------------------------------------ command
def run(args, cli) -> int:
    """The ``train`` command (``cli`` is diffaust.cli, for its file and compile helpers)."""
    _check_mode_flags(args)
    if args.mode != "sample" and not args.single:
        args.double = True  # block/stream: double unless --float (a block gradient sums n products)
    pairs, diff_path, ex = _pairs(args, cli)
    if args.mode == "sample":
        return _run_sample(args, cli, pairs, diff_path, ex)
    return _run_block(args, cli, pairs, diff_path, ex)


def _print_header(args, ex, pairs, channels, learn, init, lines):
    if ex:
        print(f"Example: {ex.name} ({ex.description})")
    if len(pairs) == 1:
        inp, gt = pairs[0]
        print(f"Input: {inp if channels else 'none (no program input)'}\nGround truth: {gt}")
    else:
        print(f"Pairs: {len(pairs)} (loss averaged over them)")
        for inp, gt in pairs:
            print(f"  {inp if channels else '-'} -> {gt}")
    print(f"Learnable: {args.diff or (str(ex.diff) if ex else '')}")
    for line in lines:
        print(line)
    print()
    probe = learn.instance(params=init)
    for p in learn.diff_params:
        v0 = float(probe.get_param(p.path))
        print(f"Learnable parameter: {p.label}, value: {v0 if args.double else float(f'{v0:.7g}'):g}")
    print()


def _run_sample(args, cli, pairs, diff_path, ex) -> int:
    from .fit import DEFAULT_ITERATIONS, DEFAULT_LR, DEFAULT_PATIENCE, DEFAULT_SENSITIVITY, TablePrinter, fit
    from .progress import Progress

    loss = args.lossfunction or (ex.loss if ex else "l2")
    if loss not in ("l1", "l2"):
        raise UsageError(f"-lf {loss}: --mode sample takes the per-sample losses l1 or l2 "
                         "(block losses such as mse, mrstft, logmel need --mode block or stream)")
    patience = DEFAULT_PATIENCE if args.patience is None else args.patience
    lr = args.learningrate if args.learningrate is not None else (ex.lr if ex else DEFAULT_LR)
    iterations = args.iterations if args.iterations is not None else (ex.iterations if ex else DEFAULT_ITERATIONS)
    sensitivity = args.sensitivity if args.sensitivity is not None else DEFAULT_SENSITIVITY
    learn, init, data, iterations, channels, gts = _load(args, cli, pairs, diff_path, iterations,
                                                         args.iterations is not None)
    x, target = data[0]
    _print_header(args, ex, pairs, channels, learn, init,
                  [f"Samples: {iterations} at {args.sr} Hz", f"Loss function: {loss}", f"Learning rate: {lr:g}",
                   f"Sensitivity: {sensitivity:g}"])
    bar = Progress(iterations, enabled=not args.quiet)
    printer = None
    if not args.quiet:
        printer = TablePrinter([p.label for p in learn.diff_params], sensitivity,
                               head=args.head, every=args.every, write=bar.write)
    labels = [p.label for p in learn.diff_params]

    def callback(row):
        if printer is not None:
            printer(row)
        bar.update(row.loss, dict(zip(labels, row.values)))

    t0 = time.perf_counter()
    try:
        hist = fit(learn, target, x if learn.inputs else None, loss=loss, lr=lr, iterations=iterations,
                   sensitivity=sensitivity, patience=None if args.no_stop else patience,
                   params=init, callback=callback)
        if printer is not None:
            printer.finish()
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    if printer is not None:
        print()
    diverged = hist.stop_reason.startswith("diverged")
    if hist.converged:
        print(f"Converged: {hist.stop_reason}.")
    else:
        print(f"{hist.stop_reason[0].upper()}{hist.stop_reason[1:]}.")
    values = hist.final_values
    if diverged:  # keep the last values that were all finite
        values = dict(zip(hist.labels, hist.initial))
        for i in range(hist.iterations - 1, -1, -1):
            vals = [v[i] for v in hist.values]
            if all(math.isfinite(v) for v in vals):
                values = dict(zip(hist.labels, vals))
                print(f"Kept the last finite values, those after iteration {hist.iteration[i]}.")
                break
    print(f"Iterations: {hist.iterations}, final loss: {hist.final_loss:.3e}")
    cli._print_values(values, ex)
    stop = "diverged" if diverged else ("sensitivity" if hist.converged else "iterations")
    run_ = _Run(values, hist.final_loss, hist.iterations, stop, seconds,
                diverged_at=hist.iterations if diverged else None,
                extra={"mode": "sample", "loss_function": loss, "learning_rate": lr})
    _write_outputs(args, cli, run_, learn, diff_path, hidden_values(learn, gts, ex), target, x, hist=hist)
    return 1 if diverged else 0


def _run_block(args, cli, pairs, diff_path, ex) -> int:
    from .block import DEFAULT_ITERATIONS, DEFAULT_WINDOW, default_lr, fit_block, fit_stream
    from .losses import parse_loss
    from .optim import make_schedule
    from .progress import Progress

    mode = args.mode
    optimizer = args.optimizer or "adam"
    loss = args.lossfunction or "l2"
    lossf = parse_loss(loss)
    lr = args.learningrate if args.learningrate is not None else default_lr(optimizer, lossf)
    schedule = make_schedule(args.lr_schedule or ("adaptive" if mode == "block" else "plateau"))
    iterations = args.iterations if args.iterations is not None else DEFAULT_ITERATIONS
    starts = args.starts or 1
    n = args.samples or DEFAULT_BLOCK_SAMPLES
    learn, init, data, n, channels, gts = _load(args, cli, pairs, diff_path, n, args.samples is not None)
    lr_params = _lr_params(args)
    for name in lr_params:  # checked before the fit: a name that is not a diff parameter
        i = cli._check_params(learn, [(name, 0.0)], f" in {diff_path}")
        path = next(iter(i))
        if path not in {p.path for p in learn.diff_params}:
            label = learn.params[learn.param_index(path)].label
            raise UsageError(f"--lr-param {name}: '{label}' is not a [diff:1] parameter of {diff_path} "
                             f"(learnable: {', '.join(p.label for p in learn.diff_params)})")
    window = args.window or DEFAULT_WINDOW
    hop = args.hop or window
    if mode == "stream":
        if hop > window:
            raise UsageError(f"--hop {hop} is longer than --window {window}")
        if window > n:
            raise UsageError(f"--window {window} is longer than the signal ({n} samples)")
    lines = [f"Mode: {mode} ({n} samples per iteration)" if mode == "block" else
             f"Mode: stream (windows of {window} samples, hop {hop}, over {n} samples)",
             f"Sample rate: {args.sr} Hz, {'double' if args.double else 'single'} precision", f"Loss function: {loss}", f"Optimizer: {optimizer}",
             f"Learning rate: {lr:g} (normalized slider coordinates), schedule {schedule.name}"
             + (f", clip {args.clip:g}" if args.clip else "")]
    if lr_params:
        lines.append("Learning rates per parameter: " + ", ".join(f"{k}={v:g}" for k, v in lr_params.items()))
    if starts > 1:
        lines.append(f"Starts: {starts} (the initial values, then {starts - 1} points spread over the ranges)")
    _print_header(args, ex, pairs, channels, learn, init, lines)

    labels = [p.label for p in learn.diff_params]
    w = 15
    bar = Progress(iterations * starts, enabled=not args.quiet)
    rows = []
    if not args.quiet:
        bar.write(f"{'Iter':>5}{'Loss':>{w}}" + "".join(f"{lab[-(w - 1):]:>{w}}" for lab in labels))

    started = [-1]

    def callback(i, L, values):
        if i == 1:  # each start counts from 1 again
            started[0] += 1
        start = started[0]
        rows.append((start, i, L, list(values.values())))
        if not args.quiet:
            if i == 1 and start > 0:
                bar.write(f"start {start + 1}: " + ", ".join(f"{k} = {v:.6g}" for k, v in values.items()))
            if i <= args.head or i % args.every == 0:
                bar.write(f"{i:5d}{L:{w}.6e}" + "".join(f"{v:{w}.10g}" for v in values.values()))
        bar.update(L, values)

    xs = [x for x, _t in data]
    ts = [t for _x, t in data]
    kw = dict(loss=lossf, optimizer=optimizer, lr=lr, iterations=iterations, params=init,
              schedule=schedule, clip=args.clip, tolerance=args.tolerance or 0.0,
              patience=None if args.no_stop else args.patience, callback=callback,
              lr_params={k: v for k, v in lr_params.items()}, starts=starts, seed=args.seed or 0)
    try:
        if mode == "block":
            res = fit_block(learn, ts if len(ts) > 1 else ts[0], xs if len(xs) > 1 else xs[0], n=n,
                            ad=args.ad or "auto", **kw)
        else:
            res = fit_stream(learn, ts[0], xs[0], n=n, window=window, hop=hop, **kw)
    finally:
        bar.close()
    if not args.quiet:
        print()
    if res.stop_reason == "diverged":
        print(f"Diverged at iteration {res.diverged_at}: the loss or its gradient is NaN or infinite "
              f"(try a smaller -lr or --clip); kept the best values, from iteration {res.best_iteration}.")
    else:
        print(f"Stopped: {_STOP_TEXT.get(res.stop_reason, res.stop_reason)}.")
    if starts > 1:
        print(f"Best of {len(res.starts)} starts: start {res.start + 1}")
    print(f"Iterations: {res.iterations}, best loss: {res.loss:.3e}, time: {res.seconds:.2f} s")
    cli._print_values(res.params, ex)
    extra = {"mode": mode, "loss_function": loss, "optimizer": optimizer, "learning_rate": lr,
             "schedule": schedule.name, "samples": n, "ad": getattr(res, "ad", "forward")}
    if mode == "stream":
        extra.update(window=window, hop=hop)
    js = res.to_json()
    extra.update({k: v for k, v in js.items() if k in ("best_iteration", "start", "starts")})
    run_ = _Run(res.params, res.loss, res.iterations, res.stop_reason, res.seconds, res.diverged_at, rows, extra)
    best = {p.path: res.params.get(p.label, res.params.get(p.path)) for p in learn.diff_params}
    _write_outputs(args, cli, run_, learn, diff_path, hidden_values(learn, gts, ex), ts[0], xs[0],
                   best_paths={**init, **best})
    return 1 if res.stop_reason == "diverged" else 0


_STOP_TEXT = {"iterations": "reached the maximum number of iterations",
              "tolerance": "the loss reached --tolerance",
              "patience": "the best loss did not improve for --patience iterations",
              "callback": "stopped by the callback"}


# ------------------------------------------------------------------ outputs
def _write_outputs(args, cli, run_: _Run, learn, diff_path, hidden, target, x, hist=None, best_paths=None):
    from ..outfile import atomic_output, write_text

    if args.json:
        import json

        doc = {"params": {k: float(v) for k, v in run_.params.items()},
               "loss": float(run_.loss) if math.isfinite(run_.loss) else None,
               "iterations": int(run_.iterations), "time": float(run_.seconds),
               "stop_reason": run_.stop_reason, "diverged_at": run_.diverged_at}
        doc.update(run_.extra)
        if hidden:
            doc["hidden"] = {k: float(v) for k, v in hidden.items()}
        write_text(args.json, json.dumps(doc, indent=2, allow_nan=False) + "\n")
        print(f"Result written to {args.json}")
    if args.save:
        from .learned import check_learned, learned_source

        with open(diff_path, encoding="utf-8") as f:
            text = f.read()
        values = {p.label: run_.params[p.label] for p in learn.diff_params if p.label in run_.params}
        new = learned_source(text, values, diff_path)
        folder = os.path.dirname(os.path.abspath(diff_path))

        def compile_text(src):
            import_dirs = tuple(args.import_dirs) + (folder,)
            return cli._runtime().compile(src, double=args.double, sample_rate=args.sr, import_dirs=import_dirs,
                                          use_cache=not args.no_cache, allow_native=args.allow_native)

        check_learned(new, values, compile_text)
        write_text(args.save, new)
        print(f"Learned program written to {args.save}")
    if args.csv and hist is not None:  # the seed's columns: iteration,loss,<label>_grad,<label>,...
        hist.write_csv(args.csv)
        print(f"History written to {args.csv}")
    elif args.csv:
        import csv

        labels = [p.label for p in learn.diff_params]
        rows = run_.rows
        multi = any(r[0] for r in rows)
        with atomic_output(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow((["start"] if multi else []) + ["iteration", "loss"] + labels)
            for start, i, L, vals in rows:
                w.writerow(([start + 1] if multi else []) + [i, repr(float(L))] + [repr(float(v)) for v in vals])
        print(f"History written to {args.csv}")
    if args.plot:
        from .plot import plot_fit

        if hist is not None:
            its, losses = hist.iteration, hist.loss
            traj = {lab: vals for lab, vals in zip(hist.labels, hist.values)}
            per_sample = True
            best_paths = {p.path: run_.params[p.label] for p in learn.diff_params}
        else:
            best_start = run_.extra.get("start", 0)
            sel = [r for r in run_.rows if r[0] == best_start]
            its = [r[1] for r in sel]
            losses = [r[2] for r in sel]
            traj = {p.label: [r[3][k] for r in sel] for k, p in enumerate(learn.diff_params)}
            per_sample = False
        n = target.shape[1]
        fitted = learn.render_jvp(x if learn.inputs else None, n, params=best_paths)[0]
        units = {p.label: p.meta.get("unit", "") for p in learn.diff_params}
        plot_fit(args.plot, iterations=its, losses=losses, trajectories=traj, units=units, hidden=hidden,
                 target=target, fitted=np.asarray(fitted, dtype=np.float64), sample_rate=args.sr,
                 running_mean=per_sample, title=f"diffaust train --mode {args.mode}: {os.path.basename(diff_path)}")
        print(f"Plot written to {args.plot}")

