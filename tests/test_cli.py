"""The ``diffaust`` command as a user types it: every example trains, the verifier's
table, render/compile/plot, and one-line errors (no traceback) for bad input.

Also checks the bundled examples and the bundled libraries (``src/diffaust/lib``)
against the real Faust compiler when it is installed (marker ``reference``).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from diffaust.cli import main
from diffaust.examples import EXAMPLES, EXAMPLES_DIR

pytestmark = pytest.mark.usefixtures("diffaust_compile")  # skip while the runtime is missing

EX = EXAMPLES_DIR


def run(capsys, *argv):
    """main(argv) in-process: (status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_process(*argv, cwd=None):
    """The command in a fresh interpreter, as a user would run it."""
    p = subprocess.run([sys.executable, "-m", "diffaust.cli", *map(str, argv)],
                       capture_output=True, text=True, cwd=cwd, timeout=300)
    return p.returncode, p.stdout, p.stderr


def _assert_one_line_error(code, out, err, *needles):
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("diffaust: error: ") or ": error" in lines[0] or "error:" in lines[0], lines[0]
    for n in needles:
        assert n in err, err


# ------------------------------------------------------------------- train
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_train_example_converges(capsys, tmp_path, name):
    csv = tmp_path / "loss.csv"
    code, out, err = run(capsys, "train", "--example", name, "--csv", csv, "-q")
    assert code == 0, err
    assert "Converged" in out, out
    hist = np.genfromtxt(csv, delimiter=",", names=True)
    assert hist["loss"][-1] < 1e-6
    assert hist.shape[0] <= EXAMPLES[name].iterations
    header = csv.read_text().splitlines()[0].split(",")
    assert header[:2] == ["iteration", "loss"]
    for label, hidden in EXAMPLES[name].hidden.items():
        assert f"{label}_grad" in header and label in header
        learned = hist[label][-1]
        assert abs(learned - hidden) < 1e-3, f"{name}: {label} = {learned}, hidden {hidden}"


def test_train_console_table_and_plot(capsys, tmp_path):
    png = tmp_path / "loss.png"
    code, out, err = run(capsys, "train", "--example", "one_zero", "--plot", png, "--every", "1")
    assert code == 0, err
    assert "Learning rate: 0.1" in out and "Sensitivity: 1e-07" in out
    assert "Learnable parameter: b1, value: 0.2" in out
    assert " Iter   Ground truth      Learnable           Loss             b1" in out
    rows = [ln for ln in out.splitlines() if ln[:5].strip().isdigit()]
    assert [int(r[:5]) for r in rows] == list(range(1, len(rows) + 1))  # --every 1: every row
    assert rows[-1].rstrip().endswith("-")  # the last rows: loss below sensitivity, no update
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_train_explicit_files_l1_and_initial_param(capsys):
    code, out, err = run(capsys, "train", "--input", EX / "noise.dsp", "--gt", EX / "gain" / "gt.dsp",
                         "--diff", EX / "gain" / "diff.dsp", "-lf", "l1", "-lr", "0.001",
                         "--iterations", "3000", "--param", "gain=0.3", "-q")
    assert code == 0, err
    assert "Loss function: l1" in out and "value: 0.3" in out
    learned = float(out.split("gain = ")[1].split()[0])
    assert abs(learned - 0.25) < 5e-3


def test_train_double_and_builtin_input(capsys):
    code, out, err = run(capsys, "train", "--example", "one_pole", "--input", "noise", "-double", "-q")
    assert code == 0, err
    assert "Converged" in out


def test_train_speed_one_zero_10000_iterations(diffaust_compile):
    import time

    from diffaust.audio import input_signal
    from diffaust.train import fit

    ex = EXAMPLES["one_zero"]
    dsp = diffaust_compile(str(ex.diff), diff=True)
    gt = diffaust_compile(str(ex.gt))
    x = input_signal(str(ex.input_path), 1, 10000).astype(np.float32)
    target = gt.render(x, 10000)
    t0 = time.perf_counter()
    h = fit(dsp, target, x, patience=None)
    dt = time.perf_counter() - t0
    assert h.iterations == 10000
    assert dt < 1.0, f"10,000 per-sample iterations took {dt:.2f} s"


# ------------------------------------------------------------------ verify
def test_verify_table(capsys):
    code, out, err = run(capsys, "verify", "--example", "gain_dc", "-n", "40")
    assert code == 0, err
    lines = out.splitlines()
    head = " Iter          Param       Autodiff    Finite diff        |delta|     Rel. error"
    assert lines.count(head) == 2  # every 20 samples
    assert "-" * 80 in lines
    rows = [ln for ln in lines if ln.endswith(" %")]
    assert len(rows) == 80  # 40 samples x 2 parameters
    assert rows[0].startswith("    1             dc   1.0000000000")
    assert rows[1].startswith("                gain")
    for name in ("dc", "gain"):
        assert f"Parameter: {name}" in out
    assert "         Mean delta:" in out and " Standard deviation:" in out


def test_verify_recursion_central_double(capsys):
    code, out, err = run(capsys, "verify", "--example", "one_pole", "-double", "--central",
                         "--epsilon", "1e-6", "--tol", "1e-6", "-q")
    assert code == 0, out + err
    assert "central differences, double" in out


def test_verify_tolerance_failure(capsys):
    # forward differences in float with a big epsilon cannot meet a tiny tolerance
    code, out, err = run(capsys, "verify", "--example", "gain_sq", "--epsilon", "0.1", "--tol", "1e-9", "-q")
    assert code == 1 and "exceeds --tol" in err and "Traceback" not in err


ZITA = """import("stdfaust.lib");
t60 = hslider("t60 [diff:1]", 3, 1, 8, 0.1);
f2 = hslider("hfdamp [diff:1]", 6000, 1500, 20000, 1);
process = re.zita_rev1_stereo(20, 200, f2, t60, t60*0.8, 48000);
"""

# sinh is an ffunction with a known derivative: --nondiff sinh drops it on purpose
SINH = 'sh = ffunction(float sinhf|sinh|sinhl(float), <math.h>, "");\n'
GAMMA = 'gm = ffunction(float tgammaf|tgamma|tgammal(float), <math.h>, "");\n'
P_DIFF = 'p = hslider("p [diff:1]", 0.5, 0, 1, 0.001);\n'


def _write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


def _summary(out):
    """The 'Worst: ...' line."""
    lines = [ln for ln in out.splitlines() if ln.startswith("Worst: ")]
    assert len(lines) == 1, out
    return lines[0]


def test_verify_zita_defaults_pass_tolerance(tmp_path):
    # what a user types: one second (44100 samples) of 2-channel noise, central, double
    zita = _write(tmp_path, "zita.dsp", ZITA)
    code, out, err = run_process("verify", "--diff", zita, "--central", "-double", "--tolerance", "1e-6",
                                 cwd=tmp_path)
    assert code == 0, out + err
    assert "Input: noise (2 channels)" in out and "Samples: 44100 at 44100 Hz" in out
    assert "Epsilon: 0.0001 x max(1, |p|): hfdamp 0.6, t60 0.0003 (central differences, double)" in out
    worst = _summary(out)
    assert worst.endswith("all 44100 samples compared"), worst
    err_value = float(worst.split("error ")[1].split()[0])
    assert err_value < 1e-7, worst  # measured 6.4e-9
    assert out.splitlines()[-1].startswith("PASS: error ")
    # the table: the first 100 samples of the 4 rows (2 outputs x 2 parameters), then a note
    rows = [ln for ln in out.splitlines() if ln.endswith(" %")]
    assert len(rows) == 400
    assert "  ... (44000 more samples; --rows 44100 prints them all)" in out
    for name in ("hfdamp[0]", "t60[0]", "hfdamp[1]", "t60[1]"):
        assert f"Parameter: {name}" in out
    assert out.count("Samples compared:      44100 of 44100") == 4


def test_verify_default_length_and_one_noise_channel_per_input(capsys, tmp_path):
    from diffaust.audio import lcg_noise

    prog = _write(tmp_path, "stereo.dsp", 'g = hslider("g [diff:1]", 0.5, 0, 1, 0.01);\n'
                                          'process = *(g), *(g*2);\n')
    code, out, err = run(capsys, "verify", "--diff", prog, "--sr", "8000", "--rows", "2")
    assert code == 0, err
    assert "Samples: 8000 at 8000 Hz" in out and "Input: noise (2 channels)" in out
    assert "Samples compared:       8000 of 8000" in out
    rows = [ln for ln in out.splitlines() if ln.endswith(" %")]
    assert len(rows) == 4  # 2 samples x 2 outputs
    # d out0/d g = x0, d out1/d g = 2 x1: the autodiff column shows the two noise channels
    ad = [float(r[20:35]) for r in rows]
    x0, x1 = lcg_noise(0, 2), lcg_noise(1, 2)
    np.testing.assert_allclose(ad, [x0[0], 2 * x1[0], x0[1], 2 * x1[1]], atol=1e-9)
    assert abs(x0[0] - x1[0]) > 1e-3  # independent channels
    # -n still sets the length; a program without inputs gets none
    mono = _write(tmp_path, "osc.dsp", 'g = hslider("g [diff:1]", 0.5, 0, 1, 0.01);\nprocess = g*g;\n')
    code, out, err = run(capsys, "verify", "--diff", mono, "-n", "30", "-q")
    assert code == 0, err
    assert "Input: none (the program has no inputs)" in out and "Samples: 30 at 44100 Hz" in out


def test_verify_off_by_a_tenth_of_a_percent_fails_tolerance(capsys, tmp_path):
    # d/dp (x p + 0.001 sinh(p)): --nondiff sinh drops 0.001 cosh(p), ~0.1 % of the peak
    prog = _write(tmp_path, "almost.dsp", SINH + P_DIFF + "process = _ * p + 0.001 * sh(p);\n")
    code, out, err = run(capsys, "verify", "--diff", prog, "--central", "-double", "--tolerance", "1e-6",
                         "-n", "4000", "-q")
    assert code == 0, out + err
    assert "PASS: error " in out
    code, out, err = run(capsys, "verify", "--diff", prog, "--central", "-double", "--tolerance", "1e-6",
                         "-n", "4000", "-q", "--nondiff", "sinh")
    assert code == 1
    _assert_one_line_error(code, out, err, "exceeds --tolerance 1e-06", "(p, sample ")
    worst = _summary(out)
    err_value = float(worst.split("error ")[1].split()[0])
    assert 5e-4 < err_value < 2e-3, worst  # 0.001 cosh(0.5) / max|x + 0.001 cosh(0.5)|
    assert "FAIL: error " in out
    # the older absolute --tol still works, alone or with --tolerance
    code, out, err = run(capsys, "verify", "--diff", prog, "--central", "-double", "--tol", "1e-9",
                         "-n", "100", "-q", "--nondiff", "sinh")
    assert code == 1 and "exceeds --tol 1e-09" in err


def test_verify_relative_error_is_100_percent_when_autodiff_is_zero(capsys, tmp_path):
    prog = _write(tmp_path, "sinh.dsp", SINH + P_DIFF + "process = _ * p : sh;\n")
    code, out, err = run(capsys, "verify", "--diff", prog, "--nondiff", "sinh", "-n", "5", "-double",
                         "--central")
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.endswith(" %")]
    assert len(rows) == 5
    for r in rows:
        assert float(r[20:35]) == 0.0 and abs(float(r[35:50])) > 1e-3, r
        assert r.endswith("  100.000 %"), r
    assert "error 1.000e+00 of the finite-difference peak" in _summary(out)
    # the API: 0 where both are 0, 100 where only one is
    from diffaust.verify import Verification

    v = Verification(["p"], np.array([[0.0, 0.0, 1.0, 2.0]]), np.array([[0.0, 3.0, 0.0, 1.0]]), None, True, {})
    np.testing.assert_allclose(v.rel_error, [[0.0, 100.0, 100.0, 50.0]])
    # a NaN derivative never passes
    nan = Verification(["p"], np.array([[1.0, np.nan]]), np.array([[1.0, 1.0]]), None, True, {})
    assert nan.max_error == np.inf and not nan.passed(1e-6) and nan.max_delta == np.inf


def test_verify_jump_in_the_parameter_is_reported_not_failed(capsys, tmp_path):
    # (x > p) jumps where the noise crosses p: samples from the first crossing on are left out
    prog = _write(tmp_path, "cmp.dsp", P_DIFF.replace("0.5, 0, 1", "0.3, -1, 1") +
                  "process = _ <: (_ > p) + _*p*p : + ~ *(0.9);\n")
    code, out, err = run(capsys, "verify", "--diff", prog, "--central", "-double", "--tolerance", "1e-6", "-q")
    assert code == 0, out + err
    jump = [ln for ln in out.splitlines() if ln.startswith("Jump: ")]
    assert len(jump) == 1 and "output 0 jumps in p at sample " in jump[0], out
    m = int(jump[0].split("only the ")[1].split()[0])
    assert 10 < m < 44100
    assert f"{m} of 44100 samples compared (first jump, see above)" in _summary(out)
    # comparing every sample: the jumps are 1/(2h) = 5000 times too big, and fail
    code, out, err = run(capsys, "verify", "--diff", prog, "--central", "-double", "--tolerance", "1e-6", "-q",
                         "--all-samples")
    assert code == 1 and "exceeds --tolerance" in err
    # p exactly at the threshold: nothing can be compared, said and failed
    at = _write(tmp_path, "thr.dsp", P_DIFF + "process = _ + (p > 0.5) + p;\n")
    code, out, err = run(capsys, "verify", "--diff", at, "--central", "-double", "--tolerance", "1e-6", "-q")
    _assert_one_line_error(code, out, err, "no sample compared for p")
    assert "(not checked: the output jumps in the parameter at the first sample)" in out


# ------------------------------------------------------------------ --nondiff
def test_nondiff_declares_an_ffunction_constant(capsys, tmp_path, monkeypatch):
    prog = _write(tmp_path, "gamma.dsp", GAMMA + P_DIFF + "process = _ <: (_ * p : gm), _ * p;\n")
    # without it: one-line error naming the function and the flag
    for argv in (("compile", prog, "-diff"), ("render", prog, "-diff", "-n", "4"),
                 ("verify", "--diff", prog, "-n", "4"), ("train", "--gt", prog, "--diff", prog)):
        code, out, err = run(capsys, *argv)
        _assert_one_line_error(code, out, err, "foreign function 'tgammaf'", "--nondiff tgammaf")
    # with it (any of the C names): derivative 0 for the ffunction, the rest as usual
    npy = tmp_path / "d.npy"
    code, out, err = run(capsys, "render", prog, "-diff", "-double", "-n", "4", "--input", "ones",
                         "--nondiff", "tgamma", "-o", npy)
    assert code == 0, err
    np.testing.assert_allclose(np.load(npy), [[0.0] * 4, [1.0] * 4])
    code, out, err = run(capsys, "verify", "--diff", prog, "-n", "50", "-q", "--nondiff", "tgammal")
    assert code == 0, err
    # the differentiation trace says so
    code, out, err = run(capsys, "compile", prog, "-diff", "-d", "--nondiff", "tgammaf")
    assert code == 0, err
    assert ("ffunction tgammaf|tgamma|tgammal: declared non-differentiable by --nondiff tgammaf: "
            "derivative 0") in out
    # a name the program never calls is a one-line error (a typo would otherwise do nothing)
    code, out, err = run(capsys, "compile", prog, "-diff", "--nondiff", "tgama")
    _assert_one_line_error(code, out, err, "--nondiff tgama: the program calls no ffunction of that name",
                           "tgammaf, tgamma, tgammal")
    # without -diff it changes nothing, and says so
    code, out, err = run(capsys, "render", prog, "-n", "2", "--nondiff", "tgamma")
    assert code == 0 and "warning: --nondiff has no effect without -diff" in err


def test_nondiff_has_its_own_cache_entry(tmp_path, monkeypatch):
    import os

    import diffaust

    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path / "cache"))
    src = SINH + P_DIFF + "process = _ * p : sh;"
    x = np.full((1, 3), 2.0)
    exact = 2.0 * np.cosh(1.0)  # d/dp sinh(2p) at p = 0.5
    for _ in range(2):  # the second round reads the cache
        with_rule = diffaust.compile(src, diff=True, double=True)
        declared = diffaust.compile(src, diff=True, double=True, nondiff=("sinh",))
        np.testing.assert_allclose(with_rule.render(x), exact, rtol=1e-12)
        np.testing.assert_allclose(declared.render(x), 0.0)
    entries = [f for f in os.listdir(tmp_path / "cache" / "dsp") if f.endswith(".entry")]
    assert len(entries) == 2
    # the same declaration in another order or spelling count is the same entry
    again = diffaust.compile(src, diff=True, double=True, nondiff=["sinh", "sinh"])
    np.testing.assert_allclose(again.render(x), 0.0)
    assert len([f for f in os.listdir(tmp_path / "cache" / "dsp") if f.endswith(".entry")]) == 2


# ------------------------------------------------------- render / compile
def test_render_npy_and_wav(capsys, tmp_path):
    out_npy = tmp_path / "y.npy"
    code, out, err = run(capsys, "render", EX / "one_pole" / "diff.dsp", "-n", "64", "--input", "noise",
                         "--param", "a=0.5", "-double", "-o", out_npy)
    assert code == 0, err
    y = np.load(out_npy)
    assert y.shape == (1, 64) and y.dtype == np.float64
    from diffaust.audio import make_input

    x = make_input("noise", 1, 64)[0]
    ref = np.zeros(64)
    for i in range(64):
        ref[i] = x[i] + (0.5 * ref[i - 1] if i else 0.0)
    np.testing.assert_allclose(y[0], ref, rtol=1e-12, atol=1e-12)

    # -diff: the exact derivative through the recursion, d/da of y = x + a y[n-1]
    code, out, err = run(capsys, "render", EX / "one_pole" / "diff.dsp", "-n", "64", "--input", "noise",
                         "--param", "a=0.5", "-double", "-diff", "-o", out_npy)
    assert code == 0, err
    dy = np.load(out_npy)
    dref = np.zeros(64)
    for i in range(1, 64):
        dref[i] = ref[i - 1] + 0.5 * dref[i - 1]
    np.testing.assert_allclose(dy[0], dref, rtol=1e-9, atol=1e-12)
    assert "d out0/d a" in out

    wav = tmp_path / "y.wav"
    code, out, err = run(capsys, "render", EX / "noise.dsp", "-n", "100", "-o", wav)
    assert code == 0, err
    from diffaust.audio import read_wav

    w, sr = read_wav(str(wav))
    assert w.shape == (1, 100) and sr == 44100

    # a .wav and a .npy as inputs, and a .dsp input rendered first
    code, out, err = run(capsys, "render", EX / "gain" / "diff.dsp", "--input", wav, "--param", "gain=2",
                         "-o", out_npy)
    assert code == 0, err
    np.testing.assert_allclose(np.load(out_npy), 2 * w, rtol=1e-6)
    np.save(tmp_path / "x.npy", np.arange(5.0))
    code, out, err = run(capsys, "render", EX / "gain" / "diff.dsp", "--input", tmp_path / "x.npy",
                         "--param", "/gain/gain=0.5", "--print", "5")
    assert code == 0, err
    assert "out0:  0  0.5  1  1.5  2" in out and "5 samples" in out
    code, out, err = run(capsys, "render", EX / "mem" / "diff.dsp", "--input", EX / "impulse.dsp",
                         "-n", "4", "--param", "gain=1", "-o", out_npy)
    assert code == 0, err
    assert np.load(out_npy).tolist() == [[0, 1, 0, 0]]


def test_compile_listing(capsys):
    code, out, err = run(capsys, "compile", EX / "gain" / "diff.dsp", "-diff")
    assert code == 0, err
    assert "compute" in out and "d out0/d gain" in out
    code, out, err = run(capsys, "compile", EX / "gain" / "diff.dsp", "-lang", "llvm")
    assert code == 0, err
    assert "define" in out
    code, out, err = run(capsys, "compile", EX / "gain" / "diff.dsp", "-diff", "-d")
    assert code == 0, err
    assert "gain" in out


def test_examples_list(capsys):
    code, out, err = run(capsys, "examples")
    assert code == 0
    for name in EXAMPLES:
        assert f"  {name} " in out
    for f in ("noise.dsp", "ramp.dsp", "impulse.dsp"):
        assert f in out


def test_plot_command(capsys, tmp_path):
    csv = tmp_path / "loss.csv"
    assert run(capsys, "train", "--example", "gain", "--csv", csv, "-q")[0] == 0
    code, out, err = run(capsys, "plot", csv)
    assert code == 0, err
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ errors
def test_errors_are_one_line(capsys, tmp_path):
    gain = EX / "gain" / "diff.dsp"
    cases = [
        (("render", tmp_path / "missing.dsp"), "missing.dsp"),
        (("render", gain, "--param", "nope=1"), "unknown parameter 'nope'"),
        (("render", gain, "--param", "gain"), "NAME=VALUE"),
        (("render", gain, "-n", "many"), "invalid integer"),
        (("render", gain, "--input", tmp_path / "missing.npy"), "missing.npy"),
        (("render", gain, "--input", "pink"), "unknown input"),
        (("render", gain, "-o", tmp_path / "out.txt"), "unknown output type"),
        (("train", "--example", "gain", "-lr", "fast"), "invalid number"),
        (("train", "--example", "gain", "-lf", "l3"), "l1 or l2"),
        (("train", "--example", "nope"), "unknown example"),
        (("train", "--diff", gain), "missing --gt"),
        (("train", "--example", "gain", "--param", "nope=1"), "unknown parameter"),
        (("verify", "--diff", EX / "gain" / "gt.dsp"), "no parameter is marked [diff:1]"),
        (("render", EX / "gain" / "gt.dsp", "-diff"), "no parameter is marked [diff:1]"),
        (("verify", "--example", "gain", "--epsilon", "-1"), "positive"),
        (("plot", tmp_path / "missing.csv"), "missing.csv"),
        (("frobnicate",), "invalid choice"),
        (("train", "--example", "gain", "--iterations", "-5"), "must be >= 0"),
        (("render", gain, "--bogus"), "unrecognized arguments"),
    ]
    for argv, needle in cases:
        code, out, err = run(capsys, *argv)
        _assert_one_line_error(code, out, err, needle)


def test_wrong_npy_shape(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 10)))
    code, out, err = run(capsys, "render", EX / "gain" / "diff.dsp", "--input", tmp_path / "x.npy")
    _assert_one_line_error(code, out, err, "shape (1, N)")


def test_program_errors_show_location_and_caret(capsys, tmp_path):
    bad = tmp_path / "bad.dsp"
    bad.write_text("process = _ : +(;\n")
    code, out, err = run(capsys, "render", bad)
    assert code != 0 and "Traceback" not in err
    lines = err.rstrip("\n").splitlines()
    assert lines[0].startswith(f"{bad}:1:")
    assert "^" in lines[-1]
    undefined = tmp_path / "undef.dsp"
    undefined.write_text("process = nowhere;\n")
    code, out, err = run(capsys, "compile", undefined)
    assert code != 0 and f"{undefined}:1:11" in err and "nowhere" in err


def test_subprocess_errors_and_help(tmp_path):
    code, out, err = run_process("render", tmp_path / "missing.dsp")
    _assert_one_line_error(code, out, err, "missing.dsp")
    code, out, err = run_process("train", "--example", "gain", "--param", "nope=1")
    _assert_one_line_error(code, out, err, "unknown parameter 'nope'")
    code, out, err = run_process("--help")
    assert code == 0 and "train" in out and "verify" in out


# --------------------------------------------------- against the real Faust
@pytest.mark.reference
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_examples_render_like_faust(faust_ref, diffaust_compile, name):
    ex = EXAMPLES[name]
    x = faust_ref.render_reference(ex.input_path, n=2048, double=True)
    for path in (ex.gt, ex.diff):
        ref = faust_ref.render_reference(path, n=2048, x=x, double=True)
        y = diffaust_compile(str(path), double=True).render(x, n=2048)
        np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9, err_msg=str(path))


@pytest.mark.reference
def test_input_programs_render_like_faust(faust_ref, diffaust_compile):
    for f in ("noise.dsp", "ramp.dsp", "impulse.dsp", "sine.dsp"):
        ref = faust_ref.render_reference(EX / f, n=3000)
        y = diffaust_compile(str(EX / f)).render(n=3000)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5, err_msg=f)


LIB_PROGRAM = """
import("stdfaust.lib");
x = no.noise;
process = x, ba.sAndH(x > 0.5, x), (x, x : si.bus(2) :> _), si.interpolate(0.3, x, 1),
  fi.dcblocker(x), fi.highpass(1, 2000, x), fi.lowpass(1, 1000, x), fi.pole(0.9, x), fi.zero(0.5, x),
  fi.tf1(0.5, 0.2, -0.3, x), os.osc(4410), os.oscsin(300), os.osccos(1000), os.lf_saw(300),
  os.lf_squarewave(3000), os.lf_sawpos(4410), os.phasor(10, 440), ba.db2linear(-6), ba.linear2db(0.5),
  de.delay(20, 7, x), de.fdelay(10, 2.5, x), ma.signum(x), ma.T * 1e5, ma.E, ma.PI, ma.SR,
  si.smooth(0.9, x), si.smoo(x), ba.samp2sec(441), ba.sec2samp(0.5), ba.if(x > 0, 1, 2), ma.inv(4),
  ma.neg(x), ma.nextpow2(1000), ma.zc(x), ba.pole2tau(0.99), ba.tau2pole(0.005), ma.sub(1, 3),
  ma.frac(-1.25), ma.decimal(-1.25), ba.time, ma.EPSILON * 1e7, ma.MIN * 1e38, ma.MAX / 1e38;
"""


@pytest.mark.reference
def test_bundled_libraries_match_faust_libraries(faust_ref, diffaust_compile):
    """diffaust's own lib/ (bundled_only) gives the same numbers as Faust's installed libraries."""
    import inspect

    if "bundled_only" not in inspect.signature(diffaust_compile).parameters:
        from diffaust.runtime import compile as rt_compile
    else:
        rt_compile = diffaust_compile
    ref = faust_ref.render_reference(LIB_PROGRAM, n=20000, double=True)
    y = rt_compile(LIB_PROGRAM, double=True, bundled_only=True).render(n=20000)
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9)
