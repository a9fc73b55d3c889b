"""Native reductions for the training step, compiled once per process by the LLVM JIT.

A block-mode step spends, besides the render, two passes over the block:

    sqdiff:  d[i] = y[i] − t[i];  S = Σᵢ d[i]²;  g[i] = scale·d[i]      (mse: scale = 2/N)
    pgrad:   out[p] = Σᵢ g[i]·dy[p, i]   for p < P                      (dL/dp = Σₙ dL/dy·dy/dp)

and the batch layers check the cotangents they are given with

    nonfinite:  1 if the exponent bits of some a[i] are all ones (NaN or ±Inf), else 0
                (an integer loop, or-reduced: vectorized)

NumPy makes each of them several passes with temporaries (or a BLAS call, whose threads
wait on each other on a busy machine); here each is one vectorized loop (sums
reassociated: `fast` flags on the reduction, so the order of the additions differs from
NumPy's pairwise sum by rounding only).  ``y`` and ``dy`` are float32 or float64
(converted to double as they are read); ``t``, ``g`` and the sums are float64.  Arrays
must be C-contiguous; callers fall back to NumPy otherwise.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

_LOCK = threading.Lock()
_FUNCS: dict = {}

_SQDIFF = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_double,
                           ctypes.c_void_p)
_PGRAD = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_NONFINITE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)


def _ir(real: str) -> str:
    single = real == "float"
    # float: read and widen (fpext); double: the loaded value itself
    ext = "%yd = fpext float %yv to double" if single else ""
    ext_dy = "%dd = fpext float %dv to double" if single else ""
    yd, dd = ("%yd", "%dd") if single else ("%yv", "%dv")
    tag = "4" if single else "8"
    # nonfinite: a float is NaN or ±Inf iff its exponent bits are all ones
    bits, expo = ("i32", "2139095040") if single else ("i64", "9218868437227405312")
    widen, ret = ("%r64 = zext i32 %r to i64", "%r64") if single else ("", "%r")
    return f"""
define i64 @diffaust_nonfinite_{tag}(ptr noalias %a, i64 %n) {{
entry:
  %any = icmp sgt i64 %n, 0
  br i1 %any, label %loop, label %done
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %s = phi {bits} [0, %entry], [%s1, %loop]
  %ap = getelementptr {bits}, ptr %a, i64 %i
  %av = load {bits}, ptr %ap
  %e = and {bits} %av, {expo}
  %c = icmp eq {bits} %e, {expo}
  %z = zext i1 %c to {bits}
  %s1 = or {bits} %s, %z
  %i1 = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  %r = phi {bits} [0, %entry], [%s1, %loop]
  {widen}
  ret i64 {ret}
}}

define double @diffaust_sqdiff_{tag}(ptr noalias %y, ptr noalias %t, i64 %n, double %scale, ptr noalias %g) {{
entry:
  %any = icmp sgt i64 %n, 0
  br i1 %any, label %loop, label %done
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %s = phi double [0.0, %entry], [%s1, %loop]
  %yp = getelementptr {real}, ptr %y, i64 %i
  %yv = load {real}, ptr %yp
  {ext}
  %tp = getelementptr double, ptr %t, i64 %i
  %tv = load double, ptr %tp
  %d = fsub double {yd}, %tv
  %dd = fmul double %d, %d
  %s1 = fadd fast double %s, %dd
  %gv = fmul double %d, %scale
  %gp = getelementptr double, ptr %g, i64 %i
  store double %gv, ptr %gp
  %i1 = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  %r = phi double [0.0, %entry], [%s1, %loop]
  ret double %r
}}

define void @diffaust_pgrad_{tag}(ptr noalias %g, ptr noalias %dy, i64 %n, i64 %np, ptr noalias %out) {{
entry:
  %anyp = icmp sgt i64 %np, 0
  br i1 %anyp, label %outer, label %exit
outer:
  %p = phi i64 [0, %entry], [%p1, %store]
  %base = mul i64 %p, %n
  %anyn = icmp sgt i64 %n, 0
  br i1 %anyn, label %inner, label %store
inner:
  %i = phi i64 [0, %outer], [%i1, %inner]
  %s = phi double [0.0, %outer], [%s1, %inner]
  %gp = getelementptr double, ptr %g, i64 %i
  %gv = load double, ptr %gp
  %k = add i64 %base, %i
  %dp = getelementptr {real}, ptr %dy, i64 %k
  %dv = load {real}, ptr %dp
  {ext_dy}
  %m = fmul double %gv, {dd}
  %s1 = fadd fast double %s, %m
  %i1 = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %inner, label %store
store:
  %sum = phi double [0.0, %outer], [%s1, %inner]
  %op = getelementptr double, ptr %out, i64 %p
  store double %sum, ptr %op
  %p1 = add nuw nsw i64 %p, 1
  %morep = icmp slt i64 %p1, %np
  br i1 %morep, label %outer, label %exit
exit:
  ret void
}}
"""


def _funcs(dtype) -> tuple:
    """(sqdiff, pgrad, nonfinite) ctypes functions for y/dy of ``dtype`` (float32 or float64)."""
    key = np.dtype(dtype).itemsize
    with _LOCK:
        f = _FUNCS.get(key)
    if f is not None:
        return f
    from ..codegen.llvm import jit

    real = "float" if key == 4 else "double"
    j = jit()
    import llvmlite.binding as llvm

    text = f'target triple = "{llvm.get_process_triple()}"\n' + _ir(real)
    obj, _ = j.emit_object(text)
    with j.lock:
        j.engine.add_object_file(j.llvm.ObjectFileRef.from_data(obj))
        j.engine.finalize_object()
        f = (_SQDIFF(j.engine.get_function_address(f"diffaust_sqdiff_{key}")),
             _PGRAD(j.engine.get_function_address(f"diffaust_pgrad_{key}")),
             _NONFINITE(j.engine.get_function_address(f"diffaust_nonfinite_{key}")))
    with _LOCK:
        _FUNCS.setdefault(key, f)
        return _FUNCS[key]


def _native(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous


def sqdiff(y: np.ndarray, t: np.ndarray, scale: float, g: np.ndarray) -> float:
    """S = Σ (y − t)² over all entries, and g ← scale·(y − t) (same shape as y, float64).
    ``y`` float32/float64, ``t`` and ``g`` float64, all C-contiguous of one size."""
    if not (_native(y) and _native(t) and t.dtype == np.float64 and _native(g) and g.dtype == np.float64
            and y.size == t.size == g.size):
        d = np.asarray(y, dtype=np.float64) - t
        np.multiply(d, scale, out=g.reshape(d.shape))
        return float(np.sum(d * d))
    f = _funcs(y.dtype)[0]
    return float(f(y.ctypes.data, t.ctypes.data, y.size, float(scale), g.ctypes.data))


def pgrad(g: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """out[p] = Σᵢ g[i]·dy[p, i]: ``g`` float64 (n,), ``dy`` float32/float64 (P, n); (P,) float64."""
    P, n = dy.shape
    out = np.empty(P)
    if not (_native(g) and g.dtype == np.float64 and g.size == n and _native(dy)):
        return np.einsum("pn,n->p", dy, g, dtype=np.float64, casting="unsafe") if P else out
    f = _funcs(dy.dtype)[1]
    f(g.ctypes.data, dy.ctypes.data, n, P, out.ctypes.data)
    return out


def all_finite(a) -> bool:
    """Whether every entry of ``a`` is finite (no NaN, no ±Inf): one native pass for a
    float32/float64 array contiguous in memory (a batch's cotangents, checked on every
    backward pass), NumPy otherwise."""
    if isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and (
            a.flags.c_contiguous or a.flags.f_contiguous):
        return a.size == 0 or _funcs(a.dtype)[2](a.ctypes.data, a.size) == 0
    return bool(np.all(np.isfinite(a)))


def nonfinite_address(a) -> int:
    """The address of the native `nonfinite` for `a` (a native pool's check, runtime/pool.py:
    fn(a.ctypes.data, a.size) != 0 when some entry is NaN or ±Inf), or 0 where ``a`` is not a
    float32/float64 array contiguous in memory."""
    if isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and (
            a.flags.c_contiguous or a.flags.f_contiguous) and a.size:
        return ctypes.cast(_funcs(a.dtype)[2], ctypes.c_void_p).value
    return 0
