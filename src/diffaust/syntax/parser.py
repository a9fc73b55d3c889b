"""Parser of the Faust language (the grammar of Faust 2.54's `faustparser.y`).

Hand-written: recursive descent for the constructs, an operator-precedence
(shunting-yard) loop for the binary operators, so long `a, b, c, ...` chains
cost no recursion.  Precedences, lowest first (as in faustparser.y):

    with  letrec                      postfix, on whole expressions
    <:  :>  +>                        right
    :                                 right
    ,                                 right   (not inside arguments)
    ~                                 left
    <  <=  >  >=  ==  !=              left
    +  -  |                           left
    *  /  %  &  xor  <<  >>           left
    ^                                 left
    @                                 left
    '   .name   (args)   [defs]       postfix, tightest

An `argument` (of an application, a slider, `par`'s count, `route`'s sizes)
is an expression without top-level `,` and without `with`/`letrec`.

Literals: `-1`, `+2.5` are numbers; `-x` (an identifier) is `0 - x`; a lone
operator symbol or primitive keyword is a `Prim` box (`+`, `*(2)`, `sin`).

Public API: `parse`, `parse_file`, `parse_expression`.  Every error is a
`FaustSyntaxError` located at the offending token.
"""

from __future__ import annotations

import sys

from ..errors import FaustSyntaxError, UsageError
from ..primitives.arity import PRIMITIVE_KEYWORDS
from . import ast as A
from .lexer import KEYWORDS, LineMap, scan

# binary operators: precedence level (Compose levels 1..4, Infix 5..9)
_BIN = {
    "<:": 1, ":>": 1, "+>": 1,
    ":": 2,
    ",": 3,
    "~": 4,
    "<": 5, "<=": 5, ">": 5, ">=": 5, "==": 5, "!=": 5,
    "+": 6, "-": 6, "|": 6,
    "*": 7, "/": 7, "%": 7, "&": 7, "xor": 7, "<<": 7, ">>": 7,
    "^": 8,
    "@": 9,
}
_RIGHT = frozenset((1, 2, 3))

# operator symbols / keywords usable as primitive boxes
_PRIM_SYMBOLS = frozenset(
    "+ - * / % @ & | xor << >> < <= > >= == != ^".split()
)
# the primitives written as keywords (xor is an infix symbol here), from the registry
_PRIM_KEYWORDS = PRIMITIVE_KEYWORDS - _PRIM_SYMBOLS
_PRIMS = _PRIM_SYMBOLS | _PRIM_KEYWORDS

_PRECISIONS = frozenset(
    ("singleprecision", "doubleprecision", "quadprecision", "fixedpointprecision")
)
_ITERATIONS = frozenset(("par", "seq", "sum", "prod"))
_SLIDERS = frozenset(("hslider", "vslider", "nentry"))
_BARGRAPHS = frozenset(("hbargraph", "vbargraph"))
_GROUPS = frozenset(("hgroup", "vgroup", "tgroup"))
_CLOSER = {"(": ")", "{": "}", "[": "]"}

MAX_DEPTH = 400  # nesting of expressions before "nested too deeply"


def _describe(kind: str, value) -> str:
    if kind == "EOF":
        return "end of file"
    if kind == "ID":
        return f"identifier '{value}'"
    if kind == "INT":
        return f"number {value}"
    if kind == "REAL":
        return f"number {value[1]}"
    if kind == "STR":
        v = value if len(value) <= 30 else value[:27] + "..."
        return f'string "{v}"'
    if kind in KEYWORDS:
        return f"keyword '{kind}'"
    return f"'{kind}'"


class _Parser:
    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.lines = LineMap(text, file)
        self.K, self.V, self.P = scan(text, file, self.lines)
        self.i = 0
        self.depth = 0
        self.opens: list = []  # stack of (bracket, pos) for EOF messages
        self._spans: dict = {}

    # ------------------------------------------------------------ helpers

    def sp(self, pos: int) -> A.Span:
        s = self._spans.get(pos)
        if s is None:
            s = self._spans[pos] = self.lines.span(pos)
        return s

    def found(self) -> str:
        return _describe(self.K[self.i], self.V[self.i])

    def error(self, message: str, i: int | None = None):
        if i is None:
            i = self.i
        if self.K[i] == "EOF" and "end of file" not in message:
            message = f"{message}, found end of file"
        raise FaustSyntaxError(message, self.sp(self.P[i]))

    def fail(self, expected: str):
        """Raise 'expected X, found Y' at the current token."""
        if self.K[self.i] == "EOF":
            msg = f"unexpected end of file, expected {expected}"
            if self.opens:
                b, pos = self.opens[-1]
                ln, col = self.lines.linecol(pos)
                msg += f" (missing '{_CLOSER[b]}' opened at {ln}:{col})"
            raise FaustSyntaxError(msg, self.sp(self.P[self.i]))
        raise FaustSyntaxError(f"expected {expected}, found {self.found()}", self.sp(self.P[self.i]))

    def expect(self, kind: str, context: str = ""):
        if self.K[self.i] != kind:
            self.fail(f"'{kind}'{context}")
        self.i += 1

    def open(self, kind: str, context: str = ""):
        if self.K[self.i] != kind:
            self.fail(f"'{kind}'{context}")
        self.opens.append((kind, self.P[self.i]))
        self.i += 1

    def close(self, kind: str):
        if self.K[self.i] != kind:
            b, pos = self.opens[-1]
            ln, col = self.lines.linecol(pos)
            if self.K[self.i] == "EOF":
                raise FaustSyntaxError(
                    f"unexpected end of file (missing '{kind}' opened at {ln}:{col})",
                    self.sp(self.P[self.i]),
                )
            raise FaustSyntaxError(
                f"expected '{kind}' to close '{b}' opened at {ln}:{col}, found {self.found()}",
                self.sp(self.P[self.i]),
            )
        self.opens.pop()
        self.i += 1

    def comma(self, what: str):
        if self.K[self.i] != ",":
            self.fail(f"',' before {what}")
        self.i += 1

    def ident(self, what: str = "an identifier") -> str:
        if self.K[self.i] != "ID":
            self.fail(what)
        v = self.V[self.i]
        self.i += 1
        return v

    def string(self, what: str = "a string") -> str:
        if self.K[self.i] != "STR":
            self.fail(what)
        v = self.V[self.i]
        self.i += 1
        return v

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FaustSyntaxError("expression nested too deeply", self.sp(self.P[self.i]))

    # -------------------------------------------------------- statements

    def program(self) -> A.Program:
        stmts = self.statements("EOF", True)
        return A.Program(tuple(stmts), self.file, self.sp(0))

    def statements(self, end: str, full: bool) -> list:
        """Statements up to `end` (not consumed).  `full`: imports and
        declarations allowed (program, environment); else definitions only."""
        K = self.K
        out = []
        while K[self.i] != end:
            out.append(self.statement(full, end))
        return out

    def statement(self, full: bool, end: str):
        K, V, P = self.K, self.V, self.P
        start = self.i
        precisions = ()
        if K[self.i] in _PRECISIONS:
            ps = []
            while K[self.i] in _PRECISIONS:
                ps.append(K[self.i])
                self.i += 1
            precisions = tuple(ps)
        k = K[self.i]
        pos = P[start]
        if k == "ID":
            return self.definition(precisions, pos)
        if full and k == "import":
            self.i += 1
            self.open("(", " after 'import'")
            path = self.string("a file name string in import(...)")
            self.close(")")
            self.expect(";", " after import(...)")
            return A.Import(path, self.sp(pos), precisions)
        if full and k == "declare":
            self.i += 1
            names = []
            while K[self.i] == "ID" or (K[self.i] in KEYWORDS and len(names) < 2):
                names.append(V[self.i])
                self.i += 1
                if len(names) == 2:
                    break
            if not names:
                self.fail("a metadata key after 'declare'")
            value = self.string("a string value in the declaration")
            self.expect(";", " after the declaration")
            if len(names) == 1:
                return A.Declare(names[0], value, None, self.sp(pos), precisions)
            return A.Declare(names[1], value, names[0], self.sp(pos), precisions)
        if k == end:
            self.fail("a definition after the precision keyword")
        if k in ("import", "declare"):
            self.error(f"'{k}' is not allowed here (only definitions)")
        what = "a definition" if not full else "a definition, an import or a declaration"
        if end != "EOF":
            what += f" or '{_CLOSER.get(self.opens[-1][0], end) if self.opens else end}'"
        self.fail(what)

    def definition(self, precisions, pos):
        K = self.K
        name = self.V[self.i]
        self.i += 1
        params = None
        if K[self.i] == "(":
            self.open("(")
            params = tuple(self.arglist())
            self.close(")")
            if K[self.i] != "=":
                self.fail(f"'=' after '{name}(...)'")
            self.i += 1
        elif K[self.i] == "=":
            self.i += 1
        else:
            self.fail(f"'=' or '(' after '{name}' (a definition)")
        body = self.expression()
        if K[self.i] != ";":
            self.fail(f"';' after the definition of '{name}'")
        self.i += 1
        return A.Definition(name, params, body, self.sp(pos), precisions)

    def deflist(self, end: str) -> tuple:
        return tuple(self.statements(end, False))

    # ------------------------------------------------------- expressions

    def expression(self):
        """expression: binary expression with `,`, then `with`/`letrec` suffixes."""
        self.enter()
        e = self.binary(True)
        K = self.K
        while True:
            k = K[self.i]
            if k == "with":
                self.i += 1
                self.open("{", " after 'with'")
                defs = self.deflist("}")
                self.close("}")
                e = A.With(e, defs, e.span)
            elif k == "letrec":
                self.i += 1
                self.open("{", " after 'letrec'")
                recs = []
                while K[self.i] == "'":
                    rpos = self.P[self.i]
                    self.i += 1
                    name = self.ident("a name after ' in letrec")
                    self.expect("=", f" after '{name} in letrec")
                    body = self.expression()
                    if K[self.i] != ";":
                        self.fail(f"';' after the definition of '{name} in letrec")
                    self.i += 1
                    recs.append(A.RecDef(name, body, self.sp(rpos)))
                where = ()
                if K[self.i] == "where":
                    self.i += 1
                    where = self.deflist("}")
                elif K[self.i] != "}":
                    self.fail("a recursive definition 'x = ...;', 'where' or '}' in letrec")
                self.close("}")
                e = A.Letrec(e, tuple(recs), where, e.span)
            else:
                break
        self.depth -= 1
        return e

    def argument(self):
        """argument: no top-level `,`, no `with`."""
        self.enter()
        e = self.binary(False)
        self.depth -= 1
        return e

    def arglist(self) -> list:
        args = [self.argument()]
        K = self.K
        while K[self.i] == ",":
            self.i += 1
            args.append(self.argument())
        return args

    def binary(self, comma: bool):
        K = self.K
        left = self.unary()
        k = K[self.i]
        p = _BIN.get(k)
        if p is None or (p == 3 and not comma):
            return left
        operands = [left]
        ops = []  # precedence levels / operators, in parallel
        opk = []
        bin_ = _BIN
        right = _RIGHT
        while True:
            while ops and (ops[-1] > p or (ops[-1] == p and p not in right)):
                self._reduce(operands, ops, opk)
            ops.append(p)
            opk.append(k)
            self.i += 1
            operands.append(self.unary())
            k = K[self.i]
            p = bin_.get(k)
            if p is None or (p == 3 and not comma):
                break
        while ops:
            self._reduce(operands, ops, opk)
        return operands[0]

    @staticmethod
    def _reduce(operands, ops, opk):
        p = ops.pop()
        k = opk.pop()
        r = operands.pop()
        l = operands.pop()
        if p <= 4:
            operands.append(A.Compose(":>" if k == "+>" else k, l, r, l.span))
        else:
            operands.append(A.Infix(k, l, r, l.span))

    def unary(self):
        """A primary followed by postfix operators ' .name (args) [defs]."""
        e = self.primary()
        K = self.K
        while True:
            k = K[self.i]
            if k == "(":
                self.open("(")
                args = self.arglist()
                self.close(")")
                e = A.Apply(e, tuple(args), e.span)
            elif k == "'":
                self.i += 1
                e = A.Delay1(e, e.span)
            elif k == ".":
                self.i += 1
                e = A.Access(e, self.ident("a name after '.'"), e.span)
            elif k == "[":
                self.open("[")
                defs = self.deflist("]")
                self.close("]")
                e = A.Modify(e, defs, e.span)
            else:
                return e

    def primary(self):
        K, V = self.K, self.V
        i = self.i
        k = K[i]
        if k == "ID":
            self.i = i + 1
            return A.Ident(V[i], self.sp(self.P[i]))
        if k == "INT":
            self.i = i + 1
            return A.Int(V[i], self.sp(self.P[i]))
        if k == "REAL":
            self.i = i + 1
            v, t = V[i]
            return A.Real(v, t, self.sp(self.P[i]))
        if k == "_":
            self.i = i + 1
            return A.Wire(self.sp(self.P[i]))
        if k == "(":
            self.open("(")
            e = self.expression()
            self.close(")")
            return e
        if k in _PRIMS:
            if k == "-" or k == "+":
                n = K[i + 1]
                if n == "INT":
                    self.i = i + 2
                    v = V[i + 1]
                    return A.Int(-v if k == "-" else v, self.sp(self.P[i]))
                if n == "REAL":
                    self.i = i + 2
                    v, t = V[i + 1]
                    if k == "-":
                        return A.Real(-v, "-" + t, self.sp(self.P[i]))
                    return A.Real(v, t, self.sp(self.P[i]))
                if n == "ID" and k == "-":
                    self.i = i + 2
                    s = self.sp(self.P[i])
                    return A.Infix("-", A.Int(0, s), A.Ident(V[i + 1], self.sp(self.P[i + 1])), s)
            self.i = i + 1
            return A.Prim(k, self.sp(self.P[i]))
        if k == "!":
            self.i = i + 1
            return A.Cut(self.sp(self.P[i]))
        m = self._constructs.get(k)
        if m is not None:
            return m(self, k, self.P[i])
        self.fail("an expression")

    # ------------------------------------------------------ constructs

    def _lambda(self, k, pos):
        self.i += 1
        self.open("(", " after '\\' (lambda parameters)")
        params = [self.ident("a parameter name")]
        while self.K[self.i] == ",":
            self.i += 1
            params.append(self.ident("a parameter name"))
        self.close(")")
        self.expect(".", " after the lambda parameters '\\(...)'")
        self.open("(", " around the lambda body '\\(...).(body)'")
        body = self.expression()
        self.close(")")
        return A.Lambda(tuple(params), body, self.sp(pos))

    def _case(self, k, pos):
        self.i += 1
        self.open("{", " after 'case'")
        rules = []
        K = self.K
        while True:
            rpos = self.P[self.i]
            if K[self.i] != "(":
                if rules and K[self.i] == "}":
                    break
                self.fail("a rule '(patterns) => expression;' in case")
            self.open("(")
            pats = self.arglist()
            self.close(")")
            self.expect("=>", " after the patterns of a case rule")
            body = self.expression()
            if K[self.i] != ";":
                self.fail("';' after a case rule")
            self.i += 1
            rules.append(A.Rule(tuple(pats), body, self.sp(rpos)))
        self.close("}")
        return A.Case(tuple(rules), self.sp(pos))

    def _iteration(self, k, pos):
        self.i += 1
        self.open("(", f" after '{k}'")
        var = self.ident(f"the variable name of {k}(i, n, expr)")
        self.comma(f"the count of {k}(i, n, expr)")
        count = self.argument()
        self.comma(f"the body of {k}(i, n, expr)")
        body = self.expression()
        self.close(")")
        return A.Iteration(k, var, count, body, self.sp(pos))

    def _inout(self, k, pos):
        self.i += 1
        self.open("(", f" after '{k}'")
        e = self.expression()
        self.close(")")
        return (A.InputsOf if k == "inputs" else A.OutputsOf)(e, self.sp(pos))

    def _widget(self, k, pos):
        self.i += 1
        self.open("(", f" after '{k}'")
        label = self.string(f"a label string in {k}(...)")
        n = 4 if k in _SLIDERS else 2 if k in _BARGRAPHS else 0
        args = []
        for _ in range(n):
            self.comma(f"the next argument of {k}")
            args.append(self.argument())
        self.close(")")
        return A.Widget(k, label, tuple(args), self.sp(pos))

    def _group(self, k, pos):
        self.i += 1
        self.open("(", f" after '{k}'")
        label = self.string(f"a label string in {k}(...)")
        self.comma(f"the body of {k}")
        body = self.expression()
        self.close(")")
        return A.Group(k, label, body, self.sp(pos))

    def _soundfile(self, k, pos):
        self.i += 1
        self.open("(", " after 'soundfile'")
        label = self.string("a label string in soundfile(...)")
        self.comma("the number of channels of soundfile")
        chans = self.argument()
        self.close(")")
        return A.Soundfile(label, chans, self.sp(pos))

    def _libcomp(self, k, pos):
        self.i += 1
        self.open("(", f" after '{k}'")
        path = self.string(f"a file name string in {k}(...)")
        self.close(")")
        return (A.Library if k == "library" else A.Component)(path, self.sp(pos))

    def _environment(self, k, pos):
        self.i += 1
        self.open("{", " after 'environment'")
        self.enter()
        stmts = self.statements("}", True)
        self.depth -= 1
        self.close("}")
        return A.Environment(tuple(stmts), self.sp(pos))

    def _number(self):
        K, V = self.K, self.V
        start = i = self.i
        neg = False
        if K[i] == "+" or K[i] == "-":
            neg = K[i] == "-"
            i += 1
        k = K[i]
        if k == "INT":
            self.i = i + 1
            return A.Int(-V[i] if neg else V[i], self.sp(self.P[start]))
        if k == "REAL":
            self.i = i + 1
            v, t = V[i]
            if neg:
                return A.Real(-v, "-" + t, self.sp(self.P[start]))
            return A.Real(v, t, self.sp(self.P[start]))
        self.i = i
        self.fail("a number")

    def _waveform(self, k, pos):
        self.i += 1
        self.open("{", " after 'waveform'")
        vals = [self._number()]
        while self.K[self.i] == ",":
            self.i += 1
            vals.append(self._number())
        self.close("}")
        return A.Waveform(tuple(vals), self.sp(pos))

    def _route(self, k, pos):
        self.i += 1
        self.open("(", " after 'route'")
        ins = self.argument()
        self.comma("the number of outputs of route")
        outs = self.argument()
        pairs = ()
        if self.K[self.i] == ",":
            self.i += 1
            # the pairs, flattened over ',' (parallel composition is associative)
            items = []
            stack = [self.expression()]
            while stack:
                e = stack.pop()
                if type(e) is A.Compose and e.op == ",":
                    stack.append(e.right)
                    stack.append(e.left)
                else:
                    items.append(e)
            pairs = tuple(items)
        self.close(")")
        return A.Route(ins, outs, pairs, self.sp(pos))

    def _ctype(self, allowed=("int", "float")) -> str:
        k = self.K[self.i]
        if k not in allowed:
            self.fail(" or ".join(f"'{a}'" for a in allowed))
        self.i += 1
        return k

    def _cname(self, what: str) -> str:
        k = self.K[self.i]
        if k == "ID" or k in KEYWORDS:
            self.i += 1
            return self.V[self.i - 1]
        self.fail(what)

    def _include(self) -> str:
        """fstring: `"file.h"` (kept with its quotes) or `<file.h>` (raw text)."""
        K, P = self.K, self.P
        k = K[self.i]
        if k == "STR":
            self.i += 1
            return '"' + self.V[self.i - 1] + '"'
        if k == "<":
            j = self.i + 1
            while K[j] not in (">", ",", ")", ";", "EOF"):
                j += 1
            if K[j] != ">":
                self.i = j
                self.fail("'>' closing the include file name '<...>'")
            text = self.text[P[self.i] : P[j] + 1]
            self.i = j + 1
            return "".join(text.split())
        self.fail('an include file "file.h" or <file.h>')

    def _ffunction(self, k, pos):
        K = self.K
        self.i += 1
        self.open("(", " after 'ffunction'")
        rtype = self._ctype()
        names = []
        if K[self.i] == "(":
            self.open("(")
            names.append(self._cname("a C function name"))
            while K[self.i] == "|":
                self.i += 1
                names.append(self._cname("a C function name after '|'"))
            self.close(")")
        else:
            names.append(self._cname("a C function name"))
            while K[self.i] == "|":
                self.i += 1
                names.append(self._cname("a C function name after '|'"))
        if len(names) > 4:
            # one name, or float|double|quad[|fixed-point] (2.54 takes up to 3, current Faust 4)
            self.error(f"too many C function names in ffunction ({len(names)}): at most 4, "
                       f"for float|double|quad|fixed-point")
        self.open("(", " before the argument types of the foreign function")
        atypes = []
        if K[self.i] != ")":
            atypes.append(self._ctype(("int", "float", "any")))
            while K[self.i] == ",":
                self.i += 1
                atypes.append(self._ctype(("int", "float", "any")))
        self.close(")")
        self.comma("the include file of ffunction")
        include = self._include()
        self.comma("the library of ffunction")
        library = self.string("a library string in ffunction(...)")
        self.close(")")
        return A.FFunction(rtype, tuple(names), tuple(atypes), include, library, self.sp(pos))

    def _fconst(self, k, pos):
        self.i += 1
        self.open("(", f" after '{k}'")
        ctype = self._ctype()
        name = self.ident(f"a C name in {k}(type name, include)")
        self.comma(f"the include file of {k}")
        include = self._include()
        self.close(")")
        return (A.FConstant if k == "fconstant" else A.FVariable)(ctype, name, include, self.sp(pos))

    _constructs: dict = {}


_P = _Parser
_P._constructs = {
    "\\": _P._lambda,
    "case": _P._case,
    "inputs": _P._inout,
    "outputs": _P._inout,
    "soundfile": _P._soundfile,
    "library": _P._libcomp,
    "component": _P._libcomp,
    "environment": _P._environment,
    "waveform": _P._waveform,
    "route": _P._route,
    "ffunction": _P._ffunction,
    "fconstant": _P._fconst,
    "fvariable": _P._fconst,
    **{k: _P._iteration for k in _ITERATIONS},
    **{k: _P._widget for k in ("button", "checkbox") + tuple(_SLIDERS) + tuple(_BARGRAPHS)},
    **{k: _P._group for k in _GROUPS},
}


# ------------------------------------------------------------------ API


def _run(fn, text: str, filename: str):
    old = sys.getrecursionlimit()
    if old < 20000:
        sys.setrecursionlimit(20000)
    p = None
    try:
        p = _Parser(text, filename)
        return fn(p)
    except RecursionError:
        pos = p.P[min(p.i, len(p.P) - 1)] if p is not None else 0
        span = p.sp(pos) if p is not None else A.Span(filename, 1, 1)
        raise FaustSyntaxError("expression nested too deeply", span) from None
    finally:
        if old < 20000:
            sys.setrecursionlimit(old)


def parse(text: str, filename: str = "<string>") -> A.Program:
    """Parse a Faust program (a list of statements)."""
    return _run(_Parser.program, text, filename)


def _expr_only(p: _Parser):
    e = p.expression()
    if p.K[p.i] != "EOF":
        p.fail("end of expression")
    return e


def parse_expression(text: str, filename: str = "<string>"):
    """Parse a single Faust expression (no trailing `;`)."""
    return _run(_expr_only, text, filename)


def parse_file(path) -> A.Program:
    """Read and parse a Faust file (UTF-8; undecodable bytes replaced)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"cannot read '{path}': {e.strerror or e}") from None
    return parse(text, path)
