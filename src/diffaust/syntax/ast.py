"""Abstract syntax of Faust programs (the output of `parse`).

Every node is a frozen dataclass carrying a `span` (file, line, column) that is
left out of equality and hashing, so two occurrences of the same text compare
equal.  Expressions and statements are plain data: the evaluator
(`diffaust.boxes.evaluate`) gives them meaning.

Printing a node with `str()` gives Faust-like source text (`format_ast`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True)
class Span:
    """A position in a source file: 1-based line and column of the first character."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOSPAN = Span("<builtin>", 0, 0)


def _span():
    return field(default=NOSPAN, compare=False, repr=False)


class Node:
    """Base of all AST nodes."""

    span: Span

    def __str__(self) -> str:  # pragma: no cover - thin wrapper
        from .printer import format_ast

        return format_ast(self)


# ----------------------------------------------------------------- expressions


@dataclass(frozen=True, eq=True)
class Ident(Node):
    """A name: `gain`, `foo`.  Never a keyword."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Access(Node):
    """Environment access `env.name` (`ma.PI`, `environment{...}.x`, `lib.f`)."""

    env: "Expr"
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Int(Node):
    """Integer literal `42`."""

    value: int
    span: Span = _span()


@dataclass(frozen=True)
class Real(Node):
    """Real literal `0.5`, `1e-3`, `.5`, `2.`; `text` is the literal as written."""

    value: float
    text: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class String(Node):
    """A double-quoted string `"label"` (quotes removed, escapes kept as written)."""

    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Wire(Node):
    """`_` : the identity box, 1 input 1 output."""

    span: Span = _span()


@dataclass(frozen=True)
class Cut(Node):
    """`!` : the cut box, 1 input 0 output."""

    span: Span = _span()


@dataclass(frozen=True)
class Prim(Node):
    """A primitive used as a box: an operator symbol or a primitive keyword.

    `name` is one of the names of `diffaust.primitives.PRIMITIVES` as written in
    Faust: `+ - * / % ^ < <= > >= == != & | xor << >> @ '`(as `mem`), `mem`, `prefix`,
    `int`, `float`, `sin` ... `atan2 pow fmod remainder min max floor ceil rint
    round abs`, `select2`, `select3`, `rdtable`, `rwtable`, `attach`, `enable`,
    `control`, `lowest`, `highest`, `assertbounds`.  `^` is kept as `^` (pow).
    """

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Compose(Node):
    """Block-diagram composition; `op` is one of `:` `,` `<:` `:>` `~`."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Infix(Node):
    """Infix arithmetic `left op right` = `left, right : op`.

    `op` is one of `+ - * / % ^ < <= > >= == != & | xor << >> @`.
    """

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Delay1(Node):
    """`expr'` : one-sample delay (= `expr : mem`)."""

    expr: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Apply(Node):
    """Application `fn(arg1, ..., argN)`; `fn` may be any expression."""

    fn: "Expr"
    args: tuple
    span: Span = _span()


@dataclass(frozen=True)
class With(Node):
    """`body with { defs }`."""

    body: "Expr"
    defs: tuple  # of Definition
    span: Span = _span()


@dataclass(frozen=True)
class RecDef(Node):
    """One `'x = expr;` clause of a `letrec`."""

    name: str
    expr: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Letrec(Node):
    """`body letrec { 'x = ...; 'y = ...; } [where { defs }]`."""

    body: "Expr"
    recs: tuple  # of RecDef
    where: tuple = ()  # of Definition
    span: Span = _span()


@dataclass(frozen=True)
class Lambda(Node):
    """`\\(x, y).(body)`."""

    params: tuple  # of str
    body: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Rule(Node):
    """`(p1, ..., pn) => body;` in a `case`, or one clause of a multi-rule definition."""

    patterns: tuple  # of Expr
    body: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Case(Node):
    """`case { rules }`."""

    rules: tuple  # of Rule
    span: Span = _span()


@dataclass(frozen=True)
class Iteration(Node):
    """`par(i, n, body)`, `seq`, `sum`, `prod`."""

    kind: str  # 'par' | 'seq' | 'sum' | 'prod'
    var: str
    count: "Expr"
    body: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Widget(Node):
    """User interface element.

    `kind` is `button` / `checkbox` (args = ()), `hslider` / `vslider` / `nentry`
    (args = (init, min, max, step)), `hbargraph` / `vbargraph` (args = (min, max)).
    `label` is the label string as written, metadata `[key:value]` included.
    """

    kind: str
    label: str
    args: tuple = ()
    span: Span = _span()


@dataclass(frozen=True)
class Group(Node):
    """`hgroup("label", body)`, `vgroup`, `tgroup`."""

    kind: str
    label: str
    body: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Environment(Node):
    """`environment { defs }`."""

    defs: tuple  # of Statement
    span: Span = _span()


@dataclass(frozen=True)
class Library(Node):
    """`library("file.lib")`."""

    path: str
    span: Span = _span()


@dataclass(frozen=True)
class Component(Node):
    """`component("file.dsp")`."""

    path: str
    span: Span = _span()


@dataclass(frozen=True)
class Waveform(Node):
    """`waveform { v1, v2, ... }` (values are number expressions)."""

    values: tuple
    span: Span = _span()


@dataclass(frozen=True)
class Soundfile(Node):
    """`soundfile("label[url:...]", nchans)`."""

    label: str
    chans: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Route(Node):
    """`route(ins, outs, pairs...)`; `pairs` is the raw argument list after ins/outs."""

    ins: "Expr"
    outs: "Expr"
    pairs: tuple
    span: Span = _span()


@dataclass(frozen=True)
class FFunction(Node):
    """`ffunction(type name(argtypes), include, library)`.

    `names` are the variants `name` or `(fname|dname|qname|...)` as written,
    `arg_types` the C types ('int' | 'float' ...), `result_type` likewise.
    """

    result_type: str
    names: tuple  # of str
    arg_types: tuple  # of str
    include: str
    library: str
    span: Span = _span()


@dataclass(frozen=True)
class FConstant(Node):
    """`fconstant(type name, include)`, e.g. `fconstant(int fSamplingFreq, <math.h>)`."""

    type: str
    name: str
    include: str
    span: Span = _span()


@dataclass(frozen=True)
class FVariable(Node):
    """`fvariable(type name, include)`, e.g. `fvariable(int count, <math.h>)`."""

    type: str
    name: str
    include: str
    span: Span = _span()


@dataclass(frozen=True)
class InputsOf(Node):
    """`inputs(expr)`: the number of inputs of a block diagram."""

    expr: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class OutputsOf(Node):
    """`outputs(expr)`: the number of outputs of a block diagram."""

    expr: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Modify(Node):
    """Local redefinition `expr[defs]`."""

    expr: "Expr"
    defs: tuple
    span: Span = _span()


@dataclass(frozen=True)
class Precision(Node):
    """`singleprecision expr` / `doubleprecision expr` / `quadprecision expr`."""

    kind: str
    expr: "Expr"
    span: Span = _span()


Expr = Union[
    Ident, Access, Int, Real, String, Wire, Cut, Prim, Compose, Infix, Delay1, Apply,
    With, Letrec, Lambda, Case, Iteration, Widget, Group, Environment, Library,
    Component, Waveform, Soundfile, Route, FFunction, FConstant, FVariable,
    InputsOf, OutputsOf, Modify, Precision,
]


# ----------------------------------------------------------------- statements


@dataclass(frozen=True)
class Definition(Node):
    """`name = body;` (params is None) or `name(p1, ..., pn) = body;`.

    Parameters are patterns (expressions): usually `Ident`, but Faust allows
    numbers and box expressions for pattern-matching definitions
    (`f(0) = a; f(n) = b;`).  The evaluator groups consecutive rules with the same
    name into one pattern-matching function.
    """

    name: str
    params: Optional[tuple]
    body: "Expr"
    span: Span = _span()
    # Float-precision variants written before the statement
    # (`singleprecision`, `doubleprecision`, `quadprecision`,
    # `fixedpointprecision`): the statement only exists when compiling in one
    # of them.  Empty = always.  (Faust: `stmtlist variantlist statement`.)
    precisions: tuple = ()


@dataclass(frozen=True)
class Import(Node):
    """`import("file.lib");`."""

    path: str
    span: Span = _span()
    precisions: tuple = ()  # see Definition.precisions


@dataclass(frozen=True)
class Declare(Node):
    """`declare key "value";` or `declare fname key "value";` (target = fname)."""

    key: str
    value: str
    target: Optional[str] = None
    span: Span = _span()
    precisions: tuple = ()  # see Definition.precisions


Statement = Union[Definition, Import, Declare]


@dataclass(frozen=True)
class Program(Node):
    """A parsed file: its statements in source order."""

    statements: tuple
    file: str = "<string>"
    span: Span = _span()
