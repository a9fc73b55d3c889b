"""A Faust program as a JAX function with a custom VJP (``pip install "diffaust[jax]"``).

    from diffaust.jax import faust_function
    f = faust_function('import("stdfaust.lib"); process = fi.resonlp(fc, q, 1) with {...};')
    y = f(x, {"fc": 1000.0, "q": 2.0})                 # x: (inputs, samples) -> (outputs, samples)
    jax.grad(lambda p: jnp.sum(f(x, p) ** 2))({"fc": 1000.0, "q": 2.0})
    jax.vmap(f)(xs, {"fc": fcs, "q": qs})              # a batch: xs (batch, inputs, samples)

The forward pass is the compiled program, the backward pass its compiled reverse mode
(`Dsp.vjp`), both called through ``jax.pure_callback``: the function works under
``jax.jit``, ``jax.grad`` and ``jax.vmap`` (a batch runs its items in SIMD lanes, a group
of them per compiled call, when every parameter is a scalar per item, and the groups in
parallel threads: the compiled code releases the GIL; lane k's results are those of the
item alone, bit for bit).  Computation happens on the CPU; arrays on an
accelerator are copied to the host and back (one copy of each array each way per call).

Shapes: ``x`` (inputs, samples), or None for a program without inputs (then give
``n``); a parameter is a scalar (constant over the block) or an array (samples,) (per
sample).  Parameters not given take their sliders' defaults.  A constant value outside
its slider's range is clamped, with gradient 0 outside (as a slider's value would be);
per-sample values are clamped by the compiled program.  dtype: float32, or float64 with
``double=True`` (which needs ``jax.config.update("jax_enable_x64", True)``).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("diffaust.jax needs JAX: pip install 'diffaust[jax]' (or pip install jax)") from e

from .errors import UsageError


def faust_function(program, *, sample_rate: int = 48000, double: bool = False, threads: int | None = None,
                   n: int | None = None, lanes: int | None = None, **compile_options):
    """``f(x, params) -> y`` for the Faust program ``program`` (source text or a .dsp path).

    The keyword arguments are those of ``diffaust.compile`` (import_dirs, nondiff...), plus
    ``threads`` (groups of batch items run at once under ``vmap``; default: the CPU count),
    ``lanes`` (batch items per compiled call, in SIMD lanes, when every parameter is a
    scalar per item: `Dsp.lanes`' width by default, 1 = one item per call) and ``n``
    (samples, for a program without inputs).  ``f.dsp`` is the compiled ``Dsp``."""
    import threading

    import diffaust
    from .runtime.dsp import thread_instance
    from .runtime.lanes import lane_groups

    if double and not jax.config.read("jax_enable_x64"):
        raise UsageError("faust_function(double=True) computes in float64: enable it first with "
                         "jax.config.update('jax_enable_x64', True)")
    if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) or lanes < 1):
        raise UsageError(f"faust_function: lanes must be a whole number >= 1 (or None), got {lanes!r}")
    dsp = diffaust.compile(program, double=double, sample_rate=sample_rate, **compile_options)
    dtype = np.float64 if double else np.float32
    tls = threading.local()
    pool = ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1)
    labels = {p.label: p for p in dsp.params}
    diff_labels = {p.label for p in dsp.params if p.diff}  # [diff:1] widgets (the Dsp has no tangents)

    def resolve(params):
        out = {}
        for k, v in (params or {}).items():
            if k not in labels:
                known = ", ".join(sorted(labels)) or "none"
                raise UsageError(f"the program has no parameter '{k}' (parameters: {known})")
            out[k] = v
        return out

    def samples(x):
        if x is not None:
            return int(np.shape(x)[-1])
        if n is None:
            raise UsageError("a program without inputs needs n (samples): faust_function(..., n=N)")
        return int(n)

    def clamp(label, v):
        p = labels[label]
        lo, hi = sorted((p.min, p.max))
        return np.clip(v, lo, hi)

    def one(x_item, p_item, count):
        """Render one item: (outputs, count)."""
        values = {k: (float(clamp(k, v)) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64))
                  for k, v in p_item.items()}
        return np.asarray(dsp.render(x_item, count, params=values), dtype=dtype)

    def one_vjp(x_item, p_item, yb_item, count):
        values = {k: (float(clamp(k, v)) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64))
                  for k, v in p_item.items()}
        g = dsp.vjp(x_item, yb_item, params=values, n=count)
        grads = {}
        for k, v in p_item.items():
            if k not in diff_labels:
                grads[k] = np.zeros(np.shape(v), dtype=dtype)
                continue
            gk = np.asarray(g.params[k], dtype=dtype)
            if np.ndim(v) == 0:  # a constant clamped outside the range: gradient 0
                lo, hi = sorted((labels[k].min, labels[k].max))
                gk = gk if lo <= float(v) <= hi else np.zeros_like(gk)
            grads[k] = gk
        gx = np.asarray(g.input, dtype=dtype) if x_item is not None else None
        return gx, grads

    def lead_of(x, params, nd):
        """The batch axes vmap put in front (``vmap_method="broadcast_all"``: every argument
        has them): x's beyond (inputs, samples), or a parameter's beyond () or (samples,)."""
        if x is not None:
            return tuple(np.shape(x)[:-2])
        for k, v in params.items():
            return tuple(np.shape(v)[:np.ndim(v) - nd[k]])
        return ()

    def split(a, lead, tail_nd):
        a = np.asarray(a)
        return a.reshape((-1,) + a.shape[len(lead):]) if lead else a[None]

    def lane_programs(B, nd, make):
        """The lane programs (make(width)) for a batch of B items, or None: lanes off, a batch
        of one, a parameter given per sample, a program that cannot run in lanes."""
        if lanes == 1 or B < 2 or any(nd.values()):
            return None
        from .codegen.lanes import LanesUnsupported

        try:
            return make(lanes)
        except LanesUnsupported:
            return None

    def lane_values(ps, items):  # {label: clamped values over the items}
        return {k: clamp(k, np.asarray(v[items.start:items.stop], dtype=np.float64)) for k, v in ps.items()}

    def render_cb(x, params, nd=None, count=None):
        lead = lead_of(x, params, nd)
        B = int(np.prod(lead)) if lead else 1
        xs = split(x, lead, 2) if x is not None else [None] * B
        ps = {k: split(v, lead, nd[k]) for k, v in params.items()}
        lp = lane_programs(B, nd, dsp.lanes)
        if lp is not None:  # the items in SIMD lanes, the groups on the pool
            X = np.ascontiguousarray(xs, dtype=dtype) if x is not None else np.zeros((B, 0, count), dtype=dtype)
            out = np.empty((B, dsp.outputs, count), dtype=dtype)

            def run(items):
                inst = thread_instance(tls, "lanes", lp)
                for k, v in lane_values(ps, items).items():
                    inst.set_param(k, v)
                inst.compute_items([(X, 0)], [(out, 0)], items, count)

            list(pool.map(run, lane_groups(B, lp.lanes)))
            return out.reshape(lead + (dsp.outputs, count))
        outs = list(pool.map(lambda b: one(xs[b], {k: ps[k][b] for k in ps}, count), range(B)))
        return np.stack(outs).reshape(lead + (dsp.outputs, count)).astype(dtype)

    def vjp_lanes(rev, rl, xs, ps, ybs, B, count):
        """(gx, {label: (B,)}) of a batch in lanes (reverse mode's tape and adjoint programs,
        a group at a time), or None when a group's tape would exceed the memory budget."""
        X = np.ascontiguousarray(xs, dtype=dtype) if xs[0] is not None else np.zeros((B, 0, count), dtype=dtype)
        Yb = np.ascontiguousarray(ybs, dtype=dtype)
        y = np.empty((B, dsp.outputs, count), dtype=dtype)
        gx = np.empty((B, dsp.inputs, count), dtype=dtype)
        acc = np.zeros((len(rev.paths), B))

        def run(items):
            vals = lane_values(ps, items)
            tape = np.empty(rev.tape_shape(rl, count), dtype=dtype)
            if not rev.forward_items(rl, X, items, count, vals, y, tape):
                return False
            acc[:, items.start:items.stop] = rev.backward_items(rl, tape, Yb, items, count, vals, gx)
            return True

        if not all(pool.map(run, lane_groups(B, rl[0].lanes))):
            return None
        return gx, {path: acc[j] for j, path in enumerate(rev.paths)}

    def vjp_cb(x, params, y_bar, nd=None, count=None):
        lead = lead_of(x, params, nd)
        B = int(np.prod(lead)) if lead else 1
        xs = split(x, lead, 2) if x is not None else [None] * B
        ps = {k: split(v, lead, nd[k]) for k, v in params.items()}
        ybs = split(y_bar, lead, 2)
        rev = dsp.reverse() if B >= 2 else None
        rl = lane_programs(B, nd, rev.lanes) if rev is not None else None
        got = vjp_lanes(rev, rl, xs, ps, ybs, B, count) if rl is not None else None
        if got is not None:
            gxl, by_path = got
            gp = {}
            for k, v in ps.items():
                if k not in diff_labels:
                    gp[k] = np.zeros(np.shape(params[k]), dtype=dtype)
                    continue
                lo, hi = sorted((labels[k].min, labels[k].max))
                vals = np.asarray(v, dtype=np.float64).reshape(B)
                gk = np.where((vals >= lo) & (vals <= hi), by_path[labels[k].path], 0.0)  # clamped: 0
                gp[k] = gk.reshape(np.shape(params[k])).astype(dtype)
            return (gxl.reshape(np.shape(x)).astype(dtype) if x is not None else None), gp
        res = list(pool.map(lambda b: one_vjp(xs[b], {k: ps[k][b] for k in ps}, ybs[b], count), range(B)))
        gx = np.stack([r[0] for r in res]).reshape(np.shape(x)).astype(dtype) if x is not None else None
        gp = {k: np.stack([r[1][k] for r in res]).reshape(np.shape(params[k])).astype(dtype) for k in params}
        return gx, gp

    def check(x, params):
        if dsp.inputs:
            if x is None:
                raise UsageError(f"the program has {dsp.inputs} input(s): give x of shape (inputs, samples)")
            if np.ndim(x) != 2 or np.shape(x)[0] != dsp.inputs:
                raise UsageError(f"x must have shape (inputs, samples) = ({dsp.inputs}, samples), "
                                 f"got {tuple(np.shape(x))}")
        elif x is not None:
            raise UsageError("the program has no input: pass x=None (and n= to faust_function)")
        count = samples(x)
        for k, v in params.items():
            nd = np.ndim(v)
            if nd not in (0, 1) or (nd == 1 and np.shape(v)[0] != count):
                raise UsageError(f"parameter '{k}' must be a scalar or an array of shape ({count},), "
                                 f"got {tuple(np.shape(v))}")

    def nds(params):
        return {k: np.ndim(v) for k, v in params.items()}

    def forward(x, params):
        count = samples(x)
        out = jax.ShapeDtypeStruct((dsp.outputs, count), dtype)
        cb = functools.partial(render_cb, nd=nds(params), count=count)
        return jax.pure_callback(cb, out, x, params, vmap_method="broadcast_all")

    @jax.custom_vjp
    def core(x, params):
        return forward(x, params)

    def core_fwd(x, params):
        return forward(x, params), (x, params)

    def core_bwd(res, y_bar):
        x, params = res
        shapes = (None if x is None else jax.ShapeDtypeStruct(jnp.shape(x), dtype),
                  {k: jax.ShapeDtypeStruct(jnp.shape(v), dtype) for k, v in params.items()})
        cb = functools.partial(vjp_cb, nd=nds(params), count=samples(x) if x is not None else n)
        gx, gp = jax.pure_callback(cb, shapes, x, params, y_bar, vmap_method="broadcast_all")
        return gx, gp

    core.defvjp(core_fwd, core_bwd)

    def f(x, params=None):
        """y (outputs, samples) of the program for x (inputs, samples) and params
        {label: scalar or (samples,)}; differentiable w.r.t. x and every parameter."""
        params = resolve(params)
        params = {k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}
        if x is not None:
            x = jnp.asarray(x, dtype=dtype)
        check(x, params)
        return core(x, params)

    f.dsp = dsp
    return f
