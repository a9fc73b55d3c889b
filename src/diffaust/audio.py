"""Audio signals in and out: sound files (soundfile/libsndfile), .npy arrays and the built-in test inputs.

Arrays are NumPy ``(channels, samples)``.  Everything here raises
:class:`diffaust.errors.UsageError` for a problem the user can fix (missing
file, unsupported WAV encoding, wrong shape), never a bare ``OSError``.

Built-in inputs (``make_input``):

``impulse``  1.0 at sample 0 on every channel, 0 elsewhere
``noise``    deterministic white noise in [-1, 1), exact in float32: per channel c,
             ``seed = fmix32(c + 1)`` (murmur3's 32-bit finalizer), then
             ``state = (1664525*state + 1013904223) mod 2**32`` advanced before each
             sample and ``x = (state >> 8) / 2**23 - 1``.  The same numbers as the
             ``faust-ref`` oracle's ``--input noise``, so results can be compared.
``zeros``    all 0
``ones``     all 1 (a DC step)
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .errors import UsageError

BUILTIN_INPUTS = ("impulse", "noise", "zeros", "ones")



# ----------------------------------------------------------------- test inputs
def _fmix32(h: int) -> int:
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def lcg_noise(channel: int, n: int) -> np.ndarray:
    """``n`` samples of the deterministic noise of channel ``channel`` (float64, exact in float32)."""
    out = np.empty(max(n, 0), dtype=np.float64)
    if n <= 0:
        return out
    # Jump-ahead in blocks: state_{k+1} = a*state_k + c (mod 2^32).  Compute a
    # block of B states from B independent starting points with vector ops.
    mask = np.uint64(0xFFFFFFFF)
    a, c = 1664525, 1013904223
    block = 4096
    # Coefficients for state_{j} = A_j * s0 + C_j  (j = 1..block), mod 2^32.
    A = np.empty(block, dtype=np.uint64)
    C = np.empty(block, dtype=np.uint64)
    aj, cj = 1, 0
    for j in range(block):
        aj = (aj * a) & 0xFFFFFFFF
        cj = (cj * a + c) & 0xFFFFFFFF
        A[j] = aj
        C[j] = cj
    s0 = _fmix32(channel + 1)
    pos = 0
    with np.errstate(over="ignore"):
        while pos < n:
            m = min(block, n - pos)
            states = (A[:m] * np.uint64(s0) + C[:m]) & mask
            out[pos:pos + m] = (states >> np.uint64(8)).astype(np.float64) / 8388608.0 - 1.0
            s0 = int(states[m - 1])
            pos += m
    return out


def make_input(kind: str, channels: int, n: int) -> np.ndarray:
    """A built-in test signal (``impulse``, ``noise``, ``zeros``, ``ones``) of shape (channels, n)."""
    if kind == "impulse":
        x = np.zeros((channels, n))
        if n > 0:
            x[:, 0] = 1.0
        return x
    if kind == "zeros":
        return np.zeros((channels, n))
    if kind == "ones":
        return np.ones((channels, n))
    if kind == "noise":
        return np.array([lcg_noise(ch, n) for ch in range(channels)]).reshape(channels, n)
    raise UsageError(f"unknown input kind '{kind}' (expected one of {', '.join(BUILTIN_INPUTS)}, "
                     "or a .npy, .wav or .dsp file)")


# ----------------------------------------------------------------------- .npy
def read_npy(path: str) -> np.ndarray:
    """Load a float array of shape (channels, n) (a 1-D array is one channel)."""
    _check_file(path)
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any load failure is the user's file
        raise UsageError(f"cannot read {path}: {e}") from None
    if x.dtype.kind not in "fiub":
        raise UsageError(f"{path}: expected a numeric array, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise UsageError(f"{path}: expected shape (channels, N) or (N,), got {x.shape}")
    return x


def write_npy(path: str, data: np.ndarray) -> None:
    """Write ``data`` as a .npy file, atomically (temporary file, then rename)."""
    from .outfile import atomic_output

    with atomic_output(path, "wb") as f:
        np.save(f, data, allow_pickle=False)


# ----------------------------------------------------------------------- audio files
#: File name endings read as sound files (by libsndfile, through soundfile).
SOUND_FILE_SUFFIXES = (".wav", ".flac", ".aiff", ".aif", ".ogg")


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as e:  # OSError: the libsndfile library itself is missing
        raise UsageError(f"reading and writing sound files needs the soundfile package and libsndfile "
                         f"(pip install soundfile): {e}") from None
    return soundfile


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Read a sound file (WAV of any PCM/float encoding libsndfile reads, also FLAC, AIFF, OGG).

    Returns ``(data, sample_rate)`` with data float64 of shape (channels, frames),
    integer PCM scaled to [-1, 1) (libsndfile's scaling: 16-bit sample k -> k/32768).
    """
    _check_file(path)
    sf = _soundfile()
    try:
        data, sr = sf.read(path, dtype="float64", always_2d=True)
    except sf.LibsndfileError as e:
        raise UsageError(f"{path}: cannot read this sound file ({e.error_string})") from None
    except (RuntimeError, TypeError, ValueError) as e:
        raise UsageError(f"{path}: cannot read this sound file ({e})") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    if data.shape[1] == 0:
        raise UsageError(f"{path}: sound file with 0 channels")
    return np.ascontiguousarray(data.T), int(sr)


def sound_file_rate(path: str) -> int:
    """The sample rate of a sound file, from its header only."""
    _check_file(path)
    sf = _soundfile()
    try:
        return int(sf.info(path).samplerate)
    except sf.LibsndfileError as e:
        raise UsageError(f"{path}: cannot read this sound file ({e.error_string})") from None
    except (RuntimeError, TypeError, ValueError) as e:
        raise UsageError(f"{path}: cannot read this sound file ({e})") from None


def write_wav(path: str, data: np.ndarray, sample_rate: int, fmt: str = "float32") -> None:
    """Write (channels, frames) to a WAV file, as 32-bit float (default) or 16-bit PCM,
    atomically (temporary file, then rename).

    16-bit PCM clips to [-1, 1]; float keeps the values as they are.
    """
    data = np.atleast_2d(np.asarray(data, dtype=np.float64))
    ch, n = data.shape
    if ch == 0:
        raise UsageError(f"cannot write {path}: the program has no output channels")
    subtype = {"float32": "FLOAT", "pcm16": "PCM_16"}.get(fmt)
    if subtype is None:
        raise UsageError(f"unknown WAV format '{fmt}' (expected float32 or pcm16)")
    _check_wav_limits(path, ch, n, sample_rate, 2 if fmt == "pcm16" else 4)
    sf = _soundfile()
    frames = data.T
    if fmt == "pcm16":  # round to the nearest code, clip to [-1, 1]: k = round(32767·x)
        frames = np.clip(np.round(frames * 32767.0), -32768, 32767).astype(np.int16)
    from .outfile import atomic_output

    with atomic_output(path, "wb") as f:
        try:
            sf.write(f, frames, int(sample_rate), subtype=subtype, format="WAV")
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise UsageError(f"cannot write {path}: {e}") from None


def _check_wav_limits(path: str, ch: int, n: int, sample_rate, width: int) -> None:
    """UsageError when the WAV header cannot hold these numbers (its fields are 16 and
    32 bits: channels, sample rate, bytes per second, data size)."""
    what = None
    if ch > 0xFFFF:
        what = f"{ch} channels (at most 65535)"
    elif not 1 <= int(sample_rate) <= 0xFFFFFFFF:
        what = f"a sample rate of {int(sample_rate)} Hz (1 to 4294967295)"
    elif int(sample_rate) * ch * width > 0xFFFFFFFF:
        what = (f"{int(sample_rate)} Hz x {ch} channel(s) x {width} bytes per second "
                f"(the header holds at most 4294967295)")
    elif n * ch * width > 0xFFFFFFFF - 64:
        what = f"{n * ch * width} bytes of samples (at most 4 GiB)"
    if what:
        raise UsageError(f"cannot write {path}: a WAV file cannot hold {what}; write a .npy file instead")


# -------------------------------------------------------------------- helpers
def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, expected a file")


def fit_channels(x: np.ndarray, channels: int, source: str, n: Optional[int] = None) -> np.ndarray:
    """Check that ``x`` has ``channels`` rows (a single row is accepted for one channel only)
    and cut or zero-pad it to ``n`` samples when ``n`` is given."""
    if x.shape[0] != channels:
        raise UsageError(f"{source} has {x.shape[0]} channel(s) (shape {tuple(x.shape)}), "
                         f"but the program has {channels} input(s): need shape ({channels}, N)")
    if n is not None:
        if x.shape[1] >= n:
            x = x[:, :n]
        else:
            x = np.concatenate([x, np.zeros((channels, n - x.shape[1]))], axis=1)
    return x


def is_signal_file(spec) -> bool:
    """True for a path (str or PathLike) naming a sound file (.wav .flac .aiff .aif .ogg) or a .npy file."""
    return isinstance(spec, (str, os.PathLike)) and os.fspath(spec).lower().endswith(
        SOUND_FILE_SUFFIXES + (".npy",))


def check_finite(x: np.ndarray, path: str, what: str = "signal") -> None:
    """UsageError naming the first NaN/Inf of a signal read from ``path`` (channel, sample)."""
    bad = ~np.isfinite(x)
    if bad.any():
        where = np.argwhere(bad)
        ch, i = (int(v) for v in where[np.argmin(where[:, 1])])
        v = x[ch, i]
        kind = "NaN" if np.isnan(v) else ("+Inf" if v > 0 else "-Inf")
        raise UsageError(f"{what} {path}: {kind} at channel {ch}, sample {i}: the file must hold finite numbers")


def read_signal(path, what: str = "signal") -> tuple:
    """``(data, sample_rate)`` of a .wav or .npy file: data float64 (channels, samples) (a 1-D
    .npy is one channel), sample_rate the WAV's rate or None for .npy; UsageError for an
    empty file or a NaN/Inf (naming the file and the first bad position)."""
    path = os.fspath(path)
    if path.lower().endswith(SOUND_FILE_SUFFIXES):
        x, sr = read_wav(path)
    elif path.lower().endswith(".npy"):
        x, sr = read_npy(path), None
    else:
        raise UsageError(f"{what} {path}: expected a sound file (.wav .flac .aiff .ogg) or a .npy file")
    if x.shape[1] == 0:
        raise UsageError(f"{what} {path} holds no samples")
    check_finite(x, path, what)
    return x, sr


# ------------------------------------------------------------- input specs
def compile_program(path: str, **kw):
    """``diffaust.compile`` on a file, with a clear error when the file is missing."""
    _check_file(path)
    from . import runtime  # late import: audio I/O does not need the compiler

    return runtime.compile(path, **kw)


def input_signal(spec: str, channels: int, n: int, *, sample_rate: int = 44100,
                 double: bool = False, import_dirs=()) -> np.ndarray:
    """The input signal named by ``spec``, shape (channels, n), float64.

    ``spec`` is a built-in kind (impulse, noise, zeros, ones), a ``.npy`` or ``.wav``
    file (cut or zero-padded to ``n`` samples), or a ``.dsp`` program, compiled and
    rendered for ``n`` samples (its own inputs get zeros) and fed in.  A program
    without inputs gets a (0, n) array whatever ``spec`` says.
    """
    if channels == 0:
        return np.zeros((0, n))
    if spec in BUILTIN_INPUTS:
        return make_input(spec, channels, n)
    low = spec.lower()
    if low.endswith(".npy"):
        return fit_channels(read_npy(spec), channels, spec, n)
    if low.endswith(SOUND_FILE_SUFFIXES):
        x, _sr = read_wav(spec)
        return fit_channels(x, channels, spec, n)
    if low.endswith(".dsp"):
        src = compile_program(spec, double=double, sample_rate=sample_rate, import_dirs=tuple(import_dirs))
        xin = np.zeros((src.inputs, n))
        y = np.asarray(src.render(xin if src.inputs else None, n=n), dtype=np.float64)
        return fit_channels(y, channels, f"input program {spec} (outputs)", n)
    if not os.path.exists(spec):
        raise UsageError(f"unknown input '{spec}': expected impulse, noise, zeros, ones, "
                         "or an existing .npy, .wav or .dsp file")
    raise UsageError(f"{spec}: unsupported input file type (expected .npy, .wav or .dsp)")
