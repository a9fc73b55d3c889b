"""Faust-like source text of AST nodes (`--dump ast`, `str(node)`).

The output re-parses to an equal AST (spans aside): parentheses are added
exactly where the precedences of `parser.py` need them.
"""

from __future__ import annotations

import sys

from . import ast as A

_COMPOSE_PREC = {"<:": 1, ":>": 1, ":": 2, ",": 3, "~": 4}
_INFIX_PREC = {
    "<": 5, "<=": 5, ">": 5, ">=": 5, "==": 5, "!=": 5,
    "+": 6, "-": 6, "|": 6,
    "*": 7, "/": 7, "%": 7, "&": 7, "xor": 7, "<<": 7, ">>": 7,
    "^": 8,
    "@": 9,
}
_RIGHT = (1, 2, 3)
_POSTFIX = 10
_ATOM = 11
_IND = "    "


def _prec(e) -> int:
    t = type(e)
    if t is A.Compose:
        return _COMPOSE_PREC.get(e.op, 1)
    if t is A.Infix:
        return _INFIX_PREC.get(e.op, 5)
    if t in (A.With, A.Letrec, A.Precision):
        return 0
    if t in (A.Delay1, A.Access, A.Apply, A.Modify):
        return _POSTFIX
    return _ATOM


def _num(v) -> str:
    if isinstance(v, A.Real):
        if v.text:
            return v.text
        r = repr(float(v.value))
        return r if any(c in r for c in ".eE") or not r[-1:].isdigit() else r + "."
    return str(v.value)


class _Printer:
    def __init__(self):
        self.indent = 0

    # an expression in a context of precedence `ctx` (parenthesize if lower);
    # noc: inside an argument, where a top-level ',' needs parentheses.
    def expr(self, e, ctx: int = 0, noc: bool = False) -> str:
        p = _prec(e)
        if p < ctx or (noc and (p == 3 or p == 0)):
            return "(" + self.expr(e, 0, False) + ")"
        t = type(e)
        if t is A.Compose or t is A.Infix:
            sym = e.op
            if p in _RIGHT:
                lctx, rctx = p + 1, p
            else:
                lctx, rctx = p, p + 1
            sub_noc = noc and p < 3
            sep = ", " if sym == "," else f" {sym} "
            return f"{self.expr(e.left, lctx, sub_noc)}{sep}{self.expr(e.right, rctx, sub_noc)}"
        m = getattr(self, "x_" + t.__name__, None)
        if m is None:
            raise TypeError(f"cannot print {t.__name__}")
        return m(e)

    def arg(self, e) -> str:
        return self.expr(e, 0, True)

    def args(self, es) -> str:
        return ", ".join(self.arg(a) for a in es)

    def block(self, items) -> str:
        """`{ item; ... }` over several indented lines."""
        if not items:
            return "{}"
        self.indent += 1
        pad = _IND * self.indent
        lines = [pad + self.stmt(s) for s in items]
        self.indent -= 1
        return "{\n" + "\n".join(lines) + "\n" + _IND * self.indent + "}"

    # ---------------------------------------------------------- statements

    def stmt(self, s) -> str:
        pre = "".join(p + " " for p in getattr(s, "precisions", ()))
        t = type(s)
        if t is A.Definition:
            head = s.name if s.params is None else f"{s.name}({self.args(s.params)})"
            return f"{pre}{head} = {self.expr(s.body)};"
        if t is A.Import:
            return f'{pre}import("{s.path}");'
        if t is A.Declare:
            tgt = f"{s.target} " if s.target else ""
            return f'{pre}declare {tgt}{s.key} "{s.value}";'
        if t is A.RecDef:
            return f"'{s.name} = {self.expr(s.expr)};"
        if t is A.Rule:
            return f"({self.args(s.patterns)}) => {self.expr(s.body)};"
        return self.expr(s)

    def program(self, p: A.Program) -> str:
        return "".join(self.stmt(s) + "\n" for s in p.statements)

    # --------------------------------------------------------- expressions

    def x_Ident(self, e):
        return e.name

    def x_Int(self, e):
        return str(e.value)

    def x_Real(self, e):
        return _num(e)

    def x_String(self, e):
        return f'"{e.value}"'

    def x_Wire(self, e):
        return "_"

    def x_Cut(self, e):
        return "!"

    def x_Prim(self, e):
        return e.name

    def x_Delay1(self, e):
        return self.expr(e.expr, _POSTFIX) + "'"

    def x_Access(self, e):
        return f"{self.expr(e.env, _POSTFIX)}.{e.name}"

    def x_Apply(self, e):
        return f"{self.expr(e.fn, _POSTFIX)}({self.args(e.args)})"

    def x_Modify(self, e):
        defs = " ".join(self.stmt(d) for d in e.defs)
        return f"{self.expr(e.expr, _POSTFIX)}[{defs}]"

    def x_With(self, e):
        return f"{self.expr(e.body)} with {self.block(e.defs)}"

    def x_Letrec(self, e):
        self.indent += 1
        pad = _IND * self.indent
        lines = [pad + self.stmt(r) for r in e.recs]
        if e.where:
            lines.append(pad + "where")
            lines += [pad + self.stmt(d) for d in e.where]
        self.indent -= 1
        text = "{\n" + "\n".join(lines) + "\n" + _IND * self.indent + "}" if lines else "{}"
        return f"{self.expr(e.body)} letrec {text}"

    def x_Lambda(self, e):
        return f"\\({', '.join(e.params)}).({self.expr(e.body)})"

    def x_Case(self, e):
        return "case " + self.block(e.rules)

    def x_Iteration(self, e):
        return f"{e.kind}({e.var}, {self.arg(e.count)}, {self.expr(e.body)})"

    def x_Widget(self, e):
        if not e.args:
            return f'{e.kind}("{e.label}")'
        return f'{e.kind}("{e.label}", {self.args(e.args)})'

    def x_Group(self, e):
        return f'{e.kind}("{e.label}", {self.expr(e.body)})'

    def x_Environment(self, e):
        return "environment " + self.block(e.defs)

    def x_Library(self, e):
        return f'library("{e.path}")'

    def x_Component(self, e):
        return f'component("{e.path}")'

    def x_Waveform(self, e):
        return "waveform{" + ", ".join(self.expr(v) for v in e.values) + "}"

    def x_Soundfile(self, e):
        return f'soundfile("{e.label}", {self.arg(e.chans)})'

    def x_Route(self, e):
        parts = [self.arg(e.ins), self.arg(e.outs)] + [self.expr(p, 4) for p in e.pairs]
        return "route(" + ", ".join(parts) + ")"

    def x_FFunction(self, e):
        names = "|".join(e.names)
        return (
            f"ffunction({e.result_type} {names}({', '.join(e.arg_types)}), "
            f'{e.include}, "{e.library}")'
        )

    def x_FConstant(self, e):
        return f"fconstant({e.type} {e.name}, {e.include})"

    def x_FVariable(self, e):
        return f"fvariable({e.type} {e.name}, {e.include})"

    def x_InputsOf(self, e):
        return f"inputs({self.expr(e.expr)})"

    def x_OutputsOf(self, e):
        return f"outputs({self.expr(e.expr)})"

    def x_Precision(self, e):
        return f"{e.kind} {self.expr(e.expr, _ATOM)}"

    def x_Definition(self, e):
        return self.stmt(e)

    def x_Import(self, e):
        return self.stmt(e)

    def x_Declare(self, e):
        return self.stmt(e)

    def x_Rule(self, e):
        return self.stmt(e)

    def x_RecDef(self, e):
        return f"'{e.name} = {self.expr(e.expr)};"

    def x_Program(self, e):
        return self.program(e)


def format_ast(node) -> str:
    """Faust-like source of an AST node, a statement or a whole Program."""
    old = sys.getrecursionlimit()
    if old < 20000:
        sys.setrecursionlimit(20000)
    try:
        return _format(node)
    finally:
        if old < 20000:
            sys.setrecursionlimit(old)


def _format(node) -> str:
    p = _Printer()
    if isinstance(node, A.Program):
        return p.program(node)
    if isinstance(node, (A.Definition, A.Import, A.Declare, A.Rule, A.RecDef)):
        return p.stmt(node)
    if isinstance(node, (tuple, list)):
        return "\n".join(_format(n) for n in node)
    return p.expr(node)
