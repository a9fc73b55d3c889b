"""Hash-consed signal nodes: the IR between boxes and code.

A signal is a stream x[n], n >= 0, with x[n] = 0 for n < 0.  Nodes are
immutable and hash-consed: building a node structurally equal to an existing
one returns the existing object, so `a is b` is structural equality, shared
subgraphs are shared objects and passes memoize on identity.

Node kinds (`op`):
  const    attr=(nature, value)          a number; nature 'int' | 'real'
  input    attr=i                        the i-th input of the program
  prim     attr=name, args               a primitive of `primitives.table` (+, sin, select2, int...)
  delay    args=(x, d)                   x[n - int(d[n])] (mem is delay(x, 1))
  prefix   args=(init, x)                init[0] at n = 0, then x[n-1]
  control  attr=Control                  a user-interface widget (slider, button...)
  fconst   attr=(type, name)             a foreign constant (fSamplingFreq)
  fvar     attr=(type, name)             a foreign variable (count)
  ffun     attr=FFun, args               a foreign function call
  rdtable  attr=size, args=(gen, ridx)   read-only table filled at init with gen[0..size-1]
  rwtable  attr=size, args=(gen, widx, wsig, ridx)
  rec      attr=var, args=bodies         a recursive group; bodies refer to its outputs
                                         through proj(i, recvar(var)) under a delay >= 1
  recvar   attr=var                      reference to the enclosing group `var`
  proj     attr=i, args=(group,)         output i of a rec (or of a recvar)
  bargraph attr=Control, args=(x,)       x, displayed
  waveform attr=values                   periodic values (index = time mod size)

The intern table is a weak dictionary: a cache, not program state.
"""

from __future__ import annotations

import itertools
import math
import weakref
from dataclasses import dataclass
from typing import Optional


def _key_attr(attr):
    """Hashable key for an attribute that tells 0.0 from -0.0 and 1 from 1.0."""
    if isinstance(attr, float):
        return ("f", attr.hex() if not math.isnan(attr) else "nan")
    if isinstance(attr, tuple):
        return tuple(_key_attr(a) for a in attr)
    if isinstance(attr, bool):
        return ("b", attr)
    if isinstance(attr, int):
        return ("i", attr)
    return attr


class Sig:
    """A signal node.  Never construct directly: use `mk` or the builders in `build`."""

    __slots__ = ("op", "attr", "args", "_h", "_serial", "__weakref__")

    op: str
    attr: object
    args: tuple

    def __hash__(self):
        return self._h

    @property
    def serial(self) -> int:
        """Creation order within the current compile (see `new_epoch`)."""
        if self._serial < _EPOCH_START:  # made by an earlier compile: "created" now
            self._serial = next(_SERIAL)
        return self._serial

    def __eq__(self, other):
        return self is other

    def __repr__(self):
        from .printer import format_sig

        return format_sig(self, max_len=200)

    # convenience predicates
    @property
    def is_const(self) -> bool:
        return self.op == "const"

    def const_value(self):
        return self.attr[1] if self.op == "const" else None


_INTERN: "weakref.WeakValueDictionary[tuple, Sig]" = weakref.WeakValueDictionary()
# Creation order of interned nodes: Faust orders the terms of its normal form by the
# creation order of its (hash-consed) trees, and `normalize` follows it.  Faust starts
# every compile with an empty table; here nodes outlive a compile (caches, the caller's
# references), so each compile opens an epoch (`new_epoch`, called by run_pipeline under
# its lock) and a node from an earlier epoch takes a new serial when it is first built or
# ordered in this one: the order never depends on what was compiled before.
_SERIAL = itertools.count()
_EPOCH_START = 0


def new_epoch() -> None:
    """Start a compile: every existing node counts as not yet created (call it holding
    runtime.pipeline.COMPILE_LOCK; serials are not safe against concurrent compiles)."""
    global _EPOCH_START
    _EPOCH_START = next(_SERIAL)


def mk(op: str, attr=None, args: tuple = ()) -> Sig:
    """The unique node (op, attr, args)."""
    key = (op, _key_attr(attr), args)
    node = _INTERN.get(key)
    if node is None:
        node = Sig()
        node.op = op
        node.attr = attr
        node.args = args
        node._h = hash(key)
        node._serial = next(_SERIAL)
        _INTERN[key] = node
    elif node._serial < _EPOCH_START:
        node._serial = next(_SERIAL)
    return node


# ------------------------------------------------------------------ attributes


@dataclass(frozen=True)
class Control:
    """A widget.  `path` is Faust's full path (`/gt/gain`), unique per widget."""

    kind: str  # hslider vslider nentry button checkbox hbargraph vbargraph
    path: str
    label: str  # the label without metadata
    init: float = 0.0
    min: float = 0.0
    max: float = 1.0
    step: float = 0.0
    meta: tuple = ()  # ((key, value), ...) in order
    # where it sits in Faust's UI tree, root first: ((kind h|v|t, label as written, shown name), ...)
    # (folders merge on kind and label as written; items sort by label as written), and its own
    # label as written.  Empty for widgets made without a program (tests).
    ui: tuple = ()
    raw_label: str = ""

    def meta_dict(self) -> dict:
        return dict(self.meta)

    @property
    def is_diff(self) -> bool:
        v = self.meta_dict().get("diff")
        return v is not None and v.strip().lower() in ("1", "on", "true", "yes")


@dataclass(frozen=True)
class FFun:
    """A foreign function: C name per precision, argument and result natures."""

    result_type: str
    names: tuple
    arg_types: tuple
    include: str = ""
    library: str = ""


# ------------------------------------------------------------------ constructors (raw)


def const(value, nature: Optional[str] = None) -> Sig:
    """A constant; nature defaults to 'int' for Python ints, 'real' for floats."""
    if nature is None:
        nature = "int" if isinstance(value, (int, bool)) and not isinstance(value, float) else "real"
    if nature == "int":
        value = wrap_int(int(value))
    else:
        value = float(value)
    return mk("const", (nature, value))


def wrap_int(v: int) -> int:
    """32-bit two's complement wrap."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


ZERO = None  # filled below (module constants hold strong refs so they stay interned)
ONE = None


def input_(i: int) -> Sig:
    return mk("input", i)


def control(c: Control) -> Sig:
    return mk("control", c)


def recvar(var: str) -> Sig:
    return mk("recvar", var)


def rec(var: str, bodies: tuple) -> Sig:
    return mk("rec", var, tuple(bodies))


def proj(i: int, group: Sig) -> Sig:
    return mk("proj", i, (group,))


ZERO = const(0)
ONE = const(1)
RZERO = const(0.0)
RONE = const(1.0)


def walk(roots, stop=()) -> list:
    """All nodes reachable from `roots`, each once, children before parents; nodes in
    `stop` (and what lies below them) are not visited."""
    seen = set(r for r in roots if r in stop) if stop else set()
    order = []
    stack = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for a in reversed(node.args):
            if a not in seen and a not in stop:
                stack.append((a, False))
    return order


def free_recvars(node: Sig, memo: dict) -> frozenset:
    """Names of recursion variables referenced but not bound inside `node`."""
    r = memo.get(node)
    if r is not None:
        return r
    for n in walk([node], stop=memo):
        if n in memo:
            continue
        if n.op == "recvar":
            s = frozenset([n.attr])
        else:
            s = frozenset().union(*(memo[a] for a in n.args)) if n.args else frozenset()
            if n.op == "rec":
                s = s - {n.attr}
        memo[n] = s
    return memo[node]
