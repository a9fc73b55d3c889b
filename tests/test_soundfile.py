"""soundfile: WAV files read at compile time, checked against Faust's own SoundUI loader.

The reference binary loads the same files with Faust's architecture code
(faust/gui/SoundUI.h + libsndfile); a missing file is silence there and here,
with a warning here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import diffaust
from diffaust.audio import write_wav
from diffaust.errors import DiffaustWarning

PROGRAM = """import("stdfaust.lib");
snd = soundfile("s [url:{'tone.wav';'mono.wav';'nothere.wav'}]", 3);
idx = ba.time % 4000;
part = (ba.time / 1500) : int % 4;
process = part, idx : snd;
"""


@pytest.fixture()
def sound_dir(tmp_path: Path) -> Path:
    t = np.arange(3000) / 44100
    write_wav(str(tmp_path / "tone.wav"), np.stack([0.5 * np.sin(2 * np.pi * 440 * t),
                                                    0.25 * np.cos(2 * np.pi * 220 * t)]), 44100)
    write_wav(str(tmp_path / "mono.wav"), (0.3 * np.sin(2 * np.pi * 100 * t[:2000]))[None, :], 22050,
              fmt="pcm16")
    (tmp_path / "prog.dsp").write_text(PROGRAM)
    return tmp_path


def _render(path: Path, double: bool) -> np.ndarray:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dsp = diffaust.compile(str(path), double=double, use_cache=False)
    assert any(issubclass(w.category, DiffaustWarning) and "nothere.wav" in str(w.message) for w in caught)
    return np.asarray(dsp.render(n=4096), dtype=np.float64)


def test_parts_lengths_rates_and_silence(sound_dir):
    y = _render(sound_dir / "prog.dsp", double=True)
    part = (np.arange(4096) // 1500) % 4
    assert list(y[0, [0, 1600, 3100]]) == [3000, 2000, 1024]   # lengths of parts 0, 1, 2 (missing: 1024)
    assert list(y[1, [0, 1600, 3100]]) == [44100, 22050, 44100]
    idx = np.arange(4096) % 4000
    t = np.arange(3000) / 44100
    sel = (part == 0) & (idx < 3000)
    assert np.allclose(y[2, sel], (0.5 * np.sin(2 * np.pi * 440 * t))[idx[sel]], atol=1e-7)
    assert np.allclose(y[3, sel], (0.25 * np.cos(2 * np.pi * 220 * t))[idx[sel]], atol=1e-7)
    assert np.allclose(y[4, sel], y[2, sel])        # channel 2 reads file channel 2 mod 2
    assert np.all(y[2:, part == 2] == 0)            # the missing file is silence


@pytest.mark.reference
@pytest.mark.parametrize("double", [True, False], ids=["double", "float"])
def test_matches_faust_soundui(faust_ref, sound_dir, double):
    if not Path("/usr/include/sndfile.h").exists() and shutil.which("pkg-config") is None:
        pytest.skip("libsndfile headers (libsndfile1-dev) are needed for Faust's SoundUI")
    try:
        ref = faust_ref.render_reference(sound_dir / "prog.dsp", n=4096, double=double)
    except faust_ref.FaustRefError as e:
        if "sndfile" in str(e):
            pytest.skip("libsndfile1-dev is not installed")
        raise
    got = _render(sound_dir / "prog.dsp", double)
    tol = 1e-9 if double else 1e-5
    assert np.all(np.abs(got - ref) <= tol * (1 + np.abs(ref)))


def test_cli_warns_about_a_missing_file(sound_dir):
    p = subprocess.run([sys.executable, "-m", "diffaust.cli", "render", str(sound_dir / "prog.dsp"), "-n", "8",
                        "-o", str(sound_dir / "out.npy")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "diffaust: warning: soundfile 'nothere.wav' not found" in p.stderr
    assert "Traceback" not in p.stderr
