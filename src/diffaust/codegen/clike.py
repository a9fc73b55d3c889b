"""A readable C-like listing of the scheduled program (what `diffaust compile` prints)."""

from __future__ import annotations

from ..primitives.table import PRIMITIVES
from .schedule import (
    Accumulate, Call, Cast, Const, Fill, If, Input, Let, LineCommit, LineRead, LineWrite, Load, LoadAt, Op, Output,
    Store, StoreAt, Var,
)


def _real(prog):
    return prog.real


def expr(e, prog) -> str:
    t = type(e)
    R = _real(prog)
    f = "f" if R == "float" else ""
    if t is Const:
        if e.nature == "int":
            return str(e.value)
        r = repr(float(e.value))
        return r + f if ("." in r or "e" in r) else r + ".0" + f
    if t is Var:
        return e.name
    if t is Load:
        return e.slot
    if t is LoadAt:
        return f"{e.slot}[{expr(e.index, prog)}]"
    if t is Input:
        return f"{R}(input{e.index}[i0{f' - {e.back}' if e.back else ''}])"
    if t is Cast:
        return f"{'int' if e.nature == 'int' else R}({expr(e.expr, prog)})"
    if t is Op:
        p = PRIMITIVES[e.name]
        args = [expr(a, prog) for a in e.args]
        if p.clike is not None:
            return p.clike(e, args, f)
        return p.c.replace("{f}", f).format(*args)
    if t is Call:
        return f"{e.fname}({', '.join(expr(a, prog) for a in e.args)})"
    if t is LineRead:
        line = _line(prog, e.line)
        if line.is_scalar:
            return f"{e.line}[1]"
        return f"{e.line}[({line.iota} - {expr(e.delay, prog)}) & {line.mask}]"
    return f"<{t.__name__}>"


def _line(prog, name):
    for line in prog.lines.values():
        if line.name == name:
            return line
    raise KeyError(name)


def stmts(lst, prog, indent, declared=frozenset()) -> list:
    """Statements as C-like lines; `declared`: variables declared already (set in an `if`)."""
    out = []
    pad = " " * indent
    R = _real(prog)
    for s in lst:
        t = type(s)
        if t is Let:
            ty = "" if s.var.name in declared else ("int " if s.var.nature == "int" else R + " ")
            out.append(f"{pad}{ty}{s.var.name} = {expr(s.expr, prog)};")
        elif t is Store:
            out.append(f"{pad}{s.slot} = {expr(s.expr, prog)};")
        elif t is Accumulate:
            out.append(f"{pad}{s.slot} += (double){expr(s.expr, prog)};")
        elif t is StoreAt:
            out.append(f"{pad}{s.slot}[{expr(s.index, prog)}] = {expr(s.expr, prog)};")
        elif t is LineWrite:
            line = _line(prog, s.line)
            if not line.is_scalar:
                out.append(f"{pad}{s.line}[{line.iota} & {line.mask}] = {expr(s.expr, prog)};")
            else:
                out.append(f"{pad}{s.line}[0] = {expr(s.expr, prog)};")
        elif t is LineCommit:
            line = _line(prog, s.line)
            if line.is_scalar:
                out.append(f"{pad}{s.line}[1] = {s.line}[0];")
        elif t is Output:
            out.append(f"{pad}output{s.index}[i0] = FAUSTFLOAT({expr(s.expr, prog)});")
        elif t is If:
            # variables set in the block are declared before it (a later block with the same
            # condition may read them)
            lets = [x for x in s.body if type(x) is Let]
            for x in lets:
                out.append(f"{pad}{'int' if x.var.nature == 'int' else R} {x.var.name};")
            out.append(f"{pad}if ({expr(s.cond, prog)}) {{")
            out += stmts(s.body, prog, indent + 4, {x.var.name for x in lets})
            out.append(f"{pad}}}")
        elif t is Fill:
            out.append(f"{pad}// fill {s.slot}[{s.size}]")
            out.append(f"{pad}for (int i0 = 0; i0 < {s.size}; i0 = i0 + 1) {{")
            out += stmts(s.sample, prog, indent + 4)
            out.append(f"{pad}    {s.slot}[i0] = {expr(s.value, prog)};")
            out += stmts(s.post, prog, indent + 4)
            out.append(f"{pad}}}")
    return out


def format_schedule(prog) -> str:
    """The init and compute functions as C-like text."""
    lines = [f"// FAUSTFLOAT = {prog.real}", "virtual void instanceInit(int sample_rate) {",
             "    fSamplingFreq = sample_rate;"]
    lines += stmts(prog.init, prog, 4)
    lines.append("}")
    lines.append("")
    lines.append("virtual void compute(int count, FAUSTFLOAT** RESTRICT inputs, FAUSTFLOAT** RESTRICT outputs) {")
    for i in range(prog.inputs):
        lines.append(f"    FAUSTFLOAT* input{i} = inputs[{i}];")
    for i in range(prog.outputs):
        lines.append(f"    FAUSTFLOAT* output{i} = outputs[{i}];")
    lines += stmts(prog.block, prog, 4)
    lines.append("    for (int i0 = 0; i0 < count; i0 = i0 + 1) {")
    lines += stmts(prog.sample, prog, 8)
    lines += stmts(prog.post, prog, 8)
    lines.append("    }")
    lines.append("}")
    return "\n".join(lines)


def channel_table(st, dsp) -> str:
    """Parameters and output channels, with the derivative order."""
    rows = ["// parameters (UI order):"]
    for i, p in enumerate(dsp.params):
        mark = " [diff]" if p.diff else ""
        rows.append(f"//   {i}: {p.path}  {p.kind}(init={p.init:g}, min={p.min:g}, max={p.max:g}, step={p.step:g}){mark}")
    rows.append("// output channels:")
    if dsp.diff:
        for k, name in enumerate(dsp.derivative_names):
            rows.append(f"//   output{dsp.primal_outputs + k}: {name}")
        rows.append(f"//   (output0..output{dsp.primal_outputs - 1}: the primal outputs; "
                    "derivatives: for each primal output, for each diff parameter in UI order)")
    else:
        for k in range(dsp.primal_outputs):
            rows.append(f"//   output{k}: out{k}")
    return "\n".join(rows)


def format_program(st, dsp) -> str:
    return channel_table(st, dsp) + "\n\n" + format_schedule(st.program)
