"""Lexer, parser and printer of the Faust front end (diffaust.syntax)."""

from __future__ import annotations

import glob
import os
import random
import sys
import time

import pytest

from diffaust.errors import FaustSyntaxError
from diffaust.syntax import ast as A
from diffaust.syntax.lexer import KEYWORDS, SYMBOLS, tokenize
from diffaust.syntax.parser import parse, parse_expression, parse_file
from diffaust.syntax.printer import format_ast

LIBDIR = "/usr/share/faust"
EXAMPLES = "/usr/share/doc/faust-common/examples"
LIBS = sorted(glob.glob(os.path.join(LIBDIR, "*.lib")))
DSPS = sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.dsp"), recursive=True))

I, N, R = A.Ident, A.Int, A.Real
W = A.Wire()


def C(op, l, r):
    return A.Compose(op, l, r)


def X(op, l, r):
    return A.Infix(op, l, r)


def P(name):
    return A.Prim(name)


def E(text):
    return parse_expression(text)


def kinds(text):
    return [t.kind for t in tokenize(text)]


def syntax_error(text) -> FaustSyntaxError:
    with pytest.raises(FaustSyntaxError) as info:
        parse(text, "t.dsp")
    return info.value


# ---------------------------------------------------------------- lexer


def test_lexer_numbers():
    toks = tokenize("1 42 1. .5 1e-3 1.5E+2 2.5e3 1f 3.f 007")
    assert [t.kind for t in toks] == ["INT", "INT"] + ["REAL"] * 7 + ["INT", "EOF"]
    vals = [t.value for t in toks]
    assert vals[0] == 1 and vals[1] == 42
    assert vals[2] == (1.0, "1.") and vals[3] == (0.5, ".5")
    assert vals[4] == (0.001, "1e-3") and vals[5] == (150.0, "1.5E+2")
    assert vals[7] == (1.0, "1f") and vals[9] == 7


def test_lexer_identifiers_keywords_symbols():
    assert kinds("foo _x x_1 a::b ::c") == ["ID"] * 5 + ["EOF"]
    assert kinds("with sin round par any") == ["with", "sin", "ID", "par", "any", "EOF"]
    # `_` alone is the wire, `__` two wires
    assert kinds("_ __") == ["_", "_", "_", "EOF"]
    assert kinds("<: :> +> << >> <= >= == != => : , ~ + - * / % @ ' & | ^ < > ! ; = ( ) { } [ ] \\ .") == [
        "<:", ":>", "+>", "<<", ">>", "<=", ">=", "==", "!=", "=>", ":", ",", "~", "+", "-", "*", "/", "%",
        "@", "'", "&", "|", "^", "<", ">", "!", ";", "=", "(", ")", "{", "}", "[", "]", "\\", ".", "EOF"]
    for kw in ("mem", "prefix", "rdtable", "rwtable", "select2", "select3", "ffunction", "letrec",
               "where", "route", "soundfile", "enable", "control", "assertbounds", "lowest", "highest",
               "singleprecision", "doubleprecision", "quadprecision", "fixedpointprecision", "xor"):
        assert kw in KEYWORDS


def test_lexer_comments_strings_positions():
    src = '// line comment\n/* block\n comment */ x = "a b\\"c";  //---doc\n<mdoc>text <equation>x</equation></mdoc> y'
    toks = tokenize(src, "f.dsp")
    assert [t.kind for t in toks] == ["ID", "=", "STR", ";", "ID", "EOF"]
    assert (toks[0].line, toks[0].col) == (3, 13)
    assert toks[2].value == 'a b\\"c'  # escapes kept as written
    assert (toks[4].line, toks[4].col) == (4, 42)


@pytest.mark.parametrize(
    "src, msg, line, col",
    [
        ('x = "abc', "unterminated string", 1, 5),
        ("x = 1;\n  /* never closed", "unterminated comment", 2, 3),
        ("x = 1 $ 2;", "unknown character '$'", 1, 7),
        ("x = 1;\ny = a # b;", "unknown character '#'", 2, 7),
    ],
)
def test_lexer_errors(src, msg, line, col):
    e = syntax_error(src)
    assert msg in e.message
    assert (e.span.file, e.span.line, e.span.col) == ("t.dsp", line, col)


# ---------------------------------------------------------- precedences


@pytest.mark.parametrize(
    "src, tree",
    [
        ("a : b , c", C(":", I("a"), C(",", I("b"), I("c")))),
        ("_,1:+", C(":", C(",", W, N(1)), P("+"))),
        ("x + y * z", X("+", I("x"), X("*", I("y"), I("z")))),
        ("x * y + z", X("+", X("*", I("x"), I("y")), I("z"))),
        ("a ~ b , c", C(",", C("~", I("a"), I("b")), I("c"))),
        ("a , b ~ c", C(",", I("a"), C("~", I("b"), I("c")))),
        ("a ~ b ~ c", C("~", C("~", I("a"), I("b")), I("c"))),
        ("a : b : c", C(":", I("a"), C(":", I("b"), I("c")))),
        ("a , b , c", C(",", I("a"), C(",", I("b"), I("c")))),
        ("a <: b :> c", C("<:", I("a"), C(":>", I("b"), I("c")))),
        ("a <: b : c", C("<:", I("a"), C(":", I("b"), I("c")))),
        ("a : b <: c", C("<:", C(":", I("a"), I("b")), I("c"))),
        ("a +> b", C(":>", I("a"), I("b"))),
        ("a ~ b : c", C(":", C("~", I("a"), I("b")), I("c"))),
        ("a + b ~ c", C("~", X("+", I("a"), I("b")), I("c"))),
        ("a - b - c", X("-", X("-", I("a"), I("b")), I("c"))),
        ("x ^ y ^ z", X("^", X("^", I("x"), I("y")), I("z"))),
        ("a * b ^ c", X("*", I("a"), X("^", I("b"), I("c")))),
        ("a ^ b @ c", X("^", I("a"), X("@", I("b"), I("c")))),
        ("a @ b'", X("@", I("a"), A.Delay1(I("b")))),
        ("a' @ b", X("@", A.Delay1(I("a")), I("b"))),
        ("a < b + c", X("<", I("a"), X("+", I("b"), I("c")))),
        ("a == b < c", X("<", X("==", I("a"), I("b")), I("c"))),
        ("a | b & c", X("|", I("a"), X("&", I("b"), I("c")))),
        ("a xor b << c", X("<<", X("xor", I("a"), I("b")), I("c"))),
        ("a + b % c >> d", X("+", I("a"), X(">>", X("%", I("b"), I("c")), I("d")))),
        ("x + f(y)", X("+", I("x"), A.Apply(I("f"), (I("y"),)))),
        ("f(x)(y)", A.Apply(A.Apply(I("f"), (I("x"),)), (I("y"),))),
        ("ma.PI * 2", X("*", A.Access(I("ma"), "PI"), N(2))),
        ("a.b.c(1)", A.Apply(A.Access(A.Access(I("a"), "b"), "c"), (N(1),))),
        ("x''", A.Delay1(A.Delay1(I("x")))),
        ("f(a : b, c)", A.Apply(I("f"), (C(":", I("a"), I("b")), I("c")))),
        ("f((a, b))", A.Apply(I("f"), (C(",", I("a"), I("b")),))),
        ("f(a ~ b <: c)", A.Apply(I("f"), (C("<:", C("~", I("a"), I("b")), I("c")),))),
        ("a , b with { c = 1; }",
         A.With(C(",", I("a"), I("b")), (A.Definition("c", None, N(1)),))),
        ("a : b with { } with { }", A.With(A.With(C(":", I("a"), I("b")), ()), ())),
        ("e[x = 1;]", A.Modify(I("e"), (A.Definition("x", None, N(1)),))),
        ("x + e[x = 1;]", X("+", I("x"), A.Modify(I("e"), (A.Definition("x", None, N(1)),)))),
        ("(a : b)'", A.Delay1(C(":", I("a"), I("b")))),
    ],
)
def test_precedence(src, tree):
    assert E(src) == tree


def test_primitives_as_boxes():
    assert E("+") == P("+")
    assert E("+(1)") == A.Apply(P("+"), (N(1),))
    assert E("*(2)") == A.Apply(P("*"), (N(2),))
    assert E("-(x)") == A.Apply(P("-"), (I("x"),))
    assert E("_,_ : *") == C(":", C(",", W, W), P("*"))
    assert E("@(10)") == A.Apply(P("@"), (N(10),))
    for op in ("/", "%", "&", "|", "xor", "<<", ">>", "<", "<=", ">", ">=", "==", "!=", "^"):
        assert E(f"_,_ : {op}") == C(":", C(",", W, W), P(op))
    for kw in ("mem", "prefix", "int", "float", "sin", "pow", "atan2", "select2", "select3", "rdtable",
               "rwtable", "attach", "enable", "control", "min", "max", "fmod", "remainder", "floor",
               "ceil", "rint", "abs", "sqrt", "log10", "lowest", "highest", "assertbounds"):
        assert E(kw) == P(kw)
    assert E("sin(x)") == A.Apply(P("sin"), (I("x"),))
    assert E("round(x)") == A.Apply(I("round"), (I("x"),))  # not a keyword
    assert E("!") == A.Cut()
    assert E("_") == W


def test_signed_literals_and_negation():
    assert E("-1") == N(-1)
    assert E("+1") == N(1)
    assert E("-0.5") == R(-0.5, "-0.5")
    assert E("x - 1") == X("-", I("x"), N(1))
    assert E("x - -1") == X("-", I("x"), N(-1))
    assert E("x -1") == X("-", I("x"), N(1))
    assert E("f(-1, -2.)") == A.Apply(I("f"), (N(-1), R(-2.0, "-2.")))
    # `-x` on an identifier is 0 - x (faustparser.y: SUB ident); postfix applies after
    assert E("-x") == X("-", N(0), I("x"))
    assert E("-x'") == A.Delay1(X("-", N(0), I("x")))
    assert E("-2 ^ 2") == X("^", N(-2), N(2))
    assert E("1 : -") == C(":", N(1), P("-"))


def test_literals():
    assert E("42") == N(42)
    assert E("1.") == R(1.0, "1.")
    assert E(".5") == R(0.5, ".5")
    assert E("1e-3") == R(0.001, "1e-3")
    assert E("1.5E+2") == R(150.0, "1.5E+2")
    assert E("waveform{1, -2, .5, +3}") == A.Waveform((N(1), N(-2), R(0.5, ".5"), N(3)))


# --------------------------------------------------------- constructs


def test_lambda_case_iterations():
    assert E("\\(x, y).(x + y)") == A.Lambda(("x", "y"), X("+", I("x"), I("y")))
    assert E("case { (0) => 1; (x, y) => x : y; }") == A.Case((
        A.Rule((N(0),), N(1)),
        A.Rule((I("x"), I("y")), C(":", I("x"), I("y"))),
    ))
    for kind in ("par", "seq", "sum", "prod"):
        assert E(f"{kind}(i, 4, _, i)") == A.Iteration(kind, "i", N(4), C(",", W, I("i")))
    assert E("par(i, N + 1, f(i))") == A.Iteration("par", "i", X("+", I("N"), N(1)), A.Apply(I("f"), (I("i"),)))
    assert E("inputs(f)") == A.InputsOf(I("f"))
    assert E("outputs(a, b)") == A.OutputsOf(C(",", I("a"), I("b")))


def test_widgets_groups_soundfile():
    assert E('button("play")') == A.Widget("button", "play")
    assert E('checkbox("on [midi:ctrl 1]")') == A.Widget("checkbox", "on [midi:ctrl 1]")
    assert E('hslider("gain[diff:1]", 0.5, 0, 1, 0.01)') == A.Widget(
        "hslider", "gain[diff:1]", (R(0.5, "0.5"), N(0), N(1), R(0.01, "0.01")))
    assert E('vslider("v", a : b, 0, 1, 1)').args[0] == C(":", I("a"), I("b"))
    assert E('nentry("n", 1, 0, 10, 1)').kind == "nentry"
    assert E('hbargraph("h", -60, 0)') == A.Widget("hbargraph", "h", (N(-60), N(0)))
    assert E('vbargraph("v", 0, 1)').kind == "vbargraph"
    assert E('hgroup("g", a, b)') == A.Group("hgroup", "g", C(",", I("a"), I("b")))
    assert E('tgroup("t", x)').kind == "tgroup"
    assert E('soundfile("s[url:{\'a.wav\'}]", 2)') == A.Soundfile("s[url:{'a.wav'}]", N(2))


def test_environment_library_component_route():
    env = E('environment { import("a.lib"); declare name "n"; x = 1; f(y) = y; }')
    assert env == A.Environment((
        A.Import("a.lib"), A.Declare("name", "n"), A.Definition("x", None, N(1)),
        A.Definition("f", (I("y"),), I("y")),
    ))
    assert E("environment { x = 1; }.x") == A.Access(A.Environment((A.Definition("x", None, N(1)),)), "x")
    assert E('library("filters.lib").lowpass') == A.Access(A.Library("filters.lib"), "lowpass")
    assert E('component("freeverb.dsp")') == A.Component("freeverb.dsp")
    assert E("route(2, 2, 1, 2, 2, 1)") == A.Route(N(2), N(2), (N(1), N(2), N(2), N(1)))
    assert E("route(4, 4)") == A.Route(N(4), N(4), ())
    # the pairs are flattened over ','
    assert E("route(2, 2, (1, 2), (2, 1))") == A.Route(N(2), N(2), (N(1), N(2), N(2), N(1)))
    assert E("route(2, 2, f(1), (g : h))").pairs == (A.Apply(I("f"), (N(1),)), C(":", I("g"), I("h")))


def test_foreign():
    assert E('ffunction(float sinhf|sinh|sinhl (float), <math.h>, "")') == A.FFunction(
        "float", ("sinhf", "sinh", "sinhl"), ("float",), "<math.h>", "")
    assert E('ffunction(int (a|b)(int, float, any), "my.h", "m")') == A.FFunction(
        "int", ("a", "b"), ("int", "float", "any"), '"my.h"', "m")
    assert E('ffunction(int rand(), <stdlib.h>, "")').arg_types == ()
    assert E("fconstant(int fSamplingFreq, <math.h>)") == A.FConstant("int", "fSamplingFreq", "<math.h>")
    assert E('fvariable(int count, "c.h")') == A.FVariable("int", "count", '"c.h"')


def test_letrec():
    e = E("(x, y) letrec { 'x = y + 1; 'y = x; where z = 2; w(a) = a; }")
    assert e == A.Letrec(
        C(",", I("x"), I("y")),
        (A.RecDef("x", X("+", I("y"), N(1))), A.RecDef("y", I("x"))),
        (A.Definition("z", None, N(2)), A.Definition("w", (I("a"),), I("a"))),
    )
    assert E("x letrec { 'x = 1; }").where == ()


def test_statements():
    prog = parse(
        'import("stdfaust.lib");\n'
        'declare name "My synth";\n'
        'declare process author "me";\n'
        "gain = 0.5;\n"
        "f(x, y) = x + y;\n"
        "g(0) = 1;\n"
        "g(n) = n * g(n - 1);\n"
        "h(a : b) = a;\n"
        "singleprecision eps = 1e-7;\n"
        "doubleprecision quadprecision eps = 1e-16;\n"
        "process = f(1, 2) * gain;\n",
        "s.dsp",
    )
    s = prog.statements
    assert prog.file == "s.dsp" and len(s) == 11
    assert s[0] == A.Import("stdfaust.lib")
    assert s[1] == A.Declare("name", "My synth")
    assert s[2] == A.Declare("author", "me", "process")
    assert s[3] == A.Definition("gain", None, R(0.5, "0.5"))
    assert s[4] == A.Definition("f", (I("x"), I("y")), X("+", I("x"), I("y")))
    assert s[5].params == (N(0),)
    assert s[7].params == (C(":", I("a"), I("b")),)
    assert s[8].precisions == ("singleprecision",)
    assert s[9].precisions == ("doubleprecision", "quadprecision")
    assert (s[4].span.file, s[4].span.line, s[4].span.col) == ("s.dsp", 5, 1)
    assert s[10].name == "process"


def test_spans():
    prog = parse("a = 1;\n  b = x :\n    sin;\n")
    b = prog.statements[1]
    assert (b.span.line, b.span.col) == (2, 3)
    assert (b.body.span.line, b.body.span.col) == (2, 7)
    assert (b.body.right.span.line, b.body.right.span.col) == (3, 5)


def test_comments_are_skipped():
    prog = parse("//--- doc comment\n/* a\n * block */ x = 1; // end\n/**/y/* in */= 2;")
    assert [s.name for s in prog.statements] == ["x", "y"]


# --------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "src, msg, line, col",
    [
        ("process = a);", "expected ';' after the definition of 'process', found ')'", 1, 12),
        ("process = a b;", "expected ';' after the definition of 'process', found identifier 'b'", 1, 13),
        ("process = ;", "expected an expression, found ';'", 1, 11),
        ("x = 1;\nf = x with {\n  a = 1;\n", "unexpected end of file", 4, 1),
        ("process = (a\n  ;", "expected ')' to close '(' opened at 1:11, found ';'", 2, 3),
        ("process = f(1,);", "expected an expression, found ')'", 1, 15),
        ("process = hslider(\"a\", 1, 2);", "expected ','", 1, 28),
        ("process = hslider(a, 1, 2, 3, 4);", "expected a label string", 1, 19),
        ('import("a.lib")\nprocess = 1;', "expected ';' after import(...), found identifier 'process'", 2, 1),
        ("with = 1;", "found keyword 'with'", 1, 1),
        ("x = a with { import(\"a\"); };", "'import' is not allowed here", 1, 14),
        ("x = case { };", "expected a rule", 1, 12),
        ("x = \\(1).(x);", "expected a parameter name, found number 1", 1, 7),
        ("x = par(i 3, _);", "expected ',' before the count of par", 1, 11),
        ("x = ffunction(float f(float), <math.h, \"\");", "expected '>'", 1, 38),
        ("x = ffunction(double f(float), <math.h>, \"\");", "expected 'int' or 'float'", 1, 15),
        ("x = waveform{a};", "expected a number, found identifier 'a'", 1, 14),
        ("x = a.;", "expected a name after '.'", 1, 7),
        ("x = 1", "unexpected end of file, expected ';' after the definition of 'x'", 1, 6),
        ("x", "expected '=' or '('", 1, 2),
        ("x = y letrec { 'a = 1 };", "expected ';'", 1, 23),
    ],
)
def test_syntax_errors(src, msg, line, col):
    e = syntax_error(src)
    assert msg in e.message, e.message
    assert (e.span.line, e.span.col) == (line, col), str(e)
    assert str(e).startswith(f"t.dsp:{line}:{col}: syntax error: ")


def test_missing_brace_message():
    e = syntax_error("x = 1;\nf = environment {\n  a = 1;\n")
    assert "missing '}' opened at 2:17" in e.message


def test_nested_too_deeply():
    d = 5000
    e = syntax_error("process = " + "(" * d + "x" + ")" * d + ";")
    assert "nested too deeply" in e.message
    with pytest.raises(FaustSyntaxError, match="nested too deeply"):
        parse_expression("f(" * d + "1" + ")" * d)
    # moderate nesting is fine, and very long flat chains need no recursion
    assert parse_expression("(" * 100 + "x" + ")" * 100) == I("x")
    long = parse_expression(", ".join(["a"] * 20000))
    assert isinstance(long, A.Compose)


def test_parse_expression_rejects_trailing_text():
    with pytest.raises(FaustSyntaxError, match="expected end of expression, found ';'"):
        parse_expression("a : b;")


def test_fuzz_only_syntax_errors():
    """Random truncations, splices, byte soups and token soups never crash."""
    rng = random.Random(1234)
    texts = [open(f, encoding="utf-8", errors="replace").read() for f in LIBS[:12] + DSPS[:40]]
    texts = [t for t in texts if t] or ['process = hslider("a", 1, 0, 2, .1) : +(1) with { x = 1; };']
    pieces = list(SYMBOLS) + sorted(KEYWORDS) + ["x", "1", "2.5", '"s"', "\n", "<math.h>", "/*", "*/", '"']

    def check(src):
        for fn in (parse, parse_expression):
            try:
                fn(src, "fz")
            except FaustSyntaxError as e:
                assert e.span is not None and e.span.line >= 1

    for _ in range(150):
        t = rng.choice(texts)
        check(t[: rng.randrange(len(t) + 1)])
        a, b = sorted((rng.randrange(len(t) + 1), rng.randrange(len(t) + 1)))
        check(t[:a] + t[b:])
        check(bytes(rng.randrange(256) for _ in range(rng.randrange(60))).decode("latin-1"))
        check(" ".join(rng.choice(pieces) for _ in range(rng.randrange(40))))


# --------------------------------------------------------------- printer


@pytest.mark.parametrize(
    "src",
    [
        "a : (b : c)", "(a : b) : c", "(a, b) : c", "a, (b : c)", "(a ~ b) ~ c", "a ~ (b ~ c)",
        "(a - b) - c", "a - (b - c)", "(x + y) * z", "f(a, (b, c), d : e)", "(a with { x = 1; }) : b",
        "-x'", "-(1)", "x - -1", "(0 - x)'", "(a + b).c", "f((a with { y = 2; }))", "\\(x).(x, x)",
        'hgroup("g", a, b)', "route(2, 2, 1, 2, 3, g : h)", "route(2, 2, 1, (g : h), a ~ b)", "x letrec { 'x = x + 1; where y = 1; }",
        "environment { declare a \"b\"; x = 1; }", "e[x = 1; y = 2;]", "_, _ : + : *(2)",
    ],
)
def test_printer_round_trip(src):
    e = E(src)
    assert E(format_ast(e)) == e


def test_printer_text():
    assert format_ast(E("a:b,c")) == "a : b, c"
    assert format_ast(E("(a:b),c")) == "(a : b), c"
    assert format_ast(E("f(a,(b,c))")) == "f(a, (b, c))"
    assert format_ast(E("x+y*z")) == "x + y * z"
    assert format_ast(E("(x+y)*z")) == "(x + y) * z"
    assert str(E("ma.PI")) == "ma.PI"
    prog = parse('import("s.lib");\ndeclare name "n";\nf(x) = x : sin;\n')
    assert format_ast(prog) == 'import("s.lib");\ndeclare name "n";\nf(x) = x : sin;\n'


# ------------------------------------------------- real files and timing


@pytest.mark.skipif(not LIBS, reason="Faust libraries not installed")
def test_parse_all_faust_libraries():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))  # deep ASTs: equality is recursive
    try:
        for path in LIBS:
            prog = parse_file(path)
            assert prog.statements, path
            again = parse(format_ast(prog), path)
            assert again.statements == prog.statements, path
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.skipif(not DSPS, reason="Faust examples not installed")
def test_parse_all_faust_examples():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        for path in DSPS:
            prog = parse_file(path)
            again = parse(format_ast(prog), path)
            assert again.statements == prog.statements, path
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.skipif(len(LIBS) < 40, reason="Faust libraries not installed")
def test_parse_speed():
    texts = [(p, open(p, encoding="utf-8").read()) for p in LIBS]
    t0 = time.perf_counter()
    for p, t in texts:
        parse(t, p)
    all_libs = time.perf_counter() - t0
    core = [(p, t) for p, t in texts if os.path.basename(p) in
            ("maths.lib", "stdfaust.lib", "noises.lib", "platform.lib")]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for p, t in core:
            parse(t, p)
        best = min(best, time.perf_counter() - t0)
    assert all_libs < 2.0, f"parsing {len(texts)} libraries took {all_libs:.2f} s"
    assert best < 0.15, f"parsing the core libraries took {best:.3f} s"
