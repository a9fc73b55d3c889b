"""train/render/verify with real sound files (.wav/.npy) as targets and inputs."""

import re

import numpy as np
import pytest

import diffaust
from diffaust.audio import lcg_noise, write_wav
from diffaust.cli import main
from diffaust.examples import EXAMPLES_DIR

ONE_POLE = EXAMPLES_DIR / "one_pole"
N = 4000


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err):
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sig")
    x = lcg_noise(0, N)[None, :]
    gt = diffaust.compile(str(ONE_POLE / "gt.dsp"), sample_rate=48000)
    y = np.asarray(gt.render(x.astype(np.float32), n=N), dtype=np.float64)
    write_wav(str(d / "in48.wav"), x, 48000, "float32")
    write_wav(str(d / "in44.wav"), x, 44100, "float32")
    write_wav(str(d / "t48.wav"), y, 48000, "float32")
    np.save(d / "t.npy", y[0])  # 1-D: one channel
    np.save(d / "in.npy", x)
    np.save(d / "t2.npy", np.vstack([y, y]))
    bad = y.copy()
    bad[0, 17] = np.nan
    write_wav(str(d / "nan.wav"), bad, 48000, "float32")
    return d


def a_value(out):
    m = re.search(r"^\s+a = (\S+)", out, re.M)
    assert m, out
    return float(m.group(1))


def test_block_mode_wav_target(capsys, files):
    code, out, err = run(capsys, "train", "--mode", "block", "--input", files / "in48.wav",
                         "--gt", files / "t48.wav", "--diff", ONE_POLE / "diff.dsp",
                         "--iterations", "300", "-q")
    assert code == 0, err
    assert f"Mode: block ({N} samples per iteration)" in out
    assert "Sample rate: 48000 Hz" in out
    assert abs(a_value(out) - 0.7) < 1e-3


def test_sample_mode_wav_target(capsys, files):
    code, out, err = run(capsys, "train", "--input", files / "in48.wav", "--gt", files / "t48.wav",
                         "--diff", ONE_POLE / "diff.dsp", "-lr", "0.05", "-q", "--no-stop")
    assert code == 0, err
    assert f"Samples: {N} at 48000 Hz" in out
    assert f"Iterations: {N}," in out
    assert abs(a_value(out) - 0.7) < 1e-2


def test_npy_target_and_fewer_samples(capsys, files):
    code, out, err = run(capsys, "train", "--mode", "block", "--input", files / "in.npy",
                         "--gt", files / "t.npy", "--diff", ONE_POLE / "diff.dsp", "--samples", "2000",
                         "--iterations", "300", "-q")
    assert code == 0, err
    assert "Mode: block (2000 samples per iteration)" in out and "Sample rate: 44100 Hz" in out
    assert abs(a_value(out) - 0.7) < 1e-3


def test_program_uses_wav_rate(capsys, files, tmp_path):
    # a learnable program whose output depends on ma.SR: fits only when run at 48 kHz
    dsp = tmp_path / "sr.dsp"
    dsp.write_text('import("stdfaust.lib");\n'
                   'a = hslider("a [diff:1]", 0.3, -0.99, 0.99, 0.001);\n'
                   'process = *(ma.SR / 48000) : + ~ *(a);\n')
    code, out, err = run(capsys, "train", "--mode", "block", "--input", files / "in48.wav",
                         "--gt", files / "t48.wav", "--diff", dsp, "--iterations", "300", "-q")
    assert code == 0, err
    assert re.search(r"best loss: (\S+)", out) and float(re.search(r"best loss: (\S+),", out).group(1)) < 1e-8


def test_channel_mismatch(capsys, files):
    line = one_line_error(*run(capsys, "train", "--input", files / "in48.wav", "--gt", files / "t2.npy",
                               "--diff", ONE_POLE / "diff.dsp")[:3:2])
    assert "has 2 channel(s)" in line and "1 output(s)" in line


@pytest.mark.parametrize("mode,flag", [("sample", "--iterations"), ("block", "--samples")])
def test_too_many_samples(capsys, files, mode, flag):
    line = one_line_error(*run(capsys, "train", "--mode", mode, "--input", files / "in48.wav",
                               "--gt", files / "t48.wav", "--diff", ONE_POLE / "diff.dsp",
                               flag, "5000")[:3:2])
    assert f"{flag} 5000" in line and f"({N})" in line


def test_input_shorter_than_target(capsys, files, tmp_path):
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((1, 100)))
    line = one_line_error(*run(capsys, "train", "--input", short, "--gt", files / "t.npy",
                               "--diff", ONE_POLE / "diff.dsp")[:3:2])
    assert "holds 100 samples" in line and str(N) in line


def test_explicit_sr_differs(capsys, files):
    line = one_line_error(*run(capsys, "train", "--sr", "44100", "--input", files / "in48.wav",
                               "--gt", files / "t48.wav", "--diff", ONE_POLE / "diff.dsp")[:3:2])
    assert "--sr 44100" in line and "48000 Hz" in line


def test_explicit_sr_same_ok(capsys, files):
    code, out, err = run(capsys, "train", "--sr", "48000", "--mode", "block", "--input", files / "in48.wav",
                         "--gt", files / "t48.wav", "--diff", ONE_POLE / "diff.dsp", "--iterations", "5", "-q")
    assert code == 0, err


def test_input_and_target_rates_differ(capsys, files):
    line = one_line_error(*run(capsys, "train", "--input", files / "in44.wav", "--gt", files / "t48.wav",
                               "--diff", ONE_POLE / "diff.dsp")[:3:2])
    assert "44100 Hz" in line and "48000 Hz" in line


def test_nan_in_target(capsys, files):
    line = one_line_error(*run(capsys, "train", "--input", files / "in48.wav", "--gt", files / "nan.wav",
                               "--diff", ONE_POLE / "diff.dsp")[:3:2])
    assert "NaN" in line and "nan.wav" in line and "sample 17" in line


def test_nan_in_input(capsys, files):
    line = one_line_error(*run(capsys, "train", "--mode", "block", "--input", files / "nan.wav",
                               "--gt", files / "t48.wav", "--diff", ONE_POLE / "diff.dsp")[:3:2])
    assert "NaN" in line and "input" in line and "sample 17" in line


def test_render_input_wav_rate(capsys, files, tmp_path):
    dsp = tmp_path / "rate.dsp"
    dsp.write_text('import("stdfaust.lib");\nprocess = _ * 0 + ma.SR;\n')
    code, out, err = run(capsys, "render", dsp, "--input", files / "in48.wav", "--print", "2")
    assert code == 0, err
    assert "at 48000 Hz" in out and "48000" in out.splitlines()[-1]
    line = one_line_error(*run(capsys, "render", dsp, "--input", files / "in48.wav", "--sr", "44100")[:3:2])
    assert "--sr 44100" in line


def test_verify_input_wav_rate(capsys, files):
    code, out, err = run(capsys, "verify", "--diff", ONE_POLE / "diff.dsp", "--input", files / "in48.wav",
                         "-n", "1000", "-q")
    assert code == 0, err
    assert "Samples: 1000 at 48000 Hz" in out


def test_subprocess_error_is_one_line(files):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "diffaust", "train", "--input", str(files / "in48.wav"),
                        "--gt", str(files / "t48.wav"), "--diff", str(ONE_POLE / "diff.dsp"), "--sr", "44100"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- Python API
def test_api_fit_wav_paths(files):
    res = diffaust.fit(str(ONE_POLE / "diff.dsp"), target=files / "t48.wav", input=str(files / "in48.wav"),
                       iterations=300)
    assert abs(res.params["a"] - 0.7) < 1e-3


def test_api_fit_sample_mode_npy(files):
    hist = diffaust.fit(str(ONE_POLE / "diff.dsp"), target=str(files / "t.npy"), input=str(files / "in.npy"),
                        mode="sample", lr=0.05)
    assert abs(hist.final_values["a"] - 0.7) < 1e-2


def test_api_fit_wav_rate_is_compile_rate(files, tmp_path):
    src = ('import("stdfaust.lib");\na = hslider("a [diff:1]", 0.3, -0.99, 0.99, 0.001);\n'
           'process = *(ma.SR / 48000) : + ~ *(a);\n')
    res = diffaust.fit(src, target=str(files / "t48.wav"), input=str(files / "in48.wav"), iterations=300)
    assert res.loss < 1e-8


@pytest.mark.parametrize("kw,words", [
    (dict(target="t48.wav", input="in48.wav", sample_rate=44100), ["sample_rate=44100", "48000 Hz"]),
    (dict(target="t48.wav", input="in44.wav"), ["44100 Hz", "48000 Hz"]),
    (dict(target="nan.wav", input="in48.wav"), ["NaN", "nan.wav", "sample 17"]),
    (dict(target="t2.npy", input="in48.wav"), ["2 channel(s)"]),
    (dict(target="t48.wav", input="in48.wav", n=5000), ["n=5000", f"({N})"]),
])
def test_api_fit_file_errors(files, kw, words):
    from diffaust.errors import UsageError

    kw = {k: (str(files / v) if k in ("target", "input") else v) for k, v in kw.items()}
    with pytest.raises(UsageError) as e:
        diffaust.fit(str(ONE_POLE / "diff.dsp"), **kw)
    assert all(w in str(e.value) for w in words), str(e.value)
