"""WAV and .npy I/O and the built-in input signals."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

from diffaust.audio import (fit_channels, input_signal, lcg_noise, make_input, read_npy, read_wav,
                            write_wav)
from diffaust.errors import UsageError


# ------------------------------------------------------------------ signals
def test_builtin_inputs():
    x = make_input("impulse", 2, 5)
    assert x.shape == (2, 5) and x[:, 0].tolist() == [1, 1] and not x[:, 1:].any()
    assert not make_input("zeros", 1, 4).any()
    assert (make_input("ones", 3, 4) == 1).all()
    with pytest.raises(UsageError, match="unknown input kind"):
        make_input("pink", 1, 4)


def _reference_noise(channel, n):
    """The documented LCG, one sample at a time (faust-ref's definition)."""
    h = channel + 1
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    out = []
    for _ in range(n):
        h = (1664525 * h + 1013904223) & 0xFFFFFFFF
        out.append((h >> 8) / 8388608.0 - 1.0)
    return out


@pytest.mark.parametrize("channel", [0, 1, 5])
def test_noise_is_the_documented_lcg(channel):
    n = 5000  # crosses the vectorised block boundary (4096)
    assert lcg_noise(channel, n).tolist() == _reference_noise(channel, n)


def test_noise_properties():
    x = make_input("noise", 2, 10000)
    assert x.min() >= -1 and x.max() < 1
    assert abs(x.mean()) < 0.05
    assert not np.array_equal(x[0], x[1])  # channels are decorrelated
    assert np.array_equal(x.astype(np.float32).astype(np.float64), x)  # exact in float32
    assert lcg_noise(0, 0).shape == (0,)


# --------------------------------------------------------------------- npy
def test_npy_shapes(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.arange(6.0))
    assert read_npy(str(p)).shape == (1, 6)
    np.save(p, np.zeros((2, 3, 4)))
    with pytest.raises(UsageError, match="expected shape"):
        read_npy(str(p))
    with pytest.raises(UsageError, match="no such file"):
        read_npy(str(tmp_path / "missing.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(UsageError, match="cannot read"):
        read_npy(str(tmp_path / "junk.npy"))


def test_fit_channels():
    x = np.ones((1, 4))
    assert fit_channels(x, 1, "x", 6).tolist() == [[1, 1, 1, 1, 0, 0]]
    assert fit_channels(x, 1, "x", 2).shape == (1, 2)
    with pytest.raises(UsageError, match="need shape \\(2, N\\)"):
        fit_channels(x, 2, "x.npy")


def test_input_signal_files(tmp_path):
    p = tmp_path / "in.npy"
    np.save(p, np.array([[0.5, 0.25, 0.125]]))
    assert input_signal(str(p), 1, 5).tolist() == [[0.5, 0.25, 0.125, 0, 0]]
    assert input_signal("noise", 0, 5).shape == (0, 5)
    with pytest.raises(UsageError, match="unknown input"):
        input_signal(str(tmp_path / "nope.npy.txt"), 1, 5)
    with pytest.raises(UsageError, match="no such file"):
        input_signal(str(tmp_path / "nope.wav"), 1, 5)


# --------------------------------------------------------------------- wav
def test_wav_float32_round_trip(tmp_path):
    p = str(tmp_path / "f.wav")
    x = np.array([[0.0, 0.5, -0.25, 1.5], [0.1, -0.1, 0.2, -2.0]])
    write_wav(p, x, 48000)
    y, sr = read_wav(p)
    assert sr == 48000
    np.testing.assert_array_equal(y, x.astype(np.float32).astype(np.float64))  # no clipping in float


def test_wav_pcm16_round_trip_and_clipping(tmp_path):
    p = str(tmp_path / "p.wav")
    x = np.array([[0.0, 0.5, -0.5, 2.0, -2.0]])
    write_wav(p, x, 44100, "pcm16")
    with wave.open(p) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 44100)
    y, sr = read_wav(p)
    np.testing.assert_allclose(y, [[0.0, 0.5, -0.5, 1.0, -1.0]], atol=1 / 32767)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_read_pcm_widths(tmp_path, width):
    p = str(tmp_path / f"w{width}.wav")
    full = {1: 128, 2: 1 << 15, 3: 1 << 23, 4: 1 << 31}[width]
    vals = [0, full // 2, -(full // 2)]
    if width == 1:
        raw = bytes(v + 128 for v in vals)
    else:
        raw = b"".join(v.to_bytes(width, "little", signed=True) for v in vals)
    with wave.open(p, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(8000)
        w.writeframes(raw)
    y, sr = read_wav(p)
    assert sr == 8000
    np.testing.assert_allclose(y, [[0.0, 0.5, -0.5]])


def test_read_float64_wav(tmp_path):
    p = tmp_path / "d.wav"
    data = np.array([0.25, -0.75], dtype="<f8").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 22050, 22050 * 8, 8, 64)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    y, sr = read_wav(str(p))
    assert sr == 22050 and y.tolist() == [[0.25, -0.75]]


def test_bad_wav(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"hello world, not a wav file")
    with pytest.raises(UsageError, match="cannot read this sound file"):
        read_wav(str(p))
    with pytest.raises(UsageError, match="no such file"):
        read_wav(str(tmp_path / "missing.wav"))
    with pytest.raises(UsageError, match="unknown WAV format"):
        write_wav(str(tmp_path / "o.wav"), np.zeros((1, 3)), 44100, "pcm24")
