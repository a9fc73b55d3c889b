"""propagate: box → signals (Faust's propagate.cpp semantics, written here).

`propagate_program(box, options)` gives the list of output signals of a block
diagram fed with its input signals `input(0..n-1)`.

Composition:
  a:b   outputs of a feed the inputs of b
  a,b   inputs split between a and b, outputs concatenated
  a<:b  b's input j gets a's output j mod outs(a)
  a:>b  b's input j gets the sum of a's outputs j, j + ins(b), j + 2·ins(b) ...
  a~b   y = a(b(mem(y[0..ins(b)-1])), x): a recursive group whose bodies see
        their own outputs one sample back (proj(i, recvar v) under mem)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..boxes.box import (
    BConst, BCut, BFConst, BFFun, BFVar, BMerge, BPar, BPrim, BRec, BRoute, BSeq, BSlot,
    BSoundfile, BSplit, BSymbolic, BWaveform, BWidget, BWire, arity,
)
from ..errors import FaustEvalError
from . import build as B
from .nodes import Control, FFun, Sig, const, control, input_, mk, proj, rec, recvar


@dataclass
class PropagateContext:
    """State of one propagation: fresh recursion names, memo, the program's name."""

    name: str = "dsp"
    counter: int = 0
    memo: dict = field(default_factory=dict)
    base_dir: str = "."                                   # where relative soundfile names are looked up
    warnings: list = field(default_factory=list)          # messages for the user (missing soundfiles...)
    files: list = field(default_factory=list)             # files read (soundfiles), for the compile cache

    def fresh(self, prefix: str = "R") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def propagate_program(box, name: str = "dsp", ctx: PropagateContext | None = None) -> list[Sig]:
    """Output signals of `box`, its inputs being the program inputs."""
    ins, _ = arity(box)
    ctx = ctx or PropagateContext(name=name)
    return propagate(box, tuple(input_(i) for i in range(ins)), ctx, ())


_META = re.compile(r"\[\s*([^:\]\s]+)\s*(?::\s*([^\]]*))?\]")


def parse_label(label: str) -> tuple[str, tuple]:
    """`"gain [diff:1] [unit:dB]"` → ("gain", (("diff","1"), ("unit","dB")))."""
    meta = tuple((m.group(1), (m.group(2) or "").strip()) for m in _META.finditer(label))
    clean = _META.sub("", label).strip()
    return clean, meta


def _path(ctx: PropagateContext, groups: tuple, label: str) -> str:
    parts = [ctx.name]
    for _, glabel in groups:
        g, _ = parse_label(glabel)
        if g and g != "0x00":
            parts.append(g)
    # a label may itself hold a path "h:group/label"
    for piece in label.split("/"):
        piece = re.sub(r"^[hvt]:", "", piece).strip()
        if piece:
            parts.append(piece)
    return "/" + "/".join(parts)


def propagate(box, inputs: tuple, ctx: PropagateContext, slots: tuple) -> tuple:
    key = (id(box), inputs, slots)
    hit = ctx.memo.get(key)
    if hit is not None:
        return hit[1]
    out = tuple(_propagate(box, inputs, ctx, slots))
    ctx.memo[key] = (box, out)  # keep box alive so its id stays unique
    return out


def _propagate(box, inputs, ctx, slots):
    t = type(box)
    if t is BWire:
        return inputs
    if t is BCut:
        return ()
    if t is BConst:
        return (const(box.value),)
    if t is BPrim:
        return (_prim(box, inputs, ctx),)
    if t is BSeq:
        a_out = propagate(box.a, inputs, ctx, slots)
        return propagate(box.b, a_out, ctx, slots)
    if t is BPar:
        ia, _ = arity(box.a)
        return propagate(box.a, inputs[:ia], ctx, slots) + propagate(box.b, inputs[ia:], ctx, slots)
    if t is BSplit:
        a_out = propagate(box.a, inputs, ctx, slots)
        ib, _ = arity(box.b)
        n = len(a_out)
        return propagate(box.b, tuple(a_out[j % n] for j in range(ib)) if n else (), ctx, slots)
    if t is BMerge:
        a_out = propagate(box.a, inputs, ctx, slots)
        ib, _ = arity(box.b)
        sums = []
        for j in range(ib):
            acc = None
            for k in range(j, len(a_out), ib):
                acc = a_out[k] if acc is None else B.add(acc, a_out[k])
            sums.append(acc)
        return propagate(box.b, tuple(sums), ctx, slots)
    if t is BRec:
        return _rec(box, inputs, ctx, slots)
    if t is BWidget:
        return _widget(box, inputs, ctx)
    if t is BSlot:
        for sid, sig in slots:
            if sid == box.id:
                return (sig,)
        raise FaustEvalError("internal: unbound slot", box.span)
    if t is BSymbolic:
        return propagate(box.body, inputs[1:], ctx, slots + ((box.slot.id, inputs[0]),))
    if t is BFConst:
        return (mk("fconst", (box.type, box.name)),)
    if t is BFVar:
        return (mk("fvar", (box.type, box.name)),)
    if t is BFFun:
        f = FFun(box.result_type, tuple(box.names), tuple(box.arg_types), box.include, box.library)
        return (mk("ffun", f, tuple(inputs)),)
    if t is BWaveform:
        vals = tuple(box.values)
        return (const(len(vals)), mk("waveform", vals))
    if t is BRoute:
        outs = []
        for o in range(1, box.outs + 1):
            acc = None
            for (i, oo) in box.pairs:
                if oo == o and 1 <= i <= len(inputs):
                    acc = inputs[i - 1] if acc is None else B.add(acc, inputs[i - 1])
            outs.append(acc if acc is not None else const(0))
        return tuple(outs)
    if t is BSoundfile:
        from .soundfile import soundfile_signals

        return soundfile_signals(box, inputs, ctx)
    raise FaustEvalError(f"internal: cannot propagate {t.__name__}", getattr(box, "span", None))


def _rec(box, inputs, ctx, slots):
    ia, oa = arity(box.a)
    ib, ob = arity(box.b)
    var = ctx.fresh()
    feedback = tuple(B.mem(proj(i, recvar(var))) for i in range(ib))
    b_out = propagate(box.b, feedback, ctx, slots)
    bodies = propagate(box.a, b_out + inputs, ctx, slots)
    group = rec(var, bodies)
    return tuple(proj(i, group) for i in range(oa))


def _widget(box: BWidget, inputs, ctx):
    label, meta = parse_label(box.label)
    path = _path(ctx, box.groups, box.label if "/" in box.label else label)
    if "/" in box.label:
        path = _path(ctx, box.groups, _META.sub("", box.label))
        label = label.split("/")[-1]
        label = re.sub(r"^[hvt]:", "", label).strip()
    c = Control(box.kind, path, label, float(box.init), float(box.min), float(box.max), float(box.step), meta)
    if box.kind in ("hbargraph", "vbargraph"):
        return (mk("bargraph", c, (inputs[0],)),)
    return (control(c),)


def _control(x: Sig, c: Sig, ctx) -> Sig:
    """control(x, c): x[n] while c[n] != 0, else the last value computed (0 before any).

    y[n] = c[n] != 0 ? x[n] : y[n-1], a one-output recursion.  A constant c gives x or 0.
    (Faust also skips the updates of x's own state while c is 0; for a stateless x the two agree.)
    """
    if c.op == "const":
        return x if c.attr[1] != 0 else B.zero_like(B.nature(x))
    var = ctx.fresh()
    held = B.mem(proj(0, recvar(var)))
    body = B.select2(B.prim("!=", c, B.zero_like(B.nature(c))), held, x)
    return proj(0, rec(var, (body,)))


MAX_DELAY = 1 << 24  # samples; codegen/schedule.py refuses longer delay lines too


def _const_int(s: Sig, what: str, span) -> int:
    if s.op != "const":
        raise FaustEvalError(f"{what} must be a constant number", span)
    return int(s.attr[1])


def _prim(box: BPrim, args, ctx) -> Sig:
    name = box.name
    if name == "mem":
        return B.mem(args[0])
    if name == "@":
        if args[1].op == "const":  # a constant delay: check it here, where its place is known
            d = float(args[1].attr[1])
            d_txt = f"{int(d)}" if d.is_integer() else f"{d:g}"
            if d < 0:
                raise FaustEvalError(f"negative delay: '@' by {d_txt} samples (a delay must be >= 0)", box.span)
            if d > MAX_DELAY:
                raise FaustEvalError(f"delay too long: '@' by {d_txt} samples, at most {MAX_DELAY} (2^24) "
                                     "are supported", box.span)
        return B.delay(args[0], args[1])
    if name == "prefix":
        return B.prefix(args[0], args[1])
    if name == "rdtable":
        size = _const_int(args[0], "the size of rdtable", box.span)
        if size <= 0:
            raise FaustEvalError(f"rdtable size must be positive, got {size}", box.span)
        return mk("rdtable", size, (args[1], args[2]))
    if name == "rwtable":
        size = _const_int(args[0], "the size of rwtable", box.span)
        if size <= 0:
            raise FaustEvalError(f"rwtable size must be positive, got {size}", box.span)
        return mk("rwtable", size, (args[1], args[2], args[3], args[4]))
    if name in ("/", "%") and len(args) == 2 and args[1].op == "const" and args[1].attr[1] == 0:
        raise FaustEvalError(f"{'division' if name == '/' else name} by 0 (the right operand of "
                             f"'{name}' is the constant 0)", box.span)
    if name == "enable":
        # enable(x, c) = control(x·c, c): Faust 2.54 (its default -es 1) multiplies, then holds
        return _control(B.mul(args[0], args[1]), args[1], ctx)
    if name == "control":
        return _control(args[0], args[1], ctx)
    return B.prim(name, *args)
