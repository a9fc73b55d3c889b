"""PyTorch layer speed (issue 12): forward + backward of a batch through `diffaust.torch.FaustModule`.

One step = ``y = layer(x, params)`` on a batch of 16 one-second examples (48,000 samples at
48 kHz, seeded noise in), ``y.backward(w)`` (the gradient of sum(w * y)) with a seeded noise w, gradients
w.r.t. every parameter tensor (shape (16,), requires_grad) and x — or, in the "-params-only"
rows (the DDSP case: a network predicts the parameters, the excitation needs no gradient),
w.r.t. the parameters only, where the layer's ``ad="auto"`` may pick forward mode (its
column says which mode ran: the 1-thread module's choice, timed on its first batch, then
set on both modules — two modules timing the modes each could pick different ones).  float32 (the layer's default), 1 thread and 2 threads
(``FaustModule(..., threads=k)``); the scaling is the 1-thread time over the 2-thread time.
Beside it, the same batch's compiled calls alone (`compiled_steps`: prepared once, run in
the layer's lane groups on its pool, no torch and no Python between them): the scaling the
machine gives this work at the same moments, the ceiling of the layer's.
The layer's defaults otherwise: the batch in SIMD lanes (``lanes=None``: 8 items per
compiled call for resonlp, 4 for zita, whose state is larger; `runtime.lanes.lane_width`).
Each time is the median of ``--reps`` (or more: at least 4 s of steps per thread count) after
one warm-up; the layer at 1 and 2 threads and its calls alone at 1 and 2 threads are timed
in turn, so that they share the machine's moments: 6 steps of one, then 6 of the next, the
first of each 6 not timed (the native pool's workers poll ~1 ms after a pass: that step may
run beside them).  On this VM a slow stretch (the two vCPUs sharing a physical core, it
seems: the calls alone then scale 1.0–1.4×) lasts seconds: the 4 s keep it a minority.

DawDreamer: its Faust -> Flax/JAX code (``boxToSource(box, 'jax', ...)``, float32),
``jax.jit(jax.vmap(jax.value_and_grad(f, argnums=(0, 1))))`` over the same batch (gradient
w.r.t. the parameters and the input; ``argnums=(0,)``, the parameters only, in the
"-params-only" rows), timed after a compile call and after all of diffaust's rows (its
XLA runs use both cores for a minute and more); skipped with a note when
dawdreamer, jax or flax is missing (``pip install -e '.[bench]'``).

Programs: resonlp = ``fi.resonlp(fc, q, gain)`` (3 parameters), zita =
``re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000)`` (2 parameters, 2 in, 2 out).
A "resonlp-fc-per-sample" row gives fc as a (16, 48000) tensor.

    python benchmarks/torch_layer.py
    python benchmarks/torch_layer.py --reps 9 --only resonlp --skip-jax --markdown table.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)
from grad_step import Unavailable, dawdreamer_model, machine  # noqa: E402

from diffaust.runtime.dsp import set_read_params  # noqa: E402
from diffaust.runtime.lanes import lane_groups  # noqa: E402

SR = 48000
N = 48000
BATCH = 16
SEED = 7
MIN_SECONDS = 4.0  # each thread count timed over at least this long (`enough`): this VM's
# slow stretches (its two vCPUs on one physical core now and then) last seconds
# the thread counts are timed in turn, BLOCK steps each, the first of a block not timed: the
# native pool's workers poll ~1 ms after a pass, so a block's first step may run beside the
# previous block's polls (a sleep between the steps instead made every step, 1 thread's too,
# 40 % slower here: the vCPU idles and comes back cold)
BLOCK = 6

RESONLP = """import("stdfaust.lib");
fc = hslider("fc [diff:1]", 1000, 50, 10000, 1);
q = hslider("q [diff:1]", 1, 0.5, 20, 0.01);
gain = hslider("gain [diff:1]", 1, 0, 2, 0.01);
process = fi.resonlp(fc, q, gain);
"""

ZITA = """import("stdfaust.lib");
t60dc = hslider("t60dc [diff:1]", 2, 0.5, 8, 0.01);
t60m = hslider("t60m [diff:1]", 1.5, 0.5, 8, 0.01);
process = re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000);
"""

# name: (source, inputs, outputs, {label: (lo, hi)} of the batch's values, per-sample labels,
#        whether x requires grad)
RESONLP_RANGES = {"fc": (200.0, 5000.0), "q": (0.7, 8.0), "gain": (0.5, 1.5)}
ZITA_RANGES = {"t60dc": (1.0, 6.0), "t60m": (1.0, 6.0)}
CASES = {
    "resonlp": (RESONLP, 1, 1, RESONLP_RANGES, (), True),
    "resonlp-fc-per-sample": (RESONLP, 1, 1, RESONLP_RANGES, ("fc",), True),
    "zita": (ZITA, 2, 2, ZITA_RANGES, (), True),
    # the DDSP case: the excitation x needs no gradient, the parameters do
    "resonlp-params-only": (RESONLP, 1, 1, RESONLP_RANGES, (), False),
    "zita-params-only": (ZITA, 2, 2, ZITA_RANGES, (), False),
}




def timed_blocks(steps: dict, reps: int, after_round=None) -> dict:
    """{key: step times}: the steps timed in turn, BLOCK of each at a time (the first of each
    block not timed), until each has `reps` times."""
    ts = {k: [] for k in steps}
    while min(len(v) for v in ts.values()) < reps:
        for k, step in steps.items():
            for i in range(BLOCK):
                t0 = time.perf_counter()
                step()
                if i:
                    ts[k].append(time.perf_counter() - t0)
        if after_round is not None:
            after_round()
    return ts


def enough(reps, step, seconds=MIN_SECONDS):
    """reps, or more: as many as take `seconds` (one step timed), so that a short step's
    median is not that of a few milliseconds of a noisy machine."""
    t0 = time.perf_counter()
    step()
    return max(reps, int(seconds / max(time.perf_counter() - t0, 1e-6)))


def load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def batch_values(ranges, seed=SEED):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(lo, hi, BATCH) for k, (lo, hi) in ranges.items()}


def noise(shape, seed):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


# ------------------------------------------------------------------ diffaust
def diffaust_steps(name):
    """({threads: one step of the layer}, the mode the layer uses)."""
    import torch

    from diffaust.torch import FaustModule

    src, I, O, ranges, vary, x_grad = CASES[name]
    x = torch.from_numpy(noise((BATCH, I, N), SEED)).requires_grad_(x_grad)
    w = torch.from_numpy(noise((BATCH, O, N), SEED + 1))
    vals = batch_values(ranges)
    params = {}
    for k, v in vals.items():
        t = torch.tensor(v, dtype=torch.float32)
        if k in vary:  # a slow sweep around the value, per sample
            t = t[:, None] * (1 + 0.5 * torch.sin(torch.linspace(0, 6.28, N)))[None, :]
        params[k] = t.requires_grad_()
    mods = {k: FaustModule(src, sample_rate=SR, threads=k) for k in (1, 2)}

    def step(m):
        for t in (x, *params.values()):
            t.grad = None
        y = m(x, params)
        y.backward(w)  # the gradient of sum(w * y), with no torch op of a loss in the timing

    step(mods[1])  # warm-up: compiles the reverse programs (and the per-sample variant); "auto" times
    m = mods[1]    # the modes once on the module's first batch: the 1-thread module's choice is the row's
    mode = "forward" if m._jvp_dsp is not None and (m._ad_timed in (None, "forward")) else "reverse"
    for m in mods.values():
        m.ad = mode  # (both thread counts in one mode: each module timing its own could pick another)
        step(m)
    return {k: (lambda m=m: step(m)) for k, m in mods.items()}, mode


def compiled_steps(name, mode):
    """The same batch's compiled calls alone, prepared once and run over and over (no torch, no
    Python between them but the pool's), in the layer's lane groups and pool: {threads: one
    step}.  The machine's own 1 -> 2 thread scaling of this work, timed in turn with the
    layer's steps (on a virtual machine whose two cores share a physical one now and then,
    this ceiling moves from moment to moment); None where the layer does not run the batch in
    lanes."""
    from diffaust.torch import FaustModule

    src, I, O, ranges, vary, x_grad = CASES[name]
    m = FaustModule(src, sample_rate=SR, threads=1)
    d = m.dsp
    vals = batch_values(ranges)
    paths = {p.label: p.path for p in d.params}
    vpaths = tuple(sorted(paths[k] for k in vary))
    v = m._variant(vpaths)
    npdt = np.float32
    x = noise((BATCH, I, N), SEED)
    if vpaths:  # the per-sample values as inputs after the program's own (a slow sweep, as the layer's)
        sweep = (1 + 0.5 * np.sin(np.linspace(0, 6.28, N, dtype=np.float32)))
        x = np.concatenate([x] + [(vals[k][:, None] * sweep[None, :]).astype(npdt)[:, None]
                                  for k in sorted(vary, key=lambda k: paths[k])], axis=1)
    w = noise((BATCH, O, N), SEED + 1)
    out = np.empty((BATCH, O, N), npdt)
    g = np.empty((BATCH, x.shape[1], N), npdt)

    def values(items):
        r = {paths[k]: np.asarray(vv[items.start:items.stop], dtype=np.float64) for k, vv in vals.items()
             if paths[k] not in vpaths}
        r.update({path: np.zeros(len(items)) for path in vpaths})
        return r

    if mode == "reverse":
        rev = v.reverse()
        rl = m._lane_programs(BATCH, rev.lanes)
        if rl is None:
            return None
        groups = lane_groups(BATCH, rl[0].lanes)
        tape = np.empty((len(groups),) + rev.tape_shape(rl, N), npdt)
        ti, ai = m._group_instances(rl[0], len(groups)), m._group_instances(rl[1], len(groups))
        passes = [[rev.forward_items(rl, x, it, N, values(it), out, tape[k], inst=ti[k], defer=True)
                   for k, it in enumerate(groups)],
                  [rev.backward_items(rl, tape[k], w, it, N, values(it), g, inst=ai[k], defer=True)
                   for k, it in enumerate(groups)]]
    else:
        jg = m._jvp()
        lp, lj = m._lane_programs(BATCH, v.lanes), m._lane_programs(BATCH, jg.dsp.lanes)
        if lp is None or lj is None:
            return None
        groups = lane_groups(BATCH, lp.lanes)
        ri, ji = m._group_instances(lp, len(groups)), m._group_instances(lj, len(groups))
        for inst, it in zip(ri, groups):
            set_read_params(inst, v, values(it))
        passes = [[inst.compute_items([(x, 0)], [(out, 0)], it, N, defer=True) for inst, it in zip(ri, groups)],
                  [jg.run_items(lj, x, w, it, N, values(it), inst=inst, defer=True) for inst, it in zip(ji, groups)]]

    # each group from its prepared state (reset, the batch's parameters set), as in the layer
    states = [[(inst._state, inst._state.copy()) for inst in ins] for ins in ((ti, ai) if mode == "reverse" else (ri, ji))]

    def step():
        for jobs, st in zip(passes, states):
            for state, prepared in st:
                np.copyto(state, prepared)
            m._run_prepared(jobs)

    def at(k):
        def run():
            m.threads = k
            step()
        return run

    for k in (1, 2):
        at(k)()
    return {k: at(k) for k in (1, 2)}


def timed_row(name, reps):
    """The layer's steps and its compiled calls alone, at 1 and 2 threads, timed in turn (one
    round: BLOCK steps of each) until each has `reps` times, or more (`enough`): ({threads:
    (median s, fastest s)}, load averages seen, mode, {threads: median s of the calls alone}
    or None)."""
    layer, mode = diffaust_steps(name)
    calls = compiled_steps(name, mode)
    steps = {("layer", k): f for k, f in layer.items()}
    steps.update({("calls", k): f for k, f in (calls or {}).items()})
    loads = [load()]
    ts = timed_blocks(steps, enough(reps, layer[1]), lambda: loads.append(load()))
    t = {k: (statistics.median(ts["layer", k]), min(ts["layer", k])) for k in (1, 2)}
    c = {k: statistics.median(ts["calls", k]) for k in (1, 2)} if calls else None
    return t, loads, mode, c


# ------------------------------------------------------------------ DawDreamer -> JAX
def dawdreamer_times(name, reps):
    """(median s of jit(vmap(value_and_grad)) over the batch, jit compile s, reps)."""
    src, I, O, ranges, vary, x_grad = CASES[name]
    if vary:
        raise Unavailable("a parameter per sample is not an input of DawDreamer's JAX code")
    model = dawdreamer_model(src, SR)
    import jax
    import jax.numpy as jnp
    x = jnp.asarray(noise((BATCH, I, N), SEED))
    w = jnp.asarray(noise((BATCH, O, N), SEED + 1))
    p0 = model.init({"params": jax.random.PRNGKey(0)}, x[0], N)["params"]
    vals = batch_values(ranges)

    # the batch's parameters: each leaf of the Flax params whose name holds a label, per item
    def leaf_value(path, leaf):
        key = "/".join(str(getattr(k, "key", k)) for k in path)
        for label, v in vals.items():
            if label in key:
                return jnp.asarray(v, dtype=jnp.float32).reshape((BATCH,) + jnp.shape(leaf))
        return jnp.broadcast_to(leaf, (BATCH,) + jnp.shape(leaf))

    pb = jax.tree_util.tree_map_with_path(leaf_value, p0)

    def loss(p, xi, wi):
        y, _ = model.apply({"params": p}, xi, N, mutable="intermediates")
        return jnp.sum(wi * y)

    f = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(0, 1) if x_grad else (0,))))

    def run():
        jax.block_until_ready(f(pb, x, w))

    t0 = time.perf_counter()
    run()
    t_compile = time.perf_counter() - t0
    t1 = time.perf_counter()
    run()
    ts = [time.perf_counter() - t1]
    r = reps if ts[0] < 2 else min(reps, 2)
    for _ in range(r - 1):
        t1 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t1)
    return statistics.median(ts), t_compile, len(ts)


def fmt(s):
    return f"{s * 1e3:,.1f} ms" if s < 10 else f"{s:,.1f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--jax-reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--skip-jax", action="store_true")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.only.split(",") if s.strip() in CASES]
    import torch

    print(f"machine: {machine()}; torch {torch.__version__}; load average {load():.2f}", flush=True)
    head = ["program", "P", "x grad", "layer's mode", "1 thread", "2 threads", "scaling 1->2", "fastest 1 / 2 threads",
            "compiled calls alone: 1 / 2 threads (scaling)", "load avg (1 min)",
            "DawDreamer JAX vmap(value_and_grad)", "speed-up (2 threads)"]
    rows, notes = [], []
    # diffaust's rows first, then DawDreamer's: the JAX runs (two cores for a minute) come after
    ours = {}
    for name in names:
        t, loads, mode, c = timed_row(name, args.reps)
        ours[name] = (t, loads, mode, c)
        (m1, _), (m2, _) = t[1], t[2]
        print(f"{name}: {fmt(m1)} / {fmt(m2)} ({m1 / m2:.2f}x)", flush=True)
    for name in names:
        (t, loads, mode, c) = ours[name]
        (m1, f1), (m2, f2) = t[1], t[2]
        P = len(CASES[name][3])
        ceiling = "n/a (not in lanes)" if c is None else f"{fmt(c[1])} / {fmt(c[2])} ({c[1] / c[2]:.2f}x)"
        jx, up = "n/a", "n/a"
        if not args.skip_jax:
            try:
                tj, tc, r = dawdreamer_times(name, args.jax_reps)
                jx = f"{fmt(tj)} (median of {r}; jit {tc:.1f} s)"
                up = f"{tj / m2:,.0f}x"
            except Unavailable as e:
                jx = f"n/a ({e})"
            except Exception as e:  # a benchmark: report, go on
                jx = f"n/a ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
        else:
            jx = "skipped (--skip-jax)"
        row = [name, str(P), "yes" if CASES[name][5] else "no", mode, fmt(m1), fmt(m2), f"{m1 / m2:.2f}x",
               f"{fmt(f1)} / {fmt(f2)} ({f1 / f2:.2f}x)", ceiling, f"{min(loads):.2f}-{max(loads):.2f}", jx, up]
        rows.append(row)
        print(" | ".join(row), flush=True)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print()
    print(f"batch {BATCH} x {N} samples at {SR} Hz, float32, forward + backward; median of {args.reps} reps or more (at least {MIN_SECONDS:g} s per thread count)")
    print(table)
    for n_ in notes:
        print("-", n_)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
