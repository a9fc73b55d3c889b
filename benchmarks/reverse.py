"""Reverse-mode speed and memory (issue 11): Dsp.vjp next to the primal render, forward
mode and DawDreamer's Faust->JAX gradient.

For each program, in double and in float, on 48,000 samples (one second at 48 kHz) of
seeded noise, from a reset state:

  primal       ``diffaust.compile(src, double=...).render(x, n)``
  forward      ``diffaust.compile(src, diff=True, double=...).render_jvp(x, n, reuse=True)``
               (y and every dy/dp, one pass)
  reverse      ``dsp.vjp(x, y_bar)`` on the primal Dsp: d/dp of sum(y_bar*y) for every
               [diff:1] parameter and every input sample (tape program forward, adjoint
               program backward); the reverse programs are compiled before timing
  DawDreamer   ``dawdreamer.faust.box.boxToSource(box, 'jax', ...)`` (its Faust -> Flax/JAX
               code, single precision), ``jax.jit(jax.value_and_grad(lambda p:
               sum(y_bar*render(p))))`` w.r.t. its parameters, timed after a warm-up
               (compile) call; the same y_bar and x

Each time is the median of ``--reps`` after one warm-up (DawDreamer's zita gradient: at
most 3, it takes seconds).  The ratios are to the primal render of the same precision;
the goal for reverse mode is <= 5x the primal.  The gradient of each program is checked
once against forward mode: sum(dy*y_bar) vs g.params (the largest difference over the
largest gradient, and the worst parameter's relative difference).

Programs:
  eq64     a cascade of 21 fi.peak_eq(g_k, f_k, b_k) bands (gain dB, centre frequency,
           bandwidth: 3 [diff:1] sliders each) and an output gain: 64 parameters
  zita     re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000): 2 parameters, 2 inputs
  resonlp  fi.resonlp(fc, q, gain): 3 parameters

Also: the cold compile time of eq64's reverse programs (``dsp.reverse()``, after the
primal compile, in a fresh process with DIFFAUST_NO_CACHE=1; goal < 5 s), and the peak
resident memory of a 10-minute (28,800,000 samples) float zita parameter gradient
(a child process under ``/usr/bin/time -v``, 'Maximum resident set size'; goal <= 2 GiB).

    python benchmarks/reverse.py
    python benchmarks/reverse.py --reps 15 --markdown table.md
    python benchmarks/reverse.py --skip-memory --skip-jax
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from grad_step import N, SEED, SR, Unavailable, _version, _why, dawdreamer_model, machine, ms  # noqa: E402

SRC_DIR = os.path.abspath(os.path.join(HERE, "..", "src"))
if SRC_DIR not in sys.path:
    sys.path.insert(0, SRC_DIR)

MEMORY_SAMPLES = 10 * 60 * SR  # 28,800,000
GOAL_REVERSE = 5.0  # x the primal render
GOAL_COMPILE = 5.0  # s, eq64's reverse programs, cold
GOAL_MEMORY = 2 << 30  # bytes


def eq64_source(bands=21):
    lines = ['import("stdfaust.lib");']
    freqs = np.geomspace(40.0, 16000.0, bands)
    stages = []
    for k in range(1, bands + 1):
        f0 = float(freqs[k - 1])
        g0 = 3.0 if k % 2 else -3.0
        bw0 = round(f0 / 2.0, 1)  # Q ~ 2
        lines.append(f'g{k} = hslider("g{k} [diff:1]", {g0}, -24, 24, 0.1);')
        lines.append(f'f{k} = hslider("f{k} [diff:1]", {f0:.1f}, 20, 20000, 1);')
        lines.append(f'b{k} = hslider("b{k} [diff:1]", {bw0}, 5, 10000, 1);')
        stages.append(f"fi.peak_eq(g{k}, f{k}, b{k})")
    lines.append('out = hslider("out [diff:1]", 0.8, 0, 2, 0.01);')
    lines.append("process = " + " : ".join(stages) + " : *(out);")
    return "\n".join(lines) + "\n"


ZITA = """import("stdfaust.lib");
t60dc = hslider("t60dc [diff:1]", 2, 0.5, 8, 0.01);
t60m = hslider("t60m [diff:1]", 1.5, 0.5, 8, 0.01);
process = re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000);
"""

RESONLP = """import("stdfaust.lib");
fc = hslider("fc [diff:1]", 1000, 50, 10000, 1);
q = hslider("q [diff:1]", 1, 0.5, 20, 0.01);
gain = hslider("gain [diff:1]", 1, 0, 2, 0.01);
process = fi.resonlp(fc, q, gain);
"""

PROGRAMS = {"eq64": eq64_source(), "zita": ZITA, "resonlp": RESONLP}
INPUTS = {"eq64": 1, "zita": 2, "resonlp": 1}
OUTPUTS = {"eq64": 1, "zita": 2, "resonlp": 1}


def noise(rows, n=N, seed=SEED):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (rows, n))


# ------------------------------------------------------------------ diffaust
def interleaved(fns, reps):
    """(median, fastest) seconds of each of fns, after one warm-up each, timed in turn rep by rep."""
    for f in fns:
        f()
    ts = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, ts):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in ts], [min(t) for t in ts]


def grad_diff(a, b):
    """(max_k |a_k - b_k| / max_k |a_k|, the worst parameter's |a_k - b_k| / max(|a_k|, |b_k|), its label)."""
    scale = max(max(abs(v) for v in a.values()), 1e-300)
    glob = max(abs(a[k] - b[k]) for k in a) / scale
    worst = max(a, key=lambda k: abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), 1e-300))
    return glob, abs(a[worst] - b[worst]) / max(abs(a[worst]), abs(b[worst]), 1e-300), worst


def diffaust_times(name, double, reps):
    import diffaust

    src = PROGRAMS[name]
    x = noise(INPUTS[name])
    y_bar = noise(OUTPUTS[name], seed=SEED + 1)
    primal = diffaust.compile(src, double=double, sample_rate=SR)
    fwd = diffaust.compile(src, diff=True, double=double, sample_rate=SR)
    t0 = time.perf_counter()
    primal.reverse()
    t_rev_compile = time.perf_counter() - t0  # may come from the on-disk cache

    # the check, once: sum(dy * y_bar) (forward mode) against g.params (reverse mode)
    g = primal.vjp(x, y_bar)
    y, dy = fwd.render_jvp(x, N)
    fwd_g = {p.label: float(np.sum(dy[:, k, :].astype(np.float64) * y_bar)) for k, p in enumerate(fwd.diff_params)}
    rev_g = {k: float(v) for k, v in g.params.items()}
    y_err = float(np.max(np.abs(g.output.astype(np.float64) - y)))

    # the three timed side by side, rep by rep, so that they share the machine's load
    (t_primal, t_jvp, t_vjp), fastest = interleaved([lambda: primal.render(x, N),
                                          lambda: fwd.render_jvp(x, N, reuse=True),
                                          lambda: primal.vjp(x, y_bar)], reps)
    rev = primal.reverse()
    info = {"tape": rev.n_tape, "P": len(rev.labels)}
    return dict(primal=t_primal, jvp=t_jvp, vjp=t_vjp, fastest=fastest, fwd_g=fwd_g, rev_g=rev_g, y_err=y_err,
                rev_compile=t_rev_compile, **info)


# ------------------------------------------------------------------ DawDreamer -> JAX
def dawdreamer_grad(name, reps):
    """(seconds per jitted value_and_grad, jit compile seconds, rel. RMS diff of its output
    from diffaust's float render, reps used)."""
    src = PROGRAMS[name]
    model = dawdreamer_model(src, SR)
    import jax
    import jax.numpy as jnp
    x = jnp.asarray(noise(INPUTS[name]), dtype=jnp.float32)
    y_bar = jnp.asarray(noise(OUTPUTS[name], seed=SEED + 1), dtype=jnp.float32)
    params = model.init({"params": jax.random.PRNGKey(0)}, x, N)["params"]

    def render(p):
        y, _ = model.apply({"params": p}, x, N, mutable="intermediates")
        return y

    y0 = np.asarray(jax.jit(render)(params))
    import diffaust

    ref = diffaust.compile(src, sample_rate=SR).render(np.asarray(x, dtype=np.float64), N)
    agree = float(np.sqrt(np.mean((y0 - ref[:y0.shape[0]]) ** 2) / np.mean(ref ** 2)))

    grad = jax.jit(jax.value_and_grad(lambda p: jnp.sum(y_bar * render(p))))

    def run():
        v, gr = grad(params)
        jax.block_until_ready(gr)

    t0 = time.perf_counter()
    run()  # compile
    t_compile = time.perf_counter() - t0
    r = reps if t_compile < 20 else 1
    t_step = None
    # one timed call tells how slow it is: at most 3 for a gradient of a second or more
    t1 = time.perf_counter()
    run()
    first = time.perf_counter() - t1
    if first > 0.5:
        r = min(r, 3)
    ts = [first]
    for _ in range(r - 1):
        t1 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t1)
    ts.sort()
    t_step = ts[len(ts) // 2] if len(ts) % 2 else 0.5 * (ts[len(ts) // 2 - 1] + ts[len(ts) // 2])
    return t_step, t_compile, agree, len(ts)


# ------------------------------------------------------------------ cold compile (child)
COMPILE_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
src = open(sys.argv[2]).read()
double = sys.argv[3] == "double"
import numpy, llvmlite.binding  # imports outside the timed calls
import diffaust
t0 = time.perf_counter(); d = diffaust.compile(src, double=double, sample_rate=48000); t1 = time.perf_counter()
d.reverse(); t2 = time.perf_counter()
diffaust.compile(src, diff=True, double=double, sample_rate=48000); t3 = time.perf_counter()
print(json.dumps({"primal": t1 - t0, "reverse": t2 - t1, "forward": t3 - t2}))
"""


def cold_compile(name, double):
    """{primal, reverse, forward} seconds in a fresh process with DIFFAUST_NO_CACHE=1, in
    that order (the reverse() call is the reverse programs' compile)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.dsp")
        with open(path, "w") as f:
            f.write(PROGRAMS[name])
        env = dict(os.environ, DIFFAUST_NO_CACHE="1", DIFFAUST_CACHE_DIR=os.path.join(tmp, "cache"))
        out = subprocess.run([sys.executable, "-c", COMPILE_CHILD, SRC_DIR, path,
                              "double" if double else "float"],
                             env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ memory (child)
MEMORY_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
n = int(sys.argv[2])
import numpy as np
import diffaust
src = '''%s'''
d = diffaust.compile(src, double=False, sample_rate=48000)
d.reverse()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
rng = np.random.default_rng(7)
x = rng.random((2, n), dtype=np.float32); x -= np.float32(0.5)       # float32 throughout,
y_bar = rng.random((2, n), dtype=np.float32); y_bar -= np.float32(0.5)  # no float64 temporaries
t0 = time.perf_counter()
g = d.vjp(x, y_bar)
t = time.perf_counter() - t0
params, shape, dtype, finite = g.params, list(g.input.shape), str(g.input.dtype), bool(np.all(np.isfinite(g.input)))
del g
t0 = time.perf_counter()
d.render(x, n)  # the primal render of the same 10 minutes, for scale (after the gradient: no higher peak)
t_primal = time.perf_counter() - t0
print(json.dumps({"seconds": t, "primal": t_primal, "before_vjp": base, "params": params,
                  "input": shape, "dtype": dtype, "finite": finite}))
""" % ZITA


def zita_memory(n=MEMORY_SAMPLES):
    """(max RSS bytes from /usr/bin/time -v, the child's report)."""
    timer = "/usr/bin/time"
    if not os.path.exists(timer):
        raise Unavailable("/usr/bin/time missing (apt-get install -y time)")
    out = subprocess.run([timer, "-v", sys.executable, "-c", MEMORY_CHILD, SRC_DIR, str(n)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        tail = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("\t")]
        raise RuntimeError(tail[-1] if tail else f"rc {out.returncode}")
    rss = None
    for line in out.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1]) * 1024  # kbytes
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return rss, report


# ------------------------------------------------------------------ table
def _load():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def mib(b):
    return f"{b / 2**20:,.0f} MiB"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--skip-memory", action="store_true", help="no 10-minute zita gradient")
    ap.add_argument("--skip-jax", action="store_true", help="no DawDreamer/JAX column")
    ap.add_argument("--only", default="eq64,zita,resonlp", help="comma-separated: eq64,zita,resonlp")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip() in PROGRAMS]
    print(f"machine: {machine()}; load average {_load()}", flush=True)
    versions = {}
    head = ["program", "P", "prec.", "primal", "forward render_jvp (x primal)",
            "reverse vjp (x primal)", "goal <= 5x", "DawDreamer JAX grad (float)", "vjp speed-up",
            "check: max abs(fwd - rev) / max abs(g)"]
    rows, notes = [], []
    fails = []

    def add(r):
        rows.append(r)
        print(" | ".join(str(c) for c in r), flush=True)

    for name in only:
        res = {}
        for double in (True, False):
            prec = "double" if double else "float"
            try:
                res[prec] = diffaust_times(name, double, args.reps)
            except Exception as e:
                add([name, "", prec, f"n/a ({type(e).__name__}: {e})"] + [""] * (len(head) - 4))
                fails.append(f"{name} {prec}: {type(e).__name__}: {e}")
        if args.skip_jax:
            dd, dd_note = None, "skipped (--skip-jax)"
        else:
            try:
                dd, dd_compile, dd_agree, dd_reps = dawdreamer_grad(name, args.reps)
                versions["dawdreamer"] = _version("dawdreamer")
                versions["jax"] = _version("jax")
                versions["flax"] = _version("flax")
                dd_note = (f"{ms(dd)} (median of {dd_reps}; jit {dd_compile:.1f} s; "
                           f"output vs diffaust: rel. RMS {dd_agree:.1e})")
            except Exception as e:
                dd, dd_note = None, f"n/a ({_why(e)})"
        for prec, r in res.items():
            rj, rv = r["jvp"] / r["primal"], r["vjp"] / r["primal"]
            chk = grad_diff(r["fwd_g"], r["rev_g"])
            ok = rv <= GOAL_REVERSE
            if not ok:
                fails.append(f"{name} {prec}: vjp {rv:.2f}x primal")
            add([name, r["P"], prec, ms(r["primal"]), f"{ms(r['jvp'])} ({rj:.2f}x)", f"{ms(r['vjp'])} ({rv:.2f}x)",
                 "pass" if ok else "FAIL", dd_note, f"{dd / r['vjp']:.0f}x" if dd else "",
                 f"{chk[0]:.1e} (worst param {chk[2]}: {chk[1]:.1e})"])
            note = (f"{name} ({prec}): {r['tape']} tape channels; primal y from vjp vs forward: "
                    f"max abs diff {r['y_err']:.1e}; fastest of the reps: primal {ms(r['fastest'][0])}, "
                    f"forward {r['fastest'][1] / r['fastest'][0]:.2f}x, reverse {r['fastest'][2] / r['fastest'][0]:.2f}x")
            if prec == "float" and "double" in res:  # both float gradients against the double one
                ref = res["double"]["rev_g"]
                note += (f"; vs the double gradient: forward {grad_diff(ref, r['fwd_g'])[0]:.1e}, "
                         f"reverse {grad_diff(ref, r['rev_g'])[0]:.1e} (of max |g|)")
            notes.append(note)
    # cold compile of eq64's reverse programs
    compile_lines = []
    for double in (True, False):
        prec = "double" if double else "float"
        try:
            c = cold_compile("eq64", double)
            ok = c["reverse"] < GOAL_COMPILE
            if not ok:
                fails.append(f"eq64 {prec}: reverse compile {c['reverse']:.2f} s")
            compile_lines.append(f"| eq64 reverse programs, cold compile ({prec}) | {c['reverse']:.2f} s "
                                 f"(primal compile before it {c['primal']:.2f} s; forward diff=True after it "
                                 f"{c['forward']:.2f} s) | < {GOAL_COMPILE:.0f} s | {'pass' if ok else 'FAIL'} |")
        except Exception as e:
            compile_lines.append(f"| eq64 reverse programs, cold compile ({prec}) | n/a ({type(e).__name__}: {e}) "
                                 f"| < {GOAL_COMPILE:.0f} s | n/a |")
        print(compile_lines[-1], flush=True)
    mem_lines = []
    if args.skip_memory:
        mem_lines.append("| zita 10-min gradient, peak RSS (float) | skipped (--skip-memory) | <= 2 GiB | n/a |")
    else:
        try:
            rss, rep = zita_memory()
            ok = rss is not None and rss <= GOAL_MEMORY
            if not ok:
                fails.append(f"zita 10 min: peak RSS {mib(rss) if rss else '?'}")
            data = 4 * 4 * 2 * MEMORY_SAMPLES  # x, y_bar, y, input gradient: 2 x n float32 each
            mem_lines.append(f"| zita 10-min gradient (28.8M samples, float), peak RSS | {mib(rss)} "
                             f"(before vjp, after compile: {mib(rep['before_vjp'])}; x, y_bar, y, x-bar "
                             f"alone: {mib(data)}; vjp took {rep['seconds']:.1f} s, the primal render "
                             f"{rep['primal']:.1f} s) | <= 2 GiB | "
                             f"{'pass' if ok else 'FAIL'} |")
            notes.append(f"zita 10 min: params {rep['params']}, input gradient {rep['input']} {rep['dtype']}, "
                         f"finite: {rep['finite']}")
        except Exception as e:
            mem_lines.append(f"| zita 10-min gradient, peak RSS (float) | n/a ({_why(e)}) | <= 2 GiB | n/a |")
    print(mem_lines[-1], flush=True)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    lines += ["", "| what | diffaust | goal | verdict |", "|---|---|---|---|"] + compile_lines + mem_lines
    text = "\n".join(lines)
    print()
    print(text)
    print()
    for n_ in notes:
        print(n_)
    print("versions: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or "no optional package"))
    print(f"load average at the end: {_load()}")
    print("goals missed: " + ("; ".join(fails) if fails else "none"))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
