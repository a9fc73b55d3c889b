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

Conditions (control / enable): `conditions` annotates every signal with when it is
needed (Faust's conditionAnnotation: a disjunction of conjunctions of `c != 0`); the
statements of a signal needed under a condition, in `sample` and `post` alike (its
value, a recursion's values, a line's write and commit, a waveform's index, a prefix's
state), are emitted into an `If` block (consecutive statements under the same condition
share one).  A value read outside its block goes through a state slot holding its last
computed value (`_Scheduler.seen_from_here`): what a control outputs while its condition
is 0.  A short ring line of a conditioned signal advances its own IOTA under the
condition (Faust's shift registers freeze whole).  Backends lower `If` as a branch.

The IR is small dataclasses; `clike.format_schedule` prints it, `llvm` and
`interp` run it, `cpp` exports it.
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
    # a C function of floats called from a double program (`sinf` declared alone): its real
    # arguments are rounded to float and its float result widened, as C++'s conversions do
    single: bool = False


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
class If:
    """Run `body` only when `cond` (an int expression) is not 0: the statements of the
    signals that only a `control(x, c)` / `enable(x, c)` uses, as Faust's `if (c) {...}`
    (their state freezes while c is 0).  `guard` is the condition as the scheduler knows it
    (a DNF of condition signals, see `conditions`); backends read `cond` only.  A variable
    defined in `body` may be read by a later statement guarded by the same condition
    (another `If` with an equal `guard`); anything else reads it through a slot."""

    cond: object
    body: list
    guard: object = None


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


# ---------------------------------------------------------------- execution conditions

# A condition is a disjunction of conjunctions of condition signals (Faust's DNF): a
# frozenset of terms, each a frozenset of signals c (true when every c != 0).  TRUE is one
# empty term; a term that contains another is absorbed by it (c1 | (c1 & c2) = c1).
TRUE = frozenset([frozenset()])

# Faust keeps a line whose largest delay is below this (-mcd, 16) as a shift register (frozen
# with its signal's condition, read in place); longer lines are rings on the global IOTA
MAX_COPY_DELAY = 16


def _absorb(terms: frozenset) -> frozenset:
    if len(terms) <= 1:
        return terms
    return frozenset(t for t in terms if not any(u < t for u in terms))


def dnf_or(a: frozenset, b: frozenset) -> frozenset:
    return a if a == b else _absorb(a | b)


def dnf_and(a: frozenset, atom: Sig) -> frozenset:
    return _absorb(frozenset(t | {atom} for t in a))


def is_control(s: Sig) -> bool:
    """A `control(x, c)` node (enable(x, c) is control(x·c, c))."""
    return s.op == "prim" and s.attr == "control"


def conditions(outputs, partners: dict | None = None) -> dict:
    """{node: condition} for every node reachable from `outputs`: when its value is needed
    (Faust's conditionAnnotation).  An output is needed always (TRUE); a node's arguments
    are needed when it is, except `control(x, c)`'s x, needed when it is and c != 0; a node
    used in several places is needed when any of them is (the disjunction).  A feedback
    reference proj(i, recvar v) counts as a use of proj(i, g) of each group g named v, and
    the groups of one name (computed once) share their condition; a table's generator is
    computed at init (never conditioned).  {} when the program has no `control`: everything
    is computed every sample.

    Forward mode's tangent group of a group v (autodiff/jvp.py names it v_dK) is computed
    whenever v is (its state runs and freezes with v's), even where only a control uses
    it: v may run every sample for a use whose derivative is 0 (a comparison).  So are the
    tangents of a delay, prefix or rwtable (`partners`: {primal node: [tangent nodes]},
    from `jvp_program`): the tangent's line is written whenever the primal's is."""
    import re

    from ..signals.nodes import proj, walk

    order = walk(outputs)
    if not any(is_control(n) for n in order):
        return {}
    partners = partners or {}
    groups: dict = {}
    for n in order:
        if n.op == "rec":
            groups.setdefault(n.attr, []).append(n)
    tangents: dict = {}  # group name -> its tangent groups
    for name, gs in groups.items():
        m = re.fullmatch(r"(.+)_d\d+", name)
        if m and m.group(1) in groups:
            tangents.setdefault(m.group(1), []).extend(gs)

    def uses(n, nc):
        """(argument, condition) of n's uses of other nodes when n is needed under nc; the
        references that lead back up (to a group, to another group of the same name or to
        a tangent group) are in `extra`."""
        op = n.op
        if op == "prim" and n.attr == "control":
            x, c = n.args
            return ((c, nc), (x, dnf_and(nc, c))), ()
        if op == "proj" and n.args[0].op == "recvar":
            return ((a, nc) for a in n.args), [(proj(n.attr, g), nc) for g in groups.get(n.args[0].attr, ())]
        if op == "rec":
            return ((a, nc) for a in n.args), [(g, nc) for g in groups.get(n.attr, ()) if g is not n] \
                + [(g, nc) for g in tangents.get(n.attr, ())]
        if op in ("delay", "prefix", "rwtable") and n in partners:
            direct, _ = uses_plain(n, nc)
            return direct, [(p, nc) for p in partners[n]]
        return uses_plain(n, nc)

    def uses_plain(n, nc):
        op = n.op
        if op == "rdtable":
            return ((n.args[1], nc),), ()
        if op == "rwtable":
            return ((a, nc) for a in n.args[1:]), ()
        return ((a, nc) for a in n.args), ()

    # parents before children (each node once: its condition is complete when its turn
    # comes), then what the references back up add, until nothing changes
    cond: dict = {o: TRUE for o in outputs}
    back = []
    for n in reversed(order):
        nc = cond.get(n)
        if nc is None:
            continue
        direct, extra = uses(n, nc)
        for a, ac in direct:
            cc = cond.get(a)
            cond[a] = ac if cc is None else dnf_or(cc, ac)
        back.extend(extra)
    stack = back[::-1]
    while stack:
        n, nc = stack.pop()
        cc = cond.get(n)
        if cc is not None:
            xc = dnf_or(cc, nc)
            if xc == cc:
                continue
            nc = xc
        cond[n] = nc
        direct, extra = uses(n, nc)
        stack.extend(direct)
        stack.extend(extra)
    return cond


class _Section(list):
    """A statement list of the sample loop (`sample` or `post`) that puts what is appended
    under the scheduler's current condition (`_Scheduler.ctx`): consecutive statements with
    the same condition share one `If`."""

    def __init__(self, sch):
        super().__init__()
        self.sch = sch

    def append(self, st):
        sch = self.sch
        g = sch.ctx
        if g == TRUE:
            list.append(self, st)
            return
        cond = sch.guard_expr(g)  # may compile condition signals (appended first)
        last = self[-1] if self else None
        if isinstance(last, If) and last.guard == g:
            body = last.body
        else:
            body = []
            list.append(self, If(cond, body, g))
        body.append(st)
        if isinstance(st, Let):
            sch.var_guard[st.var.name] = (g, body, st)


# ---------------------------------------------------------------- the scheduler


class _Scheduler:
    """Compiles signals into one loop (the main program, or a table generator)."""

    def __init__(self, prog: Program, types: Types, prefix: str, main: bool, cond: dict | None = None):
        self.prog = prog
        self.t = types
        self.prefix = prefix
        self.main = main
        self.memo: dict = {}
        # execution conditions (`conditions`; {}: none, everything every sample), the one of
        # what is being compiled, and the variables defined under a condition:
        # name -> (condition, the If body holding its Let, the Let)
        self.cond = cond or {}
        self.ctx = TRUE
        self.var_guard: dict = {}
        self.guards: dict = {}  # condition -> its int expression
        self.perms: dict = {}   # variable name -> the slot keeping its last value
        self.line_guard: dict = {}  # line name -> condition of its signal (when not TRUE)
        self.sample: list = _Section(self)
        self.post: list = _Section(self)
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
        if r is None:
            if s in self.busy:
                raise FaustTypeError("recursion without delay: a signal depends on its own current value")
            self.busy.add(s)
            saved = self.ctx
            if self.cond:
                self.ctx = self.cond.get(s, saved)
            try:
                r = self._compile(s)
            finally:
                self.busy.discard(s)
                self.ctx = saved
            self.memo[s] = r
        if self.var_guard and type(r) is Var:
            return self.seen_from_here(r)
        return r

    # -- execution conditions (control / enable)
    def seen_from_here(self, v: Var):
        """v as the statement being compiled reads it: v itself when v was computed under
        the same condition (or none); else through a slot that keeps v's last computed value
        (Faust's fTempPerm): v's own statements may not have run this sample (the value a
        `control` holds while its condition is off), and a value computed in one `If` is not
        a variable of another statement."""
        home = self.var_guard.get(v.name)
        if home is None or home[0] == self.ctx:
            return v
        slot = self.perms.get(v.name)
        if slot is None:
            slot = self.perms[v.name] = self.new_slot("iPerm" if v.nature == "int" else "fPerm", v.nature)
            _, body, let = home
            at = next(k for k, st in enumerate(body) if st is let)
            body.insert(at + 1, Store(slot, v))
        return Load(slot, v.nature)

    def guard_expr(self, g: frozenset):
        """The int expression of condition g: (c1 != 0 & c2 != 0) | ... (evaluated outside
        every If: it reads the condition signals as seen from there)."""
        e = self.guards.get(g)
        if e is not None:
            return e
        saved, self.ctx = self.ctx, TRUE
        try:
            terms = []
            for term in sorted(g, key=lambda t: sorted(c.serial for c in t)):
                atoms = []
                for c in sorted(term, key=lambda c: c.serial):
                    nat = self.t.nature[c]
                    atoms.append(Op("!=", (self.compile(c), Const(nat, 0.0 if nat == "real" else 0)), "int"))
                e = atoms[0]
                for a in atoms[1:]:
                    e = Op("&", (e, a), "int")
                terms.append(e)
            e = terms[0]
            for t in terms[1:]:
                e = Op("|", (e, t), "int")
        finally:
            self.ctx = saved
        self.guards[g] = e
        return e

    def _control(self, s: Sig):
        """control(x, c): x's statements run under c (their condition, `conditions`); the
        value is x as seen from here (`seen_from_here`: held while c is 0), except what
        Faust reads in place, without a variable: a value computed outside the sample loop
        (constant, widget: x itself, whatever c) and a read at a constant delay of a short
        line (below MAX_COPY_DELAY: the line as it is now, frozen if its signal is)."""
        x, c = s.args
        self.compile(c)
        e = self.compile(x)
        if x.op == "delay" and x.args[1].op == "const" and self.t.rate[x] == "sample":
            src = self._closed(x.args[0])
            line = self.prog.lines.get((self.prefix, src))
            if line is not None and self._faust_max_delay(src) < MAX_COPY_DELAY:
                return LineRead(line.name, Const("int", int(x.args[1].attr[1])), line.nature)
        return e

    def _faust_max_delay(self, x: Sig) -> int:
        """The largest delay at which the program reads x (what sizes Faust's line of x)."""
        table = getattr(self, "_maxd", None)
        if table is None:
            table = self._maxd = {}
            for n in self.cond:
                if n.op == "delay":
                    k = self._closed(n.args[0])
                    hi = self.t.interval.get(n.args[1], (0, 0))[1]
                    table[k] = max(table.get(k, 0), int(hi) if math.isfinite(hi) else MAX_COPY_DELAY)
        return table.get(x, 0)

    def _freeze_short_lines(self):
        """A ring line of a conditioned signal that Faust keeps as a shift register (below
        MAX_COPY_DELAY) freezes with it: its own IOTA, advanced under the signal's condition.
        (Longer lines are on the global IOTA, which always advances, as Faust's.)"""
        for line in list(self.prog.lines.values()):
            g = self.line_guard.get(line.name)
            if g is None or line.is_scalar or line.iota != self.iota or line.max_delay >= MAX_COPY_DELAY:
                continue
            line.iota = self.new_slot("IOTA_", "int", kind="iota")
            self.prog.iotas.append(line.iota)
            saved, self.ctx = self.ctx, g
            try:
                self.post.append(Store(line.iota, Op("+", (Load(line.iota, "int"), Const("int", 1)), "int")))
            finally:
                self.ctx = saved

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
            r = p.schedule(self, s)  # (None: the operation after all, as below)
            if r is not None:
                return r
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
        saved = self.ctx
        if self.cond:  # a line is written where (and when) its signal is computed
            self.ctx = self.cond.get(x, saved)
        try:
            e = self.compile(x)
            if line.name in self.written:
                return
            self.written.add(line.name)
            if self.ctx != TRUE:
                self.line_guard[line.name] = self.ctx
            self.sample.append(LineWrite(line.name, e))
            self.post.append(LineCommit(line.name, e))
        finally:
            self.ctx = saved

    # -- recursion
    def _proj(self, s: Sig):
        s = self._closed(s)
        g = s.args[0]
        # keyed by the group's name: one recursion, whether closed or still open inside an
        # enclosing group's bodies (a nested group rebuilt when forward mode closes the outer
        # recursion), is computed once per sample; its state is keyed by name too (_closed)
        key = ("group", g.attr)
        vals = self.done_groups.get(key)
        if vals is None:
            if key in self.busy:
                raise FaustTypeError("recursion without delay: a recursive definition uses its own "
                                     "current value (each ~ adds one sample of delay; check the loop)")
            self.busy.add(key)
            saved = self.ctx
            if self.cond:  # a group is computed when any of its outputs is needed
                self.ctx = self.cond.get(g, saved)
            try:
                exprs = [self.compile(b) for b in g.args]
                vals = []
                for i, (b, e) in enumerate(zip(g.args, exprs)):
                    nat = self.t.nature[self._proj_node(g, i)]
                    e = self.conv(e, self.t.nature[b], nat)
                    v = Var(self.fresh(f"{g.attr}_"), nat)
                    self.sample.append(Let(v, e))
                    vals.append(v)
            finally:
                self.busy.discard(key)
                self.ctx = saved
            self.done_groups[key] = vals
        if self.var_guard:
            return self.seen_from_here(vals[s.attr])
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
        self.pending.append(("prefix", x, state, started, nature, self.ctx))
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
                _, x, state, started, nature, ctx = item
                saved, self.ctx = self.ctx, ctx  # the prefix's state updates when it is computed
                try:
                    e = self.arg(x, nature)
                    self.post.append(Store(state, e))
                    self.post.append(Store(started, Const("int", 1)))
                finally:
                    self.ctx = saved
            else:
                x, line = item
                self._ensure_written(x, line)
        if self.line_guard:
            self._freeze_short_lines()
        self.post.append(Store(self.iota, Op("+", (Load(self.iota, "int"), Const("int", 1)), "int")))


@dataclass(frozen=True)
class LineRead:
    """Value of delay line `line`, `delay` samples back."""

    line: str
    delay: object
    nature: str


def schedule(outputs, types: Types, inputs: int, double: bool = False, foreign=None, accumulate: int = 0,
             partners: dict | None = None) -> Program:
    """The scheduling pass: typed output signals → Program.

    foreign: {C name: JIT symbol} of ffunctions defined in headers (codegen.foreign_c).
    accumulate: the last `accumulate` outputs are not written per sample but summed over
    time into double slots (Program.accumulators), which a reset zeroes.
    partners: forward mode's {stateful primal node: [tangent nodes]} (see `conditions`)."""
    with paused_gc():
        return _schedule(outputs, types, inputs, double, foreign, accumulate, partners)


def _schedule(outputs, types: Types, inputs: int, double: bool, foreign, accumulate: int = 0,
              partners: dict | None = None) -> Program:
    prog = Program(inputs=inputs, outputs=len(outputs) - accumulate, real="double" if double else "float")
    prog.foreign = dict(foreign or {})
    prog.slots.append(Slot("fSamplingFreq", "int", 1, "sr"))
    # widgets first, in UI order, so parameter slots have stable indices
    from ..signals.nodes import walk

    controls = sorted({n for n in walk(outputs) if n.op == "control"}, key=lambda n: n.attr.path.split("/"))
    sch = _Scheduler(prog, types, "", main=True, cond=conditions(outputs, partners))
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


# Faust's C++ backend writes these C math functions, under any of their names (`sinf`,
# `sin`), as the std:: overload of the program's precision (measured, faust 2.54.9 -double:
# `ffunction(float sinf(float), ...)` is `std::sin(double)`); any other is called by its name
_STD_MAPPED = frozenset("sin cos tan asin acos atan atan2 exp exp2 log log10 log2 sqrt floor ceil rint round "
                        "fabs pow fmod remainder".split())


def single_precision_call(f, fname: str, double: bool) -> bool:
    """Whether `fname` is the float variant of a C math function (`tanhf`) that a double
    program calls as written: Faust's `-double` code passes it doubles, which C++ rounds to
    float, and widens its float result."""
    return (double and fname.endswith("f") and fname[:-1] in _libm_doubles() and fname[:-1] not in _STD_MAPPED
            and fname == f.names[min(1, len(f.names) - 1)])


def foreign_name(f, double: bool) -> str:
    """The C name an ffunction calls at a precision: its first name in float, its second in double.
    A single float name that Faust writes as a std:: function (`sinf`), in double: the double
    function (`sin`); another C float function (`tanhf`) is called as written, through float
    conversions (`single_precision_call`).

    A single name that is a C math function of doubles (`hypot`), called in float: its float
    variant (`hypotf`), as C++'s overloads pick for Faust's generated code; calling the double
    function with float arguments would read garbage registers."""
    if double and len(f.names) >= 2:
        return f.names[1]
    name = f.names[0]
    if double and len(f.names) == 1 and f.result_type != "int" and name.endswith("f") and name[:-1] in _STD_MAPPED:
        return name[:-1]  # `sinf` alone: std::sin(double) in Faust's -double code
    if not double and len(f.names) == 1 and f.result_type != "int" and name in _libm_doubles():
        return name + "f"
    return name


@functools.lru_cache(maxsize=None)
def _libm_doubles() -> frozenset:
    """The C math functions of doubles whose float variant is the name + 'f'."""
    from ..primitives.foreign import FOREIGN
    from ..primitives.table import libm_symbols

    return frozenset(libm_symbols()) | frozenset(FOREIGN) | _C99_MATH


# C99's <math.h> functions of doubles (and ints) whose float variant is the name + 'f'
_C99_MATH = frozenset((
    "acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 ilogb ldexp "
    "log log10 log1p log2 logb scalbn scalbln cbrt fabs hypot pow sqrt erf erfc lgamma tgamma ceil "
    "floor nearbyint rint lrint llrint round lround llround trunc fmod remainder copysign nextafter "
    "fdim fmax fmin fma").split())


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
