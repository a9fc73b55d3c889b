"""Issue 13, point 8: `diffaust conformance` on any folder, with a block size, pressing
buttons and checkboxes, and failures grouped by cause with the full first error line.

The command is run as a user types it (`python -m diffaust conformance FOLDER ...`) on a
small folder of programs: one importing a library that lies at the folder's root (from
a subfolder), one with a button and a checkbox, one reading `count`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from diffaust import conformance as C

LONG = ("prog.dsp:7:12: error: cannot bound the delay: the delay amount has no known range "
        "(the amount is computed from 'hslider(\"d\", 3, 0, 10, 1)' through an operation whose "
        "result diffaust cannot bound: give it a range with min/max or a mask, as in x@(int(d) & 15))")


def _conformance(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "diffaust", "conformance", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


# ------------------------------------------------------------------ the report
def test_long_errors_keep_their_full_first_line():
    rows = [{"path": "/x/a.dsp", "results": {"double": {"status": "compile-error", "detail": LONG}}},
            {"path": "/x/b.dsp", "results": {"double": {"status": "compile-error",
                                                        "detail": LONG.replace("7:12", "3:1").replace("15", "7")}}},
            {"path": "/x/c.dsp", "results": {"double": {"status": "pass"}}}]
    report = C.Report(["double"], rows)
    causes = report.causes("double")
    assert len(causes) == 1  # the same cause: place, names and numbers blanked
    cause = next(iter(causes))
    assert cause.startswith("compile error: error: cannot bound the delay")
    assert cause.endswith("as in x@(int(d) & N))")  # the whole line, not cut
    text = C.format_report(report)
    assert LONG in text  # each failure with its full first line


def test_first_error_line_of_a_reference_failure():
    gxx = ("g++ failed (g++ -std=c++17 -O1 -c unit.cpp -o unit.o):\n"
           "In file included from unit.cpp:3:\n"
           "gen.cpp:41:5: error: 'frobnicate' was not declared in this scope; did you mean 'fabs'?\n"
           "   41 |     frobnicate(x);\n"
           "      |     ^~~~~~~~~~")
    assert C.first_error_line(gxx) == ("g++: gen.cpp:41:5: error: 'frobnicate' was not declared in this scope; "
                                       "did you mean 'fabs'?")
    faust = "faust failed (faust -lang cpp prog.dsp -o gen.cpp):\nprog.dsp : 1 : ERROR : undefined symbol : foo"
    assert C.first_error_line(faust) == "faust: prog.dsp : 1 : ERROR : undefined symbol : foo"
    assert C.first_error_line("x.dsp:1:2: error: boom\n    process = boom;\n              ^") == "x.dsp:1:2: error: boom"
    res = {"status": "reference-rejects", "detail": "faust: a.dsp : 1 : ERROR : undefined symbol : foo"}
    report = C.Report(["double"], [{"path": "/x/a.dsp", "results": {"double": res}}])
    assert list(report.rejected("double")) == ["rejected by the reference: faust: ERROR : undefined symbol : foo"]
    assert C._unlocated("faust: ???? : -1 : ERROR : undefined symbol : process") == \
        "faust: ERROR : undefined symbol : process"  # no place: faust's "???? : -1"
    crashed = "faust failed (faust -lang cpp a.dsp -o gen.cpp):\n(no message, killed by signal 11)"
    assert C.first_error_line(crashed) == "faust: (no message, killed by signal 11)"


def test_press_schedules():
    assert C.press_schedule("button", 256) == [(0, 1.0), (256, 0.0)]
    assert C.press_schedule("checkbox", 64) == [(64, 1.0)]
    info = {"inputs": 1, "params": [{"type": "button", "path": "/p/gate"}, {"type": "hslider", "path": "/p/f"},
                                    {"type": "checkbox", "path": "/p/on"}]}
    assert C._runs(info, False) == [("impulse", "impulse", {}), ("noise", "noise", {})]
    assert C._runs(info, True)[-1] == ("press", "impulse", {"/p/gate": "button", "/p/on": "checkbox"})


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", ["0", "-4", "many"])
def test_bad_block_size_is_one_line(tmp_path, bad):
    (tmp_path / "a.dsp").write_text("process = _;")
    r = _conformance(tmp_path, "--block-size", bad)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--block-size" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_empty_folder_is_an_error(tmp_path):
    r = _conformance(tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ against faust
def _folder(root):
    (root / "sub").mkdir()
    (root / "mylib.lib").write_text("gain(g) = *(g);\n")
    (root / "sub" / "uses_lib.dsp").write_text('import("mylib.lib");\nprocess = _ : gain(0.5) : + ~ *(0.25);\n')
    (root / "synth.dsp").write_text(
        'import("stdfaust.lib");\n'
        'process = button("gate") : en.adsr(0.001, 0.01, 0.5, 0.01) : *(os.osc(440))'
        ' : *(checkbox("loud") + 1);\n')
    (root / "count.dsp").write_text("process = fvariable(int count, <math.h>) * 0.001 + _;\n")
    (root / "broken.dsp").write_text("process = no_such_thing;\n")


@pytest.mark.reference
def test_conformance_on_a_user_folder(faust_ref, tmp_path):
    progs = tmp_path / "progs"
    progs.mkdir()
    _folder(progs)
    out = tmp_path / "report.json"
    r = _conformance("progs", "--precision", "double", "--block-size", "64", "--press", "-n", "600",
                     "-j", "2", "-q", "--json", out, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "double: 3/3 programs match the reference (100.0%" in r.stdout, r.stdout
    assert "1 rejected by the reference compiler, not counted" in r.stdout
    assert "broken.dsp: faust: broken.dsp : 1 : ERROR : undefined symbol : no_such_thing" in r.stdout
    assert "blocks of 64 samples, buttons and checkboxes pressed" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["block_size"] == 64 and rep["press"] is True
    runs = {row["path"].split("/")[-1]: row["results"]["double"].get("runs") for row in rep["rows"]}
    assert runs["synth.dsp"] == ["zeros", "press"]
    assert runs["uses_lib.dsp"] == ["impulse", "noise"]


@pytest.mark.reference
def test_press_and_block_size_reach_both_sides(faust_ref, tmp_path):
    """The press run and the block size change the result: a program whose output would
    differ if either side ignored them passes (and its renders are not silent)."""
    from pathlib import Path

    from diffaust import reference

    _folder(tmp_path)
    synth, count = Path(tmp_path / "synth.dsp"), Path(tmp_path / "count.dsp")
    for bs in (64, 100, 256):
        for path in (synth, count):
            res = C.run_one(path, ["double"], 1000, bs, True)["results"]["double"]
            assert res["status"] == "pass", res
    ref = reference.render_reference(synth, n=600, double=True, block_size=64,
                                     params={"/prog/gate": C.press_schedule("button", 64)})
    assert abs(ref).max() > 0.1 and abs(ref[:, 400:]).max() < abs(ref[:, :128]).max()


def test_help_lists_the_new_flags(capsys):
    from diffaust.cli import main

    assert main(["conformance", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--block-size" in out and "--press" in out
