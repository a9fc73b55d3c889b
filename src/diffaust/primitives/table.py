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
  code      how it lowers, when a generic rule does it (data read by every backend):
              ('binop', int_op, real_op)   LLVM instruction names (None: no such form)
              ('cmp', pred, fcmp, pyop)    C predicate, 'ordered' | 'unordered' on reals,
                                           the Python operator (interp)
              ('libm', name) | ('intrinsic', name)   a C math function / LLVM intrinsic
              ('special',)                 no generic rule: each backend needs its hook
  c         C expression template for the listing / C++ export ({f}: the float suffix)
  ufunc     NumPy evaluation at the program's precision (interp's generic libm/intrinsic rule)
  symbols   libm functions the primitive's own lowering calls (registered with the JIT)
  keyword   whether Faust's lexer makes the name a keyword (when it is a word)

and, for what is not generic, one lowering hook per backend (called before the generic rule):
  llvm      llvm(cg, b, e, args, natures) -> IR value     (cg: the LLVM lowering, b: its builder)
  cpp       cpp(em, e, args, natures) -> C++ text          (em: the C++ emitter)
  interp    interp(m, e, args) -> NumPy scalar             (m: the interpreter's machine)
  clike     clike(e, args, f) -> text of the C-like listing (f: "f" or "")
where e is the scheduled `Op` (e.nature: its result nature), args the converted arguments
(lowered by the backend), natures theirs.

A pass that needs a rule a primitive lacks raises an error naming it (`missing_rule`).
Adding a primitive: one entry here plus one row in tests/test_primitive_table.py.
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
    ufunc: Optional[Callable] = None
    symbols: tuple = ()
    keyword: bool = True
    llvm: Optional[Callable] = None
    cpp: Optional[Callable] = None
    interp: Optional[Callable] = None
    clike: Optional[Callable] = None
    # the scheduler's rule for a primitive that is not an operation at run time (attach,
    # control, lowest, assertbounds...): (sch, s) -> the expression of s's value
    schedule: Optional[Callable] = None


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


def missing_rule(p: Primitive, rule: str):
    """The error of a pass that meets a primitive without the rule it needs."""
    from ..errors import DiffaustError

    return DiffaustError(f"primitive '{p.name}' has no {rule}")


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


def iv_pow(a, b):
    """pow(x, y): x > 0 (monotonic in x and y: the corners); a constant integer exponent k
    (odd: monotonic; even: ≥ 0, the larger |x|^k at the top); else unbounded."""
    (x0, x1), (y0, y1) = a, b
    if x0 > 0:
        vals = [x ** y for x in (x0, x1) for y in (y0, y1)]
        return (min(vals), max(vals))
    if y0 == y1 and float(y0).is_integer() and y0 >= 0:
        k = int(y0)
        if k % 2:
            return (x0 ** k, x1 ** k)
        top = max(abs(x0), abs(x1)) ** k
        return (0.0 if x0 <= 0 <= x1 else min(abs(x0), abs(x1)) ** k, top)
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


# ---------------------------------------------------------------- backend hooks
# What a backend cannot do from `code` alone.  Each hook gets the backend's own context
# (see the module docstring) and the converted arguments; they use only its helpers.


def _is_int(natures) -> bool:
    return natures[0] == "int"


def _np_int(v) -> np.int32:
    return np.int32(wrap_int(int(v)))


# abs: int |x| wraps (|INT_MIN| = INT_MIN); real |x| is fabs
def _llvm_abs(cg, b, e, args, nats):
    x = args[0]
    if _is_int(nats):
        return b.select(b.icmp_signed("<", x, cg.int_const(0)), b.neg(x), x)
    return b.call(cg.intrinsic("fabs", cg.real), [x])


def _cpp_abs(em, e, args, nats):
    return f"{em.use('iabs')}({args[0]})" if _is_int(nats) else f"fabs{em.sfx}({args[0]})"


def _interp_abs(m, e, args):
    return _np_int(abs(int(args[0]))) if all(isinstance(v, np.int32) for v in args) else m.R(abs(args[0]))


# min(a, b) = b < a ? b : a, max(a, b) = a < b ? b : a   (std::min, std::max)
def _llvm_lt(b, nats):
    if _is_int(nats):
        return lambda u, v: b.icmp_signed("<", u, v)
    return lambda u, v: b.fcmp_ordered("<", u, v)


def _llvm_min(cg, b, e, args, nats):
    x, y = args
    return b.select(_llvm_lt(b, nats)(y, x), y, x)


def _llvm_max(cg, b, e, args, nats):
    x, y = args
    return b.select(_llvm_lt(b, nats)(x, y), y, x)


def _cpp_minmax(helper):
    def cpp(em, e, args, nats):
        if nats[0] != nats[1]:
            from ..errors import DiffaustError

            raise DiffaustError(f"cpp backend: '{e.name}' on {list(nats)}")
        return f"{em.use(helper)}({args[0]}, {args[1]})"

    return cpp


# int(x): truncation toward zero, C's (int)x on x86
def _llvm_int(cg, b, e, args, nats):
    return args[0] if _is_int(nats) else cg.fptosi(b, args[0])


def _cpp_int(em, e, args, nats):
    return args[0] if _is_int(nats) else f"{em.use('toint')}({args[0]})"


def _interp_int(m, e, args):
    return args[0] if isinstance(args[0], np.int32) else m.to_int(args[0])


def _llvm_float(cg, b, e, args, nats):
    return args[0] if nats[0] == "real" else b.sitofp(args[0], cg.real)


def _cpp_float(em, e, args, nats):
    return args[0] if nats[0] == "real" else f"{em.R}({args[0]})"


# select2(s, a, b): s != 0 picks b (s is converted to int)
def _llvm_select2(cg, b, e, args, nats):
    s, x, y = args
    return b.select(b.icmp_signed("!=", s, cg.int_const(0)), y, x)


def _cpp_select2(em, e, args, nats):
    s, x, y = args
    if not _is_int(nats):
        from ..errors import DiffaustError

        raise DiffaustError("cpp backend: select2 with a real selector")
    return f"({s} != 0 ? {y} : {x})"


# select3(s, a, b, c): a real selector is compared exactly
def _llvm_select3(cg, b, e, args, nats):
    s, x, y, z = args
    if _is_int(nats):
        is0 = b.icmp_signed("==", s, cg.int_const(0))
        is1 = b.icmp_signed("==", s, cg.int_const(1))
    else:
        is0 = b.fcmp_ordered("==", s, cg.real_const(0.0))
        is1 = b.fcmp_ordered("==", s, cg.real_const(1.0))
    return b.select(is0, x, b.select(is1, y, z))


def _cpp_select3(em, e, args, nats):
    s, x, y, z = args
    zero, one = ("0", "1") if _is_int(nats) else (em.real_literal(0.0), em.real_literal(1.0))
    return f"({s} == {zero} ? {x} : ({s} == {one} ? {y} : {z}))"


def _interp_select3(m, e, args):
    s = args[0]
    return args[1] if s == 0 else (args[2] if s == 1 else args[3])


# pow / ^: the real pow; an int result (int^int) converts it like int() does
def _llvm_pow(cg, b, e, args, nats):
    f = cg.fn("pow" + cg.sfx, cg.real, [cg.real, cg.real])
    r = b.call(f, args)
    return cg.fptosi(b, r) if e.nature == "int" else r


def _cpp_pow(em, e, args, nats):
    if any(n != "real" for n in nats):
        from ..errors import DiffaustError

        raise DiffaustError(f"cpp backend: pow on {list(nats)}")
    r = f"pow{em.sfx}({args[0]}, {args[1]})"
    return f"{em.use('toint')}({r})" if e.nature == "int" else r


def _interp_pow(m, e, args):
    r = m.R(np.power(m.R(args[0]), m.R(args[1])))
    return m.to_int(r) if e.nature == "int" else r


def _clike_pow(e, args, f):
    r = f"pow{f}({args[0]}, {args[1]})"
    return f"int({r})" if e.nature == "int" else r


# % on reals is fmod
def _clike_rem(e, args, f):
    if e.nature == "real":
        return f"fmod{f}({args[0]}, {args[1]})"
    return f"({args[0]} % {args[1]})"


# ---------------------------------------------------------------- the table


def binop(name, int_fn, real_fn, jvp, interval, int_op, real_op, c, nature=same_nature, **hooks):
    return _reg(Primitive(name, 2, nature, "same", _int_or_real(int_fn, real_fn), jvp, interval,
                          ("binop", int_op, real_op), c, **hooks))


binop("+", lambda a, b: a + b, lambda a, b: a + b, jvp_add, iv_add, "add", "fadd", "({0} + {1})")
binop("-", lambda a, b: a - b, lambda a, b: a - b, jvp_sub, iv_sub, "sub", "fsub", "({0} - {1})")
binop("*", lambda a, b: a * b, lambda a, b: a * b, jvp_mul, iv_mul, "mul", "fmul", "({0} * {1})")
# `/` is real division, even int/int (FAUST-SEMANTICS)
_reg(Primitive("/", 2, always_real, "real", _real(_np(np.divide)), jvp_div, iv_div,
               ("binop", None, "fdiv"), "({0} / {1})"))
binop("%", _c_rem, _fmod, _jvp_mod_like("%"), iv_rem, "srem", "frem", "({0} % {1})", clike=_clike_rem)

# comparisons: int 0/1; on reals `!=` is C's (true for NaN: unordered), the others ordered
for _name, _fn, _fcmp in [("<", lambda a, b: a < b, "ordered"), ("<=", lambda a, b: a <= b, "ordered"),
                          (">", lambda a, b: a > b, "ordered"), (">=", lambda a, b: a >= b, "ordered"),
                          ("==", lambda a, b: a == b, "ordered"), ("!=", lambda a, b: a != b, "unordered")]:
    _reg(Primitive(_name, 2, always_int, "same",
                   (lambda fn: lambda natures, values: int(fn(*values)))(_fn),
                   jvp_zero, iv_bool, ("cmp", _name, _fcmp, _fn), "({0} %s {1})" % _name))

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
                          f"{libm or name}{{f}}({{0}})", ufunc=fn))


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
# round is no Faust keyword (an identifier that names the primitive unless redefined)
_reg(Primitive("round", 1, always_real, "real", _real(_round_half_away), jvp_zero, iv_mono(_round_half_away),
               ("intrinsic", "round"), "round{f}({0})", ufunc=lambda u: _round_half_away(float(u)),
               keyword=False))

_reg(Primitive("atan2", 2, always_real, "real", _real(_np(np.arctan2)), jvp_atan2, iv_any,
               ("libm", "atan2"), "atan2{f}({0}, {1})", ufunc=np.arctan2))
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


def _schedule_pow(sch, s):
    """x^k for a constant k in 2..8 and a real x: ((x·x)·x)… as Faust's faustpower runs it.
    The node stays pow(x, k) up to here, so that the normal form keeps it one factor as
    Faust's does (x^2/x is not x: 0 at x = 0 is 0/0, NaN); None: the call to pow()."""
    from ..codegen.schedule import Op

    x, k = s.args
    if k.op != "const" or sch.t.nature[x] != "real" or not float(k.attr[1]).is_integer() \
            or not 2 <= k.attr[1] <= 8 or sch.t.nature[s] != "real":
        return None
    e = v = sch.arg(x, "real")
    for _ in range(int(k.attr[1]) - 1):
        e = Op("*", (e, v), "real")
    return sch.bind(s, e, sch.t.rate[s])


for _name in ("pow", "^"):
    _reg(Primitive(_name, 2, same_nature, "real", _pow_fold, jvp_pow, iv_pow, ("special",), "pow{f}({0}, {1})",
                   symbols=("pow",), llvm=_llvm_pow, cpp=_cpp_pow, interp=_interp_pow, clike=_clike_pow,
                   schedule=_schedule_pow))
_reg(Primitive("fmod", 2, always_real, "real", _real(_fmod), _jvp_mod_like("fmod"), iv_rem,
               ("libm", "fmod"), "fmod{f}({0}, {1})", ufunc=np.fmod))
_reg(Primitive("remainder", 2, always_real, "real", _real(_remainder), _jvp_mod_like("remainder"), iv_rem,
               ("libm", "remainder"), "remainder{f}({0}, {1})", ufunc=lambda u, v: _remainder(float(u), float(v))))
_reg(Primitive("abs", 1, same_nature, "same", _int_or_real(abs, abs), jvp_abs, iv_abs, ("special",), "abs({0})",
               symbols=("fabs",), llvm=_llvm_abs, cpp=_cpp_abs, interp=_interp_abs))
_reg(Primitive("min", 2, same_nature, "same", _int_or_real(min, lambda a, b: b if b < a else a), jvp_min,
               iv_minmax(min), ("special",), "min({0}, {1})",
               llvm=_llvm_min, cpp=_cpp_minmax("min2"), interp=lambda m, e, a: a[1] if a[1] < a[0] else a[0]))
_reg(Primitive("max", 2, same_nature, "same", _int_or_real(max, lambda a, b: b if a < b else a), jvp_max,
               iv_minmax(max), ("special",), "max({0}, {1})",
               llvm=_llvm_max, cpp=_cpp_minmax("max2"), interp=lambda m, e, a: a[1] if a[0] < a[1] else a[0]))

# casts: int() truncates toward zero
_reg(Primitive("int", 1, always_int, ("any",),
               lambda natures, values: values[0] if natures[0] == "int" else wrap_int(_trunc_int(values[0])),
               jvp_zero, iv_int, ("special",), "int({0})", llvm=_llvm_int, cpp=_cpp_int, interp=_interp_int))
_reg(Primitive("float", 1, always_real, "real", lambda natures, values: float(values[0]), jvp_float,
               lambda a: a, ("special",), "float({0})",
               llvm=_llvm_float, cpp=_cpp_float, interp=lambda m, e, a: m.R(a[0])))

# selection: select2(s, a, b) uses int(s): 0 picks a, anything else picks b
_reg(Primitive("select2", 3, lambda s, a, b: same_nature(a, b), ("int", "same", "same"),
               lambda natures, values: values[1] if int(values[0]) == 0 else values[2],
               jvp_select2, iv_select, ("special",), "({0} ? {2} : {1})",
               llvm=_llvm_select2, cpp=_cpp_select2, interp=lambda m, e, a: a[2] if int(a[0]) != 0 else a[1]))
# select3(s, a, b, c): s == 0 → a, s == 1 → b, anything else → c; a real s is compared
# exactly, not truncated (measured: select3(1.7, ...) and select3(0.5, ...) pick c)
_reg(Primitive("select3", 4, lambda s, a, b, c: same_nature(a, b, c), ("any", "same", "same", "same"),
               lambda natures, values: values[1] if values[0] == 0 else (values[2] if values[0] == 1 else values[3]), jvp_select3, iv_select, ("special",),
               "(({0} == 0) ? {1} : (({0} == 1) ? {2} : {3}))",
               llvm=_llvm_select3, cpp=_cpp_select3, interp=_interp_select3))

# removed by the scheduler before any backend sees them: no lowering hooks
def _schedule_attach(sch, s):
    # attach(x, y) = x, y computed too (kept alive: its widgets, its state)
    sch.compile(s.args[1])
    return sch.compile(s.args[0])


def _schedule_bound(which: int):
    def rule(sch, s):
        # lowest(x) / highest(x): the bound of x's interval, a constant
        from ..codegen.schedule import Const

        return Const("real", float(sch.t.interval[s.args[0]][which]))

    return rule


_reg(Primitive("attach", 2, lambda a, b: a, ("any", "any"), None, jvp_attach, lambda a, b: a,
               ("special",), "{0}", schedule=_schedule_attach))
# enable(x, c) never reaches a signal: propagate builds control(x·c, c) (Faust 2.54, -es 1)
_reg(Primitive("enable", 2, same_nature, "same", None, None, iv_any, ("special",), "({0} * {1})"))


def jvp_control(args, dots):
    # the tangent runs where (and when) the value does: its statements under the same
    # condition, its state frozen with the primal's, its held value held alike
    from ..signals import build as B

    if B.is_zero(dots[0]):
        return dots[0]
    return B.prim("control", dots[0], args[1])


def _schedule_control(sch, s):
    # control(x, c): x's statements under `if (c != 0)`, the value x's last computed one
    # (codegen/schedule.py: conditions, _Scheduler._control)
    return sch._control(s)


# x's interval and 0: the value before c was first on
_reg(Primitive("control", 2, lambda a, b: a, ("any", "any"), None, jvp_control,
               lambda a, b: (min(a[0], 0.0), max(a[1], 0.0)), ("special",), "{0}", schedule=_schedule_control))
_reg(Primitive("lowest", 1, always_real, "real", None, jvp_zero, iv_any, ("special",), "lowest({0})",
               schedule=_schedule_bound(0)))
_reg(Primitive("highest", 1, always_real, "real", None, jvp_zero, iv_any, ("special",), "highest({0})",
               schedule=_schedule_bound(1)))
_reg(Primitive("assertbounds", 3, lambda lo, hi, x: x, ("any", "any", "any"), None,
               lambda args, dots: dots[2], lambda lo, hi, x: x, ("special",), "{2}",
               schedule=lambda sch, s: sch.compile(s.args[2])))


# ---------------------------------------------------------------- lists derived from the table


def libm_symbols() -> tuple:
    """The C math functions the lowering of the primitives calls (double names; the float
    variants add `f`): the generic libm/intrinsic names and each entry's own `symbols`."""
    out: dict = {}
    for p in PRIMITIVES.values():
        if p.code[0] in ("libm", "intrinsic"):
            out[p.code[1]] = None
        for s in p.symbols:
            out[s] = None
    return tuple(out)


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
