"""THE primitive table: one entry per Faust primitive, all its rules side by side.

Each `Primitive` declares:
  arity     number of input signals
  nature    result nature ('int' | 'real') from the argument natures
  convert   how arguments are converted before the operation:
              'same' (mixed int/real → real), 'real', 'int', or a tuple per argument
  fold      evaluation on constant Python numbers, Faust semantics (also the
            reference semantics of the interpreter); returns None when it must
            not be folded (e.g. an int division by zero)
  jvp       forward derivative, written with signal builders:
              jvp(args, tangents) -> tangent signal        (tangents never None)
  interval  result interval from argument intervals (used to size delay lines)
  code      how it lowers: ('binop', int_op, real_op) | ('libm', name) |
            ('intrinsic', name) | ('cmp', pred) | ('special', name)
  c         C expression template for the listing / C++ export

A pass that needs a rule a primitive lacks raises an error naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..signals.nodes import wrap_int

INF = float("inf")


@dataclass(frozen=True)
class Primitive:
    name: str
    arity: int
    nature: Callable
    convert: object
    fold: Optional[Callable]
    jvp: Optional[Callable]
    interval: Optional[Callable]
    code: tuple
    c: str


PRIMITIVES: dict[str, Primitive] = {}


def _reg(p: Primitive) -> Primitive:
    PRIMITIVES[p.name] = p
    return p


def lookup(name: str) -> Primitive:
    try:
        return PRIMITIVES[name]
    except KeyError:
        from ..errors import DiffaustError

        raise DiffaustError(f"unknown primitive '{name}'") from None


# ---------------------------------------------------------------- nature rules


def same_nature(*ns):
    return "real" if "real" in ns else "int"


def always_real(*ns):
    return "real"


def always_int(*ns):
    return "int"


# ---------------------------------------------------------------- fold helpers


def _f(x):
    return float(x)


def _np(fn):
    """Evaluate a numpy ufunc in float64 with IEEE results (inf/nan, no warnings)."""

    def run(*xs):
        with np.errstate(all="ignore"):
            return float(fn(*[np.float64(x) for x in xs]))

    return run


def _int_or_real(int_fn, real_fn):
    def fold(natures, values):
        if all(n == "int" for n in natures):
            r = int_fn(*values)
            return None if r is None else wrap_int(r)
        return real_fn(*map(_f, values))

    return fold


def _real(fn):
    def fold(natures, values):
        return fn(*map(_f, values))

    return fold


def _c_rem(a: int, b: int):
    if b == 0:
        return None  # int % 0 is refused at compile time (Faust's C++ crashes)
    return int(math.fmod(a, b))


def _shift_left(a: int, b: int):
    return wrap_int(a << (b & 31))


def _shift_right(a: int, b: int):
    return a >> (b & 31)


def _round_half_away(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    return float(math.copysign(math.floor(abs(x) + 0.5), x))


def _remainder(a, b):
    with np.errstate(all="ignore"):
        if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
            return float("nan")
        return math.remainder(a, b)


def _fmod(a, b):
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return float("nan")
    return math.fmod(a, b)


def _trunc_int(x) -> int:
    x = float(x)
    if math.isnan(x) or math.isinf(x) or abs(x) >= 2**31:
        return -(2**31)  # what x86 cvttss2si gives
    return int(x)


# ---------------------------------------------------------------- intervals


def iv_add(a, b):
    return (a[0] + b[0], a[1] + b[1])


def iv_sub(a, b):
    return (a[0] - b[1], a[1] - b[0])


def iv_mul(a, b):
    with np.errstate(all="ignore"):
        ps = [x * y for x in a for y in b]
    ps = [0.0 if math.isnan(p) else p for p in ps]
    return (min(ps), max(ps))


def iv_div(a, b):
    if b[0] <= 0 <= b[1]:
        return (-INF, INF)
    return iv_mul(a, (1.0 / b[1], 1.0 / b[0]))


def iv_minmax(fn):
    return lambda a, b: (fn(a[0], b[0]), fn(a[1], b[1]))


def iv_mono(fn):
    return lambda a: (fn(a[0]), fn(a[1]))


def iv_abs(a):
    if a[0] >= 0:
        return a
    if a[1] <= 0:
        return (-a[1], -a[0])
    return (0.0, max(-a[0], a[1]))


def iv_bool(*_):
    return (0.0, 1.0)


def iv_unit(*_):
    return (-1.0, 1.0)


def iv_any(*_):
    return (-INF, INF)


def iv_rem(a, b):
    m = max(abs(b[0]), abs(b[1]))
    lo = 0.0 if a[0] >= 0 else -m
    hi = 0.0 if a[1] <= 0 else m
    return (lo, hi)


def iv_int(a):
    return (math.trunc(a[0]) if not math.isinf(a[0]) else a[0], math.trunc(a[1]) if not math.isinf(a[1]) else a[1])


_INT_MIN, _INT_MAX = -2.0 ** 31, 2.0 ** 31 - 1


def _finite_int(a) -> bool:
    return _INT_MIN <= a[0] <= a[1] <= _INT_MAX


def iv_and(a, b):
    """x & y on int32 (real operands truncated): a non-negative operand bounds the result,
    0 <= x & m <= m for m >= 0, whatever x is (so `x@(int(d) & 15)` is a delay of 0..15)."""
    a, b = iv_int(a), iv_int(b)
    his = [iv[1] for iv in (a, b) if iv[0] >= 0]
    return (0.0, float(min(his))) if his else (_INT_MIN, _INT_MAX)


def iv_or_xor(a, b):
    """x | y and x ^ y: for non-negative operands, 0 .. 2^bits(max) − 1; else any int32."""
    a, b = iv_int(a), iv_int(b)
    if a[0] >= 0 and b[0] >= 0 and _finite_int(a) and _finite_int(b):
        return (0.0, float((1 << int(max(a[1], b[1])).bit_length()) - 1))
    return (_INT_MIN, _INT_MAX)


def iv_shift(left: bool):
    """x << s, x >> s (arithmetic) for shifts s in [0, 31]: monotone in x, and in s on each
    sign of x, so the corners bound it; a left shift that can leave int32 wraps: any int32."""
    def iv(a, b):
        a, b = iv_int(a), iv_int(b)
        if not (_finite_int(a) and 0 <= b[0] <= b[1] <= 31):
            return (_INT_MIN, _INT_MAX)
        corners = [(int(x) << int(k)) if left else (int(x) >> int(k)) for x in a for k in b]
        lo, hi = float(min(corners)), float(max(corners))
        if lo < _INT_MIN or hi > _INT_MAX:
            return (_INT_MIN, _INT_MAX)
        return (lo, hi)
    return iv


def iv_select(s, *branches):
    return (min(b[0] for b in branches), max(b[1] for b in branches))


# ---------------------------------------------------------------- JVP rules
# Rules receive the primal argument signals and their tangents and return the
# tangent of the result.  Builders simplify (0·x → 0 …) so zero tangents vanish.


def _b():
    from ..signals import build

    return build


def jvp_add(args, dots):
    # (f + g)' = f' + g'
    B = _b()
    return B.add(dots[0], dots[1])


def jvp_sub(args, dots):
    # (f - g)' = f' - g'
    B = _b()
    return B.sub(dots[0], dots[1])


def jvp_mul(args, dots):
    # (f g)' = f' g + f g'
    B = _b()
    f, g = args
    return B.add(B.mul(dots[0], g), B.mul(f, dots[1]))


def jvp_div(args, dots):
    # (f / g)' = (f' g - f g') / g²
    B = _b()
    f, g = args
    if B.is_zero(dots[1]):
        return B.div(dots[0], g)
    return B.div(B.sub(B.mul(dots[0], g), B.mul(f, dots[1])), B.mul(g, g))


def _jvp_mod_like(fn_name):
    def rule(args, dots):
        # f mod g = f - g·q with q = (f - (f mod g))/g piecewise constant:
        # (f mod g)' = f' - g'·q        (q = trunc(f/g) for fmod/%, rint(f/g) for remainder)
        B = _b()
        f, g = args
        if B.is_zero(dots[1]):
            return dots[0]
        q = B.div(B.sub(f, B.prim(fn_name, f, g)), g)
        return B.sub(dots[0], B.mul(dots[1], q))

    return rule


def jvp_pow(args, dots):
    # (f^g)' = g f^(g-1) f' + f^g ln(f) g'
    B = _b()
    f, g = args
    terms = []
    if not B.is_zero(dots[0]):
        terms.append(B.mul(B.mul(g, B.prim("pow", f, B.sub(g, B.const(1.0)))), dots[0]))
    if not B.is_zero(dots[1]):
        terms.append(B.mul(B.mul(B.prim("pow", f, g), B.prim("log", f)), dots[1]))
    out = B.const(0.0)
    for t in terms:
        out = B.add(out, t)
    return out


def jvp_zero(args, dots):
    # piecewise constant: derivative 0 almost everywhere
    return _b().const(0.0)


def _unary(rule):
    """Chain rule for unary math: f(x)' = f'(x) · x'."""

    def jvp(args, dots):
        B = _b()
        if B.is_zero(dots[0]):
            return B.const(0.0)
        return B.mul(rule(B, args[0]), dots[0])

    return jvp


def jvp_atan2(args, dots):
    # atan2(y, x)' = (x y' - y x') / (x² + y²)
    B = _b()
    y, x = args
    num = B.sub(B.mul(x, dots[0]), B.mul(y, dots[1]))
    return B.div(num, B.add(B.mul(x, x), B.mul(y, y)))


def jvp_abs(args, dots):
    # |x|' = sign(x) x'   (0 at x = 0)
    B = _b()
    x = args[0]
    return B.select2(B.prim(">", x, B.const(0)), B.select2(B.prim("<", x, B.const(0)), B.const(0.0), B.neg(dots[0])), dots[0])


def jvp_min(args, dots):
    # min(a, b) = b < a ? b : a   (std::min)
    B = _b()
    a, b = args
    return B.select2(B.prim("<", b, a), dots[0], dots[1])


def jvp_max(args, dots):
    # max(a, b) = a < b ? b : a   (std::max)
    B = _b()
    a, b = args
    return B.select2(B.prim("<", a, b), dots[0], dots[1])


def jvp_float(args, dots):
    # float(x)' = x'
    return dots[0]


def jvp_select2(args, dots):
    # select2(s, a, b)' = select2(s, a', b')   (s piecewise constant)
    return _b().select2(args[0], dots[1], dots[2])


def jvp_select3(args, dots):
    # select3(s, a, b, c)' = select3(s, a', b', c')
    return _b().prim("select3", args[0], dots[1], dots[2], dots[3])


def jvp_attach(args, dots):
    # attach(x, y) = x (y only kept alive)
    return dots[0]


def jvp_identity_first(args, dots):
    return dots[0]


# ---------------------------------------------------------------- the table


def binop(name, int_fn, real_fn, jvp, interval, int_op, real_op, c, nature=same_nature):
    return _reg(Primitive(name, 2, nature, "same", _int_or_real(int_fn, real_fn), jvp, interval,
                          ("binop", int_op, real_op), c))


binop("+", lambda a, b: a + b, lambda a, b: a + b, jvp_add, iv_add, "add", "fadd", "({0} + {1})")
binop("-", lambda a, b: a - b, lambda a, b: a - b, jvp_sub, iv_sub, "sub", "fsub", "({0} - {1})")
binop("*", lambda a, b: a * b, lambda a, b: a * b, jvp_mul, iv_mul, "mul", "fmul", "({0} * {1})")
# `/` is real division, even int/int (FAUST-SEMANTICS)
_reg(Primitive("/", 2, always_real, "real", _real(_np(np.divide)), jvp_div, iv_div,
               ("binop", None, "fdiv"), "({0} / {1})"))
binop("%", _c_rem, _fmod, _jvp_mod_like("%"), iv_rem, "srem", "frem", "({0} % {1})")

for _name, _fn, _pred in [("<", lambda a, b: a < b, "<"), ("<=", lambda a, b: a <= b, "<="),
                          (">", lambda a, b: a > b, ">"), (">=", lambda a, b: a >= b, ">="),
                          ("==", lambda a, b: a == b, "=="), ("!=", lambda a, b: a != b, "!=")]:
    _reg(Primitive(_name, 2, always_int, "same",
                   (lambda fn: lambda natures, values: int(fn(*values)))(_fn),
                   jvp_zero, iv_bool, ("cmp", _pred), "({0} %s {1})" % _pred))

for _name, _fn, _op, _c, _iv in [("&", lambda a, b: a & b, "and", "({0} & {1})", iv_and),
                                 ("|", lambda a, b: a | b, "or", "({0} | {1})", iv_or_xor),
                                 ("xor", lambda a, b: a ^ b, "xor", "({0} ^ {1})", iv_or_xor),
                                 ("<<", _shift_left, "shl", "({0} << {1})", iv_shift(True)),
                                 (">>", _shift_right, "ashr", "({0} >> {1})", iv_shift(False))]:
    _reg(Primitive(_name, 2, always_int, "int",
                   (lambda fn: lambda natures, values: wrap_int(fn(*[int(v) if isinstance(v, int) else _trunc_int(v) for v in values])))(_fn),
                   jvp_zero, _iv, ("binop", _op, None), _c))


def math1(name, fn, jvp, interval=iv_any, libm=None, intrinsic=None):
    code = ("intrinsic", intrinsic) if intrinsic else ("libm", libm or name)
    return _reg(Primitive(name, 1, always_real, "real", _real(_np(fn)), jvp, interval, code,
                          f"{libm or name}{{f}}({{0}})"))


# sin and cos lie in [-1, 1] (as Faust types them: `x@int(3 + 2*sin(y))` gets a 6-sample line)
math1("sin", np.sin, _unary(lambda B, x: B.prim("cos", x)), iv_unit)                       # sin' = cos
math1("cos", np.cos, _unary(lambda B, x: B.neg(B.prim("sin", x))), iv_unit)                # cos' = -sin
math1("tan", np.tan, _unary(lambda B, x: B.add(B.const(1.0), B.mul(B.prim("tan", x), B.prim("tan", x)))))  # tan' = 1 + tan²
math1("asin", np.arcsin, _unary(lambda B, x: B.div(B.const(1.0), B.prim("sqrt", B.sub(B.const(1.0), B.mul(x, x))))))   # 1/√(1-x²)
math1("acos", np.arccos, _unary(lambda B, x: B.neg(B.div(B.const(1.0), B.prim("sqrt", B.sub(B.const(1.0), B.mul(x, x)))))))  # -1/√(1-x²)
math1("atan", np.arctan, _unary(lambda B, x: B.div(B.const(1.0), B.add(B.const(1.0), B.mul(x, x)))))  # 1/(1+x²)
math1("exp", np.exp, _unary(lambda B, x: B.prim("exp", x)), iv_mono(lambda v: math.exp(min(v, 700))))   # exp' = exp
math1("log", np.log, _unary(lambda B, x: B.div(B.const(1.0), x)))                          # log' = 1/x
math1("log10", np.log10, _unary(lambda B, x: B.div(B.const(1.0 / math.log(10.0)), x)))    # log10' = 1/(x ln 10)
math1("sqrt", np.sqrt, _unary(lambda B, x: B.div(B.const(0.5), B.prim("sqrt", x))), intrinsic="sqrt")  # √' = 1/(2√x)
math1("floor", np.floor, jvp_zero, iv_mono(math.floor), intrinsic="floor")
math1("ceil", np.ceil, jvp_zero, iv_mono(math.ceil), intrinsic="ceil")
math1("rint", np.rint, jvp_zero, iv_mono(round), intrinsic="rint")
_reg(Primitive("round", 1, always_real, "real", _real(_round_half_away), jvp_zero, iv_mono(_round_half_away),
               ("intrinsic", "round"), "round{f}({0})"))

_reg(Primitive("atan2", 2, always_real, "real", _real(_np(np.arctan2)), jvp_atan2, iv_any,
               ("libm", "atan2"), "atan2{f}({0}, {1})"))
def _int_pow(a: int, b: int):
    # measured (docs/SEMANTICS.md): int^int is int: small constant exponents multiply
    # (wrapping), others convert pow()'s real result like int() does
    if 0 <= b <= 8:
        r = 1
        for _ in range(b):
            r = wrap_int(r * a)
        return r
    with np.errstate(all="ignore"):
        return _trunc_int(np.power(np.float64(a), np.float64(b)))


def _pow_fold(natures, values):
    if natures == ("int", "int"):
        return _int_pow(int(values[0]), int(values[1]))
    return _np(np.power)(*map(_f, values))


for _name in ("pow", "^"):
    _reg(Primitive(_name, 2, same_nature, "real", _pow_fold, jvp_pow, iv_any,
                   ("special", "pow"), "pow{f}({0}, {1})"))
_reg(Primitive("fmod", 2, always_real, "real", _real(_fmod), _jvp_mod_like("fmod"), iv_rem,
               ("libm", "fmod"), "fmod{f}({0}, {1})"))
_reg(Primitive("remainder", 2, always_real, "real", _real(_remainder), _jvp_mod_like("remainder"), iv_rem,
               ("libm", "remainder"), "remainder{f}({0}, {1})"))
_reg(Primitive("abs", 1, same_nature, "same", _int_or_real(abs, abs), jvp_abs, iv_abs,
               ("special", "abs"), "abs({0})"))
_reg(Primitive("min", 2, same_nature, "same", _int_or_real(min, lambda a, b: b if b < a else a), jvp_min,
               iv_minmax(min), ("special", "min"), "min({0}, {1})"))
_reg(Primitive("max", 2, same_nature, "same", _int_or_real(max, lambda a, b: b if a < b else a), jvp_max,
               iv_minmax(max), ("special", "max"), "max({0}, {1})"))

# casts: int() truncates toward zero
_reg(Primitive("int", 1, always_int, ("any",),
               lambda natures, values: values[0] if natures[0] == "int" else wrap_int(_trunc_int(values[0])),
               jvp_zero, iv_int, ("special", "int"), "int({0})"))
_reg(Primitive("float", 1, always_real, "real", lambda natures, values: float(values[0]), jvp_float,
               lambda a: a, ("special", "float"), "float({0})"))

# selection: select2(s, a, b) uses int(s): 0 picks a, anything else picks b
_reg(Primitive("select2", 3, lambda s, a, b: same_nature(a, b), ("int", "same", "same"),
               lambda natures, values: values[1] if int(values[0]) == 0 else values[2],
               jvp_select2, iv_select, ("special", "select2"), "({0} ? {2} : {1})"))
# select3(s, a, b, c): s == 0 → a, s == 1 → b, anything else → c; a real s is compared
# exactly, not truncated (measured: select3(1.7, ...) and select3(0.5, ...) pick c)
_reg(Primitive("select3", 4, lambda s, a, b, c: same_nature(a, b, c), ("any", "same", "same", "same"),
               lambda natures, values: values[1] if values[0] == 0 else (values[2] if values[0] == 1 else values[3]), jvp_select3, iv_select, ("special", "select3"),
               "(({0} == 0) ? {1} : (({0} == 1) ? {2} : {3}))"))

_reg(Primitive("attach", 2, lambda a, b: a, ("any", "any"), None, jvp_attach, lambda a, b: a,
               ("special", "attach"), "{0}"))
_reg(Primitive("enable", 2, same_nature, "same", None, None, iv_any, ("special", "enable"), "({0} * {1})"))
_reg(Primitive("control", 2, lambda a, b: a, ("any", "any"), None, None, lambda a, b: a,
               ("special", "control"), "{0}"))
_reg(Primitive("lowest", 1, always_real, "real", None, jvp_zero, iv_any, ("special", "lowest"), "lowest({0})"))
_reg(Primitive("highest", 1, always_real, "real", None, jvp_zero, iv_any, ("special", "highest"), "highest({0})"))
_reg(Primitive("assertbounds", 3, lambda lo, hi, x: x, ("any", "any", "any"), None,
               lambda args, dots: dots[2], lambda lo, hi, x: x, ("special", "assertbounds"), "{2}"))


def fold(name: str, natures: tuple, values: tuple):
    """Fold a primitive on constants: (nature, value) or None when not foldable."""
    p = PRIMITIVES[name]
    if p.fold is None:
        return None
    r = p.fold(natures, values)
    if r is None:
        return None
    nature = p.nature(*natures)
    if nature == "int":
        r = wrap_int(int(r))
    else:
        r = float(r)
        if math.isnan(r) or math.isinf(r):
            return None  # keep non-finite results as run-time expressions
    return nature, r
