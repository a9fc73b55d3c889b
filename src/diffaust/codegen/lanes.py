"""lanes: a scheduled program → LLVM IR that runs L instances of it at once, one per SIMD lane.

A batch of examples (a PyTorch batch, the items of a fit) runs the same program on different
inputs and parameter values.  Lowered with lanes, every value the program computes per
instance is a vector `<L x real>` (or `<L x i32>`), lane k belonging to instance k: the
instructions of one instance's sample compute L instances' samples, and a recursion whose
one-sample latency bounds the scalar loop (a biquad) runs L recursions in that latency.

Values that are the same in every lane stay scalars (uniform): constants, the loop counter,
IOTA, the sample rate and what `init` computes from it (init sees no parameter), tables
filled at init.  A slot is uniform when no statement of `block`, `sample` or `post` writes it
and it is not a parameter, or when it is an IOTA; every other slot holds L copies,
interleaved (element j of lane k at j·L + k: `llvm.layout`).  An operation whose arguments
are all uniform is the scalar operation; otherwise its uniform arguments are broadcast and
it is lowered as a vector operation (arithmetic, comparisons, selects, min/max, casts, LLVM
intrinsics such as fabs or floor) or, for a C math function or a foreign function, called
once per lane.  A table or delay line read at an index that differs between lanes reads
each lane's element (a gather); a write at such an index writes each lane's (a scatter).

Each lane computes exactly the operations of the scalar program on its own values (IEEE
operations lane by lane, the same C functions): its outputs are those of the scalar
program, bit for bit (tests/test_lanes.py).

Generated functions (C view):
  void <sym>_init(char* state, int sample_rate);
  void <sym>_compute(char* state, int count, REAL** inputs, REAL** outputs);
inputs[c·L + k] / outputs[c·L + k]: channel c of lane k; a packed channel (reverse mode's
tape, written by one lane program and read by another) is one buffer, inputs[c·L], with
the lanes interleaved (sample i of lane k at i·L + k), read and written as vectors.

Not lowered with lanes (`LanesUnsupported`, the caller runs the instances one by one):
programs with `control`/`enable` (a condition that differs between lanes), programs large
enough to be lowered in chunks, and a waveform whose table the program also writes.
"""

from __future__ import annotations

from llvmlite import ir

from ..errors import DiffaustError
from ..primitives.table import PRIMITIVES
from ..signals.build import paused_gc
from .llvm import I32, I64, I8, _Lower, lane_line_groups, layout
from .schedule import (
    Accumulate, Call, Cast, Const, If, Input, Let, LineCommit, LineRead, LineWrite, Load, LoadAt, Op, Output, Program,
    Store, StoreAt, Var,
)


class LanesUnsupported(DiffaustError):
    """The program cannot be lowered with lanes (see the module's docstring)."""


def _hooks_vectorizable() -> frozenset:
    """The primitives' llvm hooks that lower vector arguments as they lower scalars (they use
    only IR operations and the lowering's int_const / real_const / intrinsic / fptosi)."""
    from ..primitives import table as T

    return frozenset({T._llvm_abs, T._llvm_min, T._llvm_max, T._llvm_int, T._llvm_float,
                      T._llvm_select2, T._llvm_select3})


def uniform_slots(prog: Program, shared_inputs=frozenset(), shared_params=frozenset()) -> frozenset:
    """Slots holding the same value in every lane, a fixpoint: start from every slot but the
    parameters not in `shared_params` (slot names), then a slot (or delay line) that a
    statement of `block`, `sample` or `post` writes with a value that may differ between
    lanes — one that reads a per-lane slot, line or variable, or an input not in
    `shared_inputs` — is per-lane, until nothing changes.  IOTAs are uniform (a counter);
    `init` computes from the sample rate and constants only, so what only it writes is
    uniform.  A batch (every input and parameter per lane) keeps uniform what no input or
    parameter reaches (a counter, a table filled at init); forward mode's directional lanes
    (shared inputs and parameters, per-lane seeds) keep the whole primal uniform."""
    per_lane = {name for name, _ in prog.params if name not in shared_params}
    stmts = []

    def flat(xs):
        for st in xs:
            if type(st) is If:
                flat(st.body)
            else:
                stmts.append(st)

    flat(prog.block)
    flat(prog.sample)
    flat(prog.post)
    iotas = {s.name for s in prog.slots if s.kind == "iota"}
    while True:
        lets: dict = {}
        memo: dict = {}

        def uni(e) -> bool:  # the same value in every lane
            t = type(e)
            if t is Const:
                return True
            if t is Var:
                return lets.get(e.name, False)
            if t is Load:
                return e.slot not in per_lane
            if t is Input:
                return e.index in shared_inputs
            k = id(e)
            r = memo.get(k)
            if r is None:
                if t is LoadAt:
                    r = e.slot not in per_lane and uni(e.index)
                elif t is LineRead:
                    r = e.line not in per_lane and uni(e.delay)
                elif t in (Op, Call):
                    r = all(uni(a) for a in e.args)
                elif t is Cast:
                    r = uni(e.expr)
                else:
                    r = False  # anything else: per lane
                memo[k] = r
            return r

        grown = False
        for st in stmts:
            t = type(st)
            if t is Let:
                lets[st.var.name] = uni(st.expr)
                continue
            if t in (Store, Accumulate):
                target, ok = st.slot, uni(st.expr)
            elif t is StoreAt:
                target, ok = st.slot, uni(st.expr) and uni(st.index)
            elif t in (LineWrite, LineCommit):
                target, ok = st.line, uni(st.expr)
            else:
                continue
            if not ok and target not in per_lane and target not in iotas:
                per_lane.add(target)
                grown = True
        if not grown:
            break
    return frozenset(s.name for s in prog.slots if s.name not in per_lane)


class _LaneLower(_Lower):
    """`_Lower` with every per-instance value a vector of `lanes` instances."""

    def __init__(self, prog: Program, module: ir.Module, sym: str, lanes: int,
                 packed_inputs=frozenset(), packed_outputs=frozenset(), shared_inputs=frozenset(),
                 shared_params=frozenset()):
        super().__init__(prog, module, sym)
        self.packed_inputs = frozenset(packed_inputs)
        self.packed_outputs = frozenset(packed_outputs)
        self.shared_inputs = frozenset(shared_inputs)
        if lanes < 2:
            raise DiffaustError(f"internal error: lanes must be >= 2, got {lanes}")
        self.lanes = self.io_lanes = lanes
        self.uniform = uniform_slots(prog, self.shared_inputs, frozenset(shared_params))
        self.groups = lane_line_groups(prog, self.uniform)
        self.layout, self.size = layout(prog, lanes, self.uniform)
        self.vector_hooks = _hooks_vectorizable()
        for nature in ("real", "int", "double"):
            self.vty(nature)
        for st in [*prog.init, *prog.block, *prog.sample, *prog.post]:
            if type(st) is If:
                raise LanesUnsupported("control/enable: a condition may differ from lane to lane")
        for s in prog.slots:
            if s.init is not None and s.name not in self.uniform:
                raise LanesUnsupported(f"the waveform {s.name} is also written")
        if self.chunks() is not None:
            raise LanesUnsupported("a program this large is lowered in chunks")

    # -- types and values
    def vty(self, nature: str):
        vt = self.__dict__.setdefault("_vtypes", {})  # (made before the vector view swaps self.real)
        t = vt.get(nature)
        if t is None:
            t = vt[nature] = ir.VectorType(self.ty(nature), self.lanes)
        return t

    def state_ty(self, name):
        nature = self.layout[name][1]
        return self.ty(nature) if name in self.uniform else self.vty(nature)

    def width(self, ty) -> int:
        e = ty.element if isinstance(ty, ir.VectorType) else ty
        return 8 if e == ir.DoubleType() else 4

    def ld(self, b, p, ty):
        return b.load(p, typ=ty, align=self.width(ty))  # slots are aligned on their element only

    def st(self, b, v, p):
        b.store(v, p, align=self.width(v.type))

    @staticmethod
    def is_vec(v) -> bool:
        return isinstance(v.type, ir.VectorType)

    def splat(self, b, v):
        """v in every lane (a vector stays as it is)."""
        if self.is_vec(v):
            return v
        vt = ir.VectorType(v.type, self.lanes)
        if isinstance(v, ir.Constant):
            return ir.Constant(vt, [v.constant] * self.lanes)
        one = b.insert_element(ir.Constant(vt, None), v, ir.Constant(I32, 0))
        return b.shuffle_vector(one, ir.Constant(vt, None), ir.Constant(ir.VectorType(I32, self.lanes), None))

    def lane(self, b, v, k: int):
        return b.extract_element(v, ir.Constant(I32, k)) if self.is_vec(v) else v

    def gather_vec(self, b, values):
        out = ir.Constant(ir.VectorType(values[0].type, self.lanes), None)
        for k, x in enumerate(values):
            out = b.insert_element(out, x, ir.Constant(I32, k))
        return out

    def as_state(self, b, v, name):
        if name in self.uniform:
            if self.is_vec(v):
                raise DiffaustError(f"internal error (lanes): a per-lane value written into uniform slot {name}")
            return v
        return self.splat(b, v)

    def slot_ptr(self, b, state, name, index=None, lane: int = 0):
        """Element `index` of slot `name` (lane `lane` of it, where the slot has lanes)."""
        off, nature, size = self.layout[name]
        p = b.gep(state, [ir.Constant(I64, off)], source_etype=I8)
        group = self.groups.get(name)
        if group is not None and index is not None:  # interleaved with its group's lines
            index = b.mul(index, ir.Constant(index.type, group[1]))
        if name not in self.uniform:
            k = ir.Constant(I32, lane)
            index = k if index is None else b.add(b.mul(index, ir.Constant(index.type, self.lanes)), k)
        if index is not None:
            p = b.gep(p, [index], source_etype=self.ty(nature))
        return p

    def element(self, b, env, name, index):
        """Slot `name` at an index that may differ from lane to lane: a vector (or a scalar
        where both the index and the slot are uniform)."""
        ty = self.ty(self.layout[name][1])
        if not self.is_vec(index):
            return self.ld(b, self.slot_ptr(b, env["state"], name, index), self.state_ty(name))
        vals = []
        for k in range(self.lanes):
            lane = 0 if name in self.uniform else k
            vals.append(self.ld(b, self.slot_ptr(b, env["state"], name, self.lane(b, index, k), lane), ty))
        return self.gather_vec(b, vals)

    # -- the vector view of the lowering, for the primitives' llvm hooks
    def int_const(self, v: int):
        return ir.Constant(self.vty("int"), [v] * self.lanes) if self._vector_view else ir.Constant(I32, v)

    def real_const(self, v: float):
        return ir.Constant(self.vty("real"), [v] * self.lanes) if self._vector_view else ir.Constant(self.real, v)

    _vector_view = False

    def fptosi(self, b, v):
        if not self.is_vec(v):
            return super().fptosi(b, v)
        # C's (int)x on x86 lane by lane: truncation; NaN and out-of-range values give INT_MIN
        lo = self.splat(b, ir.Constant(v.type.element, -2147483648.0))
        hi = self.splat(b, ir.Constant(v.type.element, 2147483648.0))
        ok = b.and_(b.fcmp_ordered(">=", v, lo), b.fcmp_ordered("<", v, hi))
        ity = ir.VectorType(I32, self.lanes)
        return b.select(ok, b.fptosi(v, ity), ir.Constant(ity, [-(2**31)] * self.lanes))

    def vintrinsic(self, base: str, ty, n: int = 1):
        e = ty.element
        tname = f"v{self.lanes}" + ("f64" if e == ir.DoubleType() else "f32" if e == ir.FloatType() else "i32")
        return self.fn(f"llvm.{base}.{tname}", ty, [ty] * n)

    # -- expressions
    def expr(self, b, e, env):
        t = type(e)
        if t is LoadAt:
            return self.element(b, env, e.slot, self.expr(b, e.index, env))
        if t is Input:
            i = self.io_index(b, env)
            if e.back:
                i = b.sub(i, ir.Constant(I32, e.back))
            if e.index in self.shared_inputs:  # every lane reads the same buffer: one scalar
                p = b.gep(env["in"][e.index * self.lanes], [i], source_etype=self.real)
                return b.load(p, typ=self.real)
            if e.index in self.packed_inputs:  # the lanes interleaved in one buffer: sample i at i·L
                p = b.gep(env["in"][e.index * self.lanes], [b.mul(i, ir.Constant(I32, self.lanes))],
                          source_etype=self.real)
                return self.ld(b, p, self.vty("real"))
            vals = [b.load(b.gep(env["in"][e.index * self.lanes + k], [i], source_etype=self.real), typ=self.real)
                    for k in range(self.lanes)]
            return self.gather_vec(b, vals)
        if t is Cast:
            v = self.expr(b, e.expr, env)
            if e.nature == "real":
                return b.sitofp(v, self.vty("real") if self.is_vec(v) else self.real)
            return self.fptosi(b, v)
        if t is Op:
            args = [self.expr(b, a, env) for a in e.args]
            return self.op_values(b, e, args, [self.nature(a) for a in e.args])
        if t is Call:
            args = [self.expr(b, a, env) for a in e.args]
            if not any(self.is_vec(a) for a in args):
                return super().call_values(b, e, args)
            return self.gather_vec(b, [super(_LaneLower, self).call_values(b, e, [self.lane(b, a, k) for a in args])
                                       for k in range(self.lanes)])
        if t is LineRead:
            return self.line_read(b, e, env)
        return super().expr(b, e, env)  # Const, Var, Load (of the slot's type: llvm.state_ty)

    def op_values(self, b, e: Op, args, nats):
        if not any(self.is_vec(a) for a in args):
            return super().op_values(b, e, args, nats)
        p = PRIMITIVES[e.name]
        vargs = [self.splat(b, a) for a in args]
        if p.llvm is not None:
            if p.llvm not in self.vector_hooks:
                return self.per_lane(b, e, args, nats)
            self._vector_view = True
            real, self.real = self.real, self.vty("real")
            try:
                return p.llvm(self, b, e, vargs, nats)
            finally:
                self._vector_view = False
                self.real = real
        if p.code[0] not in ("binop", "cmp", "intrinsic"):
            return self.per_lane(b, e, args, nats)  # a C math function: once per lane, as the scalar program
        return super().op_values(b, e, vargs, nats)  # its rules build their constants like their operands

    def per_lane(self, b, e: Op, args, nats):
        """e lowered as the scalar program lowers it, once per lane."""
        return self.gather_vec(b, [super(_LaneLower, self).op_values(b, e, [self.lane(b, a, k) for a in args], nats)
                                   for k in range(self.lanes)])

    def intrinsic(self, base: str, ty):
        if isinstance(ty, ir.VectorType):
            return self.vintrinsic(base, ty)
        return super().intrinsic(base, ty)

    def line_read(self, b, e: LineRead, env):
        line = self._line(e.line)
        ty = self.state_ty(e.line)
        if line.is_scalar:
            a = env.get("alloca:" + e.line)
            return b.load(a, typ=ty) if a is not None else self.ld(b, self.slot_ptr(b, env["state"], e.line), ty)
        regs = env.get("shift:" + e.line)
        if regs is not None:
            return b.load(regs[int(e.delay.value)], typ=ty)
        d = self.expr(b, e.delay, env)
        iota = b.load(self.scalar_ptr(b, env, line.iota), typ=I32)
        if self.is_vec(d):
            iota = self.splat(b, iota)
        idx = b.and_(b.sub(iota, d), self.splat(b, ir.Constant(I32, line.mask)) if self.is_vec(d)
                     else ir.Constant(I32, line.mask))
        return self.element(b, env, e.line, idx)

    # -- statements
    def stmts(self, b, stmts, env):
        for st in stmts:
            t = type(st)
            if t is Output:
                v = self.expr(b, st.expr, env)
                i = self.io_index(b, env)
                if not self.is_vec(v) and st.index not in self.packed_outputs:  # the same in every lane
                    for k in range(self.lanes):
                        p = b.gep(env["out"][st.index * self.lanes + k], [i], source_etype=self.real)
                        b.store(v, p)
                    continue
                v = self.splat(b, v)
                if st.index in self.packed_outputs:  # interleaved: sample i at i·L
                    p = b.gep(env["out"][st.index * self.lanes], [b.mul(i, ir.Constant(I32, self.lanes))],
                              source_etype=self.real)
                    self.st(b, v, p)
                    continue
                for k in range(self.lanes):
                    p = b.gep(env["out"][st.index * self.lanes + k], [i], source_etype=self.real)
                    b.store(b.extract_element(v, ir.Constant(I32, k)), p)
            elif t is Accumulate:
                if st.slot in self.uniform:  # a uniform sum: the scalar rule
                    super().stmts(b, [st], env)
                    continue
                v = self.splat(b, self.expr(b, st.expr, env))
                dty = ir.VectorType(ir.DoubleType(), self.lanes)
                if v.type != dty:
                    v = b.fpext(v, dty)
                key = "alloca:" + st.slot
                if key in env:
                    p = env[key]
                    b.store(b.fadd(b.load(p, typ=dty), v), p)
                else:
                    p = self.slot_ptr(b, env["state"], st.slot)
                    self.st(b, b.fadd(self.ld(b, p, dty), v), p)
            elif t is StoreAt:
                idx = self.expr(b, st.index, env)
                if not self.is_vec(idx):
                    super().stmts(b, [st], env)
                    continue
                if st.slot in self.uniform:
                    raise DiffaustError(f"internal error (lanes): a per-lane index into uniform slot {st.slot}")
                v = self.splat(b, self.expr(b, st.expr, env))
                for k in range(self.lanes):
                    p = self.slot_ptr(b, env["state"], st.slot, self.lane(b, idx, k), k)
                    b.store(b.extract_element(v, ir.Constant(I32, k)), p)
            elif t is If:
                raise LanesUnsupported("control/enable: a condition may differ from lane to lane")
            else:
                super().stmts(b, [st], env)

    def init_table(self, b, state, s):
        super().init_table(b, state, s)  # uniform (checked in __init__): one copy

    def build(self):
        super().build()
        params = [name for name, _ in self.prog.params]
        self.param_offsets = [self.layout[name][0] for name in params]


def build_lane_module(prog: Program, sym: str, lanes: int, packed_inputs=frozenset(),
                      packed_outputs=frozenset(), shared_inputs=frozenset(),
                      shared_params=frozenset()) -> tuple[ir.Module, dict]:
    """LLVM IR module with `<sym>_init` and `<sym>_compute` running `lanes` instances at once
    (the channels of `packed_inputs` / `packed_outputs` interleaved: one buffer per channel,
    sample i of lane k at i·lanes + k, read / written as one vector; inputs[c·L] points to it;
    `shared_inputs`: inputs every lane reads from one buffer, inputs[c·L]; `shared_params`:
    parameter slots with one value for every lane);
    and what the runtime needs: {"state_size", "param_offsets" (UI order: lane 0's element;
    lane k's is k·width after it), "lanes", "layout" (`llvm.layout` with lanes)}."""
    import llvmlite.binding as llvm

    m = ir.Module(name=sym)
    m.triple = llvm.get_process_triple()
    with paused_gc():
        lower = _LaneLower(prog, m, sym, lanes, packed_inputs, packed_outputs, shared_inputs, shared_params)
        lower.build()
    return m, {"state_size": lower.size, "param_offsets": lower.param_offsets, "lanes": lanes,
               "layout": lower.layout,
               "param_uniform": [name in lower.uniform for name, _ in prog.params]}


__all__ = ["LanesUnsupported", "build_lane_module", "uniform_slots"]
