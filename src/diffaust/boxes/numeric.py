"""Constant folding directly on boxes: `box_number(2,3 : +) == 5`.

Faust needs compile-time numbers in a few places (iteration counts, pattern
matching on numbers, widget ranges, `route`, `waveform`, `inputs`/`outputs`).
A box with 0 inputs and 1 output denotes a number when every value flowing
through it is known: numbers, arithmetic and math primitives applied to numbers.

Faust's rules: int op int stays int with 32-bit wrap-around (`+ - * %`, bitwise,
`min max abs`, `^` with a non-negative int exponent); `/` is real division;
`%` on ints is C's remainder (sign of the dividend), on reals C's fmod (the run-time
semantics; Faust 2.54's folder truncates reals here, see FAUST-SEMANTICS.md);
comparisons give int 0/1; `int()` truncates toward zero; math functions give reals.
A NaN result is not a number (Faust refuses constant NaNs).
Measured quirk kept: an exact division of two ints folds to an int (`8/2` is int 4).
"""

from __future__ import annotations

import math
from typing import Optional, Union

from ..errors import FaustEvalError
from .arity import box_arity, try_arity
from .box import (
    Box, BConst, BCut, BMerge, BPar, BPrim, BRoute, BSeq, BSlot, BSplit, BSymbolic, BWaveform, BWire,
)

Number = Union[int, float]

_MEMO: dict = {}


from ..signals.nodes import wrap_int as wrap32


def _nature(v) -> str:
    return "int" if isinstance(v, int) else "real"


def fold_primitive(name: str, args) -> Optional[Number]:
    """The value of primitive `name` applied to numbers, or None when not foldable.

    The rules are the primitive table's (`primitives.table.fold`), plus one measured
    quirk of Faust's box-level folder: an exact division of two ints is an int
    (`8/2` is int 4, which matches the pattern `f(4)`), an inexact one a real.
    """
    from ..primitives.table import PRIMITIVES, fold

    if name == "/" and all(isinstance(a, int) for a in args) and args[1] != 0 and args[0] % args[1] == 0:
        q = abs(args[0]) // abs(args[1])
        return wrap32(q if (args[0] >= 0) == (args[1] >= 0) else -q)
    if name == "/" and args[0] == 0:
        return 0.0  # Faust simplifies 0/x to 0
    if name in ("attach", "control"):
        return args[0]
    if name in ("pow", "^") and len(args) == 2 and all(isinstance(a, int) and not isinstance(a, bool) for a in args) \
            and args[1] < 0:
        # an int to a negative int power is real, as the signal builders fold it (2^(-1) = 0.5;
        # `10^-9` in wdmodels.lib's documented example is 1e-9, not int 0)
        import numpy as np

        with np.errstate(all="ignore"):
            return float(np.power(np.float64(args[0]), np.float64(args[1])))
    if name not in PRIMITIVES:
        return None
    r = fold(name, tuple(_nature(a) for a in args), tuple(args))
    return None if r is None else r[1]


def _outputs(box: Box, ins: list, env: Optional[dict] = None) -> list:
    """Values of the outputs of `box` fed with `ins` (None = not a known number); env: the
    values of the slots of the enclosing symbolic boxes (a function used as a diagram,
    `3,6 : foo : /` with `foo(x, y) = (y, x)`: Faust's isBoxNumeric evaluates it too)."""
    t = type(box)
    if t is BConst:
        return [box.value]
    if t is BWire:
        return list(ins)
    if t is BCut:
        return []
    if t is BPrim:
        if any(v is None for v in ins):
            # select2 with a known selector picks a branch even when the other is unknown
            if box.name == "select2" and ins[0] is not None:
                s = ins[0]
                if isinstance(s, float) and (math.isnan(s) or math.isinf(s)):
                    return [None]
                return [ins[1] if int(s) == 0 else ins[2]]
            return [None]
        if box.name == "@" and ins[1] == 0:
            return [ins[0]]
        return [fold_primitive(box.name, ins)]
    if t is BPar:
        ia = box_arity(box.a)[0]
        return _outputs(box.a, ins[:ia], env) + _outputs(box.b, ins[ia:], env)
    if t is BSeq:
        if not ins and not env and box in _MEMO:
            return _MEMO[box]
        r = _outputs(box.b, _outputs(box.a, ins, env), env)
        if not ins and not env:
            _MEMO[box] = r
        return r
    if t is BSplit:
        mid = _outputs(box.a, ins, env)
        ib = box_arity(box.b)[0]
        if not mid:
            return _outputs(box.b, [], env)
        return _outputs(box.b, [mid[i % len(mid)] for i in range(ib)], env)
    if t is BMerge:
        mid = _outputs(box.a, ins, env)
        ib = box_arity(box.b)[0]
        sums = []
        for k in range(ib):
            acc = None
            first = True
            for v in mid[k::ib]:
                if first:
                    acc, first = v, False
                elif acc is None or v is None:
                    acc = None
                else:
                    acc = fold_primitive("+", (acc, v))
            sums.append(acc)
        return _outputs(box.b, sums, env)
    if t is BRoute:
        outs = [None] * box.outs
        acc = [[] for _ in range(box.outs)]
        for i, o in box.pairs:
            if 1 <= i <= box.ins and 1 <= o <= box.outs:
                acc[o - 1].append(ins[i - 1])
        for k, vals in enumerate(acc):
            if not vals:
                outs[k] = 0
            elif any(v is None for v in vals):
                outs[k] = None
            else:
                v = vals[0]
                for w in vals[1:]:
                    v = fold_primitive("+", (v, w))
                outs[k] = v
        return outs
    if t is BWaveform:
        return [len(box.values), None]
    if t is BSymbolic:  # \(slot).body: the first input is the slot's value
        try:
            body = box.body  # (a lazy function's conversion: where it cannot be, no number)
        except FaustEvalError:
            return [None] * (try_arity(box) or (0, 1))[1]
        return _outputs(body, list(ins[1:]), {**(env or {}), box.slot: ins[0] if ins else None})
    if t is BSlot:
        return [(env or {}).get(box)]
    # recursions, widgets, foreign constants, slots, symbolic boxes...: not constant
    ar = try_arity(box)
    return [None] * (ar[1] if ar else 1)


def box_number(box) -> Optional[Number]:
    """The number that `box` denotes (a 0-input, 1-output constant expression), or None."""
    if not isinstance(box, Box):
        return None
    if type(box) is BConst:
        return box.value
    ar = try_arity(box)
    if ar != (0, 1):
        return None
    try:
        out = _outputs(box, [])
    except FaustEvalError:
        return None
    v = out[0] if out else None
    if isinstance(v, bool):
        v = int(v)
    return v


def require_number(box, what: str, span) -> Number:
    """`box_number(box)`, or a FaustEvalError '<what> must be a constant number'."""
    v = box_number(box)
    if v is None:
        from .printer import short_box

        shown = short_box(box) if isinstance(box, Box) else type(box).__name__
        raise FaustEvalError(f"{what} must be a constant number, not '{shown}'", span)
    return v


def require_int(box, what: str, span) -> int:
    v = require_number(box, what, span)
    if isinstance(v, float):
        if math.isinf(v):
            raise FaustEvalError(f"{what} must be a finite number", span)
        return int(v)
    return v
