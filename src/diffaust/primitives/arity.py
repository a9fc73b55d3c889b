"""Arity of every Faust primitive box, by name (inputs; every primitive has one output).

This is the part of the primitive table the evaluator needs; the full entries
(evaluation, types, derivative rules, code) are in `primitives.table`.
"""

PRIMITIVE_ARITY: dict[str, int] = {
    # arithmetic, comparison, bitwise
    "+": 2, "-": 2, "*": 2, "/": 2, "%": 2, "^": 2,
    "<": 2, "<=": 2, ">": 2, ">=": 2, "==": 2, "!=": 2,
    "&": 2, "|": 2, "xor": 2, "<<": 2, ">>": 2,
    # math.h
    "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1, "atan2": 2,
    "exp": 1, "log": 1, "log10": 1, "pow": 2, "sqrt": 1, "abs": 1,
    "min": 2, "max": 2, "fmod": 2, "remainder": 2,
    "floor": 1, "ceil": 1, "rint": 1, "round": 1,
    # casts
    "int": 1, "float": 1,
    # time
    "mem": 1, "@": 2, "prefix": 2,
    # selection and tables
    "select2": 3, "select3": 4, "rdtable": 3, "rwtable": 5,
    # misc
    "attach": 2, "enable": 2, "control": 2,
    "lowest": 1, "highest": 1, "assertbounds": 3,
}
