"""Signal builders: smart constructors that fold constants and drop identities.

Every pass that makes signals (propagate, jvp, simplify) goes through these,
so `x·0`, `x+0`, `select2(0, a, b)` never reach code generation.  The rules
are local and keep Faust's semantics:

  c1 op c2        → fold(op, c1, c2)           (primitives.table fold rules)
  x + 0, 0 + x    → x          x - 0 → x        x·1, 1·x → x
  x·0, 0·x        → 0           (Faust simplifies this too)
  0 / x           → 0           (measured: Faust folds 0/x to 0)
  x / 1           → float(x)
  select2(c, a, b)→ a or b      select2(s, a, a) → a
  float(x:real)   → x           int(x:int) → x
  x@0 → x     0@d → 0     (x@c1)@c2 → x@(c1+c2)

A result keeps the nature the primitive gives it (int + real is real...).
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from typing import Optional

from ..primitives.table import PRIMITIVES, fold
from .nodes import Sig, const as _const, mk, ZERO, RZERO

_NATURE: "weakref.WeakKeyDictionary[Sig, Optional[str]]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def paused_gc():
    """Python's cycle collector off for the duration (back on after, if it was on).

    The passes that build large graphs (differentiation, typing, scheduling, LLVM lowering)
    allocate millions of objects that all stay alive: each full collection scans all of
    them, and the collections come more often as the heap grows, which made a compile of
    the 100-parameter chain spend a third of its time collecting nothing.  Reference
    counting still frees what is dropped."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def const(value, nature=None) -> Sig:
    return _const(value, nature)


def nature(s: Sig) -> Optional[str]:
    """'int' | 'real' when decidable locally; None inside a recursion being built."""
    try:
        return _NATURE[s]
    except KeyError:
        pass
    from .types import local_nature

    n = local_nature(s, nature)
    _NATURE[s] = n
    return n


def is_zero(s: Sig) -> bool:
    return s.op == "const" and s.attr[1] == 0


def is_one(s: Sig) -> bool:
    return s.op == "const" and s.attr[1] == 1


def zero_like(nat: Optional[str]) -> Sig:
    return RZERO if nat != "int" else ZERO


def cast(x: Sig, nat: Optional[str]) -> Optional[Sig]:
    """x converted to nature `nat`; None if x's nature is unknown."""
    nx = nature(x)
    if nx is None or nat is None:
        return None
    if nx == nat:
        return x
    return prim("float", x) if nat == "real" else prim("int", x)


def prim(name: str, *args: Sig) -> Sig:
    p = PRIMITIVES[name]
    if len(args) != p.arity:
        raise ValueError(f"primitive {name} takes {p.arity} arguments, got {len(args)}")
    if name in ("pow", "^") and args[1].op == "const" and args[1].attr[0] == "int" and args[1].attr[1] < 0 \
            and nature(args[0]) == "int":
        # int ^ negative constant is real (measured: 2^(-1) = 0.5)
        return prim(name, prim("float", args[0]), _const(float(args[1].attr[1]), "real"))
    if all(a.op == "const" for a in args):
        r = fold(name, tuple(a.attr[0] for a in args), tuple(a.attr[1] for a in args))
        if r is not None:
            return _const(r[1], r[0])
    r = _simplify(name, args)
    if r is not None:
        return r
    return mk("prim", name, tuple(args))


def _result_nature(name, args):
    ns = [nature(a) for a in args]
    if None in ns:
        # the nature is still decidable when the rule does not depend on the unknown one
        if name in ("/", "float", "sin", "cos", "exp", "log", "sqrt"):
            return "real"
        if "real" in ns and name in ("+", "-", "*", "%", "min", "max"):
            return "real"
        return None
    return PRIMITIVES[name].nature(*ns)


def _simplify(name: str, args) -> Optional[Sig]:
    if name in ("+", "-", "*", "/"):
        a, b = args
        rn = _result_nature(name, args)
        if name == "+":
            if is_zero(b):
                return cast(a, rn)
            if is_zero(a):
                return cast(b, rn)
        elif name == "-":
            if is_zero(b):
                return cast(a, rn)
        elif name == "*":
            if is_zero(a) or is_zero(b):
                return zero_like(rn) if rn is not None else None
            if is_one(b):
                return cast(a, rn)
            if is_one(a):
                return cast(b, rn)
        elif name == "/":
            if is_zero(a):
                return RZERO
            if is_one(b):
                return cast(a, "real")
    elif name in ("pow", "^"):
        a, b = args
        if b.op == "const" and b.attr[0] == "int" and nature(a) == "int":
            k = b.attr[1]
            if 0 <= k <= 8:  # small constant exponents multiply, wrapping like int arithmetic
                r = _const(1, "int")
                for _ in range(k):
                    r = mk("prim", "*", (r, a)) if not is_one(r) else a
                return r
        if b.op == "const" and nature(a) == "real" and float(b.attr[1]).is_integer() and 0 <= b.attr[1] <= 1:
            # x^0 = 1, x^1 = x; x^k for k in 2..8 stays a pow node, one factor of a product in
            # the normal form as in Faust's, and runs as ((x·x)·x)… (Faust's faustpower:
            # primitives.table._schedule_pow)
            return _const(1.0, "real") if b.attr[1] == 0 else a
    elif name == "select2":
        s, a, b = args
        if s.op == "const":
            rn = _result_nature(name, args)
            return cast(a if int(s.attr[1]) == 0 else b, rn)
        if a is b:
            return a
    elif name == "select3":
        s, a, b, c = args
        if a is b is c:
            return a
    elif name == "float":
        if nature(args[0]) == "real":
            return args[0]
    elif name == "int":
        if nature(args[0]) == "int":
            return args[0]
    return None


# ---------------------------------------------------------------- shorthands


def add(a, b):
    return prim("+", a, b)


def sub(a, b):
    return prim("-", a, b)


def mul(a, b):
    return prim("*", a, b)


def div(a, b):
    return prim("/", a, b)


def neg(a):
    if a.op == "const":
        return _const(-a.attr[1], a.attr[0])
    return prim("-", zero_like(nature(a) or "real"), a)


def select2(s, a, b):
    return prim("select2", s, a, b)


def delay(x: Sig, d: Sig) -> Sig:
    """x@d: x[n - int(d[n])]."""
    if d.op == "const" and d.attr[0] == "real":
        d = _const(int(d.attr[1]), "int")
    if d.op == "const" and d.attr[1] == 0:
        return x
    if is_zero(x):
        return x
    if x.op == "delay" and d.op == "const" and x.args[1].op == "const" and d.attr[0] == "int" \
            and x.args[1].attr[0] == "int":
        return delay(x.args[0], _const(x.args[1].attr[1] + d.attr[1], "int"))
    return mk("delay", None, (x, d))


def mem(x: Sig) -> Sig:
    return delay(x, _const(1, "int"))


def prefix(init: Sig, x: Sig) -> Sig:
    return mk("prefix", None, (init, x))
