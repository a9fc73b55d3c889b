"""Dsp: a compiled Faust program you can render, differentiate and train.

    dsp = diffaust.compile("process = _ * hslider('gain [diff:1]', .5, 0, 1, .01);", diff=True)
    y, dy = dsp.render_jvp(x)          # x: (inputs, n); y: (outputs, n); dy: (outputs, params, n)

Audio arrays are NumPy `(channels, samples)`, float32 (float64 with double=True).
Parameters are addressed by label (`gain`) or full path (`/dsp/gain`).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import UsageError
from . import cache
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
    """

    def __init__(self, meta: dict, init_addr: int, compute_addr: int, source: str, filename: str,
                 options: CompileOptions, sample_rate: int, trace: str = ""):
        self._meta = meta
        self._init = _INIT(init_addr)
        self._compute = _COMPUTE(compute_addr)
        self.source = source
        self.filename = filename
        self.options = options
        self.sample_rate = int(sample_rate)
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

    # ------------------------------------------------------------ parameters
    def param_index(self, name) -> int:
        """Index of a parameter given by index, label, path, path suffix, or path as Faust's
        MapUI spells it (spaces and ( ) [ ] { } # * , ? as '_')."""
        if isinstance(name, (int, np.integer)):
            if 0 <= name < len(self.params):
                return int(name)
            raise UsageError(f"no parameter #{name} (the program has {len(self.params)})")
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
        if params:
            for k, v in params.items():
                inst.set_param(k, v)
        return inst

    def render(self, x=None, n: Optional[int] = None, params: Optional[dict] = None) -> np.ndarray:
        """Run from a fresh state.  x: (inputs, n) or None (zeros); returns (outputs, n).

        With diff=True the channels are the derivatives, in `derivative_names` order.
        """
        y = self.instance(params).compute(x, n)
        if self.diff:
            return y[self.primal_outputs:]
        return y

    def render_jvp(self, x=None, n: Optional[int] = None, params: Optional[dict] = None):
        """Primal outputs and derivatives: y (primal_outputs, n), dy (primal_outputs, n_diff, n)."""
        if not self.diff:
            raise UsageError("render_jvp needs a program compiled with diff=True")
        y = self.instance(params).compute(x, n)
        p = self.primal_outputs
        k = len(self.diff_params)
        return y[:p], y[p:].reshape(p, k, y.shape[-1])

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

    def set_param(self, name, value: float):
        self._pvals[self.dsp.param_index(name)].value = float(value)

    def get_param(self, name) -> float:
        return float(self._pvals[self.dsp.param_index(name)].value)

    def compute(self, x=None, n: Optional[int] = None) -> np.ndarray:
        """Run n samples; returns every output channel (for a diff Dsp: primal outputs, then derivatives)."""
        dt = self.dsp.dtype
        if x is not None:
            x = np.asarray(x)
            if x.ndim == 1:
                x = x[None, :]
            if x.shape[0] != self._nin:
                raise UsageError(f"input has {x.shape[0]} channels, the program has {self._nin} inputs")
            if n is None:
                n = x.shape[1]
            elif x.shape[1] < n:
                raise UsageError(f"input has {x.shape[1]} samples, {n} asked")
            x = np.ascontiguousarray(x[:, :n], dtype=dt)
        else:
            if n is None:
                raise UsageError("give an input x or a number of samples n")
            x = np.zeros((self._nin, n), dtype=dt)
        y = np.zeros((self._nout, n), dtype=dt)
        ip = (ctypes.c_void_p * max(self._nin, 1))(*[x[i].ctypes.data for i in range(self._nin)])
        op = (ctypes.c_void_p * max(self._nout, 1))(*[y[i].ctypes.data for i in range(self._nout)])
        if n > 0:
            self.dsp._compute(self._addr, n, ip, op)
        return y

    def step(self, inputs=()) -> list:
        """One sample: inputs is a sequence of `inputs` floats; returns every output channel."""
        for b, v in zip(self._in1, inputs):
            b[0] = v
        self.dsp._compute(self._addr, 1, self._in1p, self._out1p)
        return [b[0] for b in self._out1]


# ---------------------------------------------------------------- compile


def _read_source(source_or_path) -> tuple[str, str]:
    s = os.fspath(source_or_path) if isinstance(source_or_path, os.PathLike) else source_or_path
    if not isinstance(s, str):
        raise UsageError("compile() takes Faust source text or a path to a .dsp file")
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
            nondiff=()) -> Dsp:
    """Compile Faust source text or a .dsp file to a runnable `Dsp`.

    double: float64 samples and arithmetic (default float32, like Faust).
    diff: differentiate with respect to the `[diff:1]` widgets (forward mode); `render`
          then returns the derivative channels, `render_jvp` both.
    sample_rate: Hz, what `ma.SR` sees.
    trace: keep the differentiation trace in `dsp.trace` (bypasses the cache).
    nondiff: C names of ffunctions declared constant for differentiation (derivative 0;
          ``--nondiff NAME``); each must be called by the program.  Only used with diff=True.
    """
    source, filename = _read_source(source_or_path)
    if isinstance(nondiff, str):
        nondiff = (nondiff,)
    # sorted and without repeats: the same declaration gives the same cache entry
    nondiff = tuple(sorted(set(nondiff))) if diff else ()
    opts = CompileOptions(double=double, diff=diff, import_dirs=tuple(import_dirs), bundled_only=bundled_only,
                          trace=trace, nondiff=nondiff)
    from ..codegen.llvm import jit

    key = cache.make_key(source, filename, (double, diff, tuple(import_dirs), bundled_only,
                                            os.environ.get("FAUST_LIB_PATH", ""), nondiff))
    if use_cache and not trace:
        hit = cache.load(key)
        if hit is not None:
            meta, obj = hit
            addrs = jit().load(obj, meta["sym"]) if "sym" in meta and _load_foreign(meta) else None
            if addrs is not None:
                _warn(meta.get("warnings", ()))
                return Dsp(meta, addrs[0], addrs[1], source, filename, opts, sample_rate)
    st = run_pipeline(source, filename, opts)
    _warn(st.warnings)
    meta = _metadata(st)
    meta["warnings"] = list(st.warnings)
    meta["foreign_libs"] = list(st.foreign_libs)
    from ..codegen.llvm import build_module

    sym = "dsp_" + key
    k = 0
    while jit().is_loaded(sym):  # the same source compiled again in this process (files changed)
        k += 1
        sym = f"dsp_{key}_{k}"
    meta["sym"] = sym
    mod = build_module(st.program, sym)
    obj, _ = jit().emit_object(str(mod))
    init_a, comp_a = jit().load(obj, sym)
    if use_cache and not trace:
        meta_files = [cache.file_stamp(os.path.abspath(p)) for p in st.files]
        if not filename.startswith("<"):
            meta_files.append(cache.file_stamp(os.path.abspath(filename)))
        meta["files"] = meta_files
        cache.store(key, meta, obj)
    return Dsp(meta, init_a, comp_a, source, filename, opts, sample_rate, "\n".join(st.trace))


def _load_foreign(meta: dict) -> bool:
    """Load the header-function shims a cached object links against; False if one is gone."""
    from ..codegen.foreign_c import load_library

    libs = meta.get("foreign_libs", ())
    if not all(os.path.exists(p) for p in libs):
        return False
    for p in libs:
        load_library(p)
    return True


def _warn(messages) -> None:
    import warnings

    from ..errors import DiffaustWarning

    for m in messages:
        warnings.warn(m, DiffaustWarning, stacklevel=3)


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
    return {"inputs": st.inputs, "outputs": prog.outputs, "primal_outputs": len(st.outputs),
            "params": params, "diff_indices": diff_indices, "derivative_names": names,
            "state_size": size, "metadata": [list(kv) for kv in st.metadata], "name": st.name}
