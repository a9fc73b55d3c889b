"""diffaust train --mode block|stream as a user runs it: files in, files out, bad input.

Covers issue 10: stream mode, batches (--pair), multi-start, per-parameter learning
rates, --json/--save/--csv/--plot (atomic, complete or absent), the learned program
(compiles with diffaust and, when installed, with the real faust), divergence, and
one-line errors that leave no partial output behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

import diffaust
from diffaust.audio import write_npy, write_wav
from diffaust.cli import main
from diffaust.errors import UsageError
from diffaust.train.learned import learned_source

LEARN = 'g = hslider("g [diff:1]", 0.5, 0, 2, 0.01);\na = hslider("a [diff:1]", 0.2, -0.95, 0.95, 0.001);\n' \
        'process = *(g) : + ~ *(a);\n'
GT = 'process = *(1.3) : + ~ *(0.6);\n'
HIDDEN = {"g": 1.3, "a": 0.6}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, out, err, needle):
    assert code != 0
    assert "Traceback" not in err + out
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]


@pytest.fixture
def files(tmp_path):
    """learn.dsp, gt.dsp, two noise inputs (WAV, 48 kHz) and their targets (WAV)."""
    (tmp_path / "learn.dsp").write_text(LEARN)
    (tmp_path / "gt.dsp").write_text(GT)
    gt = diffaust.compile(GT, double=True, sample_rate=48000)
    for k in (1, 2):
        x = np.random.default_rng(k).uniform(-0.5, 0.5, (1, 3000))
        write_wav(str(tmp_path / f"in{k}.wav"), x, 48000)
        x32 = diffaust.audio.read_wav(str(tmp_path / f"in{k}.wav"))[0]  # what the fit will read
        write_wav(str(tmp_path / f"t{k}.wav"), gt.render(x32), 48000)
    return tmp_path


def test_block_mode_wav_files_json_and_learned_program(capsys, files):
    d = files
    code, out, err = run(capsys, "train", "--input", d / "in1.wav", "--gt", d / "t1.wav", "--diff", d / "learn.dsp",
                         "--mode", "block", "-lf", "l2", "--optimizer", "adam", "--iterations", "2000",
                         "--json", d / "r.json", "--save", d / "learned.dsp", "--csv", d / "h.csv",
                         "--plot", d / "fit.png", "-q")
    assert code == 0, err
    assert "Sample rate: 48000 Hz" in out
    res = json.loads((d / "r.json").read_text())
    assert set(res) >= {"params", "loss", "iterations", "time", "stop_reason"}
    for k, v in HIDDEN.items():
        assert abs(res["params"][k] - v) / v < 1e-3, res
    # the learned program: the learned values are its defaults
    text = (d / "learned.dsp").read_text()
    learned = diffaust.compile(str(d / "learned.dsp"))
    for p in learned.params:
        assert p.init == pytest.approx(res["params"][p.label], rel=1e-12)
    assert text.replace(repr(res["params"]["g"]), "G").count("G") == 1
    rows = (d / "h.csv").read_text().splitlines()
    assert rows[0] == "iteration,loss,a,g" and len(rows) == res["iterations"] + 1
    assert (d / "fit.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(os.listdir(d)) == sorted(["learn.dsp", "gt.dsp", "in1.wav", "in2.wav", "t1.wav", "t2.wav",
                                            "r.json", "learned.dsp", "h.csv", "fit.png"])  # no temporaries


@pytest.mark.reference
@pytest.mark.skipif(shutil.which("faust") is None, reason="needs the faust compiler")
def test_learned_program_compiles_with_faust(capsys, files):
    d = files
    code, out, err = run(capsys, "train", "--input", "noise", "--gt", d / "gt.dsp", "--diff", d / "learn.dsp",
                         "--mode", "block", "--iterations", "300", "--save", d / "learned.dsp", "-q")
    assert code == 0, err
    r = subprocess.run(["faust", str(d / "learned.dsp"), "-o", os.devnull], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_stream_mode_recovers_and_counts_windows(capsys, files):
    d = files
    code, out, err = run(capsys, "train", "--input", "noise", "--gt", d / "gt.dsp", "--diff", d / "learn.dsp",
                         "--mode", "stream", "--window", "512", "--hop", "256", "--samples", "4096",
                         "--iterations", "1500", "--json", d / "r.json", "-q")
    assert code == 0, err
    assert "windows of 512 samples, hop 256, over 4096 samples" in out
    res = json.loads((d / "r.json").read_text())
    assert res["mode"] == "stream" and res["window"] == 512 and res["hop"] == 256
    for k, v in HIDDEN.items():
        assert abs(res["params"][k] - v) / v < 1e-3, res


def test_pairs_are_one_batch(capsys, files):
    d = files
    code, out, err = run(capsys, "train", "--pair", f"{d}/in1.wav:{d}/t1.wav", "--pair", f"{d}/in2.wav:{d}/t2.wav",
                         "--diff", d / "learn.dsp", "--mode", "block", "--iterations", "1000",
                         "--json", d / "r.json", "-q")
    assert code == 0, err
    assert "Pairs: 2 (loss averaged over them)" in out
    res = json.loads((d / "r.json").read_text())
    for k, v in HIDDEN.items():
        assert abs(res["params"][k] - v) / v < 1e-3, res


def test_starts_and_per_parameter_rates(capsys, files):
    d = files
    code, out, err = run(capsys, "train", "--input", "noise", "--gt", d / "gt.dsp", "--diff", d / "learn.dsp",
                         "--mode", "block", "--samples", "1024", "--iterations", "40", "--starts", "3",
                         "--lr-param", "a=0", "--csv", d / "h.csv", "--json", d / "r.json", "-q")
    assert code == 0, err
    assert "Starts: 3" in out and "Learning rates per parameter: a=0" in out
    rows = [r.split(",") for r in (d / "h.csv").read_text().splitlines()]
    assert rows[0] == ["start", "iteration", "loss", "a", "g"]
    assert {r[0] for r in rows[1:]} == {"1", "2", "3"}
    for start in ("1", "2", "3"):  # lr 0: 'a' never moves from where each start put it
        assert len({r[3] for r in rows[1:] if r[0] == start}) == 1
    res = json.loads((d / "r.json").read_text())
    assert len(res["starts"]) == 3 and res["start"] in (0, 1, 2)


def test_divergence_names_the_iteration_and_keeps_good_values(capsys, files):
    d = files
    unstable = d / "unstable.dsp"  # sqrt(k - 0.5): NaN once plain sgd jumps below k = 0.5
    unstable.write_text('k = hslider("k [diff:1]", 1, 0, 1, 0.01);\nprocess = *(sqrt(k - 0.5));\n')
    tgt = d / "t.npy"
    write_npy(str(tgt), np.zeros((1, 256)))
    code, out, err = run(capsys, "train", "--input", "ones", "--gt", tgt, "--diff", unstable, "--mode", "block",
                         "--optimizer", "sgd", "-lr", "1e6", "--iterations", "50", "--json", d / "r.json", "-q")
    assert code == 1
    assert "Diverged at iteration" in out and "kept the best values" in out
    res = json.loads((d / "r.json").read_text())
    assert res["stop_reason"] == "diverged" and isinstance(res["diverged_at"], int)
    assert all(math.isfinite(v) for v in res["params"].values())


BAD = [
    (("--gt", "{d}/missing.wav"), "no such file"),
    (("--gt", "{d}/nan.npy"), "NaN at channel 0, sample 5"),
    (("--gt", "{d}/t1.wav", "-lf", "l2+spectral"), "unknown loss 'spectral'"),
    (("--gt", "{d}/t1.wav", "--optimizer", "lbfgs"), "invalid choice"),
    (("--gt", "{d}/t1.wav", "--lr-param", "fixed=0.1"), "not a [diff:1] parameter"),
    (("--gt", "{d}/stereo.npy"), "has 2 channel(s)"),
    (("--gt", "{d}/t1.wav", "--samples", "5000"), "more samples than the target"),
    (("--gt", "{d}/t44.wav"), "resample"),
    (("--gt", "{d}/t1.wav", "--sr", "44100"), "resample"),
    (("--gt", "{d}/short.npy"), "holds 3000 samples, but 4000 are asked for"),
]


@pytest.mark.parametrize("extra, needle", BAD, ids=[n for _a, n in BAD])
def test_bad_input_is_one_line_and_writes_nothing(capsys, files, extra, needle):
    d = files
    (d / "learnf.dsp").write_text(LEARN.replace("process", 'f = hslider("fixed", 1, 0, 2, 0.1);\nprocess')
                                  .replace("*(g) :", "*(g*f) :"))
    bad = np.zeros((1, 3000))
    bad[0, 5] = np.nan
    write_npy(str(d / "nan.npy"), bad)
    write_npy(str(d / "stereo.npy"), np.zeros((2, 3000)))
    write_npy(str(d / "short.npy"), np.zeros((1, 4000)))
    write_wav(str(d / "t44.wav"), np.zeros((1, 3000)), 44100)
    argv = [a.format(d=d) for a in extra]
    before = set(os.listdir(d))
    code, out, err = run(capsys, "train", "--input", d / "in1.wav", "--diff", d / "learnf.dsp", "--mode", "block",
                         *argv, "--json", d / "r.json", "--csv", d / "h.csv", "--save", d / "l.dsp", "-q")
    one_line_error(code, out, err, needle)
    assert set(os.listdir(d)) == before


def test_learned_source_rewrites_only_literal_defaults():
    src = ('// fc\nprocess = f(hslider("h:f/fc [diff:1][unit:Hz]", 1000, 50, 1e4, 1), '
           'nentry("Q[diff:1]", .5 ,0.1,10,0.1), hslider("fc2", 3, 0, 9, 1));\n')
    out = learned_source(src, {"fc": 2345.5, "Q": 3.0})
    assert 'hslider("h:f/fc [diff:1][unit:Hz]", 2345.5, 50, 1e4, 1)' in out
    assert 'nentry("Q[diff:1]", 3.0 ,0.1,10,0.1)' in out and 'hslider("fc2", 3, 0, 9, 1)' in out
    with pytest.raises(UsageError, match=r"prog.dsp:1:32: the default of slider 'a' is 'x\*2'"):
        learned_source('process = hslider("a[diff:1]", x*2, 0, 1, 0.1);', {"a": 0.5}, "prog.dsp")
    with pytest.raises(UsageError, match="no slider labelled 'b'"):
        learned_source('process = hslider("a", 1, 0, 1, 0.1);', {"b": 0.5})


def test_render_and_verify_refuse_to_pad_a_short_input_file(capsys, files):
    d = files  # in1.wav holds 3000 samples at 48 kHz
    code, out, err = run(capsys, "render", d / "learn.dsp", "--input", d / "in1.wav", "-n", "4000")
    one_line_error(code, out, err, "holds 3000 samples, but 4000 are asked for")
    code, out, err = run(capsys, "verify", "--diff", d / "learn.dsp", "--input", d / "in1.wav", "-n", "4000")
    one_line_error(code, out, err, "holds 3000 samples, but 4000 are asked for")
    code, out, err = run(capsys, "verify", "--diff", d / "learn.dsp", "--input", d / "in1.wav", "-q")
    assert code == 0, err
    assert "Samples: 3000 at 48000 Hz" in out


def test_a_recorded_target_needs_its_input(capsys, files):
    d = files
    code, out, err = run(capsys, "train", "--gt", d / "t1.wav", "--diff", d / "learn.dsp", "--mode", "block",
                         "--json", d / "r.json")
    one_line_error(code, out, err, "give the input that produced the target")
    assert not (d / "r.json").exists()
