"""The compiler pipeline, as a list of named passes.

  parse_source      .dsp text            → AST            (syntax.parser)
  evaluate_ast      AST                  → box            (boxes.evaluate)
  propagate_box     box                  → signals        (signals.propagate)
  differentiate     signals              → signals + tangents   (autodiff.jvp, with -diff)
  infer_types       signals              → typed signals  (signals.types)
  schedule_program  typed signals        → scheduled IR   (codegen.schedule)
  generate_llvm     scheduled IR         → LLVM IR        (codegen.llvm)

`run_pipeline(source, options)` runs them and returns every stage's result in a
`Stages` record, so `--dump` can print any of them.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Optional

from ..boxes.loader import FileDeps
from ..errors import DiffaustError


@dataclass(frozen=True)
class CompileOptions:
    """How to compile: precision, derivatives, library search, sample rate.

    nondiff: C names of ffunctions declared constant for differentiation (their tangent
    is 0; ``--nondiff NAME``); each must name an ffunction the program calls.
    allow_native: compile and load C++ from headers outside an installed Faust's own
    folders (an ffunction whose header sits next to the program, in -I or the working
    folder); without it such a program is refused (``--allow-native``)."""

    double: bool = False
    diff: bool = False
    import_dirs: tuple = ()
    bundled_only: bool = False
    trace: bool = False
    nondiff: tuple = ()
    allow_native: bool = False
    use_cache: bool = True  # may keep built foreign-function shims in the on-disk cache
    # widget paths given per sample: each becomes an extra input (after the program's own),
    # clamped to the widget's range, plus the widget itself (set to 0 to read the input alone)
    varying: tuple = ()


@dataclass
class Stages:
    source: str
    filename: str
    ast: object = None
    box: object = None
    metadata: list = field(default_factory=list)
    files: list = field(default_factory=list)         # files read other than by the library search
    deps: FileDeps = field(default_factory=FileDeps)  # what the result depends on (files, absent files)
    warnings: list = field(default_factory=list)       # messages for the user (missing soundfile...)
    outputs: list = field(default_factory=list)        # primal output signals
    partners: dict = field(default_factory=dict)       # stateful primal node -> its tangents (jvp_program)
    diff_params: list = field(default_factory=list)    # control signals, UI order
    tangents: list = field(default_factory=list)       # [output][param]
    signals: list = field(default_factory=list)        # what is compiled: primal then tangents
    types: object = None
    program: object = None
    trace: list = field(default_factory=list)
    inputs: int = 0
    name: str = "dsp"
    foreign: dict = field(default_factory=dict)        # C name → JIT symbol of header-defined ffunctions
    foreign_libs: list = field(default_factory=list)   # shared libraries those symbols live in
    spans: dict = field(default_factory=dict)          # Sig -> source span (for errors found late)


def parse_source(st: Stages, opts: CompileOptions):
    from ..syntax.parser import parse

    st.ast = parse(st.source, st.filename)


def evaluate_ast(st: Stages, opts: CompileOptions):
    from ..boxes.evaluate import EvalOptions, evaluate_program

    file_dir = os.path.dirname(os.path.abspath(st.filename)) if not st.filename.startswith("<") else os.getcwd()
    eo = EvalOptions(import_dirs=tuple(opts.import_dirs), file_dir=file_dir, double=opts.double,
                     bundled_only=opts.bundled_only, deps=st.deps)
    res = evaluate_program(st.ast, options=eo)
    st.box = res.process
    st.metadata = list(res.metadata)
    st.files = list(res.files)
    for k, v in st.metadata:
        if k == "name" and v:  # the first declared name is the program's (as Faust)
            st.name = v.strip('"')
            break


def propagate_box(st: Stages, opts: CompileOptions):
    from ..boxes.box import arity
    from ..signals.propagate import propagate_program

    from ..signals.propagate import PropagateContext, lone_ui_folder

    st.inputs, _ = arity(st.box)
    base = os.path.dirname(os.path.abspath(st.filename)) if not st.filename.startswith("<") else os.getcwd()
    ctx = PropagateContext(name=st.name, base_dir=base, drop_root=lone_ui_folder(st.box) is not None)
    st.outputs = list(propagate_program(st.box, st.name, ctx))
    if not st.outputs:  # as Faust: "the Faust program has no output signal"
        from ..errors import FaustEvalError

        raise FaustEvalError("the program has no output signal ('process' has 0 outputs)",
                             getattr(st.box, "span", None))
    st.warnings.extend(ctx.warnings)
    st.files.extend(ctx.files)
    st.spans = ctx.spans


def share_recursions(st: Stages, opts: CompileOptions):
    from ..signals.share import share_recursions as share

    st.outputs = share(st.outputs)


def normalize_signals(st: Stages, opts: CompileOptions):
    from ..signals.normalize import normalize_signals as normalize
    from ..signals.propagate import check_widgets

    st.outputs = normalize(st.outputs)
    check_widgets(st.outputs, st.spans)  # on what is left, as Faust (a widget times 0 is gone)


def vary_params(st: Stages, opts: CompileOptions):
    """Widgets given per sample (opts.varying): widget c → min(max(input, lo), hi) + c, the
    input numbered after the program's own.  With c set to 0 the program reads the per-sample
    values; c stays a parameter (its derivative is that of a constant offset)."""
    if not opts.varying:
        return
    from ..autodiff.jvp import substitute_nodes
    from ..errors import UsageError
    from ..signals import build as B
    from ..signals.nodes import input_, walk

    controls = {n.attr.path: n for n in walk(st.outputs) if n.op == "control"}
    mapping = {}
    for k, path in enumerate(opts.varying):
        c = controls.get(path)
        if c is None:
            raise UsageError(f"parameter '{path}' given per sample is not a widget the program's outputs use")
        lo, hi = sorted((float(c.attr.min), float(c.attr.max)))
        v = B.prim("max", B.prim("min", input_(st.inputs + k), B.const(hi)), B.const(lo))
        mapping[c] = B.add(v, c)
    st.outputs = substitute_nodes(st.outputs, mapping)
    st.inputs += len(opts.varying)


def differentiate(st: Stages, opts: CompileOptions):
    from ..autodiff.jvp import diff_variables, jvp_program

    st.signals = list(st.outputs)
    if not opts.diff:
        return
    st.diff_params = diff_variables(st.outputs)
    trace = st.trace if opts.trace else None
    nondiff = check_nondiff(st.outputs, opts.nondiff)
    st.tangents = jvp_program(st.outputs, st.diff_params, trace, nondiff=nondiff, warnings=st.warnings,
                              partners=st.partners)
    for row in st.tangents:
        st.signals.extend(row)


def check_nondiff(outputs, names) -> frozenset:
    """The ``--nondiff`` names, each checked to be a C name of an ffunction the program calls
    (a name that matches nothing is a typo: UsageError listing the program's ffunctions)."""
    if not names:
        return frozenset()
    from ..errors import UsageError
    from ..signals.nodes import walk

    called = []
    for n in walk(outputs):
        if n.op == "ffun":
            called.extend(c for c in n.attr.names if c not in called)
    unknown = [m for m in names if m not in called]
    if unknown:
        have = ", ".join(called) if called else "none"
        raise UsageError(f"--nondiff {unknown[0]}: the program calls no ffunction of that name "
                         f"(its ffunctions: {have})")
    return frozenset(names)


def infer_types(st: Stages, opts: CompileOptions):
    from ..signals.types import infer_types as infer

    st.types = infer(st.signals)


def link_foreign(st: Stages, opts: CompileOptions):
    """ffunctions defined in C/C++ headers (not in libm nor a named library): build their shim.

    Native code needs consent (codegen/foreign_c.py, "Consent"): an ffunction whose header
    (or library file) is not one of an installed Faust's own is refused with a NativeCodeError
    located at the ffunction, unless opts.allow_native."""
    from ..codegen.foreign_c import (
        ALLOW_HINT, build_shim, check_include, header_candidates, header_name, resolve_includes, trusted_path,
    )
    from ..codegen.schedule import foreign_name, resolvable
    from ..errors import DiffaustError, NativeCodeError
    from ..signals.nodes import walk

    def located(e: DiffaustError, node):
        e.sig = node
        if e.span is None:
            e.span = _ffunction_span(st.box, node.attr)
        return e

    def shown(s: str) -> str:
        return s if s.isprintable() else repr(s)

    funcs, includes, users, first = {}, [], {}, None
    for n in walk(st.signals):
        if n.op != "ffun":
            continue
        f = n.attr
        name = foreign_name(f, opts.double)
        lib = (f.library or "").strip()
        # a library given by a path is loaded (its initializers run) when the name is resolved
        if "/" in lib and not opts.allow_native and not trusted_path(lib):
            raise located(NativeCodeError(f"ffunction {name}: its library {shown(lib)} is a file, not one of "
                                          f"an installed Faust's own: loading it runs its code on this machine; "
                                          f"{ALLOW_HINT}"), n)
        if name in funcs or resolvable(name, f):
            continue
        funcs[name] = (name, tuple(f.arg_types), f.result_type)
        if first is None:
            first = n
        inc = (f.include or "").strip()
        if inc:
            try:
                check_include(inc)
            except DiffaustError as e:
                raise located(e, n) from None
        if inc and header_name(inc) not in map(header_name, includes):  # <f.h> and "f.h": once
            includes.append(inc)
            users[inc] = (name, n)
    if not funcs:
        return
    base = os.path.dirname(os.path.abspath(st.filename)) if not st.filename.startswith("<") else os.getcwd()
    search = (*opts.import_dirs, base)
    if not opts.allow_native:
        for inc, _, path, trusted in resolve_includes(includes, search):
            if not trusted:
                name, node = users[inc]
                where = f"found at {shown(path)}" if path else "found in no searched folder"
                raise located(NativeCodeError(
                    f"ffunction {name}: its header {shown(inc)} ({where}) is not one of an installed Faust's "
                    f"own: compiling it runs its C++ code on this machine; {ALLOW_HINT}"), node)
    try:
        shim = build_shim(list(funcs.values()), includes, "double" if opts.double else "float", search,
                          allow_native=opts.allow_native, use_cache=opts.use_cache)
    except DiffaustError as e:  # no compiler, or the compiler's errors: at the first ffunction compiled
        raise located(e, first) from None
    st.foreign = dict(shim.symbols)
    st.foreign_libs = [shim.library]
    st.files.extend(shim.headers)
    for inc in includes:  # a header appearing earlier in the search would be compiled instead
        for p in header_candidates(inc, search):
            st.deps.note_file(p)


def _ffunction_span(box, f):
    """Where the ffunction `f` (a signal's FFun) was written: the span of the first box
    `ffunction(...)` of the same names, include and library in the program's box."""
    from ..boxes.box import BFFun, Box

    stack, seen = [box], set()
    while stack:
        b = stack.pop()
        if id(b) in seen:
            continue
        seen.add(id(b))
        if isinstance(b, BFFun):
            if (tuple(b.names), b.include, b.library) == (tuple(f.names), f.include, f.library) \
                    and getattr(b.span, "line", 0):
                return b.span
            continue
        for v in vars(b).values():
            if isinstance(v, Box):
                stack.append(v)
            elif isinstance(v, tuple):
                stack.extend(x for x in v if isinstance(x, Box))
    return None


def schedule_program(st: Stages, opts: CompileOptions):
    from ..codegen.schedule import schedule

    st.program = schedule(st.signals, st.types, st.inputs, opts.double, foreign=st.foreign, partners=st.partners)


PASSES = [parse_source, evaluate_ast, propagate_box, share_recursions, normalize_signals, vary_params, differentiate,
          infer_types, link_foreign, schedule_program]


# One compile at a time per process: the passes share process-wide state (the signal
# intern table and its creation serials, memo tables, the recursion limit, the
# evaluator's thread stack size).  Re-entrant.  dsp.compile() does not hold it around the
# cache lookup or the JIT load: those have their own locks (runtime/dsp.py _reserve_symbol).
COMPILE_LOCK = threading.RLock()


def run_pipeline(source: str, filename: str, opts: CompileOptions, until: Optional[str] = None) -> Stages:
    """Run the passes in order (up to and including `until`); thread-safe (COMPILE_LOCK)."""
    with COMPILE_LOCK:
        return _run_pipeline(source, filename, opts, until)


def _run_pipeline(source: str, filename: str, opts: CompileOptions, until: Optional[str]) -> Stages:
    from ..signals.nodes import new_epoch

    new_epoch()  # creation serials start afresh: the result never depends on earlier compiles
    _forget_memos()
    st = Stages(source=source, filename=filename)
    if not filename.startswith("<"):
        st.name = os.path.splitext(os.path.basename(filename))[0]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        for p in PASSES:
            p(st, opts)
            if until == p.__name__:
                break
    except RecursionError:
        raise DiffaustError(f"{filename}: program too deeply nested to compile") from None
    except DiffaustError as e:
        if e.span is None and getattr(e, "sig", None) is not None:
            e.span = _locate(e.sig, st.spans)
        raise
    finally:
        sys.setrecursionlimit(old)
    return st


def _forget_memos() -> None:
    """Empty the typing pass's memo tables (process-wide, keyed by signal): what they hold
    depends on the order groups were typed in (an environment keyed by recursion name), so
    entries left by an earlier compile could change this one's natures; emptied, a compile
    types as in a fresh process (and nodes of earlier compiles are freed)."""
    from ..signals import types

    for memo in (types._GROUP_NATURES, types._FREE, types._CLOSED):
        memo.clear()


def _locate(sig, spans: dict):
    """The source place of a signal found wrong after propagation: its own, or that of the
    outermost node under it that has one (a delay amount, a widget)."""
    from ..signals.nodes import walk

    if not spans:
        return None
    for n in reversed(walk([sig])):
        span = spans.get(n)
        if span is not None:
            return span
    return None


_DUMP_UNTIL = {"ast": "parse_source", "box": "evaluate_ast", "sig": "differentiate", "sched": "schedule_program"}


def dump_stage(path: str, stage: str, **options) -> str:
    """The printed result of one stage (`ast`, `box`, `sig`, `sched`) for a .dsp file."""
    from .dsp import _read_source

    source, filename = _read_source(path)
    st = run_pipeline(source, filename, CompileOptions(**options), until=_DUMP_UNTIL[stage])
    if stage == "ast":
        from ..syntax.printer import format_ast

        return format_ast(st.ast)
    if stage == "box":
        from ..boxes.printer import format_box

        return f"process = {format_box(st.box)};"
    if stage == "sig":
        from ..signals.printer import format_program

        text = format_program(st.signals)
        if st.diff_params:
            n = len(st.outputs)
            names = [f"d out{o}/d {v.attr.label}" for o in range(n) for v in st.diff_params]
            text += "\n" + "\n".join(f"out{n + k} is {name}" for k, name in enumerate(names))
        return text
    from ..codegen.clike import format_schedule

    return format_schedule(st.program)
