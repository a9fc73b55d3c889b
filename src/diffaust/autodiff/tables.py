"""Table reads at a truncated real index: the slope convention (`-diff`).

Faust's table oscillators (os.osc, os.oscsin, os.osccos, os.hs_oscsin...) read
``rdtable(N, wave, int(x))`` with a real phase x.  ``tab[int(x)]`` is piecewise constant
in x, so its exact derivative is 0 almost everywhere and a frequency could never be
learnt.  By convention (docs/SEMANTICS.md, "Table reads at a truncated real index")
the read gets the table's forward slope:

    d/dp tab[G(int(x))] := (tab[G(int(x) + 1)] − tab[G(int(x))]) · ẋ

where G is the integer expression around ``int(x)`` in the index (`neighbour_index`):
the neighbour's index goes through the same offsets, wraps and clamps as the index, and
the read itself clamps to [0, N−1] like every rdtable read (diffaust and Faust's default
``-ct 1``: ``tab[max(0, min(i, N−1))]``).  When x = c·frac(y) for an integer constant
c (os.osc's phase: ``int(65536·decimal(φ))`` is ``floor(65536·φ) mod 65536``) the
integer index wraps modulo c, so the neighbour's does too: ``(int(x) + 1) % c``.

The convention applies only where the table read is the program's *only* use of x's
truncation: when the program also takes x's fractional part (``floor(x)``,
``x − int(x)``...: os.osci, ba.tabulate(...).lin/.cub, it.frdtable), it interpolates
the table itself and its exact derivative is already the slope; adding the convention's
would count it twice (`fractional_parts`).
"""

from __future__ import annotations

from ..signals import build as B
from ..signals.nodes import Sig

# integer operations looked through between the read and int(x): the other operand does not
# depend on the parameter, so tab[G(k)] is a function of k = int(x) alone
_THROUGH = ("+", "-", "%", "min", "max")


def fractional_parts(order) -> frozenset:
    """The real signals x whose fractional part the program computes: ``floor(x)``,
    ``x − int(x)``, ``x − float(int(x))``, ``fmod(x, 1)``, ``x % 1``.  A table read at
    ``int(x)`` of such an x belongs to an interpolation: no slope convention there."""
    out = set()
    for n in order:
        if n.op != "prim":
            continue
        name = n.attr
        if name == "floor":
            out.add(n.args[0])
        elif name == "-":
            a, b = n.args
            if _truncation_of(b) is a:
                out.add(a)  # x − int(x)
        elif name in ("%", "fmod"):
            a, b = n.args
            if b.op == "const" and b.attr[1] == 1:
                out.add(a)  # x mod 1
    return frozenset(out)


def _truncation_of(s: Sig):
    """x when s is int(x) or float(int(x)), else None."""
    if s.op == "prim" and s.attr == "float":
        s = s.args[0]
    if s.op == "prim" and s.attr == "int":
        return s.args[0]
    return None


def neighbour_index(idx: Sig, depends, groups: dict):
    """(x, idx_next) when the read index `idx` is G(int(x)) for a real x depending on the
    parameter, through `_THROUGH` operations whose other operand does not depend on it;
    idx_next = G(int(x) + 1), wrapped modulo c when x = c·frac(y).  A real-valued index
    (the read truncates it) is int(idx).  None otherwise: the index is genuinely integer
    (a counter, a comparison, bits...), its derivative stays 0."""
    path = []  # (op, position of the dependent operand, the other operand), outermost first
    s = idx
    while True:
        if B.nature(s) == "real":
            x, k = s, B.prim("int", s)
            break
        if s.op != "prim":
            return None
        if s.attr == "int":
            x, k = s.args[0], s
            if B.nature(x) != "real":
                return None
            break
        if s.attr not in _THROUGH:
            return None
        a, b = s.args
        da, db = depends(a), depends(b)
        if da and not db:
            path.append((s.attr, 0, b))
            s = a
        elif db and not da and s.attr != "%":
            path.append((s.attr, 1, a))
            s = b
        else:
            return None
    # the next integer: int(x) + 1, or (int(x) + 1) % c where the index wraps at c
    nxt = B.add(k, B.const(1, "int"))
    c = wrap_period(x, groups)
    if c is not None:
        nxt = B.prim("%", nxt, B.const(c, "int"))
    for name, pos, other in reversed(path):
        nxt = B.prim(name, nxt, other) if pos == 0 else B.prim(name, other, nxt)
    return x, nxt


def wrap_period(x: Sig, groups: dict):
    """c when x = c·frac(y) (either order) for a positive integer constant c, else None:
    then int(x) = floor(c·y) mod c, a wrapping integer index."""
    if not (x.op == "prim" and x.attr == "*"):
        return None
    for c, y in ((x.args[0], x.args[1]), (x.args[1], x.args[0])):
        if c.op != "const":
            continue
        v = c.attr[1]
        if v > 0 and float(v).is_integer() and is_frac(y, groups):
            return int(v)
    return None


def is_frac(y: Sig, groups: dict) -> bool:
    """y = s − floor(s) as a sum: a signal, or an output of a recursion whose body is one
    (the phasors of oscillators.lib, after normalization ``a + (y' − floor(a + y'))``)."""
    if y.op == "proj":
        g = y.args[0]
        if g.op == "recvar":
            g = groups.get(g.attr)
        if g is None or g.op != "rec":
            return False
        y = g.args[y.attr]
    terms = _sum_terms(y)
    if terms is None:
        return False
    for f, m in terms.items():
        if m == -1 and f.op == "prim" and f.attr == "floor":
            # y + floor(s) must be exactly s, term for term
            rest = {t: n for t, n in terms.items() if t is not f}
            if rest == _sum_terms(f.args[0]):
                return True
    return False


def _sum_terms(e: Sig, limit: int = 256):
    """e as Σ m·t over + and −: {t: m} (multiplicities, 0 dropped); None past `limit`
    nodes (a sum that large is no phasor, and a shared DAG must not expand as a tree)."""
    out: dict = {}
    stack = [(e, 1)]
    seen = 0
    while stack:
        n, sign = stack.pop()
        seen += 1
        if seen > limit:
            return None
        if n.op == "prim" and n.attr in ("+", "-"):
            a, b = n.args
            stack.append((a, sign))
            stack.append((b, sign if n.attr == "+" else -sign))
        elif n.op == "const" and n.attr[1] == 0:
            continue
        else:
            out[n] = out.get(n, 0) + sign
    return {t: m for t, m in out.items() if m != 0}
