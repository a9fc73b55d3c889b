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
    drop_root: bool = False  # the UI is one folder: paths start there, not at `name` (lone_ui_folder)
    counter: int = 0
    memo: dict = field(default_factory=dict)
    base_dir: str = "."                                   # where relative soundfile names are looked up
    warnings: list = field(default_factory=list)          # messages for the user (missing soundfiles...)
    files: list = field(default_factory=list)             # files read (soundfiles), for the compile cache
    spans: dict = field(default_factory=dict)             # Sig -> source span (widgets, variable delays)

    def fresh(self, prefix: str = "R") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def propagate_program(box, name: str = "dsp", ctx: PropagateContext | None = None) -> list[Sig]:
    """Output signals of `box`, its inputs being the program inputs."""
    ins, _ = arity(box)
    ctx = ctx or PropagateContext(name=name, drop_root=lone_ui_folder(box) is not None)
    return propagate(box, tuple(input_(i) for i in range(ins)), ctx, ())



EMPTY_LABEL = "0x00"  # Faust's name for a group or widget whose label is empty


def _split_metadata(label: str) -> tuple[str, tuple]:
    """Faust's extractMetadata: text outside brackets is the label, each `[key:value]`
    (or `[key]`) is metadata; brackets nest inside metadata (`[tooltip: a [b] c]`) and a
    backslash escapes the next character.  Returns (raw label text, ((key, value), ...))."""
    text, meta = [], []
    key, value, state, deep = [], [], "label", 0
    it = iter(label)
    for c in it:
        if state == "label":
            if c == "\\":
                text.append(next(it, ""))
            elif c == "[":
                state, deep = "key", 1
            else:
                text.append(c)
            continue
        buf = key if state == "key" else value
        if c == "\\":
            buf.append(next(it, ""))
        elif c == "[":
            deep += 1
            buf.append(c)
        elif c == ":" and state == "key" and deep == 1:
            state = "value"
        elif c == "]":
            deep -= 1
            if deep < 1:
                meta.append(("".join(key).strip(), "".join(value).strip()))
                key, value, state = [], [], "label"
            else:
                buf.append(c)
        else:
            buf.append(c)
    return "".join(text), tuple(meta)


def parse_label(label: str) -> tuple[str, tuple]:
    """`"gain [unit:dB] [diff:1]"` → ("gain", (("diff","1"), ("unit","dB"))): label trimmed,
    newlines and tabs read as spaces in the label and the values (as Faust's UI code shows them),
    metadata sorted by key then value, each pair once (Faust's map of sets)."""
    text, meta = _split_metadata(label)
    # Faust keeps a map<key, set<value>>: sorted, each pair once
    meta = tuple(sorted({(_spaced(k), _spaced(v)) for k, v in meta}))
    return _spaced(text).strip(), meta


def _spaced(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ")


_KINDS = {"h": "h", "H": "h", "t": "t", "T": "t"}  # any other letter: v


def _label_path(label: str, folders: list) -> tuple[list, str]:
    """Faust's label2path + concatPath: a label may start with folders, "h:name/",
    "v:name/", "t:name/", "/" (back to the root), "./" or "../" (up one folder); what
    follows is the widget's own label, slashes and all ("a/b" is one label).
    folders: [(kind, raw label)], the enclosing groups, outermost first."""
    folders = list(folders)
    while label:
        if label[0] == "/":
            folders, label = [], label[1:]
        elif label.startswith("./"):
            label = label[2:]
        elif label.startswith("../"):
            folders, label = folders[:-1], label[3:]
        elif len(label) > 1 and label[1] == ":":
            name, _, rest = label[2:].partition("/")
            folders.append((_KINDS.get(label[0], "v"), name))
            label = rest
        else:
            break
    return folders, label


def _group_folders(groups: tuple) -> list:
    """A widget's enclosing groups as (kind h|v|t, label as written), outermost first."""
    return [(k if k in "hvt" else "v", g) for k, g in groups]


def _top_folder(groups: tuple, label: str):
    """The identity of a widget's top-level folder, as Faust's UI tree merges folders: its
    kind and its label as written, metadata included (vgroup("[1]") and vgroup("[2]") are
    two folders, both shown as 0x00); None for a widget directly in the root."""
    raw, _ = _label_path(label, _group_folders(groups))
    return raw[0] if raw else None


def mapui_path(path: str) -> str:
    """A path as Faust's MapUI spells it (PathBuilder: ' # * , ? [ ] { } ( )' become '_')."""
    return re.sub(r"[ #*,?\[\]{}()]", "_", path)


def lone_ui_folder(box):
    """Faust's prepareUserInterfaceTree: when everything in the UI sits in one top-level
    folder (same kind and name: Faust merges only those), that folder is the root and the
    program-name folder is dropped: process = vgroup("foo", hslider("g", ...)) has the
    path /foo/g, not /prog/foo/g.  Returns that folder (kind, name), or None."""
    from ..boxes.box import Box

    firsts, seen, stack = set(), set(), [box]
    while stack:
        b = stack.pop()
        if id(b) in seen:
            continue
        seen.add(id(b))
        if isinstance(b, (BWidget, BSoundfile)):
            top = _top_folder(b.groups, b.label)
            if top is None:  # a widget directly in the root folder
                return None
            firsts.add(top)
            if len(firsts) > 1:
                return None
            continue
        for v in vars(b).values():
            if isinstance(v, Box):
                stack.append(v)
            elif isinstance(v, (tuple, list)):
                stack.extend(x for x in v if isinstance(x, Box))
    return next(iter(firsts)) if len(firsts) == 1 else None


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
        # down the right spine of a,(b,(c,...)) (what par(i, n, ...) makes) in one loop: the
        # spine's inner nodes are not memoised on their own (their operands are), which
        # would hash the remaining inputs at every level (quadratic in n); same calls, in
        # the same order, as the recursion
        out = []
        while True:
            ia, _ = arity(box.a)
            out.extend(propagate(box.a, inputs[:ia], ctx, slots))
            inputs, box = inputs[ia:], box.b
            if type(box) is not BPar:
                break
        return tuple(out) + propagate(box, inputs, ctx, slots)
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
        acc: dict = {}  # output -> sum of the inputs routed to it, in pair order
        for i, o in box.pairs:
            if 1 <= o <= box.outs and 1 <= i <= len(inputs):
                acc[o] = inputs[i - 1] if o not in acc else B.add(acc[o], inputs[i - 1])
        return tuple(acc[o] if o in acc else const(0) for o in range(1, box.outs + 1))
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


def ui_chain(ctx: PropagateContext, groups: tuple, label: str) -> tuple[tuple, str]:
    """(folders from the UI root, the widget's label as written): each folder (kind,
    label as written, shown name).  The root is the program's folder, or the lone
    top-level folder (named after the program when its label is empty)."""
    raw, last = _label_path(label, _group_folders(groups))
    chain = [(k, g, parse_label(g)[0] or EMPTY_LABEL) for k, g in raw]
    if not ctx.drop_root:
        chain.insert(0, ("v", "", ctx.name))
    elif chain and chain[0][2] == EMPTY_LABEL:
        chain[0] = (chain[0][0], chain[0][1], ctx.name)
    return tuple(chain), last


def _widget(box: BWidget, inputs, ctx):
    chain, raw_label = ui_chain(ctx, box.groups, box.label)
    label, meta = parse_label(raw_label)
    label = label or EMPTY_LABEL
    path = "/" + "/".join([f[2] for f in chain] + [label])
    c = Control(box.kind, path, label, float(box.init), float(box.min), float(box.max), float(box.step), meta,
                chain, raw_label)
    if box.kind in ("hbargraph", "vbargraph"):
        return (mk("bargraph", c, (inputs[0],)),)
    s = control(c)
    ctx.spans.setdefault(s, box.span)
    return (s,)


def _control(x: Sig, c: Sig, ctx) -> Sig:
    """control(x, c), as Faust 2.54 runs it: the statements of x that nothing else uses run
    under `if (c != 0)` (their state freezes while c is 0) and the value is the one they last
    computed (0 before c was first on); see docs/SEMANTICS.md ("control / enable") and the
    scheduler (codegen/schedule.py: conditions).  A constant c gives x or 0 (Faust folds it)."""
    if c.op == "const":
        return x if c.attr[1] != 0 else B.zero_like(B.nature(x))
    return B.prim("control", x, c)


def hold(x: Sig, c: Sig, name: str) -> Sig:
    """y[n] = c[n] != 0 ? x[n] : y[n-1] (0 before): control(x, c) computed without a
    condition, a one-output recursion named `name`.  Equal to control(x, c) when x's own
    statements hold no state (reverse mode transposes this form)."""
    held = B.mem(proj(0, recvar(name)))
    body = B.select2(B.prim("!=", c, B.zero_like(B.nature(c))), held, x)
    return proj(0, rec(name, (body,)))


MAX_DELAY = 1 << 24  # samples; codegen/schedule.py refuses longer delay lines too


def _const_int(s: Sig, what: str, span) -> int:
    if s.op != "const":
        raise FaustEvalError(f"{what} must be a constant number", span)
    return int(s.attr[1])


# primitives Faust refuses with a constant 0 divisor, and the word its message uses
_BY_ZERO = {"/": "division", "%": "%", "fmod": "%", "remainder": "remainder"}


def _prim(box: BPrim, args, ctx) -> Sig:
    name = box.name
    if name == "mem":
        return B.mem(args[0])
    if name == "@":
        if args[1].op == "const":  # a constant delay: check it here, where its place is known
            d = float(args[1].attr[1])
            d_txt = f"{int(d)}" if d.is_integer() else f"{d:g}"
            if d <= -1:  # Faust truncates the amount toward zero: only int(d) < 0 is refused
                raise FaustEvalError(f"negative delay: '@' by {d_txt} samples (a delay must be > -1: "
                                     "it is truncated toward zero)", box.span)
            if d > MAX_DELAY:
                raise FaustEvalError(f"delay too long: '@' by {d_txt} samples, at most {MAX_DELAY} (2^24) "
                                     "are supported", box.span)
        else:  # bounded when scheduled: remember where, for its error message
            ctx.spans.setdefault(args[1], box.span)
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
    if name in _BY_ZERO and len(args) == 2 and args[1].op == "const" and args[1].attr[1] == 0:
        where = "right operand" if name in ("/", "%") else "second argument"
        raise FaustEvalError(f"{_BY_ZERO[name]} by 0 (the {where} of '{name}' is the constant 0)", box.span)
    if name == "enable":
        # enable(x, c) = control(x·c, c): Faust 2.54 (its default -es 1) multiplies, then holds
        return _control(B.mul(args[0], args[1]), args[1], ctx)
    if name == "control":
        return _control(args[0], args[1], ctx)
    return B.prim(name, *args)


# ---------------------------------------------------------------- widget checks

_WIDGET_NAMES = {"hslider": "horizontal slider", "vslider": "vertical slider", "nentry": "num entry"}


def check_widgets(outputs, spans: dict) -> None:
    """Faust's checks of the widgets left in the (simplified) program: a slider or numeric
    entry needs min <= max and min <= init <= max, and two different input widgets (buttons,
    checkboxes, sliders, entries; not bargraphs) cannot share a full path.  FaustEvalError
    at the offending widget (the second one of a pair)."""
    from .nodes import walk

    seen: dict = {}
    for n in walk(outputs):
        if n.op != "control":
            continue
        c = n.attr
        kind = _WIDGET_NAMES.get(c.kind)
        if kind is not None:
            if c.min > c.max:
                raise FaustEvalError(f"{kind} '{c.label}' min = {c.min:g} should be less than "
                                     f"max = {c.max:g}", spans.get(n))
            if not c.min <= c.init <= c.max:
                raise FaustEvalError(f"{kind} '{c.label}' init = {c.init:g} outside of "
                                     f"[{c.min:g} {c.max:g}] range", spans.get(n))
        if seen.setdefault(c.path, n) is not n:
            raise FaustEvalError(f"path '{c.path}' is already used (by another widget)", spans.get(n))
