"""normalize_signals: Faust's algebraic normal form of `+ - * /` (signals in, signals out).

Faust simplifies every signal before code generation, and the shape it gives to
sums and products decides the rounding of the generated code: `(y' + c) -
floor(y' + c)` runs as `c + (y' - floor(c + y'))`, `225·SR/44100` as
`0.0051020408·SR`.  Matching the reference compiler sample for sample (float
mode especially, where a phase accumulator integrates every rounding) needs the
same shapes.  The rules (Faust 2.54's simplify/normalize, written here from its
documented behaviour and measured output):

* Every binary node is first folded: numbers compute, `0 - x → -1·x`, neutral
  and absorbing elements (`0 + x`, `1·x`, `x - 0`, `x/1`, `0·x`, `x·0`).
* Otherwise `+ - * /` become an *aterm*: a sum of *mterms* k·∏ fᵢ^qᵢ (a number
  times factors with integer exponents).  Equal products add their
  coefficients, numbers gather in one constant, `x/k` becomes `(1/k)·x`.
* A common divisor of two terms is factored out while one exists
  (`a·x + a·y → a·(x + y)`), the most complex first.
* The tree is rebuilt by *order* (0 numbers, 1 constants such as `SR`,
  2 user-interface values, 3 audio signals): an mterm is
  `((k·(c₁/c₂))·(u₁/u₂))·(s₁/s₂)`, an aterm adds the audio terms first and the
  lower orders around them, `c + (u + (s₁ - s₂))`, positive terms before
  negative ones, the number last.  Terms of one order are added in creation
  order of their trees (Faust's `serial()`).
* `(k·s)@d → k·(s@d)` and `(s/k)@d → (s@d)/k` when k is a number or a constant.

Int and real do not mix: a term of the other nature is one opaque factor (in
Faust it sits under a float cast), so integer arithmetic keeps wrapping where
it did.  The pass keeps each node's nature; where a rule would change it (`i +
0.0 → i`), a cast puts it back.
"""

from __future__ import annotations


from ..errors import FaustEvalError
from . import build as B
from .nodes import Sig, const, mk, walk, wrap_int
from .types import infer_natures, local_nature

ARITH = ("+", "-", "*", "/")


# ---------------------------------------------------------------- numbers
# A number is (nature, value); real arithmetic is done in double, as Faust does.

def _num(s: Sig):
    return s.attr


def _is_zero(n) -> bool:
    return n[1] == 0


def _is_one(n) -> bool:
    return n[1] == 1


def _op_nums(op, a, b):
    if a[0] == "int" and b[0] == "int":
        x, y = a[1], b[1]
        return ("int", wrap_int(x + y if op == "+" else x - y if op == "-" else x * y))
    x, y = float(a[1]), float(b[1])
    return ("real", x + y if op == "+" else x - y if op == "-" else x * y)


def _div_nums(a, b):
    """Faust's divExtendedNums: int/int stays int when exact, else a real quotient."""
    if b[1] == 0:
        raise FaustEvalError("division by 0 in a constant expression")
    if a[0] == "int" and b[0] == "int" and a[1] % b[1] == 0:
        return ("int", wrap_int(a[1] // b[1]))
    return ("real", float(a[1]) / float(b[1]))


def _neg(a):
    return ("int", wrap_int(-a[1])) if a[0] == "int" else ("real", -a[1])


def _real(a):
    return ("real", float(a[1])) if a[0] == "int" else a


def _const(n) -> Sig:
    return const(n[1], n[0])


# ---------------------------------------------------------------- the pass
class Normalizer:
    """Rebuilds a signal graph in normal form.  `nature` holds the natures of the
    input graph (from the typing pass); new nodes get theirs from local rules."""

    def __init__(self, nature: dict):
        self.nat_of = dict(nature)
        self.order_of: dict = {}
        self.new: dict = {}

    # -- natures and orders
    def nature(self, s: Sig) -> str:
        r = self.nat_of.get(s)
        if r is None:
            for n in walk([s], stop=self.nat_of):
                self.nat_of[n] = local_nature(n, self.nat_of.__getitem__)
            r = self.nat_of[s]
        return r

    def order(self, s: Sig) -> int:
        """0 numbers, 1 constants, 2 user-interface values, 3 audio signals."""
        r = self.order_of.get(s)
        if r is not None:
            return r
        for n in walk([s], stop=self.order_of):
            op = n.op
            if op == "const":
                o = 0
            elif op == "fconst":
                o = 1
            elif op in ("control", "fvar"):
                o = 2
            elif op == "bargraph":
                o = max(2, self.order_of[n.args[0]])
            elif op == "prim":
                if n.attr in ("select2", "select3"):
                    o = 3
                else:
                    o = max((self.order_of[a] for a in n.args), default=0)
            elif op == "ffun":
                o = max(1, max((self.order_of[a] for a in n.args), default=3)) if n.args else 3
            else:  # input, delay, prefix, proj, rec, recvar, tables, waveform
                o = 3
            self.order_of[n] = o
        return self.order_of[s]

    # -- graph rebuild
    def run(self, roots) -> list:
        for n in walk(roots):
            args = tuple(self.new[a] for a in n.args)
            r = self.rebuild(n, args)
            want = self.nature(n) if n.op not in ("rec", "recvar") else None
            if want is not None and self.nature(r) != want:
                r = self.cast(r, want)
            self.new[n] = r
        return [self.new[r] for r in roots]

    def rebuild(self, n: Sig, args: tuple) -> Sig:
        if n.op == "prim" and n.attr in ARITH:
            return self.binop(n.attr, args[0], args[1], "real" if n.attr == "/" else self.nature(n))
        if n.op == "delay":
            return self.delay(args[0], args[1])
        if args == n.args:
            return n
        if n.op == "prim":
            return B.prim(n.attr, *args)
        r = mk(n.op, n.attr, args)
        if n.op == "proj":
            self.nat_of.setdefault(r, self.nature(n))
        return r

    def cast(self, s: Sig, nature: str) -> Sig:
        if s.op == "const":
            return const(s.attr[1], nature) if nature == "real" else const(int(s.attr[1]), "int")
        return mk("prim", "float" if nature == "real" else "int", (s,))

    # -- Faust's simplification cascade for one binary node
    def binop(self, op: str, a: Sig, b: Sig, ctx: str) -> Sig:
        if a.op == "const" and b.op == "const":
            return B.prim(op, a, b)
        za, zb = a.op == "const" and _is_zero(a.attr), b.op == "const" and _is_zero(b.attr)
        oa, ob = a.op == "const" and _is_one(a.attr), b.op == "const" and _is_one(b.attr)
        if op == "-" and za:
            return mk("prim", "*", (const(-1), b))
        if (op == "+" and za) or (op == "*" and oa):      # left neutral
            return b
        if op == "*" and za:                               # left absorbing
            return a
        if (op in "+-" and zb) or (op in "*/" and ob):     # right neutral
            return a
        if op == "*" and zb:                               # right absorbing
            return b
        return self.normalize_add(mk("prim", op, (a, b)), ctx)

    # -- the additive normal form
    def normalize_add(self, t: Sig, ctx: str) -> Sig:
        A = ATerm(self, ctx)
        A.add(t, +1)
        D = A.greatest_divisor()
        for _ in range(64):  # each step removes a common divisor; 64 is far beyond real programs
            if _is_zero(D.coef) or D.complexity() == 0:
                break
            A = A.factorize(D)
            D = A.greatest_divisor()
        return A.tree()

    # -- delays: (k·s)@d → k·(s@d), (s/k)@d → (s@d)/k for k of order < 2
    def delay(self, s: Sig, d: Sig) -> Sig:
        if d.op == "const" and d.attr[1] == 0:
            return s
        if s.op == "const" and s.attr[1] == 0:
            return s
        if s.op == "prim" and s.attr == "*":
            x, y = s.args
            if self.order(x) < 2:
                return mk("prim", "*", (x, self.delay(y, d)))
            if self.order(y) < 2:
                return mk("prim", "*", (y, self.delay(x, d)))
        elif s.op == "prim" and s.attr == "/":
            x, y = s.args
            if self.order(y) < 2:
                return mk("prim", "/", (self.delay(x, d), y))
        return B.delay(s, d)


class MTerm:
    """k · ∏ f^q: a number and factors with non-zero integer exponents."""

    __slots__ = ("norm", "ctx", "coef", "factors")

    def __init__(self, norm: Normalizer, ctx: str, coef=("int", 1), factors=None):
        self.norm, self.ctx, self.coef = norm, ctx, coef
        self.factors: dict = dict(factors or {})

    def copy(self) -> "MTerm":
        return MTerm(self.norm, self.ctx, self.coef, self.factors)

    def _number(self, s: Sig):
        n = _num(s)
        return _real(n) if self.ctx == "real" else n

    def mul(self, t: Sig, inverse: bool = False) -> None:
        """self ·= t (or /= t), going down through products and quotients of self's nature."""
        norm = self.norm
        if t.op == "const":
            n = self._number(t)
            self.coef = _div_nums(self.coef, n) if inverse else _op_nums("*", self.coef, n)
            return
        if t.op == "prim" and t.attr in ("*", "/") and norm.nature(t) == self.ctx:
            self.mul(t.args[0], inverse)
            self.mul(t.args[1], inverse != (t.attr == "/"))
            return
        if norm.nature(t) != self.ctx:  # the other nature is one factor, under a cast
            t = norm.cast(t, self.ctx)
        self.factors[t] = self.factors.get(t, 0) + (-1 if inverse else 1)

    def cleanup(self) -> None:
        if _is_zero(self.coef):
            self.factors.clear()
        else:
            self.factors = {f: q for f, q in self.factors.items() if q}

    def complexity(self) -> int:
        c = 0 if _is_one(self.coef) else 1
        return c + sum((1 + self.norm.order(f)) * abs(q) for f, q in self.factors.items())

    def has_divisor(self, d: "MTerm") -> bool:
        for f, v in d.factors.items():
            u = self.factors.get(f)
            if u is None or not (v == 0 or (u * v > 0 and abs(u) >= abs(v))):
                return False
        return True

    def divided(self, d: "MTerm") -> "MTerm":
        r = MTerm(self.norm, self.ctx, _div_nums(self.coef, d.coef), self.factors)
        for f, q in d.factors.items():
            r.factors[f] = r.factors.get(f, 0) - q
        r.cleanup()
        return r

    def tree(self, signature: bool = False, negative: bool = False) -> Sig:
        """((k·(c₁/c₂))·(u₁/u₂))·(s₁/s₂), factors of one order in creation order."""
        if not self.factors or _is_zero(self.coef):
            if signature:
                return const(1)
            return _const(_neg(self.coef) if negative else self.coef)
        if len(self.factors) == 1:
            # one factor f, exponent 1, no number: f itself (what the general case below
            # gives, with the same side effects: f's serial and order are taken)
            (f, q), = self.factors.items()
            if (q == 1 and f.serial is not None and self.norm.order(f) != 0
                    and (signature or (_is_one(_neg(self.coef)) if negative else _is_one(self.coef)))):
                return f
        num = [None] * 4
        den = [None] * 4
        for f in sorted(self.factors, key=lambda s: s.serial):
            q = self.factors[f]
            if q == 0:
                continue
            o = self.norm.order(f)
            p = _power(f, abs(q))
            if q > 0:
                num[o] = p if num[o] is None else mk("prim", "*", (num[o], p))
            else:
                den[o] = p if den[o] is None else mk("prim", "*", (den[o], p))
        k = self.coef
        if signature or (_is_one(_neg(k)) if negative else _is_one(k)):
            num[0] = None
        else:
            num[0] = _const(_neg(k) if negative else k)
        r = None
        for o in range(4):
            if num[o] is not None and den[o] is not None:
                term = mk("prim", "/", (num[o], den[o]))
                r = term if r is None else mk("prim", "*", (r, term))
            elif num[o] is not None:
                r = num[o] if r is None else mk("prim", "*", (r, num[o]))
            elif den[o] is not None:
                r = mk("prim", "/", (r if r is not None else const(1.0), den[o]))
        return r if r is not None else const(1)


def _power(f: Sig, q: int) -> Sig:
    """f^q as Faust runs it for a small integer q: ((f·f)·f)…"""
    r = f
    for _ in range(q - 1):
        r = mk("prim", "*", (r, f))
    return r


def _gcd(m1: MTerm, m2: MTerm) -> MTerm:
    coef = m1.coef if m1.coef == m2.coef and m1.coef[0] == m2.coef[0] else ("int", 1)
    r = MTerm(m1.norm, m1.ctx, coef)
    for f, v1 in m1.factors.items():
        v2 = m2.factors.get(f)
        if v2 is None:
            continue
        c = min(v1, v2) if v1 > 0 and v2 > 0 else max(v1, v2) if v1 < 0 and v2 < 0 else 0
        if c:
            r.factors[f] = c
    return r


class ATerm:
    """A sum of mterms, one per signature (the product without its number)."""

    def __init__(self, norm: Normalizer, ctx: str):
        self.norm, self.ctx = norm, ctx
        self.terms: dict = {}   # signature Sig -> MTerm

    def add(self, t: Sig, sign: int) -> None:
        if t.op == "prim" and t.attr in ("+", "-") and self.norm.nature(t) == self.ctx:
            self.add(t.args[0], sign)
            self.add(t.args[1], sign if t.attr == "+" else -sign)
            return
        m = MTerm(self.norm, self.ctx)
        m.mul(t)
        self.add_mterm(m, sign)

    def add_mterm(self, m: MTerm, sign: int) -> None:
        sig = m.tree(signature=True)
        old = self.terms.get(sig)
        if old is None:
            m = m.copy()
            if sign < 0:
                m.coef = _op_nums("*", m.coef, ("int", -1))
            self.terms[sig] = m
            return
        if _is_zero(m.coef):
            return
        if _is_zero(old.coef):
            old.coef = m.coef if sign > 0 else _neg(m.coef)
            old.factors = dict(m.factors)
        else:
            old.coef = _op_nums("+" if sign > 0 else "-", old.coef, m.coef)
        old.cleanup()

    def ordered(self) -> list:
        return [self.terms[s] for s in sorted(self.terms, key=lambda s: s.serial)]

    def greatest_divisor(self) -> MTerm:
        """The gcd of the first pair of terms (i < j, in order) whose gcd is the most complex
        (complexity > 0), or 1.

        Faust compares every pair; here only the pairs that can have a complex gcd are: the
        pairs sharing a factor (found through an index factor → terms), and the first pair
        with one same number other than 1 (a gcd of complexity 1 at least, and exactly 1
        when no pair does better).  Same result, in time linear in the terms when they share
        no factor (a 1,000-input merge normalizes sums of 1 to 1,000 terms)."""
        best, best_c, best_ij = MTerm(self.norm, self.ctx), 0, None
        ms = self.ordered()
        # pairs sharing a factor: every one is compared, as Faust does
        holders: dict = {}
        for i, m in enumerate(ms):
            for f in m.factors:
                holders.setdefault(f, []).append(i)
        pairs: set = set()
        for idx in holders.values():
            for a in range(len(idx)):
                for b in range(a + 1, len(idx)):
                    pairs.add((idx[a], idx[b]))
        for i, j in sorted(pairs):
            g = _gcd(ms[i], ms[j])
            c = g.complexity()
            if c > best_c:
                best, best_c, best_ij = g, c, (i, j)
        if best_c > 1:
            return best
        # the first pair (i, j) with the same number (not 1): its gcd has complexity >= 1, so
        # exactly 1 here, and it wins over a pair of complexity 1 found above that comes later
        groups: dict = {}  # number -> the first two terms that have it
        for j, m in enumerate(ms):
            k = m.coef
            if _is_one(k) or k[1] != k[1]:  # 1: complexity 0; NaN: equal to nothing
                continue
            g = groups.setdefault((k[0], k[1]), [])
            if len(g) < 2:
                g.append(j)
        firsts = [tuple(g) for g in groups.values() if len(g) == 2]
        if firsts:
            ij = min(firsts)
            if best_ij is None or ij < best_ij:
                best = _gcd(ms[ij[0]], ms[ij[1]])
        return best

    def factorize(self, d: MTerm) -> "ATerm":
        A, Q = ATerm(self.norm, self.ctx), ATerm(self.norm, self.ctx)
        for m in self.ordered():
            if m.has_divisor(d):
                Q.add_mterm(m.divided(d), +1)
            else:
                A.add_mterm(m, +1)
        A.add(mk("prim", "*", (d.tree(), Q.tree())), +1)
        return A

    def tree(self) -> Sig:
        order = self.norm.order
        P = [const(0)] * 4
        N = [const(0)] * 4
        for m in self.ordered():
            neg = not (m.coef[1] >= 0)
            t = m.tree(negative=neg)
            o = order(t)
            if neg:
                N[o] = _simplifying_add(N[o], t)
            else:
                P[o] = _simplifying_add(P[o], t)
        total = _const(_op_nums("-", _num(P[0]), _num(N[0])))
        positive = True
        for o in (3, 2, 1):
            positive, total = _add_with_sign(False, N[o], positive, total)
            positive, total = _add_with_sign(True, P[o], positive, total)
        if not positive:
            total = mk("prim", "-", (const(0), total))
        return total


def _simplifying_add(t1: Sig, t2: Sig) -> Sig:
    if t1.op == "const" and t2.op == "const":
        return _const(_op_nums("+", t1.attr, t2.attr))
    if t1.op == "const" and _is_zero(t1.attr):
        return t2
    if t2.op == "const" and _is_zero(t2.attr):
        return t1
    if t1.serial <= t2.serial:
        return mk("prim", "+", (t1, t2))
    return mk("prim", "+", (t2, t1))


def _add_with_sign(p1: bool, v1: Sig, p2: bool, v2: Sig):
    """(sign, value) of (±v1) + (±v2), written without a negation where possible."""
    if v1.op == "const" and _is_zero(v1.attr):
        return p2, v2
    if v2.op == "const" and _is_zero(v2.attr):
        return p1, v1
    if p1 and p2:
        return True, mk("prim", "+", (v1, v2))
    if p1:
        return True, mk("prim", "-", (v1, v2))
    if p2:
        return True, mk("prim", "-", (v2, v1))
    return False, mk("prim", "+", (v1, v2))


def associate_like_c(norm: Normalizer, roots) -> list:
    """a + (b + c) → (a + b) + c, a·(b·c) → (a·b)·c for real terms computed inline.

    Faust prints a right operand of the same associative operator without
    parentheses, so the C++ it generates (the reference) evaluates the sum from
    the left.  A right operand is inline when it is used once and has the rate
    (order) of its parent; shared or slower terms become variables and keep
    their place."""
    uses: dict = {}
    order_nodes = walk(roots)
    for n in order_nodes:
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    for r in roots:  # an output is a use too: a term that is also an output is shared
        uses[r] = uses.get(r, 0) + 1
    # The right operands taken into an enclosing chain (a + (b + (c + d)): the inner two) are
    # not rebuilt on their own: only the outermost node of a chain is, so a chain of k terms
    # costs k, not k²/2 (a 1,000-input merge).  Marked parents first, with the loop's test.
    absorbed: set = set()
    for n in reversed(order_nodes):
        if (n in absorbed or n.op != "prim" or n.attr not in ("+", "*") or norm.nature(n) != "real"
                or norm.nature(n.args[0]) != "real"):
            continue
        b = n.args[1]
        while (b.op == "prim" and b.attr == n.attr and uses.get(b, 0) == 1
               and norm.nature(b) == "real" and norm.order(b) == norm.order(n)):
            absorbed.add(b)
            b = b.args[1]
    new: dict = {}
    for n in order_nodes:
        if n in absorbed:
            continue  # used once, by its chain's outermost node, which does not read new[n]
        if n.args and n.args[-1] in absorbed:  # the outermost node of a chain
            a, b = n.args
            while b in absorbed:
                left = mk("prim", n.attr, (new[a], new[b.args[0]]))
                norm.nat_of.setdefault(left, "real")
                a, b = left, b.args[1]
                new.setdefault(a, a)
            r = mk("prim", n.attr, (a, new[b]))  # (the loop below makes it at every step)
            norm.nat_of.setdefault(r, "real")
            new[n] = r
            continue
        args = tuple(new[a] for a in n.args)
        r = n if args == n.args else mk(n.op, n.attr, args)
        if r is not n and n in norm.nat_of:
            norm.nat_of.setdefault(r, norm.nat_of[n])
        if n.op == "prim" and n.attr in ("+", "*") and norm.nature(n) == "real":
            a, b = n.args
            while (b.op == "prim" and b.attr == n.attr and uses.get(b, 0) == 1
                   and norm.nature(b) == "real" and norm.nature(a) == "real"
                   and norm.order(b) == norm.order(n)):
                left = mk("prim", n.attr, (new[a], new[b.args[0]]))
                norm.nat_of.setdefault(left, "real")
                a, b = left, b.args[1]
                new.setdefault(a, a)
                r = mk("prim", n.attr, (a, new[b]))
                norm.nat_of.setdefault(r, "real")
        new[n] = r
    return [new[r] for r in roots]


def normalize_signals(roots) -> list:
    """`roots` rebuilt in Faust's normal form (see the module docstring)."""
    roots = list(roots)
    with B.paused_gc():
        norm = Normalizer(infer_natures(roots))
        return associate_like_c(norm, norm.run(roots))
