"""schedule: typed signals → a per-sample program (the scheduled IR).

The scheduled program, as Faust compiles it:
  init     run by init(sr): const-rate values (those depending on fSamplingFreq)
           stored in slots, tables filled by running their generator signals
  block    control-rate values (widgets), once per compute() call
  sample   the loop body, in dependency order
  post     end-of-sample updates: one-sample memories, prefix states, IOTA

Delays: x@d reads a delay line of x.  A line whose reads are all one sample
back is a scalar (written in `post`); longer lines are power-of-two ring
buffers indexed by IOTA (written when x is computed).  A read that is at least
one sample back does not need x computed first: that is what makes recursion
schedulable.  A recursive group computes all its bodies, then its outputs.

The IR is small dataclasses; `clike.format_schedule` prints it, `llvm` and
`interp` run it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from dataclasses import dataclass, field
from typing import Optional

from ..errors import FaustTypeError
from ..primitives.table import PRIMITIVES
from ..signals.build import paused_gc
from ..signals.nodes import Sig
from ..signals.types import Types

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Const:
    nature: str
    value: object


@dataclass(frozen=True)
class Var:
    name: str
    nature: str


@dataclass(frozen=True)
class Load:
    slot: str
    nature: str


@dataclass(frozen=True)
class LoadAt:
    slot: str
    index: object
    nature: str


@dataclass(frozen=True)
class Input:
    """Input channel `index` at the current sample, or `back` samples before it in the
    buffer's time (reverse mode's tape: the caller provides `back` samples of history
    before the buffer's start)."""

    index: int
    back: int = 0


@dataclass(frozen=True)
class Op:
    """Primitive `name` applied to args already converted to the natures it wants."""

    name: str
    args: tuple
    nature: str


@dataclass(frozen=True)
class Cast:
    nature: str
    expr: object


@dataclass(frozen=True)
class Call:
    """Foreign function call (ffunction): C name, args, result nature."""

    fname: str
    args: tuple
    nature: str
    symbol: str = ""  # what the JIT links (a header function's shim); fname when empty


@dataclass(frozen=True)
class RingIndex:
    """(IOTA - delay) & mask of a ring buffer line, mask known once the line is sized."""

    line: str
    delay: object  # int expression


# ---------------------------------------------------------------- statements


@dataclass
class Let:
    var: Var
    expr: object


@dataclass
class Store:
    slot: str
    expr: object


@dataclass
class StoreAt:
    slot: str
    index: object
    expr: object


@dataclass
class LineWrite:
    """Write x into delay line `line` (ring lines: at the current IOTA; scalar lines: nothing)."""

    line: str
    expr: object


@dataclass
class LineCommit:
    """End of sample: scalar lines take x (ring lines: nothing)."""

    line: str
    expr: object


@dataclass
class Accumulate:
    """slot += expr, in double precision whatever the program's (a gradient summed over time)."""

    slot: str
    expr: object


@dataclass
class Output:
    index: int
    expr: object


@dataclass
class Fill:
    """Fill table `slot` (size entries) by running a generator program `size` samples."""

    slot: str
    size: int
    sample: list
    post: list
    value: object
    clear: list  # slots of the generator's state, zeroed before the loop
    iota: str


@dataclass
class Slot:
    """Persistent storage in the DSP state: a scalar (size 1) or an array."""

    name: str
    nature: str
    size: int = 1
    kind: str = "state"  # param | state | table | const | sr | iota | line
    init: Optional[list] = None  # constant content (waveforms)


@dataclass
class Line:
    """The delay line of one signal."""

    name: str
    nature: str
    max_delay: int = 0
    iota: str = "IOTA"

    @property
    def is_scalar(self) -> bool:
        return self.max_delay <= 1

    @property
    def size(self) -> int:
        return 1 if self.is_scalar else 1 << (self.max_delay).bit_length()

    @property
    def mask(self) -> int:
        return self.size - 1


@dataclass
class Program:
    """A scheduled DSP: slots, sections and I/O counts."""

    inputs: int
    outputs: int
    real: str  # 'float' | 'double'
    slots: list = field(default_factory=list)
    lines: dict = field(default_factory=dict)
    init: list = field(default_factory=list)
    block: list = field(default_factory=list)
    sample: list = field(default_factory=list)
    post: list = field(default_factory=list)
    params: list = field(default_factory=list)  # (slot name, Control), UI order
    bargraphs: list = field(default_factory=list)
    iotas: list = field(default_factory=list)
    # sample i of the loop reads inputs and writes outputs at count-1-i: the program runs
    # backward in time over its buffers (reverse mode's adjoint program)
    reversed_io: bool = False
    accumulators: list = field(default_factory=list)  # double slots summing the last outputs over time
    iota_readers: set = field(default_factory=set)  # IOTAs read by statements other than lines (scatter)
    foreign: dict = field(default_factory=dict)  # C name → JIT symbol (header-defined ffunctions)

    def slot(self, name: str) -> Slot:
        return self._index[name]

    def finalize(self):
        used = {line.iota for line in self.lines.values() if not line.is_scalar} | self.iota_readers
        # IOTA advances only where a ring buffer reads it
        self.post = [st for st in self.post
                     if not (isinstance(st, Store) and st.slot in self.iotas and st.slot not in used)]
        for st in self.init:
            if isinstance(st, Fill):
                st.post = [p for p in st.post
                           if not (isinstance(p, Store) and p.slot in self.iotas and p.slot not in used)]
        for line in self.lines.values():
            self.slots.append(Slot(line.name, line.nature, line.size, "line"))
        self._index = {s.name: s for s in self.slots}


# ---------------------------------------------------------------- the scheduler


class _Scheduler:
    """Compiles signals into one loop (the main program, or a table generator)."""

    def __init__(self, prog: Program, types: Types, prefix: str, main: bool):
        self.prog = prog
        self.t = types
        self.prefix = prefix
        self.main = main
        self.memo: dict = {}
        self.sample: list = []
        self.post: list = []
        self.pending: list = []
        self.written: set = set()
        self.busy: set = set()
        self.done_groups: dict = {}
        self.counter = 0
        self.own_slots: list = []
        self.iota = f"{prefix}IOTA"
        prog.slots.append(Slot(self.iota, "int", 1, "iota"))
        self.own_slots.append(self.iota)
        prog.iotas.append(self.iota)

    # -- naming
    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{self.prefix}{base}{self.counter}"

    def new_slot(self, base: str, nature: str, size: int = 1, kind: str = "state", init=None) -> str:
        name = self.fresh(base)
        self.prog.slots.append(Slot(name, nature, size, kind, init))
        if kind not in ("const", "table"):
            self.own_slots.append(name)
        return name

    # -- emission
    def emit(self, rate: str, stmt):
        if rate == "const":
            self.prog.init.append(stmt)
        elif rate == "control":
            if not self.main:
                raise FaustTypeError("a table's content must be computable at init: "
                                     "it cannot depend on a widget")
            self.prog.block.append(stmt)
        else:
            self.sample.append(stmt)

    def bind(self, s: Sig, expr, rate: str, base: str = "t"):
        """Name the value of `s` in its rate's section; returns the expression to use."""
        nature = self.t.nature[s]
        if isinstance(expr, (Const, Var, Load)):
            return expr
        if rate == "const":
            slot = self.new_slot("fConst", nature, kind="const")
            v = Var(self.fresh("c"), nature)
            self.prog.init.append(Let(v, expr))
            self.prog.init.append(Store(slot, v))
            return Load(slot, nature)
        v = Var(self.fresh({"control": "fSlow", "sample": base}.get(rate, base)), nature)
        self.emit(rate, Let(v, expr))
        return v

    # -- conversions
    def conv(self, e, have: str, want: str):
        if have == want or want == "any":
            return e
        if isinstance(e, Const):
            return Const(want, float(e.value) if want == "real" else int(e.value))
        return Cast(want, e)

    def arg(self, s: Sig, want: str):
        return self.conv(self.compile(s), self.t.nature[s], want)

    # -- the main recursion
    def compile(self, s: Sig):
        r = self.memo.get(s)
        if r is not None:
            return r
        if s in self.busy:
            raise FaustTypeError("recursion without delay: a signal depends on its own current value")
        self.busy.add(s)
        try:
            r = self._compile(s)
        finally:
            self.busy.discard(s)
        self.memo[s] = r
        return r

    def _compile(self, s: Sig):
        """The expression of s's value: the `schedule` rule of its op (signals/ops.py), which
        uses the machinery below (slots, delay lines, recursion groups, tables)."""
        from ..signals.ops import rule

        return rule(s.op, "schedule")(self, s)

    def _param_slot(self, s: Sig) -> str:
        for name, c in self.prog.params + self.prog.bargraphs:
            if c == s.attr:
                return name
        if not self.main:
            raise FaustTypeError("a table's content must be computable at init: it cannot depend on a widget")
        name = f"fParam{len(self.prog.params) + len(self.prog.bargraphs)}"
        self.prog.slots.append(Slot(name, "real", 1, "param"))
        (self.prog.bargraphs if s.op == "bargraph" else self.prog.params).append((name, s.attr))
        return name

    def _prim(self, s: Sig, rate: str):
        name = s.attr
        p = PRIMITIVES[name]
        nature = self.t.nature[s]
        if p.schedule is not None:  # not an operation at run time (attach, lowest...): its own rule
            return p.schedule(self, s)
        conv = p.convert
        natures = [self.t.nature[a] for a in s.args]
        if conv == "same":
            want = ["real" if "real" in natures else "int"] * len(s.args)
        elif conv == "real":
            want = ["real"] * len(s.args)
        elif conv == "int":
            want = ["int"] * len(s.args)
        else:
            want = []
            for a_nat, c in zip(natures, conv):
                if c == "same":
                    others = [n for n, cc in zip(natures, conv) if cc == "same"]
                    want.append("real" if "real" in others else "int")
                else:
                    want.append(c)
        args = tuple(self.arg(a, w) for a, w in zip(s.args, want))
        return self.bind(s, Op(name, args, nature), rate)

    def _compile_extra(self, s: Sig):
        """Compile a node built here (not in the typed program): type it on the fly."""
        self._type_extra(s)
        return self.compile(s)

    def _type_extra(self, s: Sig):
        from ..signals.types import INF, infer_types

        if s in self.t.nature:
            return
        g = s.args[0] if s.op == "proj" else None
        if g is not None and g.op == "rec" and self.t.groups.get(g.attr) is g and g.attr in self.t.group_natures:
            # a closed projection of a typed group: no need to re-type the whole group
            self.t.nature[s] = self.t.group_natures[g.attr][s.attr]
            self.t.rate[s] = "sample"
            self.t.interval[s] = (-INF, INF)
        else:
            extra = infer_types([s])
            for k in ("nature", "rate", "interval"):
                for n, v in getattr(extra, k).items():
                    getattr(self.t, k).setdefault(n, v)

    # -- delays
    def _line(self, x: Sig) -> Line:
        key = x
        line = self.prog.lines.get((self.prefix, key))
        if line is None:
            line = Line(self.fresh("fVec"), self.t.nature[x], 0, self.iota)
            self.prog.lines[(self.prefix, key)] = line
            self.own_slots.append(line.name)
        return line

    def _closed(self, x: Sig) -> Sig:
        """proj(i, recvar v) → proj(i, rec v): the same signal, closed."""
        if x.op == "proj" and x.args[0].op == "recvar":
            g = self.t.groups[x.args[0].attr]
            from ..signals.nodes import proj

            return proj(x.attr, g)
        return x

    def _delay(self, s: Sig):
        try:
            return self._delay_checked(s)
        except FaustTypeError as e:
            if getattr(e, "sig", None) is None:
                e.sig = s.args[1]  # the delay amount: the pipeline finds its place in the source
            raise

    def _amount_bound(self, d: Sig) -> int:
        """The largest value of a delay amount d (> -1, bounded: FaustTypeError otherwise)."""
        lo, hi = self.t.interval[d]
        if math.isinf(lo) or math.isinf(hi):
            raise FaustTypeError("cannot bound the delay: the delay amount has no known range "
                                 "(use a constant, a slider, or clamp it with min/max)")
        if lo <= -1:  # the amount is truncated toward zero (as Faust): int(d) < 0 only from -1 down
            raise FaustTypeError(f"negative delay: the delay amount may be as low as {lo:g} "
                                 "(a delay must be > -1: it is truncated toward zero)")
        if math.isinf(hi):
            raise FaustTypeError("cannot bound the delay: the delay amount has no known maximum "
                                 "(use a constant, a slider, or min(d, N))")
        if hi > 2**24:
            raise FaustTypeError(f"delay too long: the delay amount may be as high as {hi:g} samples, "
                                 f"at most {2**24} (2^24) are supported (clamp it with min(d, N))")
        return int(hi)

    def _delay_checked(self, s: Sig):
        x, d = s.args
        x = self._closed(x)
        lo = self.t.interval[d][0]
        maxd = self._amount_bound(d)
        self._type_extra(x)
        line = self._line(x)
        line.max_delay = max(line.max_delay, maxd)
        d_e = self.arg(d, "int")
        if not (isinstance(d_e, Const) and d_e.value == 1):
            line.max_delay = max(line.max_delay, 2)  # variable or long delays use a ring buffer
        if lo < 1:
            self._ensure_written(x, line)
        else:
            self.pending.append((x, line))
        return self.bind(s, LineRead(line.name, d_e, line.nature), "sample", "fTemp")

    def _ensure_written(self, x: Sig, line: Line):
        if line.name in self.written:
            return
        e = self.compile(x)
        if line.name in self.written:
            return
        self.written.add(line.name)
        self.sample.append(LineWrite(line.name, e))
        self.post.append(LineCommit(line.name, e))

    # -- recursion
    def _proj(self, s: Sig):
        s = self._closed(s)
        g = s.args[0]
        vals = self.done_groups.get(g)
        if vals is None:
            if g in self.busy:
                raise FaustTypeError("recursion without delay: a recursive definition uses its own "
                                     "current value (each ~ adds one sample of delay; check the loop)")
            self.busy.add(g)
            try:
                exprs = [self.compile(b) for b in g.args]
            finally:
                self.busy.discard(g)
            vals = []
            for i, (b, e) in enumerate(zip(g.args, exprs)):
                nat = self.t.nature[self._proj_node(g, i)]
                e = self.conv(e, self.t.nature[b], nat)
                v = Var(self.fresh(f"{g.attr}_"), nat)
                self.sample.append(Let(v, e))
                vals.append(v)
            self.done_groups[g] = vals
        return vals[s.attr]

    def _proj_node(self, g, i):
        from ..signals.nodes import proj

        p = proj(i, g)
        self._type_extra(p)
        return p

    def _prefix(self, s: Sig):
        init, x = s.args
        nature = self.t.nature[s]
        state = self.new_slot("fPrefix", nature)
        started = self.new_slot("iPrefixOn", "int")
        i_e = self.arg(init, nature)
        out = self.bind(s, Op("select2", (Load(started, "int"), i_e, Load(state, nature)), nature), "sample")
        self.pending.append(("prefix", x, state, started, nature))
        return out

    # -- tables
    def _fill(self, gen: Sig, size: int, nature: str, base: str) -> str:
        slot = self.new_slot(base, nature, size, "table")
        sub = _Scheduler(self.prog, self.t, f"{self.prefix}g{self.counter}_", main=False)
        self.counter += 1
        v = sub.compile(gen)
        v = sub.conv(v, self.t.nature[gen], nature)
        sub.drain()
        self.prog.init.append(Fill(slot, size, sub.sample, sub.post, v, sub.own_slots, sub.iota))
        return slot

    def _clamp(self, idx: Sig, size: int):
        i = self.arg(idx, "int")
        return Op("max", (Op("min", (i, Const("int", size - 1)), "int"), Const("int", 0)), "int")

    def _rdtable(self, s: Sig, rate: str):
        size = s.attr
        gen, idx = s.args
        nature = self.t.nature[s]
        key = ("table", gen, size)
        slot = self.memo.get(key)
        if slot is None:
            if gen.op == "waveform" and len(gen.attr) == size and self.t.nature[gen] == nature:
                # a waveform's first `size` values are its values: no generator to run
                slot = self.new_slot("ftbl", nature, size, "table", init=list(gen.attr))
            else:
                slot = self._fill(gen, size, nature, "ftbl")
            self.memo[key] = slot
        return self.bind(s, LoadAt(slot, self._clamp(idx, size), nature), rate)

    def _rwtable(self, s: Sig):
        size = s.attr
        gen, widx, wsig, ridx = s.args
        nature = self.t.nature[s]
        slot = self._fill(gen, size, nature, "itbl" if nature == "int" else "ftbl")
        w = self._clamp(widx, size)
        v = self.arg(wsig, nature)
        self.sample.append(StoreAt(slot, w, v))  # a read sees the write of the same sample
        return self.bind(s, LoadAt(slot, self._clamp(ridx, size), nature), "sample")

    # -- finishing the loop
    def drain(self):
        """Compile what delay reads and prefixes left pending, then end the sample."""
        while self.pending:
            item = self.pending.pop(0)
            if item[0] == "prefix":
                _, x, state, started, nature = item
                e = self.arg(x, nature)
                self.post.append(Store(state, e))
                self.post.append(Store(started, Const("int", 1)))
            else:
                x, line = item
                self._ensure_written(x, line)
        self.post.append(Store(self.iota, Op("+", (Load(self.iota, "int"), Const("int", 1)), "int")))


@dataclass(frozen=True)
class LineRead:
    """Value of delay line `line`, `delay` samples back."""

    line: str
    delay: object
    nature: str


def schedule(outputs, types: Types, inputs: int, double: bool = False, foreign=None, accumulate: int = 0) -> Program:
    """The scheduling pass: typed output signals → Program.

    foreign: {C name: JIT symbol} of ffunctions defined in headers (codegen.foreign_c).
    accumulate: the last `accumulate` outputs are not written per sample but summed over
    time into double slots (Program.accumulators), which a reset zeroes."""
    with paused_gc():
        return _schedule(outputs, types, inputs, double, foreign, accumulate)


def _schedule(outputs, types: Types, inputs: int, double: bool, foreign, accumulate: int = 0) -> Program:
    prog = Program(inputs=inputs, outputs=len(outputs) - accumulate, real="double" if double else "float")
    prog.foreign = dict(foreign or {})
    prog.slots.append(Slot("fSamplingFreq", "int", 1, "sr"))
    # widgets first, in UI order, so parameter slots have stable indices
    from ..signals.nodes import walk

    controls = sorted({n for n in walk(outputs) if n.op == "control"}, key=lambda n: n.attr.path.split("/"))
    sch = _Scheduler(prog, types, "", main=True)
    for c in controls:
        sch._param_slot(c)
    outs = []
    for s in outputs:
        e = sch.compile(s)
        outs.append(sch.conv(e, types.nature[s], "real"))
    sch.drain()
    for i, e in enumerate(outs):
        if i < prog.outputs:
            sch.sample.append(Output(i, e))
        else:
            slot = f"fAcc{i - prog.outputs}"
            prog.slots.append(Slot(slot, "double", 1, "state"))
            prog.accumulators.append(slot)
            sch.sample.append(Accumulate(slot, e))
    prog.sample = sch.sample
    prog.post = sch.post
    prog.finalize()
    return prog


@functools.lru_cache(maxsize=None)
def _loaded(library: str) -> bool:
    """Load a foreign function's library (ffunction's third field) for the process; False if absent."""
    if not library:
        return False
    for name in (library, ctypes.util.find_library(library.removeprefix("-l").removeprefix("lib"))):
        if not name:
            continue
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            return True
        except OSError:
            continue
    return False


@functools.lru_cache(maxsize=None)
def _process_symbols():
    """The process's global symbol table (libc, libm and loaded libraries), as ctypes sees it."""
    return ctypes.CDLL(None)


def foreign_name(f, double: bool) -> str:
    """The C name an ffunction calls at a precision: its first name in float, its second in double.

    A single name that is a C math function of doubles (`hypot`), called in float: its float
    variant (`hypotf`), as C++'s overloads pick for Faust's generated code; calling the double
    function with float arguments would read garbage registers."""
    if double and len(f.names) >= 2:
        return f.names[1]
    name = f.names[0]
    if not double and len(f.names) == 1 and f.result_type != "int" and name in _libm_doubles():
        return name + "f"
    return name


@functools.lru_cache(maxsize=None)
def _libm_doubles() -> frozenset:
    """The C math functions of doubles whose float variant is the name + 'f'."""
    from ..primitives.foreign import FOREIGN
    from ..primitives.table import libm_symbols

    return frozenset(libm_symbols()) | frozenset(FOREIGN)


def resolvable(fname: str, f) -> bool:
    """Whether the process can link `fname` (libm, libc, or the ffunction's named library)."""
    _loaded(f.library)
    return hasattr(_process_symbols(), fname)


def check_foreign(fname: str, f) -> None:
    """A foreign function must resolve in this process (libm and libc are loaded; an
    ffunction's library is loaded when named): else a clear error, not a JIT abort."""
    _loaded(f.library)
    if not hasattr(_process_symbols(), fname):
        what = f" (library \"{f.library}\")" if f.library else ""
        raise FaustTypeError(f"foreign function '{fname}' declared with ffunction from {f.include or 'no header'}"
                             f"{what} cannot be found: it is neither in the C math library nor in a loaded library")
