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
    Box, BConst, BCut, BMerge, BPar, BPrim, BRec, BRoute, BSeq, BSplit, BWaveform, BWire,
)

Number = Union[int, float]

_MEMO: dict = {}


def wrap32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v >= 0x80000000 else v


def _to_int(x: Number) -> int:
    if isinstance(x, int):
        return x
    if math.isnan(x) or math.isinf(x):
        raise _NotConst
    return wrap32(int(x))  # truncation toward zero


class _NotConst(Exception):
    pass


def _c_rem(a: int, b: int) -> int:
    if b == 0:
        raise _NotConst
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _real_div(a, b):
    # measured (Faust 2.54.9): an exact int division folds to an int (8/2 -> 4, which
    # matches the pattern f(4)), an inexact one to a real (7/2 -> 3.5)
    if isinstance(a, int) and isinstance(b, int) and b != 0 and a % b == 0:
        return wrap32(a // b)
    a, b = float(a), float(b)
    if b == 0.0:
        if a == 0.0:
            return 0.0  # Faust simplifies 0/x to 0
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _pow(a, b):
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        return wrap32(a ** b) if b < 64 or abs(a) <= 1 else wrap32(pow(a, b, 1 << 32))
    try:
        r = math.pow(float(a), float(b))
    except (OverflowError, ValueError):
        return math.nan if a < 0 else math.inf
    return r


def _math1(f):
    def g(x):
        try:
            return f(float(x))
        except (ValueError, OverflowError):
            return math.nan

    return g


def _log(x):
    x = float(x)
    if x == 0:
        return -math.inf
    if x < 0:
        return math.nan
    return math.log(x)


def _log10(x):
    x = float(x)
    if x == 0:
        return -math.inf
    if x < 0:
        return math.nan
    return math.log10(x)


def _sqrt(x):
    x = float(x)
    return math.nan if x < 0 else math.sqrt(x)


def _both_int(a, b):
    return isinstance(a, int) and isinstance(b, int)


def _arith(op):
    def f(a, b):
        if _both_int(a, b):
            return wrap32(op(a, b))
        return float(op(float(a), float(b)))

    return f


def _rem(a, b):
    if _both_int(a, b):
        return _c_rem(a, b)
    a, b = float(a), float(b)
    if b == 0:
        return math.nan
    return math.fmod(a, b)


def _fmod(a, b):
    a, b = float(a), float(b)
    if b == 0:
        return math.nan
    return math.fmod(a, b)


def _remainder(a, b):
    a, b = float(a), float(b)
    if b == 0:
        return math.nan
    return math.remainder(a, b)


def _minmax(f):
    def g(a, b):
        if _both_int(a, b):
            return f(a, b)
        return float(f(float(a), float(b)))

    return g


def _abs(x):
    return wrap32(abs(x)) if isinstance(x, int) else abs(x)


def _rint(x):
    x = float(x)
    if math.isinf(x) or math.isnan(x):
        return x
    return float(round(x))  # banker's rounding, as C rint in the default mode


def _round(x):
    x = float(x)
    if math.isinf(x) or math.isnan(x):
        return x
    return float(math.floor(abs(x) + 0.5)) * (1.0 if x >= 0 else -1.0)


def _floorceil(f):
    def g(x):
        x = float(x)
        if math.isinf(x) or math.isnan(x):
            return x
        return float(f(x))

    return g


def _shift_left(a, b):
    return wrap32(_to_int(a) << (_to_int(b) & 31))


def _shift_right(a, b):
    return wrap32(_to_int(a) >> (_to_int(b) & 31))


def _select2(s, a, b):
    return a if _to_int(s) == 0 else b


def _select3(s, a, b, c):
    i = _to_int(s)
    return a if i == 0 else (b if i == 1 else c)


FOLD = {
    "+": _arith(lambda a, b: a + b),
    "-": _arith(lambda a, b: a - b),
    "*": _arith(lambda a, b: a * b),
    "/": _real_div,
    "%": _rem,
    "^": _pow,
    "pow": _pow,
    "<": lambda a, b: int(a < b),
    "<=": lambda a, b: int(a <= b),
    ">": lambda a, b: int(a > b),
    ">=": lambda a, b: int(a >= b),
    "==": lambda a, b: int(a == b),
    "!=": lambda a, b: int(a != b),
    "&": lambda a, b: wrap32(_to_int(a) & _to_int(b)),
    "|": lambda a, b: wrap32(_to_int(a) | _to_int(b)),
    "xor": lambda a, b: wrap32(_to_int(a) ^ _to_int(b)),
    "<<": _shift_left,
    ">>": _shift_right,
    "sin": _math1(math.sin), "cos": _math1(math.cos), "tan": _math1(math.tan),
    "asin": _math1(math.asin), "acos": _math1(math.acos), "atan": _math1(math.atan),
    "atan2": lambda a, b: math.atan2(float(a), float(b)),
    "exp": _math1(math.exp), "log": _log, "log10": _log10, "sqrt": _sqrt,
    "abs": _abs, "min": _minmax(min), "max": _minmax(max),
    "fmod": _fmod, "remainder": _remainder,
    "floor": _floorceil(math.floor), "ceil": _floorceil(math.ceil),
    "rint": _rint, "round": _round,
    "int": _to_int, "float": lambda x: float(x),
    "select2": _select2, "select3": _select3,
    "attach": lambda a, b: a,
    "lowest": None, "highest": None,
}


def fold_primitive(name: str, args) -> Optional[Number]:
    """The value of primitive `name` applied to numbers, or None when not foldable."""
    f = FOLD.get(name)
    if f is None:
        return None
    try:
        r = f(*args)
    except (_NotConst, OverflowError, ZeroDivisionError, ValueError):
        return None
    if isinstance(r, float) and math.isnan(r):
        return None
    return r


def _outputs(box: Box, ins: list) -> list:
    """Values of the outputs of `box` fed with `ins` (None = not a known number)."""
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
                try:
                    return [ins[1] if _to_int(ins[0]) == 0 else ins[2]]
                except _NotConst:
                    return [None]
            return [None]
        if box.name == "@" and ins[1] == 0:
            return [ins[0]]
        return [fold_primitive(box.name, ins)]
    if t is BPar:
        ia = box_arity(box.a)[0]
        return _outputs(box.a, ins[:ia]) + _outputs(box.b, ins[ia:])
    if t is BSeq:
        if not ins and box in _MEMO:
            return _MEMO[box]
        r = _outputs(box.b, _outputs(box.a, ins))
        if not ins:
            _MEMO[box] = r
        return r
    if t is BSplit:
        mid = _outputs(box.a, ins)
        ib = box_arity(box.b)[0]
        if not mid:
            return _outputs(box.b, [])
        return _outputs(box.b, [mid[i % len(mid)] for i in range(ib)])
    if t is BMerge:
        mid = _outputs(box.a, ins)
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
        return _outputs(box.b, sums)
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
