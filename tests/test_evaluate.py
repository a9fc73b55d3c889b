"""The evaluator (AST -> box): arities, application, patterns, iterations, libraries, errors.

Arities marked "faust" were measured with the reference compiler (Faust 2.54.9,
`getNumInputs`/`getNumOutputs` of the generated C++).
"""

import os
import time

import pytest

from diffaust.boxes.arity import box_arity
from diffaust.boxes.box import (
    BConst, BPar, BPrim, BRoute, BSeq, BSymbolic, BWaveform, BWidget, BWire,
)
from diffaust.boxes.evaluate import EvalOptions, evaluate_file, evaluate_source
from diffaust.boxes.numeric import box_number
from diffaust.boxes.printer import format_box
from diffaust.errors import FaustEvalError

HAVE_FAUST_LIBS = os.path.isfile("/usr/share/faust/stdfaust.lib")
needs_libs = pytest.mark.skipif(not HAVE_FAUST_LIBS, reason="Faust libraries not installed")


def ev(src, tmp_path=None, **opts):
    filename = str(tmp_path / "prog.dsp") if tmp_path is not None else "prog.dsp"
    if tmp_path is not None:
        (tmp_path / "prog.dsp").write_text(src)
    return evaluate_source(src, filename, EvalOptions(**opts))


def box(src, **opts):
    return ev(src, **opts).process


def arity(src, **opts):
    return box_arity(box(src, **opts))


def number(src):
    return box_number(box(src))


# ----------------------------------------------------------------- arities


@pytest.mark.parametrize(
    "src, expected",
    [
        ("process = _;", (1, 1)),
        ("process = !;", (1, 0)),
        ("process = 1;", (0, 1)),
        ("process = _,_ : +;", (2, 1)),
        ("process = _ <: _,_,_,_;", (1, 4)),
        ("process = _,_,_,_ :> _;", (4, 1)),
        ("process = _,_,_,_ :> _,_;", (4, 2)),
        ("process = + ~ _;", (1, 1)),
        ("process = (_,_ : +) ~ (_ : *(0.5));", (1, 1)),
        ("process = _ : sin;", (1, 1)),
        ("process = select2;", (3, 1)),
        ("process = rwtable;", (5, 1)),
        ("process = _';", (1, 1)),
        ("process = _ @ 3;", (1, 1)),
        ("process = waveform{1, 2, 3};", (0, 2)),
        ("process = route(2, 3, (1, 1), (2, 3));", (2, 3)),
        ("process = inputs(+), outputs(_ <: _,_);", (0, 2)),
        ("process = hslider(\"g\", 0, 0, 1, 0.1), hbargraph(\"m\", 0, 1);", (1, 2)),
        ("process = ffunction(float foo(float, int), <foo.h>, \"\");", (2, 1)),
        ("process = fconstant(int fSamplingFreq, <math.h>);", (0, 1)),
        # faust: 2 in, 2 out
        ("process = x, y letrec { 'x = y + 1; 'y = x * 2 + _; };", (2, 2)),
        # faust: seq with 0 iterations is a bus as wide as its body
        ("process = seq(i, 0, (_,_));", (2, 2)),
        ("process = 1, par(i, 0, _);", (0, 1)),
        ("process = _, sum(i, 0, _);", (1, 1)),
    ],
)
def test_arity(src, expected):
    assert arity(src) == expected


def test_infix_is_seq_of_par():
    b = box("process = _ + 1;")
    assert b == BSeq(BPar(BWire(), BConst(1)), BPrim("+"))


def test_numbers_keep_int_or_real():
    assert box("process = 1;") == BConst(1)
    assert box("process = 1.0;") == BConst(1.0)
    assert BConst(1) != BConst(1.0)
    assert type(box("process = 1.0;").value) is float


# ----------------------------------------------------------------- application


def test_partial_application_of_infix_primitives_takes_the_right_operand():
    # faust: -(1) is _-1, /(2) is _/2, @(3) delays the input by 3
    assert box("process = -(1);") == BSeq(BPar(BWire(), BConst(1)), BPrim("-"))
    assert box("process = /(2);") == BSeq(BPar(BWire(), BConst(2)), BPrim("/"))
    assert box("process = @(3);") == BSeq(BPar(BWire(), BConst(3)), BPrim("@"))
    assert box("process = ^(2);") == BSeq(BPar(BWire(), BConst(2)), BPrim("^"))
    assert box("f = -; process = f(1);") == BSeq(BPar(BWire(), BConst(1)), BPrim("-"))


def test_partial_application_of_other_boxes_takes_the_first_inputs():
    # faust: fmod(2) is fmod(2,_), select2(1) is select2(1,_,_), (_,_:-)(1) is 1-_
    assert box("process = fmod(2);") == BSeq(BPar(BConst(2), BWire()), BPrim("fmod"))
    assert box("process = max(2);") == BSeq(BPar(BConst(2), BWire()), BPrim("max"))
    assert arity("process = select2(1);") == (2, 1)
    b = box("f = (_,_ : -); process = f(1);")
    assert b.a == BPar(BConst(1), BWire())
    assert arity("process = +(1, 2);") == (0, 1)


def test_too_many_arguments():
    with pytest.raises(FaustEvalError, match="too many arguments"):
        box("process = (_,_ : +)(1, 2, 3);")


def test_closure_used_as_a_box_is_symbolic():
    b = box("f(x) = x * 2; process = f;")
    assert isinstance(b, BSymbolic)
    assert box_arity(b) == (1, 1)
    assert arity("f(x, y) = x - y; process = f;") == (2, 1)
    assert arity("process = \\(x).(x + 1);") == (1, 1)


def test_currying_and_extra_arguments():
    assert number("f(x, y) = x - y; g = f(10); process = g(3);") == 7
    # more arguments than parameters: the rest applies to the result
    assert number("f(x) = -(x); process = f(1, 5);") == 4
    assert arity("f(x) = _ * x; process = f(2);") == (1, 1)


def test_arguments_are_folded_to_numbers():
    assert number("f(n) = n; process = f(2 + 3);") == 5
    assert box("f(n) = n; process = f(2 + 3);") == BConst(5)


# ----------------------------------------------------------------- pattern matching


def test_multi_rule_definitions():
    assert number("fact(0) = 1; fact(n) = n * fact(n - 1); process = fact(5);") == 120
    # faust: rules of one name need not be consecutive
    assert number("f(0) = 1; g = 2; f(n) = 3; process = f(0) + g;") == 3


def test_pattern_numbers_compare_after_folding_int_and_real_differ():
    assert number("f(2) = 10; f(n) = 20; process = f(1 + 1);") == 10
    # faust: an int pattern does not match a real argument, nor the reverse
    assert number("f(1) = 10; f(n) = 20; process = f(1.0);") == 20
    assert number("f(1.0) = 10; f(n) = 20; process = f(1);") == 20
    # faust: an exact int division folds to an int (re.zita_rev1 relies on it: fanflip(N/2))
    assert number("f(4) = 10; f(n) = 20; process = f(8 / 2);") == 10
    assert number("f(4.0) = 10; f(n) = 20; process = f(8 / 2);") == 20


def test_structural_patterns():
    assert box("f(x:y) = y; process = f(_ : sin);") == BPrim("sin")
    assert number("f((x, y)) = y; process = f((1, 2));") == 2
    assert number("count((x, xs)) = 1 + count(xs); count(x) = 1; process = count((7, 8, 9));") == 3
    assert number("f(x, x) = 1; f(x, y) = 0; process = f(3, 3) * 10 + f(3, 4);") == 10


def test_case_expression():
    assert number("process = case { (0) => 5; (n) => n * 2; }(4);") == 8
    assert arity("process = case { (0) => 5; (n) => n * 2; };") == (1, 1)


def test_no_rule_matches():
    with pytest.raises(FaustEvalError, match="no rule of 'f' matches"):
        box("f(0) = 1; f(1) = 2; process = f(7);")


# ----------------------------------------------------------------- scopes


def test_with_and_lazy_mutual_recursion_of_definitions():
    assert number("process = a with { a = b + 1; b = 2; };") == 3
    assert number("process = f(3) with { f(n) = n * k; k = 10; };") == 30
    # unused broken definitions are never evaluated
    assert number("broken = nothere; process = 1;") == 1


def test_environment_and_access():
    assert number("e = environment { a = 1; b = a + 1; }; process = e.b;") == 2
    assert number("process = environment { x = 4; }.x;") == 4


def test_local_redefinition():
    assert number("e = environment { a = 1; b = a * 10; }; process = e[a = 2;].b;") == 20
    assert number("f(x) = x + k; k = 1; process = f[k = 5;](1);") == 6


def test_letrec_builds_a_recursion():
    b = box("process = x letrec { 'x = x + 1; };")
    assert box_arity(b) == (0, 1)
    assert "~" in format_box(b)


def test_iterations():
    assert arity("N = 3; process = par(i, 2 * N, _);") == (6, 6)
    assert number("process = sum(i, 4, i + 1);") == 10
    assert number("process = prod(i, 4, i + 1);") == 24
    assert arity("process = seq(i, 3, _ * 2);") == (1, 1)
    assert box("process = par(i, 0, _);") == BRoute(0, 0, ())
    with pytest.raises(FaustEvalError, match="must be a constant number"):
        box("process = par(i, hslider(\"n\", 1, 1, 4, 1), _);")


def test_widgets_labels_and_groups():
    b = box('process = hgroup("mix", par(i, 2, vslider("ch %i", 0.5, 0, 1, 0.01)));')
    assert isinstance(b, BPar)
    assert b.a == BWidget("vslider", "ch 0", 0.5, 0.0, 1.0, 0.01, groups=(("h", "mix"),))
    assert b.b.label == "ch 1"
    w = box('process = vgroup("a", hgroup("b", button("go")));')
    assert w.groups == (("v", "a"), ("h", "b"))
    assert box('process = hslider("x %2i", 0, 0, 1, 0.1) with { i = 3; };').label == "x  3"


def test_waveform_route_ffunction():
    assert box("process = waveform{1, 2.5, -3};") == BWaveform((1, 2.5, -3))
    r = box("process = route(2, 2, 1, 2, 2, 1);")
    assert r == BRoute(2, 2, ((1, 2), (2, 1)))
    r = box("process = route(3, 3, par(i, 3, (i + 1, 3 - i)));")
    assert r.pairs == ((1, 3), (2, 2), (3, 1))


def test_precision_variants():
    src = "singleprecision k = 1; doubleprecision k = 2; process = k;"
    assert number(src) == 1
    assert box_number(evaluate_source(src, "p.dsp", EvalOptions(double=True)).process) == 2


def test_metadata():
    r = ev('declare name "demo"; declare author "me"; process = _;')
    assert r.metadata == [("name", "demo"), ("author", "me")]


# ----------------------------------------------------------------- numbers


def test_box_number_folding():
    assert box_number(BSeq(BPar(BConst(2), BConst(3)), BPrim("+"))) == 5
    assert number("process = 7 / 2;") == 3.5
    assert number("process = int(7 / 2);") == 3
    assert number("process = -7 % 3;") == -1
    assert number("process = 2147483647 + 1;") == -2147483648
    assert number("process = 2 ^ 3;") == 8 and isinstance(number("process = 2 ^ 3;"), int)
    assert number("process = 1 << 3, 1 : +;") == 9
    assert number("process = min(1, 2.5);") == 1.0
    assert number("process = 3 > 2;") == 1
    assert number("process = 1 : +(2) : *(3);") == 9
    assert number("process = 5 <: +;") == 10
    assert number("process = 1, 2, 3 :> _;") == 6
    assert box_number(box("process = _;")) is None
    assert number('process = hslider("x", 0, 0, 1, 0.1) + 1;') is None


# ----------------------------------------------------------------- errors


def test_undefined_symbol_with_suggestion(tmp_path):
    src = "gain = 0.5;\nprocess = _ * gian;\n"
    with pytest.raises(FaustEvalError) as e:
        ev(src, tmp_path)
    text = str(e.value)
    assert "undefined symbol 'gian'" in text
    assert "did you mean 'gain'?" in text
    assert text.startswith(f"{tmp_path / 'prog.dsp'}:2:")


def test_arity_mismatch_message(tmp_path):
    src = "process =\n  (_,_) : sin;\n"
    with pytest.raises(FaustEvalError) as e:
        ev(src, tmp_path)
    text = str(e.value)
    assert "sequential composition A : B: the 2 outputs of A must equal the 1 input of B" in text
    assert "A = _, _" in text and "B = sin" in text
    assert e.value.span.line == 2
    assert text.startswith(f"{tmp_path / 'prog.dsp'}:2:")


@pytest.mark.parametrize(
    "src, msg",
    [
        ("process = _,_ <: _,_,_;", "split composition"),
        ("process = _,_,_ :> _,_;", "merge composition"),
        ("process = _ ~ (_,_);", "recursive composition"),
    ],
)
def test_other_composition_errors(src, msg):
    with pytest.raises(FaustEvalError, match=msg):
        box(src)


def test_missing_library(tmp_path):
    src = 'import("nosuchlib.lib");\nprocess = _;\n'
    with pytest.raises(FaustEvalError) as e:
        ev(src, tmp_path)
    assert "cannot find library 'nosuchlib.lib' (searched:" in str(e.value)
    assert e.value.span.line == 1


def test_missing_process():
    with pytest.raises(FaustEvalError, match="no 'process' definition"):
        box("foo = 1;")


def test_multiple_definitions():
    with pytest.raises(FaustEvalError, match="multiple definitions of symbol 'x'"):
        box("x = 1; x = 2; process = x;")


@pytest.mark.parametrize(
    "src, msg",
    [
        ("x = x; process = x;", "recursive definition of 'x'"),
        ("a = b; b = a + 1; process = a;", "recursive definition"),
        ("f(n) = f(n + 1); process = f(0);", "infinite recursion while evaluating 'f'"),
        ("f(n) = g(n) + 1; g(n) = f(n * 2); process = f(1);", "infinite recursion"),
    ],
)
def test_infinite_definitional_recursion_is_an_error_not_a_hang(src, msg):
    t = time.time()
    with pytest.raises(FaustEvalError, match=msg):
        box(src)
    assert time.time() - t < 5


# ----------------------------------------------------------------- files and libraries


def test_import_library_component(tmp_path):
    (tmp_path / "mylib.lib").write_text("double(x) = 2 * x;\nK = 21;\n")
    (tmp_path / "comp.dsp").write_text("gain = 3;\nprocess = *(gain);\n")
    src = (
        'import("mylib.lib");\n'
        'm = library("mylib.lib");\n'
        'c = component("comp.dsp");\n'
        "process = double(K), m.K, c, c[gain = 4;];\n"
    )
    r = ev(src, tmp_path)
    assert box_arity(r.process) == (2, 4)
    assert box_number(r.process.a) == 42
    files = {os.path.basename(f) for f in r.files}
    assert {"prog.dsp", "mylib.lib", "comp.dsp"} <= files


def test_import_redefinition_is_an_error(tmp_path):
    (tmp_path / "a.lib").write_text("foo = 1;\n")
    with pytest.raises(FaustEvalError, match="redefinition of symbols are not allowed: 'foo'"):
        ev('import("a.lib");\nfoo = 2;\nprocess = foo;\n', tmp_path)


def test_library_is_read_only_when_accessed(tmp_path):
    (tmp_path / "broken.lib").write_text("this is not faust ((\n")
    assert box_number(ev('b = library("broken.lib");\nprocess = 1;\n', tmp_path).process) == 1


def test_import_dirs_option(tmp_path):
    d = tmp_path / "inc"
    d.mkdir()
    (d / "x.lib").write_text("X = 7;\n")
    r = evaluate_source('import("x.lib"); process = X;', str(tmp_path / "p.dsp"), EvalOptions(import_dirs=(str(d),)))
    assert box_number(r.process) == 7


def test_parse_cache_is_never_stale(tmp_path):
    from diffaust.boxes import loader

    p = tmp_path / "prog.dsp"
    p.write_text("process = 1;\n")
    assert box_number(evaluate_file(str(p)).process) == 1
    st = os.stat(p)
    p.write_text("process = 2;\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: the content decides
    assert box_number(evaluate_file(str(p)).process) == 2
    loader.clear_memory_cache()
    assert box_number(evaluate_file(str(p)).process) == 2


# ----------------------------------------------------------------- printer


def test_printer():
    assert format_box(box("process = _ + 1;")) == "_ + 1"
    assert format_box(box("process = (_ + 1) * 2;")) == "(_ + 1) * 2"
    assert format_box(box("process = _ <: (_, _ : +);")) == "_ <: _ + _"
    assert format_box(box("process = (+ ~ _), _ : (_, _ <: _, _, _, _) ;")) == "+ ~ _, _ : (_, _ <: _, _, _, _)"
    assert format_box(box("process = (_, _ : +)';")) == "(_ + _)'"
    assert format_box(box("process = sin(_);")) == "sin(_)"


# ----------------------------------------------------------------- real Faust libraries


@needs_libs
@pytest.mark.parametrize(
    "expr, expected",
    [
        ("no.noise", (0, 1)),
        ("ma.PI, ma.SR", (0, 2)),
        ("os.osc(440)", (0, 1)),
        ("fi.lowpass(3, 1000)", (1, 1)),
        ("de.delay(100, 10)", (1, 1)),
        ("si.smoo", (1, 1)),
        ("ba.time", (0, 1)),
        ('en.adsr(0.1, 0.1, 0.5, 0.2, button("gate"))', (0, 1)),
        ("fi.iir((1, 2, 3), (0.1, 0.2))", (1, 1)),
        ("re.mono_freeverb(0.5, 0.5, 0.5, 23)", (1, 1)),
        ("ro.interleave(2, 3)", (6, 6)),
    ],
)
def test_real_libraries(expr, expected):
    r = evaluate_source(f'import("stdfaust.lib");\nprocess = {expr};\n', "prog.dsp")
    assert box_arity(r.process) == expected


@needs_libs
def test_real_library_values():
    r = evaluate_source('import("stdfaust.lib");\nprocess = ma.PI, ma.SR;\n', "prog.dsp")
    assert box_number(r.process.a) == pytest.approx(3.141592653589793)
    assert "fSamplingFreq" in format_box(r.process.b)
    assert any(f.endswith("maths.lib") for f in r.files)
