"""The primitive table (src/diffaust/primitives/table.py), entry by entry, through every backend.

ROWS has one row per entry of PRIMITIVES: Faust expressions of an input signal `x` (noise in
[-1, 1)) that use the primitive, its int and real forms where it has both.  All rows are
rendered as one program (one output per expression) by

  * the LLVM JIT and the Python interpreter of the same schedule (always), and
  * the real Faust compiler and diffaust's C++ export (with the `reference` oracle),

and each row checks its own outputs.  Adding a primitive: its entry in the table plus a row
here (test_every_primitive_has_a_row fails until the row is there).

The lists derived from the table (box arities, the lexer's keywords, the libm symbols
registered with the JIT, the foreign functions that are primitives) are pinned below to
the literal lists they replaced.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffaust
import faustref
from diffaust.codegen import interp
from diffaust.codegen.cpp import emit_cpp_stages
from diffaust.errors import DiffaustError
from diffaust.primitives.table import PRIMITIVES, Primitive, libm_symbols
from diffaust.reference import with_round_shim
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

# name -> expressions in x (noise in [-1, 1)); `i` = int(x * 100) is an int signal
ROWS: dict[str, tuple[str, ...]] = {
    "+": ("x + 0.25", "i + 7"),
    "-": ("x - 0.25", "i - 7"),
    "*": ("x * 3.5", "i * 123456789"),
    "/": ("x / 0.3", "i / 7"),
    "%": ("x % 0.3", "i % 7", "i % (i % 2)"),
    "<": ("x < 0.1", "i < 5"),
    "<=": ("x <= 0.1", "i <= 5"),
    ">": ("x > 0.1", "i > 5"),
    ">=": ("x >= 0.1", "i >= 5"),
    "==": ("x == x@1", "(i % 3) == 1"),
    "!=": ("x != x@1", "(i % 3) != 1"),
    "&": ("i & 12", "x * 50 & 7"),
    "|": ("i | 3", "x * 50 | 3"),
    "xor": ("i xor 5", "x * 50 xor 5"),
    "<<": ("i << 2", "x * 8 << 3"),
    ">>": ("i >> 1", "x * 80 >> 3"),
    "sin": ("sin(x * 3)",),
    "cos": ("cos(x * 3)",),
    "tan": ("tan(x)",),
    "asin": ("asin(x)",),
    "acos": ("acos(x)",),
    "atan": ("atan(x * 4)",),
    "exp": ("exp(x * 2)",),
    "log": ("log(abs(x) + 0.01)",),
    "log10": ("log10(abs(x) + 0.01)",),
    "sqrt": ("sqrt(abs(x))",),
    "floor": ("floor(x * 4)",),
    "ceil": ("ceil(x * 4)",),
    "rint": ("rint(x * 4)",),
    "round": ("round(x * 4)",),
    "atan2": ("atan2(x, x@1)",),
    "pow": ("pow(abs(x) + 0.5, x * 3)", "pow(i, 2)"),
    "^": ("(abs(x) + 0.5) ^ (x * 3)", "i ^ 3"),
    "fmod": ("fmod(x * 3, 0.7)",),
    "remainder": ("remainder(x * 3, 0.7)",),
    "abs": ("abs(x)", "abs(i)"),
    "min": ("min(x, 0.2)", "min(i, 20)", "min(i, x)"),
    "max": ("max(x, -0.2)", "max(i, -20)", "max(i, x)"),
    "int": ("int(x * 100.7)",),
    "float": ("float(i) * 0.5",),
    "select2": ("select2(x > 0, x, 0 - x)", "select2(i, 1, 2)"),
    "select3": ("select3(int(x * 2 + 1), 1, 2, 3)", "select3(x * 2 + 1, x, 2, 3)"),
    "attach": ("attach(x, x * 2)",),
    "enable": ("enable(x, x > 0)",),
    "control": ("control(x, x > 0)",),
    "lowest": ("lowest(x * 2)",),
    "highest": ("highest(x * 2)",),
    "assertbounds": ("assertbounds(-1, 1, x)",),
}

EXPRS = [(name, k, e) for name, row in ROWS.items() for k, e in enumerate(row)]
SOURCE = "process(x) = " + ", ".join(e for _, _, e in EXPRS) + " with { i = int(x * 100); };"
# Faust 2.54.9 has these keywords but cannot compile them (an internal error): diffaust only
FAUST_LACKS = {"lowest", "highest", "assertbounds"}
# compared with Faust elsewhere, not here: Faust's C++ (without -ec) computes control's signal
# whatever its condition, diffaust gives 0 while the condition is 0
FAUST_DIFFERS = {"control"}
# the same outputs for Faust, those rows as 0 (`round` comes from the reference's shim)
REF_SOURCE = with_round_shim(
    "process(x) = " + ", ".join("0" if name in FAUST_LACKS else e for name, _, e in EXPRS)
    + " with { i = int(x * 100); };")
CHANNEL = {(name, k): ch for ch, (name, k, _) in enumerate(EXPRS)}
N = 512
TOL = {True: 1e-9, False: 1e-5}


def _x(double: bool) -> np.ndarray:
    x = faustref.noise_input(1, N)
    return x if double else x.astype(np.float32)


def _close(got, ref, tol, what):
    with np.errstate(invalid="ignore"):
        ok = (got == ref) | (np.abs(got - ref) <= tol * (1 + np.abs(ref))) | (np.isnan(got) & np.isnan(ref))
    if not ok.all():
        k = int(np.argwhere(~ok)[0][0])
        raise AssertionError(f"{what}: {int((~ok).sum())} samples differ, first at {k}: {got[k]!r} vs {ref[k]!r}")


@pytest.fixture(scope="module")
def rendered():
    """Per precision: (LLVM outputs, interpreter outputs, the schedule's pipeline state)."""
    out = {}
    for double in (False, True):
        x = _x(double)
        dsp = diffaust.compile(SOURCE, double=double, use_cache=False)
        st = run_pipeline(SOURCE, "<string>", CompileOptions(double=double))
        out[double] = (dsp.render(x).astype(np.float64), interp.run(st.program, x, N).astype(np.float64), st)
    return out


def test_every_primitive_has_a_row():
    assert set(ROWS) == set(PRIMITIVES), "a primitive entry without a row here (or a row without an entry)"


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_llvm_matches_interpreter(rendered, name, double):
    y, yi, _ = rendered[double]
    for k, expr in enumerate(ROWS[name]):
        ch = CHANNEL[(name, k)]
        # libm (LLVM) and NumPy may round transcendental functions one ulp apart
        _close(y[ch], yi[ch], 1e-12 if double else 1e-6, f"{expr}: LLVM vs interp")


@pytest.fixture(scope="module")
def reference(faust_ref):
    """Per precision: (Faust's outputs, the C++ export's outputs)."""
    out = {}
    for double in (False, True):
        x = faustref.noise_input(1, N)
        ref = faust_ref.render_reference(REF_SOURCE, n=N, x=x, double=double)
        st = run_pipeline(SOURCE, "<string>", CompileOptions(double=double))
        prog = faust_ref.build_cpp_bundle({"prims": emit_cpp_stages(st, CompileOptions(double=double), "prims")},
                                          double=double)
        out[double] = (ref, faust_ref.run_binary(prog, n=N, x=x, cls="prims"))
    return out


@pytest.mark.reference
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_matches_faust(rendered, reference, name, double):
    if name in FAUST_LACKS | FAUST_DIFFERS:
        pytest.skip(f"not compared with Faust 2.54.9: {name}")
    y = rendered[double][0]
    ref, cpp = reference[double]
    for k, expr in enumerate(ROWS[name]):
        ch = CHANNEL[(name, k)]
        _close(y[ch], ref[ch], TOL[double], f"{expr}: LLVM vs Faust")
        _close(cpp[ch], ref[ch], TOL[double], f"{expr}: C++ export vs Faust")


# ------------------------------------------------ backends: hooks, and the error of a missing one


def test_backends_name_no_primitive():
    """The backends lower primitives from their entries only: no primitive name in their code
    (the generic rules name LLVM instructions and C predicates, which the entries give)."""
    import inspect
    import re

    from diffaust.codegen import clike, cpp, interp as interp_mod, llvm

    # `int`, `float`: natures and C types too; `xor`: an LLVM instruction too
    words = {n for n in PRIMITIVES if n.isidentifier()} - {"int", "float", "xor"}
    for mod in (llvm, cpp, interp_mod, clike):
        text = inspect.getsource(mod)
        found = {w for w in words if re.search(rf"""["']{w}["']""", text)}
        assert not found, f"{mod.__name__} names primitives {sorted(found)}"
        # no dispatch on an op's name: nothing compared with a primitive's name
        compared = re.findall(r"""(?:name|code\[\d\])\s*(?:==|!=)\s*["']([^"']+)["']""", text)
        for group in re.findall(r"""(?:name|code\[\d\])\s+(?:not\s+)?in\s*[({]([^)}]*)[)}]""", text):
            compared += re.findall(r"""["']([^"']+)["']""", group)
        assert not set(compared) & set(PRIMITIVES), f"{mod.__name__} compares with {set(compared) & set(PRIMITIVES)}"


def test_a_primitive_without_a_rule_is_refused(monkeypatch):
    from diffaust.codegen.schedule import Const, Op

    foo = Primitive("foo", 1, lambda n: n, "same", None, None, None, ("special",), "foo({0})")
    monkeypatch.setitem(PRIMITIVES, "foo", foo)
    st = run_pipeline("process = _;", "<string>", CompileOptions())
    m = interp._Machine(st.program, 44100)
    with pytest.raises(DiffaustError, match="primitive 'foo' has no interp evaluation"):
        m.op(Op("foo", (Const("real", 1.0),), "real"), [np.float32(1.0)])
    from diffaust.codegen.cpp import _Emitter

    em = _Emitter(st.program, "mydsp")
    with pytest.raises(DiffaustError, match="primitive 'foo' has no cpp lowering"):
        em.op(Op("foo", (Const("real", 1.0),), "real"), "compute")


# ------------------------------------------------ lists derived from the table

OLD_KEYWORDS = frozenset(
    """
    with letrec where
    mem prefix int float any rdtable rwtable select2 select3
    ffunction fconstant fvariable
    button checkbox vslider hslider nentry vgroup hgroup tgroup
    vbargraph hbargraph soundfile attach
    acos asin atan atan2 cos sin tan exp log log10 pow sqrt abs min max
    fmod remainder floor ceil rint
    seq par sum prod inputs outputs
    import component library environment waveform route enable control
    declare case assertbounds lowest highest xor
    singleprecision doubleprecision quadprecision fixedpointprecision
    """.split()
)

OLD_ARITY = {
    "+": 2, "-": 2, "*": 2, "/": 2, "%": 2, "^": 2,
    "<": 2, "<=": 2, ">": 2, ">=": 2, "==": 2, "!=": 2,
    "&": 2, "|": 2, "xor": 2, "<<": 2, ">>": 2,
    "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1, "atan2": 2,
    "exp": 1, "log": 1, "log10": 1, "pow": 2, "sqrt": 1, "abs": 1,
    "min": 2, "max": 2, "fmod": 2, "remainder": 2,
    "floor": 1, "ceil": 1, "rint": 1, "round": 1,
    "int": 1, "float": 1,
    "mem": 1, "@": 2, "prefix": 2,
    "select2": 3, "select3": 4, "rdtable": 3, "rwtable": 5,
    "attach": 2, "enable": 2, "control": 2,
    "lowest": 1, "highest": 1, "assertbounds": 3,
}

OLD_LIBM = frozenset(
    """sin cos tan asin acos atan atan2 exp log log10 pow sqrt fmod remainder floor ceil rint round
    fabs tanh sinh cosh asinh acosh atanh cbrt hypot exp2 log2 expm1 log1p trunc fmin fmax copysign
    erf erfc tgamma lgamma exp10 nearbyint lrint""".split()
)


def test_lexer_keywords_derive_from_the_table():
    from diffaust.syntax.lexer import KEYWORDS

    assert KEYWORDS == OLD_KEYWORDS


def test_primitive_arity_derives_from_the_table():
    from diffaust.primitives.arity import PRIMITIVE_ARITY

    assert PRIMITIVE_ARITY == OLD_ARITY
    for name, p in PRIMITIVES.items():
        assert PRIMITIVE_ARITY[name] == p.arity


def test_jit_libm_symbols_derive_from_the_table():
    from diffaust.primitives.foreign import FOREIGN

    assert set(libm_symbols()) | set(FOREIGN) == OLD_LIBM


def test_foreign_primitives_share_the_table_rule():
    from diffaust.primitives.foreign import FOREIGN, FROM_PRIMITIVES

    for name in FROM_PRIMITIVES:
        assert FOREIGN[name].arity == PRIMITIVES[name].arity
        assert PRIMITIVES[name].jvp is not None


ADD_ONE = r'''
import json, math, sys
import numpy as np
from diffaust.primitives import table as T

# THE ONE ENTRY: cbrt as a new primitive (libm's cbrt), cbrt' = 1/(3 cbrt²)
T.math1("cbrt", np.cbrt, T._unary(lambda B, x: B.div(B.const(1.0 / 3.0), B.mul(B.prim("cbrt", x), B.prim("cbrt", x)))),
        T.iv_mono(lambda v: math.copysign(abs(v) ** (1 / 3), v)))

import diffaust
from diffaust.codegen import interp
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

src = 'process = _ + 1.5 : cbrt : *(hslider("g [diff:1]", 2, 0, 4, 0.01));'
x = np.linspace(-1, 1, 64)[None, :]
d = diffaust.compile(src, double=True, diff=True, use_cache=False)
y, dy = d.render_jvp(x)
g = d.vjp(x, np.ones((1, 64)))
st = run_pipeline(src, "<s>", CompileOptions(double=True))
yi = interp.run(st.program, x, 64)
cpp = diffaust.compile(src, double=True, use_cache=False).listing("cpp")
json.dump({"y": y[0].tolist(), "dy": dy[0, 0].tolist(), "gp": g.params["g"], "gx": g.input[0].tolist(),
           "interp": yi[0].tolist(), "cpp_has_cbrt": "cbrt(" in cpp}, sys.stdout)
'''


def test_a_primitive_is_added_by_one_entry():
    """A new primitive registered by one `Primitive` entry (before diffaust's other modules
    load) is a keyword, has an arity, compiles through the LLVM JIT, the interpreter and the
    C++ export, and differentiates in forward and reverse mode: nothing else to touch."""
    import json
    import subprocess
    import sys

    import numpy as np

    r = subprocess.run([sys.executable, "-c", ADD_ONE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    x = np.linspace(-1, 1, 64)
    np.testing.assert_allclose(out["y"], 2 * np.cbrt(x + 1.5), rtol=1e-15)
    np.testing.assert_allclose(out["interp"], out["y"], rtol=1e-15)
    np.testing.assert_allclose(out["dy"], np.cbrt(x + 1.5), rtol=1e-15)          # d/dg
    assert abs(out["gp"] - np.sum(np.cbrt(x + 1.5))) < 1e-12                     # Σ d/dg
    np.testing.assert_allclose(out["gx"], 2 / (3 * np.cbrt(x + 1.5) ** 2), rtol=1e-14)  # d/dx
    assert out["cpp_has_cbrt"]
