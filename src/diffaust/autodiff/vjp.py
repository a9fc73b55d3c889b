"""Reverse mode: signals → the adjoint program, a signal program that runs backward in time.

The rules live in the signal-op registry (signals/ops.py, `transpose`); this module is
the pass that applies them in reverse topological order, and the recursion and tape
machinery they share.

The program's outputs y are linear in nothing, but their tangents are: ẏ = J·v where J
is a causal, time-varying linear system built from the primal signals.  Reverse mode
computes Jᵀ·ȳ.  Written in reversed time m = N−1−n, the transpose of a causal system
is causal again, so the adjoint is an ordinary signal program of this IR, compiled by
the same passes (typing, scheduling, LLVM) as any other:

  node u (cotangent ū)             contribution to its arguments (reversed time)
  prim f(a, ...)                   ā_i += (∂f/∂a_i)·ū, the partial taken from f's jvp rule
                                   with a unit tangent on argument i (primitives/table.py:
                                   one rule gives both modes)
  ffunction f(a, ...)              the same, from primitives/foreign.py
  x@d, d constant                  x̄ += ū@d      (the adjoint of a delay is an advance:
                                   a delay again in reversed time)
  x@d, d a signal                  x̄ += scatter(ū, d): ū[m] lands d[m] samples later
                                   (x[n−d[n]] read ⇒ x̄[n−d[n]] += ū[n]); d itself gets
                                   nothing (Faust truncates it: piecewise constant)
  prefix(i, x)                     x̄ += ū@1, ī += δ·ū (δ = 1 − 1@1: 1 at the first sample)
  rdtable(gen, G(int(x)))          x̄ += (tab[G(int(x)+1)] − tab[G(int(x))])·ū (the slope
                                   convention of autodiff/tables.py, as forward mode)
  bargraph(x)                      x̄ += ū
  rwtable(gen, w, v, r)            backward, ū is added to the cell read (r), and v̄ is what the
                                   written cell (w) holds then, the cell emptied (`rwtable_bar`);
                                   content from init depending on a parameter: DerivativeError
  control(x, c) / enable           (x's statements run under c, the value held while c is 0)
                                   when x's statements under c hold no state: rewritten first
                                   as the hold recursion y = c ? x : y@1 (the same values),
                                   transposed as any recursion; when they do (a recursion, a
                                   delay, a table, a waveform frozen while c is 0) and a
                                   cotangent flows through x: DerivativeError (`_hold_controls`)

Recursion.  A group g (bodies b_j, outputs y_j) reads its outputs through
r = proj(j, recvar g) under delays d ≥ 1.  Its adjoint is a group ḡ of reversed time
whose outputs are z_j[m] = r̄_j[m+1], the cotangent that the feedback reads of y_j
receive, one sample early: each read r@d contributes ū@(d−1) (a scatter with d−1 for a
variable amount).  Then ȳ_j = ext_j + z_j@1, where ext_j is what the uses of y_j outside
the group contribute: ȳ_j is what the bodies' cotangents are built from, and the
feedback z@1 is under a delay, as a recursion must be.  What the group's nodes
contribute to nodes outside it (inputs, parameters, the primal signals feeding it) is
exported as further outputs of ḡ, so that nothing inside is computed twice.  Groups
nested in groups (an allpass inside a reverb's feedback loop) nest the same way.

Primal values.  A partial such as cos(x) or 1 − tanh² is a primal signal.  When it
varies per sample it is read from a tape: the *tape program* (the primal outputs
followed by every such partial) runs forward, its tape channels are reversed in time
and become inputs of the adjoint program.  Partials that depend only on widgets and
constants are computed in the adjoint program itself, once per block.

The adjoint program's inputs: ȳ for each primal output, then the tape channels.  Its
outputs: x̄ for each input of the program, then p̄ for each variable, all in reversed
time.  A variable's gradient is the sum of its stream over time; its stream is the
gradient with respect to a per-sample value of the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DerivativeError
from ..signals import build as B
from ..signals.nodes import Sig, free_recvars, input_, mk, proj, rec, recvar, walk
from ..signals.ops import OPS, rule
from .jvp import dependence, replace_where_free
from .tables import fractional_parts

# ops whose value changes from sample to sample (what depends on them must be taped)
_SAMPLE_OPS = frozenset(("input", "recvar", "rec", "proj", "delay", "prefix", "rwtable", "waveform", "fvar",
                         "scatter", "rwtable_bar", "tape"))
# primitives cheap enough to recompute in the adjoint program rather than tape their value
_CHEAP = frozenset(("+", "-", "*", "/", "select2", "select3", "min", "max", "abs", "float", "int",
                    "<", "<=", ">", ">=", "==", "!=", "%"))


@dataclass
class Adjoint:
    """The result of `vjp_program`.

    tape:     primal signals (may read recursions of the primal program by name) whose
              values the adjoint program reads, in order: tape channel k is input
              n_cotangents + k of `outputs`' program, read up to `max_back` samples back
              (the caller gives that much history before each buffer)
    outputs:  the adjoint program's outputs: x̄ per program input, then p̄ per variable
    n_cotangents: number of ȳ inputs (the primal outputs)
    """

    tape: list
    outputs: list
    n_cotangents: int
    n_inputs: int
    variables: list
    max_back: int = 0
    # the primal outputs as transposed (control(x, c) as a hold recursion, `_hold_controls`):
    # what the tape program computes beside the tape
    primal: list = None

    @property
    def inputs(self) -> int:
        return self.n_cotangents + len(self.tape)


def vjp_program(outputs, variables, n_inputs: int, nondiff=frozenset(), warnings: list | None = None) -> Adjoint:
    """The adjoint program of `outputs` with respect to `variables` (control signals) and
    the program's `n_inputs` inputs (see the module's docstring)."""
    with B.paused_gc():
        primal = _hold_controls(list(outputs), variables, n_inputs)
        adj = _Transposer(primal, variables, n_inputs, nondiff, warnings).run()
        adj.primal = primal
        return adj


# what holds state from one sample to the next (frozen while a control's condition is 0)
_STATEFUL = frozenset(("rec", "proj", "recvar", "delay", "prefix", "rwtable", "waveform"))


def _hold_controls(outputs: list, variables, n_inputs: int) -> list:
    """`outputs` with each control(x, c) that a cotangent flows through (x depends on a
    variable or an input) rewritten as the hold recursion y = c != 0 ? x : y@1
    (signals/propagate.py: hold), the same values when nothing x computes under c keeps
    state; otherwise DerivativeError: frozen state under a condition has no adjoint here."""
    from ..codegen.schedule import TRUE, conditions, is_control
    from ..signals.propagate import hold
    from .jvp import remake

    cond = conditions(outputs)
    if not cond:
        return outputs
    order = walk(outputs)
    active = dependence(order, list(variables) + [input_(i) for i in range(n_inputs)])
    names = {n.attr for n in order if n.op == "rec"}
    memo: dict = {}
    k = 0
    for n in order:
        new_args = tuple(memo.get(a, a) for a in n.args)
        m = n if all(a is b for a, b in zip(new_args, n.args)) else remake(n, new_args)
        if is_control(n) and active.get(n.args[0]):
            for u in walk(list(n.args)):
                if u.op in _STATEFUL and cond.get(u, TRUE) != TRUE:
                    raise DerivativeError(
                        "reverse mode: control/enable of a computation that keeps state (a recursion, "
                        "a delay, a table or a waveform: Faust freezes it while the condition is 0) "
                        "is not supported; use forward mode (--ad forward, render_jvp)")
            while f"H{k}" in names:
                k += 1
            names.add(f"H{k}")
            m = hold(new_args[0], new_args[1], f"H{k}")
        if m is not n:
            memo[n] = m
    return [memo.get(o, o) for o in outputs]


def _sum(terms) -> Sig:
    """Σ terms, as a balanced tree of additions (no long chains to schedule)."""
    terms = [t for t in terms if not B.is_zero(t)]
    if not terms:
        return B.const(0.0)
    while len(terms) > 1:
        terms = [B.add(terms[i], terms[i + 1]) if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class _Transposer:
    def __init__(self, outputs, variables, n_inputs, nondiff, warnings):
        self.outputs = list(outputs)
        self.variables = list(variables)
        self.n_inputs = n_inputs
        self.nondiff = frozenset(nondiff)
        self.warnings = warnings
        self.order = walk(self.outputs)
        self.groups = {n.attr: n for n in self.order if n.op == "rec"}
        leaves = self.variables + [input_(i) for i in range(n_inputs)]
        masks = dependence(self.order, leaves)
        self.active = {n for n, m in masks.items() if m}
        self.free: dict = {}
        self.fractional = fractional_parts(self.order)
        from ..signals.types import infer_types

        self.intervals = infer_types(self.outputs).interval
        # the innermost group of every node (None: outside every recursion)
        depth: dict = {}

        def group_depth(name):
            if name not in depth:
                outer = free_recvars(self.groups[name], self.free)
                depth[name] = 1 + max((group_depth(v) for v in outer), default=0)
            return depth[name]

        self.owner: dict = {}
        self.scope: dict = {}
        for n in self.order:
            fv = free_recvars(n, self.free)
            own = max(fv, key=lambda v: (group_depth(v), v)) if fv else None
            self.owner[n] = own
            if own is not None:
                self.scope.setdefault(own, []).append(n)
        self.acc: dict = {}        # node -> list of cotangent terms (signals of the adjoint program)
        self.touched: list = []    # one set per open group: nodes given terms while it was open
        self.feedback: dict = {}   # open group name -> [terms of z_j] per output
        self.tape: list = []
        self.tape_index: dict = {}
        self.value_memo: dict = {}
        self.max_back = 0
        self.sample_memo: dict = {}
        self.n_cot = len(self.outputs)

    # -- bookkeeping
    def add(self, target: Sig, term: Sig):
        if B.is_zero(term) or target not in self.active:
            return
        self.acc.setdefault(target, []).append(term)
        for t in self.touched:
            t.add(target)

    def take(self, node: Sig) -> Sig:
        return _sum(self.acc.pop(node, ()))

    def is_sample(self, s: Sig) -> bool:
        memo = self.sample_memo
        r = memo.get(s)
        if r is not None:
            return r
        for n in walk([s], stop=memo):
            if n not in memo:
                memo[n] = n.op in _SAMPLE_OPS or any(memo[a] for a in n.args)
        return memo[s]

    def coef(self, c: Sig) -> Sig:
        """A primal value as the adjoint program reads it: itself when it is constant within
        a block (widgets, constants); else rebuilt there from tape channels (`primal_value`)."""
        while c.op == "prim" and c.attr == "*" and any(B.is_one(a) for a in c.args):
            c = c.args[1] if B.is_one(c.args[0]) else c.args[0]  # 1·x: x (the product with ū is real)
        if c.op == "const" or not self.is_sample(c):
            return c
        return self.primal_value(c)

    # -- the tape
    # A per-sample primal value is read from a tape channel, one per distinct signal: x, x@1
    # and x@2 are one channel read 0, 1 and 2 samples back (`tape` nodes: Input(k, back)).
    # A value made by cheap arithmetic (_CHEAP) of per-block values and one taped signal
    # (a partial such as −a/b² with b a widget's function) is recomputed in the adjoint
    # program from that one channel instead of being taped itself.

    def primal_value(self, c: Sig) -> Sig:
        r = self.value_memo.get(c)
        if r is None:
            bases = self.bases(c)
            if len(bases) <= 1 or all(b in self.tape_index for b in bases):
                r = self.rebuild(c)
            else:
                r = self.tape_read(*self.split(c))
            self.value_memo[c] = r
        return r

    def split(self, c: Sig):
        """(the signal a tape channel holds, samples back) for c = x@d1@d2..."""
        d = 0
        while c.op == "delay" and c.args[1].op == "const" and c.args[1].attr[0] == "int" and c.args[1].attr[1] >= 0:
            d += c.args[1].attr[1]
            c = c.args[0]
        if c.op == "proj" and c.args[0].op == "recvar":
            c = proj(c.attr, self.groups[c.args[0].attr])  # the same values, one channel
        return c, d

    def bases(self, c: Sig) -> set:
        """The tape channels `rebuild(c)` would read."""
        out, stack, seen = set(), [c], set()
        while stack:
            n = stack.pop()
            if n in seen or not self.is_sample(n):
                continue
            seen.add(n)
            if n.op == "prim" and n.attr in _CHEAP:
                stack.extend(n.args)
            else:
                out.add(self.split(n)[0])
        return out

    def rebuild(self, c: Sig) -> Sig:
        if not self.is_sample(c):
            return c
        if c.op == "prim" and c.attr in _CHEAP:
            return B.prim(c.attr, *[self.rebuild(a) for a in c.args])
        return self.tape_read(*self.split(c))

    def tape_read(self, x: Sig, back: int) -> Sig:
        """Tape channel of x, read `back` samples back (an int signal: int() of the channel)."""
        k = self.tape_index.get(x)
        if k is None:
            k = self.tape_index[x] = len(self.tape)
            self.tape.append(x)
        self.max_back = max(self.max_back, back)
        r = mk("tape", (self.n_cot + k, back)) if back else input_(self.n_cot + k)
        return B.prim("int", r) if B.nature(x) == "int" else r

    def amount(self, d: Sig, less: int) -> Sig:
        """A variable delay amount minus `less`, as the adjoint program reads it, clamped to the
        range the primal program's typing gives it (so that the scatter line gets its size:
        a tape channel carries no range)."""
        lo, hi = self.intervals[d]
        c = self.coef(B.sub(d, B.const(less)) if less else d)
        if self.is_sample(c):
            c = B.prim("max", B.prim("min", c, B.const(float(hi - less))), B.const(float(lo - less)))
        return c

    # -- the pass
    def run(self) -> Adjoint:
        for o, y in enumerate(self.outputs):
            if B.nature(y) != "int":
                self.add(y, input_(o))
        for u in reversed(self.order):
            if self.owner[u] is None:
                self.transpose(u)
        outs = [self.take(input_(i)) for i in range(self.n_inputs)]
        outs += [self.take(v) for v in self.variables]
        return Adjoint(self.tape, outs, self.n_cot, self.n_inputs, self.variables, self.max_back)

    def transpose(self, u: Sig):
        """u's contributions to its arguments' cotangents: the `transpose` rule of its op
        (signals/ops.py), once u's own cotangent is complete (reverse topological order)."""
        op = u.op
        entry = OPS.get(op)
        if entry is not None and entry.leaf:
            return  # inputs and variables: collected by run(); the rest has no argument
        if op == "rec":
            if u in self.active:
                rule(op, "transpose")(self, u, None)
            return
        if op == "proj":
            rule(op, "transpose")(self, u, None)  # read by its group
            return
        if u not in self.active:
            return
        u_bar = self.take(u)
        if B.is_zero(u_bar) or B.nature(u) == "int":
            return
        rule(op, "transpose")(self, u, u_bar)

    def transpose_pointwise(self, u, u_bar, jvp):
        """ā_i += (∂u/∂a_i)·ū, with ∂u/∂a_i = jvp(unit tangent on a_i): the rules are linear
        in the tangents, so this is exact."""
        args = u.args
        zero = B.const(0.0)
        for i, a in enumerate(args):
            if a not in self.active or B.nature(a) == "int":
                continue  # forward mode gives an int signal (or a constant one) tangent 0
            dots = [zero] * len(args)
            dots[i] = B.const(1.0)
            partial = jvp(dots)
            if B.is_zero(partial):
                continue
            self.add(a, B.mul(self.coef(partial), u_bar))

    def feedback_read(self, x: Sig, d: Sig, u_bar: Sig):
        """u = x@d with x = proj(j, recvar g), a feedback read of group g: its cotangent goes to
        the adjoint group's output z_j, one sample early (ū@(d−1), or a scatter by d−1)."""
        name, j = x.args[0].attr, x.attr
        z = self.feedback.get(name)
        if z is None:
            raise AssertionError(f"internal error: feedback read of group {name} outside it")
        if d.op == "const":
            if d.attr[1] < 1:
                raise DerivativeError("reverse mode: a recursion reads its own current value")
            z[j].append(B.delay(u_bar, B.const(int(d.attr[1]) - 1)))
        else:
            z[j].append(mk("scatter", None, (u_bar, self.amount(d, 1))))

    # -- recursion
    def transpose_group(self, g: Sig):
        name = g.attr
        bname = f"{name}_bar"
        k = len(g.args)
        ext = [self.take(proj(j, g)) for j in range(k)]
        touched: set = set()
        self.touched.append(touched)
        self.feedback[name] = [[] for _ in range(k)]
        ref = recvar(bname)
        for j, body in enumerate(g.args):
            if body in self.active and B.nature(body) != "int":
                # ȳ_j = ext_j + z_j@1
                self.add(body, B.add(ext[j], B.delay(proj(j, ref), B.const(1))))
        for u in reversed(self.scope.get(name, ())):
            self.transpose(u)
        self.touched.pop()
        z = [_sum(t) for t in self.feedback.pop(name)]
        # what the group's nodes gave nodes outside it, to be exported as outputs of the adjoint group
        exports = []
        for t in touched:
            terms = self.acc.get(t)
            if not terms:
                continue
            inside = [e for e in terms if bname in free_recvars(e, self.free)]
            if inside:
                exports.append((t, [e for e in terms if bname not in free_recvars(e, self.free)], _sum(inside)))
        exports.sort(key=lambda e: self.order_index(e[0]))
        bodies = z + [e[2] for e in exports]
        bodies = self.drop_zero_feedback(bname, bodies, k)
        if any(bname in free_recvars(b, self.free) for b in bodies):
            gb = rec(bname, tuple(bodies))
            values = [proj(k + i, gb) for i in range(len(exports))]
        else:
            values = bodies[k:]
        for (t, outside, _), v in zip(exports, values):
            self.acc[t] = outside + [v]
            for tt in self.touched:
                tt.add(t)

    def order_index(self, n):
        if not hasattr(self, "_index"):
            self._index = {m: i for i, m in enumerate(self.order)}
        return self._index[n]

    def drop_zero_feedback(self, bname: str, bodies: list, k: int) -> list:
        """Outputs z_j that are 0 read as 0: rebuild the bodies until no new zero appears."""
        while True:
            zero = {j for j in range(k) if B.is_zero(bodies[j])}
            if not zero:
                return bodies
            ref = recvar(bname)
            targets = {proj(j, ref): B.const(0.0) for j in zero}
            new = replace_where_free(bodies, bname, targets, self.free)
            if all(a is b for a, b in zip(new, bodies)):
                return bodies
            bodies = new
