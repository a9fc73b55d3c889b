"""llvm: scheduled program → LLVM IR (llvmlite.ir) → native code through MCJIT.

Generated functions (C view, REAL = float or double):
  void <sym>_init(char* state, int sample_rate);
  void <sym>_compute(char* state, int count, REAL** inputs, REAL** outputs);

The state is one byte buffer laid out by `layout(prog)`; the runtime owns it
(a NumPy array) and zeroes it before `init`.  Scalar states are copied into
registers for the duration of `compute` (allocas promoted by mem2reg), arrays
(ring buffers, tables) stay in memory.  Every primitive lowers without
branches (selects), so a loop body is a single basic block.

One JIT engine per process; compiled objects are cached on disk by the runtime.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from typing import Optional

from llvmlite import ir

from ..errors import DiffaustError
from ..primitives.foreign import FOREIGN
from ..primitives.table import PRIMITIVES, libm_symbols, missing_rule
from ..signals.build import paused_gc
from .schedule import (
    Accumulate, Call, Cast, Const, Fill, If, Input, Let, LineCommit, LineRead, LineWrite, Load, LoadAt, Op,
    Output, Program, Store, StoreAt, Var,
)

I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8 = ir.IntType(8)
I1 = ir.IntType(1)
PTR = ir.PointerType()

X86_CVTT = True  # float -> int through x86's cvtt instructions (see _Lower.fptosi)
SHIFT_MAX = 16  # ring lines up to this size, read at constant delays only: registers (see shift_lines)
SHIFT_BUDGET = 32  # ... as long as they need no more registers than this in all
# A sample loop body of more than CHUNK_ABOVE expression nodes, or more than CHUNK_ABOVE_MEMORY
# memory accesses, is lowered in chunks of about CHUNK_SIZE nodes, one function each (see
# _Lower.chunks); None: never.  (Faust's examples have at most 29,229 and 2,275.)
CHUNK_ABOVE: Optional[int] = 40000
CHUNK_ABOVE_MEMORY = 3000
CHUNK_SIZE = 250
LINE_GROUPS = True  # interleave the ring buffers of a signal and its derivatives (see line_groups)


def layout(prog: Program, lanes: int = 1, uniform=frozenset()) -> tuple[dict, int]:
    """name → (byte offset, nature, size); and the total size in bytes.

    The ring buffers of a group of `line_groups` are interleaved: one array whose element k
    holds element k of each (a line's offset is that of its first element; its elements are
    `line_groups(prog)[name][1]` elements apart).

    lanes > 1 (codegen/lanes.py): every slot but those of `uniform` holds `lanes` copies,
    interleaved: element j of lane k at offset + (j·lanes + k)·width (in a line group, the
    element of each member holds its lanes)."""
    real_size = 8 if prog.real == "double" else 4
    off = 0
    table = {}
    groups = lane_line_groups(prog, uniform) if lanes > 1 else line_groups(prog)
    # parameters first, so their offsets do not move when other slots are added
    slots = sorted(prog.slots, key=lambda s: 0 if s.kind == "param" else 1)
    for s in slots:
        if s.name in table:
            continue
        width = 4 if s.nature == "int" else 8 if s.nature == "double" else real_size
        off = (off + 7) & ~7
        members = groups.get(s.name, (None, 1, [s.name]))[2]
        copies = 1 if s.name in uniform else lanes
        for lane, name in enumerate(members):
            table[name] = (off + lane * width * copies, s.nature, s.size)
        off += width * s.size * len(members) * copies
    return table, (off + 15) & ~15


def _nodes(root, seen: set):
    """Every node (dataclass) under ``root`` (nodes, lists, tuples) once, not those in
    ``seen`` (which it extends); iterative: expressions can be deeper than the recursion limit."""
    stack = [root]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
            continue
        fields = getattr(x, "__dataclass_fields__", None)
        if fields is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack.extend(getattr(x, f) for f in fields)


def line_groups(prog: Program) -> dict:
    """Ring buffers stored interleaved: name → (lane, stride, member names), for groups of
    two or more lines of the same size, element type and IOTA that are read at the same
    delays — a signal and its derivatives (the derivative of ``x@d`` is ``x'@d``).  They
    are written and read at the same index in every sample: interleaved, those accesses
    are neighbours in memory (one cache line where there were several, and loads and
    stores the vectorizer can pair up)."""
    cached = getattr(prog, "_line_groups", None)
    if cached is not None:
        return cached
    reads: dict = {}
    for x in _nodes([prog.init, prog.block, prog.sample, prog.post], set()):
        if isinstance(x, LineRead):
            reads.setdefault(x.line, set()).add(_delay_key(x.delay))
    by_key: dict = {}
    for line in prog.lines.values():
        if line.is_scalar or not LINE_GROUPS or line.name not in reads:
            continue
        key = (line.iota, line.size, line.nature, frozenset(reads[line.name]))
        by_key.setdefault(key, []).append(line.name)
    out = {}
    for members in by_key.values():
        if len(members) > 1:
            for lane, name in enumerate(members):
                out[name] = (lane, len(members), members)
    prog._line_groups = out
    return out


def lane_line_groups(prog: Program, uniform) -> dict:
    """`line_groups` for a program lowered with lanes: only groups whose lines are all
    uniform or all per-lane (a uniform line holds one copy, a per-lane line L)."""
    return {name: g for name, g in line_groups(prog).items()
            if len({m in uniform for m in g[2]}) == 1}


def _delay_key(e, depth: int = 0):
    """A delay expression as a key: equal for the same delay (a number, a variable, a slot,
    a small expression of them); past a few levels, the object itself (no deep recursion)."""
    t = type(e)
    if t is Const:
        return ("c", e.nature, e.value)
    if t is Var:
        return ("v", e.name)
    if t is Load:
        return ("l", e.slot)
    if depth < 6:
        if t is Cast:
            return ("cast", e.nature, _delay_key(e.expr, depth + 1))
        if t is Op:
            return ("op", e.name, e.nature) + tuple(_delay_key(a, depth + 1) for a in e.args)
    return ("id", id(e))


def _const_like(v, value):
    """A constant of v's type: a scalar, or the same value in every element of a vector."""
    t = v.type
    return ir.Constant(t, [value] * t.count) if isinstance(t, ir.VectorType) else ir.Constant(t, value)


def _cmp_pred(p: str) -> str:
    return p


_KIDS = {
    Const: lambda x: (), Var: lambda x: (), Load: lambda x: (), Input: lambda x: (),
    LoadAt: lambda x: (x.index,), Op: lambda x: x.args, Cast: lambda x: (x.expr,), Call: lambda x: x.args,
    LineRead: lambda x: (x.delay,), Let: lambda x: (x.expr,), Store: lambda x: (x.expr,),
    StoreAt: lambda x: (x.index, x.expr), LineWrite: lambda x: (x.expr,), LineCommit: lambda x: (x.expr,),
    Output: lambda x: (x.expr,), Accumulate: lambda x: (x.expr,),
}
_MEMORY = (Input, Output, Accumulate, Load, Store, LoadAt, StoreAt, LineRead, LineWrite, LineCommit)
# what a Let may be moved across (see _Lower._sink_lets); not an input, which an output of
# the same sample may overwrite when the host computes in place
_PURE = (Var, Const, Op, Cast, Load, LoadAt, LineRead)


def _children(x):
    """The expressions directly inside x (a statement's own variable excluded)."""
    kids = _KIDS.get(type(x))
    if kids is not None:
        return kids(x)
    out = []  # anything else: every dataclass instance in its fields
    for f in x.__dataclass_fields__:
        v = getattr(x, f)
        if isinstance(v, (list, tuple)):
            out.extend(a for a in v if hasattr(a, "__dataclass_fields__"))
        elif hasattr(v, "__dataclass_fields__"):
            out.append(v)
    return out


class _Scan:
    """What the chunking needs to know of a statement: expression nodes (each occurrence
    counted: what is lowered), memory accesses (inputs, outputs, slots, tables, delay
    lines), the variables it reads, the delay lines it reads, the slots it loads, and
    whether its expression has anything but _PURE nodes."""

    __slots__ = ("size", "memory", "names", "lines", "loads", "opaque")

    def __init__(self, stmt):
        size = memory = 0
        names, lines, loads, opaque = set(), set(), set(), False
        stack = list(_children(stmt))
        while stack:
            x = stack.pop()
            t = type(x)
            size += 1
            if t is Var:
                names.add(x.name)
                continue
            if t in _MEMORY:
                memory += 1
                if t is LineRead:
                    lines.add(x.line)
                elif t is Load or t is LoadAt:
                    loads.add(x.slot)
            if t not in _PURE:
                opaque = True
            stack.extend(_children(x))
        self.size, self.memory = size + 1, memory + (type(stmt) in _MEMORY)
        self.names, self.lines, self.loads, self.opaque = names, lines, loads, opaque


class _Pointers:
    """The channel pointers of `inputs` or `outputs` in a chunk function, each loaded from the
    array when first used (a chunk's body is one basic block)."""

    def __init__(self, b, array):
        self.b, self.array, self.loaded = b, array, {}

    def __getitem__(self, k):
        p = self.loaded.get(k)
        if p is None:
            b = self.b
            p = self.loaded[k] = b.load(b.gep(self.array, [ir.Constant(I64, k)], source_etype=PTR), typ=PTR)
        return p


class _ChunkEnv(dict):
    """A chunk function's environment: a variable of an earlier chunk (or of the block
    statements) is loaded from the scratch buffer where it is first read (the chunk's body is
    one basic block, so that load dominates every later read); loading them all on entry
    would keep them all live at once."""

    def __init__(self, lower, b, natures):
        super().__init__()
        self.lower, self.b, self.natures = lower, b, natures

    def __missing__(self, name):
        if not isinstance(name, str) or name not in self.get("cross", ()):
            raise KeyError(name)
        ty = self.lower.ty(self.natures[name])
        v = self[name] = self.b.load(self.lower.cross_ptr(self.b, self, name, ty), typ=ty)
        return v


class _Lower:
    io_lanes = 1  # channel pointers per input / output (codegen/lanes.py: one per lane)

    def __init__(self, prog: Program, module: ir.Module, sym: str):
        self.prog = prog
        self.m = module
        self.sym = sym
        self.real = ir.DoubleType() if prog.real == "double" else ir.FloatType()
        self.sfx = "" if prog.real == "double" else "f"
        self.layout, self.size = layout(prog)
        self.groups = line_groups(prog)
        self.funcs: dict = {}
        self.lines = {line.name: line for line in prog.lines.values()}
        self.x86 = (module.triple or "").startswith(("x86_64", "i386", "i686"))

    # -- helpers
    def ty(self, nature: str):
        return I32 if nature == "int" else ir.DoubleType() if nature == "double" else self.real

    def slot_ptr(self, b, state, name, index=None):
        off, nature, size = self.layout[name]
        p = b.gep(state, [ir.Constant(I64, off)], source_etype=I8)
        if index is not None:
            group = self.groups.get(name)
            if group is not None:  # an interleaved ring buffer: its elements are `stride` apart
                index = b.mul(index, ir.Constant(index.type, group[1]))
            p = b.gep(p, [index], source_etype=self.ty(nature))
        return p

    def fn(self, name: str, ret, args):
        f = self.funcs.get(name)
        if f is None:
            f = self.m.globals.get(name)
            if f is None:
                f = ir.Function(self.m, ir.FunctionType(ret, args), name=name)
            self.funcs[name] = f
        return f

    def intrinsic(self, base: str, ty):
        tname = "f64" if ty == ir.DoubleType() else ("f32" if ty == ir.FloatType() else "i32")
        return self.fn(f"llvm.{base}.{tname}", ty, [ty])

    def nature(self, e) -> str:
        if isinstance(e, Input):
            return "real"
        return e.nature

    # -- expressions
    def expr(self, b, e, env):
        t = type(e)
        if t is Const:
            return ir.Constant(self.ty(e.nature), e.value if e.nature == "real" else int(e.value))
        if t is Var:
            return env[e.name]
        if t is Load:
            a = env.get("alloca:" + e.slot)
            if a is not None:
                return b.load(a, typ=self.state_ty(e.slot))
            v = env.get("slot:" + e.slot)
            return v if v is not None else self.load_slot(b, e.slot, env)
        if t is LoadAt:
            idx = self.expr(b, e.index, env)
            return b.load(self.slot_ptr(b, env["state"], e.slot, idx), typ=self.ty(e.nature))
        if t is Input:
            i = self.io_index(b, env)
            if e.back:
                i = b.sub(i, ir.Constant(I32, e.back))
            p = b.gep(env["in"][e.index], [i], source_etype=self.real)
            return b.load(p, typ=self.real)
        if t is Cast:
            v = self.expr(b, e.expr, env)
            if e.nature == "real":
                return b.sitofp(v, self.real)
            return self.fptosi(b, v)
        if t is Op:
            return self.op(b, e, env)
        if t is Call:
            return self.call_values(b, e, [self.expr(b, a, env) for a in e.args])
        if t is LineRead:
            return self.line_read(b, e, env)
        raise DiffaustError(f"llvm backend: cannot lower {t.__name__}")

    def call_values(self, b, e: Call, args):
        """A foreign call on lowered arguments."""
        if e.single:  # a C function of floats in a double program: C's conversions
            f32 = ir.FloatType()
            args = [b.fptrunc(a, f32) if a.type == self.real else a for a in args]
            ret = f32 if e.nature == "real" else self.ty(e.nature)
            r = b.call(self.fn(e.symbol or e.fname, ret, [a.type for a in args]), args)
            return b.fpext(r, self.real) if e.nature == "real" else r
        f = self.fn(e.symbol or e.fname, self.ty(e.nature), [a.type for a in args])
        return b.call(f, args)

    def scalar_ptr(self, b, env, name):
        """Where a scalar state lives during compute: its alloca (a register), or, in a
        program lowered in chunks (see `chunks`), its slot in the state."""
        a = env.get("alloca:" + name)
        return a if a is not None else self.slot_ptr(b, env["state"], name)

    def load_slot(self, b, name, env):
        return self.ld(b, self.slot_ptr(b, env["state"], name), self.state_ty(name))

    def state_ty(self, name):
        """The type of a slot's value as compute holds it (codegen/lanes.py: a vector)."""
        return self.ty(self.layout[name][1])

    def ld(self, b, p, ty):
        return b.load(p, typ=ty)

    def as_state(self, b, v, name):
        """v as slot `name` holds it (codegen/lanes.py: a uniform value copied to every lane)."""
        return v

    def st(self, b, v, p):
        b.store(v, p)

    def fptosi(self, b, v):
        # C's (int)x on x86: truncation; NaN and out-of-range values give INT_MIN
        if self.x86 and X86_CVTT:
            # x86's own truncating conversion (cvttss2si / cvttsd2si) has exactly that result,
            # in one instruction instead of fptosi (poison out of range) + range test + select
            vty = ir.VectorType(self.real, 4 if self.real == ir.FloatType() else 2)
            name = "llvm.x86.sse.cvttss2si" if self.real == ir.FloatType() else "llvm.x86.sse2.cvttsd2si"
            vec = b.insert_element(ir.Constant(vty, None), v, ir.Constant(I32, 0))
            return b.call(self.fn(name, I32, [vty]), [vec])
        lo = ir.Constant(self.real, -2147483648.0)
        hi = ir.Constant(self.real, 2147483648.0)
        ok = b.and_(b.fcmp_ordered(">=", v, lo), b.fcmp_ordered("<", v, hi))
        return b.select(ok, b.fptosi(v, I32), ir.Constant(I32, -(2**31)))

    def int_const(self, v: int):
        return ir.Constant(I32, v)

    def real_const(self, v: float):
        return ir.Constant(self.real, v)

    def op(self, b, e: Op, env):
        """A primitive: its entry's llvm hook, else the generic rule of its `code`."""
        args = [self.expr(b, a, env) for a in e.args]
        return self.op_values(b, e, args, [self.nature(a) for a in e.args])

    def op_values(self, b, e: Op, args, nats):
        """Primitive e on lowered arguments `args` of natures `nats`."""
        p = PRIMITIVES[e.name]
        if p.llvm is not None:
            return p.llvm(self, b, e, args, nats)
        code = p.code
        kind = code[0]
        if kind == "binop":
            is_int = all(n == "int" for n in nats)
            opname = code[1] if is_int else code[2]
            if opname is None:
                raise DiffaustError(f"llvm backend: primitive '{e.name}' on {nats}")
            x, y = args
            k = functools.partial(_const_like, y)  # (scalars, or vectors: codegen/lanes.py)
            if opname == "srem":  # C's int % traps on 0 and -1: Faust gives 0
                bad = b.or_(b.icmp_signed("==", y, k(0)), b.icmp_signed("==", y, k(-1)))
                safe = b.select(bad, k(1), y)
                return b.select(bad, k(0), b.srem(x, safe))
            if opname in ("shl", "ashr"):  # shift amounts modulo 32
                y = b.and_(y, k(31))
            return getattr(b, {"and": "and_", "or": "or_"}.get(opname, opname))(x, y)
        if kind == "cmp":
            x, y = args
            if all(n == "int" for n in nats):
                c = b.icmp_signed(code[1], x, y)
            elif code[2] == "unordered":
                c = b.fcmp_unordered(code[1], x, y)
            else:
                c = b.fcmp_ordered(code[1], x, y)
            return b.zext(c, ir.VectorType(I32, c.type.count) if isinstance(c.type, ir.VectorType) else I32)
        if kind == "libm":
            ty = self.real
            f = self.fn(code[1] + self.sfx, ty, [ty] * len(args))
            return b.call(f, args)
        if kind == "intrinsic":
            return b.call(self.intrinsic(code[1], args[0].type), args)
        raise missing_rule(p, "llvm lowering")

    def line_read(self, b, e: LineRead, env):
        line = self._line(e.line)
        if line.is_scalar:
            return b.load(self.scalar_ptr(b, env, e.line), typ=self.ty(line.nature))
        regs = env.get("shift:" + e.line)
        if regs is not None:  # a short line read at constant delays: registers
            return b.load(regs[int(e.delay.value)], typ=self.ty(line.nature))
        d = self.expr(b, e.delay, env)
        iota = b.load(self.scalar_ptr(b, env, line.iota), typ=I32)
        idx = b.and_(b.sub(iota, d), ir.Constant(I32, line.mask))
        return b.load(self.slot_ptr(b, env["state"], e.line, idx), typ=self.ty(line.nature))

    def _line(self, name):
        return self.lines[name]

    # -- statements
    def stmts(self, b, stmts, env):
        for st in stmts:
            t = type(st)
            if t is Let:
                v = env[st.var.name] = self.expr(b, st.expr, env)
                cross = env.get("cross")
                if cross is not None and st.var.name in cross:  # read by a later chunk
                    b.store(v, self.cross_ptr(b, env, st.var.name, v.type))
            elif t is Accumulate:
                v = self.expr(b, st.expr, env)
                if v.type != ir.DoubleType():
                    v = b.fpext(v, ir.DoubleType())
                key = "alloca:" + st.slot
                p = env[key] if key in env else self.slot_ptr(b, env["state"], st.slot)
                b.store(b.fadd(b.load(p, typ=ir.DoubleType()), v), p)
            elif t is Store:
                v = self.as_state(b, self.expr(b, st.expr, env), st.slot)
                key = "alloca:" + st.slot
                if key in env:
                    b.store(v, env[key])
                else:
                    self.st(b, v, self.slot_ptr(b, env["state"], st.slot))
            elif t is StoreAt:
                idx = self.expr(b, st.index, env)
                v = self.as_state(b, self.expr(b, st.expr, env), st.slot)
                self.st(b, v, self.slot_ptr(b, env["state"], st.slot, idx))
            elif t is LineWrite:
                line = self._line(st.line)
                regs = env.get("shift:" + st.line)
                if regs is not None:
                    b.store(self.as_state(b, self.expr(b, st.expr, env), st.line), regs[0])
                elif not line.is_scalar:
                    v = self.as_state(b, self.expr(b, st.expr, env), st.line)
                    iota = b.load(self.scalar_ptr(b, env, line.iota), typ=I32)
                    idx = b.and_(iota, ir.Constant(I32, line.mask))
                    self.st(b, v, self.slot_ptr(b, env["state"], st.line, idx))
            elif t is LineCommit:
                line = self._line(st.line)
                if line.is_scalar:
                    v = self.as_state(b, self.expr(b, st.expr, env), st.line)
                    p = env.get("alloca:" + st.line)
                    if p is not None:
                        b.store(v, p)
                    else:
                        self.st(b, v, self.slot_ptr(b, env["state"], st.line))
            elif t is Output:
                v = self.expr(b, st.expr, env)
                p = b.gep(env["out"][st.index], [self.io_index(b, env)], source_etype=self.real)
                b.store(v, p)
            elif t is Fill:
                self.fill(b, st, env)
            elif t is If:
                self.if_block(b, st, env)
            else:
                raise DiffaustError(f"llvm backend: cannot lower statement {t.__name__}")

    def if_block(self, b, st: If, env):
        """`if (cond) { body }` (control / enable, codegen/schedule.py): the body in a block of
        its own; a variable it sets is, after it, a phi (undefined where the block did not
        run: only statements under the same condition read it).  Values that lowering caches
        on first use (a chunk's channel pointers and scratch loads) and that were first made
        inside the block are forgotten after it: they would not dominate later uses."""
        cond = self.expr(b, st.cond, env)
        fn = env["fn"]
        then = fn.append_basic_block("if")
        done = fn.append_basic_block("endif")
        b.cbranch(b.icmp_signed("!=", cond, ir.Constant(cond.type, 0)), then, done)
        before = b.block
        keys = set(env.keys())
        pointers = [(p, dict(p.loaded)) for p in (env.get("in"), env.get("out")) if isinstance(p, _Pointers)]
        b.position_at_end(then)
        self.stmts(b, st.body, env)
        end = b.block
        b.branch(done)
        b.position_at_end(done)
        lets = {x.var.name for x in st.body if type(x) is Let}
        for name in lets:
            v = env[name]
            phi = b.phi(v.type, name=name)
            phi.add_incoming(v, end)
            phi.add_incoming(ir.Constant(v.type, ir.Undefined), before)
            env[name] = phi
        for k in set(env.keys()) - keys - lets:
            del env[k]
        for p, loaded in pointers:
            p.loaded = loaded

    def io_index(self, b, env):
        """The buffer index of the current sample: i, or count-1-i for a program whose
        inputs and outputs run backward in time (Program.reversed_io)."""
        if not self.prog.reversed_io:
            return env["i"]
        return b.sub(b.sub(env["count"], ir.Constant(I32, 1)), env["i"])

    def scalar_slots(self, names=None):
        out = []
        for s in self.prog.slots:
            if s.size == 1 and s.kind in ("state", "iota", "line") and (names is None or s.name in names):
                out.append(s)
        return out

    def with_allocas(self, b, env, slots):
        """Copy scalar slots into allocas (promoted to registers); returns a write-back function."""
        func_entry = env["entry"]
        saved = []
        for s in slots:
            with b.goto_block(func_entry):
                b.position_at_start(func_entry)
                a = b.alloca(self.state_ty(s.name), name=s.name)
            b.store(self.load_slot(b, s.name, env), a)
            env["alloca:" + s.name] = a
            saved.append((s, a))

        def write_back(bb):
            for s, a in saved:
                self.st(bb, bb.load(a, typ=self.state_ty(s.name)), self.slot_ptr(bb, env["state"], s.name))

        return write_back

    def loop(self, b, fn, count, body, env):
        """for (i = 0; i < count; i++) body(b) — returns the builder positioned after the loop."""
        pre = b.block
        loop = fn.append_basic_block("loop")
        after = fn.append_basic_block("after")
        b.cbranch(b.icmp_signed(">", count, ir.Constant(I32, 0)), loop, after)
        b.position_at_end(loop)
        i = b.phi(I32, name="i")
        i.add_incoming(ir.Constant(I32, 0), pre)
        env["i"] = i
        body(b)
        nxt = b.add(i, ir.Constant(I32, 1))
        i.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, count), loop, after)
        b.position_at_end(after)
        return b

    def fill(self, b, st: Fill, env):
        fn = env["fn"]
        for name in st.clear:
            off, nature, size = self.layout[name]
            for k in range(size) if size <= 16 else []:
                self.st(b, ir.Constant(self.state_ty(name), None), self.slot_ptr(b, env["state"], name, ir.Constant(I32, k)))
            if size > 16:
                self._zero_array(b, fn, env, name, size, nature)
        sub_env = dict(env)
        write_back = self.with_allocas(b, sub_env, self.scalar_slots(set(st.clear)))

        def body(bb):
            self.stmts(bb, st.sample, sub_env)
            v = self.as_state(bb, self.expr(bb, st.value, sub_env), st.slot)
            self.st(bb, v, self.slot_ptr(bb, env["state"], st.slot, sub_env["i"]))
            self.stmts(bb, st.post, sub_env)

        self.loop(b, fn, ir.Constant(I32, st.size), body, sub_env)
        write_back(b)

    def _zero_array(self, b, fn, env, name, size, nature):
        sub = dict(env)

        def body(bb):
            self.st(bb, ir.Constant(self.state_ty(name), None), self.slot_ptr(bb, env["state"], name, sub["i"]))

        self.loop(b, fn, ir.Constant(I32, size), body, sub)

    def init_table(self, b, state, s):
        """A constant table (waveform values): a private global array copied in at init."""
        ty = self.ty(s.nature)
        vals = [ir.Constant(ty, v if s.nature == "real" else int(v)) for v in s.init]
        arr_ty = ir.ArrayType(ty, len(vals))
        g = ir.GlobalVariable(self.m, arr_ty, name=f"{self.sym}_{s.name}_init")
        g.linkage = "private"
        g.global_constant = True
        g.initializer = ir.Constant(arr_ty, vals)
        memcpy = self.m.declare_intrinsic("llvm.memcpy", [PTR, PTR, I32])
        nbytes = len(vals) * (4 if ty in (I32, ir.FloatType()) else 8)
        b.call(memcpy, [self.slot_ptr(b, state, s.name), g, ir.Constant(I32, nbytes), ir.Constant(ir.IntType(1), 0)])

    # -- functions
    def build(self):
        # init(state, sr)
        fn = ir.Function(self.m, ir.FunctionType(ir.VoidType(), [PTR, I32]), name=f"{self.sym}_init")
        fn.args[0].add_attribute("noalias")
        entry = fn.append_basic_block("entry")
        b = ir.IRBuilder(entry)
        env = {"state": fn.args[0], "fn": fn, "entry": entry}
        b.store(fn.args[1], self.slot_ptr(b, fn.args[0], "fSamplingFreq"))
        for s in self.prog.slots:
            if s.init is not None:
                self.init_table(b, fn.args[0], s)
        self.stmts(b, self.prog.init, env)
        b.ret_void()

        # compute(state, count, inputs, outputs)
        fn = ir.Function(self.m, ir.FunctionType(ir.VoidType(), [PTR, I32, PTR, PTR]), name=f"{self.sym}_compute")
        for a in (fn.args[0],):
            a.add_attribute("noalias")
        entry = fn.append_basic_block("entry")
        b = ir.IRBuilder(entry)
        state, count, ins, outs = fn.args
        env = {"state": state, "fn": fn, "entry": entry}
        chunks = self.chunks()
        if chunks is not None:
            env["in"], env["out"] = _Pointers(b, ins), _Pointers(b, outs)
            env[("var", "count")] = env["count"] = count
            self.build_chunked(b, fn, env, chunks)
            return
        env["in"] = [b.load(b.gep(ins, [ir.Constant(I64, k)], source_etype=PTR), typ=PTR)
                     for k in range(self.prog.inputs * self.io_lanes)]
        env["out"] = [b.load(b.gep(outs, [ir.Constant(I64, k)], source_etype=PTR), typ=PTR)
                      for k in range(self.prog.outputs * self.io_lanes)]
        env[("var", "count")] = count
        env["count"] = count
        # const-rate slots: read once
        for s in self.prog.slots:
            if s.kind in ("const", "sr") and s.size == 1:
                env["slot:" + s.name] = self.load_slot(b, s.name, env)
        self.stmts(b, self.prog.block, env)
        write_back = self.with_allocas(b, env, self.scalar_slots())
        shift_back = self.with_shift_registers(b, env)

        def body(bb):
            self.stmts(bb, self.prog.sample, env)
            self.stmts(bb, self.prog.post, env)
            for name, regs in shift_back.lines:  # end of sample: every value one sample older
                ty = self.state_ty(name)
                for d in range(len(regs) - 1, 0, -1):
                    bb.store(bb.load(regs[d - 1], typ=ty), regs[d])

        self.loop(b, fn, count, body, env)
        shift_back(b)
        write_back(b)
        b.ret_void()

    # -- very large programs: the sample loop's body in chunks
    def chunks(self) -> Optional[list]:
        """The statements of the sample loop (sample, then post) cut into consecutive chunks of
        about CHUNK_SIZE expression nodes, when there are more than CHUNK_ABOVE of them or more
        than CHUNK_ABOVE_MEMORY memory accesses; else None (the loop body is one block, as
        always).

        LLVM's optimizer and code generator work on a basic block at a time, and several of
        their passes (loop access analysis, instruction scheduling, instruction selection,
        stack slot colouring) take a time that grows faster than linearly with a block's size:
        a 5,000-channel `par` or the derivative program of 100 chained one-poles (5,050
        recursions) spent a minute in LLVM.  Each chunk becomes a function of its own (not
        inlined), called once per sample, so the time is linear in the number of chunks.
        Their scalar states stay in the state buffer instead of registers, and values that a
        later chunk reads go through a scratch buffer (see `build_chunked`).

        The end-of-sample update of a one-sample line (`LineCommit`, from post) moves up to the
        end of the first chunk after which nothing reads the line any more (and its value is
        computed), so that a recursion's value need not wait in the scratch buffer for the
        last chunk; the other post statements stay last, in order."""
        if CHUNK_ABOVE is None:
            return None
        post = list(self.prog.post)
        size = memory = 0
        stack = self.prog.sample + post
        while stack:  # what _Scan counts, quickly: most programs stop here
            x = stack.pop()
            size += 1
            if type(x) in _MEMORY:
                memory += 1
            stack.extend(_children(x))
        if size <= CHUNK_ABOVE and memory <= CHUNK_ABOVE_MEMORY:
            return None
        scan = self.scan = {id(st): _Scan(st) for st in self.prog.sample + post}
        # a one-sample line's write is lowered to nothing (its commit stores it)
        sample = [st for st in self.prog.sample
                  if not (isinstance(st, LineWrite) and self._line(st.line).is_scalar)]
        sample = self._sink_lets(sample, post)
        weights = [scan[id(st)].size for st in sample]

        def cut(stmts, sizes):
            out, cur, w = [], [], 0
            for st, n in zip(stmts, sizes):
                if cur and w + n > CHUNK_SIZE:
                    out.append(cur)
                    cur, w = [], 0
                cur.append(st)
                w += n
            if cur:
                out.append(cur)
            return out

        chunks = cut(sample, weights)
        defined, last_read = {}, {}  # var -> its chunk; line -> the last chunk reading it
        for k, chunk in enumerate(chunks):
            for st in _flat(chunk):
                if isinstance(st, Let):
                    defined[st.var.name] = k
            for st in chunk:
                for line in scan[id(st)].lines:
                    last_read[line] = k
        rest = []
        post_reads = set()
        for st in post:
            post_reads |= scan[id(st)].lines
        for st in post:
            if isinstance(st, (LineWrite, LineCommit)) and not self._line(st.line).is_scalar:
                continue  # lowered to nothing (a ring line is written where its value is made)
            if (isinstance(st, LineCommit) and isinstance(st.expr, (Var, Const))
                    and st.line not in post_reads and chunks):
                at = max(last_read.get(st.line, 0),
                         defined.get(st.expr.name, 0) if isinstance(st.expr, Var) else 0)
                chunks[at].append(st)
                continue
            rest.append(st)
        return chunks + cut(rest, [scan[id(st)].size for st in rest])

    def _sink_lets(self, sample: list, post: list) -> list:
        """`sample` with each pure `Let` moved down to just before the first statement that
        reads its variable (the scheduler computes, say, the feedback terms of a chain of
        100 recursions first and uses them 100 recursions later: in chunks, each would wait
        in the scratch buffer).  Pure: made of variables, numbers, operators, casts,
        one-sample delay lines (which change only at the end of the sample) and slots that
        no statement of the loop writes.  The same operations on the same values: the same
        results."""
        scan = self.scan
        written = set()
        for st in _flat(sample + post):
            if isinstance(st, (Store, StoreAt, Accumulate)):
                written.add(st.slot)

        def pure(st) -> bool:
            sc = scan[id(st)]
            return (not sc.opaque and not (sc.loads & written)
                    and all(self._line(line).is_scalar for line in sc.lines))

        out, held = [], {}  # var name -> its Let, not placed yet

        def place(names):
            # the held Lets `names` need, each after those it needs, depth first (iterative:
            # chains can be long); of two operands, the one defined last (often a whole chain)
            # goes first, so that the other one lands next to the statement reading it
            stack = [(n, False) for n in sorted(names, key=order.get)]
            opened = set()
            while stack:
                name, ready = stack.pop()
                if ready:
                    out.append(held.pop(name))
                    continue
                if name not in held or name in opened:
                    continue
                opened.add(name)
                stack.append((name, True))
                deps = scan[id(held[name])].names & held.keys()
                stack.extend((n, False) for n in sorted(deps, key=order.get))

        order = {}
        for k, st in enumerate(sample):
            if isinstance(st, Let):
                order[st.var.name] = k
        for st in sample:
            if isinstance(st, Let) and pure(st):
                held[st.var.name] = st  # what it reads is placed with it
                continue
            place(scan[id(st)].names & held.keys())
            out.append(st)
        for st in post:
            place(scan[id(st)].names & held.keys())
        place(set(held))
        return out

    def build_chunked(self, b, fn, env, chunks):
        """compute() of a program lowered in chunks: the block statements, then the sample loop
        calling one function per chunk, `<sym>_chunkK(state, scratch, i, inputs, outputs, count)`.
        A value (`Let`) read by a later chunk than its own (or by a chunk, made by the block
        statements) is stored in the scratch buffer, an array of 8-byte cells on compute's
        stack, and loaded by each chunk that reads it at its start."""
        state, count, ins, outs = fn.args
        defined = {}  # var name -> 0 (block) or chunk number (1...)
        natures = {}
        used = []  # chunk number - 1 -> names of variables it reads
        for st in self.prog.block:
            if isinstance(st, Let):
                defined[st.var.name] = 0
                natures[st.var.name] = st.var.nature
        for k, chunk in enumerate(chunks, 1):
            names = set()
            for st in chunk:
                names |= self.scan[id(st)].names
            for st in _flat(chunk):
                if isinstance(st, Let):
                    defined[st.var.name] = k
                    natures[st.var.name] = st.var.nature
            used.append(names)
        cross = {}  # var name -> cell
        for k, names in enumerate(used, 1):
            for name in sorted(names):
                if name in defined and defined[name] != k and name not in cross:
                    cross[name] = len(cross)
        env["cross"] = cross
        cell_ty = ir.ArrayType(I64, max(1, len(cross)))
        with b.goto_block(env["entry"]):
            b.position_at_start(env["entry"])
            scratch = b.alloca(cell_ty, name="scratch")
        env["scratch"] = scratch
        self.stmts(b, self.prog.block, env)
        cty = ir.FunctionType(ir.VoidType(), [PTR, PTR, I32, PTR, PTR, I32])
        funcs = []
        for k, chunk in enumerate(chunks, 1):
            f = ir.Function(self.m, cty, name=f"{self.sym}_chunk{k}")
            f.linkage = "internal"
            f.attributes.add("noinline")
            f.args[0].add_attribute("noalias")
            f.args[1].add_attribute("noalias")
            entry = f.append_basic_block("entry")
            cb = ir.IRBuilder(entry)
            c_state, c_scratch, c_i, c_ins, c_outs, c_count = f.args
            cenv = _ChunkEnv(self, cb, natures)
            cenv.update({"state": c_state, "fn": f, "entry": entry, "scratch": c_scratch, "cross": cross,
                         "i": c_i, "count": c_count, ("var", "count"): c_count,
                         "in": _Pointers(cb, c_ins), "out": _Pointers(cb, c_outs)})
            self.stmts(cb, chunk, cenv)
            cb.ret_void()
            funcs.append(f)

        def body(bb):
            for f in funcs:
                bb.call(f, [state, scratch, env["i"], ins, outs, count])

        self.loop(b, fn, count, body, env)
        b.ret_void()
        self.m.add_named_metadata(CHUNKED_MARK, [ir.Constant(I32, len(chunks))])

    def cross_ptr(self, b, env, name, ty):
        """The scratch cell of a variable read by another chunk (a pointer to `ty`)."""
        p = b.gep(env["scratch"], [ir.Constant(I64, 8 * env["cross"][name])], source_etype=I8)
        return p if p.type.is_opaque else b.bitcast(p, ty.as_pointer())  # compute's own alloca

    # -- short delay lines as registers
    def shift_lines(self) -> dict:
        """Ring lines of the compute loop that are short (size <= SHIFT_MAX) and read only at
        constant delays: line name -> the largest delay read.  In `compute` these live in
        registers shifted once per sample, as Faust's own short delay lines do (a ring buffer
        in memory puts a store-to-load forwarding in every recursion through the line); the
        ring buffer in the state is loaded at entry and written back at exit, so the state
        stays the ring buffer layout for the next call."""
        if SHIFT_MAX <= 0:
            return {}
        reads: dict = {}
        bad: set = set()
        seen: set = set()

        def walk(root, in_loop):
            for x in _nodes(root, seen):
                if isinstance(x, LineRead):
                    if in_loop and isinstance(x.delay, Const) and x.delay.nature == "int":
                        reads[x.line] = max(reads.get(x.line, 0), int(x.delay.value))
                    else:
                        bad.add(x.line)
                elif isinstance(x, (LineWrite, LineCommit)) and not in_loop:
                    bad.add(x.line)

        for st in list(self.prog.sample) + list(self.prog.post):
            if isinstance(st, If):  # written under a condition: frozen with it, not shifted every sample
                bad.update(x.line for x in st.body if isinstance(x, (LineWrite, LineCommit)))
        walk(self.prog.init, False)  # table generators (Fill) have lines of their own
        walk(self.prog.block, False)
        seen.clear()
        walk(self.prog.sample, True)
        walk(self.prog.post, True)
        out = {}
        for name, dmax in reads.items():
            line = self.lines.get(name)
            if (line is None or name in bad or line.is_scalar or line.size > SHIFT_MAX
                    or not (0 <= dmax < line.size)):
                continue
            out[name] = dmax
        if sum(out.values()) > SHIFT_BUDGET:
            return {}  # more registers than the machine has: the ring buffers (in L1) do better
        return out

    def with_shift_registers(self, b, env):
        """Allocas r0..rD per shift line (see shift_lines); returns the write-back (with .lines)."""
        lines = []
        iota_cache = {}
        for name, dmax in sorted(self.shift_lines().items()):
            line = self._line(name)
            ty = self.state_ty(name)
            regs = []
            for d in range(dmax + 1):
                with b.goto_block(env["entry"]):
                    b.position_at_start(env["entry"])
                    regs.append(b.alloca(ty, name=f"{name}_{d}"))
            if line.iota not in iota_cache:
                iota_cache[line.iota] = self.load_slot(b, line.iota, env)
            iota = iota_cache[line.iota]
            for d in range(1, dmax + 1):
                idx = b.and_(b.sub(iota, ir.Constant(I32, d)), ir.Constant(I32, line.mask))
                b.store(self.ld(b, self.slot_ptr(b, env["state"], name, idx), ty), regs[d])
            b.store(ir.Constant(ty, None), regs[0])
            env["shift:" + name] = regs
            lines.append((name, regs))

        def shift_back(bb):
            for name, regs in lines:
                line = self._line(name)
                ty = self.state_ty(name)
                a = env.get("alloca:" + line.iota)
                iota = bb.load(a, typ=I32) if a is not None else self.load_slot(bb, line.iota, env)
                for d in range(1, len(regs)):
                    idx = bb.and_(bb.sub(iota, ir.Constant(I32, d)), ir.Constant(I32, line.mask))
                    self.st(bb, bb.load(regs[d], typ=ty), self.slot_ptr(bb, env["state"], name, idx))

        shift_back.lines = lines
        return shift_back


def _flat(stmts):
    """The statements of a list, those inside `If` blocks included."""
    for st in stmts:
        if type(st) is If:
            yield from st.body
        else:
            yield st


def build_module(prog: Program, sym: str) -> ir.Module:
    """LLVM IR module with `<sym>_init` and `<sym>_compute`."""
    import llvmlite.binding as llvm

    m = ir.Module(name=sym)
    m.triple = llvm.get_process_triple()
    with paused_gc():
        _Lower(prog, m, sym).build()
    return m


# ---------------------------------------------------------------- JIT


CHUNKED_MARK = "diffaust.chunked"  # named metadata of a module lowered in chunks


def _speed_level(module_ir: str) -> int:
    """-O3, or -O1 for a program lowered in chunks: its chunks are as fast at -O1 (their
    states live in memory either way; measured on the 100-parameter chain) and its
    optimization takes half the time."""
    return 1 if "!" + CHUNKED_MARK in module_ir else 3


class _Jit:
    """The process's JIT: one MCJIT engine, libm symbols registered once."""

    def __init__(self):
        import llvmlite.binding as llvm

        self.llvm = llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self._register_libm()
        target = llvm.Target.from_default_triple()
        self.tm = target.create_target_machine(opt=3, jit=True, cpu=llvm.get_host_cpu_name(),
                                               features=llvm.get_host_cpu_features().flatten())
        empty = llvm.parse_assembly("")
        empty.triple = llvm.get_process_triple()
        engine_tm = target.create_target_machine(opt=3, jit=True)
        self.engine = llvm.create_mcjit_compiler(empty, engine_tm)
        # LLVM's global context and the engine are not thread-safe: every use holds this
        # (re-entrant: emit_object calls optimize; hold it while reading optimize's module)
        self.lock = threading.RLock()
        self.loaded: dict = {}

    def _register_libm(self):
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        # the registry's C math functions and the foreign (ffunction) ones
        names = list(dict.fromkeys(libm_symbols() + tuple(FOREIGN)))
        for n in names:
            for v in (n, n + "f"):
                try:
                    addr = ctypes.cast(getattr(libm, v), ctypes.c_void_p).value
                except AttributeError:
                    continue
                self.llvm.add_symbol(v, addr)

    def optimize(self, module_ir: str):
        llvm = self.llvm
        with self.lock:
            mod = llvm.parse_assembly(module_ir)
            mod.verify()
            pto = llvm.PipelineTuningOptions(speed_level=_speed_level(module_ir))
            pb = llvm.create_pass_builder(self.tm, pto)
            pb.getModulePassManager().run(mod, pb)
            return mod

    def emit_object(self, module_ir: str) -> tuple[bytes, str]:
        with self.lock:
            mod = self.optimize(module_ir)
            return self.tm.emit_object(mod), str(mod)

    def is_loaded(self, sym: str) -> bool:
        with self.lock:
            return sym in self.loaded

    def load(self, obj: bytes, sym: str) -> Optional[tuple[int, int]]:
        """Load an object file once; (init address, compute address), or None when another
        object with the same symbols is already loaded (the caller picks a new name)."""
        import hashlib

        digest = hashlib.sha256(obj).hexdigest()
        with self.lock:
            if sym in self.loaded:
                d, addrs = self.loaded[sym]
                return addrs if d == digest else None
            self.engine.add_object_file(self.llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()
            addrs = (self.engine.get_function_address(f"{sym}_init"),
                     self.engine.get_function_address(f"{sym}_compute"))
            self.loaded[sym] = (digest, addrs)
            return addrs


_JIT = None
_JIT_LOCK = threading.Lock()


def jit() -> _Jit:
    global _JIT
    with _JIT_LOCK:
        if _JIT is None:
            _JIT = _Jit()
        return _JIT


# ---------------------------------------------------------------- block driver (benchmarks)

_DRIVERS: dict = {}

_RUN_BLOCKS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def block_driver(double: bool = False):
    """A native loop that calls a compiled `compute` block after block, like a host's audio callback
    (and like the C++ reference harness's driver): no Python between the blocks.

        run(compute_addr, state_addr, n, block_size, n_inputs, n_outputs, inputs, outputs)

    inputs / outputs: `void**` arrays of n_inputs / n_outputs channel buffers of n samples each.
    Used by benchmarks/bench.py to time compute() alone.
    """
    with _JIT_LOCK:
        f = _DRIVERS.get(double)
    if f is not None:
        return f
    import llvmlite.binding as llvm

    real_size = 8 if double else 4
    m = ir.Module(name=f"diffaust_driver_{real_size}")
    m.triple = llvm.get_process_triple()
    cty = ir.FunctionType(ir.VoidType(), [PTR, I32, PTR, PTR])
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), [cty.as_pointer(), PTR, I32, I32, I32, I32, PTR, PTR]),
                     name=f"diffaust_run_blocks_{real_size}")
    comp, state, n, bs, nin, nout, ins, outs = fn.args
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    ip = b.alloca(PTR, size=b.add(nin, ir.Constant(I32, 1)))
    op = b.alloca(PTR, size=b.add(nout, ir.Constant(I32, 1)))
    head = fn.append_basic_block("head")
    body = fn.append_basic_block("body")
    done_bb = fn.append_basic_block("done")
    b.branch(head)
    b.position_at_end(head)
    done = b.phi(I32, name="done")
    done.add_incoming(ir.Constant(I32, 0), entry)
    b.cbranch(b.icmp_signed("<", done, n), body, done_bb)
    b.position_at_end(body)
    left = b.sub(n, done)
    cnt = b.select(b.icmp_signed("<", left, bs), left, bs)
    off = b.mul(b.sext(done, I64), ir.Constant(I64, real_size))

    def fill(k, src, dst):
        # for (c = 0; c < k; c++) dst[c] = src[c] + off
        pre = b.block
        lp = fn.append_basic_block("fill")
        after = fn.append_basic_block("filled")
        b.cbranch(b.icmp_signed(">", k, ir.Constant(I32, 0)), lp, after)
        b.position_at_end(lp)
        c = b.phi(I32)
        c.add_incoming(ir.Constant(I32, 0), pre)
        p = b.load(b.gep(src, [c], source_etype=PTR), typ=PTR)
        b.store(b.gep(p, [off], source_etype=I8), b.gep(dst, [c], source_etype=PTR))
        nxt = b.add(c, ir.Constant(I32, 1))
        c.add_incoming(nxt, lp)
        b.cbranch(b.icmp_signed("<", nxt, k), lp, after)
        b.position_at_end(after)

    fill(nin, ins, ip)
    fill(nout, outs, op)
    b.call(comp, [state, cnt, ip, op])  # an indirect call through the pointer argument
    nxt = b.add(done, bs)
    done.add_incoming(nxt, b.block)
    b.branch(head)
    b.position_at_end(done_bb)
    b.ret_void()
    j = jit()
    obj, _ = j.emit_object(str(m))
    with j.lock:
        j.engine.add_object_file(j.llvm.ObjectFileRef.from_data(obj))
        j.engine.finalize_object()
        f = _RUN_BLOCKS(j.engine.get_function_address(fn.name))
    with _JIT_LOCK:
        _DRIVERS[double] = f
    return f
