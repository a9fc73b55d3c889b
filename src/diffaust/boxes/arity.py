"""Arity (inputs, outputs) of boxes, with Faust's composition rules.

  a:b    outs(a) == ins(b)                      -> (ins(a), outs(b))
  a,b                                           -> (ins(a)+ins(b), outs(a)+outs(b))
  a<:b   ins(b) a multiple of outs(a)           -> (ins(a), outs(b))
  a:>b   outs(a) a multiple of ins(b)           -> (ins(a), outs(b))
  a~b    ins(b) <= outs(a), outs(b) <= ins(a)   -> (ins(a)-outs(b), outs(a))

A mismatch raises FaustEvalError at the composition's span, naming both sides.
Results are memoized (boxes are hashable, with a cached hash).
"""

from __future__ import annotations

from ..errors import FaustEvalError
from ..primitives.arity import PRIMITIVE_ARITY
from .box import (
    Box, BConst, BCut, BFConst, BFFun, BFVar, BMerge, BPar, BPrim, BRec, BRoute, BSeq,
    BSlot, BSoundfile, BSplit, BSymbolic, BWaveform, BWidget, BWire,
)

_MEMO: dict = {}
_MEMO_LIMIT = 1_000_000


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short(box) -> str:
    from .printer import short_box

    return short_box(box)


def box_arity(box: Box) -> tuple[int, int]:
    """(inputs, outputs) of `box`; raises FaustEvalError on an ill-formed composition."""
    r = _MEMO.get(box)
    if r is not None:
        return r
    # iterative post-order walk: deep diagrams (long seq/par chains) must not
    # exhaust the Python stack
    stack = [(box, False)]
    while stack:
        b, ready = stack.pop()
        if b in _MEMO:
            continue
        t = type(b)
        if t in _BINARY:
            if not ready:
                stack.append((b, True))
                if b.b not in _MEMO:
                    stack.append((b.b, False))
                if b.a not in _MEMO:
                    stack.append((b.a, False))
                continue
            res = _binary(b, _MEMO[b.a], _MEMO[b.b])
        elif t is BSymbolic:
            if not ready:
                stack.append((b, True))
                if b.body not in _MEMO:
                    stack.append((b.body, False))
                continue
            i, o = _MEMO[b.body]
            res = (i + 1, o)
        else:
            res = _leaf(b)
        if len(_MEMO) > _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[b] = res
    return _MEMO[box]


def try_arity(box):
    """`box_arity(box)`, or None where it is ill-formed (or not a box)."""
    if not isinstance(box, Box):
        return None
    try:
        return box_arity(box)
    except FaustEvalError:
        return None


def _leaf(b) -> tuple[int, int]:
    t = type(b)
    if t is BWire:
        return (1, 1)
    if t is BCut:
        return (1, 0)
    if t is BConst or t is BSlot or t is BFConst or t is BFVar:
        return (0, 1)
    if t is BPrim:
        n = PRIMITIVE_ARITY.get(b.name)
        if n is None:
            raise FaustEvalError(f"unknown primitive '{b.name}'", b.span)
        return (n, 1)
    if t is BWidget:
        return (1, 1) if b.kind in ("hbargraph", "vbargraph") else (0, 1)
    if t is BFFun:
        return (len(b.arg_types), 1)
    if t is BWaveform:
        return (0, 2)
    if t is BRoute:
        return (b.ins, b.outs)
    if t is BSoundfile:
        return (2, 2 + b.chans)
    raise FaustEvalError(f"not a block diagram: {b!r}", getattr(b, "span", None))


def _binary(b, ar_a, ar_b) -> tuple[int, int]:
    ia, oa = ar_a
    ib, ob = ar_b
    t = type(b)
    if t is BPar:
        return (ia + ib, oa + ob)
    if t is BSeq:
        if oa != ib:
            raise FaustEvalError(
                f"sequential composition A : B: the {_plural(oa, 'output')} of A must equal "
                f"the {_plural(ib, 'input')} of B (A = {_short(b.a)}; B = {_short(b.b)})",
                b.span,
            )
        return (ia, ob)
    if t is BSplit:
        if (oa == 0 and ib != 0) or (oa != 0 and ib % oa != 0):
            raise FaustEvalError(
                f"split composition A <: B: the {_plural(ib, 'input')} of B must be a multiple of "
                f"the {_plural(oa, 'output')} of A (A = {_short(b.a)}; B = {_short(b.b)})",
                b.span,
            )
        return (ia, ob)
    if t is BMerge:
        if (ib == 0 and oa != 0) or (ib != 0 and oa % ib != 0):
            raise FaustEvalError(
                f"merge composition A :> B: the {_plural(oa, 'output')} of A must be a multiple of "
                f"the {_plural(ib, 'input')} of B (A = {_short(b.a)}; B = {_short(b.b)})",
                b.span,
            )
        return (ia, ob)
    if t is BRec:
        if ib > oa or ob > ia:
            raise FaustEvalError(
                f"recursive composition A ~ B: the {_plural(ib, 'input')} of B must be at most "
                f"the {_plural(oa, 'output')} of A, and the {_plural(ob, 'output')} of B at most "
                f"the {_plural(ia, 'input')} of A (A = {_short(b.a)}; B = {_short(b.b)})",
                b.span,
            )
        return (ia - ob, oa)
    raise AssertionError(t)


_BINARY = (BSeq, BPar, BSplit, BMerge, BRec)
_BINARY = {t: True for t in _BINARY}
