"""Forward-mode autodiff (`-diff`): signals → tangent signals, one variable at a time.

For a variable p (a `[diff:1]` widget), `Tangents(p).of(s)` is ds/dp, built with
the same signal builders as everything else and memoized per node:

  const, input, fconst, fvar, other widgets   → 0
  the widget p                                  → 1
  prim f(a, b, ...)                             → the primitive table's jvp rule
  x@d                                           → x'@d: Faust truncates the amount, so the
                                                   output is piecewise constant in d (the
                                                   seed's one-sample difference −d'·(x@d − x@(d+1))
                                                   is not the derivative of that program; a
                                                   warning says so when d depends on p)
  prefix(i, x)                                  → prefix(i', x')
  rdtable(n, g, idx)                            → content fixed at init, so only the index counts:
     idx = G(int(x)), x real, through +, −, %, min, max with operands free of p (autodiff/tables.py)
                                                → (rdtable(n, g, G(int(x)+1)) − rdtable(n, g, idx))·ẋ,
                                                   a convention (the exact derivative is 0: the
                                                   read is piecewise constant in x), so that table
                                                   oscillators (os.osc) have frequency derivatives;
                                                   G(k+1) wraps modulo c where x = c·frac(y)
     an index that is genuinely integer (a counter, a comparison), or x whose fractional part
     the program also takes (an interpolating read: os.osci, ba.tabulate.lin)  → 0
  rwtable(n, g, wi, ws, ri)                     → rwtable(n, g', wi, ws', ri) (the read index
                                                   gets no slope: like x@d, see docs/DERIVATIVES.md)
  proj(i, rec v: y = f(p, x, y@1))              → proj(i, rec v̇: ẏ = ∂f/∂p + ∂f/∂y · ẏ@1)
     The tangent group is a recursion of its own: its bodies are the tangents of
     v's bodies, where a reference to v's output j becomes the tangent group's
     output j, and the primal values they need read the closed group v.

A signal that does not depend on p has tangent 0 (so unrelated recursions
produce no code).  A primitive without a jvp rule raises DerivativeError.

  ffunction f(a, ...)                           → the rule of primitives/foreign.py for f;
                                                  0 when one of f's C names is declared
                                                  constant (``nondiff``, ``--nondiff NAME``);
                                                  no rule and not declared: DerivativeError
"""

from __future__ import annotations

from ..signals import build as B
from ..signals.nodes import Sig, free_recvars, mk, proj, rec, recvar, walk
from ..signals.ops import OPS, rule
from .tables import fractional_parts, neighbour_index


def diff_variables(outputs) -> list[Sig]:
    """The `[diff:1]` widgets reachable from `outputs`, in UI order (sorted by path)."""
    found = {n for n in walk(outputs) if n.op == "control" and n.attr.is_diff}
    return sorted(found, key=lambda n: n.attr.path.split("/"))


class Tangents:
    """Tangents of signals with respect to one variable (a control signal).

    `order`: every node reachable from the program's outputs, children first (`walk`);
    `groups`: its recursion groups by name.  Tangents are asked only of these nodes."""

    def __init__(self, var: Sig, tag: str, order: list, groups: dict, trace: list | None = None,
                 nondiff=frozenset(), warnings: list | None = None, masks: dict | None = None,
                 bit: int | None = None, free: dict | None = None, fractional: frozenset | None = None):
        self.var = var
        self.tag = tag  # suffix of tangent recursion names, e.g. "d0"
        self.memo: dict = {}
        self.trace = trace
        self.nondiff = frozenset(nondiff)  # ffunction C names declared constant (tangent 0)
        self.warnings = warnings  # messages for the user (a delay amount that depends on p)
        self.groups = groups
        # dependence of every node on every variable, computed once per program (`dependence`)
        # and shared by the variables' Tangents: bit `bit` of masks[node] is "depends on var"
        if masks is None:
            masks, bit = dependence(order, [var]), 0
        self.masks = masks
        self.bit = 1 << bit
        self.free = free if free is not None else {}  # free_recvars memo, shared too
        # real signals whose fractional part the program takes (interpolated table reads)
        self.fractional = fractional if fractional is not None else fractional_parts(order)

    def depends(self, s: Sig) -> bool:
        """s depends on the variable, through any feedback path (see `dependence`)."""
        r = self.masks.get(s)
        if r is None:
            raise AssertionError(f"internal error: {s.op} node outside the analysed program")
        return bool(r & self.bit)

    def of(self, s: Sig) -> Sig:
        r = self.memo.get(s)
        if r is not None:
            return r
        # children first, iteratively, so deep graphs do not exhaust the stack; what already
        # has a tangent is not walked again (each node is visited once per variable)
        memo = self.memo
        for n in walk([s], stop=memo):
            if n not in memo:
                memo[n] = self._rule(n)
        return memo[s]

    def _rule(self, s: Sig) -> Sig:
        op = s.op
        if op == "recvar":
            return s  # never used directly: projections handle group references
        if op == "rec":
            return s
        if op == "proj":
            return self._proj(s)
        if not self.depends(s):
            return B.const(0.0)
        jvp = rule(op, "jvp")  # signals/ops.py
        if OPS[op].leaf:
            return jvp(self, s, ())
        if B.nature(s) == "int":
            return B.const(0.0)  # int signals are piecewise constant
        dots = [self.memo[a] if a in self.memo else self.of(a) for a in s.args]
        d = jvp(self, s, dots)
        if self.trace is not None:
            from ..signals.printer import format_sig

            self.trace.append(f"    {format_sig(s, 70)}\n        DERIVATIVE: {format_sig(d, 70)}")
        return d

    def _table_slope(self, s: Sig) -> Sig:
        """The slope convention for tab[int(x)] (autodiff/tables.py); 0 where it does not apply."""
        gen, idx = s.args
        if gen.op == "const" or not self.depends(idx):
            return B.const(0.0)  # constant content, or an index free of p (content is fixed at init)
        r = neighbour_index(idx, self.depends, self.groups)
        if r is None:
            return B.const(0.0)  # a genuinely integer index: piecewise constant, derivative 0
        x, idx_next = r
        if x in self.fractional:
            return B.const(0.0)  # the program interpolates with x's fraction: that carries the slope
        x_dot = self.of(x)
        if B.is_zero(x_dot):
            return B.const(0.0)
        # d tab[G(int(x))] = (tab[G(int(x)+1)] − tab[G(int(x))])·ẋ  (a convention: exactly, 0)
        if self.trace is not None:
            self.trace.append("    table read at a truncated real index: the table's slope times the "
                              "index's derivative (a convention)")
        return B.mul(B.sub(mk("rdtable", s.attr, (gen, idx_next)), s), x_dot)

    def _proj(self, s: Sig) -> Sig:
        i = s.attr
        g = s.args[0]
        if g.op == "recvar":
            # inside the group's bodies: the tangent group's own output (0 when the group
            # does not depend on p, then no tangent group exists)
            if not self.depends(self.groups[g.attr]):
                return B.const(0.0)
            return proj(i, recvar(f"{g.attr}_{self.tag}"))
        if not self.depends(g):
            return B.const(0.0)
        key = ("group", g)
        tg = self.memo.get(key)
        if tg is None:
            tg = self._tangent_group(g)
            self.memo[key] = tg
        if tg is None:
            return B.const(0.0)
        return proj(i, tg)

    def _tangent_group(self, g: Sig):
        var = g.attr
        dvar = f"{var}_{self.tag}"
        bodies_dot = [self.of(b) for b in g.args]
        if all(B.is_zero(b) for b in bodies_dot):
            return None
        # primal references to v inside the tangent bodies read the closed group
        closed = substitute(bodies_dot, var, g, self.free)
        if self.trace is not None:
            self.trace.append(f"    recursion {var}: tangent recursion {dvar}")
        return rec(dvar, tuple(closed))


def dependence(order, variables) -> dict:
    """{node: int mask} for the nodes of `order`: bit k is set when the node depends on
    `variables[k]`.  One pass for all the variables.

    A node depends on p when p is reachable from it, where a reference `recvar(v)` leads
    to every group named v (and so to its bodies): the feedback of any recursion, at any
    nesting depth, carries p's influence, and a group that depends on p only through an
    enclosing group's feedback is found too.  This is reachability in a graph with cycles
    (edges node → argument, recvar(v) → each group v): its strongly connected components
    (Tarjan, iterative) come out successors first, and a component's mask is the union of
    its variables' bits and its successors' masks.  Linear in the size of the graph (times
    the width of the masks).  Over-approximating would be safe, under-approximating is the
    bug of docs/DESIGN-NOTES.md ("dependence analysis")."""
    bits = {v: 1 << k for k, v in enumerate(variables)}
    groups: dict = {}  # group name -> every rec node of that name
    for n in order:
        if n.op == "rec":
            groups.setdefault(n.attr, []).append(n)

    def succ(n):
        if n.op == "recvar":
            return groups.get(n.attr, ())
        return n.args

    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    masks: dict = {}
    counter = 0
    for root in order:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ(root)))]
        while work:
            n, it = work[-1]
            pushed = False
            for m in it:
                if m not in index:
                    index[m] = low[m] = counter
                    counter += 1
                    stack.append(m)
                    on_stack.add(m)
                    work.append((m, iter(succ(m))))
                    pushed = True
                    break
                if m in on_stack and index[m] < low[n]:
                    low[n] = index[m]
            if pushed:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                if low[n] < low[parent]:
                    low[parent] = low[n]
            if low[n] == index[n]:
                # n roots a component: pop it; every successor outside it is done already
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m is n:
                        break
                mask = 0
                for m in comp:
                    mask |= bits.get(m, 0)
                    for a in succ(m):
                        mask |= masks.get(a, 0)  # 0 for the component's own members
                for m in comp:
                    masks[m] = mask
    return {n: masks[n] for n in order}


def dependents(order, var: Sig) -> dict:
    """{node: depends on `var`} for the nodes of `order` (one variable of `dependence`)."""
    return {n: bool(m) for n, m in dependence(order, [var]).items()}


def substitute(sigs, var: str, group: Sig, free: dict | None = None) -> list:
    """Replace free `recvar(var)` by the closed `group` in `sigs` (rebuilding through builders).

    Only what has `recvar(var)` free is walked and rebuilt (`free`: a `free_recvars` memo,
    which may be shared between calls): the rest, primal signals upstream of the group
    included, is left as it is."""
    return replace_where_free(sigs, var, {recvar(var): group}, free)


def replace_where_free(sigs, var: str, targets: dict, free: dict | None = None) -> list:
    """`sigs` with the nodes of `targets` replaced by their images, what lies above them
    rebuilt through the builders; only nodes where `recvar(var)` is free are walked (a
    group named `var` binds it, so it is never entered)."""
    if free is None:
        free = {}
    memo: dict = dict(targets)
    out = []
    for s in sigs:
        if var not in free_recvars(s, free):
            out.append(s)
            continue
        stack = [(s, False)]  # children first, iteratively
        while stack:
            n, done = stack.pop()
            if done:
                if n not in memo:
                    new_args = tuple(memo.get(a, a) for a in n.args)
                    memo[n] = n if all(x is y for x, y in zip(new_args, n.args)) else remake(n, new_args)
                continue
            if n in memo:
                continue
            stack.append((n, True))
            for a in reversed(n.args):
                if a not in memo and var in free_recvars(a, free):
                    stack.append((a, False))
        out.append(memo[s])
    return out


def substitute_nodes(roots, mapping: dict) -> list:
    """`roots` with every node of `mapping` replaced by its image, everything above rebuilt
    through the builders (recursion bodies included); what lies above no replaced node is
    left as it is."""
    memo: dict = {}
    for n in walk(roots):
        if n in mapping:
            memo[n] = mapping[n]
            continue
        new_args = tuple(memo.get(a, a) for a in n.args)
        if any(a is not b for a, b in zip(new_args, n.args)):
            memo[n] = remake(n, new_args)
    return [memo.get(r, r) for r in roots]


def remake(n: Sig, args: tuple) -> Sig:
    """A node like `n` with new children, simplified by the builders."""
    if n.op == "prim":
        return B.prim(n.attr, *args)
    if n.op == "delay":
        return B.delay(*args)
    if n.op == "prefix":
        return B.prefix(*args)
    return mk(n.op, n.attr, args)


class DirectionalTangents(Tangents):
    """Tangents along a direction: d/dε s(p + ε·v), where the direction's component v_j for
    variable j is the signal seeds[p_j] (a widget).  One tangent program for every
    variable: the union of their tangents' shapes, each variable's contribution scaled by
    its seed.  Run in SIMD lanes with seed v = e_k in lane k (runtime/jvpdir.py), lane k
    computes d/dp_k — P tangents for the price of one in vector registers.  A contribution
    whose seed is 0 adds an exact 0 (x + 0·a = x) where its partial a is finite; where a is
    infinite or NaN it gives NaN (0·∞), which the runtime detects and answers with the
    per-variable program."""

    def __init__(self, seeds: dict, order: list, groups: dict, masks: dict, nondiff=frozenset(),
                 warnings: list | None = None, free: dict | None = None, fractional: frozenset | None = None):
        variables = list(seeds)
        super().__init__(variables[0], "dv", order, groups, nondiff=nondiff, warnings=warnings, masks=masks,
                         bit=0, free=free, fractional=fractional)
        self.bit = (1 << len(variables)) - 1  # depends on any of the variables
        self.seeds = seeds

    def _rule(self, s: Sig) -> Sig:
        if s.op == "control":
            return self.seeds.get(s, B.const(0.0))  # d p_j = v_j; any other widget: 0
        return super()._rule(s)


def directional_jvp_program(outputs, variables, seeds: list, nondiff=frozenset(), warnings: list | None = None,
                            partners: dict | None = None) -> list:
    """d out_o along the direction (seeds[j] for variables[j]): a list (outputs) of tangents
    (see `DirectionalTangents`); partners as in `jvp_program`."""
    with B.paused_gc():
        order = walk(outputs)
        groups = {n.attr: n for n in order if n.op == "rec"}
        t = DirectionalTangents(dict(zip(variables, seeds)), order, groups, dependence(order, variables),
                                nondiff=nondiff, warnings=warnings, fractional=fractional_parts(order))
        result = [t.of(s) for s in outputs]
        if partners is not None:
            _note_partners(order, t, partners)
        return result


# ops that keep state from one sample to the next and whose tangent is the same op on the
# tangents (a delay line of x' beside the line of x...): the tangent's state must run
# whenever the primal's does (see `jvp_program`'s partners)
STATEFUL_TANGENTS = ("delay", "prefix", "rwtable")


def jvp_program(outputs, variables, trace: list | None = None, nondiff=frozenset(),
                warnings: list | None = None, partners: dict | None = None) -> list:
    """d out_o / d p for each output o, for each variable p: a list (outputs) of lists (variables).

    nondiff: C names of ffunctions whose derivative is taken to be 0 (``--nondiff``).
    partners: filled, if given, with {primal node: [its tangent nodes]} for the nodes of
    STATEFUL_TANGENTS: a tangent's delay line must be written whenever its primal's is, even
    where the primal runs for a use whose derivative is 0 (a comparison) and the tangent is
    read only under a `control` (codegen/schedule.py `conditions`; tangent recursions are
    tied to theirs by name)."""
    with B.paused_gc():
        return _jvp_program(outputs, variables, trace, nondiff, warnings, partners)


def _jvp_program(outputs, variables, trace, nondiff, warnings, partners=None) -> list:
    result = [[None] * len(variables) for _ in outputs]
    order = walk(outputs)
    groups = {n.attr: n for n in order if n.op == "rec"}
    masks = dependence(order, variables)  # once, for every variable
    free: dict = {}  # free_recvars memo shared by every variable's substitutions
    fractional = fractional_parts(order)  # once, for every variable
    for k, v in enumerate(variables):
        if trace is not None:
            trace.append(f">>> Differentiate wrt. {v.attr.path}")
        t = Tangents(v, f"d{k}", order, groups, trace, nondiff, warnings, masks=masks, bit=k, free=free,
                      fractional=fractional)
        for o, s in enumerate(outputs):
            result[o][k] = t.of(s)
        if partners is not None:
            _note_partners(order, t, partners)
        if trace is not None:
            from ..signals.printer import format_sig

            for o, s in enumerate(outputs):
                trace.append(f"  d out{o} / d {v.attr.label} = {format_sig(result[o][k], 200)}")
    return result


def _note_partners(order, t: Tangents, partners: dict) -> None:
    """partners[n] += the tangent of each stateful node n of `order` that `t` made into the
    same op (its state must run whenever n's does: `jvp_program`)."""
    for n in order:
        if n.op in STATEFUL_TANGENTS:
            d = t.memo.get(n)
            if d is not None and d.op == n.op:
                partners.setdefault(n, []).append(d)
