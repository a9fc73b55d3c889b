"""Faust-like text of a box (`--dump box`, error messages).

The text is valid Faust for everything the box algebra can express, with
parentheses only where the priorities of the composition operators need them
(`~` 4, `,` 3, `:` 2, `<:` `:>` 1; infix arithmetic binds tighter than all of them).
`a,b : +` is printed `a + b` (the same diagram by definition of infix notation),
`a : mem` is printed `a'`, a unary primitive `a : sin` is printed `sin(a)`.
Widgets inside groups carry the group path in their label (`"h:mix/v:ch/gain"`).
"""

from __future__ import annotations

from ..errors import FaustEvalError
from .box import (
    Box, BConst, BCut, BFConst, BFFun, BFVar, BMerge, BPar, BPrim, BRec, BRoute, BSeq,
    BSlot, BSoundfile, BSplit, BSymbolic, BWaveform, BWidget, BWire,
)

INFIX = {
    "+": 6, "-": 6, "|": 6,
    "*": 7, "/": 7, "%": 7, "&": 7, "xor": 7, "<<": 7, ">>": 7,
    "^": 8, "@": 9,
    "<": 5, "<=": 5, ">": 5, ">=": 5, "==": 5, "!=": 5,
}
_COMPOSE = {BRec: ("~", 4), BPar: (",", 3), BSeq: (":", 2), BSplit: ("<:", 1), BMerge: (":>", 1)}
_ATOM = 20
_POSTFIX = 15


def format_box(box: Box) -> str:
    """The Faust text of `box`."""
    return _fmt(box)[0]


def short_box(box: Box, limit: int = 60) -> str:
    """`format_box` cut to about `limit` characters (for error messages)."""
    text = " ".join(format_box(box).split())
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


def format_number(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    r = repr(float(v))
    return r


def _quote(s: str) -> str:
    return '"' + s.replace('"', '\\"') + '"'


def _group_label(label: str, groups) -> str:
    if not groups:
        return label
    return "/".join(f"{k}:{lab}" for k, lab in groups) + "/" + label


def _par_items(box):
    out = []
    stack = [box]
    while stack:
        b = stack.pop()
        if type(b) is BPar:
            stack.append(b.b)
            stack.append(b.a)
        else:
            out.append(b)
    return out


def _wrap(part, prec_needed):
    text, prec = part
    return f"({text})" if prec < prec_needed else text


def _fmt(box):
    t = type(box)
    if t is BWire:
        return "_", _ATOM
    if t is BCut:
        return "!", _ATOM
    if t is BConst:
        s = format_number(box.value)
        return (s, _ATOM) if not s.startswith("-") else (s, _ATOM - 1)
    if t is BPrim:
        return box.name, _ATOM
    if t is BSeq:
        special = _fmt_seq_special(box)
        if special is not None:
            return special
    if t in _COMPOSE:
        op, p = _COMPOSE[t]
        left, right = _fmt(box.a), _fmt(box.b)
        if t is BRec:
            lt = _wrap(left, p)
            rt = _wrap(right, p + 1)
        elif t in (BPar, BSeq):
            lt = left[0] if left[1] > p or (left[1] == p and type(box.a) is t) else f"({left[0]})"
            rt = right[0] if right[1] > p or (right[1] == p and type(box.b) is t) else f"({right[0]})"
        else:
            lt = _wrap(left, p + 1)
            rt = _wrap(right, p + 1)
        sep = ", " if op == "," else f" {op} "
        return f"{lt}{sep}{rt}", p
    if t is BWidget:
        label = _quote(_group_label(box.label, box.groups))
        if box.kind in ("button", "checkbox"):
            return f"{box.kind}({label})", _ATOM
        if box.kind in ("hbargraph", "vbargraph"):
            return f"{box.kind}({label}, {format_number(box.min)}, {format_number(box.max)})", _ATOM
        args = ", ".join(format_number(v) for v in (box.init, box.min, box.max, box.step))
        return f"{box.kind}({label}, {args})", _ATOM
    if t is BSlot:
        return f"x{box.id}", _ATOM
    if t is BSymbolic:
        try:
            body = _fmt(box.body)[0]
        except FaustEvalError:  # a function kept in the diagram that cannot be converted yet
            body = f"<{getattr(box.fn, 'name', None) or 'function'}>"
        return f"\\({_fmt(box.slot)[0]}).({body})", _ATOM
    if t is BFConst:
        return f"fconstant({box.type} {box.name}, {box.include})", _ATOM
    if t is BFVar:
        return f"fvariable({box.type} {box.name}, {box.include})", _ATOM
    if t is BFFun:
        names = box.names[0] if len(box.names) == 1 else "(" + "|".join(box.names) + ")"
        args = ", ".join(box.arg_types)
        return f"ffunction({box.result_type} {names}({args}), {box.include}, {_quote(box.library)})", _ATOM
    if t is BWaveform:
        return "waveform{" + ", ".join(format_number(v) for v in box.values) + "}", _ATOM
    if t is BRoute:
        pairs = "".join(f", ({a}, {b})" for a, b in box.pairs)
        return f"route({box.ins}, {box.outs}{pairs})", _ATOM
    if t is BSoundfile:
        return f"soundfile({_quote(_group_label(box.label, box.groups))}, {box.chans})", _ATOM
    return repr(box), _ATOM


def _fmt_seq_special(box: BSeq):
    """`a,b : +` as `a + b`, `a : mem` as `a'`, `a : sin` as `sin(a)`, `a,b,c : select2` as a call."""
    from .arity import try_arity
    from ..primitives.arity import PRIMITIVE_ARITY

    f = box.b
    if type(f) is not BPrim:
        return None
    name = f.name
    if name in INFIX and type(box.a) is BPar:
        p = INFIX[name]
        left, right = _fmt(box.a.a), _fmt(box.a.b)
        lt = left[0] if left[1] >= p else f"({left[0]})"
        rt = right[0] if right[1] > p and right[1] != _ATOM - 1 else f"({right[0]})"
        return f"{lt} {name} {rt}", p
    if name == "mem":
        inner = _fmt(box.a)
        return f"{_wrap(inner, _POSTFIX)}'", _POSTFIX
    n = PRIMITIVE_ARITY.get(name)
    if n is None:
        return None
    items = _par_items(box.a)
    if len(items) != n:
        return None
    for it in items:
        ar = try_arity(it)
        if ar is None or ar[1] != 1:
            return None
    return f"{name}(" + ", ".join(_fmt(it)[0] for it in items) + ")", _ATOM
