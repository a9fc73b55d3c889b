"""Sound-matching benchmark (issue 10, point 9): fit hidden parameters with diffaust.fit.

Each task is a Faust program with ``[diff:1]`` sliders, a hidden value per slider and a
documented start (the slider's default, or an explicit ``start``).  The target is the
same program rendered with the hidden values (a Faust-made target), or the output of
SoX, a program no one here wrote (a SoX-made target: the input noise is written to a
32-bit float WAV, SoX filters it, and diffaust fits a Faust transcription of SoX's
filter, whose parameters are compared with SoX's arguments).

Success: every learned parameter within 1 % (relative) of its hidden value.  The fit
is ``diffaust.fit(..., mode="block", optimizer="adam")`` with the fitter's default
learning rate and schedule (the last line prints them) unless ``--lr`` or ``--schedule``
say otherwise; the reported values are those of the best iteration.

    python benchmarks/sound_matching.py                       # all tasks, ~30 s
    python benchmarks/sound_matching.py --only lowpass2,sox_eq --iterations 500
    python benchmarks/sound_matching.py --loss mrstft          # every task with MR-STFT
    python benchmarks/sound_matching.py --schedule cosine --markdown table.md

Exit status 0 even when tasks fail (it is a benchmark); the last line counts successes.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import diffaust  # noqa: E402

SR = 48000
N = 8192
SEED = 1234

H = "import(\"stdfaust.lib\");\n"


def noise(n=N, channels=1, amp=0.5, seed=SEED):
    """Deterministic white noise, uniform in [-amp, amp], shape (channels, n)."""
    return amp * np.random.default_rng(seed).uniform(-1.0, 1.0, (channels, n))


def swept_noise(n=N, seed=SEED):
    """White noise whose level rises linearly in dB from -40 dB to 0 dB over the block
    (so that a compressor's threshold and ratio are both visible)."""
    env = 10.0 ** (np.linspace(-40.0, 0.0, n) / 20.0)
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (1, n)) * env


def burst(n=N, channels=2, length=256, seed=SEED):
    """A short noise burst then silence (to hear a reverb's tail)."""
    x = np.zeros((channels, n))
    x[:, :length] = np.random.default_rng(seed).uniform(-1.0, 1.0, (channels, length))
    return x


@dataclass
class Task:
    name: str
    what: str                      # one line for the README / table
    src: str                       # Faust source with [diff:1] sliders
    hidden: dict                   # label -> hidden value
    start: dict = field(default_factory=dict)  # label -> start (else the slider default)
    x: Optional[Callable] = None   # n -> input (channels, n); None: no input
    n: int = N
    loss: Optional[str] = None     # per-task loss (None: the --loss option)
    sox: Optional[list] = None     # SoX effect arguments: target made by `sox in.wav out.wav ...`
    sox_gen: Optional[list] = None  # SoX synth arguments: target made by `sox -n out.wav ...`


# ----------------------------------------------------------------- the programs
ONE_POLE = H + """p = hslider("p [diff:1]", 0.5, 0, 0.99, 0.001);
process = *(1 - p) : + ~ *(p);
"""

LOWPASS2 = H + """fc = hslider("fc [diff:1][unit:Hz]", 500, 50, 10000, 1);
process = fi.lowpass(2, fc);
"""

RESONLP = H + """fc = hslider("fc [diff:1][unit:Hz]", 1000, 50, 10000, 1);
Q = hslider("Q [diff:1][scale:log]", 1, 0.5, 20, 0.01);
process = fi.resonlp(fc, Q, 1);
"""

PEAK_EQ = H + """g = hslider("gain [diff:1][unit:dB]", 3, -24, 24, 0.1);
fc = hslider("fc [diff:1][unit:Hz]", 1000, 100, 10000, 1);
bw = hslider("bw [diff:1][unit:Hz]", 500, 20, 5000, 1);
process = fi.peak_eq(g, fc, bw);
"""

MOOG = H + """res = hslider("res [diff:1]", 0.3, 0, 0.95, 0.001);
fc = hslider("fc [diff:1][unit:Hz]", 800, 50, 10000, 1);
process = ve.moog_vcf_2b(res, fc);
"""

CUBICNL = H + """drive = hslider("drive [diff:1]", 0.2, 0, 1, 0.001);
offset = hslider("offset [diff:1]", 0.05, -0.5, 0.5, 0.001);
process = ef.cubicnl(drive, offset);
"""

TANH = H + """drive = hslider("drive [diff:1][scale:log]", 1, 0.1, 20, 0.01);
bias = hslider("bias [diff:1]", 0.05, -1, 1, 0.001);
process = *(drive) : +(bias) : ma.tanh;
"""

COMB = H + """g = hslider("g [diff:1]", 0.3, 0, 0.95, 0.001);
process = + ~ (@(100) : *(g));
"""

COMPRESSOR = H + """ratio = hslider("ratio [diff:1][scale:log]", 2, 1, 20, 0.01);
thresh = hslider("thresh [diff:1][unit:dB]", -10, -60, 0, 0.1);
process = co.compressor_mono(ratio, thresh, 0.002, 0.02);
"""

TREMOLO = H + """rate = hslider("rate [diff:1][unit:Hz]", 4.5, 0.5, 20, 0.01);
depth = hslider("depth [diff:1]", 0.2, 0, 1, 0.001);
process = *(1 - depth * (0.5 + 0.5 * os.osc(rate)));
"""

OSC = H + """f = hslider("freq [diff:1][unit:Hz]", 436, 50, 2000, 0.01);
a = hslider("amp [diff:1]", 0.3, 0, 1, 0.001);
process = os.osc(f) * a;
"""

FM = H + """ratio = hslider("ratio [diff:1]", 1.98, 0.5, 4, 0.001);
index = hslider("index [diff:1]", 1, 0, 10, 0.01);
fc = 440;
process = os.osc(fc + index * ratio * fc * os.osc(ratio * fc)) * 0.5;
"""

ZITA = H + """t60dc = hslider("t60dc [diff:1]", 2, 0.5, 8, 0.01);
t60m = hslider("t60m [diff:1]", 1.5, 0.5, 8, 0.01);
process = re.zita_rev1_stereo(60, 200, 6000, t60dc, t60m, 48000);
"""

# SoX's biquads (src/biquads.c, SoX 14.4.2): Robert Bristow-Johnson's cookbook.
#   w0 = 2 pi fc / SR, alpha = sin(w0) / (2 Q)
#   lowpass (2-pole, default width Q = sqrt(0.5)):
#     b = ((1-cos w0)/2, 1-cos w0, (1-cos w0)/2), a = (1+alpha, -2 cos w0, 1-alpha)
#   equalizer fc Qq gain: A = 10^(gain/40)
#     b = (1+alpha A, -2 cos w0, 1-alpha A), a = (1+alpha/A, -2 cos w0, 1-alpha/A)
#   lowpass -1 fc (single pole): a1 = -exp(-w0), b0 = 1 + a1
# fi.tf2(b0, b1, b2, a1, a2) is b/(1 + a1 z^-1 + a2 z^-2), so everything is divided by a0.
SOX_LOWPASS = H + """fc = hslider("fc [diff:1][unit:Hz]", 500, 50, 10000, 1);
Q = hslider("Q [diff:1][scale:log]", 1.5, 0.2, 10, 0.001);
w0 = 2 * ma.PI * fc / ma.SR;
alpha = sin(w0) / (2 * Q);
a0 = 1 + alpha;
process = fi.tf2((1 - cos(w0)) / 2 / a0, (1 - cos(w0)) / a0, (1 - cos(w0)) / 2 / a0,
                 -2 * cos(w0) / a0, (1 - alpha) / a0);
"""

SOX_EQ = H + """fc = hslider("fc [diff:1][unit:Hz]", 700, 50, 10000, 1);
Q = hslider("Q [diff:1][scale:log]", 2, 0.2, 10, 0.001);
gain = hslider("gain [diff:1][unit:dB]", 2, -24, 24, 0.01);
w0 = 2 * ma.PI * fc / ma.SR;
alpha = sin(w0) / (2 * Q);
A = 10 ^ (gain / 40);
a0 = 1 + alpha / A;
process = fi.tf2((1 + alpha * A) / a0, -2 * cos(w0) / a0, (1 - alpha * A) / a0,
                 -2 * cos(w0) / a0, (1 - alpha / A) / a0);
"""

SOX_ONEPOLE = H + """fc = hslider("fc [diff:1][unit:Hz]", 500, 20, 20000, 1);
p = exp(-2 * ma.PI * fc / ma.SR);
process = *(1 - p) : + ~ *(p);
"""

# SoX's `synth sine` starts at phase 0 (first sample 0); os.osc's first sample is one
# phase increment on (sin(2 pi f / SR)), hence the one-sample delay `mem`.
SOX_SINE = H + """f = hslider("freq [diff:1][unit:Hz]", 436, 50, 2000, 0.01);
a = hslider("amp [diff:1]", 0.3, 0, 1, 0.001);
process = os.osc(f) * a : mem;
"""

TASKS = [
    Task("one_pole", "one-pole lowpass y = (1-p)x + p y[-1], coefficient p", ONE_POLE,
         {"p": 0.9}, x=noise),
    Task("lowpass2", "fi.lowpass(2, fc), cutoff", LOWPASS2, {"fc": 1500.0}, x=noise),
    Task("resonlp", "fi.resonlp(fc, Q, 1), cutoff and Q", RESONLP, {"fc": 2500.0, "Q": 5.0}, x=noise),
    Task("peak_eq", "fi.peak_eq(gain, fc, bw)", PEAK_EQ, {"gain": 9.0, "fc": 1800.0, "bw": 300.0}, x=noise),
    Task("moog_vcf", "ve.moog_vcf_2b(res, fc)", MOOG, {"res": 0.6, "fc": 1500.0}, x=noise),
    Task("cubicnl", "ef.cubicnl(drive, offset) waveshaper", CUBICNL, {"drive": 0.5, "offset": 0.1},
         x=lambda n: noise(n, amp=0.3)),
    Task("tanh_drive", "tanh(drive*x + bias) waveshaper", TANH, {"drive": 4.0, "bias": 0.2},
         x=lambda n: noise(n, amp=0.5)),
    Task("comb", "feedback comb + ~ (@(100) : *(g))", COMB, {"g": 0.7}, x=noise),
    Task("compressor", "co.compressor_mono(ratio, thresh, 2 ms, 20 ms), noise rising -40..0 dB",
         COMPRESSOR, {"ratio": 4.0, "thresh": -24.0}, x=swept_noise),
    Task("tremolo", "x * (1 - depth (0.5 + 0.5 os.osc(rate)))", TREMOLO, {"rate": 5.0, "depth": 0.6},
         x=noise, n=16384),
    Task("osc", "os.osc(freq) * amp, no input", OSC, {"freq": 440.0, "amp": 0.5}),
    Task("fm", "os.osc(440 + index ratio 440 os.osc(ratio 440)) * 0.5", FM, {"ratio": 2.0, "index": 3.0}),
    Task("zita_rev", "re.zita_rev1_stereo(60, 200, 6000, t60dc, t60m, 48000), noise burst",
         ZITA, {"t60dc": 3.0, "t60m": 2.0}, x=burst, n=16384),
    Task("sox_lowpass", "SoX `lowpass 1000` (RBJ 2-pole, Q = sqrt(1/2)) vs a cookbook fi.tf2",
         SOX_LOWPASS, {"fc": 1000.0, "Q": math.sqrt(0.5)}, x=lambda n: noise(n, amp=0.25),
         sox=["lowpass", "1000"]),
    Task("sox_eq", "SoX `equalizer 1000 1q 6` (RBJ peaking EQ) vs a cookbook fi.tf2",
         SOX_EQ, {"fc": 1000.0, "Q": 1.0, "gain": 6.0}, x=lambda n: noise(n, amp=0.25),
         sox=["equalizer", "1000", "1q", "6"]),
    Task("sox_onepole", "SoX `lowpass -1 2000` (single pole, a1 = -exp(-w0)) vs a one-pole",
         SOX_ONEPOLE, {"fc": 2000.0}, x=lambda n: noise(n, amp=0.25), sox=["lowpass", "-1", "2000"]),
    Task("sox_sine", "SoX `synth sine 440 vol 0.5` vs os.osc(freq) * amp : mem",
         SOX_SINE, {"freq": 440.0, "amp": 0.5}, sox_gen=["synth", "%SECONDS%", "sine", "440", "vol", "0.5"]),
]


# ----------------------------------------------------------------- targets
def write_wav(path, x, sr=SR):
    """(channels, n) float -> 32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT)."""
    import struct

    x = np.asarray(x, dtype="<f4")
    ch, n = x.shape
    data = x.T.tobytes()
    fmt = struct.pack("<HHIIHH", 3, ch, sr, sr * ch * 4, ch * 4, 32)
    fact = struct.pack("<I", n)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def read_wav_raw(path, channels):
    """Read a WAV written by SoX by converting it to raw 64-bit floats with SoX itself."""
    raw = path + ".f64"
    subprocess.run(["sox", path, "-t", "raw", "-e", "floating-point", "-b", "64", raw],
                   check=True, capture_output=True)
    y = np.fromfile(raw, dtype="<f8")
    return y.reshape(-1, channels).T


def sox_target(task: Task, x, tmp):
    if shutil.which("sox") is None:
        raise RuntimeError("sox not installed (apt-get install sox)")
    out = os.path.join(tmp, task.name + "_out.wav")
    common = ["-D"]  # no dither
    if task.sox_gen is not None:
        secs = f"{task.n / SR:.6f}"
        args = [a.replace("%SECONDS%", secs) for a in task.sox_gen]
        cmd = ["sox", *common, "-n", "-r", str(SR), "-c", "1", "-e", "floating-point", "-b", "32", out, *args]
    else:
        inp = os.path.join(tmp, task.name + "_in.wav")
        write_wav(inp, x)
        cmd = ["sox", *common, inp, "-e", "floating-point", "-b", "32", out, *task.sox]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    y = read_wav_raw(out, 1)
    if y.shape[1] < task.n:
        raise RuntimeError(f"sox wrote {y.shape[1]} samples, expected {task.n}")
    return y[:, :task.n], " ".join(["sox", *(task.sox or ["-n", "..."] + task.sox_gen)])


def faust_target(task: Task, x):
    dsp = diffaust.compile(task.src, double=True, sample_rate=SR)
    return dsp.render(x, task.n, params=dict(task.hidden))


# ----------------------------------------------------------------- running
def fmt(v):
    return f"{v:.6g}"


def run_task(task: Task, args, tmp):
    x = task.x(task.n) if task.x is not None else None
    if x is not None:
        x = x[:, :task.n]
    if task.sox or task.sox_gen:
        target, _ = sox_target(task, x, tmp)
    else:
        target = faust_target(task, x)
    dsp = diffaust.compile(task.src, diff=True, double=True, sample_rate=SR)
    starts = {}
    for k in task.hidden:
        starts[k] = float(task.start.get(k, dsp.params[dsp.param_index(k)].init))
    loss = task.loss or args.loss
    opts = {}
    if args.schedule:
        opts["schedule"] = args.schedule
    if args.lr is not None:
        opts["lr"] = args.lr
    t0 = time.perf_counter()
    res = diffaust.fit(dsp, target, x, mode="block", loss=loss, optimizer="adam",
                       iterations=args.iterations, params=dict(task.start), **opts)
    secs = time.perf_counter() - t0
    errs = {k: abs(res.params[k] - h) / abs(h) for k, h in task.hidden.items()}
    return dict(task=task, start=starts, found=res.params, err=max(errs.values()), errs=errs,
                ok=all(e <= 0.01 for e in errs.values()), iterations=res.iterations, seconds=secs,
                loss=res.loss, loss_name=loss, stop=res.stop_reason, result=res)


def fitter_defaults(loss):
    """(learning rate, schedule name) that ``diffaust.fit`` uses when given neither."""
    import inspect

    from diffaust.train import block

    sched = inspect.signature(block.fit_block).parameters["schedule"].default
    sched = getattr(sched, "name", sched)
    try:
        lr = block.default_lr("adam", loss)
    except (AttributeError, TypeError):
        lr = block.DEFAULT_LRS["adam"]
    return lr, sched


def table(rows, markdown=True):
    head = ["task", "target by", "parameters: hidden / start / found", "max rel. err", "success",
            "iterations", "time (s)", "loss"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        t = r["task"]
        if "error" in r:
            lines.append(f"| {t.name} | {'SoX' if (t.sox or t.sox_gen) else 'Faust'} | n/a ({r['error']}) "
                         f"| | no | | | |")
            continue
        ps = "; ".join(f"{k} {fmt(h)} / {fmt(r['start'][k])} / {fmt(r['found'][k])}" for k, h in t.hidden.items())
        lines.append(f"| {t.name} | {'SoX' if (t.sox or t.sox_gen) else 'Faust'} | {ps} | {r['err'] * 100:.3g} % "
                     f"| {'yes' if r['ok'] else 'no'} | {r['iterations']} | {r['seconds']:.1f} "
                     f"| {r['loss_name']} {r['loss']:.3g} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated task names (" + ",".join(t.name for t in TASKS) + ")")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--loss", default="mse", help="mse or mrstft (or any block loss spec)")
    ap.add_argument("--schedule", default=None,
                    help="learning-rate schedule (plateau, constant, cosine, exponential; default: the fitter's)")
    ap.add_argument("--lr", type=float, default=None, help="adam learning rate (default: the fitter's)")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = ap.parse_args(argv)
    tasks = TASKS
    if args.list:
        for t in TASKS:
            print(f"{t.name:12s} {t.what}")
        return 0
    if args.only:
        names = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in names if s not in {t.name for t in TASKS}]
        if unknown:
            ap.error(f"unknown task(s): {', '.join(unknown)}")
        tasks = [t for t in TASKS if t.name in names]
    rows = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diffaust-sm-") as tmp:
        for task in tasks:
            try:
                r = run_task(task, args, tmp)
            except Exception as e:  # a benchmark: report and go on
                r = dict(task=task, error=f"{type(e).__name__}: {e}".replace("|", "/")[:200])
            rows.append(r)
            if "error" in r:
                print(f"{task.name:12s} n/a ({r['error']})", flush=True)
            else:
                print(f"{task.name:12s} {'ok  ' if r['ok'] else 'FAIL'} max err {r['err'] * 100:8.4f} % "
                      f"{r['iterations']:5d} it {r['seconds']:6.1f} s  loss {r['loss']:.3g} ({r['stop']})  "
                      + ", ".join(f"{k}={fmt(v)}" for k, v in r["found"].items()), flush=True)
    text = table(rows)
    n_ok = sum(1 for r in rows if r.get("ok"))
    print()
    print(text)
    print()
    failed = [r["task"].name for r in rows if not r.get("ok")]
    if failed:
        print("not within 1 %: " + ", ".join(failed))
    d_lr, d_sched = fitter_defaults(args.loss)
    lr = f"lr {args.lr}" if args.lr is not None else f"lr {d_lr:g} (the fitter's default)"
    sched = f"schedule {args.schedule}" if args.schedule else f"schedule {d_sched} (the fitter's default)"
    print(f"{n_ok}/{len(rows)} tasks within 1 % (total {time.perf_counter() - t_all:.0f} s, "
          f"adam, {lr}, {sched}, loss {args.loss}, {args.iterations} iterations at most)")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
