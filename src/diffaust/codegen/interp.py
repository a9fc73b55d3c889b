"""interp: a plain Python interpreter of the scheduled program — slow and obviously correct.

Used by the tests to cross-check the LLVM backend.  Arithmetic is done on
NumPy scalars of the program's precision (float32 or float64) and int32,
with the same conversions and primitive semantics the LLVM lowering uses.

    run(program, x, n, params, sample_rate) -> ndarray (outputs, n)
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from ..errors import DiffaustError
from ..primitives.table import PRIMITIVES, missing_rule
from .schedule import (
    Accumulate, Call, Cast, Const, Fill, If, Input, Let, LineCommit, LineRead, LineWrite, Load, LoadAt, Op,
    Output, Program, Store, StoreAt, Var,
)

I32 = np.int32


_CTYPES = {np.dtype(I32): ctypes.c_int, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}


def _wrap(v) -> np.int32:
    v = int(v) & 0xFFFFFFFF
    return I32(v - (1 << 32) if v & 0x80000000 else v)


# the generic binop rule: Python semantics of the LLVM instructions a `code` names
_INT_OPS = {
    "add": lambda x, y: _wrap(x + y),
    "sub": lambda x, y: _wrap(x - y),
    "mul": lambda x, y: _wrap(x * y),
    "srem": lambda x, y: I32(0) if y in (0, -1) else _wrap(int(math.fmod(x, y))),
    "and": lambda x, y: _wrap(x & y),
    "or": lambda x, y: _wrap(x | y),
    "xor": lambda x, y: _wrap(x ^ y),
    "shl": lambda x, y: _wrap(x << (y & 31)),
    "ashr": lambda x, y: _wrap(x >> (y & 31)),
}
_REAL_OPS = {
    "fadd": lambda R, x, y: R(x + y),
    "fsub": lambda R, x, y: R(x - y),
    "fmul": lambda R, x, y: R(x * y),
    "fdiv": lambda R, x, y: R(R(x) / R(y)),
    "frem": lambda R, x, y: R(np.fmod(R(x), R(y))),
}


class _Machine:
    def __init__(self, prog: Program, sample_rate: int):
        self.prog = prog
        self.R = np.float64 if prog.real == "double" else np.float32
        self.mem: dict = {}
        for s in prog.slots:
            dt = I32 if s.nature == "int" else np.float64 if s.nature == "double" else self.R
            self.mem[s.name] = np.zeros(s.size, dtype=dt)
            if s.init is not None:
                self.mem[s.name][:] = s.init
        self.mem["fSamplingFreq"][0] = sample_rate
        self.lines = {line.name: line for line in prog.lines.values()}
        self.calls: dict = {}

    # -- expressions
    def ev(self, e, env):
        t = type(e)
        if t is Const:
            return I32(e.value) if e.nature == "int" else self.R(e.value)
        if t is Var:
            return env[e.name]
        if t is Load:
            return self.mem[e.slot][0]
        if t is LoadAt:
            return self.mem[e.slot][int(self.ev(e.index, env))]
        if t is Input:
            i = env["i"] + (e.back if self.prog.reversed_io else -e.back)  # history before the buffer: 0
            x = env["x"][e.index]
            return self.R(x[i]) if 0 <= i < len(x) else self.R(0)
        if t is Cast:
            v = self.ev(e.expr, env)
            return self.R(v) if e.nature == "real" else self.to_int(v)
        if t is Op:
            return self.op(e, [self.ev(a, env) for a in e.args])
        if t is LineRead:
            line = self.lines[e.line]
            buf = self.mem[e.line]
            if line.is_scalar:
                return buf[0]
            d = int(self.ev(e.delay, env))
            return buf[(int(self.mem[line.iota][0]) - d) & line.mask]
        if t is Call:
            args = [self.ev(a, env) for a in e.args]
            if e.single:  # a C function of floats in a double program: C's conversions
                args = [np.float32(a) if a.dtype.kind == "f" else a for a in args]
            r = self.foreign(e, args)(*(a.item() for a in args))
            return I32(r) if e.nature == "int" else self.R(r)
        raise DiffaustError(f"interp: cannot evaluate {t.__name__}")

    def foreign(self, e, args):
        """The C function a Call links (libm's, or a header function's shim), through ctypes
        with the argument and result types the compiled code uses."""
        sym = e.symbol or e.fname
        key = (sym, tuple(a.dtype for a in args), e.nature)
        fn = self.calls.get(key)
        if fn is None:
            ctype = _CTYPES
            try:
                fn = getattr(ctypes.CDLL(None), sym)
            except AttributeError:
                raise DiffaustError(f"interp: unknown foreign function {e.fname}") from None
            fn.argtypes = [ctype[a.dtype] for a in args]
            fn.restype = ctypes.c_int if e.nature == "int" else \
                ctypes.c_float if e.single else ctype[np.dtype(self.R)]
            self.calls[key] = fn
        return fn

    def to_int(self, v) -> np.int32:
        f = float(v)
        if math.isnan(f) or f >= 2**31 or f < -(2**31):
            return I32(-(2**31))  # x86 semantics of (int)x
        return I32(int(f))

    def op(self, e: Op, a):
        """A primitive: its entry's interp hook, else the generic rule of its `code`."""
        p = PRIMITIVES[e.name]
        code = p.code
        kind = code[0]
        R = self.R
        with np.errstate(all="ignore"):
            if p.interp is not None:
                return p.interp(self, e, a)
            if kind == "binop":
                x, y = a
                if code[1] is not None and all(isinstance(v, np.int32) for v in a):
                    return _INT_OPS[code[1]](int(x), int(y))
                if code[2] is None:
                    raise DiffaustError(f"interp: {e.name} on reals")
                return _REAL_OPS[code[2]](R, x, y)
            if kind == "cmp":
                return I32(code[3](*a))
            if kind in ("libm", "intrinsic") and p.ufunc is not None:
                return R(p.ufunc(*[R(v) for v in a]))
        raise missing_rule(p, "interp evaluation")

    # -- statements
    def run(self, stmts, env):
        for st in stmts:
            t = type(st)
            if t is Let:
                env[st.var.name] = self.ev(st.expr, env)
            elif t is Store:
                self.mem[st.slot][0] = self.ev(st.expr, env)
            elif t is Accumulate:
                self.mem[st.slot][0] += np.float64(self.ev(st.expr, env))
            elif t is StoreAt:
                idx = int(self.ev(st.index, env))
                self.mem[st.slot][idx] = self.ev(st.expr, env)
            elif t is LineWrite:
                line = self.lines[st.line]
                if not line.is_scalar:
                    self.mem[st.line][int(self.mem[line.iota][0]) & line.mask] = self.ev(st.expr, env)
            elif t is LineCommit:
                if self.lines[st.line].is_scalar:
                    self.mem[st.line][0] = self.ev(st.expr, env)
            elif t is Output:
                env["y"][st.index][env["i"]] = self.ev(st.expr, env)
            elif t is If:
                if self.ev(st.cond, env):
                    self.run(st.body, env)
            elif t is Fill:
                for name in st.clear:
                    self.mem[name][:] = 0
                sub = dict(env)
                for i in range(st.size):
                    sub["i"] = i
                    self.run(st.sample, sub)
                    self.mem[st.slot][i] = self.ev(st.value, sub)
                    self.run(st.post, sub)
            else:
                raise DiffaustError(f"interp: cannot run {t.__name__}")


def run(prog: Program, x=None, n: int = 0, params: dict | None = None, sample_rate: int = 44100) -> np.ndarray:
    """Interpret `prog` for n samples; params maps parameter slot index → value (default init)."""
    m = _Machine(prog, sample_rate)
    for k, (slot, c) in enumerate(prog.params):
        m.mem[slot][0] = c.init
        if params and k in params:
            m.mem[slot][0] = params[k]
    m.run(prog.init, {})
    R = m.R
    if x is None:
        x = np.zeros((prog.inputs, n))
    x = np.asarray(x, dtype=R)
    if prog.reversed_io:
        x = x[:, ::-1]
    y = np.zeros((prog.outputs, n), dtype=R)
    env = {"x": x, "y": y, "count": I32(n)}
    m.run(prog.block, env)
    for i in range(n):
        env["i"] = i
        m.run(prog.sample, env)
        m.run(prog.post, env)
    return y[:, ::-1] if prog.reversed_io else y
