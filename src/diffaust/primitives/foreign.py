"""The C math library as seen through `ffunction`: one entry per function.

Faust's libraries reach many libm functions through `ffunction` (`ma.tanh` is
`ffunction(float tanhf|tanh|tanhl (float), <math.h>, "")`).  For each known
function (by its double-precision C name; the `f`/`l` variants map to it) the
table gives its arity and its tangent rule, so `-diff` goes through them.  The functions
that are also Faust primitives (sin, exp, floor ...) take the primitive table's rule.  A
foreign function outside the table has no derivative: DerivativeError naming it.

    ForeignFn(name, arity, jvp)   jvp(s, args, dots) -> tangent of s = name(args)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from ..signals import build as B
from ..signals.nodes import FFun, Sig, mk
from .table import PRIMITIVES


@dataclass(frozen=True)
class ForeignFn:
    name: str
    arity: int
    jvp: Optional[Callable]


def call(name: str, *args: Sig) -> Sig:
    """The libm function `name` (double name; float/long double variants implied) applied to args."""
    f = FFun("real", (name + "f", name, name + "l"), ("real",) * len(args), "<math.h>", "")
    return mk("ffun", f, tuple(args))


def _c(v: float) -> Sig:
    return B.const(v)


def _sq(x):
    return B.mul(x, x)


LN2, LN10 = math.log(2.0), math.log(10.0)

_RULES = {
    # tanh' = 1 − tanh²
    "tanh": (1, lambda s, a, d: B.mul(B.sub(_c(1.0), _sq(s)), d[0])),
    # sinh' = cosh, cosh' = sinh
    "sinh": (1, lambda s, a, d: B.mul(call("cosh", a[0]), d[0])),
    "cosh": (1, lambda s, a, d: B.mul(call("sinh", a[0]), d[0])),
    # asinh' = 1/√(x²+1), acosh' = 1/√(x²−1), atanh' = 1/(1−x²)
    "asinh": (1, lambda s, a, d: B.div(d[0], B.prim("sqrt", B.add(_sq(a[0]), _c(1.0))))),
    "acosh": (1, lambda s, a, d: B.div(d[0], B.prim("sqrt", B.sub(_sq(a[0]), _c(1.0))))),
    "atanh": (1, lambda s, a, d: B.div(d[0], B.sub(_c(1.0), _sq(a[0])))),
    # cbrt' = 1/(3·cbrt²)
    "cbrt": (1, lambda s, a, d: B.div(d[0], B.mul(_c(3.0), _sq(s)))),
    # hypot(x, y)' = (x·x' + y·y')/hypot
    "hypot": (2, lambda s, a, d: B.div(B.add(B.mul(a[0], d[0]), B.mul(a[1], d[1])), s)),
    # exp2' = exp2·ln2, exp10' = exp10·ln10, expm1' = expm1 + 1
    "exp2": (1, lambda s, a, d: B.mul(B.mul(s, _c(LN2)), d[0])),
    "exp10": (1, lambda s, a, d: B.mul(B.mul(s, _c(LN10)), d[0])),
    "expm1": (1, lambda s, a, d: B.mul(B.add(s, _c(1.0)), d[0])),
    # log2' = 1/(x·ln2), log1p' = 1/(1+x)
    "log2": (1, lambda s, a, d: B.div(d[0], B.mul(a[0], _c(LN2)))),
    "log1p": (1, lambda s, a, d: B.div(d[0], B.add(_c(1.0), a[0]))),
    # erf' = 2/√π·e^(−x²), erfc' = −erf'
    "erf": (1, lambda s, a, d: B.mul(B.mul(_c(2.0 / math.sqrt(math.pi)),
                                           B.prim("exp", B.neg(_sq(a[0])))), d[0])),
    "erfc": (1, lambda s, a, d: B.mul(B.mul(_c(-2.0 / math.sqrt(math.pi)),
                                            B.prim("exp", B.neg(_sq(a[0])))), d[0])),
    # |x|' = sign(x)·x'
    "fabs": (1, lambda s, a, d: B.mul(B.select2(B.prim("<", a[0], _c(0.0)), _c(1.0), _c(-1.0)), d[0])),
    # fmin/fmax pick the tangent of the chosen argument
    "fmin": (2, lambda s, a, d: B.select2(B.prim("<", a[1], a[0]), d[0], d[1])),
    "fmax": (2, lambda s, a, d: B.select2(B.prim(">", a[1], a[0]), d[0], d[1])),
    # copysign(x, y) = ±|x|: the sign is piecewise constant
    "copysign": (2, lambda s, a, d: B.mul(B.select2(B.prim("==", B.prim("<", a[0], _c(0.0)),
                                                              B.prim("<", s, _c(0.0))), _c(-1.0), _c(1.0)),
                                          d[0])),
    # piecewise constant
    "trunc": (1, lambda s, a, d: _c(0.0)),
    "nearbyint": (1, lambda s, a, d: _c(0.0)),
    # no derivative rule (DerivativeError): the gamma functions
    "tgamma": (1, None),
    "lgamma": (1, None),
    # no derivative rule either; known so the JIT registers its symbol
    "lrint": (1, None),
}

# The math.h functions Faust also has as primitives: their rule is the primitive's (one
# definition, in primitives.table), applied to the ffunction's arguments.
FROM_PRIMITIVES = ("sin", "cos", "tan", "exp", "log", "log10", "sqrt", "floor", "ceil", "rint", "round")


def _primitive_rule(p):
    return lambda s, a, d: p.jvp(a, d)


FOREIGN = {name: ForeignFn(name, n, rule) for name, (n, rule) in _RULES.items()}
FOREIGN.update({name: ForeignFn(name, PRIMITIVES[name].arity, _primitive_rule(PRIMITIVES[name]))
                for name in FROM_PRIMITIVES})


def lookup(ffun: FFun) -> Optional[ForeignFn]:
    """The table entry of a foreign function, by any of its C names (sinhf, sinh, sinhl)."""
    for n in ffun.names:
        for base in (n, n[:-1] if n.endswith(("f", "l")) else None):
            if base and base in FOREIGN:
                return FOREIGN[base]
    return None
