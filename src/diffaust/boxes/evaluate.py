"""The evaluator: AST -> box (Faust's `eval.cpp` semantics, written here).

Values
  Box             a block diagram; numbers are `BConst`
  Closure         a function (definition with parameters, lambda): params, body, env
  PatternMatcher  a multi-rule definition or a `case`, possibly partly applied
  EnvValue        an environment: `environment{}`, `library("x.lib")`
  Suspended       a `component("x.dsp")`: its `process`, evaluated when used

Environments are layers: `DefEnv` (a scope of lazily evaluated, mutually recursive
definitions: a file, a `with`, an `environment`) and `ValEnv` (one bound parameter).
Each definition is evaluated at most once per DefEnv.  ValEnvs are interned, and
every `eval(expr, env)` is memoized, so applying the same function to the same
arguments twice costs nothing (as Faust's hash-consed environments do).

Rules that follow Faust (checked with the reference compiler 2.54.9):
  * `f(a1..ak)` on a diagram f with n inputs: `a1,..,ak,_,..,_ : f`, except for the
    infix primitives (`+ - * / % ^ < ... @ attach enable control`) with one argument:
    `_,a : f`, so `-(1)` is `_-1`, `/(2)` is `_/2`, while `fmod(2)` is `fmod(2,_)`.
  * A function used where a diagram is needed becomes BSymbolic (eta-conversion).
  * Arguments bound to parameters and pattern arguments are folded to numbers when
    they are constant (`f(1+1)` matches `f(2)`); int and real numbers never match
    each other (`f(1)` does not match `f(1.0)`).
  * `par/sum/prod(i, 0, e)` is the empty diagram (0 inputs, 0 outputs: BRoute(0, 0, ())),
    `seq(i, 0, e)` is a bus of wires as wide as `e`.
  * `sum(i,n,e)` = ((e0 + e1) + e2) ..., `par` and `seq` nest to the right.
  * A letrec `{'x = ex; 'y = ey;}` becomes `\\(x,y).(ex,ey) ~ (_,_)` and each name its
    projection `: (_,!)`, `: (!,_)`.
  * A name defined in the importing file and in an imported file is an error
    ("redefinition of symbols are not allowed"), as is `x = 1; x = 2;`.
"""

from __future__ import annotations

import difflib
import os
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Optional

from ..errors import FaustEvalError
from ..primitives.arity import PRIMITIVE_ARITY
from ..syntax import ast as A
from .arity import box_arity, try_arity
from .box import (
    Box, BConst, BCut, BFConst, BFFun, BFVar, BMerge, BPar, BPrim, BRec, BRoute, BSeq,
    BSlot, BSoundfile, BSplit, BSymbolic, BWaveform, BWidget, BWire,
)
from .loader import parse_file_cached, resolve
from .numeric import box_number, require_int, require_number, _outputs as _const_outputs
from .printer import short_box

EMPTY = BRoute(0, 0, ())

# primitives that take their single argument on the right: `-(1)` is `_-1`
WIRES_FIRST = frozenset(
    "+ - * / % ^ pow < <= > >= == != & | xor << >> @ attach enable control".split()
)

MAX_APPLY_DEPTH = 6000
# par/seq/sum/prod: the most copies one iteration may make, and all of them together
MAX_ITERATIONS = 1 << 16
MAX_TOTAL_ITERATIONS = 1 << 20
_STACK_SIZE = 512 * 1024 * 1024


# ----------------------------------------------------------------- options, result


@dataclass
class EvalOptions:
    """How to evaluate: where to find libraries, which precision."""

    import_dirs: tuple = ()
    file_dir: Optional[str] = None  # folder of the file being evaluated (default: its own)
    double: bool = False
    bundled_only: bool = False
    deps: object = None  # a loader.FileDeps recording the files searched and read, or None
    max_depth: int = MAX_APPLY_DEPTH


@dataclass
class EvalResult:
    process: Box
    metadata: list = field(default_factory=list)
    files: list = field(default_factory=list)


# ----------------------------------------------------------------- values


class Value:
    __slots__ = ()


class Closure(Value):
    __slots__ = ("params", "body", "env", "name", "span")

    def __init__(self, params, body, env, name=None, span=None):
        self.params = params
        self.body = body
        self.env = env
        self.name = name
        self.span = span

    def __repr__(self):
        return f"<closure {self.name or 'lambda'}({', '.join(self.params)})>"


class PatternMatcher(Value):
    __slots__ = ("rules", "env", "nparams", "args", "name", "span", "compiled")

    def __init__(self, rules, env, nparams, name=None, span=None, args=(), compiled=None):
        self.rules = rules  # tuple of ast.Rule
        self.env = env
        self.nparams = nparams
        self.args = args
        self.name = name
        self.span = span
        self.compiled = compiled if compiled is not None else {}

    def __repr__(self):
        return f"<pattern matcher {self.name or 'case'}/{self.nparams}>"


class EnvValue(Value):
    __slots__ = ("env",)

    def __init__(self, env):
        self.env = env

    def __repr__(self):
        return "<environment>"


class Suspended(Value):
    """`component(...)`: `name` looked up in `env` when the value is needed."""

    __slots__ = ("name", "env", "span")

    def __init__(self, name, env, span=None):
        self.name = name
        self.env = env
        self.span = span


# ----------------------------------------------------------------- environments


class Def:
    """One definition of a DefEnv: an expression, a function, or rules."""

    __slots__ = ("kind", "expr", "params", "rules", "span", "env")

    def __init__(self, kind, span, expr=None, params=None, rules=None, env=None):
        self.kind = kind  # 'expr' | 'fun' | 'rules'
        self.expr = expr
        self.params = params
        self.rules = rules
        self.span = span
        self.env = env  # evaluation environment when not the DefEnv itself (redefinitions)


class DefEnv:
    __slots__ = ("parent", "defs", "values", "busy", "origin")

    def __init__(self, parent, defs: dict, origin=None):
        self.parent = parent
        self.defs = defs
        self.values: dict = {}
        self.busy: set = set()
        self.origin = origin


class ValEnv:
    __slots__ = ("parent", "name", "value")

    def __init__(self, parent, name, value):
        self.parent = parent
        self.name = name
        self.value = value


@dataclass(frozen=True)
class _PatVar(Box):
    """A pattern variable (only inside patterns)."""

    name: str
    span: A.Span = field(default=A.NOSPAN, compare=False, repr=False)


_COMPOSE = {":": BSeq, ",": BPar, "<:": BSplit, ":>": BMerge, "~": BRec}
_STRUCT = (BSeq, BPar, BSplit, BMerge, BRec)
_FOLDABLE = frozenset((BSeq, BSplit, BMerge))  # the only boxes that may fold to a number


def _precision_kinds(expr):
    """(kinds, inner expr) of a chain of Precision nodes."""
    kinds = []
    while isinstance(expr, A.Precision):
        kinds.append(expr.kind.replace("precision", ""))
        expr = expr.expr
    return kinds, expr


# ----------------------------------------------------------------- the evaluator


class Evaluator:
    def __init__(self, options: EvalOptions):
        self.options = options
        self.precision = "double" if options.double else "single"
        self.memo: dict = {}
        self.valenvs: dict = {}
        self.defenvs: dict = {}
        self.closures: dict = {}
        self.a2sb_memo: dict = {}
        self.lib_envs: dict = {}
        self.files: list = []
        self.keep: list = []  # synthetic AST nodes: their ids are memo keys
        self.slot_counter = 0
        self.depth = 0
        self.call_names: list = []
        self.iterations = 0  # copies made by par/seq/sum/prod so far (bounded by MAX_TOTAL_ITERATIONS)

    # ------------------------------------------------------------- files

    def note_file(self, path):
        if path not in self.files:
            self.files.append(path)

    def load(self, path):
        self.note_file(path)
        return parse_file_cached(path, self.options.deps)

    def file_env(self, program, file_dir, declares=None) -> DefEnv:
        """The top-level scope of a program: its definitions and those it imports."""
        entries = []  # (Definition, file)
        seen = set()
        main_file = os.path.abspath(program.file) if program.file and os.path.isfile(program.file) else None
        if main_file:
            seen.add(main_file)
        self._expand(program.statements, program.file, file_dir, entries, seen, declares)
        return DefEnv(None, self._group(entries, top=True), origin=program.file)

    def active(self, st) -> bool:
        """False for a statement written for another float precision (`singleprecision f = ...;`)."""
        ps = getattr(st, "precisions", ())
        return not ps or (self.precision + "precision") in ps

    def _expand(self, statements, file, file_dir, entries, seen, declares):
        for st in statements:
            if not self.active(st):
                continue
            if isinstance(st, A.Import):
                path = resolve(st.path, file_dir, self.options, st.span)
                if path in seen:
                    continue
                seen.add(path)
                sub = self.load(path)
                self._expand(sub.statements, sub.file, os.path.dirname(path), entries, seen, None)
            elif isinstance(st, A.Definition):
                entries.append((st, file))
            elif isinstance(st, A.Declare):
                if declares is not None:
                    key = f"{st.target}:{st.key}" if st.target else st.key
                    declares.append((key, st.value))

    def _group(self, entries, top=False) -> dict:
        """Group definitions by name: multi-rule functions, redefinition errors."""
        groups: dict = {}
        for d, f in entries:
            if not self.active(d):
                continue
            body = d.body
            if isinstance(body, A.Precision):
                kinds, inner = _precision_kinds(body)
                if self.precision not in kinds:
                    continue
                d = A.Definition(d.name, d.params, inner, span=d.span)
                self.keep.append(d)
            groups.setdefault(d.name, []).append((d, f))
        defs = {}
        for name, items in groups.items():
            # the same definition met twice (libraries importing each other) is one definition
            unique = []
            for d, f in items:
                if not any(d.params == u.params and d.body == u.body for u, _ in unique):
                    unique.append((d, f))
            items = unique
            first, ffile = items[0]
            for d, f in items[1:]:
                if f != ffile:
                    raise FaustEvalError(
                        f"redefinition of symbols are not allowed: '{name}' "
                        f"(already defined at {first.span})",
                        d.span,
                    )
            if len(items) == 1:
                d = first
                if d.params is None:
                    defs[name] = Def("expr", d.span, expr=d.body)
                elif all(isinstance(p, A.Ident) for p in d.params) and len(
                    {p.name for p in d.params}
                ) == len(d.params):
                    defs[name] = Def("fun", d.span, expr=d.body, params=tuple(p.name for p in d.params))
                else:
                    rule = A.Rule(tuple(d.params), d.body, span=d.span)
                    self.keep.append(rule)
                    defs[name] = Def("rules", d.span, rules=(rule,), params=len(d.params))
                continue
            if any(d.params is None for d, _ in items):
                d = items[1][0]
                raise FaustEvalError(
                    f"multiple definitions of symbol '{name}' (first at {first.span})", d.span
                )
            n = len(first.params)
            for d, _ in items:
                if len(d.params) != n:
                    raise FaustEvalError(
                        f"the rules of '{name}' must all have {n} parameters, "
                        f"this one has {len(d.params)}",
                        d.span,
                    )
            rules = tuple(A.Rule(tuple(d.params), d.body, span=d.span) for d, _ in items)
            self.keep.append(rules)
            defs[name] = Def("rules", first.span, rules=rules, params=n)
        return defs

    def library_env(self, path) -> DefEnv:
        env = self.lib_envs.get(path)
        if env is None:
            program = self.load(path)
            env = self.file_env(program, os.path.dirname(path))
            self.lib_envs[path] = env
        return env

    # ------------------------------------------------------------- environments

    def bind(self, env, name, value):
        key = (env, name, value if isinstance(value, Box) else id(value))
        e = self.valenvs.get(key)
        if e is None:
            e = ValEnv(env, name, value)
            self.valenvs[key] = e
            if not isinstance(value, Box):
                self.keep.append(value)
        return e

    def scope(self, defs_node, env):
        """The DefEnv of a `with`/`environment` block in `env` (one per pair)."""
        key = (id(defs_node), env)
        e = self.defenvs.get(key)
        if e is None:
            entries: list = []
            if any(isinstance(d, A.Import) for d in defs_node):
                # an environment { } may import files into its own scope
                first = next(iter(defs_node))
                self._expand(defs_node, None, self._dir_of(first, env), entries, set(), None)
            else:
                entries = [(d, None) for d in defs_node if isinstance(d, A.Definition)]
            e = DefEnv(env, self._group(entries))
            self.defenvs[key] = e
        return e

    def lookup(self, name, env, span):
        e = env
        while e is not None:
            if type(e) is ValEnv:
                if e.name == name:
                    return e.value
            else:
                d = e.defs.get(name)
                if d is not None:
                    return self.force_def(e, name, d, span)
            e = e.parent
        if name in PRIMITIVE_ARITY:
            return BPrim(name, span=span)
        raise self.undefined(name, env, span)

    def undefined(self, name, env, span):
        names = set()
        e = env
        while e is not None:
            if type(e) is ValEnv:
                names.add(e.name)
            else:
                names.update(e.defs)
            e = e.parent
        names = sorted(n for n in names if not n.startswith("\0"))
        close = difflib.get_close_matches(name, names, n=3)
        hint = None
        if close:
            hint = "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        return FaustEvalError(f"undefined symbol '{name}'", span, hint=hint)

    def force_def(self, denv: DefEnv, name, d: Def, span):
        v = denv.values.get(name)
        if v is not None:
            return v
        if name in denv.busy:
            raise FaustEvalError(
                f"recursive definition of '{name}': a definition cannot use its own value "
                f"(use '~' for feedback, or a function with a stopping rule)",
                span,
            )
        denv.busy.add(name)
        try:
            ev = d.env if d.env is not None else denv
            if d.kind == "expr":
                v = self.eval(d.expr, ev)
                if isinstance(v, (Closure, PatternMatcher)) and v.name is None:
                    v.name = name  # `f = case {...};`, `f = \(x).(...);`: name it in messages
            elif d.kind == "fun":
                v = Closure(d.params, d.expr, ev, name=name, span=d.span)
            else:
                v = PatternMatcher(d.rules, ev, d.params, name=name, span=d.span)
        finally:
            denv.busy.discard(name)
        denv.values[name] = v
        return v

    # ------------------------------------------------------------- eval

    def eval(self, expr, env):
        key = (id(expr), env)
        v = self.memo.get(key)
        if v is None:
            v = self._eval(expr, env)
            self.memo[key] = v
        return v

    def _eval(self, x, env):
        t = type(x)
        m = _DISPATCH.get(t)
        if m is None:
            raise FaustEvalError(f"cannot evaluate {t.__name__}", getattr(x, "span", None))
        return m(self, x, env)

    def ev_ident(self, x, env):
        return self.lookup(x.name, env, x.span)

    def ev_access(self, x, env):
        v = self.eval(x.env, env)  # a component is accessed, not forced
        if isinstance(v, (EnvValue, Suspended, Closure, PatternMatcher)):
            return self.lookup(x.name, v.env, x.span)
        raise FaustEvalError(
            f"no environment to access: '{short_box(v) if isinstance(v, Box) else v}' "
            f"is not an environment (in '.{x.name}')",
            x.span,
        )

    def ev_int(self, x, env):
        return BConst(int(x.value), span=x.span)

    def ev_real(self, x, env):
        return BConst(float(x.value), span=x.span)

    def ev_string(self, x, env):
        raise FaustEvalError(f'a string ("{x.value}") is not a block diagram', x.span)

    def ev_wire(self, x, env):
        return BWire(span=x.span)

    def ev_cut(self, x, env):
        return BCut(span=x.span)

    def ev_prim(self, x, env):
        name = "mem" if x.name == "'" else x.name
        return BPrim(name, span=x.span)

    def ev_compose(self, x, env):
        cls = _COMPOSE.get(x.op)
        if cls is None:
            raise FaustEvalError(f"unknown composition operator '{x.op}'", x.span)
        return cls(self.box(self.eval(x.left, env), x.left.span),
                   self.box(self.eval(x.right, env), x.right.span), span=x.span)

    def ev_infix(self, x, env):
        a = self.box(self.eval(x.left, env), x.left.span)
        b = self.box(self.eval(x.right, env), x.right.span)
        return BSeq(BPar(a, b, span=x.span), BPrim(x.op, span=x.span), span=x.span)

    def ev_delay1(self, x, env):
        a = self.box(self.eval(x.expr, env), x.expr.span)
        return BSeq(a, BPrim("mem", span=x.span), span=x.span)

    def ev_apply(self, x, env):
        fn = self.eval(x.fn, env)
        args = [self.eval(a, env) for a in x.args]
        return self.apply(fn, args, x.span)

    def ev_with(self, x, env):
        return self.eval(x.body, self.scope(x.defs, env))

    def ev_letrec(self, x, env):
        synth = self._letrec_defs(x)
        return self.eval(x.body, self.scope(synth, env))

    def _letrec_defs(self, x):
        key = ("letrec", id(x))
        cached = self.defenvs.get(key)
        if cached is not None:
            return cached
        sp = x.span
        names = tuple(r.name for r in x.recs)
        n = len(names)
        exprs = [r.expr for r in x.recs]
        par = exprs[-1]
        for e in reversed(exprs[:-1]):
            par = A.Compose(",", e, par, span=sp)
        if x.where:
            par = A.With(par, tuple(x.where), span=sp)
        bus = A.Wire(span=sp)
        for _ in range(n - 1):
            bus = A.Compose(",", A.Wire(span=sp), bus, span=sp)
        body_name = "\0letrec"
        defs = [A.Definition(body_name, None, A.Compose("~", A.Lambda(names, par, span=sp), bus, span=sp), span=sp)]
        for i, r in enumerate(x.recs):
            sel = None
            for j in reversed(range(n)):
                item = A.Wire(span=sp) if j == i else A.Cut(span=sp)
                sel = item if sel is None else A.Compose(",", item, sel, span=sp)
            defs.append(A.Definition(r.name, None, A.Compose(":", A.Ident(body_name, span=r.span), sel, span=r.span), span=r.span))
        defs = tuple(defs)
        self.keep.append(defs)
        self.defenvs[key] = defs
        return defs

    def ev_lambda(self, x, env):
        return Closure(tuple(x.params), x.body, env, span=x.span)

    def ev_case(self, x, env):
        n = len(x.rules[0].patterns) if x.rules else 0
        for r in x.rules:
            if len(r.patterns) != n:
                raise FaustEvalError(
                    f"the rules of this case must all have {n} patterns, this one has {len(r.patterns)}",
                    r.span,
                )
        return PatternMatcher(tuple(x.rules), env, n, name=None, span=x.span)

    def ev_iteration(self, x, env):
        cbox = self.box(self.eval(x.count, env), x.count.span)
        n = require_int(cbox, f"the number of iterations of {x.kind}({x.var}, ...)", x.count.span)
        if n < 0:
            raise FaustEvalError(f"the number of iterations of {x.kind}() must not be negative, it is {n}", x.count.span)
        if n > MAX_ITERATIONS:
            raise FaustEvalError(
                f"too many iterations in {x.kind}({x.var}, {n}, ...): at most {MAX_ITERATIONS} are supported",
                x.count.span,
            )
        self.iterations += n
        self._check_iterations(x, n, self.iterations)
        kind = x.kind

        first = [True]

        def item(i):
            before = self.iterations
            r = self.box(self.eval(x.body, self.bind(env, x.var, BConst(i, span=x.span))), x.body.span)
            if first[0] and n > 1:  # the first copy's own iterations, times n: refuse early
                first[0] = False
                self._check_iterations(x, n, self.iterations + (self.iterations - before) * (n - 1))
            return r

        if n == 0:
            if kind == "seq":
                outs = box_arity(item(0))[1]
                return _wires(outs, x.span)
            return EMPTY
        if kind == "par" or kind == "seq":
            cls = BPar if kind == "par" else BSeq
            res = item(n - 1)
            for i in range(n - 2, -1, -1):
                res = cls(item(i), res, span=x.span)
            return res
        if kind in ("sum", "prod"):
            op = "+" if kind == "sum" else "*"
            res = item(0)
            for i in range(1, n):
                res = BSeq(BPar(res, item(i), span=x.span), BPrim(op, span=x.span), span=x.span)
            return res
        raise FaustEvalError(f"unknown iteration '{kind}'", x.span)

    def _check_iterations(self, x, n, total):
        if total > MAX_TOTAL_ITERATIONS:
            raise FaustEvalError(
                f"too many iterations in all: this {x.kind}({x.var}, {n}, ...) brings the copies made by "
                f"par/seq/sum/prod to {total}, at most {MAX_TOTAL_ITERATIONS} are supported "
                f"(nested or recursive iterations?)",
                x.count.span,
            )

    def ev_widget(self, x, env):
        label = self.eval_label(x.label, env, x.span)
        nums = [
            float(require_number(self.box(self.eval(a, env), a.span), f"the parameters of {x.kind}", a.span))
            for a in x.args
        ]
        if x.kind in ("button", "checkbox"):
            return BWidget(x.kind, label, 0.0, 0.0, 1.0, 1.0, span=x.span)
        if x.kind in ("hslider", "vslider", "nentry"):
            if len(nums) != 4:
                raise FaustEvalError(f"{x.kind} needs 4 numbers (init, min, max, step)", x.span)
            return BWidget(x.kind, label, *nums, span=x.span)
        if x.kind in ("hbargraph", "vbargraph"):
            if len(nums) != 2:
                raise FaustEvalError(f"{x.kind} needs 2 numbers (min, max)", x.span)
            return BWidget(x.kind, label, 0.0, nums[0], nums[1], 0.0, span=x.span)
        raise FaustEvalError(f"unknown widget '{x.kind}'", x.span)

    def ev_group(self, x, env):
        label = self.eval_label(x.label, env, x.span)
        body = self.box(self.eval(x.body, env), x.body.span)
        k = x.kind[0] if x.kind else "v"
        return _add_group(body, (k, label), {})

    def ev_environment(self, x, env):
        return EnvValue(self.scope(x.defs, env))

    def ev_library(self, x, env):
        path = resolve(x.path, self._dir_of(x, env), self.options, x.span)
        return EnvValue(self.library_env(path))

    def ev_component(self, x, env):
        path = resolve(x.path, self._dir_of(x, env), self.options, x.span, what="component")
        return Suspended("process", self.library_env(path), span=x.span)

    def _dir_of(self, x, env):
        f = x.span.file if x.span and x.span.file and not x.span.file.startswith("<") else None
        if f and os.path.isfile(f):
            return os.path.dirname(os.path.abspath(f))
        return self.options.file_dir

    def ev_waveform(self, x, env):
        vals = []
        for v in x.values:
            b = self.box(self.eval(v, env), v.span)
            ar = try_arity(b)
            if ar is not None and ar[0] == 0 and ar[1] != 1:
                outs = _const_outputs(b, [])
                if any(o is None for o in outs):
                    raise FaustEvalError("the values of a waveform must be constant numbers", v.span)
                vals.extend(outs)
            else:
                vals.append(require_number(b, "a waveform value", v.span))
        return BWaveform(tuple(vals), span=x.span)

    def ev_soundfile(self, x, env):
        label = self.eval_label(x.label, env, x.span)
        n = require_int(self.box(self.eval(x.chans, env), x.chans.span), "the number of channels of a soundfile", x.chans.span)
        return BSoundfile(label, n, span=x.span)

    def ev_route(self, x, env):
        ins = require_int(self.box(self.eval(x.ins, env), x.ins.span), "the number of inputs of route", x.ins.span)
        outs = require_int(self.box(self.eval(x.outs, env), x.outs.span), "the number of outputs of route", x.outs.span)
        nums = []
        for p in x.pairs:
            b = self.box(self.eval(p, env), p.span)
            ar = try_arity(b)
            if ar is None or ar[0] != 0:
                raise FaustEvalError("the connections of route must be constant numbers", p.span)
            vals = _const_outputs(b, [])
            for v in vals:
                if v is None:
                    raise FaustEvalError("the connections of route must be constant numbers", p.span)
                nums.append(int(v))
        if len(nums) % 2:
            raise FaustEvalError("the connections of route must come in (input, output) pairs", x.span)
        pairs = tuple((nums[i], nums[i + 1]) for i in range(0, len(nums), 2))
        return BRoute(ins, outs, pairs, span=x.span)

    def ev_ffunction(self, x, env):
        args = tuple(a for a in x.arg_types if a and a != "void")
        return BFFun(x.result_type, tuple(x.names), args, x.include, x.library, span=x.span)

    def ev_fconstant(self, x, env):
        return BFConst(x.type, x.name, x.include, span=x.span)

    def ev_fvariable(self, x, env):
        return BFVar(x.type, x.name, x.include, span=x.span)

    def ev_inputs(self, x, env):
        b = self.box(self.eval(x.expr, env), x.expr.span)
        return BConst(box_arity(b)[0], span=x.span)

    def ev_outputs(self, x, env):
        b = self.box(self.eval(x.expr, env), x.expr.span)
        return BConst(box_arity(b)[1], span=x.span)

    def ev_modify(self, x, env):
        v = self.eval(x.expr, env)
        if not isinstance(v, (Closure, PatternMatcher, EnvValue, Suspended)):
            raise FaustEvalError("local redefinition [...] needs a function, an environment or a component", x.span)
        old = v.env
        entries = [(d, None) for d in x.defs if isinstance(d, A.Definition)]
        new_defs = self._group(entries)
        for d in new_defs.values():
            d.env = env
        if type(old) is DefEnv:
            merged = dict(old.defs)
            merged.update(new_defs)
            new_env = DefEnv(old.parent, merged, origin=old.origin)
        else:
            new_env = DefEnv(old, new_defs)
        self.keep.append(new_env)
        if isinstance(v, Closure):
            return Closure(v.params, v.body, new_env, name=v.name, span=v.span)
        if isinstance(v, PatternMatcher):
            return PatternMatcher(v.rules, new_env, v.nparams, name=v.name, span=v.span, args=v.args)
        if isinstance(v, EnvValue):
            return EnvValue(new_env)
        return self.force(Suspended(v.name, new_env, v.span))

    def ev_precision(self, x, env):
        kinds, inner = _precision_kinds(x)
        if self.precision in kinds:
            return self.eval(inner, env)
        return EMPTY

    # ------------------------------------------------------------- labels

    def eval_label(self, label, env, span):
        """Faust's parametric labels (evalLabel): `"gain %i"`, `"ch %2i"`, `"%{i}"` take the
        value of `i` (width ≤ 4).  A `%` followed by anything else stays as written
        (`"[unit:%%]"` keeps both), as does a `%` at the end."""
        if "%" not in label:
            return label
        out = []
        i, n = 0, len(label)

        def ident_char(c):
            return c.isascii() and (c.isalnum() or c == "_")

        while i < n:
            c = label[i]
            if c != "%":
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and label[j].isascii() and label[j].isdigit():
                j += 1
            fmt = label[i + 1:j]
            braced = j < n and label[j] == "{"
            k = j + 1 if braced else j
            while k < n and ident_char(label[k]):
                k += 1
            ident = label[j + 1:k] if braced else label[j:k]
            if braced and not (k < n and label[k] == "}"):  # "%{" without its "}": the rest as written
                out.append(label[i:])
                break
            if not ident:  # "%" then punctuation (or the end): kept, the next character read anew
                out.append("%" + fmt)
                i = j
                continue
            v = require_int(self.box(self.lookup(ident, env, span), span), f"'{ident}' in the label \"{label}\"", span)
            width = min(4, max(int(fmt or 0), 0))
            out.append(f"{v:{width}d}" if width else str(v))
            i = k + 1 if braced else k
        return "".join(out)

    # ------------------------------------------------------------- values -> boxes

    def force(self, v):
        while isinstance(v, Suspended):
            v = self.lookup(v.name, v.env, v.span)
        return v

    def box(self, v, span=None) -> Box:
        """A value made into a block diagram (Faust's a2sb: functions become symbolic boxes)."""
        if isinstance(v, Box):
            return v
        v = self.force(v)
        if isinstance(v, Box):
            return v
        r = self.a2sb_memo.get(id(v))
        if r is not None:
            return r[1]
        if isinstance(v, (Closure, PatternMatcher)):
            # lazily (Faust's a2sb happens when the diagram is needed): the function stays
            # an abstraction inside the diagram, so a pattern `(A : B)` binds A to it
            self.slot_counter += 1
            sp = span or v.span
            slot = BSlot(self.slot_counter, span=sp)
            res = BSymbolic.lazy(slot, v, lambda: self.box(self.apply(v, [slot], sp), span), span=sp)
        elif isinstance(v, EnvValue):
            raise FaustEvalError("an environment is not a block diagram (use env.name to access a definition)", span)
        else:
            raise FaustEvalError(f"not a block diagram: {v!r}", span)
        self.a2sb_memo[id(v)] = (v, res)
        return res

    # ------------------------------------------------------------- application

    def apply(self, fn, args, span):
        while args:
            fn = self.force(fn)
            if isinstance(fn, Closure):
                fn, args = self._apply_closure(fn, args, span)
            elif isinstance(fn, PatternMatcher):
                fn, args = self._apply_pm(fn, args, span)
            elif isinstance(fn, EnvValue):
                raise FaustEvalError("an environment cannot be used as a function", span)
            elif type(fn) is BSymbolic and fn.fn is not None:
                fn = fn.fn  # a function kept in a diagram: applied as the function (Faust's closure)
            elif isinstance(fn, Box):
                return self._apply_box(fn, args, span)
            else:
                raise FaustEvalError(f"cannot apply {fn!r}", span)
        return fn

    def _enter(self, name, span):
        self.depth += 1
        self.call_names.append(name)
        if self.depth > self.options.max_depth:
            tail = [n for n in self.call_names[-200:] if n]
            culprit = max(set(tail), key=tail.count) if tail else None
            who = f" '{culprit}'" if culprit else ""
            raise FaustEvalError(
                f"infinite recursion while evaluating{who}: more than {self.options.max_depth} "
                f"nested function applications (a function that calls itself without reaching "
                f"a stopping rule, like f(n) = f(n+1)?)",
                span,
            )

    def _leave(self):
        self.depth -= 1
        self.call_names.pop()

    def _simplify_arg(self, a):
        if type(a) in _FOLDABLE:
            ar = try_arity(a)
            if ar == (0, 1):
                n = box_number(a)
                if n is not None:
                    return BConst(n, span=a.span)
        return a

    def _apply_closure(self, fn: Closure, args, span):
        k = min(len(fn.params), len(args))
        env = fn.env
        for p, a in zip(fn.params[:k], args[:k]):
            env = self.bind(env, p, self._simplify_arg(a))
        rest = args[k:]
        if k < len(fn.params):
            key = (id(fn.body), fn.params[k:], env)
            c = self.closures.get(key)
            if c is None:
                c = Closure(fn.params[k:], fn.body, env, name=fn.name, span=fn.span)
                self.closures[key] = c
            return c, rest
        self._enter(fn.name, span)
        try:
            v = self.eval(fn.body, env)
        finally:
            self._leave()
        return v, rest

    def _apply_pm(self, pm: PatternMatcher, args, span):
        need = pm.nparams - len(pm.args)
        got = tuple(pm.args) + tuple(self._simplify_arg(a) for a in args[:need])
        rest = args[need:]
        if len(got) < pm.nparams:
            return PatternMatcher(pm.rules, pm.env, pm.nparams, pm.name, pm.span, got, pm.compiled), rest
        for idx, rule in enumerate(pm.rules):
            pats = pm.compiled.get(idx)
            if pats is None:
                pats = [self.eval_pattern(p, pm.env) for p in rule.patterns]
                pm.compiled[idx] = pats
            bindings: dict = {}
            if all(_match(p, a, bindings) for p, a in zip(pats, got)):
                env = pm.env
                for name, val in bindings.items():
                    env = self.bind(env, name, val)
                self._enter(pm.name, span)
                try:
                    v = self.eval(rule.body, env)
                finally:
                    self._leave()
                return v, rest
        shown = ", ".join(short_box(a, 40) if isinstance(a, Box) else repr(a) for a in got)
        who = f"'{pm.name}'" if pm.name else "this case"
        raise FaustEvalError(f"pattern matching failed: no rule of {who} matches the argument(s) ({shown})", span)

    def _apply_box(self, fn: Box, args, span):
        fbox = fn
        ar = box_arity(fbox)
        ins = ar[0]
        argboxes = [self.box(a, span) for a in args]
        outs = 0
        for a in argboxes:
            a_ar = try_arity(a)
            outs += a_ar[1] if a_ar is not None else 1
        if outs > ins:
            raise FaustEvalError(
                f"too many arguments: {outs} signals given to '{short_box(fbox)}' which has "
                f"{ins} input{'s' if ins != 1 else ''}",
                span,
            )
        wires = [BWire(span=span) for _ in range(ins - outs)]
        if outs == 1 and type(fbox) is BPrim and fbox.name in WIRES_FIRST:
            items = wires + argboxes
        else:
            items = argboxes + wires
        return BSeq(_par_list(items, span), fbox, span=span)

    # ------------------------------------------------------------- patterns

    def eval_pattern(self, x, env):
        p = self._pattern(x, env)
        return _simplify_pattern(p)

    def _pattern(self, x, env):
        t = type(x)
        if t is A.Ident:
            return _PatVar(x.name, span=x.span)
        if t is A.Int or t is A.Real or t is A.Wire or t is A.Cut or t is A.Prim:
            return self.eval(x, env)
        if t is A.Compose:
            cls = _COMPOSE[x.op]
            return cls(self._pat_box(self._pattern(x.left, env), x.left.span),
                       self._pat_box(self._pattern(x.right, env), x.right.span), span=x.span)
        if t is A.Infix:
            a = self._pat_box(self._pattern(x.left, env), x.left.span)
            b = self._pat_box(self._pattern(x.right, env), x.right.span)
            return BSeq(BPar(a, b, span=x.span), BPrim(x.op, span=x.span), span=x.span)
        if t is A.Delay1:
            return BSeq(self._pat_box(self._pattern(x.expr, env), x.span), BPrim("mem", span=x.span), span=x.span)
        if t is A.Group and _mentions_ident(x.body):
            # Faust matches a group box structurally; diffaust's groups only label widgets
            raise FaustEvalError("a group (hgroup/vgroup/tgroup) in a pattern is not supported by diffaust: "
                                 "match the group's content instead", x.span)
        if t is A.Apply:
            fn = self.eval(x.fn, env) if isinstance(x.fn, (A.Ident, A.Access)) else self._pattern(x.fn, env)
            args = [self._pattern(a, env) for a in x.args]
            if type(fn) is Closure and len(args) <= len(fn.params) and not _has_patvar(fn):
                # a function applied in a pattern is applied (Faust evaluates patterns):
                # `faa(1, dup(f)) = f` with `dup(x) = (x, x)` matches (1, (6, 6))
                try:
                    return self.apply(fn, args, x.span)
                except FaustEvalError:
                    pass
            if any(_has_patvar(a) for a in args) or _has_patvar(fn):
                fbox = self._pat_box(fn, x.span)
                return BSeq(_par_list([self._pat_box(a, x.span) for a in args], x.span), fbox, span=x.span)
            return self.apply(fn, args, x.span)
        return self.eval(x, env)

    def _pat_box(self, v, span):
        if isinstance(v, Box):
            return v
        return self.box(v, span)


def _has_patvar(b):
    if type(b) is _PatVar:
        return True
    if type(b) in _STRUCT:
        return _has_patvar(b.a) or _has_patvar(b.b)
    return False


def _mentions_ident(node) -> bool:
    """Whether an AST fragment names an identifier (in a pattern: a pattern variable)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is A.Ident:
            return True
        fields = getattr(n, "__dataclass_fields__", None)
        if fields is None:
            continue
        for f in fields:
            v = getattr(n, f)
            if isinstance(v, (list, tuple)):
                stack.extend(v)
            elif hasattr(v, "__dataclass_fields__"):
                stack.append(v)
    return False


def _simplify_pattern(p):
    if type(p) is _PatVar:
        return p
    if isinstance(p, Box) and not _has_patvar(p):
        n = box_number(p) if type(p) is not BConst else p.value
        if n is not None:
            return BConst(n, span=p.span)
    if type(p) in _STRUCT:
        return type(p)(_simplify_pattern(p.a), _simplify_pattern(p.b), span=p.span)
    return p


def _match(pat, val, bindings) -> bool:
    tp = type(pat)
    if tp is _PatVar:
        if pat.name in bindings:
            old = bindings[pat.name]
            return old is val or (isinstance(old, Box) and isinstance(val, Box) and old == val)
        bindings[pat.name] = val
        return True
    if not isinstance(val, Box):
        return False
    if tp is BConst:
        if type(val) is BConst:
            return val == pat
        n = box_number(val)
        return n is not None and BConst(n) == pat
    if tp in _STRUCT:
        if type(val) is not tp:
            return False
        return _match(pat.a, val.a, bindings) and _match(pat.b, val.b, bindings)
    return pat == val


def _wires(n, span):
    if n == 0:
        return EMPTY
    return _par_list([BWire(span=span) for _ in range(n)], span)


def _par_list(items, span):
    res = items[-1]
    for it in reversed(items[:-1]):
        res = BPar(it, res, span=span)
    return res


def _add_group(b, group, memo):
    r = memo.get(b)
    if r is not None:
        return r
    t = type(b)
    if t is BWidget or t is BSoundfile:
        r = replace(b, groups=(group,) + tuple(b.groups))
    elif t in _STRUCT:
        a2 = _add_group(b.a, group, memo)
        b2 = _add_group(b.b, group, memo)
        r = b if (a2 is b.a and b2 is b.b) else t(a2, b2, span=b.span)
    elif t is BSymbolic and not b.forced:  # a function still unconverted: grouped when converted
        r = BSymbolic.lazy(b.slot, None, lambda: _add_group(b.body, group, memo), span=b.span)
    elif t is BSymbolic:
        body = _add_group(b.body, group, memo)
        r = b if body is b.body else BSymbolic(b.slot, body, span=b.span)
    else:
        r = b
    memo[b] = r
    return r


def _force_symbolic(box):
    """Compute the body of every lazy BSymbolic reachable from `box` (iterative walk)."""
    seen: set = set()
    stack = [box]
    while stack:
        b = stack.pop()
        if id(b) in seen:
            continue
        seen.add(id(b))
        t = type(b)
        if t in _STRUCT:
            stack.append(b.b)
            stack.append(b.a)
        elif t is BSymbolic:
            stack.append(b.body)


_DISPATCH = {
    A.Ident: Evaluator.ev_ident,
    A.Access: Evaluator.ev_access,
    A.Int: Evaluator.ev_int,
    A.Real: Evaluator.ev_real,
    A.String: Evaluator.ev_string,
    A.Wire: Evaluator.ev_wire,
    A.Cut: Evaluator.ev_cut,
    A.Prim: Evaluator.ev_prim,
    A.Compose: Evaluator.ev_compose,
    A.Infix: Evaluator.ev_infix,
    A.Delay1: Evaluator.ev_delay1,
    A.Apply: Evaluator.ev_apply,
    A.With: Evaluator.ev_with,
    A.Letrec: Evaluator.ev_letrec,
    A.Lambda: Evaluator.ev_lambda,
    A.Case: Evaluator.ev_case,
    A.Iteration: Evaluator.ev_iteration,
    A.Widget: Evaluator.ev_widget,
    A.Group: Evaluator.ev_group,
    A.Environment: Evaluator.ev_environment,
    A.Library: Evaluator.ev_library,
    A.Component: Evaluator.ev_component,
    A.Waveform: Evaluator.ev_waveform,
    A.Soundfile: Evaluator.ev_soundfile,
    A.Route: Evaluator.ev_route,
    A.FFunction: Evaluator.ev_ffunction,
    A.FConstant: Evaluator.ev_fconstant,
    A.FVariable: Evaluator.ev_fvariable,
    A.InputsOf: Evaluator.ev_inputs,
    A.OutputsOf: Evaluator.ev_outputs,
    A.Modify: Evaluator.ev_modify,
    A.Precision: Evaluator.ev_precision,
}


# ----------------------------------------------------------------- public API


def _run_deep(fn):
    """Run `fn()` in a thread with a large stack and recursion limit (deep programs)."""
    result: dict = {}

    def target():
        old = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(max(old, 200_000))
            result["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e
        finally:
            sys.setrecursionlimit(old)

    old_size = threading.stack_size()
    try:
        threading.stack_size(_STACK_SIZE)
    except (ValueError, RuntimeError):
        old_size = None
    try:
        th = threading.Thread(target=target, name="diffaust-eval")
        th.start()
    finally:
        if old_size is not None:
            threading.stack_size(old_size)
    th.join()
    if "error" in result:
        e = result["error"]
        if isinstance(e, RecursionError):
            raise FaustEvalError("evaluation too deep (recursion limit reached)") from e
        raise e
    return result["value"]


def _options(options) -> EvalOptions:
    if options is None:
        return EvalOptions()
    if isinstance(options, EvalOptions):
        return options
    if isinstance(options, dict):
        return EvalOptions(**options)
    # any object with some of the attributes
    o = EvalOptions()
    for k in ("import_dirs", "file_dir", "double", "bundled_only", "deps", "max_depth"):
        if hasattr(options, k):
            setattr(o, k, getattr(options, k))
    return o


def _environment_declares(program: A.Program) -> list:
    """`declare key "value";` written inside the main file's `environment { }` blocks: global
    metadata for Faust too (a program's name may be declared there)."""
    out: list = []
    stack = [program]
    seen = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, A.Environment):
            out.extend(((st.span.line, st.span.col) if st.span else (0, 0), st) for st in n.defs
                       if isinstance(st, A.Declare))
        for v in vars(n).values() if hasattr(n, "__dict__") else ():
            if isinstance(v, A.Node):
                stack.append(v)
            elif isinstance(v, tuple):
                stack.extend(x for x in v if isinstance(x, A.Node))
    out.sort(key=lambda p: p[0])
    return [(f"{st.target}:{st.key}" if st.target else st.key, st.value) for _, st in out]


def evaluate_program(program: A.Program, *, options=None) -> EvalResult:
    """Evaluate `process` of a parsed program into a block diagram."""
    opts = _options(options)

    def run():
        ev = Evaluator(opts)
        file_dir = opts.file_dir
        if file_dir is None and program.file and os.path.isfile(program.file):
            file_dir = os.path.dirname(os.path.abspath(program.file))
        if program.file and os.path.isfile(program.file):
            ev.note_file(os.path.abspath(program.file))
        ev.options = replace(opts, file_dir=file_dir)
        declares: list = []
        env = ev.file_env(program, file_dir, declares)
        declares.extend(_environment_declares(program))
        if "process" not in env.defs:
            raise FaustEvalError(f"no 'process' definition in {program.file}", None)
        d = env.defs["process"]
        value = ev.force_def(env, "process", d, d.span)
        box = ev.box(value, d.span)
        box_arity(box)  # raises on an ill-formed composition, at its span
        _force_symbolic(box)  # every lazy function body, here (deep stack, live evaluator)
        return EvalResult(process=box, metadata=declares, files=list(ev.files))

    return _run_deep(run)


def evaluate_source(text: str, filename: str = "<string>", options=None) -> EvalResult:
    """Parse and evaluate Faust source text."""
    from ..syntax.parser import parse

    program = parse(text, filename)
    return evaluate_program(program, options=options)


def evaluate_file(path: str, options=None) -> EvalResult:
    """Parse (through the caches) and evaluate a .dsp file."""
    opts = _options(options)
    program = parse_file_cached(os.path.abspath(path), opts.deps)
    return evaluate_program(program, options=opts)


def evaluate_expression(text_or_program, name: str = "process", options=None) -> Box:
    """Convenience for tests: the box of definition `name`."""
    if isinstance(text_or_program, str):
        from ..syntax.parser import parse

        program = parse(text_or_program, "<string>")
    else:
        program = text_or_program
    statements = tuple(program.statements)
    if name != "process":
        statements = tuple(s for s in statements if not (isinstance(s, A.Definition) and s.name == "process"))
        statements += (A.Definition("process", None, A.Ident(name)),)
    return evaluate_program(A.Program(statements, file=program.file), options=options).process
