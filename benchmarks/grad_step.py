"""Gradient-step speed (issue 10, point 10): diffaust next to DawDreamer's Faust->JAX and auraloss.

One gradient step = forward pass + derivatives + loss + parameter update, on 48,000
samples at 48 kHz (one second), from a reset state:

  diffaust     ``diffaust.train.block.loss_and_grad(dsp, mse, target, x, n, values)`` (the
               program compiled with diff=True renders y and dy/dp in one pass, forward
               mode) plus one adam update in normalized slider coordinates
               (``diffaust.train.optim``), as ``diffaust.fit`` does; in float (the CLI's
               default) and in double (``diffaust.fit``'s default)
  DawDreamer   ``dawdreamer.faust.box.boxToSource(box, 'jax', ...)`` (Faust -> Flax/JAX
               code, single precision), ``jax.value_and_grad`` of the mean squared error
               (reverse mode through ``lax.scan``) plus one adam update, all in one
               ``jax.jit``, timed after a warm-up (compile) call
  auraloss     ``auraloss.freq.MultiResolutionSTFTLoss()`` forward + backward on PyTorch
               CPU, float32, next to ``diffaust.train.losses.parse_loss("mrstft")`` (value
               and gradient, float64 numpy)

Rows: resonlp (fi.resonlp, 3 diff parameters: fc, Q, gain), zita
(re.zita_rev1_stereo(60, 200, 6000, t60dc, t60m, 48000), 2 diff parameters), MR-STFT on
48,000 samples; the primal render time and render_jvp / primal next to the goal (1+P)x.
Each time is the median of ``--reps`` after one warm-up.  A package that is missing prints
``n/a (reason)``.  Exit status 0 (a benchmark).

    pip install -e '.[bench]'      # dawdreamer, jax, flax (the generated code's), torch, auraloss
    python benchmarks/grad_step.py
    python benchmarks/grad_step.py --reps 15 --only resonlp,mrstft --markdown table.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

SR = 48000
N = 48000
SEED = 7

RESONLP = """import("stdfaust.lib");
fc = hslider("fc [diff:1]", 1000, 50, 10000, 1);
Q = hslider("Q [diff:1]", 1, 0.5, 20, 0.01);
gain = hslider("gain [diff:1]", 1, 0, 2, 0.01);
process = fi.resonlp(fc, Q, gain);
"""
RESONLP_TARGET = {"fc": 2500.0, "Q": 4.0, "gain": 0.8}

ZITA = """import("stdfaust.lib");
t60dc = hslider("t60dc [diff:1]", 2, 0.5, 8, 0.01);
t60m = hslider("t60m [diff:1]", 1.5, 0.5, 8, 0.01);
process = re.zita_rev1_stereo(60, 200, 6000, t60dc, t60m, 48000);
"""
ZITA_TARGET = {"t60dc": 3.0, "t60m": 2.0}

PROGRAMS = {"resonlp": (RESONLP, RESONLP_TARGET, 1), "zita": (ZITA, ZITA_TARGET, 2)}


def median_time(fn, reps):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), {model}, Python {platform.python_version()}"


def signals(inputs, n=N):
    return np.random.default_rng(SEED).uniform(-0.5, 0.5, (inputs, n))


# ------------------------------------------------------------------ diffaust
def diffaust_step(name, double, reps):
    """(step seconds, primal render seconds, render_jvp seconds, P)."""
    import diffaust
    from diffaust.train.block import loss_and_grad
    from diffaust.train.losses import parse_loss
    from diffaust.train.optim import UnitBox, get_optimizer, param_bounds, to_unit

    src, target_values, inputs = PROGRAMS[name]
    x = signals(inputs)
    primal = diffaust.compile(src, double=double, sample_rate=SR)
    target = primal.render(x, N, params=target_values)[:primal.primal_outputs].astype(np.float64)
    dsp = diffaust.compile(src, diff=True, double=double, sample_rate=SR)
    lossf = parse_loss("mse")
    params = list(dsp.diff_params)
    bounds = [param_bounds(p) for p in params]
    opt = get_optimizer("adam")
    u = np.array([to_unit(float(p.init), *b) for p, b in zip(params, bounds)])
    state = {"u": u, "opt": opt.init(u)}
    values = {p.path: float(p.init) for p in dsp.params}

    box = UnitBox(bounds)  # the fit loop's normalized coordinates, vectorized

    def step():
        uu = state["u"]
        for p, v in zip(params, box.values(uu).tolist()):
            values[p.path] = v
        L, g = loss_and_grad(dsp, lossf, target, x, N, values)
        gu = g * box.dvalue_du(uu)
        s, state["opt"] = opt.update(gu, state["opt"], 0.05)
        state["u"] = np.clip(uu + s, 0.0, 1.0)

    t_step = median_time(step, reps)
    t_primal = median_time(lambda: primal.render(x, N), reps)
    t_jvp = median_time(lambda: dsp.render_jvp(x, N), reps)
    return t_step, t_primal, t_jvp, len(params)


# ------------------------------------------------------------------ DawDreamer -> JAX
def dawdreamer_model(src: str, sr: int):
    """DawDreamer's Faust->JAX translation of `src` ([diff:1] metadata removed), an instance
    of the Flax module it generates (`MyDSP(sr)`); Unavailable without dawdreamer/jax/flax.
    Shared by the benchmarks that compare with it (grad_step, reverse, torch_layer)."""
    try:
        import flax  # noqa: F401  (the generated code's)
        import jax  # noqa: F401
        from dawdreamer.faust import createLibContext, destroyLibContext
        from dawdreamer.faust.box import boxFromDSP, boxToSource
    except ImportError as e:
        raise Unavailable(f"{e.name or e} not installed") from None
    createLibContext()
    try:
        box = boxFromDSP(src.replace(" [diff:1]", ""))
        code = boxToSource(box, "jax", "MyDSP", ["-a", "jax/minimal.py"])
    finally:
        destroyLibContext()
    try:
        import librosa  # noqa: F401  (the generated code imports it, for soundfiles only)
    except ImportError:  # none of these programs has a soundfile: a stand-in module will do
        import types

        sys.modules.setdefault("librosa", types.ModuleType("librosa"))
    g = {}
    exec(compile(code, "<dawdreamer-jax>", "exec"), g)  # the code DawDreamer generated
    return g["MyDSP"](sr)


def dawdreamer_step(name, reps):
    """Seconds per jitted value_and_grad + adam step of DawDreamer's Faust->JAX code."""
    src, target_values, inputs = PROGRAMS[name]
    model = dawdreamer_model(src, SR)
    import jax
    import jax.numpy as jnp
    x = jnp.asarray(signals(inputs), dtype=jnp.float32)
    params = model.init({"params": jax.random.PRNGKey(0)}, x, N)["params"]

    # the target: the same JAX program with the target slider values (its own parameterization)
    def set_values(p, vals):
        out = dict(p)
        for k in p:
            label = k.rsplit("/", 1)[-1]
            if label in vals:
                lo, hi = SLIDER_RANGES[name][label]
                out[k] = jnp.asarray(2.0 * (vals[label] - lo) / (hi - lo) - 1.0, dtype=jnp.float32)
        return out

    def render(p):
        y, _ = model.apply({"params": p}, x, N, mutable="intermediates")
        return y

    target = jax.jit(render)(set_values(params, target_values))
    # the same program? diffaust's float render with the same values, same input
    import diffaust

    ref = diffaust.compile(src, sample_rate=SR).render(np.asarray(x, dtype=np.float64), N, params=target_values)
    ref = ref[:np.asarray(target).shape[0]]
    agree = float(np.sqrt(np.mean((np.asarray(target) - ref) ** 2) / np.mean(ref ** 2)))
    def loss_fn(p):
        return jnp.mean((render(p) - target) ** 2)

    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.05

    @jax.jit
    def step(p, s):  # value_and_grad + one adam update (as optax.adam), one jitted call
        L, gr = jax.value_and_grad(loss_fn)(p)
        t = s["t"] + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, s["m"], gr)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, s["v"], gr)
        p = jax.tree.map(lambda p, m, v: p - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + eps),
                         p, m, v)
        return p, {"t": t, "m": m, "v": v}, L

    zeros = jax.tree.map(jnp.zeros_like, params)
    holder = {"p": params, "s": {"t": jnp.asarray(0, jnp.int32), "m": zeros, "v": zeros}}

    def run():
        p, s, L = step(holder["p"], holder["s"])
        jax.block_until_ready(L)
        holder["p"], holder["s"] = p, s

    t0 = time.perf_counter()
    run()  # compile
    t_compile = time.perf_counter() - t0
    return median_time(run, reps), t_compile, agree


SLIDER_RANGES = {"resonlp": {"fc": (50, 10000), "Q": (0.5, 20), "gain": (0, 2)},
                 "zita": {"t60dc": (0.5, 8), "t60m": (0.5, 8)}}


class Unavailable(Exception):
    pass


# ------------------------------------------------------------------ MR-STFT
def mrstft_diffaust(reps):
    from diffaust.train.losses import parse_loss

    lossf = parse_loss("mrstft")
    y, t = signals(2)
    y, t = y[None, :], t[None, :]
    return median_time(lambda: lossf(y, t), reps)


def mrstft_auraloss(reps):
    try:
        import torch
        import auraloss
    except ImportError as e:
        raise Unavailable(f"{e.name or e} not installed") from None
    loss = auraloss.freq.MultiResolutionSTFTLoss()
    yn, tn = signals(2)
    t = torch.tensor(tn, dtype=torch.float32).reshape(1, 1, -1)
    y0 = torch.tensor(yn, dtype=torch.float32).reshape(1, 1, -1)

    def run():
        y = y0.clone().requires_grad_(True)
        L = loss(y, t)
        L.backward()
        return y.grad

    # torch's default thread count, then one thread: the faster counts (on a small, loaded
    # machine torch's worker threads can wait on each other for a second per call)
    default = torch.get_num_threads()
    best = None
    for threads in dict.fromkeys((default, 1)):
        torch.set_num_threads(threads)
        t_run = median_time(run, reps)
        if best is None or t_run < best[0]:
            best = (t_run, threads)
    torch.set_num_threads(default)
    return best[0], torch.__version__, best[1]


# ------------------------------------------------------------------ table
def ms(s):
    return f"{s * 1e3:.3g} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--only", default="resonlp,zita,mrstft", help="comma-separated: resonlp,zita,mrstft")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    rows = []  # (what, diffaust, reference, ratio, goal, verdict)
    versions = {}
    print(f"machine: {machine()}", flush=True)

    def add(*r):
        rows.append(r)
        print(" | ".join(str(c) for c in r), flush=True)

    for name in [s for s in only if s in PROGRAMS]:
        goal_ms = {"resonlp": 0.5e-3, "zita": 25e-3}[name]
        res = {}
        for double in (False, True):
            prec = "double" if double else "float"
            try:
                res[prec] = diffaust_step(name, double, args.reps)
            except Exception as e:  # report and go on
                add(f"{name} step ({prec})", f"n/a ({type(e).__name__}: {e})", "", "", "", "")
        try:
            dd, dd_compile, dd_agree = dawdreamer_step(name, args.reps)
            versions["dawdreamer"] = _version("dawdreamer")
            versions["jax"] = _version("jax")
            dd_note = (f"{ms(dd)} (jit compile {dd_compile:.1f} s; its output vs diffaust's: "
                       f"rel. RMS diff {dd_agree:.1e})")
        except Exception as e:
            dd, dd_note = None, f"n/a ({_why(e)})"
        for prec, (t_step, t_primal, t_jvp, P) in res.items():
            add(f"{name} gradient step, {P} params ({prec})", ms(t_step), f"DawDreamer JAX: {dd_note}",
                f"{dd / t_step:.1f}x faster" if dd else "", f"<= {ms(goal_ms)}; >= 4x faster than JAX",
                ("pass" if t_step <= goal_ms else "FAIL") + "; "
                + (("pass" if dd / t_step >= 4 else "FAIL") if dd else "n/a"))
        for prec, (t_step, t_primal, t_jvp, P) in res.items():
            r = t_jvp / t_primal
            add(f"{name} render_jvp / primal ({prec})", f"{ms(t_jvp)} / {ms(t_primal)}", "", f"{r:.2f}x",
                f"<= (1+P)x = {1 + P}x", "pass" if r <= 1 + P else "FAIL")
    if "mrstft" in only:
        try:
            t_d = mrstft_diffaust(args.reps)
        except Exception as e:
            t_d = None
            add("MR-STFT loss + gradient, 48,000 samples", f"n/a ({type(e).__name__}: {e})", "", "", "", "")
        try:
            t_a, tv, nth = mrstft_auraloss(args.reps)
            versions["torch"] = tv
            versions["auraloss"] = _version("auraloss")
            a_note = f"auraloss fwd+bwd: {ms(t_a)} (torch {tv}, {nth} thread{'s' if nth > 1 else ''})"
        except Exception as e:
            t_a, a_note = None, f"n/a ({_why(e)})"
        if t_d is not None:
            add("MR-STFT loss + gradient, 48,000 samples", ms(t_d), a_note,
                f"{t_a / t_d:.2f}x" if t_a else "", "<= auraloss fwd+bwd",
                ("pass" if t_d <= t_a else "FAIL") if t_a else "n/a")
    head = ["what", "diffaust", "reference", "speed-up / ratio", "goal", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    text = "\n".join(lines)
    print()
    print(text)
    print()
    print("versions: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or "no optional package"))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


def _why(e):
    return str(e) if isinstance(e, Unavailable) else f"{type(e).__name__}: {e}"


def _version(mod):
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
