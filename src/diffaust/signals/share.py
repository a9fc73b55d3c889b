"""share_recursions: recursion groups equal up to the names of their variables become one.

Signals are hash-consed, so equal expressions are one node — except recursions: each
`~` gets a fresh variable name (R9, R10…), so two copies of `si.smoo` applied to the
same slider are two groups, computed twice, and everything built on them (a Lagrange
interpolator's coefficients, say) twice as well.  Faust shares them (its recursions are
de Bruijn terms, equal when their bodies are).  This pass compares each group's bodies
with its own variable — and the variables of the groups nested in it — replaced by
positional placeholders, children first, and keeps the first of each class:

    rec(R10, (c + k·R10'))  ≡  rec(R9, (c + k·R9'))   →   every proj(i, R10-group) reads R9's.

Signals in, signals out; the result computes exactly what the input computed.
"""

from __future__ import annotations

from .nodes import Sig, free_recvars, mk, walk


def share_recursions(roots) -> list:
    """`roots` with alpha-equivalent recursion groups merged (see the module docstring)."""
    roots = list(roots)
    free: dict = {}
    new: dict = {}
    classes: dict = {}  # signature -> the group kept
    for n in walk(roots):
        if not n.args:
            new[n] = n
            continue
        args = tuple(new[a] for a in n.args)
        r = n if args == n.args else mk(n.op, n.attr, args)
        if r.op == "rec":
            key = _signature(r, free)
            kept = classes.get(key)
            if kept is None:
                classes[key] = r
            else:
                r = kept
        new[n] = r
    return [new[r] for r in roots]


def _signature(group: Sig, free: dict) -> tuple:
    """The group's bodies with its variable (and those of groups nested in it that refer to
    it) renamed by nesting depth: equal signatures, equal groups."""
    memo: dict = {}
    bodies = tuple(_renamed(b, {group.attr: "$0"}, free, memo) for b in group.args)
    return (len(bodies), bodies)


def _renamed(root: Sig, names: dict, free: dict, memo: dict) -> Sig:
    """root with the variables of `names` renamed where they occur free (iterative: bodies
    can be long chains)."""

    def key(s, nm):
        fv = free_recvars(s, free)
        if not fv or fv.isdisjoint(nm):
            return None
        return (s, tuple(sorted((v, nm[v]) for v in fv if v in nm)))

    def result(s, nm):
        k = key(s, nm)
        return s if k is None else memo[k]

    stack = [(root, names, False)]
    while stack:
        s, nm, ready = stack.pop()
        k = key(s, nm)
        if k is None or k in memo:
            continue
        inner = {**nm, s.attr: f"${len(nm)}"} if s.op == "rec" else nm
        if not ready:
            stack.append((s, nm, True))
            stack.extend((a, inner, False) for a in s.args)
            continue
        if s.op == "recvar":
            memo[k] = mk("recvar", nm[s.attr], ())
        else:
            memo[k] = mk(s.op, inner[s.attr] if s.op == "rec" else s.attr,
                         tuple(result(a, inner) for a in s.args))
    return result(root, names)
