"""Bad input gives a clear error, never a traceback; programs Faust rejects are rejected
the same way, located (issue 9, point 7).

Faust 2.54.9's measured behaviour, which the expectations below follow:

* an integer literal of any length is read modulo 2**32 (4,301 ones: -954437177);
* a slider or entry: ``horizontal slider 'g' min = 1 should be less than max = 0``,
  ``horizontal slider 'g' init = 2 outside of [0 1] range`` (also ``vertical slider``,
  ``num entry``); bargraphs are not checked; a widget simplified away (``*0``) or unused
  is not checked;
* ``%``, ``fmod`` by a constant 0: ``% by 0 in ...``; ``remainder``: ``remainder by 0 in ...``;
* two different input widgets on one full path: ``path '/prog/g' is already used`` (two
  identical widgets are one; bargraphs are not checked);
* a raw control character in a string literal (newline, tab, CR...) is accepted and read
  as a space: ``declare name "a<newline>b"`` names the program ``a b``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import diffaust
from diffaust.errors import DiffaustError, FaustEvalError, UsageError
from diffaust.runtime.dsp import MAX_SAMPLE_RATE, _check_sample_rate

pytestmark = pytest.mark.usefixtures("diffaust_compile")  # skip while the runtime is missing

HAVE_FAUST = shutil.which("faust") is not None


def cli(*argv, cwd=None):
    """`python -m diffaust ...` as the user types it: (status, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "diffaust", *map(str, argv)], capture_output=True,
                       text=True, cwd=cwd, timeout=300)
    return p.returncode, p.stdout, p.stderr


def assert_clean_error(code, out, err, *needles):
    """Nonzero exit, no traceback, one error line (a located one may quote its source
    line and a caret under it), containing each needle."""
    assert code != 0, (out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.strip().splitlines()
    assert sum("error" in line for line in lines) == 1, err
    assert "error" in lines[0], err
    assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), err
    for n in needles:
        assert n in lines[0], err


def compile_quiet(src, **kw):
    kw.setdefault("use_cache", False)
    return diffaust.compile(src, **kw)


@pytest.fixture(scope="module")
def gain():
    return compile_quiet('process = _ * hslider("g", .5, 0, 1, .01);')


# ------------------------------------------------------------- huge integer literal
BIG = "1" * 4301  # past Python's int-string conversion limit (4300 digits)


def test_huge_integer_literal_wraps_like_faust(tmp_path):
    d = compile_quiet(f"process = {BIG};")
    assert d.render(n=3)[0].tolist() == [np.float32(-954437177)] * 3  # Faust's value
    d = compile_quiet(f"process = _ @ ({BIG} - {BIG});")  # 0 after wrapping: a plain wire
    assert d.render(np.ones((1, 3)))[0].tolist() == [1, 1, 1]
    p = tmp_path / "big.dsp"
    p.write_text(f"process = _ @ {BIG};\n")
    code, out, err = cli("compile", p)
    assert_clean_error(code, out, err, "big.dsp:1:11:", "negative delay", "-954437177")


# ------------------------------------------------------------- API arguments
@pytest.mark.parametrize("kwargs, needle", [
    ({"n": -5}, "n must be between 0"),
    ({"n": 2.5}, "whole number of samples"),
    ({"n": "3"}, "whole number of samples"),
    ({"n": True}, "whole number of samples"),
    ({"n": 4, "params": {None: 1}}, "a parameter is named by its label, path or index"),
    ({"n": 4, "params": {True: 1}}, "a parameter is named"),
    ({"n": 4, "params": {"g": "loud"}}, "must be a real number"),
    ({"n": 4, "params": {"g": 1j}}, "must be a real number"),
    ({"n": 4, "params": [("g", 1)]}, "params must be a dict"),
    ({"x": np.zeros((1, 2, 3))}, "shape (inputs, n) or (n,)"),
    ({"x": np.float32(1)}, "shape (inputs, n) or (n,)"),
    ({"x": np.zeros((1, 4), complex)}, "real numbers"),
    ({"x": np.array([["a", "b"]])}, "real numbers"),
    ({"x": [[1, 2], [3]]}, "x must be an array"),
], ids=lambda v: repr(v)[:40])
def test_render_arguments(gain, kwargs, needle):
    with pytest.raises(UsageError, match=None) as e:
        gain.render(**kwargs)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_render_good_arguments_still_work(gain):
    assert gain.render(n=0).shape == (1, 0)
    assert gain.render(n=np.int64(3)).shape == (1, 3)
    y = gain.render(np.ones(4), params={"g": np.float64(0.25), 0: 0.25})
    assert y.tolist() == [[0.25] * 4]
    assert gain.render(np.ones((1, 4), dtype=np.int16)).shape == (1, 4)


@pytest.mark.parametrize("sr", [0, -1, MAX_SAMPLE_RATE + 1, 2**32, 44100.5, float("nan"), True, "48000", None])
def test_bad_sample_rate(sr):
    with pytest.raises(UsageError, match="sample_rate must be"):
        _check_sample_rate(sr)
    with pytest.raises(UsageError, match="sample_rate must be"):
        compile_quiet("process = 1;", sample_rate=sr)


def test_good_sample_rates():
    assert _check_sample_rate(48000.0) == 48000
    assert _check_sample_rate(np.int32(96000)) == 96000
    assert _check_sample_rate(MAX_SAMPLE_RATE) == MAX_SAMPLE_RATE
    d = compile_quiet('import("stdfaust.lib"); process = ma.SR;', sample_rate=MAX_SAMPLE_RATE)
    assert d.render(n=1)[0, 0] == 192000  # ma.SR clamps, as in Faust


def test_lone_surrogate_in_source():
    with pytest.raises(UsageError) as e:
        compile_quiet("process = \ud800;")
    assert str(e.value) == ("<string>:1:11: error: invalid character U+D800 (a lone surrogate: "
                            "the source text is not valid Unicode)")
    with pytest.raises(UsageError, match=r"<string>:2:17: .*U\+DFFF"):
        compile_quiet('process = 1;\ndeclare author "\udfff";')


# ------------------------------------------------------------- WAV and --sr
def test_wav_header_limits(tmp_path):
    from diffaust.audio import read_wav, write_wav

    out = tmp_path / "x.wav"
    write_wav(str(out), np.zeros((1, 4)), 2**30 - 1)
    assert read_wav(str(out))[1] == 2**30 - 1
    for sr in (2**30, 2**32):
        with pytest.raises(UsageError, match="a WAV file cannot hold"):
            write_wav(str(out), np.zeros((1, 4)), sr)
    with pytest.raises(UsageError, match="a WAV file cannot hold"):
        write_wav(str(out), np.zeros((1, 4)), 2**31, "pcm16")


def test_cli_sample_rate_too_large(tmp_path):
    p = tmp_path / "prog.dsp"
    p.write_text("process = 0.5;\n")
    code, out, err = cli("render", p, "--sr", 4294967296, "-n", 10, "-o", tmp_path / "x.wav")
    assert_clean_error(code, out, err, "--sr", "at most 2147483647")
    code, out, err = cli("render", p, "--sr", 2147483647, "-n", 10, "-o", tmp_path / "x.wav")
    assert_clean_error(code, out, err, "a WAV file cannot hold")
    code, out, err = cli("render", p, "--sr", 2147483647, "-n", 10, "-o", tmp_path / "x.npy")
    assert code == 0, err
    assert np.load(tmp_path / "x.npy").tolist() == [[0.5] * 10]


# ------------------------------------------------------------- programs Faust rejects
# (file name is prog.dsp) source, diffaust's message, its line:column, Faust's message
REJECTED = {
    "init_above": ('process = hslider("g", 2, 0, 1, 0.1);',
                   "horizontal slider 'g' init = 2 outside of [0 1] range", "1:11",
                   "horizontal slider 'g' init = 2 outside of [0 1] range"),
    "init_below": ('process = _ * vslider("v[style:knob]", -0.5, 0, 1, 0.1);',
                   "vertical slider 'v' init = -0.5 outside of [0 1] range", "1:15",
                   "vertical slider 'v' init = -0.5 outside of [0 1] range"),
    "init_nentry": ('process = hgroup("h", nentry("n", 1.5e6, 0, 1, 0.1));',
                    "num entry 'n' init = 1.5e+06 outside of [0 1] range", "1:23",
                    "num entry 'n' init = 1.5e+06 outside of [0 1] range"),
    "min_above_max": ('process = hslider("g", 2, 1, 0, 0.1);',
                      "horizontal slider 'g' min = 1 should be less than max = 0", "1:11",
                      "horizontal slider 'g' min = 1 should be less than max = 0"),
    "remainder_0": ("process = _ : remainder(_, 0);",
                    "remainder by 0 (the second argument of 'remainder' is the constant 0)", "1:15",
                    "remainder by 0 in remainder(IN[0], 0)"),
    "remainder_folded_0": ("process = _ , (1 - 1) : remainder;",
                           "remainder by 0", "1:25", "remainder by 0 in remainder(IN[0], 0)"),
    "remainder_const_0": ("process = remainder(7, 0.0);",
                          "remainder by 0", "1:11", "remainder by 0 in remainder(7, 0.0f)"),
    "mod_0": ("process = _ % 0;", "% by 0 (the right operand of '%' is the constant 0)", "1:11",
              "% by 0 in IN[0] % 0"),
    "fmod_0": ("process = _ : fmod(_, 0.0);",
               "% by 0 (the second argument of 'fmod' is the constant 0)", "1:15",
               "% by 0 in IN[0] % 0.0f"),
    "duplicate_path": ('process = hslider("g", 0.5, 0, 1, 0.1) + hslider("g", 0.2, 0, 1, 0.1);',
                       "path '/prog/g' is already used", "1:42", "path '/prog/g' is already used"),
    "duplicate_kinds": ('process = button("g") + checkbox("g ");',
                        "path '/prog/g' is already used", "1:25", "path '/prog/g' is already used"),
    "duplicate_in_group": ('process = hgroup("a", hslider("g", .5, 0, 1, .1)) + hgroup("a", hslider("g[k:v]", .5, 0, 1, .1));',
                           "path '/a/g' is already used", "1:65", "path '/a/g' is already used"),
}


@pytest.mark.parametrize("name", list(REJECTED))
def test_rejected_like_faust_api(tmp_path, name):
    src, msg, where, _faust = REJECTED[name]
    p = tmp_path / "prog.dsp"
    p.write_text(src + "\n")
    with pytest.raises(FaustEvalError) as e:
        compile_quiet(str(p))
    assert str(e.value).startswith(f"{p}:{where}: error: {msg}")
    assert e.value.location() == f"{p}:{where}"


@pytest.mark.parametrize("name", list(REJECTED))
def test_rejected_like_faust_cli(tmp_path, name):
    src, msg, where, _faust = REJECTED[name]
    p = tmp_path / "prog.dsp"
    p.write_text(src + "\n")
    code, out, err = cli("compile", "prog.dsp", cwd=tmp_path)
    assert_clean_error(code, out, err, f"prog.dsp:{where}: error: {msg}")


@pytest.mark.skipif(not HAVE_FAUST, reason="faust is not installed")
@pytest.mark.parametrize("name", list(REJECTED))
def test_faust_rejects_them_too(tmp_path, name):
    src, _msg, _where, faust_msg = REJECTED[name]
    p = tmp_path / "prog.dsp"
    p.write_text(src + "\n")
    r = subprocess.run(["faust", "prog.dsp"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert faust_msg in r.stderr, r.stderr


ACCEPTED = {  # close to the above, and accepted by Faust
    "bargraph_inverted": 'process = _ : hbargraph("b", 1, 0);',
    "same_widget_twice": 'process = hslider("g", 0.5, 0, 1, 0.1) + hslider("g", 0.5, 0, 1, 0.1);',
    "bargraphs_same_path": 'process = _ <: attach(_, hbargraph("g", 0, 1)), attach(_, hbargraph("g", -1, 1)) :> _;',
    "slider_and_bargraph": 'process = hslider("g", 0.5, 0, 1, 0.1) : hbargraph("g", 0, 1);',
    "bad_slider_times_0": 'process = hslider("g", 2, 0, 1, 0.1) * 0;',
    "bad_slider_unused": 'x = hslider("g", 2, 0, 1, 0.1); process = 1;',
    "duplicate_times_0": 'process = hslider("g", 0.5, 0, 1, 0.1) * 0 + hslider("g", 0.2, 0, 1, 0.1);',
    "init_on_bounds": 'process = hslider("g", 0, 0, 1, 0.1) + nentry("n", 1, 0, 1, 1) + vslider("v", 3, 3, 3, 0);',
    "remainder_by_1": 'process = _ : remainder(_, 1);',
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_like_faust(tmp_path, name):
    p = tmp_path / "prog.dsp"
    p.write_text(ACCEPTED[name] + "\n")
    compile_quiet(str(p))
    if HAVE_FAUST:
        r = subprocess.run(["faust", "prog.dsp"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr


# ------------------------------------------------------------- raw newlines in strings
def test_raw_newline_in_strings_reads_as_space(tmp_path):
    p = tmp_path / "prog.dsp"
    p.write_text('declare name "a\nb";\ndeclare author "x\n\ny\tz";\n'
                 'process = hslider("g\nain", 0.5, 0, 1, 0.1) + nentry("e\t\nntry", 0.5, 0, 1, 0.1);\n')
    d = compile_quiet(str(p))
    meta = dict(d.metadata)
    assert meta["name"] == "a b" and meta["author"] == "x  y z"  # as faust -json: one space per character
    assert [q.label for q in d.params] == ["e  ntry", "g ain"]
    code, out, err = cli("compile", "-lang", "json", p)
    assert code == 0, err
    assert '"name": "a b"' in out and '"author": "x  y z"' in out
    # a file name too: component("x<newline>y.dsp") opens "x y.dsp", as Faust
    (tmp_path / "x y.dsp").write_text("process = 0.25;\n")
    q = tmp_path / "comp.dsp"
    q.write_text('process = component("x\ny.dsp");\n')
    assert compile_quiet(str(q)).render(n=2).tolist() == [[0.25, 0.25]]


def test_unterminated_string_still_located(tmp_path):
    p = tmp_path / "prog.dsp"
    p.write_text('process = 1;\ndeclare name "a\nb;\n')
    code, out, err = cli("compile", p)
    assert_clean_error(code, out, err, "prog.dsp:2:14: syntax error: unterminated string")


def test_errors_are_diffaust_errors():
    """UsageError is a DiffaustError: the CLI prints it on one line."""
    assert issubclass(UsageError, DiffaustError)
