"""Signal types: nature (int/real), rate (const/control/sample) and interval.

`infer_types(roots)` is the typing pass: it returns a `Types` table for every
node reachable from `roots`.  Natures follow Faust (FAUST-SEMANTICS.md):
`/` is real, comparisons are int, `+ - * %` are int on ints...  A recursive
group's natures are a fixpoint starting from int: a projection becomes real
as soon as its body is real.

Rates: 'const' (known at init: literals, fSamplingFreq and what depends only
on them), 'control' (also depends on widgets: computed once per block),
'sample' (computed every sample).

Intervals (lo, hi) are conservative bounds used to size delay lines.

Each kind of node's nature, rate and interval rules are its entry in signals/ops.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..primitives.table import INF  # noqa: F401  (re-exported: the unbounded interval's ends)
from .nodes import Sig, free_recvars, walk


def local_nature(s: Sig, nature_of):
    """Nature of `s` from its children's natures (None = unknown: inside a recursion being built):
    the `nature` rule of its op (signals/ops.py)."""
    from .ops import rule

    return rule(s.op, "nature")(s, nature_of)


# group natures depend only on the group and on the natures of its free recursion
# variables: memoised on (group, those natures).  Signals are immutable and hash-consed,
# so entries never go stale; without this, nested groups are re-typed at every fixpoint
# step of every enclosing group (exponential in the nesting depth).
_GROUP_NATURES: dict = {}
_FREE: dict = {}


def group_natures(group: Sig, outer: dict | None = None) -> tuple:
    """Natures of the outputs of rec `group`: fixpoint from all-int."""
    free = free_recvars(group, _FREE)
    key = (group, tuple(sorted((v, (outer or {}).get(v)) for v in free)))
    hit = _GROUP_NATURES.get(key)
    if hit is None:
        hit = _GROUP_NATURES[key] = _group_fixpoint(group, outer)
    return hit


def _group_fixpoint(group: Sig, outer: dict | None) -> tuple:
    var = group.attr
    env = dict(outer or {})
    assumed = ["int"] * len(group.args)
    for _ in range(len(group.args) + 2):
        env[var] = tuple(assumed)
        memo: dict = {}
        new = [_nature_in(b, env, memo) for b in group.args]
        new = ["real" if (a == "real" or n == "real") else "int" for a, n in zip(assumed, new)]
        if new == assumed:
            break
        assumed = new
    return tuple(assumed)


class _Either:
    """Membership in either of two dicts (a walk's stop set)."""

    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __contains__(self, key):
        return key in self.a or key in self.b


# Natures of nodes with no free recursion variable do not depend on the environment.
_CLOSED: dict = {}


def _nature_in(s: Sig, env: dict, memo: dict):
    r = memo.get(s) or _CLOSED.get(s)
    if r is not None:
        return r

    def get(a):
        return memo.get(a) or _CLOSED[a]

    for n in walk([s], stop=_Either(memo, _CLOSED)):
        if n.op == "proj" and n.args[0].op == "recvar":
            v = n.args[0].attr
            r = env[v][n.attr] if v in env else "real"
        elif n.op == "proj" and n.args[0].op == "rec":
            g = n.args[0]
            key = ("group", g)
            if key not in memo:
                memo[key] = env[g.attr] if g.attr in env else group_natures(g, env)
            r = memo[key][n.attr]
        elif n.op in ("recvar", "rec"):
            r = "int"
        else:
            r = local_nature(n, get)
        if free_recvars(n, _FREE):
            memo[n] = r
        else:
            _CLOSED[n] = r
    return get(s)


@dataclass
class Types:
    """Types of the signals reachable from the program's outputs."""

    nature: dict = field(default_factory=dict)
    rate: dict = field(default_factory=dict)
    interval: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)  # var -> rec node
    group_natures: dict = field(default_factory=dict)  # var -> natures of the group's outputs

    def is_int(self, s: Sig) -> bool:
        return self.nature[s] == "int"


def infer_natures(roots, order=None, env=None) -> dict:
    """Nature ('int' | 'real') of every node reachable from `roots` (recursions: fixpoint).

    env: if given, filled with {recursion variable: natures of its group's outputs}."""
    order = walk(roots) if order is None else order
    memo: dict = {}
    env = {} if env is None else env
    for n in reversed(order):  # enclosing groups before the groups nested in them
        if n.op == "rec":
            env[n.attr] = group_natures(n, env)
    return {n: _nature_in(n, env, memo) for n in order}


def infer_types(roots) -> Types:
    """The typing pass over every node reachable from `roots`."""
    from .build import paused_gc

    with paused_gc():
        return _infer_types(roots)


def _infer_types(roots) -> Types:
    t = Types()
    order = walk(roots)
    # recursion groups by name (recvar references resolve to these)
    for n in order:
        if n.op == "rec":
            t.groups[n.attr] = n
    t.nature = infer_natures(roots, order, t.group_natures)
    for n in order:
        t.rate[n] = _rate(n, t)
        t.interval[n] = _interval(n, t)
    return t


def _rate(n: Sig, t: Types) -> str:
    from .ops import rule

    return rule(n.op, "rate")(n, t.rate.__getitem__)


def _interval(n: Sig, t: Types):
    from .ops import rule

    return rule(n.op, "interval")(n, t.interval.__getitem__)
