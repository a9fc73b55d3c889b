"""A Faust program as a differentiable PyTorch layer.

    import torch
    from diffaust.torch import FaustModule

    layer = FaustModule('import("stdfaust.lib"); process = fi.resonlp(fc, q, 1) with {'
                        'fc = hslider("fc [diff:1]", 1000, 50, 10000, 1);'
                        'q = hslider("q [diff:1]", 1, 0.5, 10, .01); };')
    x = torch.randn(16, 1, 48000)                      # (batch, inputs, samples)
    fc = net(features)                                 # (batch,): constant over the block
    y = layer(x, {"fc": fc, "q": torch.full((16,), 2.0)})   # (batch, outputs, samples)
    loss(y, target).backward()                         # gradients w.r.t. fc (and x, q ...)

The forward pass runs the compiled program, the backward pass its compiled reverse mode
(`Dsp.vjp`): one call per batch item gives the gradients w.r.t. the input samples and every
parameter at once.  Batch items run in SIMD lanes (``lanes``: 8 items per instance in
float, 4 in double, `Dsp.lanes`: one compute() call runs a group; lane k's results are
those of an instance of its own, bit for bit) and the groups in parallel on a thread pool
(the compiled code runs with the GIL released): no Python runs per sample.

``ad`` ("auto", "forward" or "reverse") picks how the gradients are computed.  Reverse mode
(the tape program forward, the adjoint program backward) gives them all.  Forward mode
renders the outputs alone in the forward pass; the backward pass runs one program that
computes the derivatives w.r.t. each ``[diff:1]`` parameter and sums ȳ·∂y/∂p as it goes
(`Dsp.jvp_gradient`: no tape, no buffer of derivatives): cheaper for a few parameters, but
it gives gradients w.r.t. parameters that are constant over the block only — not w.r.t.
``x`` or a per-sample parameter.
"auto" (the default) uses forward mode when nothing else asks for a gradient and the
program has at most 2 ``[diff:1]`` parameters, or when, timed once on the module's first
such batch (one item, each mode twice), it is the faster; else reverse mode.

Parameters (`params`, a dict label -> tensor; a label, a path or a path suffix names a widget):

* shape ``(batch,)`` (or a number / 0-d tensor, the same for every item): constant over the
  block.  Clamped to the slider's ``[min, max]`` here (as ``torch.clamp`` would: the
  gradient is 0 for a value outside the range, passed at the bounds themselves).
* shape ``(batch, samples)``: given per sample (automation, a network's output per frame
  upsampled); the compiled program clamps each sample to the slider's range, and the
  gradient of a clamped sample is 0.  The first call with a new set of per-sample
  parameters compiles a variant of the program (kept on disk by the compile cache).
* not given: the widget's init value.

Gradients flow to ``x`` and to the tensors of ``[diff:1]`` parameters; a tensor that
requires grad for a parameter without ``[diff:1]`` is an error (mark it ``[diff:1]`` or
``.detach()`` it).

dtype: the program runs in float32 (``double=False``, Faust's default) or float64
(``double=True``); tensors of other dtypes are converted, and the output has the program's
dtype (gradients come back in each input's dtype).  Use ``double=True`` for
``torch.autograd.gradcheck``.

Devices: the compiled program runs on the CPU.  Tensors on another device (a GPU) are
copied to the CPU for the forward pass and the output copied back to the device of ``x``
(or of the first parameter tensor); the backward pass copies the output gradient down and
the input gradients up again.  The cost is one device-host copy of each tensor each way
(for a batch of 16 one-second stereo float32 signals, 6 MiB: well under a millisecond on
PCIe 4, small next to the render), plus a synchronisation of the device stream.

Errors (bad shapes, an unknown parameter, gradients asked of a program that has no
``[diff:1]`` parameter and no input) are `diffaust.errors.UsageError` naming the problem.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

try:
    import torch
    from torch import nn
except ImportError as _e:  # pragma: no cover - exercised by a subprocess test
    raise ImportError("diffaust.torch needs PyTorch, which is not installed: "
                      "pip install 'diffaust[torch]' (or any torch>=2.1)") from _e

import numpy as np

from .errors import UsageError
from .runtime.dsp import compile as _compile
from .runtime.dsp import compile_source as _compile_source
from .runtime.dsp import read_views, set_read_params, thread_instance
from .runtime.kernels import all_finite
from .runtime.lanes import CallPlan, geometry, lane_groups

__all__ = ["FaustModule"]

_COMPILE_OPTIONS = ("use_cache", "bundled_only", "nondiff", "allow_native")


class FaustModule(nn.Module):
    """A Faust program as an ``nn.Module``: ``forward(x, params) -> y``.

    FaustModule(program, *, sample_rate=48000, double=False, import_dirs=(), threads=None,
                ad="auto", lanes=None, use_cache=True, bundled_only=False, nondiff=(),
                allow_native=False)

    program: Faust source text or a path to a .dsp file.
    double: run in float64 (tensors are converted; the output is float64) instead of float32.
    threads: batch items rendered at once (default ``os.cpu_count()``); ``module.threads``
        may be changed later.  With 2 or more, a pass's lane groups run on a native pool
        (runtime/pool.py: no GIL, no OS wake-up within a pass): its workers poll for about a
        millisecond after each pass (a step's next pass comes sooner), then sleep until the
        next call wakes them.  ``module.native_pool = False``: a Python thread pool instead.
    ad: "auto", "forward" or "reverse": how gradients are computed (see the module's
        docstring); ``module.ad`` may be changed later.
    lanes: batch items computed at once in the SIMD lanes of one instance (`Dsp.lanes`):
        None = 8 in float, 4 in double, half that for a program with a large state
        (`runtime.lanes.lane_width`); 1 = one item per instance.  Used by the render, forward
        and reverse mode; a program with control/enable runs one item per instance.
        ``module.lanes`` may be changed later.
    The other options are those of `diffaust.compile`.

    Attributes: ``dsp`` (the compiled `Dsp`), ``inputs``, ``outputs``, ``params`` (every
    widget), ``diff_params`` (the ``[diff:1]`` ones), ``dtype`` (torch.float32 or float64).
    The module has no learnable tensors of its own: its parameters come in ``params``.
    """

    def __init__(self, program, *, sample_rate: int = 48000, double: bool = False, import_dirs=(),
                 threads: Optional[int] = None, ad: str = "auto", lanes: Optional[int] = None, **options):
        super().__init__()
        bad = sorted(set(options) - set(_COMPILE_OPTIONS))
        if bad:
            raise UsageError(f"FaustModule: unknown option(s) {', '.join(bad)} "
                             f"(compile options: {', '.join(_COMPILE_OPTIONS)})")
        self._args = dict(program=program, sample_rate=sample_rate, double=bool(double),
                          import_dirs=tuple(os.fspath(d) for d in import_dirs), options=dict(options))
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                    or threads < 1):
            raise UsageError(f"FaustModule: threads must be a whole number >= 1 (or None), got {threads!r}")
        self.threads = threads
        self.native_pool = True
        self.ad = _check_ad(ad)
        self.lanes = _check_lanes(lanes)
        self._setup()

    # ------------------------------------------------------------ state
    def _setup(self):
        a = self._args
        self.dsp = _compile(a["program"], diff=False, double=a["double"], sample_rate=a["sample_rate"],
                            import_dirs=a["import_dirs"], **a["options"])
        self.dtype = torch.float64 if a["double"] else torch.float32
        self._np_dtype = np.float64 if a["double"] else np.float32
        self._diff_params = [p for p in self.dsp.params if p.diff]  # compiled without forward mode
        self._variants = {(): self.dsp}  # per-sample paths -> compiled program
        self._ad_timed = None  # "forward" or "reverse": auto's choice, timed once
        self._free: list = []  # spare buffers (tapes, per-sample inputs), newest last
        self._returned = queue.SimpleQueue()  # buffers given back (from __del__ too: no lock there)
        self._lock = threading.Lock()
        self._tls = threading.local()
        self._pool = None
        self._pool_size = 0
        self._lp_cache: dict = {}  # (program, pass, lane width) -> lane programs or None
        self._npool = None  # the native pool of the groups' compiled calls (runtime/pool.py)
        self._inst_free: dict = {}  # (lane programs, groups) -> [a call's instances, free]
        self._plans: dict = {}  # (pass, geometry) -> [free runtime.lanes.CallPlan], the newest kept
        self._specs: dict = {}  # what a call renders (_Spec), by variant, samples, batch, device, parameters

    def __getstate__(self):  # pickling / deepcopy: the compiled code is rebuilt (from the cache)
        state = self.__dict__.copy()
        for k in ("dsp", "_diff_params", "_variants", "_lock", "_tls", "_pool", "_pool_size", "_np_dtype", "dtype",
                  "_ad_timed", "_free", "_returned", "_lp_cache", "_inst_free", "_npool", "_plans", "_specs"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._setup()

    @property
    def inputs(self) -> int:
        return self.dsp.inputs

    @property
    def outputs(self) -> int:
        return self.dsp.primal_outputs

    @property
    def params(self):
        return self.dsp.params

    @property
    def diff_params(self):
        return list(self._diff_params)

    @property
    def sample_rate(self) -> int:
        return self.dsp.sample_rate

    def extra_repr(self) -> str:
        labels = ", ".join(p.label for p in self._diff_params) or "none"
        return (f"inputs={self.inputs}, outputs={self.outputs}, diff params: {labels}, "
                f"sample_rate={self.sample_rate}, dtype={str(self.dtype).replace('torch.', '')}")

    def _variant(self, paths: tuple):
        """The program with the widgets `paths` read from extra inputs after its own.
        Compiled when first asked, run in the module's blocks."""
        v = self._variants.get(paths)
        if v is None:
            with self._lock:
                v = self._variants.get(paths)
                if v is None:
                    d, a = self.dsp, self._args
                    v = _compile_source(d.source, d.filename, double=a["double"], diff=False,
                                        sample_rate=a["sample_rate"], import_dirs=a["import_dirs"],
                                        varying=paths, **a["options"])
                    self._variants[paths] = v
        v.block_size = self.dsp.block_size  # the module's blocks (Faust's `count`)
        return v

    def _jvp(self):
        """Forward mode's gradient program (`Dsp.jvp_gradient`), compiled when first asked."""
        return self.dsp.jvp_gradient()

    @property
    def _jvp_dsp(self):
        """Forward mode's gradient program if forward mode has compiled it, else None."""
        jg = self.dsp.__dict__.get("_jvp_gradient")
        return jg.dsp if jg is not None else None

    def _choose_ad(self, eligible: bool, why: str, trial) -> str:
        """forward or reverse for one batch (see the module's docstring); `why`: what rules
        forward mode out when not `eligible`; trial(mode): one item's forward and backward."""
        ad = _check_ad(self.ad)
        if ad == "reverse":
            return "reverse"
        if not eligible:
            if ad == "forward":
                raise UsageError(f"ad='forward' gives gradients w.r.t. parameters constant over the block only, "
                                 f"but {why}: use ad='reverse' (or 'auto')")
            return "reverse"
        if ad == "forward" or len(self._diff_params) <= 2:
            return "forward"
        if self._ad_timed is None:
            from .train.block import faster_mode

            self._ad_timed = faster_mode(trial)
        return self._ad_timed

    def _take(self, shape: tuple, dtype) -> np.ndarray:
        """An uninitialized array, one given back by `_give` when one of that shape is free
        (a fresh array of a batch's tapes costs its page faults on every step, as much as
        the renders of a small program)."""
        with self._lock:
            while not self._returned.empty():  # the buffers given back since, the newest kept
                self._free.append(self._returned.get_nowait())  # (only taken here, under the lock)
            del self._free[:-FREE_BUFFERS]
            for k, a in enumerate(self._free):
                if a.shape == shape and a.dtype == dtype:
                    return self._free.pop(k)
        return np.empty(shape, dtype=dtype)

    def _give(self, a: np.ndarray) -> None:
        """Give a buffer back for `_take` (safe from __del__ and the garbage collector: a
        queue, no lock)."""
        self._returned.put(a)

    def _executor(self, jobs: int):
        """(pool or None, workers to use) for `jobs` batch items."""
        t = self.threads
        if t is None:
            t = os.cpu_count() or 1
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise UsageError(f"FaustModule.threads must be a whole number >= 1 (or None), got {t!r}")
        workers = min(int(t), jobs)
        if workers <= 1:
            return None, 1
        with self._lock:
            if self._pool is None or self._pool_size < workers:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(max_workers=int(t), thread_name_prefix="diffaust-torch")
                self._pool_size = int(t)
            return self._pool, workers

    def _map(self, fn, jobs: int):
        """fn(b) for b in range(jobs), on the pool: one task per worker, each taking the next
        item until none is left (few Python steps per item, the load balanced)."""
        pool, workers = self._executor(jobs)
        if pool is None:
            for b in range(jobs):
                fn(b)
            return
        items = iter(range(jobs))
        lock = threading.Lock()
        failed = []

        def worker():
            while not failed:
                with lock:
                    b = next(items, None)
                if b is None:
                    return
                try:
                    fn(b)
                except BaseException as e:
                    failed.append(e)
                    return

        futures = [pool.submit(worker) for _ in range(workers - 1)]
        worker()  # this thread takes its share too (one thread fewer to wake)
        for f in futures:
            f.result()
        if failed:
            raise failed[0]

    def _lane_programs(self, batch: int, make):
        """The lane programs for one kind of pass (runtime/lanes.py), or None: lanes off
        (``lanes=1``), a batch of one, or a program that cannot run in lanes.  make(width)
        builds them (width None: `runtime.lanes.lane_width`'s; LanesUnsupported or None: None);
        a bound method, whose answer is kept (asked on every call)."""
        width = _check_lanes(self.lanes)
        if width == 1 or batch < 2:
            return None
        owner = make.__self__
        key = (id(owner), make.__name__, width)
        hit = self._lp_cache.get(key)
        if hit is not None and hit[0] is owner:
            return hit[1]
        from .codegen.lanes import LanesUnsupported

        try:
            r = make(width)
        except LanesUnsupported:
            r = None
        self._lp_cache[key] = (owner, r)
        return r

    def _group_instances(self, lp, count: int) -> list:
        """`count` reset instances of the lane programs lp: one per group of a call (the
        groups' compiled calls run on any thread of the pool); `_give_instances` returns them."""
        with self._lock:
            free = self._inst_free.get((lp, count))
            insts = free.pop() if free else None
        if insts is None:
            return [lp.instance() for _ in range(count)]
        for inst in insts:
            inst.reset()
        return insts

    def _give_instances(self, lp, insts: list) -> None:
        with self._lock:
            free = self._inst_free.setdefault((lp, len(insts)), [])
            if len(free) < 2:
                free.append(insts)

    def _native_pool(self, jobs: int):
        """The module's native pool for a pass of `jobs` groups (runtime/pool.py: threads - 1
        workers), or None: one thread, one group, or ``native_pool`` off."""
        if not self.native_pool:
            return None
        t = self.threads
        if t is None:
            t = os.cpu_count() or 1
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise UsageError(f"FaustModule.threads must be a whole number >= 1 (or None), got {t!r}")
        if min(int(t), jobs) < 2:
            return None
        p = self._npool
        if p is not None and p.workers == t - 1:  # (the usual case: no lock)
            return p
        with self._lock:
            p = self._npool
            if p is None or p.workers != int(t) - 1:
                from .runtime.pool import NativePool

                if p is not None:
                    p.close()
                p = self._npool = NativePool(int(t) - 1)
        return p

    def _run_prepared(self, calls: list, pool=False) -> None:
        """Run prepared calls (`runtime.lanes.PreparedCall`): on the native pool (`pool`, or
        the module's when not given), or on the thread pool where there is none or another
        call of this module holds it."""
        if pool is False:
            pool = self._native_pool(len(calls))
        if pool is not None and all(hasattr(c, "job") for c in calls) and pool.lock.acquire(blocking=False):
            try:
                pool.wake()
                pool.run_calls(calls)
                return
            finally:
                pool.lock.release()
        self._map(lambda k: calls[k](), len(calls))

    def _wake(self) -> None:
        """Wake the native pool's workers (a pass is being prepared: their wake-up overlaps it)."""
        p = self._npool
        if p is not None:
            p.wake()

    def _run_pass(self, key: tuple, lp, count: int, slots: tuple, prepare, ready, params: tuple, zero=None):
        """Run one pass of a call's lane groups (`count` of them, on instances of the lane
        programs lp); returns what ran (its ``.insts``: the groups' instances, whose sums the
        caller reads before `_pass_done`), or None where prepare gave a false value (nothing
        run).

        prepare(insts): the groups' prepared calls (`runtime.lanes.PreparedCall`) on reset
        instances, their parameters set from params = (primal, cpaths, vpaths, groups,
        cvals) as `_lane_values` gives them to `set_read_params`, and the zero(insts)[g]
        arrays zeroed (a tape's history); ready(insts): the same settings on reset instances
        (used where a parameter is shared by every lane); slots: the arrays the calls point into; key:
        what else the calls depend on (the pass, lp, batch, samples, block size).

        The first such pass (key, the parameters' names and the slots' and values' shapes,
        strides and dtypes) prepares its calls and keeps them as a `runtime.lanes.CallPlan`
        with its instances; the next ones lay the same calls out on their own arrays
        (`CallPlan.bind`), each job resetting its instance and writing its parameters
        natively before its call (`ready` where a parameter is shared by every lane): no
        call prepared again (a pass of a small program costs more in preparing its calls,
        ~40 µs a group, than in running them on a second core)."""
        primal, cpaths, vpaths, groups, cvals = params
        geom = geometry(slots)
        k = (key, cpaths, vpaths, geom, geometry((cvals,)))
        plan = None
        if self.native_pool:  # (off: every pass prepared and run on the Python thread pool)
            with self._lock:
                free = self._plans.get(k)
                plan = free.pop() if free else None
        if plan is not None:
            if not plan.native_ready:
                for inst in plan.insts:
                    inst.reset()
                ready(plan.insts)
            plan.bind(slots, geom, cvals if plan.native_ready else None)
            self._run_plan(plan)
            return plan
        insts = self._group_instances(lp, count)
        calls = prepare(insts)
        if not all(calls):
            self._give_instances(lp, insts)
            return None
        plan = None
        if self.native_pool:
            writes = _param_writes(insts, primal, cpaths, vpaths, groups, cvals.shape[1])
            plan = CallPlan.build(calls, slots, cvals if writes else None, writes,
                                  zero(insts) if (writes and zero) else None)
        if plan is not None:
            plan.key = k  # (kept under it by `_pass_done`)
            self._run_plan(plan)
            return plan
        self._run_prepared(calls)
        return _Unplanned(lp, insts)

    def _run_plan(self, plan) -> None:
        """Run a bound plan on the native pool, or on this thread alone (natively) where the
        module runs one thread or another call holds the pool."""
        pool = self._native_pool(len(plan.insts))
        if pool is not None and pool.lock.acquire(blocking=False):
            try:  # (the workers woken when the pass began: `_wake`)
                plan.run(pool)
                return
            finally:
                pool.lock.release()
        plan.run()

    def _pass_done(self, run) -> None:
        """Give back what `_run_pass` ran on (its plan kept for the next pass like it: at most
        MAX_PLANS kinds of pass, 2 plans of each, the newest kept)."""
        if isinstance(run, _Unplanned):
            self._give_instances(run.lp, run.insts)
            return
        with self._lock:
            free = self._plans.pop(run.key, [])  # (re-inserted: the dict's order is the use order)
            if len(free) < 2:
                free.append(run)
            self._plans[run.key] = free
            while len(self._plans) > MAX_PLANS:
                del self._plans[next(iter(self._plans))]

    def _instance(self, v):
        """This thread's instance of variant v, reset."""
        return thread_instance(self._tls, "instances", v)

    # ------------------------------------------------------------ forward
    def forward(self, x: Optional[torch.Tensor] = None, params: Optional[dict] = None, *,
                n: Optional[int] = None, batch: Optional[int] = None) -> torch.Tensor:
        """Render a batch: x (batch, inputs, samples) or None (a program without inputs: give
        `n`, and `batch` when no parameter tensor tells it); params {label: tensor (batch,) or
        (batch, samples)}.  Returns (batch, outputs, samples) in the module's dtype, on the
        device of x (or of the first parameter tensor)."""
        d = self.dsp
        if params is None:
            params = {}
        if not hasattr(params, "items"):
            raise UsageError(f"params must be a dict {{label: tensor}}, got {type(params).__name__}")
        # ---- x, samples, batch, device
        device = None
        if x is not None:
            if not isinstance(x, torch.Tensor):
                raise UsageError(f"x must be a torch.Tensor of shape (batch, inputs, samples), "
                                 f"got {type(x).__name__}")
            if x.dim() != 3 or x.shape[1] != d.inputs:
                raise UsageError(f"x must have shape (batch, inputs, samples) = (batch, {d.inputs}, samples), "
                                 f"got {tuple(x.shape)}")
            if not (x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                         torch.uint8, torch.bool)):
                raise UsageError(f"x must hold real numbers, got dtype {x.dtype}")
            if n is not None and n != x.shape[2]:
                raise UsageError(f"n={n} but x has {x.shape[2]} samples")
            n = int(x.shape[2])
            if batch is not None and batch != x.shape[0]:
                raise UsageError(f"batch={batch} but x has {x.shape[0]} items")
            batch = int(x.shape[0])
            device = x.device
        elif d.inputs:
            raise UsageError(f"the program has {d.inputs} input(s): give x of shape "
                             f"(batch, {d.inputs}, samples)")
        # ---- parameters: resolve names, check shapes
        given = []  # (Param, tensor)
        seen = {}
        for name, value in params.items():
            try:
                i = d.param_index(name)
            except UsageError:
                known = ", ".join(p.label for p in d.params) or "none"
                raise UsageError(f"the program has no parameter '{name}' (parameters: {known})") from None
            p = d.params[i]
            if p.path in seen:
                raise UsageError(f"parameter '{p.label}' given twice (as '{seen[p.path]}' and '{name}')")
            seen[p.path] = name
            t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
            if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                         torch.uint8, torch.bool)):
                raise UsageError(f"parameter '{p.label}' must hold real numbers, got dtype {t.dtype}")
            if t.dim() > 2:
                raise UsageError(f"parameter '{p.label}' must have shape (batch,) (constant) or "
                                 f"(batch, samples) (per sample), got {tuple(t.shape)}")
            if device is None and t.dim() > 0:
                device = t.device
            given.append((p, t))
        for p, t in given:
            if t.dim() >= 1:
                if batch is None:
                    batch = int(t.shape[0])
                elif t.shape[0] != batch:
                    raise UsageError(f"parameter '{p.label}' has shape {tuple(t.shape)}: its first dimension "
                                     f"must be the batch size {batch}")
            if t.dim() == 2:
                if n is None:
                    n = int(t.shape[1])
                elif t.shape[1] != n:
                    raise UsageError(f"parameter '{p.label}' given per sample has shape {tuple(t.shape)}: "
                                     f"(batch, samples) = ({batch}, {n}) expected")
        if n is None:
            raise UsageError("give x (batch, inputs, samples), or n= (the number of samples) for a "
                             "program without inputs")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise UsageError(f"n must be a whole number of samples, got {n!r}")
        if batch is None:
            batch = 1
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise UsageError(f"batch must be a whole number >= 1, got {batch!r}")
        if device is None:
            device = torch.device("cpu")
        # ---- gradients asked of what cannot have one
        grad_on = torch.is_grad_enabled()
        if grad_on:
            for p, t in given:
                if t.requires_grad and not p.diff:
                    if not self._diff_params and not d.inputs:
                        raise UsageError(f"gradient asked for parameter '{p.label}', but the program has no "
                                         "[diff:1] parameter and no input: nothing to differentiate (mark "
                                         "the sliders to learn with [diff:1] in their labels)")
                    raise UsageError(f"parameter '{p.label}' is not marked [diff:1]: it has no gradient "
                                     f"(add [diff:1] to its label, or pass a tensor that does not require "
                                     f"grad: .detach())")
        # ---- constant: clamped to the slider's range by the layer's function (zero gradient
        # outside, as torch.clamp); per sample: clamped by the program.  NaN / Inf: an error there.
        const, vary = [], []
        for p, t in given:
            if t.dtype is not self.dtype:
                t = t.to(dtype=self.dtype)
            (vary if t.dim() == 2 else const).append((p, t))
        vary.sort(key=lambda pt: pt[0].path)
        paths = tuple(p.path for p, _ in vary)
        v = self._variant(paths)
        key = (v, n, batch, device, tuple(p.path for p, _ in const), paths)
        spec = self._specs.get(key)  # (a training loop asks the same every step)
        if spec is None:
            spec = _Spec(self, v, n, batch, device, [p for p, _ in const], [p for p, _ in vary])
            if len(self._specs) >= 16:
                self._specs.clear()
            self._specs[key] = spec
        if x is None:
            x = torch.zeros((batch, 0, n), dtype=self.dtype, device=device)
        return _FaustFunction.apply(spec, x, *[t for _, t in const], *[t for _, t in vary])


class _Spec:
    """What a forward call renders (passed through autograd to the backward pass; kept by the
    module for the calls like it: not changed once made)."""

    def __init__(self, module, variant, n, batch, device, const, vary):
        self.module, self.variant, self.n, self.batch, self.device = module, variant, n, batch, device
        self.const, self.vary = tuple(const), tuple(vary)
        self.cpaths, self.vpaths = tuple(p.path for p in const), tuple(p.path for p in vary)
        # the constant parameters' ranges (a slider's min may exceed its max)
        self.lo = np.array([min(p.min, p.max) for p in const], dtype=np.float64)
        self.hi = np.array([max(p.min, p.max) for p in const], dtype=np.float64)


class _Unplanned:
    """A pass run without a plan (`FaustModule._run_pass`): its instances, given back."""

    __slots__ = ("lp", "insts")

    def __init__(self, lp, insts):
        self.lp, self.insts = lp, insts


class _Lease:
    """A buffer of the module's, given back (`FaustModule._give`) when the autograd graph that
    holds it is freed: a second backward pass of a retained graph still reads it."""

    __slots__ = ("module", "buf")

    def __init__(self, module, buf):
        self.module, self.buf = module, buf

    def __del__(self):
        self.module._give(self.buf)


AD_MODES = ("auto", "forward", "reverse")
MAX_PLANS = 8  # kinds of pass (pass, batch, samples, layout) whose prepared calls a module keeps
FREE_BUFFERS = 4  # the module's spare buffers kept for the next steps (tapes, per-sample inputs)


def _lane_values(cvals, cpaths, vpaths, items) -> dict:
    """{path: values over the items (a range)}: the constant parameters' and, at 0, the
    widgets a variant reads with their per-sample input (widget + input)."""
    vals = {path: cvals[items.start:items.stop, k] for k, path in enumerate(cpaths)}
    vals.update({path: np.zeros(len(items)) for path in vpaths})
    return vals


def _param_writes(insts, primal, cpaths: tuple, vpaths: tuple, groups, nc: int) -> Optional[list]:
    """For a `runtime.lanes.CallPlan`: each group's parameter writes, [(byte offset in its
    instance's state, index into cvals.ravel() or -1 for 0)], what `set_read_params` does
    with `_lane_values(cvals, cpaths, vpaths, items)` (cvals (batch, nc)); None where one
    is shared by every lane."""
    writes = []
    for inst, items in zip(insts, groups):
        cv, vv = read_views(inst, primal, cpaths), read_views(inst, primal, vpaths)
        if cv is None or vv is None:
            return None
        base = inst._state.__array_interface__["data"][0]
        w = []
        for views, src in ((cv, lambda k, i: i * nc + k), (vv, lambda k, i: -1)):
            for k, view in views:
                at = view.__array_interface__["data"][0] - base
                w += [(at + lane * view.itemsize, src(k, i)) for lane, i in enumerate(items)]
        writes.append(w)
    return writes


def _check_lanes(lanes) -> Optional[int]:
    """The lane width asked for: None = the default (runtime.lanes.lane_width)."""
    if lanes is None:
        return None
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) or lanes < 1:
        raise UsageError(f"FaustModule: lanes must be a whole number >= 1 (or None), got {lanes!r}")
    return int(lanes)


def _check_ad(ad) -> str:
    if ad not in AD_MODES:
        raise UsageError(f"FaustModule: ad must be one of {', '.join(AD_MODES)}, got {ad!r}")
    return ad


def _to_numpy(t: torch.Tensor, dtype) -> np.ndarray:
    if t.dtype is dtype and t.device.type == "cpu" and t.is_contiguous():
        return t.detach().numpy()  # (its own memory, no tensor made)
    return t.detach().to(device="cpu", dtype=dtype).contiguous().numpy()


_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def _to_tensor(a: np.ndarray, dtype, device, copy: bool = False) -> torch.Tensor:
    """a as a tensor of dtype on device (cast by NumPy where it can: no intermediate tensor);
    copy: never a view of a."""
    npdt = _NP_DTYPES.get(dtype)
    if npdt is not None and device.type == "cpu":
        return torch.from_numpy(np.array(a, dtype=npdt) if copy else np.asarray(a, dtype=npdt))
    return torch.from_numpy(np.array(a) if copy else a).to(device=device, dtype=dtype)


class _FaustFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: _Spec, x: torch.Tensor, *ptensors):
        m = spec.module
        m._wake()
        dt, npdt = m.dtype, m._np_dtype
        n, B, I = spec.n, spec.batch, m.dsp.inputs
        nc = len(spec.const)
        xnp = _to_numpy(x, dt)
        craw = np.empty((B, nc))  # (batch, constant parameters): a 0-d tensor's value in every row
        for k, t in enumerate(ptensors[:nc]):
            # (a CPU tensor's own array, cast by the assignment: no tensor made for it)
            craw[:, k] = t.detach().numpy() if t.device.type == "cpu" else _to_numpy(t, torch.float64)
        # clamped to the sliders' ranges; the gradient is 0 outside (inclusive bounds, as torch.clamp)
        inside = (craw >= spec.lo) & (craw <= spec.hi)  # (False for NaN)
        if inside.all():  # (the usual case: nothing to clamp, nothing non-finite)
            cvals, ctx.inside = craw, None
        else:
            if not np.isfinite(craw).all():
                k = int(np.flatnonzero(~np.isfinite(craw).all(axis=0))[0])
                raise UsageError(f"parameter '{spec.const[k].label}' holds NaN or Inf")
            cvals, ctx.inside = np.minimum(np.maximum(craw, spec.lo), spec.hi), inside
        ctx.const_dims = [t.dim() for t in ptensors[:nc]]
        if spec.vary:  # the per-sample values become inputs after the program's own
            # (a buffer of the module's, given back with the graph: a fresh one page-faulted
            # 6 MB a step here for a batch of 16 one-second signals, a third of the step)
            x2 = m._take((B, I + len(spec.vary), n), npdt)
            ctx.x2_lease = _Lease(m, x2)
            x2[:, :I] = xnp
            for k, t in enumerate(ptensors[nc:]):
                a = _to_numpy(t, dt)
                if not all_finite(a):
                    raise UsageError(f"parameter '{spec.vary[k].label}' holds NaN or Inf")
                x2[:, I + k] = a
        else:
            x2 = xnp
        v = spec.variant
        out = np.empty((B, m.dsp.primal_outputs, n), dtype=npdt)
        cpaths = spec.cpaths

        vpaths = spec.vpaths

        # a gradient will be asked: the forward pass is forward mode's derivative program (the
        # derivatives kept for the backward pass's dot products) or reverse mode's tape pass
        # (its tape kept for the backward pass, which then runs the adjoint program alone)
        keep = any(ctx.needs_input_grad[1:])
        need = ctx.needs_input_grad
        ctx.jvp = None
        if keep:
            why = ("x requires grad" if need[1] else
                   "a per-sample parameter requires grad" if any(need[2 + nc:]) else
                   "a parameter is given per sample" if spec.vary else "")
            mode = m._choose_ad(not why, why, lambda mode: _trial(m, v, mode, x2[0], n, cpaths, cvals[0]))
            if mode == "forward":  # the primal render now; the gradient program in the backward pass
                ctx.jvp = m._jvp()
                keep = False
        runs = [None] * B
        rev = v.reverse() if keep else None  # compiled once, here, not in every thread
        ctx.rlanes = None

        def lane_values(items) -> dict:
            return _lane_values(cvals, cpaths, vpaths, items)

        rlanes = m._lane_programs(B, rev.lanes) if keep else None

        if rlanes is not None:  # reverse mode's tape pass, the items in SIMD lanes
            groups = lane_groups(B, rlanes[0].lanes)
            # the tapes in one buffer of the module's, reused from step to step (fresh pages for
            # every item's tape cost more than the tape program of a small program)
            tbuf = m._take((len(groups),) + rev.tape_shape(rlanes, n), npdt)
            ctx.lease = _Lease(m, tbuf)

            def prepare(insts):  # (False for every group, nothing run, when its tape would exceed
                # the memory: item by item below)
                return [rev.forward_items(rlanes, x2, items, n, lane_values(items), out, tbuf[g], inst=insts[g],
                                          defer=True) for g, items in enumerate(groups)]

            def ready(insts):  # (rev.ready_tape_items of every group)
                for g, (inst, items) in enumerate(zip(insts, groups)):
                    rev.ready_tape_items(inst, lane_values(items), tbuf[g])

            run = m._run_pass(("tape", rlanes[0], B, n, v.block_size), rlanes[0], len(groups), (x2, out, tbuf),
                              prepare, ready, (v, cpaths, vpaths, groups, cvals),
                              lambda insts: [[rev.tape_history(tbuf[g], rlanes[0].lanes)] for g in range(len(groups))])
            if run is not None:
                ctx.rlanes = (rlanes, groups, tbuf)
                m._pass_done(run)

        def render(b):
            if keep:
                values = {path: float(cvals[b, k]) for k, path in enumerate(cpaths)}
                values.update({path: 0.0 for path in vpaths})  # the variant reads widget + input
                runs[b] = rev.forward(x2[b], n, values)
                out[b] = runs[b].y
                return
            inst = m._instance(v)
            for k, path in enumerate(cpaths):
                inst.set_param(path, cvals[b, k])
            for path in vpaths:  # the variant reads widget + input: the widget at 0
                inst.set_param(path, 0.0)
            inst.compute(x2[b], n, out=out[b])

        lp = None if keep else m._lane_programs(B, v.lanes)
        if lp is not None:  # no tape: the items in SIMD lanes, a group of them per instance
            groups = lane_groups(B, lp.lanes)

            def ready(insts):
                for inst, items in zip(insts, groups):
                    set_read_params(inst, v, lane_values(items))

            def prepare(insts):
                ready(insts)
                return [inst.compute_items([(x2, 0)], [(out, 0)], items, n, defer=True)
                        for inst, items in zip(insts, groups)]

            m._pass_done(m._run_pass(("render", lp, B, n, v.block_size), lp, len(groups), (x2, out), prepare, ready,
                                     (v, cpaths, vpaths, groups, cvals)))
        elif not (keep and ctx.rlanes is not None):
            m._map(render, B)
        ctx.runs = runs if keep else None
        ctx.spec = spec
        ctx.x2, ctx.cvals = x2, cvals
        ctx.in_dtypes = [(x.dtype, x.device)] + [(t.dtype, t.device) for t in ptensors]
        ctx.save_for_backward(x, *ptensors)  # for the version check of in-place changes
        y = torch.from_numpy(out)
        return y.to(spec.device) if spec.device.type != "cpu" else y

    @staticmethod
    def backward(ctx, gy):
        # (create_graph=True: grad mode on here; once_differentiable makes a second
        # derivative through this function an error; else it would only cost its wrapping)
        if torch.is_grad_enabled():
            return _backward_once(ctx, gy)
        return _backward(ctx, gy)


@torch.autograd.function.once_differentiable
def _backward_once(ctx, gy):
    return _backward(ctx, gy)


def _backward(ctx, gy):
    """_FaustFunction's backward pass."""
    spec = ctx.spec
    ctx.saved_tensors  # noqa: B018  (raises if an input was changed in place since forward)
    m = spec.module
    need = ctx.needs_input_grad  # (spec, x, *params)
    if not any(need[1:]):
        return (None,) * len(need)
    m._wake()
    n, B, I = spec.n, spec.batch, m.dsp.inputs
    nc, nv = len(spec.const), len(spec.vary)
    ybar = _to_numpy(gy, m.dtype)
    x2, cvals = ctx.x2, ctx.cvals
    v = spec.variant
    # x̄ (batch, inputs, n) and each per-sample parameter's gradient (batch, 1, n): arrays of
    # their own, returned as they are (contiguous: autograd keeps them as .grad without a copy
    # — a strided one is copied by torch's own threads, which then compete with the pool's);
    # the ones not asked for in the module's spare buffers
    need_g = [need[1]] + [need[2 + nc + k] for k in range(nv)]
    gshapes = [(B, I, n)] + [(B, 1, n)] * nv
    gs = [np.empty(shape, dtype=m._np_dtype) if wanted else None for wanted, shape in zip(need_g, gshapes)]
    gc = np.zeros((B, nc), dtype=np.float64)
    cpaths = spec.cpaths
    want_c = [need[2 + k] for k in range(nc)]

    if ctx.jvp is not None:  # forward mode: dL/dp_j = Σ_o Σ_n ȳ_o[n]·∂y_o[n]/∂p_j, one program
        jg = ctx.jvp

        def values(b):
            return {path: float(cvals[b, k]) for k, path in enumerate(cpaths)}

        def take(b, r):
            for k, path in enumerate(cpaths):
                if want_c[k]:
                    gc[b, k] = r[path]

        lp = m._lane_programs(B, jg.dsp.lanes)
        if lp is not None:  # the items in SIMD lanes, a group of them per instance
            groups = lane_groups(B, lp.lanes)
            rows = tuple(jg.paths.index(path) if want_c[k] else -1 for k, path in enumerate(cpaths))

            def prepare(insts):
                return [jg.run_items(lp, x2, ybar, items, n, _lane_values(cvals, cpaths, (), items), inst=inst,
                                     defer=True) for inst, items in zip(insts, groups)]

            def ready(insts):  # (jg.ready_items of every group)
                for inst, items in zip(insts, groups):
                    jg.ready_items(inst, _lane_values(cvals, cpaths, (), items))

            run = m._run_pass(("jvp", lp, B, n, jg.dsp.block_size, v.block_size), lp, len(groups), (x2, ybar),
                              prepare, ready, (jg.primal, cpaths, (), groups, cvals))
            _gather_sums(run, groups, rows, gc)
            m._pass_done(run)
        else:
            m._map(lambda b: take(b, jg.run(x2[b], ybar[b], n, values(b))), B)
        res = [None, None] + _const_grads(ctx, gc, need, nc)
        res.extend([None] * nv)
        return tuple(res)

    zeros = {p.path: 0.0 for p in spec.vary}  # the variant reads widget + input: the widget at 0

    runs = ctx.runs

    def grad(b):
        if runs is not None:
            g = v.reverse().backward(runs[b], ybar[b])
        else:
            g = v.vjp(x2[b], ybar[b], {**zeros, **{path: float(cvals[b, k]) for k, path in enumerate(cpaths)}},
                      n=n)
        for k, a in enumerate(gs):
            if a is not None:
                a[b] = g.input[:I] if k == 0 else g.input[I + k - 1:I + k]
        for k, path in enumerate(cpaths):
            if want_c[k]:
                gc[b, k] = g.by_path[path]

    v.reverse()  # the first call compiles the reverse programs (once, here, not in every thread)
    if ctx.rlanes is not None:  # the adjoint program, the items in SIMD lanes
        rlanes, groups, tbuf = ctx.rlanes
        rev = v.reverse()
        gbufs = [a if a is not None else m._take(shape, m._np_dtype) for a, shape in zip(gs, gshapes)]
        rows = tuple(rev.paths.index(path) if want_c[k] else -1 for k, path in enumerate(cpaths))
        vpaths = spec.vpaths


        def prepare(insts):
            return [rev.backward_items(rlanes, tbuf[g], ybar, items, n, _lane_values(cvals, cpaths, vpaths, items),
                                       gbufs, inst=insts[g], defer=True) for g, items in enumerate(groups)]

        def ready(insts):  # (rev.ready_adjoint_items of every group)
            for inst, items in zip(insts, groups):
                rev.ready_adjoint_items(inst, _lane_values(cvals, cpaths, vpaths, items))

        run = m._run_pass(("adjoint", rlanes[1], B, n, v.block_size), rlanes[1], len(groups), (tbuf, ybar, *gbufs),
                          prepare, ready, (v, cpaths, vpaths, groups, cvals))
        _gather_sums(run, groups, rows, gc)
        m._pass_done(run)
        for a, buf in zip(gs, gbufs):
            if a is None:
                m._give(buf)
    else:
        m._map(grad, B)
    dts = ctx.in_dtypes
    res = [None]
    res.append(_to_tensor(gs[0], *dts[0]) if need[1] else None)
    res.extend(_const_grads(ctx, gc, need, nc))
    for k in range(nv):
        res.append(_to_tensor(gs[1 + k][:, 0], *dts[1 + nc + k]) if need[2 + nc + k] else None)
    return tuple(res)


def _gather_sums(run, groups, rows, gc) -> None:
    """gc[item, k] ← the sum `rows[k]` of each group's lane instance (its accumulators, the
    gradient w.r.t. a constant parameter), for the k with rows[k] >= 0; run: what
    `FaustModule._run_pass` ran on (a plan keeps each sum's (lanes,) view of its instance's
    state)."""
    memo = getattr(run, "memo", {})
    views = memo.get(("sums", rows))
    if views is None:
        views = memo[("sums", rows)] = [[(k, inst.accumulator_view(r)) for k, r in enumerate(rows) if r >= 0]
                                        for inst in run.insts]
    for vs, items in zip(views, groups):
        m = len(items)
        for k, view in vs:
            gc[items.start:items.stop, k] = view[:m]


def _const_grads(ctx, gc, need, nc) -> list:
    """The gradients of the constant parameters' tensors from gc (batch, nc): 0 where the
    forward pass clamped the value, summed over the batch for a 0-d tensor, in each tensor's
    dtype and device; None where none is needed."""
    dts, res = ctx.in_dtypes, []
    if ctx.inside is not None:
        gc = gc * ctx.inside
    for k in range(nc):
        if not need[2 + k]:
            res.append(None)
            continue
        res.append(_to_tensor(gc[:, k] if ctx.const_dims[k] else gc[:, k].sum(), *dts[1 + k], copy=True))
    return res


def _trial(m, v, mode: str, x, n: int, cpaths, cvals) -> None:
    """One batch item's forward and backward pass in `mode` (auto's timing)."""
    values = {path: float(cvals[k]) for k, path in enumerate(cpaths)}
    if mode == "forward":
        inst = m._instance(v)
        for path, val in values.items():
            inst.set_param(path, val)
        y = inst.compute(x, n)
        m._jvp().run(x, np.ones_like(y), n, values)
        return
    rev = v.reverse()
    run = rev.forward(x, n, values)
    rev.backward(run, np.ones_like(run.y))
