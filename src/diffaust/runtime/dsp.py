"""Dsp: a compiled Faust program you can render, differentiate and train.

    dsp = diffaust.compile("process = _ * hslider('gain [diff:1]', .5, 0, 1, .01);", diff=True)
    y, dy = dsp.render_jvp(x)          # x: (inputs, n); y: (outputs, n); dy: (outputs, params, n)

Audio arrays are NumPy `(channels, samples)`, float32 (float64 with double=True).
Parameters are addressed by label (`gain`) or full path (`/dsp/gain`).
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import DiffaustError, UsageError
from . import cache
from .kernels import all_finite
from .pipeline import CompileOptions, run_pipeline


@dataclass(frozen=True)
class Param:
    """A widget of the program.  Values are in the widget's own units."""

    path: str
    label: str
    kind: str
    init: float
    min: float
    max: float
    step: float
    meta: dict = field(default_factory=dict, hash=False, compare=False)
    diff: bool = False


_INIT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int)
_COMPUTE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class Dsp:
    """A compiled program.

    Attributes:
      inputs            number of input channels
      outputs           channels `render()` returns (with diff=True: len(derivative_names))
      primal_outputs    outputs of the program itself
      params            every widget, UI order (list of Param)
      diff_params       the `[diff:1]` widgets, UI order
      derivative_names  'd out0/d gain' ...: for each primal output, for each diff param
      sample_rate       Hz, given to init()
      double            float64 (True) or float32 samples
      block_size        samples per compute() call of a render (default 256, the size of the
                        Faust reference harness: docs/SEMANTICS.md "Block size"); settable
      block_dependent   whether the output can depend on the block size (the program reads
                        `count`, Faust's fvariable(int count)): only then is a render run
                        block by block; otherwise one compute() call of n samples is the
                        same as blocks of any size
    """

    def __init__(self, meta: dict, init_addr: int, compute_addr: int, source: str, filename: str,
                 options: CompileOptions, sample_rate: int, trace: str = ""):
        self._meta = meta
        self._init = _INIT(init_addr)
        self._compute = _COMPUTE(compute_addr)
        self._compute_addr = compute_addr
        # an entry without the flag (none should exist: the cache key has the compiler's code
        # digest) is taken as block-dependent: slower, never wrong
        self.block_dependent = bool(meta.get("block_dependent", True))
        self._block_size = DEFAULT_BLOCK_SIZE
        self.source = source
        self.filename = filename
        self.options = options
        self.sample_rate = _check_sample_rate(sample_rate)
        self.double = options.double
        self.diff = options.diff
        self.dtype = np.float64 if self.double else np.float32
        self.inputs = meta["inputs"]
        self.primal_outputs = meta["primal_outputs"]
        self.total_outputs = meta["outputs"]
        self.params = [Param(p["path"], p["label"], p["kind"], p["init"], p["min"], p["max"], p["step"],
                             dict(p["meta"]), p["diff"]) for p in meta["params"]]
        self._offsets = [p["offset"] for p in meta["params"]]
        self.diff_params = [self.params[i] for i in meta["diff_indices"]]
        self.derivative_names = list(meta["derivative_names"])
        self.outputs = len(self.derivative_names) if self.diff else self.primal_outputs
        self.state_size = meta["state_size"]
        self.metadata = [tuple(kv) for kv in meta.get("metadata", [])]
        self.trace = trace
        self._tls = threading.local()  # render_jvp(reuse=True)'s instance and buffers

    @property
    def block_size(self) -> int:
        """Samples per compute() call when rendering (Faust's `count`): default 256."""
        return self._block_size

    @block_size.setter
    def block_size(self, value) -> None:
        self._block_size = check_block_size(value)

    def _bs(self, block_size) -> int:
        return self._block_size if block_size is None else check_block_size(block_size)

    # ------------------------------------------------------------ parameters
    def param_index(self, name) -> int:
        """Index of a parameter given by index, label, path, path suffix, or path as Faust's
        MapUI spells it (spaces and ( ) [ ] { } # * , ? as '_')."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, (bool, np.bool_)):
            if 0 <= name < len(self.params):
                return int(name)
            raise UsageError(f"no parameter #{name} (the program has {len(self.params)})")
        if not isinstance(name, str):
            raise UsageError(f"a parameter is named by its label, path or index, got {name!r}")
        found = self.__dict__.setdefault("_param_names", {}).get(name)
        if found is not None:  # (a training loop names the same parameters every step)
            return found
        found = self._param_index(name)
        self._param_names[name] = found
        return found

    def _param_index(self, name: str) -> int:
        for i, p in enumerate(self.params):
            if name == p.path or name == p.label or name.lstrip("/") == p.path.lstrip("/"):
                return i
        for i, p in enumerate(self.params):  # a path suffix: group/label
            if p.path.endswith("/" + name.lstrip("/")):
                return i
        from ..signals.propagate import mapui_path as _mangle

        for i, p in enumerate(self.params):  # a path as Faust's MapUI spells it (In_Delay)
            if _mangle(name.lstrip("/")) == _mangle(p.path.lstrip("/")) or \
                    _mangle(p.path).endswith("/" + _mangle(name.lstrip("/"))):
                return i
        known = ", ".join(p.label for p in self.params) or "none"
        raise UsageError(f"unknown parameter '{name}' (parameters: {known})")

    # ------------------------------------------------------------ running
    def instance(self, params: Optional[dict] = None) -> "Instance":
        """A fresh stateful instance (state zeroed, init(sample_rate) run, parameters at their init values)."""
        inst = Instance(self)
        if params is not None and not hasattr(params, "items"):
            raise UsageError(f"params must be a dict {{name: value}}, got {type(params).__name__}")
        if params:
            for k, v in params.items():
                inst.set_param(k, v)
        return inst

    def _scratch_render(self, x, n, params, block_size=None) -> np.ndarray:
        """Every output channel of a render from a reset state, in this thread's buffers
        (see render_jvp's reuse): an instance reset, not made anew, and the output array of
        the previous call of the same length."""
        if params is not None and not hasattr(params, "items"):
            raise UsageError(f"params must be a dict {{name: value}}, got {type(params).__name__}")
        tls = self._tls
        inst = getattr(tls, "instance", None)
        if inst is None:
            inst = tls.instance = Instance(self)
            tls.out = None
        else:
            inst.reset()
        if params:
            for k, v in params.items():
                inst.set_param(k, v)
        if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype != self.dtype and x.dtype.kind == "f" \
                and x.shape[0] == self.inputs and (n is None or (isinstance(n, (int, np.integer))
                                                                 and 0 <= n <= x.shape[1])):
            # the input in this precision, in a buffer of this thread (as compute() would convert it)
            cols = x.shape[1] if n is None else int(n)
            xb = self._scratch("render.x", (self.inputs, cols), self.dtype)
            np.copyto(xb, x[:, :cols])
            x = xb
        out = tls.out
        length = _check_n(n) if n is not None else (np.shape(x)[-1] if x is not None else None)
        if out is None or length is None or out.shape[1] != length:
            out = None
        y = inst.compute(x, n, out=out, block_size=block_size)
        tls.out = y
        return y

    def _scratch(self, name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
        """This thread's buffer `name` (uninitialized) of `shape`, kept for the next call."""
        tls = self._tls
        bufs = getattr(tls, "buffers", None)
        if bufs is None:
            bufs = tls.buffers = {}
        a = bufs.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = bufs[name] = np.empty(shape, dtype=dtype)
        return a

    # ------------------------------------------------------------ parameters given per sample
    def _split_params(self, params):
        """(params given as numbers, {path: (n,) array} of those given per sample)."""
        if not params or not hasattr(params, "items"):
            return params, {}
        const, vary = {}, {}
        for k, v in params.items():
            if isinstance(v, (np.ndarray, list, tuple)) and np.ndim(v) >= 1:
                p = self.params[self.param_index(k)]
                a = np.asarray(v)
                if a.ndim != 1 or a.dtype.kind not in "fiub":
                    raise UsageError(f"parameter '{p.label}' given per sample must be a 1-D array of "
                                     f"numbers (samples,), got shape {a.shape}")
                if not all_finite(a):
                    raise UsageError(f"parameter '{p.label}' given per sample holds NaN or Inf")
                vary[p.path] = a
            else:
                const[k] = v
        return const, vary

    def _variant(self, paths: tuple) -> "Dsp":
        """This program compiled with the widgets `paths` read from extra inputs (one per
        path, after the program's own), built once per set of paths."""
        variants = self.__dict__.setdefault("_variants", {})
        v = variants.get(paths)
        if v is not None:
            v._block_size = self._block_size  # renders in this Dsp's blocks
            return v
        with _VARIANT_LOCK:
            v = variants.get(paths)
            if v is not None:
                v._block_size = self._block_size
                return v
            o = self.options
            v = variants[paths] = compile_source(
                self.source, self.filename, double=o.double, diff=o.diff, sample_rate=self.sample_rate,
                import_dirs=o.import_dirs, use_cache=o.use_cache, bundled_only=o.bundled_only,
                nondiff=o.nondiff, allow_native=o.allow_native, varying=paths)
            v._block_size = self._block_size
        return v

    def _with_varying(self, x, n, params):
        """(variant Dsp, inputs with the per-sample values appended, scalar params, paths) for a
        call with parameters given per sample; None when there is none."""
        const, vary = self._split_params(params)
        if not vary:
            return None
        paths = tuple(sorted(vary))
        if n is None:
            n = np.shape(x)[-1] if x is not None else len(next(iter(vary.values())))
        n = _check_n(n)
        for path, a in vary.items():
            if a.shape[0] < n:
                label = self.params[self.param_index(path)].label
                raise UsageError(f"parameter '{label}' given per sample has {a.shape[0]} samples, {n} needed")
        if x is None:
            xs = np.zeros((self.inputs, n), dtype=self.dtype)
        else:
            xs = np.asarray(x)
            if xs.ndim == 1:
                xs = xs[None, :]
            if xs.ndim != 2 or xs.shape[0] != self.inputs or xs.shape[1] < n:
                raise UsageError(f"x must have shape (inputs, n) = ({self.inputs}, {n}), got shape {xs.shape}")
        x2 = np.empty((self.inputs + len(paths), n), dtype=self.dtype)
        x2[:self.inputs] = xs[:, :n]
        for k, path in enumerate(paths):
            x2[self.inputs + k] = vary[path][:n]
        p2 = dict(const or {})
        p2.update({path: 0.0 for path in paths})
        return self._variant(paths), x2, p2, paths, n

    def render(self, x=None, n: Optional[int] = None, params: Optional[dict] = None, *,
               block_size: Optional[int] = None) -> np.ndarray:
        """Run from a fresh state.  x: (inputs, n) or None (zeros); returns (outputs, n).

        params: {name: value}; a value may be an array (n,) to give the widget per sample
        (automation; clamped to the widget's range, as a slider's value is).
        block_size: samples per compute() call (default `self.block_size`, 256), the last
        block shorter; it changes the output only of a program that reads `count`.
        With diff=True the channels are the derivatives, in `derivative_names` order.
        """
        bs = self._bs(block_size)
        w = self._with_varying(x, n, params)
        if w is not None:
            v, x2, p2, _, n = w
            return v.render(x2, n, p2, block_size=bs)
        y = self.instance(params).compute(x, n, block_size=bs)
        if self.diff:
            return y[self.primal_outputs:]
        return y

    def render_jvp(self, x=None, n: Optional[int] = None, params: Optional[dict] = None, *,
                   reuse: bool = False, block_size: Optional[int] = None):
        """Primal outputs and derivatives: y (primal_outputs, n), dy (primal_outputs, n_diff, n).

        block_size: as in `render` (default `self.block_size`).

        reuse=True (training loops): the same result, rendered into buffers that this
        thread's next ``render_jvp(..., reuse=True)`` call on this Dsp overwrites, with an
        instance reset instead of made anew: no allocation, no fresh memory to fault in.
        """
        if not self.diff:
            raise UsageError("render_jvp needs a program compiled with diff=True")
        bs = self._bs(block_size)
        w = self._with_varying(x, n, params)
        if w is not None:  # d/dp of a per-sample parameter: along a constant offset of all samples
            v, x2, p2, _, n = w
            return v.render_jvp(x2, n, p2, reuse=reuse, block_size=bs)
        lanes = self._directional()
        if lanes is not None:  # a large derivative program: its P tangents in P SIMD lanes
            got = lanes.render(x, n, params, bs, reuse)
            if got is not None:
                return got
            # a tangent came out NaN or infinite there: the per-variable program's answer
        if reuse:
            y = self._scratch_render(x, n, params, bs)
        else:
            y = self.instance(params).compute(x, n, block_size=bs)
        p = self.primal_outputs
        k = len(self.diff_params)
        return y[:p], y[p:].reshape(p, k, y.shape[-1])

    def _directional(self):
        """render_jvp's directional lanes (runtime/jvpdir.py), or None: a derivative program
        smaller than jvpdir.MIN_LOOP_STATEMENTS, fewer than 2 or more than jvpdir.MAX_LANES
        parameters, or a program that cannot run in lanes (control/enable)."""
        from . import jvpdir

        r = self.__dict__.get("_directional_lanes", False)
        if r is not False:
            return r
        P = len(self.diff_params)
        if (P < 2 or P > jvpdir.MAX_LANES or not self.options.diff
                or self._meta.get("loop_statements", 0) < jvpdir.MIN_LOOP_STATEMENTS):
            r = None
        else:
            from ..codegen.lanes import LanesUnsupported

            try:
                r = self._built("_directional_built", jvpdir.DirectionalLanes)
            except LanesUnsupported:
                r = None
        self.__dict__["_directional_lanes"] = r
        return r

    def vjp(self, x=None, y_bar=None, params: Optional[dict] = None, *, n: Optional[int] = None,
            memory: Optional[int] = None, block_size: Optional[int] = None):
        """Reverse mode: the gradient of Σ_c Σ_n y_bar[c, n]·y[c, n] for a render from a reset
        state, w.r.t. every `[diff:1]` parameter and every input sample, at a cost that does not
        grow with the number of parameters.

        x: (inputs, n) or None (zeros); y_bar: (primal_outputs, n); returns a `Gradient`
        (`.params` {label: float}, `.input` (inputs, n), `.output` the primal y (primal_outputs, n)).
        A parameter given per sample (params={"fc": ndarray (n,)}) gets its gradient per sample:
        `.params["fc"]` has shape (n,).
        memory: bytes of tape kept before checkpointing (default 256 MiB; a longer signal is
        run twice forward, in segments).  The first call compiles the tape and adjoint programs.
        block_size: as in `render`; a program that reads `count` is taped block by block."""
        from .reverse import DEFAULT_MEMORY

        bs = self._bs(block_size)
        w = self._with_varying(x, n, params)
        if w is not None:
            v, x2, p2, paths, n = w
            g = v.vjp(x2, y_bar, p2, n=n, memory=memory, block_size=bs)
            by_path = {p.path: p.label for p in self.params}
            for k, path in enumerate(paths):  # the per-sample parameter's gradient, per sample
                g.params[by_path[path]] = g.input[self.inputs + k]
            g.input = g.input[:self.inputs]
            return g
        if y_bar is None:
            raise UsageError("vjp needs y_bar, the cotangent of the outputs: shape (outputs, n)")
        yb = np.asarray(y_bar)
        if n is None:
            n = yb.shape[-1] if yb.ndim else None
        n = _check_n(n)
        rev = self.reverse()
        return rev.run(x, n, params, lambda y: yb, memory=DEFAULT_MEMORY if memory is None else int(memory),
                       block_size=bs)

    def reverse(self):
        """The compiled reverse-mode programs of this Dsp (`runtime.reverse.Reverse`), built once."""
        r = self.__dict__.get("_reverse")
        if r is not None:  # (asked on every pass of a batch layer)
            return r
        from .reverse import Reverse

        return self._built("_reverse", Reverse)

    def jvp_gradient(self):
        """The compiled program of Σ ȳ·∂y/∂p for the [diff:1] parameters by forward mode,
        summed in its loop (`runtime.jvpgrad.JvpGradient`), built once."""
        from .jvpgrad import JvpGradient

        return self._built("_jvp_gradient", JvpGradient)

    def _built(self, name: str, make):
        """self.<name>, made by make(self) on first use (once, whatever the threads); its
        compile warnings shown then."""
        r = self.__dict__.get(name)
        if r is None:
            with _REVERSE_LOCK:
                r = self.__dict__.get(name)
                if r is None:
                    r = make(self)
                    self.__dict__[name] = r
                    _warn(r.warnings)
        return r

    def lanes(self, lanes: Optional[int] = None, packed_inputs=(), packed_outputs=(), shared_inputs=(),
              shared_params=()):
        """This program lowered to run `lanes` instances at once, one per SIMD lane
        (`runtime.lanes.LanePrograms`; default `runtime.lanes.lane_width`: 8 lanes in float, 4
        in double, half that for a large state), compiled once;
        packed_inputs / packed_outputs: channels whose lanes share one interleaved buffer;
        shared_inputs: inputs every lane reads from one buffer; shared_params: parameter
        paths with one value for every lane.
        Raises codegen.lanes.LanesUnsupported for a program with control/enable."""
        from .lanes import lane_programs

        return lane_programs(self, lanes, packed_inputs, packed_outputs, shared_inputs, shared_params)

    def listing(self, lang: str = "c") -> str:
        """The generated program: 'c' (readable C-like listing of the per-sample loop), 'llvm' (optimized
        LLVM IR), 'cpp' (a C++ class `mydsp` with Faust's dsp interface, for Faust's architecture files)
        or 'json' (the program's I/O, metadata and parameters, in the shape of `faust -json`)."""
        from ..codegen import clike
        from ..codegen.llvm import build_module, jit

        st = run_pipeline(self.source, self.filename, self.options)
        if lang == "c":
            return clike.format_program(st, self)
        if lang == "llvm":
            mod = build_module(st.program, "dsp")
            with jit().lock:  # LLVM's context is shared: read the module before another thread uses it
                return str(jit().optimize(str(mod)))
        if lang == "cpp":
            from ..codegen.cpp import emit_cpp_stages

            return emit_cpp_stages(st, self.options)
        if lang == "json":
            from ..codegen.json_ui import emit_json

            return emit_json(st, self.options)
        raise UsageError(f"unknown language '{lang}' (choose c, llvm, cpp or json)")

    def __repr__(self):
        return (f"<Dsp {os.path.basename(self.filename)}: {self.inputs} in, {self.outputs} out, "
                f"{len(self.params)} params{', diff' if self.diff else ''}>")


class Instance:
    """A running DSP: its own state and parameter values.  `compute` continues from the last sample."""

    def __init__(self, dsp: Dsp):
        self.dsp = dsp
        words = (dsp.state_size + 7) // 8
        self._state = np.zeros(max(words, 2), dtype=np.float64)
        self._addr = self._state.ctypes.data
        ctype = ctypes.c_double if dsp.double else ctypes.c_float
        self._pvals = [ctype.from_address(self._addr + off) for off in dsp._offsets]
        self._nout = dsp.total_outputs
        self._nin = dsp.inputs
        self.reset()
        # one-sample buffers for step()
        self._in1 = [(ctype * 1)() for _ in range(self._nin)]
        self._out1 = [(ctype * 1)() for _ in range(self._nout)]
        self._in1p = (ctypes.c_void_p * max(self._nin, 1))(*[ctypes.addressof(b) for b in self._in1])
        self._out1p = (ctypes.c_void_p * max(self._nout, 1))(*[ctypes.addressof(b) for b in self._out1])

    def reset(self):
        """State to zero, init(sample_rate), parameters to their init values."""
        self._state[:] = 0
        for pv, p in zip(self._pvals, self.dsp.params):
            pv.value = p.init
        self.dsp._init(self._addr, self.dsp.sample_rate)

    def snapshot(self) -> np.ndarray:
        """A copy of the whole state (parameters included): `restore` returns to it."""
        return self._state.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        np.copyto(self._state, snapshot)

    def set_param(self, name, value: float):
        i = self.dsp.param_index(name)
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"parameter '{self.dsp.params[i].label}': the value must be a real "
                             f"number, got {value!r}") from None
        self._pvals[i].value = v

    def get_param(self, name) -> float:
        return float(self._pvals[self.dsp.param_index(name)].value)

    def compute(self, x=None, n: Optional[int] = None, out: Optional[np.ndarray] = None, *,
                block_size: Optional[int] = None) -> np.ndarray:
        """Run n samples; returns every output channel (for a diff Dsp: primal outputs, then derivatives).

        out: an array of shape (outputs, n), C-contiguous, of the samples' dtype, to write them
        into (and return) instead of a new one.
        block_size: the samples are run as compute() calls of block_size samples (the last one
        shorter), as a Faust architecture runs them; default the Dsp's `block_size` (256).
        Pass block_size=n for one compute(n) call.  Only a program that reads `count` sees the
        difference (`Dsp.block_dependent`): any other is run as one call, whatever the size."""
        dt = self.dsp.dtype
        x, n = input_block(x, self._nin, _check_n(n), dt)
        if out is None:
            y = np.empty((self._nout, n), dtype=dt)  # compute() writes every sample of every output
        else:
            if (not isinstance(out, np.ndarray) or out.shape != (self._nout, n) or out.dtype != dt
                    or not out.flags.c_contiguous or not out.flags.writeable):
                raise UsageError(f"out must be a writable C-contiguous {np.dtype(dt).name} array of shape "
                                 f"{(self._nout, n)}")
            y = out
        bs = self.dsp._bs(block_size)
        ip = (ctypes.c_void_p * max(self._nin, 1))(*[x[i].ctypes.data for i in range(self._nin)])
        op = (ctypes.c_void_p * max(self._nout, 1))(*[y[i].ctypes.data for i in range(self._nout)])
        if n > 0:
            self._run(n, ip, op, bs)
        return y

    def _run(self, n: int, ip, op, bs: int) -> None:
        """compute() over n samples of the channel pointers ip / op: one call, or one per block
        of bs samples (in a native loop) for a program that reads `count`."""
        d = self.dsp
        if n <= bs or not d.block_dependent:
            d._compute(self._addr, n, ip, op)
        elif n <= MAX_SAMPLE_RATE - bs:  # the native loop's counter stays in a C int
            from ..codegen.llvm import block_driver

            block_driver(d.double)(d._compute_addr, self._addr, n, bs, self._nin, self._nout,
                                   ctypes.addressof(ip), ctypes.addressof(op))
        else:
            size = 8 if d.double else 4
            for start in range(0, n, bs):
                cnt = min(bs, n - start)
                ipb = (ctypes.c_void_p * max(self._nin, 1))(*[ip[i] + start * size for i in range(self._nin)])
                opb = (ctypes.c_void_p * max(self._nout, 1))(*[op[i] + start * size for i in range(self._nout)])
                d._compute(self._addr, cnt, ipb, opb)

    def compute_rows(self, inputs, outputs, n: int, block_size: Optional[int] = None) -> None:
        """Run n samples from and into lists of 1-D C-contiguous arrays of the samples' dtype
        (one per input, one per output channel, each at least n long; not checked beyond that:
        the fast path of reverse mode).  block_size: as in `compute`."""
        if len(inputs) != self._nin or len(outputs) != self._nout:
            raise UsageError(f"compute_rows: {self._nin} inputs and {self._nout} outputs expected")
        for a in (*inputs, *outputs):
            if a.dtype != self.dsp.dtype or a.ndim != 1 or a.shape[0] < n or not a.flags.c_contiguous:
                raise UsageError("compute_rows: rows must be C-contiguous 1-D arrays of the samples' dtype")
        ip = (ctypes.c_void_p * max(self._nin, 1))(*[a.ctypes.data for a in inputs])
        op = (ctypes.c_void_p * max(self._nout, 1))(*[a.ctypes.data for a in outputs])
        if n > 0:
            self._run(n, ip, op, self.dsp._bs(block_size))

    def step(self, inputs=()) -> list:
        """One sample: inputs is a sequence of `inputs` floats; returns every output channel."""
        for b, v in zip(self._in1, inputs):
            b[0] = v
        self.dsp._compute(self._addr, 1, self._in1p, self._out1p)
        return [b[0] for b in self._out1]


# ---------------------------------------------------------------- compile


def thread_instance(tls, kind: str, prog):
    """This thread's instance of `prog` (a Dsp or lane programs: `prog.instance()`), kept in
    the threading.local `tls` under `kind`; reset when it is asked again."""
    insts = tls.__dict__.setdefault(kind, {})
    inst = insts.get(id(prog))
    if inst is None:
        inst = insts[id(prog)] = prog.instance()
    else:
        inst.reset()
    return inst


def set_read_params(inst, primal, params) -> None:
    """Set on `inst` — an instance of a program built from `primal`'s signals (reverse
    mode's tape and adjoint, the jvp gradient), or its lane instance — the parameters of
    `params` ({name of a primal parameter: value, or values per lane}) that the program
    reads; the others are skipped (the program does not have them)."""
    if not params:
        return
    # the names' paths among the program's, found once per primal and set of names (a batch
    # layer sets the same ones on every group of every step)
    reads = inst.dsp.__dict__.setdefault("_reads", {})
    key = (primal.__dict__.setdefault("_token", object()), *params)
    sel = reads.get(key)
    if sel is None:
        known = frozenset(p.path for p in inst.dsp.params)
        sel = [(name, path) for name in params
               if (path := primal.params[primal.param_index(name)].path) in known]
        if len(reads) < 64:
            reads[key] = sel
    for name, path in sel:
        inst.set_param(path, params[name])


def read_views(inst, primal, names) -> Optional[list]:
    """[(k, view)]: for each names[k] (a primal parameter) that the program of the lane
    instance `inst` reads (as `set_read_params` finds it), the (lanes,) view of its values in
    the instance's state: ``view[:m] = values`` is `set_read_params` for m lanes.  None where
    one is shared by every lane (set it with `set_read_params`)."""
    sel = []
    for k, name in enumerate(names):
        path = primal.params[primal.param_index(name)].path
        i = inst._by_path.get(path)
        if i is None:
            continue
        if inst.prog.param_uniform[i]:
            return None
        sel.append((k, inst._views[i]))
    return sel


def input_block(x, inputs: int, n: Optional[int], dt) -> tuple:
    """(x as (inputs, n) C-contiguous rows of dtype dt, n): zeros for None (then n is needed);
    a 1-D x is one channel; n defaults to x's length.  UsageError for anything else."""
    if x is None:
        if n is None:
            raise UsageError("give an input x or a number of samples n")
        return np.zeros((inputs, n), dtype=dt), n
    try:
        x = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise UsageError(f"x must be an array of shape (inputs, n): {e}") from None
    if x.dtype.kind not in "fiub":
        raise UsageError(f"x must hold real numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise UsageError(f"x must have shape (inputs, n) or (n,), got shape {x.shape}")
    if x.shape[0] != inputs:
        raise UsageError(f"input has {x.shape[0]} channels, the program has {inputs} inputs")
    if n is None:
        n = x.shape[1]
    elif x.shape[1] < n:
        raise UsageError(f"input has {x.shape[1]} samples, {n} asked")
    return np.ascontiguousarray(x[:, :n], dtype=dt), n


def _check_text(text: str) -> None:
    """UsageError, located, when `text` is not valid Unicode (a lone surrogate such as
    '\\ud800', which no file read as UTF-8 can hold but a Python string can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        line = text.count("\n", 0, e.start) + 1
        col = e.start - (text.rfind("\n", 0, e.start) + 1) + 1
        from ..syntax.ast import Span

        raise UsageError(f"invalid character U+{ord(text[e.start]):04X} (a lone surrogate: the "
                         "source text is not valid Unicode)", Span("<string>", line, col)) from None


MAX_SAMPLE_RATE = 2**31 - 1  # init(int sample_rate) takes a C int

# Samples per compute() call of a render: the block size of the Faust reference harness
# (diffaust.reference) and of `diffaust conformance`, between the 64 and 512 of Faust's own
# architectures, so that a program reading `count` computes what it computes under Faust
# there (docs/SEMANTICS.md, "Block size").
DEFAULT_BLOCK_SIZE = 256


def check_block_size(block_size) -> int:
    """`block_size` as an int, or UsageError: a whole number of samples in 1 .. 2147483647."""
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, (int, np.integer)):
        raise UsageError(f"block_size must be a whole number of samples, got {block_size!r}")
    if not 1 <= block_size <= MAX_SAMPLE_RATE:
        raise UsageError(f"block_size must be between 1 and {MAX_SAMPLE_RATE} samples, got {block_size}")
    return int(block_size)


def _check_sample_rate(sample_rate) -> int:
    """`sample_rate` as an int, or UsageError: a whole number of Hz in 1 .. 2147483647
    (what init()'s C int holds; a float such as 48000.0 is accepted)."""
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise UsageError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    if isinstance(sample_rate, (float, np.floating)) and not (np.isfinite(sample_rate) and float(sample_rate).is_integer()):
        raise UsageError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    sr = int(sample_rate)
    if not 1 <= sr <= MAX_SAMPLE_RATE:
        raise UsageError(f"sample_rate must be between 1 and {MAX_SAMPLE_RATE} Hz, got {sr}")
    return sr


def _check_n(n) -> Optional[int]:
    """A number of samples: None, or an int in 0 .. 2147483647 (compute()'s C int count)."""
    if n is None:
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise UsageError(f"n must be a whole number of samples, got {n!r}")
    if not 0 <= n <= MAX_SAMPLE_RATE:
        raise UsageError(f"n must be between 0 and {MAX_SAMPLE_RATE} samples, got {n}")
    return int(n)


def _read_source(source_or_path) -> tuple[str, str]:
    s = os.fspath(source_or_path) if isinstance(source_or_path, os.PathLike) else source_or_path
    if not isinstance(s, str):
        raise UsageError("compile() takes Faust source text or a path to a .dsp file")
    _check_text(s)
    looks_like_path = "\n" not in s and ";" not in s and (s.endswith(".dsp") or os.sep in s)
    if os.path.isfile(s) or looks_like_path:
        if not os.path.isfile(s):
            raise UsageError(f"no such file: {s}")
        try:
            with open(s, encoding="utf-8", errors="replace") as f:
                return f.read(), s
        except OSError as e:
            raise UsageError(f"cannot read {s}: {e.strerror}") from None
    return s, "<string>"


def compile(source_or_path, *, double: bool = False, diff: bool = False, sample_rate: int = 44100,
            import_dirs=(), trace: bool = False, use_cache: bool = True, bundled_only: bool = False,
            nondiff=(), allow_native: bool = False, varying=(), block_size: int = DEFAULT_BLOCK_SIZE) -> Dsp:
    """Compile Faust source text or a .dsp file to a runnable `Dsp`.

    double: float64 samples and arithmetic (default float32, like Faust).
    diff: differentiate with respect to the `[diff:1]` widgets (forward mode); `render`
          then returns the derivative channels, `render_jvp` both.
    sample_rate: Hz, what `ma.SR` sees.
    trace: keep the differentiation trace in `dsp.trace` (bypasses the cache).
    nondiff: C names of ffunctions declared constant for differentiation (derivative 0;
          ``--nondiff NAME``); each must be called by the program.  Used by diff=True and by
          reverse mode (`vjp`).
    allow_native: allow an ffunction whose C/C++ header is not one of an installed Faust's
          own: it is compiled with the system C++ compiler and loaded into this process.
    use_cache: read and write the on-disk caches (also off with DIFFAUST_NO_CACHE=1).
    varying: widget paths given per sample: each becomes an extra input after the program's
          own (what `render(..., params={name: ndarray})` compiles; see `Dsp.render`).
    block_size: samples per compute() call of a render (`Dsp.block_size`, default 256: see
          docs/SEMANTICS.md, "Block size"); not part of the compiled code.
    """
    block_size = check_block_size(block_size)
    source, filename = _read_source(source_or_path)
    dsp = compile_source(source, filename, double=double, diff=diff, sample_rate=sample_rate,
                         import_dirs=import_dirs, trace=trace, use_cache=use_cache, bundled_only=bundled_only,
                         nondiff=nondiff, allow_native=allow_native, varying=varying)
    dsp.block_size = block_size
    return dsp


def compile_source(source: str, filename: str, *, double: bool = False, diff: bool = False,
                   sample_rate: int = 44100, import_dirs=(), trace: bool = False, use_cache: bool = True,
                   bundled_only: bool = False, nondiff=(), allow_native: bool = False, varying=()) -> Dsp:
    """`compile` of source text read from `filename` ('<string>' for text given directly)."""
    sample_rate = _check_sample_rate(sample_rate)
    if isinstance(nondiff, str):
        nondiff = (nondiff,)
    # sorted and without repeats: the same declaration gives the same cache entry
    nondiff = tuple(sorted(set(nondiff)))  # also for a primal Dsp: its reverse mode (vjp) reads it
    import_dirs = tuple(os.fspath(d) for d in import_dirs)
    use_cache = cache.enabled(use_cache) and not trace
    varying = tuple(varying)
    opts = CompileOptions(double=double, diff=diff, import_dirs=import_dirs, bundled_only=bundled_only,
                          trace=trace, nondiff=nondiff, allow_native=bool(allow_native), use_cache=use_cache,
                          varying=varying)
    from ..codegen.llvm import jit

    # the key: everything given to the compiler (-I folders as absolute paths); what it
    # finds on disk is checked when an entry is loaded (cache.load)
    key = cache.make_key(source, filename, (double, diff, tuple(os.path.abspath(d) for d in import_dirs),
                                            bundled_only, os.environ.get("FAUST_LIB_PATH", ""), nondiff,
                                            bool(allow_native)) + ((varying,) if varying else ()))
    if use_cache:
        entry = cache.load(key)
        if entry is not None:
            addrs = _load_entry(entry)
            if addrs is not None:
                _warn(entry.meta["warnings"])
                return Dsp(entry.meta, addrs[0], addrs[1], source, filename, opts, sample_rate)
    st = run_pipeline(source, filename, opts)
    _warn(st.warnings)
    meta = _metadata(st)
    meta["warnings"] = list(st.warnings)
    from ..codegen.llvm import build_module

    sym = _reserve_symbol("dsp_" + key)
    meta["sym"] = sym
    mod = build_module(st.program, sym)
    obj, _ = jit().emit_object(str(mod))
    addrs = jit().load(obj, sym)
    if addrs is None or not all(addrs):
        raise DiffaustError(f"internal error: the compiled program {sym} could not be loaded")
    if use_cache:
        for p in st.files:  # sound files and headers: the library search noted its own
            st.deps.note_file(p)
        libs = [(p, cache.sha256(data)) for p in st.foreign_libs
                for data in [cache.read_private(p)] if data is not None]
        # a file that changed while compiling: this result is right for neither version
        if st.deps.unchanged() and len(libs) == len(st.foreign_libs):
            cache.store(key, meta, obj, st.deps.to_json(), libs)
    return Dsp(meta, addrs[0], addrs[1], source, filename, opts, sample_rate, "\n".join(st.trace))


_REVERSE_LOCK = threading.Lock()
_VARIANT_LOCK = threading.Lock()

# JIT symbol names handed out in this process: a name is used by one object only
_SYMBOLS: set = set()
_SYMBOLS_LOCK = threading.Lock()


def _reserve_symbol(base: str) -> str:
    """A symbol name no object loaded or being compiled in this process uses (the same
    program compiled again after its files changed, or by two threads at once)."""
    from ..codegen.llvm import jit

    with _SYMBOLS_LOCK:
        sym, k = base, 0
        while sym in _SYMBOLS or jit().is_loaded(sym):
            k += 1
            sym = f"{base}_{k}"
        _SYMBOLS.add(sym)
        return sym


def _load_entry(entry) -> Optional[tuple]:
    """Load a cached entry's shared libraries and object: (init, compute) addresses, or None
    (a miss) when its symbol is taken by another object in this process or not found."""
    from ..codegen.foreign_c import load_library
    from ..codegen.llvm import jit

    sym = entry.meta["sym"]
    with _SYMBOLS_LOCK:
        if sym in _SYMBOLS and not jit().is_loaded(sym):
            return None  # being compiled by another thread under this name
        _SYMBOLS.add(sym)
        for path, _digest in entry.libraries:  # checked by cache.load: in the cache's folder, same content
            load_library(path)
        addrs = jit().load(entry.obj, sym)
    if addrs is None or not all(addrs):
        return None
    return addrs


def _warn(messages) -> None:
    """Warn, attributed to the first caller outside diffaust (compile's caller)."""
    import sys
    import warnings

    from ..errors import DiffaustWarning

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, f = 1, sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(here + os.sep):
        level, f = level + 1, f.f_back
    for m in messages:
        warnings.warn(m, DiffaustWarning, stacklevel=level)


def _metadata(st) -> dict:
    from ..codegen.llvm import layout

    prog = st.program
    lay, size = layout(prog)
    params = []
    diff_set = {v.attr for v in st.diff_params}
    for slot, c in prog.params:
        params.append({"path": c.path, "label": c.label, "kind": c.kind, "init": c.init, "min": c.min,
                       "max": c.max, "step": c.step, "meta": list(c.meta), "diff": c.is_diff,
                       "offset": lay[slot][0]})
    diff_indices = [i for i, (slot, c) in enumerate(prog.params) if c in diff_set]
    names = []
    for o in range(len(st.outputs)):
        for v in st.diff_params:
            names.append(f"d out{o}/d {v.attr.label}")
    from ..signals.nodes import walk

    # the output depends on the block size only through `count` (fvariable(int count)):
    # controls are constant during a compute() call and between calls of one render
    block_dependent = any(s.op == "fvar" for s in walk(st.signals))
    return {"inputs": st.inputs, "outputs": prog.outputs, "primal_outputs": len(st.outputs),
            "block_dependent": block_dependent, "loop_statements": len(prog.sample) + len(prog.post),
            "params": params, "diff_indices": diff_indices, "derivative_names": names,
            "state_size": size, "metadata": [list(kv) for kv in st.metadata], "name": st.name}
