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
import threading
from typing import Optional

from llvmlite import ir

from ..errors import DiffaustError
from ..primitives.table import PRIMITIVES
from .schedule import (
    Call, Cast, Const, Fill, Input, Let, LineCommit, LineRead, LineWrite, Load, LoadAt, Op,
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


def layout(prog: Program) -> tuple[dict, int]:
    """name → (byte offset, nature, size); and the total size in bytes."""
    real_size = 8 if prog.real == "double" else 4
    off = 0
    table = {}
    # parameters first, so their offsets do not move when other slots are added
    slots = sorted(prog.slots, key=lambda s: 0 if s.kind == "param" else 1)
    for s in slots:
        width = 4 if s.nature == "int" else real_size
        off = (off + 7) & ~7
        table[s.name] = (off, s.nature, s.size)
        off += width * s.size
    return table, (off + 15) & ~15


def _cmp_pred(p: str) -> str:
    return p


class _Lower:
    def __init__(self, prog: Program, module: ir.Module, sym: str):
        self.prog = prog
        self.m = module
        self.sym = sym
        self.real = ir.DoubleType() if prog.real == "double" else ir.FloatType()
        self.sfx = "" if prog.real == "double" else "f"
        self.layout, self.size = layout(prog)
        self.funcs: dict = {}
        self.lines = {line.name: line for line in prog.lines.values()}
        self.x86 = (module.triple or "").startswith(("x86_64", "i386", "i686"))

    # -- helpers
    def ty(self, nature: str):
        return I32 if nature == "int" else self.real

    def slot_ptr(self, b, state, name, index=None):
        off, nature, size = self.layout[name]
        p = b.gep(state, [ir.Constant(I64, off)], source_etype=I8)
        if index is not None:
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
                return b.load(a, typ=self.ty(e.nature))
            v = env.get("slot:" + e.slot)
            return v if v is not None else self.load_slot(b, e.slot, env)
        if t is LoadAt:
            idx = self.expr(b, e.index, env)
            return b.load(self.slot_ptr(b, env["state"], e.slot, idx), typ=self.ty(e.nature))
        if t is Input:
            p = b.gep(env["in"][e.index], [env["i"]], source_etype=self.real)
            return b.load(p, typ=self.real)
        if t is Cast:
            v = self.expr(b, e.expr, env)
            if e.nature == "real":
                return b.sitofp(v, self.real)
            return self.fptosi(b, v)
        if t is Op:
            return self.op(b, e, env)
        if t is Call:
            args = [self.expr(b, a, env) for a in e.args]
            f = self.fn(e.symbol or e.fname, self.ty(e.nature), [a.type for a in args])
            return b.call(f, args)
        if t is LineRead:
            return self.line_read(b, e, env)
        raise DiffaustError(f"llvm backend: cannot lower {t.__name__}")

    def load_slot(self, b, name, env):
        off, nature, size = self.layout[name]
        return b.load(self.slot_ptr(b, env["state"], name), typ=self.ty(nature))

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

    def op(self, b, e: Op, env):
        p = PRIMITIVES[e.name]
        args = [self.expr(b, a, env) for a in e.args]
        nats = [self.nature(a) for a in e.args]
        code = p.code
        kind = code[0]
        if kind == "binop":
            is_int = all(n == "int" for n in nats)
            opname = code[1] if is_int else code[2]
            if opname is None:
                raise DiffaustError(f"llvm backend: primitive '{e.name}' on {nats}")
            x, y = args
            if opname == "srem":
                bad = b.or_(b.icmp_signed("==", y, ir.Constant(I32, 0)), b.icmp_signed("==", y, ir.Constant(I32, -1)))
                safe = b.select(bad, ir.Constant(I32, 1), y)
                return b.select(bad, ir.Constant(I32, 0), b.srem(x, safe))
            if opname in ("shl", "ashr"):
                y = b.and_(y, ir.Constant(I32, 31))
            return getattr(b, {"and": "and_", "or": "or_"}.get(opname, opname))(x, y)
        if kind == "cmp":
            x, y = args
            if all(n == "int" for n in nats):
                c = b.icmp_signed(code[1], x, y)
            elif code[1] == "!=":
                c = b.fcmp_unordered("!=", x, y)
            else:
                c = b.fcmp_ordered(code[1], x, y)
            return b.zext(c, I32)
        if kind == "libm":
            ty = self.real
            f = self.fn(code[1] + self.sfx, ty, [ty] * len(args))
            return b.call(f, args)
        if kind == "intrinsic":
            return b.call(self.intrinsic(code[1], self.real), args)
        name = code[1]
        if name == "abs":
            x = args[0]
            if nats[0] == "int":
                return b.select(b.icmp_signed("<", x, ir.Constant(I32, 0)), b.neg(x), x)
            return b.call(self.intrinsic("fabs", self.real), [x])
        if name in ("min", "max"):
            x, y = args
            lt = (lambda u, v: b.icmp_signed("<", u, v)) if nats[0] == "int" else \
                (lambda u, v: b.fcmp_ordered("<", u, v))
            if name == "min":  # std::min(a, b) = b < a ? b : a
                return b.select(lt(y, x), y, x)
            return b.select(lt(x, y), y, x)  # std::max(a, b) = a < b ? b : a
        if name == "int":
            return args[0] if nats[0] == "int" else self.fptosi(b, args[0])
        if name == "float":
            return args[0] if nats[0] == "real" else b.sitofp(args[0], self.real)
        if name == "select2":
            s, x, y = args
            return b.select(b.icmp_signed("!=", s, ir.Constant(I32, 0)), y, x)
        if name == "select3":
            s, x, y, z = args
            if nats[0] == "int":
                is0 = b.icmp_signed("==", s, ir.Constant(I32, 0))
                is1 = b.icmp_signed("==", s, ir.Constant(I32, 1))
            else:  # a real selector is compared exactly
                is0 = b.fcmp_ordered("==", s, ir.Constant(self.real, 0.0))
                is1 = b.fcmp_ordered("==", s, ir.Constant(self.real, 1.0))
            return b.select(is0, x, b.select(is1, y, z))
        if name == "pow":
            f = self.fn("pow" + self.sfx, self.real, [self.real, self.real])
            r = b.call(f, args)
            return self.fptosi(b, r) if e.nature == "int" else r
        raise DiffaustError(f"llvm backend: primitive '{e.name}' has no lowering")

    def line_read(self, b, e: LineRead, env):
        line = self._line(e.line)
        if line.is_scalar:
            return b.load(env["alloca:" + e.line], typ=self.ty(line.nature))
        regs = env.get("shift:" + e.line)
        if regs is not None:  # a short line read at constant delays: registers
            return b.load(regs[int(e.delay.value)], typ=self.ty(line.nature))
        d = self.expr(b, e.delay, env)
        iota = b.load(env["alloca:" + line.iota], typ=I32)
        idx = b.and_(b.sub(iota, d), ir.Constant(I32, line.mask))
        return b.load(self.slot_ptr(b, env["state"], e.line, idx), typ=self.ty(line.nature))

    def _line(self, name):
        return self.lines[name]

    # -- statements
    def stmts(self, b, stmts, env):
        for st in stmts:
            t = type(st)
            if t is Let:
                env[st.var.name] = self.expr(b, st.expr, env)
            elif t is Store:
                v = self.expr(b, st.expr, env)
                key = "alloca:" + st.slot
                if key in env:
                    b.store(v, env[key])
                else:
                    b.store(v, self.slot_ptr(b, env["state"], st.slot))
            elif t is StoreAt:
                idx = self.expr(b, st.index, env)
                v = self.expr(b, st.expr, env)
                b.store(v, self.slot_ptr(b, env["state"], st.slot, idx))
            elif t is LineWrite:
                line = self._line(st.line)
                regs = env.get("shift:" + st.line)
                if regs is not None:
                    b.store(self.expr(b, st.expr, env), regs[0])
                elif not line.is_scalar:
                    v = self.expr(b, st.expr, env)
                    iota = b.load(env["alloca:" + line.iota], typ=I32)
                    idx = b.and_(iota, ir.Constant(I32, line.mask))
                    b.store(v, self.slot_ptr(b, env["state"], st.line, idx))
            elif t is LineCommit:
                line = self._line(st.line)
                if line.is_scalar:
                    b.store(self.expr(b, st.expr, env), env["alloca:" + st.line])
            elif t is Output:
                v = self.expr(b, st.expr, env)
                p = b.gep(env["out"][st.index], [env["i"]], source_etype=self.real)
                b.store(v, p)
            elif t is Fill:
                self.fill(b, st, env)
            else:
                raise DiffaustError(f"llvm backend: cannot lower statement {t.__name__}")

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
                a = b.alloca(self.ty(s.nature), name=s.name)
            b.store(self.load_slot(b, s.name, env), a)
            env["alloca:" + s.name] = a
            saved.append((s, a))

        def write_back(bb):
            for s, a in saved:
                bb.store(bb.load(a, typ=self.ty(s.nature)), self.slot_ptr(bb, env["state"], s.name))

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
                b.store(ir.Constant(self.ty(nature), 0), self.slot_ptr(b, env["state"], name, ir.Constant(I32, k)))
            if size > 16:
                self._zero_array(b, fn, env, name, size, nature)
        sub_env = dict(env)
        write_back = self.with_allocas(b, sub_env, self.scalar_slots(set(st.clear)))

        def body(bb):
            self.stmts(bb, st.sample, sub_env)
            v = self.expr(bb, st.value, sub_env)
            bb.store(v, self.slot_ptr(bb, env["state"], st.slot, sub_env["i"]))
            self.stmts(bb, st.post, sub_env)

        self.loop(b, fn, ir.Constant(I32, st.size), body, sub_env)
        write_back(b)

    def _zero_array(self, b, fn, env, name, size, nature):
        sub = dict(env)

        def body(bb):
            bb.store(ir.Constant(self.ty(nature), 0), self.slot_ptr(bb, env["state"], name, sub["i"]))

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
        env["in"] = [b.load(b.gep(ins, [ir.Constant(I64, k)], source_etype=PTR), typ=PTR)
                     for k in range(self.prog.inputs)]
        env["out"] = [b.load(b.gep(outs, [ir.Constant(I64, k)], source_etype=PTR), typ=PTR)
                      for k in range(self.prog.outputs)]
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
                ty = self.ty(self._line(name).nature)
                for d in range(len(regs) - 1, 0, -1):
                    bb.store(bb.load(regs[d - 1], typ=ty), regs[d])

        self.loop(b, fn, count, body, env)
        shift_back(b)
        write_back(b)
        b.ret_void()

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

        def walk(root, in_loop):  # iterative: expressions can be deeper than the recursion limit
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
                if isinstance(x, LineRead):
                    if in_loop and isinstance(x.delay, Const) and x.delay.nature == "int":
                        reads[x.line] = max(reads.get(x.line, 0), int(x.delay.value))
                    else:
                        bad.add(x.line)
                elif isinstance(x, (LineWrite, LineCommit)) and not in_loop:
                    bad.add(x.line)
                stack.extend(getattr(x, f) for f in fields)

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
            ty = self.ty(line.nature)
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
                b.store(b.load(self.slot_ptr(b, env["state"], name, idx), typ=ty), regs[d])
            b.store(ir.Constant(ty, 0), regs[0])
            env["shift:" + name] = regs
            lines.append((name, regs))

        def shift_back(bb):
            for name, regs in lines:
                line = self._line(name)
                ty = self.ty(line.nature)
                a = env.get("alloca:" + line.iota)
                iota = bb.load(a, typ=I32) if a is not None else self.load_slot(bb, line.iota, env)
                for d in range(1, len(regs)):
                    idx = bb.and_(bb.sub(iota, ir.Constant(I32, d)), ir.Constant(I32, line.mask))
                    bb.store(bb.load(regs[d], typ=ty), self.slot_ptr(bb, env["state"], name, idx))

        shift_back.lines = lines
        return shift_back


def build_module(prog: Program, sym: str) -> ir.Module:
    """LLVM IR module with `<sym>_init` and `<sym>_compute`."""
    import llvmlite.binding as llvm

    m = ir.Module(name=sym)
    m.triple = llvm.get_process_triple()
    _Lower(prog, m, sym).build()
    return m


# ---------------------------------------------------------------- JIT


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
        self.lock = threading.Lock()
        self.loaded: dict = {}

    def _register_libm(self):
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        names = ["sin", "cos", "tan", "asin", "acos", "atan", "atan2", "exp", "log", "log10", "pow",
                 "sqrt", "fmod", "remainder", "floor", "ceil", "rint", "round", "fabs", "tanh", "sinh",
                 "cosh", "asinh", "acosh", "atanh", "cbrt", "hypot", "exp2", "log2", "expm1", "log1p",
                 "trunc", "fmin", "fmax", "copysign", "erf", "erfc", "tgamma", "lgamma", "exp10",
                 "nearbyint", "lrint"]
        for n in names:
            for v in (n, n + "f"):
                try:
                    addr = ctypes.cast(getattr(libm, v), ctypes.c_void_p).value
                except AttributeError:
                    continue
                self.llvm.add_symbol(v, addr)

    def optimize(self, module_ir: str):
        llvm = self.llvm
        mod = llvm.parse_assembly(module_ir)
        mod.verify()
        pto = llvm.PipelineTuningOptions(speed_level=3)
        pb = llvm.create_pass_builder(self.tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return mod

    def emit_object(self, module_ir: str) -> tuple[bytes, str]:
        mod = self.optimize(module_ir)
        return self.tm.emit_object(mod), str(mod)

    def is_loaded(self, sym: str) -> bool:
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
