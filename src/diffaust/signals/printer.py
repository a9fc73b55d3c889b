"""Printable signals: `format_sig` (one expression) and `format_program` (a numbered listing)."""

from __future__ import annotations

from .nodes import Sig, walk

_INFIX = {"+", "-", "*", "/", "%", "^", "<", "<=", ">", ">=", "==", "!=", "&", "|", "xor", "<<", ">>"}


def _num(s: Sig) -> str:
    nat, v = s.attr
    if nat == "int":
        return str(v)
    r = repr(v)
    return r if ("." in r or "e" in r or "n" in r) else r + ".0"


def format_sig(s: Sig, max_len: int = 0) -> str:
    """A readable expression; long ones are cut at `max_len` characters (0: no cut)."""
    out: list[str] = []
    budget = [max_len if max_len else 1 << 60]

    def emit(t: str):
        out.append(t)
        budget[0] -= len(t)

    def go(n: Sig):
        if budget[0] <= 0:
            return
        op = n.op
        if op == "const":
            emit(_num(n))
        elif op == "input":
            emit(f"IN[{n.attr}]")
        elif op == "control":
            c = n.attr
            emit(f'{c.kind}("{c.path}")')
        elif op == "prim":
            if n.attr in _INFIX and len(n.args) == 2:
                emit("(")
                go(n.args[0])
                emit(f" {n.attr} ")
                go(n.args[1])
                emit(")")
            else:
                emit(n.attr + "(")
                for i, a in enumerate(n.args):
                    if i:
                        emit(", ")
                    go(a)
                emit(")")
        elif op == "delay":
            go(n.args[0])
            d = n.args[1]
            if d.op == "const" and d.attr[1] == 1:
                emit("'")
            else:
                emit("@")
                go(d)
        elif op == "proj":
            g = n.args[0]
            emit(f"{g.attr}[{n.attr}]")
        elif op == "rec":
            emit(f"rec {n.attr} = (")
            for i, a in enumerate(n.args):
                if i:
                    emit(", ")
                go(a)
            emit(")")
        elif op == "recvar":
            emit(n.attr)
        elif op in ("fconst", "fvar"):
            emit(n.attr[1])
        elif op == "ffun":
            emit(n.attr.names[0] + "(")
            for i, a in enumerate(n.args):
                if i:
                    emit(", ")
                go(a)
            emit(")")
        else:
            emit(f"{op}{'' if n.attr is None else '<' + str(n.attr)[:20] + '>'}(")
            for i, a in enumerate(n.args):
                if i:
                    emit(", ")
                go(a)
            emit(")")

    go(s)
    text = "".join(out)
    if max_len and len(text) > max_len:
        text = text[: max_len - 3] + "..."
    return text


def format_program(outputs) -> str:
    """The output signals, with each recursive group printed once."""
    lines = []
    for n in walk(outputs):
        if n.op == "rec":
            bodies = ", ".join(format_sig(b) for b in n.args)
            lines.append(f"{n.attr} = rec({bodies})")
    for i, s in enumerate(outputs):
        lines.append(f"out{i} = {format_sig(s)}")
    return "\n".join(lines)
