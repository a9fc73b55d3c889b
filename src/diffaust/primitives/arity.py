"""Arity of every Faust primitive box, by name (inputs; every primitive has one output).

This is the part of the primitive table the evaluator needs: the pointwise primitives'
arities come from their entries in `primitives.table`; the structural box primitives
(time and tables, which are no pointwise operation) are listed here.
"""

from .table import PRIMITIVES

# structural box primitives: not pointwise, so not in `primitives.table`
BOX_PRIMITIVES: dict[str, int] = {
    "mem": 1, "@": 2, "prefix": 2,   # time
    "rdtable": 3, "rwtable": 5,      # tables
}

PRIMITIVE_ARITY: dict[str, int] = {**{p.name: p.arity for p in PRIMITIVES.values()}, **BOX_PRIMITIVES}

# the primitive names Faust's lexer makes keywords (see `syntax.lexer.KEYWORDS`)
PRIMITIVE_KEYWORDS: frozenset = frozenset(
    {p.name for p in PRIMITIVES.values() if p.keyword and p.name.isidentifier()}
    | {name for name in BOX_PRIMITIVES if name.isidentifier()}
)
