"""A seeded generator of random, well-typed Faust programs for the derivative campaign.

``generate(seed)`` returns a `Program`: a tree of `Node`s that prints as Faust source with
1–3 ``[diff:1]`` sliders.  Programs are drawn from every family of the language core:

* arithmetic and every math primitive (`+ - * / ^ pow atan2 min max fmod remainder`,
  `sin cos tan asin acos atan exp log log10 sqrt abs floor ceil rint`, casts, comparisons,
  `% & |`), with arguments wrapped so that values stay in the primitive's domain;
* a foreign function (`tanh` through `ffunction`);
* delays (`@k`, `'`, a variable integer delay, a fractional delay by linear interpolation);
* tables (`rdtable` read with linear interpolation, `rwtable` written with a signal);
* selects (`select2`, `select3`) on conditions that may or may not depend on p;
* recursions: single or multi-output (`\\(f0,f1).(b0,b1) ~ (_,_)`), nested at any depth,
  coupled through each other's feedback, reading the feedback of an enclosing loop through
  a lambda variable (the shape of issue 8), and shared (one subtree printed at several
  places, inside and outside a loop: Faust and diffaust share equal recursions);
* iterations (`sum`, `seq`, `par`) around any of the above.

Values stay bounded: every recursion body is ``c·f + d·sin(E)`` with |c| + |d| < 1 and the
feedback read scaled by 0.3 inside E.  The parameters' dependence is random: a loop's
coefficient, an input's gain, a delay's amount, a select's condition, or nothing at all.

`shrink(program, fails)` reduces a failing program by replacing subtrees with their
children or with constants, and dropping outputs, while `fails(program)` stays true.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

PRELUDE = """\
tanh = ffunction(float tanh(float), <math.h>, "");
time = (+(1) ~ _) - 1;
fdel(d, x) = x@int(d) * (1 - (d - floor(d))) + x@(int(d) + 1) * (d - floor(d));
tab(i) = rdtable(64, sin(float(time) * 0.1), i);
tread(u) = tab(int(k)) * (1 - (k - floor(k))) + tab(int(k) + 1) * (k - floor(k)) with { k = (u + 1) * 0.5 * 62; };
rw(w) = rwtable(32, 0.0, time % 32, w, (time + 17) % 32);
"""


@dataclass(eq=False)
class Node:
    """One expression: `fmt` is the Faust text with `{0}`, `{1}`... for the children."""

    fmt: str
    kids: list = field(default_factory=list)
    kind: str = ""           # family, for statistics and shrinking
    binds: tuple = ()        # names bound by this node (recursion feedback, lambda variables)
    arity: int = 1           # outputs (a multi-output recursion group before its route)

    def text(self) -> str:
        if not self.kids:
            return self.fmt
        return self.fmt.format(*(k.text() for k in self.kids))

    def walk(self):
        yield self
        for k in self.kids:
            yield from k.walk()


@dataclass
class Program:
    seed: int
    inputs: int
    params: list          # [(label, init, lo, hi)]
    outputs: list         # [Node]
    prefix: str = ""      # label prefix (several programs in one Faust file)

    def body(self) -> str:
        outs = ", ".join(o.text().replace("{P}", self.prefix) for o in self.outputs)
        if self.inputs:
            xs = ", ".join(f"x{i}" for i in range(self.inputs))
            return f"\\({xs}).({outs})"
        return f"({outs})" if len(self.outputs) > 1 else outs

    def param_defs(self) -> str:
        return "".join(f'{self.prefix}{lab} = hslider("{self.prefix}{lab} [diff:1]", {init!r}, {lo!r}, {hi!r}, 0.0001);\n'
                       for lab, init, lo, hi in self.params)

    def source(self) -> str:
        body = self.body()
        return f"// progen seed {self.seed}\n{prelude_for(body)}{self.param_defs()}process = {body};\n"

    def kinds(self) -> set:
        return {n.kind for o in self.outputs for n in o.walk() if n.kind}


def prelude_for(text: str) -> str:
    """The PRELUDE definitions that `text` uses (directly or through another definition)."""
    lines = PRELUDE.splitlines(keepends=True)
    names = [ln.split("=")[0].split("(")[0].strip() for ln in lines]
    used: set = set()
    todo = [text]
    while todo:
        t = todo.pop()
        for name, ln in zip(names, lines):
            if name not in used and re.search(rf"\b{name}\b", t):
                used.add(name)
                todo.append(ln.split("=", 1)[1])
    return "".join(ln for name, ln in zip(names, lines) if name in used)


def combine(programs) -> str:
    """Several programs side by side in one Faust file (parallel composition): inputs and
    outputs concatenated in order, labels made unique by each program's prefix."""
    defs = "".join(p.param_defs() for p in programs)
    bodies = ", ".join(f"({p.body()})" for p in programs)
    return f"{PRELUDE}{defs}process = {bodies};\n"


class _Gen:
    def __init__(self, seed: int, max_depth: int = 5):
        self.rng = random.Random(seed)
        self.max_depth = max_depth
        self.counter = 0
        self.pool: list = []  # subtrees available for sharing

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    # -- leaves
    def leaf(self, sc) -> Node:
        r = self.rng
        choices = [("const", 2)]
        if sc["inputs"]:
            choices.append(("input", 4))
        if sc["params"]:
            choices.append(("param", 4))
        if sc["fb"]:
            choices.append(("fb", 5))
        if sc["vars"]:
            choices.append(("var", 3))
        if sc["iters"]:
            choices.append(("iter", 1))
        if self.pool:
            choices.append(("shared", 1))
        k = _pick(r, choices)
        if k == "const":
            return Node(repr(round(r.uniform(-0.9, 0.9), 3)))
        if k == "input":
            return Node(r.choice(sc["inputs"]))
        if k == "param":
            return Node(f"{{P}}{r.choice(sc['params'])}", kind="param")
        if k == "fb":
            return Node(f"(0.3 * {r.choice(sc['fb'])})", kind="feedback")
        if k == "var":
            return Node(r.choice(sc["vars"]))
        if k == "iter":
            return Node(f"((float({r.choice(sc['iters'])}) + 1) * 0.3)", kind="iteration")
        shared = r.choice(self.pool)
        if shared.free <= sc["names"]:
            return shared.node
        return Node(repr(round(r.uniform(-0.9, 0.9), 3)))

    # -- expressions
    def expr(self, sc, depth: int) -> Node:
        r = self.rng
        if depth >= self.max_depth or r.random() < 0.12 * depth:
            return self.leaf(sc)
        fams = [("unary", 6), ("binary", 8), ("delay", 3), ("select", 2), ("discrete", 2),
                ("recursion", 3), ("table", 1.5), ("iteration", 1), ("foreign", 1)]
        fam = _pick(r, fams)
        e = lambda: self.expr(sc, depth + 1)  # noqa: E731
        if fam == "unary":
            fmt = r.choice(["sin({0})", "cos({0})", "atan({0})", "exp(sin({0}))", "sqrt(0.1 + {0} * {0})",
                            "log(0.5 + {0} * {0})", "log10(0.5 + {0} * {0})", "abs({0})",
                            "asin(0.9 * sin({0}))", "acos(0.9 * sin({0}))", "tan(0.5 * sin({0}))",
                            "(0.5 * {0})", "(0 - {0})", "pow({0}, 2)", "({0} ^ 3)"])
            return Node(fmt, [e()], "unary")
        if fam == "foreign":
            return Node("tanh({0})", [e()], "foreign")
        if fam == "binary":
            fmt = r.choice(["({0} + {1})", "({0} - {1})", "({0} * {1})", "({0} / (1.5 + sin({1})))",
                            "pow(0.75 + 0.25 * sin({0}), 2 * sin({1}))", "atan2({0}, 1.2 + cos({1}))",
                            "min({0}, {1})", "max({0}, {1})", "fmod({0}, 0.7)", "remainder({0}, 0.7)",
                            "({0} * 0.5 + {1} * 0.25)"])
            n = fmt.count("{1}") and 2 or 1
            return Node(fmt, [e() for _ in range(n)], "binary")
        if fam == "delay":
            k = r.choice(["at", "mem", "vardelay", "fdelay"])
            if k == "at":
                return Node(f"({{0}} @ {r.randint(0, 20)})", [e()], "delay")
            if k == "mem":
                return Node("({0})'", [e()], "delay")
            if k == "vardelay":
                return Node("({0} @ int(3 + 2 * sin({1})))", [e(), e()], "delay")
            return Node("fdel(3 + 2 * sin({1}), {0})", [e(), e()], "fdelay")
        if fam == "select":
            if r.random() < 0.6:
                return Node("select2({0} > {1}, {2}, {3})", [e(), e(), e(), e()], "select")
            return Node("select3(int(abs({0}) * 3) % 3, {1}, {2}, {3})", [e(), e(), e(), e()], "select")
        if fam == "discrete":
            fmt = r.choice(["floor({0} * 4)", "ceil({0} * 4)", "rint({0} * 4)", "float(int({0} * 4))",
                            "float(int({0} * 8) % 3)", "float(int({0} * 8) & 6)", "float({0} < {1})",
                            "float(({0} >= {1}) | ({1} > 0.5))", "float({0} <= {1})",
                            "float(int({0} * 4) == int({1} * 4))", "float(int({0} * 4) != 0)",
                            "float(int({0} * 8) xor 3)", "float((int({0} * 8) << 2) >> 1)"])
            n = 2 if "{1}" in fmt else 1
            return Node(fmt, [e() for _ in range(n)], "discrete")
        if fam == "table":
            if r.random() < 0.6:
                return Node("tread(sin({0}))", [e()], "table")
            return Node("rw({0})", [e()], "table")
        if fam == "iteration":
            return self.iteration(sc, depth)
        return self.recursion(sc, depth)

    def iteration(self, sc, depth):
        r = self.rng
        i = self.fresh("i")
        k = r.randint(2, 3)
        kind = r.choice(["sum", "seq", "par"])
        if kind == "sum":
            inner = {**sc, "iters": sc["iters"] + [i], "names": sc["names"] | {i}}
            return Node(f"sum({i}, {k}, {{0}})", [self.expr(inner, depth + 1)], "iteration")
        v = self.fresh("v")
        inner = {**sc, "iters": sc["iters"] + [i], "vars": sc["vars"] + [v], "names": sc["names"] | {i, v}}
        body = self.expr(inner, depth + 1)
        if kind == "seq":
            # each stage: v -> 0.5 v + 0.5 body(v, i)
            return Node(f"({{0}} : seq({i}, {k}, \\({v}).(0.5 * {v} + 0.5 * sin({{1}}))))",
                        [self.expr(sc, depth + 1), body], "iteration", binds=(i, v))
        return Node(f"({{0}} <: par({i}, {k}, \\({v}).({{1}})) :> _)", [self.expr(sc, depth + 1), body],
                    "iteration", binds=(i, v))

    def recursion(self, sc, depth):
        r = self.rng
        m = 1 if r.random() < 0.6 else r.randint(2, 3)
        fbs = [self.fresh("f") for _ in range(m)]
        inner = {**sc, "fb": sc["fb"] + fbs, "names": sc["names"] | set(fbs)}
        if sc["fb"] and r.random() < 0.5:
            # a loop inside a loop that reads p only through the enclosing loop's feedback
            # (issue 8's shape: its own coefficients do not depend on p)
            inner["params"] = []
        bodies = []
        for j in range(m):
            c = r.choice(["const", "const", "param"]) if inner["params"] else "const"
            if c == "const":
                coef = Node(repr(round(r.uniform(-0.6, 0.6), 3)))
            else:
                coef = Node("(0.6 * sin({0}))", [Node(f"{{P}}{r.choice(inner['params'])}", kind="param")])
            d = round(r.uniform(0.1, 0.35), 3)
            src = r.choice(fbs)
            bodies.append(Node(f"({{0}} * {src} + {d} * sin({{1}}))", [coef, self.expr(inner, depth + 1)],
                               "recursion"))
        lam = ", ".join(fbs)
        fmt_bodies = ", ".join(f"{{{k}}}" for k in range(m))
        # renumber: each body's own placeholders are inside its Node, so the group prints as text
        group = Node(f"((\\({lam}).({fmt_bodies})) ~ ({', '.join('_' for _ in fbs)}))", bodies,
                     "recursion", binds=tuple(fbs), arity=m)
        j = r.randrange(m)
        route = ", ".join("_" if q == j else "!" for q in range(m))
        node = Node(f"({{0}} : ({route}))", [group], "recursion") if m > 1 else group
        if m > 1 and r.random() < 0.5:
            # both outputs used: the group printed twice (shared by Faust and diffaust)
            j2 = (j + 1) % m
            route2 = ", ".join("_" if q == j2 else "!" for q in range(m))
            node = Node(f"({{0}} + ({{1}} : ({route2})))", [node, group], "coupled")
        if r.random() < 0.3:
            self.pool.append(_Shared(node, frozenset(sc["names"])))
        return node


@dataclass
class _Shared:
    node: Node
    free: frozenset  # names it may refer to


def _pick(r, choices):
    total = sum(w for _, w in choices)
    x = r.uniform(0, total)
    for k, w in choices:
        x -= w
        if x <= 0:
            return k
    return choices[-1][0]


def generate(seed: int, max_depth: int = 5) -> Program:
    """A random program (deterministic in `seed`)."""
    g = _Gen(seed, max_depth)
    r = g.rng
    inputs = r.choice([0, 1, 1, 2])
    params = []
    for k in range(r.randint(1, 3)):
        lo, hi = -2.0, 2.0
        # six digits: a base value on a discontinuity of the program (p·4 an integer under
        # floor) would make finite differences meaningless there
        params.append((f"p{k}", round(r.uniform(-0.9, 0.9), 6), lo, hi))
    sc = {"inputs": [f"x{i}" for i in range(inputs)], "params": [p[0] for p in params], "fb": [], "vars": [],
          "iters": [], "names": frozenset(f"x{i}" for i in range(inputs))}
    outs = [g.expr(sc, 0) for _ in range(r.randint(1, 3))]
    prog = Program(seed, inputs, params, outs)
    return prog


# ------------------------------------------------------------------ shrinking


def _candidates(prog: Program):
    """Smaller variants of `prog`, most aggressive first."""
    if len(prog.outputs) > 1:
        for k in range(len(prog.outputs)):
            yield Program(prog.seed, prog.inputs, prog.params, prog.outputs[:k] + prog.outputs[k + 1:], prog.prefix)
    if len(prog.params) > 1:
        for k in range(len(prog.params)):
            name = prog.params[k][0]
            used = any(name in n.fmt for o in prog.outputs for n in o.walk())
            if not used:
                yield Program(prog.seed, prog.inputs, prog.params[:k] + prog.params[k + 1:], prog.outputs,
                              prog.prefix)
    for o_idx, out in enumerate(prog.outputs):
        nodes = [n for n in out.walk()]
        for n in nodes:
            for repl in _replacements(n):
                yield _replace(prog, o_idx, n, repl)


def _replacements(n: Node):
    if n.kids:
        bound = set(n.binds)
        for k in n.kids:
            # a child that does not use the names this node binds can stand for it
            if k.arity == 1 and (not bound or not _uses(k, bound)):
                yield k
        yield Node("0.5")
    elif n.kind in ("param", "feedback") or n.fmt.startswith("x"):
        yield Node("0.5")


def _uses(node: Node, names: set) -> bool:
    return any(any(nm in m.fmt for nm in names) for m in node.walk())


def _replace(prog: Program, o_idx: int, target: Node, repl: Node) -> Program:
    def rebuild(n: Node) -> Node:
        if n is target:
            return repl
        if not n.kids:
            return n
        kids = [rebuild(k) for k in n.kids]
        if all(a is b for a, b in zip(kids, n.kids)):
            return n
        return Node(n.fmt, kids, n.kind, n.binds, n.arity)

    outs = list(prog.outputs)
    outs[o_idx] = rebuild(outs[o_idx])
    return Program(prog.seed, prog.inputs, prog.params, outs, prog.prefix)


def size(prog: Program) -> int:
    return sum(1 for o in prog.outputs for _ in o.walk())


def shrink(prog: Program, fails, budget: int = 400) -> Program:
    """Greedy: take the first smaller candidate that still fails, until none does."""
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for cand in _candidates(prog):
            if size(cand) >= size(prog) and len(cand.outputs) >= len(prog.outputs) \
                    and len(cand.params) >= len(prog.params):
                continue
            tries += 1
            try:
                bad = fails(cand)
            except Exception:  # a candidate that no longer compiles is not a reduction
                bad = False
            if bad:
                prog = cand
                improved = True
                break
            if tries >= budget:
                break
    return prog
