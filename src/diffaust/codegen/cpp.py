"""cpp: scheduled program → a C++ class with Faust's `dsp` interface (export backend).

    emit_cpp(program, class_name="mydsp", meta={...}) -> str
    emit_cpp_stages(stages, options)                   -> str   (meta taken from the pipeline)

The class compiles with Faust's architecture headers (faust/dsp/dsp.h, faust/gui/UI.h,
faust/gui/meta.h): a `#include` of each is emitted unless an architecture file already
defined it.  Like Faust's own output it defines FAUSTFLOAT (float) and FAUSTCLASS when
they are not defined.  Samples and controls are FAUSTFLOAT; the arithmetic is the
program's real type (float, or double with -double).  With -diff the derivative
channels are extra outputs, after the primal ones (as in the LLVM backend).

Semantics follow codegen/llvm.py statement by statement:
  * int + - * and << wrap at 32 bits (done in unsigned arithmetic: no undefined behaviour,
    no -fwrapv needed); >> is arithmetic; shift amounts are taken & 31;
  * int % by 0 or -1 gives 0; a real % is fmod;
  * real → int truncates, and NaN or out-of-range values give INT_MIN (x86's cvttss2si);
  * comparisons give int 0/1, `!=` is true on NaN, the others are false on NaN;
  * min/max are std::min/std::max (b < a ? b : a, a < b ? b : a);
  * libm: sinf/sin, powf/pow ..., the float or double function as in the LLVM module.

Where the state lives: every slot is a member.  instanceConstants() runs the init
section (constants, read-only tables, waveforms); instanceClear() zeroes the state
(recursions, delay lines, prefixes, IOTA) and refills the tables written at run time
(rwtable); instanceResetUserInterface() puts every widget at its init value.

The output is bit for bit the LLVM backend's when built without floating-point
contraction (g++ -ffp-contract=off; with FMA instructions g++ would otherwise fuse a*b + c).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import DiffaustError
from ..primitives.table import PRIMITIVES, missing_rule
from ..signals.propagate import parse_label
from .schedule import (
    Call, Cast, Const, Fill, If, Input, Let, LineCommit, LineRead, LineWrite, Load, LoadAt, Op,
    Output, Program, Store, StoreAt, Var,
)

INT_MIN = -(2**31)

_CPP_KEYWORDS = set("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t class
compl const constexpr const_cast continue decltype default delete do double dynamic_cast else enum
explicit export extern false float for friend goto if inline int long mutable namespace new noexcept
not not_eq nullptr operator or or_eq private protected public register reinterpret_cast return short
signed sizeof static static_assert static_cast struct switch template this thread_local throw true try
typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
""".split())

# helper functions (static members), emitted only when used; {R} is the real type
_HELPERS = {
    "iadd": "static int iadd(int a, int b) { return int(unsigned(a) + unsigned(b)); }",
    "isub": "static int isub(int a, int b) { return int(unsigned(a) - unsigned(b)); }",
    "imul": "static int imul(int a, int b) { return int(unsigned(a) * unsigned(b)); }",
    "irem": "static int irem(int a, int b) { return (b == 0 || b == -1) ? 0 : a % b; }",
    "ishl": "static int ishl(int a, int b) { return int(unsigned(a) << (b & 31)); }",
    "ishr": "static int ishr(int a, int b) { return a >> (b & 31); }",
    "iabs": "static int iabs(int a) { return a < 0 ? int(0u - unsigned(a)) : a; }",
    "toint": ("static int toint({R} x) { return (x >= {R}(-2147483648.0) && x < {R}(2147483648.0)) "
              "? int(x) : (-2147483647 - 1); }"),
    "min2": "template <typename T> static T min2(T a, T b) { return b < a ? b : a; }",
    "max2": "template <typename T> static T max2(T a, T b) { return a < b ? b : a; }",
}
# LLVM instruction of a binop `code` -> the helper that gives it in C++
_INT_HELPERS = {"add": "iadd", "sub": "isub", "mul": "imul", "srem": "irem", "shl": "ishl", "ashr": "ishr"}
_HELPER_NOTES = {
    "iadd": "32-bit wrapping int arithmetic (Faust's semantics), without C++'s undefined overflow",
    "irem": "int % by 0 or -1 is 0",
    "ishl": "shift amounts are taken modulo 32",
    "toint": "int(x): truncation; NaN and out-of-range values give INT_MIN",
    "min2": "std::min / std::max",
}

_WIDGET_ADD = {
    "hslider": "addHorizontalSlider", "vslider": "addVerticalSlider", "nentry": "addNumEntry",
    "button": "addButton", "checkbox": "addCheckButton",
    "hbargraph": "addHorizontalBargraph", "vbargraph": "addVerticalBargraph",
}
_GROUP_OPEN = {"h": "openHorizontalBox", "v": "openVerticalBox", "t": "openTabBox"}


def c_string(s: str) -> str:
    """A C string literal for the text `s`: quotes and backslashes escaped, \\n and \\t, other
    control and unprintable characters as octal escapes of their UTF-8 bytes, `??` written
    `?\\?` (no trigraph), printable text as is (the file is UTF-8)."""
    out = ['"']
    prev = ""
    for ch in str(s):
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "?" and prev == "?":
            out.append("\\?")
        elif o < 0x20 or o == 0x7F or not ch.isprintable():
            if 0xD800 <= o < 0xE000:
                ch = "\ufffd"  # a lone surrogate: not a character
            out.append("".join(f"\\{b:03o}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
        prev = ch
    out.append('"')
    return "".join(out)


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]+)|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([\s\S]))")


def faust_string_value(s: str) -> str:
    """A metadata string as written in the program (escapes kept) → the characters it means.

    Faust copies a `declare`d string into its C++ (`m->declare("k", "...")`) and JSON output
    as written, so the C++ compiler and JSON readers interpret its backslash escapes: \\n is
    a newline, \\\\ one backslash.  The C++ meaning is taken (\\n \\t \\" \\\\, octal, \\x, \\u;
    any other escaped character stands for itself), which is the JSON one wherever Faust's
    JSON is valid; diffaust then writes the value with proper escaping (c_string, json)."""
    def one(m: re.Match) -> str:
        octal, hexa, u4, u8, other = m.groups()
        try:
            if octal is not None:
                return chr(int(octal, 8))
            if hexa is not None:
                return chr(int(hexa, 16) & 0xFF)
            if u4 is not None or u8 is not None:
                return chr(int(u4 or u8, 16))
        except (ValueError, OverflowError):
            return "\ufffd"
        return _SIMPLE_ESCAPES.get(other, other)

    # a lone surrogate (\\ud800) is no character: U+FFFD, as for an out-of-range code
    return re.sub("[\ud800-\udfff]", "\ufffd", _ESCAPE.sub(one, s))


_faust_unescape = faust_string_value  # the former name


def c_comment(s: str) -> str:
    """A user string for a C++ comment (// or /* */): as is when it is plain printable text,
    else as a C string literal (control characters, backslashes and quotes escaped) with
    `*/` broken, so no newline, line splice or comment end reaches the C++ text."""
    s = str(s)
    if s.isprintable() and not any(t in s for t in ("\\", "*/", '"', "??")):
        return s
    return c_string(s).replace("*/", "*\\/")


def _double_literal(v: float) -> str:
    r = repr(float(v))
    if "e" in r or "." in r:
        return r
    return r + ".0"


class _Emitter:
    def __init__(self, prog: Program, class_name: str):
        self.prog = prog
        self.cls = class_name
        self.R = "double" if prog.real == "double" else "float"
        self.sfx = "" if prog.real == "double" else "f"
        self.lines = {line.name: line for line in prog.lines.values()}
        self.slots = {s.name: s for s in prog.slots}
        self.helpers: set = set()
        self.names: dict = {}
        self.declared: set = set()  # variables set in `if` blocks (declared before the block)
        # ring buffer indices no ring buffer reads (their increments were dropped by the scheduler)
        used = {line.iota for line in prog.lines.values() if not line.is_scalar}
        self.dead = {s.name for s in prog.slots if s.kind == "iota" and s.name not in used}
        self.taken = set(_CPP_KEYWORDS) | set(_HELPERS) | {
            "i0", "count", "inputs", "outputs", "sample_rate", "m", "ui_interface", "dsp", "Meta", "UI",
            "FAUSTFLOAT", "FAUSTCLASS", "RESTRICT", class_name}
        self.taken |= {f"input{k}" for k in range(prog.inputs)} | {f"output{k}" for k in range(prog.outputs)}
        for s in prog.slots:  # slots first: their names are kept when they are valid
            self.name(s.name)

    # -- names
    def name(self, raw: str) -> str:
        n = self.names.get(raw)
        if n is not None:
            return n
        base = re.sub(r"\W", "_", raw, flags=re.ASCII) or "v"
        if base[0].isdigit():
            base = "v" + base
        n, k = base, 0
        while n in self.taken:
            k += 1
            n = f"{base}_{k}"
        self.taken.add(n)
        self.names[raw] = n
        return n

    def ty(self, nature: str) -> str:
        return "int" if nature == "int" else self.R

    def use(self, helper: str) -> str:
        self.helpers.add(helper)
        return helper

    # -- literals
    def real_literal(self, v: float) -> str:
        v = float(v)
        if self.R == "float":
            f = np.float32(v)
            if math.isnan(f):
                return "std::numeric_limits<float>::quiet_NaN()"
            if math.isinf(f):
                return ("" if f > 0 else "-") + "std::numeric_limits<float>::infinity()"
            r = repr(float(f)) if float(f) == 0.0 else str(f)  # shortest text that reads back as f
            if "e" not in r and "." not in r:
                r += ".0"
            return r + "f"
        if math.isnan(v):
            return "std::numeric_limits<double>::quiet_NaN()"
        if math.isinf(v):
            return ("" if v > 0 else "-") + "std::numeric_limits<double>::infinity()"
        return _double_literal(v)

    def int_literal(self, v) -> str:
        v = int(v)
        return "(-2147483647 - 1)" if v == INT_MIN else str(v)

    # -- expressions
    def nature(self, e) -> str:
        return "real" if isinstance(e, Input) else e.nature

    def expr(self, e, ctx: str) -> str:
        t = type(e)
        if t is Const:
            return self.int_literal(e.value) if e.nature == "int" else self.real_literal(e.value)
        if t is Var:
            if e.name == "count":
                if ctx != "compute":
                    raise DiffaustError("cpp backend: 'count' is only known in compute()")
                return "count"
            return self.name(e.name)
        if t is Load:
            s = self.slots.get(e.slot)
            if s is None:
                raise DiffaustError(f"cpp backend: unknown slot '{e.slot}'")
            if s.kind == "param":
                return f"{self.R}({self.name(e.slot)})"
            return self.name(e.slot)
        if t is LoadAt:
            return f"{self.name(e.slot)}[{self.expr(e.index, ctx)}]"
        if t is Input:
            if e.back:
                raise DiffaustError("cpp backend: an input read with history (reverse mode's tape) is not exported")
            if ctx != "compute":
                raise DiffaustError("cpp backend: an audio input read outside of compute() "
                                    "(a table or a constant cannot depend on the inputs)")
            if not 0 <= e.index < self.prog.inputs:
                raise DiffaustError(f"cpp backend: input {e.index} of a program with {self.prog.inputs} inputs")
            return f"{self.R}(input{e.index}[i0])"
        if t is Cast:
            v = self.expr(e.expr, ctx)
            if e.nature == "real":
                return f"{self.R}({v})"
            return f"{self.use('toint')}({v})"
        if t is Op:
            return self.op(e, ctx)
        if t is Call:
            args = ", ".join(self.expr(a, ctx) for a in e.args)
            return f"{self.ty(e.nature)}({e.fname}({args}))"
        if t is LineRead:
            line = self.lines.get(e.line)
            if line is None:
                raise DiffaustError(f"cpp backend: unknown delay line '{e.line}'")
            name = self.name(e.line)
            if line.is_scalar:
                return name
            d = self.expr(e.delay, ctx)
            return f"{name}[{self.use('isub')}({self.name(line.iota)}, {d}) & {line.mask}]"
        raise DiffaustError(f"cpp backend: cannot lower the expression {t.__name__}")

    def op(self, e: Op, ctx: str) -> str:
        """A primitive: its entry's cpp hook, else the generic rule of its `code`."""
        p = PRIMITIVES.get(e.name)
        if p is None:
            raise DiffaustError(f"cpp backend: unknown primitive '{e.name}'")
        args = [self.expr(a, ctx) for a in e.args]
        nats = [self.nature(a) for a in e.args]
        if p.cpp is not None:
            return p.cpp(self, e, args, nats)
        code = p.code
        kind = code[0]
        sfx = self.sfx
        if kind == "binop":
            is_int = all(n == "int" for n in nats)
            opname = code[1] if is_int else code[2]
            if opname is None or (not is_int and any(n == "int" for n in nats)):
                raise DiffaustError(f"cpp backend: primitive '{e.name}' on {list(nats)}")
            x, y = args
            helper = _INT_HELPERS.get(opname)
            if helper is not None:  # wrapping int arithmetic, Faust's int % and shifts
                return f"{self.use(helper)}({x}, {y})"
            if opname == "frem":
                return f"fmod{sfx}({x}, {y})"
            return p.c.format(x, y)  # C's own operator
        if kind == "cmp":
            x, y = args
            if len(set(nats)) != 1:
                raise DiffaustError(f"cpp backend: comparison '{e.name}' on {list(nats)}")
            return f"int({x} {code[1]} {y})"
        if kind in ("libm", "intrinsic"):
            if any(n != "real" for n in nats):
                raise DiffaustError(f"cpp backend: primitive '{e.name}' on {list(nats)}")
            return f"{code[1]}{sfx}({', '.join(args)})"
        raise missing_rule(p, "cpp lowering")

    # -- statements
    def stmts(self, lst, ctx: str, pad: str) -> list:
        out = []
        for st in lst:
            t = type(st)
            if t is Let:
                if st.var.name in self.declared:  # set in an `if` block, declared before it
                    out.append(f"{pad}{self.name(st.var.name)} = {self.expr(st.expr, ctx)};")
                else:
                    out.append(f"{pad}{self.ty(st.var.nature)} {self.name(st.var.name)} = {self.expr(st.expr, ctx)};")
            elif t is If:
                # Faust's `if (c) {...}` of control/enable; its variables are declared before it
                # (a later block under the same condition may read them)
                for x in st.body:
                    if type(x) is Let:
                        zero = "0" if x.var.nature == "int" else self.real_literal(0.0)
                        out.append(f"{pad}{self.ty(x.var.nature)} {self.name(x.var.name)} = {zero};")
                        self.declared.add(x.var.name)
                out.append(f"{pad}if ({self.expr(st.cond, ctx)}) {{")
                out += self.stmts(st.body, ctx, pad + "    ")
                out.append(f"{pad}}}")
            elif t is Store:
                s = self.slots.get(st.slot)
                if s is None:
                    raise DiffaustError(f"cpp backend: unknown slot '{st.slot}'")
                v = self.expr(st.expr, ctx)
                if s.kind == "param":
                    v = f"FAUSTFLOAT({v})"
                out.append(f"{pad}{self.name(st.slot)} = {v};")
            elif t is StoreAt:
                out.append(f"{pad}{self.name(st.slot)}[{self.expr(st.index, ctx)}] = {self.expr(st.expr, ctx)};")
            elif t is LineWrite:
                line = self.lines[st.line]
                if not line.is_scalar:
                    out.append(f"{pad}{self.name(st.line)}[{self.name(line.iota)} & {line.mask}] = "
                               f"{self.expr(st.expr, ctx)};")
            elif t is LineCommit:
                line = self.lines[st.line]
                if line.is_scalar:
                    out.append(f"{pad}{self.name(st.line)} = {self.expr(st.expr, ctx)};")
            elif t is Output:
                if ctx != "compute":
                    raise DiffaustError("cpp backend: an output written outside of compute()")
                out.append(f"{pad}output{st.index}[i0] = FAUSTFLOAT({self.expr(st.expr, ctx)});")
            elif t is Fill:
                out += self.fill(st, pad)
            else:
                raise DiffaustError(f"cpp backend: cannot lower the statement {t.__name__}")
        return out

    def zero(self, slot_name: str, pad: str) -> list:
        if slot_name in self.dead:
            return []
        s = self.slots[slot_name]
        n = self.name(slot_name)
        z = "0" if s.nature == "int" else self.real_literal(0.0)
        if s.size == 1:
            return [f"{pad}{n} = {z};"]
        return [f"{pad}for (int i0 = 0; i0 < {s.size}; i0 = i0 + 1) {{ {n}[i0] = {z}; }}"]

    def fill(self, st: Fill, pad: str) -> list:
        out = [f"{pad}// {self.name(st.slot)}[{st.size}]: the table's generator, run {st.size} samples"]
        for name in st.clear:
            out += self.zero(name, pad)
        out.append(f"{pad}for (int i0 = 0; i0 < {st.size}; i0 = i0 + 1) {{")
        out += self.stmts(st.sample, "fill", pad + "    ")
        out.append(f"{pad}    {self.name(st.slot)}[i0] = {self.expr(st.value, 'fill')};")
        out += self.stmts(st.post, "fill", pad + "    ")
        out.append(f"{pad}}}")
        return out


def _check_program(prog: Program):
    if not isinstance(prog, Program):
        raise DiffaustError("cpp backend: emit_cpp needs a scheduled Program")
    if prog.real not in ("float", "double"):
        raise DiffaustError(f"cpp backend: unknown real type '{prog.real}'")


class UiGroup:
    """A folder of the UI tree: kind (h|v|t), label as written, shown name, items."""

    __slots__ = ("kind", "raw", "name", "meta", "items", "_index")

    def __init__(self, kind: str, raw: str, name: str):
        self.kind, self.raw, self.name = kind, raw, name
        self.meta = parse_label(raw)[1] if raw else ()
        self.items: list = []   # UiGroup | (slot, Control)
        self._index: dict = {}

    def folder(self, kind: str, raw: str, name: str) -> "UiGroup":
        g = self._index.get((kind, raw))
        if g is None:
            g = self._index[(kind, raw)] = UiGroup(kind, raw, name)
            self.items.append(g)
        return g

    def sort(self) -> None:
        # Faust lists a folder's items by label as written, metadata included ("B" < "[0] x" < "a")
        self.items.sort(key=lambda it: it.raw if isinstance(it, UiGroup) else (it[1].raw_label or it[1].label))
        for it in self.items:
            if isinstance(it, UiGroup):
                it.sort()


def ui_layout(prog: Program, name: str) -> list:
    """The UI tree of a scheduled program: its root folders (one in practice), built from
    each widget's place (Control.ui; from its path for widgets made without one)."""
    top = UiGroup("v", "", "")
    for slot, c in list(prog.params) + list(prog.bargraphs):
        chain = c.ui or tuple(("v", p, p) for p in c.path.split("/")[1:-1])
        g = top
        for kind, raw, shown in chain:
            g = g.folder(kind, raw, shown)
        g.items.append((slot, c))
    top.sort()
    return top.items or [UiGroup("v", "", name)]


def _ui_lines(em: _Emitter, prog: Program, name: str) -> list:
    """buildUserInterface's body: the UI tree's folders opened and closed around the widgets."""
    out: list = []
    F = lambda v: f"FAUSTFLOAT({_double_literal(v)})"  # noqa: E731

    def emit(item, depth: int) -> None:
        ind = "        " + "    " * depth
        if isinstance(item, UiGroup):
            for key, value in item.meta:
                out.append(f"{ind}ui_interface->declare(0, {c_string(key)}, {c_string(value)});")
            out.append(f"{ind}ui_interface->{_GROUP_OPEN.get(item.kind, 'openVerticalBox')}({c_string(item.name)});")
            for it in item.items:
                emit(it, depth + 1)
            out.append(f"{ind}ui_interface->closeBox();")
            return
        slot, c = item
        zone = "&" + em.name(slot)
        for key, value in c.meta:
            out.append(f"{ind}ui_interface->declare({zone}, {c_string(key)}, {c_string(value)});")
        add = _WIDGET_ADD.get(c.kind)
        if add is None:
            raise DiffaustError(f"cpp backend: unknown widget kind '{c.kind}' ({c.path})")
        if c.kind in ("button", "checkbox"):
            out.append(f"{ind}ui_interface->{add}({c_string(c.label)}, {zone});")
        elif c.kind in ("hbargraph", "vbargraph"):
            out.append(f"{ind}ui_interface->{add}({c_string(c.label)}, {zone}, {F(c.min)}, {F(c.max)});")
        else:
            out.append(f"{ind}ui_interface->{add}({c_string(c.label)}, {zone}, {F(c.init)}, {F(c.min)}, "
                       f"{F(c.max)}, {F(c.step)});")

    for root in ui_layout(prog, name):
        emit(root, 0)
    return out


def emit_cpp(program: Program, class_name: str = "mydsp", meta: dict | None = None) -> str:
    """The C++ text of a class `class_name : public dsp` computing `program`.

    meta (all optional):
      name            the program's name (metadata 'name')
      filename        source file name (metadata 'filename')
      metadata        [(key, value), ...] the program's `declare`s, in order
      includes        ffunction include files ('<math.h>', '"foo.h"')
      compile_options text for the 'compile_options' metadata
      outputs         [name, ...] one per output channel, for the header comment
    """
    _check_program(program)
    if not re.fullmatch(r"[A-Za-z_]\w*", class_name or "") or class_name in _CPP_KEYWORDS:
        raise DiffaustError(f"cpp backend: '{class_name}' is not a valid C++ class name")
    meta = dict(meta or {})
    prog = program
    em = _Emitter(prog, class_name)
    R = em.R
    writes = {st.slot for st in prog.sample if isinstance(st, StoreAt)}
    writes |= {x.slot for st in prog.sample if isinstance(st, If) for x in st.body if isinstance(x, StoreAt)}

    # ---- sections (emitted first: they decide which helpers are used)
    consts = ["        fSamplingFreq = sample_rate;"] if "fSamplingFreq" in em.slots else []
    for s in prog.slots:
        if s.init is not None:
            vals = [em.int_literal(v) if s.nature == "int" else em.real_literal(v) for v in s.init]
            if len(vals) != s.size:
                raise DiffaustError(f"cpp backend: waveform {s.name} has {len(vals)} values for {s.size} cells")
            n = em.name(s.name)
            consts.append(f"        static const {em.ty(s.nature)} {n}_data[{s.size}] = {{{', '.join(vals)}}};")
            consts.append(f"        for (int i0 = 0; i0 < {s.size}; i0 = i0 + 1) {{ {n}[i0] = {n}_data[i0]; }}")
    run_time_fills = [st for st in prog.init if isinstance(st, Fill) and st.slot in writes]
    consts += em.stmts([st for st in prog.init if not (isinstance(st, Fill) and st.slot in writes)], "init", "        ")

    clear = []
    for s in prog.slots:
        if s.kind in ("state", "iota", "line"):
            clear += em.zero(s.name, "        ")
    clear += em.stmts(run_time_fills, "init", "        ")

    reset = []
    for slot, c in prog.params:
        reset.append(f"        {em.name(slot)} = FAUSTFLOAT({_double_literal(c.init)});")
    for slot, c in prog.bargraphs:
        reset.append(f"        {em.name(slot)} = FAUSTFLOAT(0.0);")

    compute = []
    for k in range(prog.inputs):
        compute.append(f"        FAUSTFLOAT* input{k} = inputs[{k}];")
    for k in range(prog.outputs):
        compute.append(f"        FAUSTFLOAT* output{k} = outputs[{k}];")
    compute += em.stmts(prog.block, "compute", "        ")
    body = em.stmts(prog.sample, "compute", "            ") + em.stmts(prog.post, "compute", "            ")
    compute.append("        for (int i0 = 0; i0 < count; i0 = i0 + 1) {")
    compute += body
    compute.append("        }")
    ui = _ui_lines(em, prog, meta.get("name") or class_name)  # without widgets: the program's box

    # ---- fields
    fields = []
    for s in prog.slots:
        if s.kind == "param":
            c = next((c for slot, c in list(prog.params) + list(prog.bargraphs) if slot == s.name), None)
            note = f"  // {c.kind} {c_comment(c.path)}" if c is not None else ""
            fields.append(f"    FAUSTFLOAT {em.name(s.name)};{note}")
            continue
        if s.name in em.dead:
            continue
        ty = em.ty(s.nature)
        dim = f"[{s.size}]" if s.size > 1 else ""
        note = {"line": "delay line", "iota": "ring buffer index", "table": "table", "const": "constant",
                "sr": "sample rate"}.get(s.kind, "")
        fields.append(f"    {ty} {em.name(s.name)}{dim};" + (f"  // {note}" if note else ""))
    if "fSamplingFreq" not in em.slots:
        fields.append("    int fSamplingFreq;")

    helpers = []
    for h in _HELPERS:
        if h in em.helpers:
            note = _HELPER_NOTES.get(h)
            if note:
                helpers.append(f"    // {note}")
            helpers.append("    " + _HELPERS[h].replace("{R}", R))

    # ---- metadata
    declared = [(k, _faust_unescape(v)) for k, v in meta.get("metadata") or []]
    keys = {k for k, _ in declared}
    md = list(declared)
    if meta.get("compile_options"):
        md.insert(0, ("compile_options", meta["compile_options"]))
    if meta.get("filename") and "filename" not in keys:
        md.append(("filename", meta["filename"]))
    if meta.get("name") and "name" not in keys:
        md.append(("name", meta["name"]))

    name = meta.get("name") or class_name
    outs = meta.get("outputs") or [f"out{k}" for k in range(prog.outputs)]
    head = ["/* ------------------------------------------------------------",
            f"name: {c_comment(name)}",
            f"Code generated by diffaust{(' ' + meta['version']) if meta.get('version') else ''} "
            f"(-lang cpp{', -double' if R == 'double' else ''}{', -diff' if meta.get('diff') else ''})",
            f"Inputs: {prog.inputs}, outputs: {prog.outputs}"]
    for k, o in enumerate(outs):
        head.append(f"  output{k}: {c_comment(o)}")
    head.append("------------------------------------------------------------ */")
    guard = f"__{class_name}_H__"

    L = head + [
        "",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#ifndef FAUSTFLOAT",
        "#define FAUSTFLOAT float",
        "#endif",
        "",
        "#ifndef __dsp__",
        "#include <faust/dsp/dsp.h>",
        "#endif",
        "#ifndef __UI_H__",
        "#include <faust/gui/UI.h>",
        "#endif",
        "#ifndef __meta__",
        "#include <faust/gui/meta.h>",
        "#endif",
        "",
        "#include <algorithm>",
        "#include <cmath>",
        "#include <cstdint>",
        "#include <limits>",
        "#include <math.h>",
    ]
    for inc in meta.get("includes") or []:
        inc = inc.strip()
        if inc:
            from .foreign_c import check_include

            inc = check_include(inc)  # a header name, or an error: never text that ends the directive
            if inc not in ("<math.h>", "<cmath>"):
                L.append(f"#include {inc}")
    L += [
        "",
        "#ifndef FAUSTCLASS",
        f"#define FAUSTCLASS {class_name}",
        "#endif",
        "",
        "#ifdef __APPLE__",
        "#define exp10f __exp10f",
        "#define exp10 __exp10",
        "#endif",
        "",
        "#ifndef RESTRICT",
        "#if defined(_MSC_VER)",
        "#define RESTRICT __restrict",
        "#else",
        "#define RESTRICT __restrict__",
        "#endif",
        "#endif",
        "",
        f"class {class_name} : public dsp {{",
        "",
        "  private:",
        "",
    ]
    L += fields
    if helpers:
        L.append("")
        L += helpers
    L += [
        "",
        "  public:",
        "",
        f"    {class_name}() {{}}",
        "",
        "    void metadata(Meta* m) {",
    ]
    L += [f"        m->declare({c_string(k)}, {c_string(v)});" for k, v in md]
    L += [
        "    }",
        "",
        f"    virtual int getNumInputs() {{ return {prog.inputs}; }}",
        f"    virtual int getNumOutputs() {{ return {prog.outputs}; }}",
        "",
        "    static void classInit(int /*sample_rate*/) {}",
        "",
        "    virtual void instanceConstants(int sample_rate) {",
    ]
    L += consts
    L += [
        "    }",
        "",
        "    virtual void instanceResetUserInterface() {",
    ]
    L += reset
    L += [
        "    }",
        "",
        "    virtual void instanceClear() {",
    ]
    L += clear
    L += [
        "    }",
        "",
        "    virtual void init(int sample_rate) {",
        "        classInit(sample_rate);",
        "        instanceInit(sample_rate);",
        "    }",
        "",
        "    virtual void instanceInit(int sample_rate) {",
        "        instanceConstants(sample_rate);",
        "        instanceResetUserInterface();",
        "        instanceClear();",
        "    }",
        "",
        f"    virtual {class_name}* clone() {{ return new {class_name}(); }}",
        "",
        "    virtual int getSampleRate() { return fSamplingFreq; }",
        "",
        "    virtual void buildUserInterface(UI* ui_interface) {",
    ]
    L += ui
    L += [
        "    }",
        "",
        "    virtual void compute(int count, "
        f"FAUSTFLOAT** RESTRICT {'inputs' if prog.inputs else '/*inputs*/'}, "
        f"FAUSTFLOAT** RESTRICT {'outputs' if prog.outputs else '/*outputs*/'}) {{",
    ]
    L += compute
    L += [
        "    }",
        "",
        "};",
        "",
        "#endif",
        "",
    ]
    return "\n".join(L)


# ---------------------------------------------------------------- from the pipeline


def ffunction_includes(signals) -> list:
    from ..signals.nodes import walk

    incs = []
    for n in walk(signals):
        if n.op == "ffun":
            inc = (n.attr.include or "").strip()
            if inc and inc not in incs:
                incs.append(inc)
    return incs


def stages_meta(st, options) -> dict:
    """emit_cpp's `meta` for a pipeline result (`runtime.pipeline.Stages`)."""
    import os

    from .. import __version__

    outs = [f"out{k}" for k in range(len(st.outputs))]
    for o in range(len(st.outputs)):
        for v in st.diff_params:
            outs.append(f"d out{o}/d {v.attr.label}")
    opts = ["-lang cpp"] + (["-double"] if options.double else []) + (["-diff"] if options.diff else [])
    name = st.name
    if any(k == "name" and v.strip('"') == name for k, v in st.metadata):  # a declared name: what it means
        name = faust_string_value(name)
    return {
        "name": name,
        "filename": os.path.basename(st.filename) if not st.filename.startswith("<") else "",
        "metadata": list(st.metadata),
        "includes": ffunction_includes(st.signals),
        "compile_options": "diffaust " + " ".join(opts),
        "outputs": outs,
        "diff": bool(options.diff),
        "version": __version__,
    }


def emit_cpp_stages(st, options, class_name: str = "mydsp") -> str:
    """C++ for a pipeline result (after schedule_program)."""
    if st.program is None:
        raise DiffaustError("cpp backend: the program was not scheduled")
    return emit_cpp(st.program, class_name, stages_meta(st, options))
