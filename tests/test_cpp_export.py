"""`diffaust compile -lang cpp`: the exported C++ class against diffaust's LLVM backend.

Every program of tests/programs/, every bundled example (with and without -diff) and a
few stdfaust programs are exported to C++ (codegen/cpp.py), built with g++ against
Faust's architecture headers with the reference driver (diffaust.reference), and run on
noise input, 4096 samples in blocks of 256: the outputs (with -diff: primal outputs and
derivatives) must equal diffaust's LLVM `Dsp` sample for sample

    double: |err| <= 1e-12·(1 + |ref|)        float: |err| <= 1e-6·(1 + |ref|)

(they are in fact bit-identical: both use the same libm functions, no contraction), and
the UI the class builds (paths, kinds, init/min/max/step, widget metadata) must be the
Dsp's parameter table.  To keep the g++ time low all classes of one precision are built
into one binary (`build_cpp_bundle`, cached); the CLI test builds its own class `mydsp`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import diffaust
import faustref
from diffaust import reference
from diffaust.cli import main
from diffaust.codegen.cpp import emit_cpp, emit_cpp_stages
from diffaust.errors import DiffaustError
from diffaust.runtime.dsp import _read_source
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

from test_reference import EXAMPLES, HERE, PROGRAMS, _name, header_params  # the same corpus, named alike

N = 4096
BLOCK = 256
TOL = {True: 1e-12, False: 1e-6}

# programs written here: stdfaust, UI groups, foreign functions/constants/variables
TEXTS = {
    "zita_rev1": 'import("stdfaust.lib"); process = re.zita_rev1_stereo(0, 200, 6000, 3, 4, 44100);',
    "freeverb_demo": 'import("stdfaust.lib"); process = dm.freeverb_demo;',
    "osc_lowpass": ('import("stdfaust.lib"); '
                    'process = os.osc(hslider("freq [diff:1] [unit:Hz]", 440, 50, 2000, 1)) * 0.5 + no.noise * 0.1 '
                    ': fi.lowpass(3, hslider("cutoff", 1000, 100, 5000, 1));'),
    "groups": ('declare name "grouped"; declare author "diffaust \\"tests\\"";\n'
               'process = tgroup("tabs [1]", hgroup("mix", _ * hslider("a [diff:1] [style:knob]", 0.5, 0, 1, 0.1), '
               'vgroup("ch", _ * hslider("h:foo/b [diff:1]", 0.25, 0, 1, 0.05)))) '
               ': _, (hbargraph("meter", -1, 1) : vbargraph("v:lvl/peak", 0, 2));'),
    "foreign": ('f = ffunction(float hypotf|hypot|hypotl (float, float), <math.h>, "");\n'
                'sr = fconstant(int fSamplingFreq, <math.h>);\n'
                'n = fvariable(int count, <math.h>);\n'
                'process(x) = f(x, 0.5) + sr / 44100.0 + n * 1e-3 + nentry("e [diff:1]", 1, 0, 2, 0.5) * x;'),
}


SOURCES = [(_name(p), p) for p in PROGRAMS + EXAMPLES] + [(k, v) for k, v in TEXTS.items()]


def _case_ids():
    for name, _ in SOURCES:
        for diff in (False, True):
            for double in (False, True):
                yield name, diff, double


def _label(name, diff, double):
    return f"{name}{'-diff' if diff else ''}-{'double' if double else 'float'}"


def _source(src):
    if isinstance(src, Path):
        return _read_source(str(src))
    return src, "<string>"


def _emit_all(double: bool) -> dict:
    """{(name, diff): (class name, C++ text) | DiffaustError | None (no [diff:1] parameter)}."""
    out = {}
    for k, (name, src) in enumerate(SOURCES):
        text, filename = _source(src)
        for diff in (False, True):
            opts = CompileOptions(double=double, diff=diff)
            try:
                st = run_pipeline(text, filename, opts)
                if diff and not st.diff_params:
                    out[(name, diff)] = None
                    continue
                cls = f"dsp{k}{'d' if diff else ''}"
                out[(name, diff)] = (cls, emit_cpp_stages(st, opts, cls))
            except DiffaustError as e:
                out[(name, diff)] = e
    return out


@pytest.fixture(scope="module")
def bundles(faust_ref):
    """Per precision: (binary, emitted cases) — every class built into one binary."""
    res = {}
    for double in (False, True):
        cases = _emit_all(double)
        classes = dict(v for v in cases.values() if isinstance(v, tuple))
        try:
            prog = faust_ref.build_cpp_bundle(classes, double=double)
        except faust_ref.FaustRefError as e:
            prog = e
        res[double] = (prog, cases)
    return res


def _llvm_outputs(dsp, x, params):
    """All output channels of the LLVM Dsp (primal, then derivatives), in blocks like the driver."""
    inst = dsp.instance(params)
    ys = []
    for k in range(0, N, BLOCK):
        ys.append(inst.compute(None if x is None else x[:, k:k + BLOCK], min(BLOCK, N - k)))
    return np.concatenate(ys, axis=1).astype(np.float64)


def compare(got: np.ndarray, ref: np.ndarray, double: bool) -> float:
    """Assert |got - ref| <= tol·(1 + |ref|) (NaN where the other is NaN); returns the worst error."""
    assert got.shape == ref.shape, f"shape {got.shape}, C++ {ref.shape}"
    tol = TOL[double]
    with np.errstate(invalid="ignore"):
        err = np.abs(got - ref) / (1 + np.abs(ref))
    nan_ok = np.isnan(got) == np.isnan(ref)
    ok = ((got == ref) | (err <= tol) | (np.isnan(got) & np.isnan(ref))) & nan_ok
    if not ok.all():
        ch, k = np.argwhere(~ok)[0]
        raise AssertionError(f"{int((~ok).sum())} samples differ (tolerance {tol:g}); first at output {ch}, "
                             f"sample {k}: LLVM {got[ch, k]!r}, C++ {ref[ch, k]!r}")
    finite = err[np.isfinite(err)]
    return float(finite.max()) if finite.size else 0.0


_BAD_PATH_CHARS = re.compile(r"[ #*,?\[\]{}()]")  # what Faust's PathBuilder turns into '_'


def check_params(info: dict, dsp, double: bool):
    widgets = [w for w in info["params"] if not w["type"].endswith("bargraph")]
    assert [w["type"] for w in widgets] == [p.kind for p in dsp.params]
    for w, p in zip(widgets, dsp.params):
        assert w["path"] == _BAD_PATH_CHARS.sub("_", p.path), (w, p)
        assert w["label"] == p.label
        assert w["meta"] == {k: v for k, v in p.meta.items()}, (w["meta"], p.meta)
        if p.kind in ("hslider", "vslider", "nentry"):
            rnd = float if double else (lambda v: float(np.float32(v)))
            assert (w["init"], w["min"], w["max"], w["step"]) == (rnd(p.init), rnd(p.min), rnd(p.max), rnd(p.step)), (w, p)


CASES = [pytest.param(n, d, dbl, id=_label(n, d, dbl)) for n, d, dbl in _case_ids()]


@pytest.mark.reference
@pytest.mark.parametrize("name,diff,double", CASES)
def test_cpp_matches_llvm(bundles, name, diff, double):
    prog, cases = bundles[double]
    case = cases[(name, diff)]
    if case is None:
        pytest.skip("no [diff:1] parameter: the -diff program is the plain one")
    if isinstance(case, DiffaustError):
        raise case
    if isinstance(prog, Exception):
        # the bundle did not build: build this class alone for a precise message
        faustref.build_cpp_bundle({case[0]: case[1]}, double=double)
        pytest.fail(f"the bundle failed to build but this class builds alone: {prog}")
    cls = case[0]
    src = dict(SOURCES)[name]
    dsp = diffaust.compile(src if isinstance(src, str) else str(src), double=double, diff=diff)
    info = faustref.binary_info(prog, cls)
    assert info["inputs"] == dsp.inputs
    assert info["outputs"] == dsp.total_outputs
    check_params(info, dsp, double)
    x = faustref.noise_input(dsp.inputs, N) if dsp.inputs else None
    xx = None if x is None else (x if double else x.astype(np.float32))
    variants = [None]
    if isinstance(src, Path) and header_params(src):
        variants.append(header_params(src))
    for params in variants:
        ref = faustref.run_binary(prog, n=N, x=x, params=params, block_size=BLOCK, cls=cls)
        got = _llvm_outputs(dsp, xx, params)
        compare(got, ref, double)


@pytest.mark.reference
def test_groups_build_the_ui_tree(bundles):
    _, cases = bundles[False]
    cls, text = cases[("groups", False)]
    opened = re.findall(r"ui_interface->(open\w+)\(\"([^\"]*)\"\)", text)
    # the same boxes, in the same order, as Faust 2.54.9 builds for this program
    assert opened == [("openVerticalBox", "grouped"), ("openVerticalBox", "lvl"), ("openTabBox", "tabs"),
                      ("openHorizontalBox", "mix"), ("openVerticalBox", "ch"), ("openHorizontalBox", "foo")]
    assert 'ui_interface->declare(0, "1", "");' in text
    assert 'ui_interface->declare(&fParam0, "style", "knob");' in text
    assert 'm->declare("author", "diffaust \\"tests\\"");' in text
    info = faustref.binary_info(bundles[False][0], cls)
    bars = [(w["type"], w["path"]) for w in info["params"] if w["type"].endswith("bargraph")]
    assert bars == [("vbargraph", "/grouped/lvl/peak"), ("hbargraph", "/grouped/meter")]


# ---------------------------------------------------------------- the command


@pytest.mark.reference
@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_cli_compile_lang_cpp(faust_ref, capsys, double):
    path = HERE / "programs" / "onepole.dsp"
    code = main(["compile", "-lang", "cpp", str(path), "-diff"] + (["-double"] if double else []))
    out = capsys.readouterr()
    assert code == 0, out.err
    text = out.out
    assert "class mydsp : public dsp {" in text and "#define FAUSTCLASS mydsp" in text
    assert ("double" if double else "float") + " fSlow" in text
    dsp = diffaust.compile(path, double=double, diff=True)
    assert text.rstrip("\n") == dsp.listing("cpp").rstrip("\n")
    prog = faust_ref.build_cpp(text, double=double)
    info = faust_ref.binary_info(prog)
    assert (info["inputs"], info["outputs"]) == (dsp.inputs, dsp.total_outputs)
    check_params(info, dsp, double)
    x = faustref.noise_input(dsp.inputs, N)
    ref = faust_ref.run_binary(prog, n=N, x=x, block_size=BLOCK)
    compare(_llvm_outputs(dsp, x if double else x.astype(np.float32), None), ref, double)


@pytest.mark.reference
def test_class_runs_in_a_faust_architecture_file(faust_ref, tmp_path):
    """The export fills the <<includeclass>> slot of Faust's minimal.cpp architecture."""
    arch = Path("/usr/share/faust/minimal.cpp")
    if not arch.is_file():
        pytest.skip("Faust's minimal.cpp architecture file is not installed")
    dsp = diffaust.compile(HERE / "programs" / "widgets.dsp", diff=True)
    text = arch.read_text().replace("<<includeIntrinsic>>", "").replace("<<includeclass>>", dsp.listing("cpp"))
    (tmp_path / "main.cpp").write_text(text)
    subprocess.run([reference.CXX, "-std=c++17", "-O0", "main.cpp", "-o", "main"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    p = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "/widgets/grp/plain" in p.stdout and "/widgets/h" in p.stdout


# ---------------------------------------------------------------- errors


def test_unsupported_constructs_raise():
    from diffaust.codegen.schedule import Const, Input, Let, Op, Output, Program, Store, Slot, Var

    def prog(**kw):
        p = Program(inputs=1, outputs=1, real="float", slots=[Slot("fSamplingFreq", "int", 1, "sr"),
                                                               Slot("fConst0", "real", 1, "const")], **kw)
        p.finalize()
        return p

    ok = prog(sample=[Output(0, Op("+", (Input(0), Const("real", 1.0)), "real"))])
    assert "output0[i0] = FAUSTFLOAT((float(input0[i0]) + 1.0f));" in emit_cpp(ok)
    with pytest.raises(DiffaustError, match="unknown primitive 'nosuch'"):
        emit_cpp(prog(sample=[Output(0, Op("nosuch", (Input(0),), "real"))]))
    with pytest.raises(DiffaustError, match="outside of compute"):
        emit_cpp(prog(init=[Let(Var("c1", "real"), Input(0)), Store("fConst0", Var("c1", "real"))]))
    with pytest.raises(DiffaustError, match="cannot lower the statement"):
        emit_cpp(prog(sample=[object()]))
    with pytest.raises(DiffaustError, match="not a valid C\\+\\+ class name"):
        emit_cpp(ok, class_name="1dsp")
    with pytest.raises(DiffaustError, match="'/'"):  # int division has no lowering (as in the LLVM backend)
        emit_cpp(prog(sample=[Output(0, Op("/", (Const("int", 1), Var("n", "int")), "real"))]))


def test_literals_and_names():
    from diffaust.codegen.cpp import _Emitter
    from diffaust.codegen.schedule import Program

    p = Program(inputs=0, outputs=0, real="float")
    p.finalize()
    em = _Emitter(p, "mydsp")
    assert em.real_literal(0.1) == "0.1f" and em.real_literal(1.0) == "1.0f" and em.real_literal(-0.0) == "-0.0f"
    assert em.real_literal(1e-5) == "1e-05f" and "infinity" in em.real_literal(float("inf"))
    assert em.int_literal(-2**31) == "(-2147483647 - 1)"
    assert em.name("R1'd_2") == "R1_d_2" and em.name("int") == "int_1" and em.name("i0") == "i0_1"
    p.real = "double"
    em = _Emitter(p, "mydsp")
    assert em.real_literal(0.1) == "0.1" and em.real_literal(3.0) == "3.0"
