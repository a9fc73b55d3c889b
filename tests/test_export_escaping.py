"""The C++ and JSON exports cannot be broken out of by the program's strings.

`diffaust compile -lang cpp` writes the program's strings (its name and metadata, widget
labels and paths, ffunction includes) into C++ comments and string literals: a newline,
`*/`, a trailing backslash (line splice), `"` or a `??/` trigraph in them must stay text.
Each hostile program is exported, checked to have no injected line, then built with g++
(trigraphs on) into a driver that prints every metadata value and UI label the class
declares: the values must be the ones `-lang json` gives, and those must be the ones
`faust -json` gives for the same metadata (a string with quotes and backslashes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffaust import reference
from diffaust.codegen.cpp import c_comment, c_string, emit_cpp_stages, faust_string_value
from diffaust.errors import DiffaustError, FaustSyntaxError
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

CXX = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
HAVE_FAUST_HEADERS = any(Path(d, "faust/gui/UI.h").is_file() for d in ("/usr/include", "/usr/local/include"))
needs_build = pytest.mark.skipif(not CXX or not HAVE_FAUST_HEADERS, reason="needs g++ and Faust's C++ headers")

SLIDER = 'hslider("{label}", 0.5, 0, 1, 0.01)'

# name: Faust source of a hostile program ({marker}: a file the injected code would create)
HOSTILE = {
    "name-newline-escape": ('declare name "n1\\nint pwn = std::system(\\"touch {marker}\\"); //";\n'
                            f'process = {SLIDER.format(label="g")};\n'),
    "name-raw-newline": ('declare name "n1\nint pwn = std::system(\\"touch {marker}\\"); //";\n'
                         f'process = {SLIDER.format(label="g")};\n'),
    "name-comment-end": ('declare name "n1 */ int pwn = std::system(\\"touch {marker}\\"); /*";\n'
                         f'process = {SLIDER.format(label="g")};\n'),
    "label-raw-newline": ('process = hslider("g\nint pwn = std::system(\\"touch {marker}\\"); //", 0.5, 0, 1, 0.01)'
                          f' + {SLIDER.format(label="h")};\n'),
    # a label ending in a backslash: `// hslider /p/a\` would splice the next field into the comment
    "label-trailing-backslash": f'process = {SLIDER.format(label="a" + chr(92) * 2)} + {SLIDER.format(label="b")};\n',
    "metadata-quotes": ('declare author "x\\"); int pwn = std::system(\\"touch {marker}\\"); //";\n'
                        'declare version "??/\\"); int pwn2 = 1; //";\n'
                        f'process = {SLIDER.format(label="g [tooltip: t*/ip]")};\n'),
}

DRIVER = r"""
#include <cstdio>
#include <cstring>
static void hex(const char* tag, const char* s) {
    std::printf("%s ", tag);
    for (const unsigned char* p = (const unsigned char*)s; *p; p++) std::printf("%02x", *p);
    std::printf("\n");
}
struct PMeta : Meta { void declare(const char* k, const char* v) { hex("metakey", k); hex("metaval", v); } };
struct PUI : UI {
    void openTabBox(const char* l) { hex("group", l); }
    void openHorizontalBox(const char* l) { hex("group", l); }
    void openVerticalBox(const char* l) { hex("group", l); }
    void closeBox() {}
    void addButton(const char* l, FAUSTFLOAT*) { hex("widget", l); }
    void addCheckButton(const char* l, FAUSTFLOAT*) { hex("widget", l); }
    typedef FAUSTFLOAT F;
    void addVerticalSlider(const char* l, F*, F, F, F, F) { hex("widget", l); }
    void addHorizontalSlider(const char* l, F*, F, F, F, F) { hex("widget", l); }
    void addNumEntry(const char* l, F*, F, F, F, F) { hex("widget", l); }
    void addHorizontalBargraph(const char* l, FAUSTFLOAT*, FAUSTFLOAT, FAUSTFLOAT) { hex("widget", l); }
    void addVerticalBargraph(const char* l, FAUSTFLOAT*, FAUSTFLOAT, FAUSTFLOAT) { hex("widget", l); }
    void addSoundfile(const char* l, const char*, Soundfile**) { hex("widget", l); }
    void declare(FAUSTFLOAT*, const char* k, const char* v) { hex("uikey", k); hex("uival", v); }
};
int main() {
    mydsp d;
    d.init(44100);
    PMeta m; d.metadata(&m);
    PUI ui; d.buildUserInterface(&ui);
    return 0;
}
"""


def _pipeline(text: str, path: Path):
    return run_pipeline(text, str(path), CompileOptions())


def _cli(*args, cwd):
    env = dict(os.environ, DIFFAUST_CACHE_DIR=str(Path(cwd) / "cache"))
    return subprocess.run([sys.executable, "-m", "diffaust", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _write(tmp_path: Path, name: str) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "p.dsp"
    path.write_text(HOSTILE[name].replace("{marker}", str(marker)))
    try:
        _pipeline(path.read_text(), path)
    except FaustSyntaxError:
        pytest.skip("the lexer refuses this string")  # raw newlines in strings may be refused
    return path, marker


_TRIGRAPHS = {"=": "#", "/": "\\", "'": "^", "(": "[", ")": "]", "!": "|", "<": "{", ">": "}", "-": "~"}


def code_only(cpp: str) -> str:
    """The C++ text as the compiler tokenizes it (trigraphs on, line splices joined) with
    comments and string and character literals removed."""
    import re

    cpp = re.sub(r"\?\?([=/'()!<>-])", lambda m: _TRIGRAPHS[m.group(1)], cpp)
    cpp = re.sub(r"\\[ \t]*\n", "", cpp)
    out, i, n = [], 0, len(cpp)
    while i < n:
        c = cpp[i]
        if cpp.startswith("//", i):
            j = cpp.find("\n", i)
            i = n if j < 0 else j
        elif cpp.startswith("/*", i):
            j = cpp.find("*/", i + 2)
            assert j >= 0, "unterminated comment"
            i = j + 2
            out.append(" ")
        elif c in "\"'":
            j = i + 1
            while j < n and cpp[j] != c:
                assert cpp[j] != "\n", "newline in a literal"
                j += 2 if cpp[j] == "\\" else 1
            i = j + 1
            out.append('""')
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _no_injected_line(cpp: str):
    code = code_only(cpp)
    assert "pwn" not in code and "system" not in code, [ln for ln in code.splitlines() if "pwn" in ln]


def _build_and_list(cpp: str, tmp_path: Path) -> list:
    (tmp_path / "main.cpp").write_text(cpp + DRIVER)
    r = subprocess.run([*CXX.split(), "-std=c++17", "-trigraphs", "-w", "-O0", "main.cpp", "-o", "main"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    p = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        tag, _, h = line.partition(" ")
        out.append((tag, bytes.fromhex(h).decode("utf-8")))
    return out


def _json_strings(doc: dict) -> tuple[list, list]:
    """(metadata values by key, [(group|widget, label)] in UI order) from -lang json."""
    meta = [(k, v) for d in doc["meta"] for k, v in d.items()]
    ui = []

    def walk(items):
        for it in items:
            if "items" in it:
                ui.append(("group", it["label"]))
                walk(it["items"])
            else:
                ui.append(("widget", it["label"]))
    walk(doc["ui"])
    return meta, ui


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_cpp_export_has_no_injected_code(tmp_path, name):
    path, marker = _write(tmp_path, name)
    p = _cli("compile", "-lang", "cpp", path.name, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    _no_injected_line(p.stdout)
    # the block comment at the top is closed once, at its end
    head, sep, _ = p.stdout.partition("*/")
    assert sep and head.rstrip().endswith("-" * 60)


@needs_build
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_built_class_declares_the_strings_as_text(tmp_path, name):
    path, marker = _write(tmp_path, name)
    p = _cli("compile", "-lang", "cpp", path.name, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    listed = _build_and_list(p.stdout, tmp_path)
    assert not marker.exists()
    q = _cli("compile", "-lang", "json", path.name, cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    meta, ui = _json_strings(json.loads(q.stdout))
    keys = [v for t, v in listed if t == "metakey"]
    vals = [v for t, v in listed if t == "metaval"]
    got = dict(zip(keys, vals))
    for k, v in meta:
        if k not in ("compile_options", "filename"):
            assert got[k] == v, (k, got[k], v)
    assert [(t, v) for t, v in listed if t in ("group", "widget")] == ui


def test_code_only_sees_injections():
    assert "pwn" in code_only('// a\nint pwn;') and "pwn" in code_only('/* a */ int pwn;')
    assert "pwn" in code_only('f("a\\\\"); int pwn;') and "pwn" in code_only("// a\\ b\nint pwn;")
    # a line splice (also the trigraph ??/) continues a // comment; ??/ escapes a quote
    assert "pwn" not in code_only('// a\\\nint pwn;') and "pwn" not in code_only('// a ??/\nint pwn;')
    assert "pwn" not in code_only('f("??/"); int pwn; //");')
    assert "pwn" not in code_only('f("a\\" int pwn"); // pwn\n/* pwn */')


def test_strings_and_comments_escape_everything():
    assert c_string('a"b\\c\nd\te\x01f\x7f') == '"a\\"b\\\\c\\nd\\te\\001f\\177"'
    assert c_string("??/") == '"?\\?/"' and c_string("\u2028") == '"\\342\\200\\250"'
    assert c_string("\ud800") == '"\\357\\277\\275"'  # a lone surrogate: U+FFFD
    assert c_string("é ok") == '"é ok"'
    assert c_comment("plain /a/b") == "plain /a/b"
    for s in ("a\nint x;", "a */ b", "ends in \\", "q\"", "??/", "x\r", "\u2028"):
        c = c_comment(s)
        assert "\n" not in c and "\r" not in c and "*/" not in c and not c.endswith("\\") and "??" not in c, c


def test_metadata_values_are_what_faust_means():
    assert faust_string_value(r"a\\b") == "a\\b" and faust_string_value(r"a\nb") == "a\nb"
    assert faust_string_value(r'say \"hi\"') == 'say "hi"' and faust_string_value("it's") == "it's"
    assert faust_string_value(r"\101\x42\u0043\q") == "ABCq"
    assert faust_string_value(r"\ud800") == "\ufffd"


def test_cpp_export_refuses_an_include_that_is_not_a_header_name(tmp_path):
    path = tmp_path / "p.dsp"
    # sinf is in libm: no shim is built, but the export writes the include
    path.write_text('f = ffunction(float sinf(float), "m.h\nint pwn = 1; //", "");\nprocess = f;\n')
    try:
        st = _pipeline(path.read_text(), path)
    except FaustSyntaxError:
        pytest.skip("the lexer refuses this string")
    with pytest.raises(DiffaustError, match="not a header file name"):
        emit_cpp_stages(st, CompileOptions())
    p = _cli("compile", "-lang", "cpp", path.name, cwd=tmp_path)
    assert p.returncode == 1 and "not a header file name" in p.stderr and "int pwn" not in p.stdout


META_PROGRAM = ('declare name "it\'s a \\\\ name";\n'
                'declare author "tab\\there, back\\\\slash, nl\\nx, q\'s";\n'
                'declare copyright "plain";\n'
                'process = hslider("gain", 0.5, 0, 1, 0.01);\n')


@pytest.mark.reference
def test_json_metadata_is_fausts(faust_ref, tmp_path):
    path = tmp_path / "meta.dsp"
    path.write_text(META_PROGRAM)
    ref = reference.reference_json(path)
    p = _cli("compile", "-lang", "json", path.name, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ours = json.loads(p.stdout)
    assert ours["name"] == ref["name"] == "it's a \\ name"
    theirs = {k: v for d in ref["meta"] for k, v in d.items()}
    mine = {k: v for d in ours["meta"] for k, v in d.items()}
    for k in ("name", "author", "copyright"):
        assert mine[k] == theirs[k], k
    assert mine["author"] == "tab\there, back\\slash, nl\nx, q's"
    if CXX and HAVE_FAUST_HEADERS:  # and the C++ class declares the same values
        q = _cli("compile", "-lang", "cpp", path.name, cwd=tmp_path)
        listed = _build_and_list(q.stdout, tmp_path)
        got = dict(zip([v for t, v in listed if t == "metakey"], [v for t, v in listed if t == "metaval"]))
        for k in ("name", "author", "copyright"):
            assert got[k] == theirs[k], k
