"""No native code from a program without consent, and errors that quote only Faust sources.

An ffunction whose C/C++ header is not one of an installed Faust's own (foreign_c.TRUSTED_ROOTS:
the faust-stk and SAM headers) is compiled with the C++ compiler and loaded into the process
only with ``allow_native=True`` / ``--allow-native`` (then a warning names the files and the
compiler command); without it a located error names the ffunction and the header.  Headers
here write a marker file from a static initializer: the marker tells whether their code ran.

Error messages quote lines of .dsp/.lib files (and in-memory text) only: an error located in
any other file (``import("/etc/passwd")``) or in a header gives the place, not the text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import diffaust
from diffaust.codegen.foreign_c import TRUSTED_ROOTS, check_include, compiler_messages, trusted_path
from diffaust.errors import (DiffaustWarning, FaustSyntaxError, FaustTypeError, NativeCodeError, quotable,
                             source_line)
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

HAVE_CXX = bool(shutil.which("c++") or shutil.which("g++") or os.environ.get("CXX"))
needs_cxx = pytest.mark.skipif(not HAVE_CXX, reason="needs a C++ compiler")

FAUST_STK = Path("/usr/share/doc/faust-common/examples/physicalModeling/faust-stk")
SAM_ECHO = Path("/usr/share/doc/faust-common/examples/SAM/echo/echo.dsp")
FAST_POW2 = Path("/usr/share/faust/sam/fast_pow2.h")

PROGRAM = 'f = ffunction(float twice(float), <evil.h>, "");\nprocess = f;\n'


def _evil_header(marker: Path) -> str:
    return textwrap.dedent(f"""\
        #include <cstdio>
        static int diffaust_test_ran = []() {{
            std::FILE* f = std::fopen("{marker}", "w");
            if (f) std::fclose(f);
            return 0;
        }}();
        static inline float twice(float x) {{ return 2.0f * x + diffaust_test_ran; }}
        """)


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A program folder: p.dsp calls twice() from evil.h, whose initializer creates `marker`."""
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path / "prog"
    d.mkdir()
    marker = tmp_path / "marker"
    (d / "evil.h").write_text(_evil_header(marker))
    (d / "p.dsp").write_text(PROGRAM)
    return d, marker


def _cli(*args, cwd, cache):
    env = dict(os.environ, DIFFAUST_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "diffaust", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- consent


@needs_cxx
def test_header_of_the_program_is_refused_without_consent(evil):
    d, marker = evil
    with pytest.raises(NativeCodeError) as info:
        diffaust.compile(str(d / "p.dsp"))
    e = info.value
    assert isinstance(e, FaustTypeError)
    msg = str(e)
    assert "twice" in msg and "<evil.h>" in msg and str(d / "evil.h") in msg
    assert "pass --allow-native (allow_native=True) to compile it" in msg
    assert (e.span.file, e.span.line, e.span.col) == (str(d / "p.dsp"), 1, 5)  # at the ffunction
    assert not marker.exists()
    # every pass that would build the shim refuses: the listing too
    with pytest.raises(NativeCodeError):
        run_pipeline(PROGRAM, str(d / "p.dsp"), CompileOptions())
    assert not marker.exists()


@needs_cxx
def test_consent_compiles_and_says_what(evil):
    d, marker = evil
    with pytest.warns(DiffaustWarning) as rec:
        dsp = diffaust.compile(str(d / "p.dsp"), allow_native=True)
    text = " ".join(str(w.message) for w in rec)
    assert str(d / "evil.h") in text and "-shared" in text and "shim.cpp" in text
    assert marker.exists()  # consent given: the header's code ran
    assert dsp.render([[0.25, 1.0]]).tolist() == [[0.5, 2.0]]


@needs_cxx
def test_cli_refuses_then_compiles_with_allow_native(evil):
    d, marker = evil
    cache = d.parent / "cache"
    for args in (["compile", "p.dsp"], ["compile", "-lang", "cpp", "p.dsp"], ["compile", "--dump", "sched", "p.dsp"],
                 ["render", "p.dsp", "-n", "4", "-o", "o.wav"]):
        p = _cli(*args, cwd=d, cache=cache)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        first = p.stderr.splitlines()[0]
        assert first.startswith("p.dsp:1:5: error: ffunction twice: its header <evil.h>"), p.stderr
        assert first.endswith("pass --allow-native (allow_native=True) to compile it")
        assert "Traceback" not in p.stderr
        assert not marker.exists(), args
    p = _cli("compile", "--allow-native", "p.dsp", cwd=d, cache=cache)
    assert p.returncode == 0, p.stderr
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("diffaust: warning: --allow-native")]
    assert len(warn) == 1 and str(d / "evil.h") in warn[0] and " -I " in warn[0], p.stderr
    assert marker.exists()


@needs_cxx
def test_include_folder_and_working_folder_need_consent(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    marker = tmp_path / "marker"
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "evil.h").write_text(_evil_header(marker))
    with pytest.raises(NativeCodeError, match="evil.h"):
        diffaust.compile(PROGRAM, import_dirs=[str(inc)], use_cache=False)  # an -I folder
    monkeypatch.chdir(inc)
    with pytest.raises(NativeCodeError, match="evil.h"):
        diffaust.compile(PROGRAM, use_cache=False)  # source text: its folder is the working folder
    assert not marker.exists()


@needs_cxx
def test_a_system_header_name_in_the_program_folder_is_the_programs(evil):
    """`<math.h>` found next to the program is the program's file, not the system's."""
    d, marker = evil
    (d / "math.h").write_text(_evil_header(marker))
    (d / "m.dsp").write_text('f = ffunction(float twice(float), <math.h>, "");\nprocess = f;\n')
    with pytest.raises(NativeCodeError, match=r"<math\.h> \(found at .*math\.h\)"):
        diffaust.compile(str(d / "m.dsp"))
    assert not marker.exists()


@needs_cxx
def test_untrusted_folders_are_not_given_to_the_compiler(tmp_path, monkeypatch):
    """A trusted header's own includes (<stdlib.h> ...) cannot be shadowed by the program's folder."""
    if not FAST_POW2.is_file():
        pytest.skip("Faust's SAM headers are not installed")
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("stdlib.h", "stdint.h", "stdio.h", "cassert"):
        (tmp_path / name).write_text("#error the program's folder was searched\n")
    (tmp_path / "p.dsp").write_text('f = ffunction(float fastpow2(float), "fast_pow2.h", "");\nprocess = f;\n')
    dsp = diffaust.compile(str(tmp_path / "p.dsp"), import_dirs=[str(tmp_path)])
    assert abs(dsp.render([[3.0]])[0][0] - 8.0) < 0.1
    # a link to Faust's header in the program's folder: Faust's file, compiled from Faust's folder
    (tmp_path / "fast_pow2.h").symlink_to(FAST_POW2)
    dsp = diffaust.compile(str(tmp_path / "p.dsp"), double=True)
    assert abs(dsp.render([[3.0]])[0][0] - 8.0) < 0.1


def test_dotdot_or_absolute_header_found_nowhere_is_not_a_system_header(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    for inc in ("<../../tmp/diffaust_no_such_header.h>", '"/diffaust/no/such/header.h"'):
        src = f'f = ffunction(float nowhere_fn(float), {inc}, "");\nprocess = f;\n'
        with pytest.raises(NativeCodeError, match="found in no searched folder"):
            diffaust.compile(src, use_cache=False)


@needs_cxx
def test_library_file_is_not_loaded_without_consent(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    marker = tmp_path / "marker"
    (tmp_path / "lib.cpp").write_text(_evil_header(marker)
                                      + 'extern "C" float libtwice(float x) { return twice(x); }\n')
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    subprocess.run([*cxx.split(), "-shared", "-fPIC", "lib.cpp", "-o", "libevil.so"], cwd=tmp_path, check=True)
    src = f'f = ffunction(float libtwice(float), <math.h>, "{tmp_path / "libevil.so"}");\nprocess = f;\n'
    with pytest.raises(NativeCodeError, match="its library .*libevil.so is a file"):
        diffaust.compile(src, use_cache=False)
    assert not marker.exists()


@pytest.mark.parametrize("inc", ['"a.h\nint pwn = 1;"', '"a.h\\"//"', '"x*/y.h"', '"a\\\\b.h"'])
def test_include_that_is_not_a_header_name_is_an_error(tmp_path, monkeypatch, inc):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    src = f'f = ffunction(float nowhere_fn(float), {inc}, "");\nprocess = f;\n'
    try:
        run_pipeline(src, "<string>", CompileOptions(allow_native=True))
    except FaustSyntaxError:
        return  # the lexer refuses the string itself
    except FaustTypeError as e:
        if "\n" in inc:  # Faust reads a raw newline in a string as a space: a (missing) header name
            assert "a.h int pwn = 1;" in str(e), str(e)
            return
        assert "not a header file name" in str(e) and e.span is not None and e.span.line == 1
        return
    pytest.fail("accepted")


def test_check_include_and_trust():
    assert check_include("<a/b.h>") == "<a/b.h>" and check_include('"x.h"') == '"x.h"'
    assert check_include("y.h") == "<y.h>"
    for bad in ('"a\nb"', "<a>b>", '"a\\"b"', "<a/*b>", "<>", '"a\x00"'):
        with pytest.raises(FaustTypeError):
            check_include(bad)
    assert not trusted_path("/tmp/x.h") and not trusted_path(os.getcwd() + "/x.h")
    root = next((r for r in TRUSTED_ROOTS if os.path.isdir(r)), None)
    if root:
        assert trusted_path(os.path.join(root, "x.h"))
        assert not trusted_path(os.path.join(root, "..", "..", "tmp", "x.h"))


@needs_cxx
def test_installed_faust_headers_need_no_consent(tmp_path, monkeypatch):
    """faust-stk (next to Debian's examples) and SAM (Faust's architecture folder) headers."""
    if not (FAUST_STK / "bass.dsp").is_file() or not SAM_ECHO.is_file():
        pytest.skip("Debian's faust-common examples are not installed")
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    for path in (FAUST_STK / "bass.dsp", SAM_ECHO):
        diffaust.compile(str(path), import_dirs=(str(path.parent),))
    # a copy of the same files is the user's: consent needed
    for name in ("bass.dsp", "bass.h", "instrument.h"):
        shutil.copy(FAUST_STK / name, tmp_path / name)
    with pytest.raises(NativeCodeError, match="bass.h"):
        diffaust.compile(str(tmp_path / "bass.dsp"))


# ---------------------------------------------------------------- what errors quote


def test_quotable_files():
    assert quotable("a.dsp") and quotable("/x/y.lib") and quotable("<string>") and quotable("A.DSP")
    assert not quotable("/etc/passwd") and not quotable("x.h") and not quotable("x.dsp.txt")


@pytest.mark.parametrize("construct", ['import("{f}");\nprocess = _;\n', 'process = component("{f}");\n'])
def test_error_in_a_non_faust_file_gives_the_place_not_the_text(tmp_path, construct):
    secret = tmp_path / "secret.txt"
    secret.write_text("password: hunter2 'tok_q' 12345\n")
    (tmp_path / "p.dsp").write_text(construct.format(f=secret))
    p = _cli("compile", "p.dsp", cwd=tmp_path, cache=tmp_path / "cache")
    assert p.returncode == 1
    assert p.stderr.startswith(f"{secret}:1:"), p.stderr
    assert "syntax error" in p.stderr
    for leak in ("password", "hunter2", "tok_q", "12345"):
        assert leak not in p.stderr + p.stdout
    with pytest.raises(FaustSyntaxError) as info:
        diffaust.compile(str(tmp_path / "p.dsp"), use_cache=False)
    assert "hunter2" not in info.value.format() and "password" not in str(info.value)


@pytest.mark.parametrize("construct", ['import("{f}");\nprocess = _;\n', 'process = component("{f}");\n'])
@pytest.mark.parametrize("f", ["/etc/passwd", "/etc/hostname"])
def test_system_files_are_not_quoted(tmp_path, construct, f):
    if not os.path.isfile(f) or not os.access(f, os.R_OK):
        pytest.skip(f"no readable {f}")
    first = next((ln.strip() for ln in open(f, errors="replace") if ln.strip()), "")
    (tmp_path / "p.dsp").write_text(construct.format(f=f))
    p = _cli("compile", "p.dsp", cwd=tmp_path, cache=tmp_path / "cache")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f + ":"), p.stderr
    if first:
        assert first not in p.stderr
        assert first.split(":")[0] not in p.stderr.replace(f, "")  # not even a token of it


def test_faust_sources_are_still_quoted(tmp_path):
    (tmp_path / "bad.lib").write_text("x = 1 +;\n")
    (tmp_path / "p.dsp").write_text('import("bad.lib");\nprocess = _;\n')
    p = _cli("compile", "p.dsp", cwd=tmp_path, cache=tmp_path / "cache")
    assert p.returncode == 1 and "bad.lib:1:" in p.stderr and "    x = 1 +;" in p.stderr
    (tmp_path / "q.dsp").write_text("process = 1 +;\n")
    p = _cli("compile", "q.dsp", cwd=tmp_path, cache=tmp_path / "cache")
    assert p.returncode == 1 and "    process = 1 +;" in p.stderr


def test_source_line_only_for_faust_sources(tmp_path):
    from diffaust.syntax.ast import Span

    (tmp_path / "a.txt").write_text("secret\n")
    (tmp_path / "a.dsp").write_text("line\n")
    assert source_line(Span(str(tmp_path / "a.txt"), 1, 1)) is None
    assert source_line(Span(str(tmp_path / "a.dsp"), 1, 1)) == "line"
    assert source_line(Span("<string>", 1, 1), "text") == "text"


@needs_cxx
def test_compiler_errors_do_not_quote_the_header(evil):
    d, marker = evil
    (d / "evil.h").write_text("static inline float twice(float x) { return 2 * x; }\nSECRET_TOKEN here;\n")
    with pytest.warns(DiffaustWarning):
        with pytest.raises(FaustTypeError) as info:
            diffaust.compile(str(d / "p.dsp"), allow_native=True)
    text = info.value.format()
    assert f"{d / 'evil.h'}:2:" in text and "SECRET_TOKEN" not in text
    assert text.startswith(f"{d / 'p.dsp'}:1:5: error: foreign function twice")
    # an error in the shim itself (the function is not in the header) is shown in full
    (d / "evil.h").write_text("static inline float other(float x) { return x; }\n")
    with pytest.warns(DiffaustWarning):
        with pytest.raises(FaustTypeError, match="twice.*not declared"):
            diffaust.compile(str(d / "p.dsp"), allow_native=True)


def test_compiler_messages_filter():
    err = textwrap.dedent("""\
        In file included from /tmp/t/shim.cpp:2:
        /home/u/evil.h:2:1: error: 'SECRET' does not name a type
            2 | SECRET here;
              | ^~~~~~
        /home/u/evil.h:3:1: note: something about SECRET
        /tmp/t/shim.cpp:3:55: error: 'twice' was not declared in this scope
        """)
    assert compiler_messages(err, "/tmp/t/shim.cpp") == [
        "/home/u/evil.h:2:1: error (in a header; its text is not quoted)",
        "shim.cpp:3: error: 'twice' was not declared in this scope"]
