"""The box algebra: Faust block diagrams after evaluation (the output of `evaluate`).

A box is a block with `ins` inputs and `outs` outputs.  Boxes are frozen
dataclasses; `span` (where the box was written) is left out of equality.
`arity(box)` gives `(ins, outs)`; `diffaust.signals.propagate` turns a box
into signals.

Composition rules (Faust's):
  Seq(a, b)    a:b   outs(a) == ins(b)
  Par(a, b)    a,b   ins = ins(a)+ins(b), outs = outs(a)+outs(b)
  Split(a, b)  a<:b  ins(b) is a multiple of outs(a)
  Merge(a, b)  a:>b  outs(a) is a multiple of ins(b)
  Rec(a, b)    a~b   ins(b) <= outs(a), outs(b) <= ins(a);
                     ins = ins(a) - outs(b), outs = outs(a)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

from ..syntax.ast import NOSPAN, Span


def _span():
    return field(default=NOSPAN, compare=False, repr=False)


class Box:
    span: Span

    def __getstate__(self):
        # the cached hash (see end of file) depends on the process: never pickle it
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state

    def __str__(self) -> str:
        from .printer import format_box

        return format_box(self)


@dataclass(frozen=True)
class BWire(Box):
    """`_`"""

    span: Span = _span()


@dataclass(frozen=True)
class BCut(Box):
    """`!`"""

    span: Span = _span()


@dataclass(frozen=True)
class BConst(Box):
    """A number: 0 inputs, 1 output.  `int` values are Faust ints, `float` values reals."""

    value: Union[int, float]
    span: Span = _span()

    # `1` and `1.0` are different Faust numbers (int vs real): Python's `1 == 1.0`
    # must not merge them in memo tables, nor 0.0 with -0.0.
    def _key(self):
        v = self.value
        if isinstance(v, float):
            return (float, v, math.copysign(1.0, v))
        return (int, v)

    def __eq__(self, other):
        return type(other) is BConst and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


@dataclass(frozen=True)
class BPrim(Box):
    """A primitive of `diffaust.primitives.PRIMITIVES`, by name (`+`, `sin`, `mem`, `@`,
    `select2`, `rdtable`...): `arity` inputs, one output (`attach` included)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class BWidget(Box):
    """A user-interface element.

    kind: hslider | vslider | nentry (init, min, max, step given), button | checkbox
    (0 inputs, 1 output); hbargraph | vbargraph (min, max given; 1 input, 1 output).
    `label` is the label as written (`"gain [diff:1]"`, may contain a path like
    `"h:group/gain"`); `groups` is the enclosing group path (outermost first), each
    element `(kind, label)` with kind in `h`/`v`/`t`.
    """

    kind: str
    label: str
    init: float = 0.0
    min: float = 0.0
    max: float = 1.0
    step: float = 0.0
    groups: tuple = ()
    span: Span = _span()


@dataclass(frozen=True)
class BSeq(Box):
    a: Box
    b: Box
    span: Span = _span()


@dataclass(frozen=True)
class BPar(Box):
    a: Box
    b: Box
    span: Span = _span()


@dataclass(frozen=True)
class BSplit(Box):
    a: Box
    b: Box
    span: Span = _span()


@dataclass(frozen=True)
class BMerge(Box):
    a: Box
    b: Box
    span: Span = _span()


@dataclass(frozen=True)
class BRec(Box):
    a: Box
    b: Box
    span: Span = _span()


@dataclass(frozen=True)
class BSlot(Box):
    """A formal input of a symbolic box (0 inputs, 1 output); `id` is unique per slot."""

    id: int
    span: Span = _span()


class BSymbolic(Box):
    """`\\(slot).body` used as a block diagram: 1 more input than `body`, which it feeds
    to `slot`.  Produced when a function (closure) is used where a box is expected.

    Faust keeps such a function an abstraction inside the diagram and converts it
    only when the diagram is needed (its final a2sb): a pattern like `(A : B)` then
    binds `A` to the function, and `A(0)` applies it.  So the body may be *lazy*:
    `BSymbolic.lazy(slot, fn, thunk)` computes it on first access of `.body`, and
    `fn` (the function value) is kept for application (see `Evaluator.apply`).
    Equality and hashing never force a lazy body: slots are unique per conversion,
    so two boxes with different slots differ, and two with the same slot compare
    their bodies only when neither is lazy (or they share the conversion).
    """

    def __init__(self, slot, body=None, span=NOSPAN):
        object.__setattr__(self, "slot", slot)
        object.__setattr__(self, "_body", body)
        object.__setattr__(self, "span", span)
        object.__setattr__(self, "fn", None)
        object.__setattr__(self, "_thunk", None)

    @classmethod
    def lazy(cls, slot, fn, thunk, span=NOSPAN):
        b = cls(slot, None, span=span)
        object.__setattr__(b, "fn", fn)
        object.__setattr__(b, "_thunk", thunk)
        return b

    def __setattr__(self, name, value):
        raise AttributeError(f"BSymbolic is immutable ({name})")

    @property
    def forced(self) -> bool:
        return self._body is not None

    @property
    def body(self) -> Box:
        b = self._body
        if b is None:
            b = self._thunk()  # raises (and stays lazy) where the function cannot be converted
            object.__setattr__(self, "_body", b)
            object.__setattr__(self, "_thunk", None)
        return b

    def __eq__(self, other):
        if self is other:
            return True
        if type(other) is not BSymbolic or self.slot != other.slot:
            return False
        if self._body is None or other._body is None:
            if self._thunk is not None and self._thunk is other._thunk:
                return True
            return self.body == other.body
        return self._body == other._body

    def __hash__(self):
        return hash((BSymbolic, self.slot))

    def __repr__(self):
        body = repr(self._body) if self._body is not None else "<lazy>"
        return f"BSymbolic(slot={self.slot!r}, body={body})"

    def __getstate__(self):
        return {"slot": self.slot, "_body": self.body, "span": self.span}

    def __setstate__(self, state):
        for k in ("slot", "_body", "span"):
            object.__setattr__(self, k, state[k])
        object.__setattr__(self, "fn", None)
        object.__setattr__(self, "_thunk", None)


@dataclass(frozen=True)
class BFConst(Box):
    """`fconstant(type name, include)`: 0 inputs, 1 output (`fSamplingFreq`...)."""

    type: str
    name: str
    include: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class BFVar(Box):
    """`fvariable(type name, include)`: 0 inputs, 1 output (`count`...)."""

    type: str
    name: str
    include: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class BFFun(Box):
    """`ffunction(result name(arg types), include, lib)`: len(arg_types) inputs, 1 output."""

    result_type: str
    names: tuple
    arg_types: tuple
    include: str = ""
    library: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class BWaveform(Box):
    """`waveform{...}`: 0 inputs, 2 outputs (size, periodic values)."""

    values: tuple
    span: Span = _span()


@dataclass(frozen=True)
class BRoute(Box):
    """`route(ins, outs, (i1,o1), ...)`; pairs are 1-based (input, output) numbers."""

    ins: int
    outs: int
    pairs: tuple
    span: Span = _span()


@dataclass(frozen=True)
class BSoundfile(Box):
    """`soundfile(label, chans)`: 2 inputs (part, read index), 2 + chans outputs."""

    label: str
    chans: int
    groups: tuple = ()
    span: Span = _span()


def arity(box: Box) -> tuple[int, int]:
    """(inputs, outputs) of a box.  Raises FaustEvalError on an ill-formed composition."""
    from .arity import box_arity

    return box_arity(box)


# Boxes are immutable trees that are hashed over and over (memo tables in the
# evaluator, arity, propagation).  The dataclass-generated __hash__ walks the
# whole tree on every call; cache it on the instance so hashing is O(1) after
# the first time.
def _install_cached_hash(cls):
    structural = cls.__hash__

    # (no try/except KeyError: raising an exception costs O(stack depth) in CPython 3.11,
    # which made hashing a deep par/seq chain quadratic)
    def __hash__(self, _structural=structural):
        h = self.__dict__.get("_hash")
        if h is None:
            h = _structural(self)
            object.__setattr__(self, "_hash", h)
        return h

    cls.__hash__ = __hash__


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, Box) and _cls is not Box and _cls is not BSymbolic:
        _install_cached_hash(_cls)
del _cls
