"""ffunctions defined in C/C++ headers (codegen/foreign_c.py).

A foreign function outside libm is compiled through a C++ shim built from its header
(found in -I folders, the program's folder, or Faust's architecture folders); the
LLVM backend, the interpreter and the C++ export must all call the header's code.
A header of the program's own is compiled only with allow_native=True / --allow-native
(tests/test_native_consent.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffaust
from diffaust.cli import main
from diffaust.codegen import interp
from diffaust.codegen.foreign_c import find_header, header_name, shim_source
from diffaust.errors import DerivativeError, FaustTypeError
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

pytestmark = [pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None
                                 and not os.environ.get("CXX"), reason="needs a C++ compiler"),
              # the notice --allow-native gives before compiling a header (tests/test_native_consent.py)
              pytest.mark.filterwarnings("ignore:--allow-native:diffaust.errors.DiffaustWarning")]

HEADER = textwrap.dedent("""\
    #include <math.h>
    static const float ramp[4] = {0.5f, 1.5f, 2.5f, 3.5f};
    static inline float twice(float x) { return 2.0f * x + 0.25f; }
    static inline int bump(int n) { return n + 3; }
    static inline float at(int i) { return ramp[i & 3]; }
    static inline float mix(float a, int k, float b) { return a * k + b; }
    """)

PROGRAM = textwrap.dedent("""\
    twice = ffunction(float twice(float), <gain.h>, "");
    bump = ffunction(int bump(int), "gain.h", "");
    at = ffunction(float at(int), <gain.h>, "");
    mix = ffunction(float mix(float, int, float), <gain.h>, "");
    process = _ <: twice, float(bump(int(_ * 10))), at(int(_ * 10) + 8), mix(_, 3, 0.5);
    """)


def _expected(x: np.ndarray, dt) -> np.ndarray:
    """(4, n) for x of shape (1, n), computed with the header's arithmetic."""
    x = x[0].astype(dt)
    n = (x * dt(10)).astype(np.int32)
    ramp = np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float32)
    return np.stack([np.float32(2) * x.astype(np.float32) + np.float32(0.25),
                     (n + 3).astype(dt),
                     ramp[(n + 8) & 3],
                     x.astype(np.float32) * np.float32(3) + np.float32(0.5)]).astype(np.float64)


@pytest.fixture
def prog_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "gain.h").write_text(HEADER)
    (tmp_path / "prog.dsp").write_text(PROGRAM)
    return tmp_path


@pytest.mark.parametrize("double", [False, True])
def test_header_functions_compute_what_the_header_says(prog_dir, double):
    x = np.random.default_rng(3).uniform(-1, 1, (1, 300))
    dsp = diffaust.compile(str(prog_dir / "prog.dsp"), double=double, allow_native=True)
    y = dsp.render(x)
    # the header's float functions are called with the program's samples, as in Faust's C++
    np.testing.assert_array_equal(y, _expected(x, np.float64 if double else np.float32))


@pytest.mark.parametrize("double", [False, True])
def test_interpreter_calls_the_same_shim(prog_dir, double):
    path = str(prog_dir / "prog.dsp")
    st = run_pipeline(PROGRAM, path, CompileOptions(double=double, allow_native=True))
    x = np.random.default_rng(4).uniform(-1, 1, (1, 100))
    y = diffaust.compile(path, double=double, allow_native=True).render(x)
    np.testing.assert_array_equal(interp.run(st.program, x, 100), y)


def test_header_found_through_include_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "gain.h").write_text(HEADER)
    with pytest.raises(FaustTypeError, match="gain.h"):
        diffaust.compile(PROGRAM, use_cache=False)  # from a string: searched in the working folder
    dsp = diffaust.compile(PROGRAM, import_dirs=[str(inc)], use_cache=False, allow_native=True)
    x = np.linspace(-1, 1, 50)[None]
    np.testing.assert_array_equal(dsp.render(x), _expected(x, np.float32))


def test_missing_header_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "p.dsp"
    f.write_text('f = ffunction(float nowhere_fn(float), <nowhere_header.h>, ""); process = f;')
    assert main(["render", str(f), "-o", str(tmp_path / "o.wav"), "-n", "10"]) == 1
    err = capsys.readouterr().err
    assert "nowhere_fn" in err and "nowhere_header.h" in err and "Traceback" not in err


def test_header_function_has_no_derivative(prog_dir):
    src = ('twice = ffunction(float twice(float), <gain.h>, "");'
           'process = twice(hslider("g", 0.5, 0, 1, 0.01) : _[diff:1]);')
    (prog_dir / "d.dsp").write_text(src.replace(": _[diff:1]", "").replace('"g"', '"g[diff:1]"'))
    with pytest.raises(DerivativeError, match="twice"):
        diffaust.compile(str(prog_dir / "d.dsp"), diff=True, allow_native=True)
    diffaust.compile(str(prog_dir / "d.dsp"), allow_native=True)  # the primal program is fine


def test_warm_cache_in_a_new_process_loads_the_shim(prog_dir):
    code = ("import sys, numpy as np, diffaust; d = diffaust.compile(sys.argv[1], allow_native=True); "
            "print(repr(d.render(np.full((1, 4), 0.3)).tolist()))")
    env = dict(os.environ)
    runs = [subprocess.run([sys.executable, "-c", code, str(prog_dir / "prog.dsp")], env=env,
                           capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1]
    shims = list((prog_dir / "cache" / "foreign").glob("*.so"))
    assert len(shims) == 1
    shims[0].unlink()  # a cache entry whose shim is gone is rebuilt, not a link failure
    again = subprocess.run([sys.executable, "-c", code, str(prog_dir / "prog.dsp")], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert again == runs[0]


def test_changed_header_recompiles(prog_dir):
    path = str(prog_dir / "prog.dsp")
    x = np.full((1, 3), 0.25)
    assert diffaust.compile(path, allow_native=True).render(x)[0][0] == np.float32(0.75)  # 2·0.25 + 0.25
    (prog_dir / "gain.h").write_text(HEADER.replace("2.0f * x + 0.25f", "5.0f * x"))
    assert diffaust.compile(path, allow_native=True).render(x)[0][0] == np.float32(1.25)  # the cached object is not reused


def test_cpp_export_includes_the_header(prog_dir, capsys):
    assert main(["compile", "-lang", "cpp", "--allow-native", str(prog_dir / "prog.dsp")]) == 0
    out = capsys.readouterr().out
    assert "#include <gain.h>" in out or '#include "gain.h"' in out
    assert "twice(" in out and "diffaust_ff_" not in out


def test_helpers():
    assert header_name("<a/b.h>") == "a/b.h" and header_name('"x.h"') == "x.h" and header_name("y.h") == "y.h"
    assert find_header("<surely_not_a_header_here.h>") is None
    text, syms = shim_source([("f", ("real", "int"), "real")], ["<f.h>"], "double", "t")
    assert 'extern "C" double diffaust_ff_t_f(double a0, int a1) { return f(a0, a1); }' in text
    assert "#include <f.h>" in text and syms == {"f": "diffaust_ff_t_f"}
