"""THE signal-op registry: one entry per kind of signal node, its rules side by side.

The pointwise primitives (`prim` nodes: + sin select2 ...) have their own registry,
`primitives/table.py`, one `Primitive` per name; this one holds every kind of node
(`Sig.op`), the `prim` kind delegating to that table.  Each `SignalOp` gives:

  nature     (s, nature_of) -> 'int' | 'real' | None (unknown inside a recursion being built)
  rate       (s, rate_of) -> 'const' | 'control' | 'sample'
  interval   (s, interval_of) -> (lo, hi), conservative (it sizes delay lines)
  jvp        (t, s, dots) -> the tangent of s (t: autodiff.jvp.Tangents, dots: the
             tangents of s.args; called once s depends on the variable and is real)
  transpose  (r, u, u_bar) -> None: adds u's contributions to its arguments' cotangents
             (r: autodiff.vjp._Transposer; called for an active real node)
  schedule   (sch, s) -> the expression of s's value (sch: codegen.schedule._Scheduler)

A pass asks `rule(op, name)`; a missing rule is an error naming the op and the rule
(`DerivativeError` for jvp/transpose, `FaustTypeError` for the others), never a
silent default.  Adding a kind of node: one entry here (and its builder in
signals/nodes.py or signals/build.py); adding a primitive: one entry in
primitives/table.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import DerivativeError, FaustTypeError
from ..primitives.table import INF, PRIMITIVES, same_nature

RATES = ("const", "control", "sample")


def max_rate(*rs):
    return max(rs, key=RATES.index) if rs else "const"


@dataclass(frozen=True)
class SignalOp:
    name: str
    doc: str
    leaf: bool = False  # no arguments to differentiate through (a constant, an input, a widget...)
    nature: Optional[Callable] = None
    rate: Optional[Callable] = None
    interval: Optional[Callable] = None
    jvp: Optional[Callable] = None
    transpose: Optional[Callable] = None
    schedule: Optional[Callable] = None


OPS: dict[str, SignalOp] = {}

_ERRORS = {"jvp": (DerivativeError, "derivative"), "transpose": (DerivativeError, "transpose (reverse mode)"),
           "nature": (FaustTypeError, "typing"), "rate": (FaustTypeError, "rate"),
           "interval": (FaustTypeError, "interval"), "schedule": (FaustTypeError, "scheduling")}


def rule(op: str, name: str) -> Callable:
    """The rule `name` of signal op `op`; an error naming both when there is none."""
    entry = OPS.get(op)
    fn = getattr(entry, name, None) if entry is not None else None
    if fn is None:
        cls, what = _ERRORS[name]
        raise cls(f"signal '{op}' has no {what} rule")
    return fn


def _reg(**kw) -> SignalOp:
    e = SignalOp(**kw)
    OPS[e.name] = e
    return e


def _B():
    from . import build

    return build


# ------------------------------------------------------------------ shared rules
def _nature_real(s, nature_of):
    return "real"


def _nature_first(s, nature_of):
    return nature_of(s.args[0])


def _rate_sample(s, rate_of):
    return "sample"


def _rate_of_args(s, rate_of):
    return max_rate(*(rate_of(a) for a in s.args))


def _interval_any(s, interval_of):
    return (-INF, INF)


def _jvp_zero(t, s, dots):
    return _B().const(0.0)


def _transpose_leaf(r, u, u_bar):
    """A leaf: its cotangent is collected by the pass (an input, a variable) or dropped."""


# ------------------------------------------------------------------ leaves
def _schedule_const(sch, s):
    from ..codegen.schedule import Const

    return Const(s.attr[0], s.attr[1])


def _interval_const(s, interval_of):
    v = float(s.attr[1])
    return (v, v)


_reg(name="const", leaf=True, doc="attr=(nature, value): a number",
     nature=lambda s, nature_of: s.attr[0], rate=lambda s, rate_of: "const", interval=_interval_const,
     jvp=_jvp_zero, transpose=_transpose_leaf, schedule=_schedule_const)


def _schedule_input(sch, s):
    from ..codegen.schedule import Input

    return sch.bind(s, Input(s.attr), "sample", "x")


_INPUTS_ARE_AUDIO = contextvars.ContextVar("diffaust_inputs_are_audio", default=True)


@contextlib.contextmanager
def unbounded_inputs():
    """Type `input` signals as unbounded while inside: reverse mode's adjoint program,
    whose inputs are cotangents and tape channels (any value a primal signal takes),
    not audio in [-1, 1] (a taped delay amount is clamped to the primal amount's range:
    an input range there would shorten its scatter line)."""
    token = _INPUTS_ARE_AUDIO.set(False)
    try:
        yield
    finally:
        _INPUTS_ARE_AUDIO.reset(token)


def _interval_input(s, interval_of):
    # Faust's assumed range of an audio input (its typing gives inputs [-1, 1]: so
    # `x@(int(abs(s)*10))` gets an 11-sample line).  It sizes lines only: a value outside
    # it never reads out of bounds (lines are rings read `& mask`, table indices are
    # clamped), see docs/SEMANTICS.md ("Audio inputs outside [-1, 1]").
    return (-1.0, 1.0) if _INPUTS_ARE_AUDIO.get() else (-INF, INF)


_reg(name="input", leaf=True, doc="attr=i: the i-th input of the program (assumed in [-1, 1], as Faust)",
     nature=_nature_real, rate=_rate_sample, interval=_interval_input,
     jvp=_jvp_zero, transpose=_transpose_leaf, schedule=_schedule_input)


def _schedule_tape(sch, s):
    from ..codegen.schedule import Input

    k, back = s.attr  # an input read `back` samples earlier in primal time (reverse mode)
    return sch.bind(s, Input(k, back), "sample", "x")


_reg(name="tape", leaf=True, doc="attr=(i, back): input i read `back` samples earlier (reverse mode's tape, "
                      "in the adjoint program)",
     nature=_nature_real, rate=_rate_sample, interval=_interval_any, schedule=_schedule_tape)


def _interval_control(s, interval_of):
    c = s.attr
    if c.kind in ("button", "checkbox"):
        return (0.0, 1.0)
    return (min(c.min, c.max), max(c.min, c.max))


def _jvp_control(t, s, dots):
    return _B().const(1.0) if s is t.var else _B().const(0.0)


def _schedule_control(sch, s):
    from ..codegen.schedule import Let, Load, Var

    slot = sch._param_slot(s)
    v = Var(sch.fresh("fSlow"), "real")
    sch.emit("control", Let(v, Load(slot, "real")))
    return v


_reg(name="control", leaf=True, doc="attr=Control: a user-interface widget (slider, button...)",
     nature=_nature_real, rate=lambda s, rate_of: "control", interval=_interval_control,
     jvp=_jvp_control, transpose=_transpose_leaf, schedule=_schedule_control)


def _interval_fconst(s, interval_of):
    if s.attr[1] == "fSamplingFreq":
        return (1.0, 192000.0 * 16)
    return (-INF, INF)


def _schedule_fconst(sch, s):
    from ..codegen.schedule import Cast, Load

    nature = sch.t.nature[s]
    if s.attr[1] == "fSamplingFreq":
        return Load("fSamplingFreq", "int") if nature == "int" else \
            sch.bind(s, Cast("real", Load("fSamplingFreq", "int")), "const")
    raise FaustTypeError(f"unknown foreign constant '{s.attr[1]}'")


def _nature_foreign_value(s, nature_of):
    return "int" if s.attr[0] == "int" else "real"


_reg(name="fconst", leaf=True, doc="attr=(type, name): a foreign constant (fSamplingFreq)",
     nature=_nature_foreign_value, rate=lambda s, rate_of: "const", interval=_interval_fconst,
     jvp=_jvp_zero, transpose=_transpose_leaf, schedule=_schedule_fconst)


def _schedule_fvar(sch, s):
    from ..codegen.schedule import Cast, Var

    nature = sch.t.nature[s]
    if s.attr[1] == "count":
        return sch.bind(s, Var("count", "int") if nature == "int" else Cast("real", Var("count", "int")), "control")
    raise FaustTypeError(f"unknown foreign variable '{s.attr[1]}'")


_reg(name="fvar", leaf=True, doc="attr=(type, name): a foreign variable (count)",
     nature=_nature_foreign_value, rate=lambda s, rate_of: "control", interval=_interval_any,
     jvp=_jvp_zero, transpose=_transpose_leaf, schedule=_schedule_fvar)


def _nature_waveform(s, nature_of):
    return "int" if all(isinstance(v, int) for v in s.attr) else "real"


def _interval_waveform(s, interval_of):
    vals = [float(v) for v in s.attr]
    return (min(vals), max(vals))


def _schedule_waveform(sch, s):
    from ..codegen.schedule import Const, Load, LoadAt, Op, Store

    values = list(s.attr)
    nature = sch.t.nature[s]
    table = sch.new_slot("fWave", nature, len(values), "table", init=values)
    idx = sch.new_slot("iWave", "int")
    out = sch.bind(s, LoadAt(table, Load(idx, "int"), nature), "sample")
    nxt = Op("%", (Op("+", (Load(idx, "int"), Const("int", 1)), "int"), Const("int", len(values))), "int")
    sch.post.append(Store(idx, nxt))
    return out


_reg(name="waveform", leaf=True, doc="attr=values: periodic values (index = time mod size)",
     nature=_nature_waveform, rate=_rate_sample, interval=_interval_waveform,
     jvp=_jvp_zero, transpose=_transpose_leaf, schedule=_schedule_waveform)


# ------------------------------------------------------------------ pointwise
def _nature_prim(s, nature_of):
    ns = [nature_of(a) for a in s.args]
    p = PRIMITIVES[s.attr]
    if None in ns:
        try:
            r = p.nature(*[n or "int" for n in ns])
            r2 = p.nature(*[n or "real" for n in ns])
        except TypeError:
            return None
        return r if r == r2 else None
    return p.nature(*ns)


def _interval_prim(s, interval_of):
    p = PRIMITIVES[s.attr]
    if p.interval is None:
        return (-INF, INF)
    try:
        lo, hi = p.interval(*(interval_of(a) for a in s.args))
    except (OverflowError, ValueError, ZeroDivisionError):
        return (-INF, INF)
    if math.isnan(lo) or math.isnan(hi):
        return (-INF, INF)
    return (lo, hi)


def _jvp_prim(t, s, dots):
    p = PRIMITIVES[s.attr]
    if p.jvp is None:
        raise DerivativeError(f"primitive '{s.attr}' has no derivative rule")
    return p.jvp(s.args, dots)


def _transpose_prim(r, u, u_bar):
    p = PRIMITIVES[u.attr]
    if p.jvp is None:
        raise DerivativeError(f"primitive '{u.attr}' has no derivative rule")
    r.transpose_pointwise(u, u_bar, lambda dots: p.jvp(u.args, dots))


_reg(name="prim", doc="attr=name, args: a primitive of primitives/table.py (+, sin, select2, int...)",
     nature=_nature_prim, rate=_rate_of_args, interval=_interval_prim,
     jvp=_jvp_prim, transpose=_transpose_prim, schedule=lambda sch, s: sch._prim(s, sch.t.rate[s]))


def _foreign_rule(f, nondiff):
    """The derivative rule of ffunction f (primitives/foreign.py); None when declared constant."""
    from ..primitives.foreign import lookup

    if any(c in nondiff for c in f.names):
        return None
    fn = lookup(f)
    if fn is None or fn.jvp is None:
        name = f.names[0]
        raise DerivativeError(f"foreign function '{name}' ({'|'.join(f.names)}) has no derivative "
                              f"rule: declare it constant with --nondiff {name} (diffaust.compile(..., "
                              f"nondiff=('{name}',))) to give it derivative 0")
    return fn.jvp


def _jvp_ffun(t, s, dots):
    jvp = _foreign_rule(s.attr, t.nondiff)
    if jvp is None:  # declared constant by the user: d f(a, ...) = 0
        if t.trace is not None:
            declared = [c for c in s.attr.names if c in t.nondiff]
            t.trace.append(f"    ffunction {'|'.join(s.attr.names)}: declared non-differentiable "
                           f"by --nondiff {declared[0]}: derivative 0")
        return _B().const(0.0)
    return jvp(s, s.args, dots)


def _transpose_ffun(r, u, u_bar):
    jvp = _foreign_rule(u.attr, r.nondiff)
    if jvp is not None:
        r.transpose_pointwise(u, u_bar, lambda dots: jvp(u, u.args, dots))


def _rate_ffun(s, rate_of):
    # a call without arguments runs every sample (Faust: `rand()` in the sample loop); with
    # arguments, at their rate (`sinf(slider)` once per block)
    return "sample" if not s.args else max_rate(*(rate_of(a) for a in s.args))


def _schedule_ffun(sch, s):
    from ..codegen.schedule import Call, check_foreign, foreign_name, single_precision_call

    f = s.attr
    double = sch.prog.real == "double"
    fname = foreign_name(f, double)
    symbol = sch.prog.foreign.get(fname)
    if symbol is None:
        check_foreign(fname, f)
    args = tuple(sch.arg(a, "int" if ty == "int" else "real") for a, ty in zip(s.args, f.arg_types))
    single = symbol is None and single_precision_call(f, fname, double)
    return sch.bind(s, Call(fname, args, sch.t.nature[s], symbol or fname, single), sch.t.rate[s])


_reg(name="ffun", doc="attr=FFun, args: a foreign function call (ffunction)",
     nature=lambda s, nature_of: "int" if s.attr.result_type == "int" else "real", rate=_rate_ffun,
     interval=_interval_any, jvp=_jvp_ffun, transpose=_transpose_ffun, schedule=_schedule_ffun)


def _schedule_bargraph(sch, s):
    from ..codegen.schedule import Store

    e = sch.arg(s.args[0], "real")
    slot = sch._param_slot(s)
    sch.sample.append(Store(slot, e))
    return e


_reg(name="bargraph", doc="attr=Control, args=(x,): x, displayed",
     nature=_nature_real, rate=_rate_sample, interval=_interval_any,
     jvp=lambda t, s, dots: dots[0], transpose=lambda r, u, u_bar: r.add(u.args[0], u_bar),
     schedule=_schedule_bargraph)


# ------------------------------------------------------------------ time
def _interval_delay(s, interval_of):
    lo, hi = interval_of(s.args[0])
    return (min(lo, 0.0), max(hi, 0.0))


def _jvp_delay(t, s, dots):
    # (x@d)' = x'@d: Faust truncates the amount (x@2.7 is x@2), so the output is
    # piecewise constant in d and d contributes 0 almost everywhere, as int() does
    x_dot, d_dot = dots
    B = _B()
    if not B.is_zero(d_dot) and t.warnings is not None:
        msg = (f"the amount of a delay '@' depends on [diff:1] parameter '{t.var.attr.label}', "
               f"but Faust truncates a delay amount to an integer: its derivative is 0 there "
               f"(to learn a delay time, interpolate: de.fdelay)")
        if msg not in t.warnings:
            t.warnings.append(msg)
    return B.delay(x_dot, s.args[1])


def _transpose_delay(r, u, u_bar):
    # x[n - d[n]] read ⇒ x̄[n - d[n]] += ū[n]: backward in time, an advance is a delay (d
    # constant) or a scatter d[m] samples ahead (d a signal); d gets nothing (truncated)
    from ..signals.nodes import mk

    B = _B()
    x, d = u.args
    if d in r.active and B.nature(d) != "int" and r.warnings is not None:
        # as forward mode: a real amount that moves with a parameter (an int one is int(d): its
        # derivative 0 is plain; de.fdelay's amounts are ints, its fraction interpolates)
        msg = ("the amount of a delay '@' depends on a [diff:1] parameter or an input, but Faust "
               "truncates a delay amount to an integer: its derivative is 0 there (to learn a delay "
               "time, interpolate: de.fdelay)")
        if msg not in r.warnings:
            r.warnings.append(msg)
    if x.op == "proj" and x.args[0].op == "recvar":
        r.feedback_read(x, d, u_bar)  # a recursion's feedback: the adjoint group's output
        return
    if x not in r.active or B.nature(x) == "int":
        return
    if d.op == "const":
        r.add(x, B.delay(u_bar, d))
    else:
        r.add(x, mk("scatter", None, (u_bar, r.amount(d, 0))))


_reg(name="delay", doc="args=(x, d): x[n - int(d[n])] (mem is delay(x, 1))",
     nature=_nature_first, rate=_rate_sample, interval=_interval_delay,
     jvp=_jvp_delay, transpose=_transpose_delay, schedule=lambda sch, s: sch._delay(s))


def _schedule_scatter(sch, s):
    """scatter(v, d) (reverse mode's transpose of a variable delay): out[m] = Σ v[k] over
    k ≤ m with k + int(d[k]) = m.  A ring of accumulators: v is added d samples ahead,
    then the current slot is read and cleared."""
    from ..codegen.schedule import Const, Let, Load, LoadAt, Op, StoreAt, Var

    v, d = s.args
    try:
        maxd = sch._amount_bound(d)
    except FaustTypeError as e:
        e.sig = d
        raise
    nature = sch.t.nature[s]
    size = max(2, 1 << maxd.bit_length())
    slot = sch.new_slot("fScatter", nature, size, "state")
    sch.prog.iota_readers.add(sch.iota)
    d_e = sch.arg(d, "int")
    v_e = sch.arg(v, nature)
    iota = Load(sch.iota, "int")
    w = Var(sch.fresh("iScatter"), "int")
    sch.sample.append(Let(w, Op("&", (Op("+", (iota, d_e), "int"), Const("int", size - 1)), "int")))
    sch.sample.append(StoreAt(slot, w, Op("+", (LoadAt(slot, w, nature), v_e), nature)))
    rd = Var(sch.fresh("iScatter"), "int")
    sch.sample.append(Let(rd, Op("&", (iota, Const("int", size - 1)), "int")))
    out = Var(sch.fresh("fScatter"), nature)
    sch.sample.append(Let(out, LoadAt(slot, rd, nature)))
    sch.sample.append(StoreAt(slot, rd, Const(nature, 0.0 if nature == "real" else 0)))
    return out


_reg(name="scatter", doc="args=(v, d): Σ v[k] over k + int(d[k]) = n (reverse mode's transpose of a "
                         "variable delay, in the adjoint program)",
     nature=_nature_first, rate=_rate_sample, interval=_interval_any, schedule=_schedule_scatter)


def _nature_prefix(s, nature_of):
    a, b = nature_of(s.args[0]), nature_of(s.args[1])
    return None if None in (a, b) else same_nature(a, b)


def _transpose_prefix(r, u, u_bar):
    # prefix(i, x) = i·δ + x@1 with δ[n] = (n == 0) = 1 − 1@1: ī += δ·ū (δ read from the tape:
    # the adjoint runs backward, its last sample is the primal's first), x̄ += ū@1 (backward)
    B = _B()
    init, x = u.args
    if init in r.active and B.nature(init) != "int":
        first = B.sub(B.const(1.0), B.delay(B.const(1.0), B.const(1)))
        r.add(init, B.mul(r.coef(first), u_bar))
    r.add(x, B.delay(u_bar, B.const(1)))


_reg(name="prefix", doc="args=(init, x): init[0] at n = 0, then x[n-1]",
     nature=_nature_prefix, rate=_rate_sample, interval=_interval_any,
     jvp=lambda t, s, dots: _B().prefix(dots[0], dots[1]), transpose=_transpose_prefix,
     schedule=lambda sch, s: sch._prefix(s))


# ------------------------------------------------------------------ tables
def _transpose_rdtable(r, u, u_bar):
    # the slope convention of autodiff/tables.py, as forward mode
    from ..autodiff.tables import neighbour_index
    from ..signals.nodes import mk

    B = _B()
    gen, idx = u.args
    if gen.op == "const" or idx not in r.active:
        return  # content fixed at init; an index free of parameters and inputs
    found = neighbour_index(idx, lambda s: s in r.active, r.groups)
    if found is None:
        return  # a genuinely integer index: piecewise constant, derivative 0
    x, idx_next = found
    if x in r.fractional:
        return  # interpolated with x's fraction: the interpolation carries the slope
    slope = B.sub(mk("rdtable", u.attr, (gen, idx_next)), u)
    r.add(x, B.mul(r.coef(slope), u_bar))


def _interval_rdtable(s, interval_of):
    # a read (its index clamped into the table) is one of the generator's values (Faust's typing)
    return interval_of(s.args[0])


def _interval_rwtable(s, interval_of):
    # the initial content or a written value
    (a0, a1), (b0, b1) = interval_of(s.args[0]), interval_of(s.args[2])
    return (min(a0, b0), max(a1, b1))


_reg(name="rdtable", doc="attr=size, args=(gen, ridx): read-only table filled at init with gen[0..size-1]",
     nature=_nature_first, rate=lambda s, rate_of: max_rate("const", rate_of(s.args[1])), interval=_interval_rdtable,
     jvp=lambda t, s, dots: t._table_slope(s), transpose=_transpose_rdtable,
     schedule=lambda sch, s: sch._rdtable(s, sch.t.rate[s]))


def _nature_rwtable(s, nature_of):
    # the initial content decides (measured, Faust 2.54.9): an integer waveform/signal makes
    # an `itbl` and a real value written into it is truncated (`int(1.24*x)`); a real one
    # an `ftbl`, an integer written into it converted (`double(int(3*x))`)
    return nature_of(s.args[0])


def _jvp_rwtable(t, s, dots):
    # the written values' tangents in a tangent table (the read index gets no slope: like x@d)
    from ..signals.nodes import mk

    gen, widx, wsig, ridx = s.args
    return mk("rwtable", s.attr, (dots[0], widx, dots[2], ridx))


def _transpose_rwtable(r, u, u_bar):
    """y[n] = T[r[n]] after T[w[n]] = v[n] (a read sees the same sample's write): backward,
    ū[n] is added to the cell it read, and the write takes what its cell holds then
    (v̄[n] = A[w[n]], A[w[n]] = 0: an earlier write is overwritten, it gets nothing later)."""
    from ..signals.nodes import mk

    B = _B()
    gen, widx, wsig, ridx = u.args
    if gen in r.active and B.nature(gen) != "int":
        raise DerivativeError("reverse mode: the initial content of an rwtable depends on a [diff:1] "
                              "parameter: not transposed; use forward mode (--ad forward)")
    if wsig not in r.active or B.nature(wsig) == "int":
        return
    r.add(wsig, mk("rwtable_bar", u.attr, (u_bar, r.coef(widx), r.coef(ridx))))


_reg(name="rwtable", doc="attr=size, args=(gen, widx, wsig, ridx): a table written and read every sample",
     nature=_nature_rwtable, rate=_rate_sample, interval=_interval_rwtable,
     jvp=_jvp_rwtable, transpose=_transpose_rwtable, schedule=lambda sch, s: sch._rwtable(s))


def _schedule_rwtable_bar(sch, s):
    """rwtable_bar(v, w, r) (reverse mode's transpose of an rwtable write/read): an
    accumulator table A of the table's size; per sample A[r] += v, then out = A[w], A[w] = 0."""
    from ..codegen.schedule import Const, Let, LoadAt, Op, StoreAt, Var

    size = s.attr
    v, w, rd = s.args
    nature = sch.t.nature[s]
    slot = sch.new_slot("fTabBar", nature, max(2, size), "state")
    v_e = sch.arg(v, nature)
    ri = Var(sch.fresh("iTabBar"), "int")
    sch.sample.append(Let(ri, sch._clamp(rd, size)))
    sch.sample.append(StoreAt(slot, ri, Op("+", (LoadAt(slot, ri, nature), v_e), nature)))
    wi = Var(sch.fresh("iTabBar"), "int")
    sch.sample.append(Let(wi, sch._clamp(w, size)))
    out = Var(sch.fresh("fTabBar"), nature)
    sch.sample.append(Let(out, LoadAt(slot, wi, nature)))
    sch.sample.append(StoreAt(slot, wi, Const(nature, 0.0 if nature == "real" else 0)))
    return out


_reg(name="rwtable_bar", doc="attr=size, args=(v, widx, ridx): reverse mode's transpose of an rwtable "
                             "(in the adjoint program)",
     nature=_nature_first, rate=_rate_sample, interval=_interval_any, schedule=_schedule_rwtable_bar)


# ------------------------------------------------------------------ recursion
def _nature_proj(s, nature_of):
    from .types import group_natures

    g = s.args[0]
    if g.op == "recvar":
        return None
    return group_natures(g)[s.attr]


def _transpose_proj(r, u, u_bar):
    """Read by its group (`transpose_group`); a feedback reference is read through delays."""
    if u.args[0].op == "recvar" and r.acc.get(u):
        raise DerivativeError("reverse mode: a recursion's output is read without a delay")


_reg(name="proj", doc="attr=i, args=(group,): output i of a rec (or of a recvar)",
     nature=_nature_proj, rate=_rate_sample, interval=_interval_any,
     transpose=_transpose_proj, schedule=lambda sch, s: sch._proj(s))
_reg(name="rec", doc="attr=var, args=bodies: a recursive group; bodies refer to its outputs through "
                     "proj(i, recvar(var)) under a delay >= 1",
     rate=_rate_sample, interval=_interval_any, transpose=lambda r, u, u_bar: r.transpose_group(u))
_reg(name="recvar", leaf=True, doc="attr=var: reference to the enclosing group `var`",
     rate=_rate_sample, interval=_interval_any, transpose=_transpose_leaf)
