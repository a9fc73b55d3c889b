"""soundfile: sound files read at compile time, as Faust's SoundUI provides them.

`soundfile("label[url:{'a.wav';'b.wav'}]", n)` has 2 inputs (part, read index)
and 2 + n outputs: the part's length in frames, its sample rate, then n channels.
Faust's run-time model (faust/gui/Soundfile.h), which diffaust follows:

* the files of the url list are the parts 0, 1, …; parts up to 255 past the
  list, and every file that cannot be found, are *empty*: 1024 frames of
  silence at 44100 Hz (a missing file gives a warning, as Faust's SoundUI does);
* all parts are concatenated; output channel c reads file channel c mod C, C
  being the largest channel count of the files (a file with fewer channels reads
  zeros on the others);
* part p = int(part) clamped to 0..255; frame = int(max(0, min(index, length(p) - 1)))
  computed in real arithmetic; no resampling.

The channels are read-only tables (`rdtable` over a `waveform`), the lengths,
rates and offsets small tables indexed by the part (constants when the part is).
WAV files are read with diffaust.audio (PCM 8–32 bit, float 32/64).
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import DiffaustError, FaustEvalError
from . import build as B
from .nodes import const, mk

EMPTY_FRAMES = 1024
EMPTY_RATE = 44100
MAX_PARTS = 256


def url_files(label: str) -> list[str]:
    """The file names of a soundfile label's [url:{'a';'b'}] metadata (the label itself if none)."""
    m = re.search(r"\[\s*url\s*:\s*\{(.*?)\}\s*\]", label)
    if not m:
        name = re.sub(r"\[[^\]]*\]", "", label).strip()
        return [name] if name else []
    return [f.strip().strip("'\"") for f in m.group(1).split(";") if f.strip()]


def _candidates(name: str, base_dir: str) -> list:
    """Where a sound file is looked for, in order: as given (the working folder), then the
    program's folder."""
    return [os.path.abspath(name), os.path.abspath(os.path.join(base_dir, name))]


def _find(name: str, base_dir: str):
    for cand in _candidates(name, base_dir):
        if os.path.isfile(cand):
            return cand
    return None


def load_parts(label: str, ctx):
    """[(data (channels, frames) or None for an empty part, sample_rate)] per listed file."""
    from ..audio import read_wav

    parts = []
    for name in url_files(label):
        path = _find(name, ctx.base_dir)
        for cand in _candidates(name, ctx.base_dir):  # for the compile cache: found, or absent
            ctx.files.append(cand)
            if cand == path:
                break
        if path is None:
            ctx.warnings.append(f"soundfile '{name}' not found: using {EMPTY_FRAMES} frames of silence "
                                "(as Faust does)")
            parts.append((None, EMPTY_RATE))
            continue
        try:
            data, sr = read_wav(path)
        except DiffaustError as e:
            raise FaustEvalError(f"soundfile '{name}': {e.message}") from None
        parts.append((data, sr))
    return parts


def _table(values, index):
    """values[index] for an int index signal (a constant when the index is)."""
    vals = tuple(values)
    if index.op == "const":
        return const(vals[int(index.attr[1])])
    return mk("rdtable", len(vals), (mk("waveform", vals), index))


def soundfile_signals(box, inputs, ctx) -> tuple:
    part_in, index_in = inputs
    parts = load_parts(box.label, ctx)
    chans = max([1] + [d.shape[0] for d, _ in parts if d is not None])
    # concatenated buffers; every empty part reads one shared block of silence at the end
    lengths, rates, offsets, blocks = [], [], [], []
    pos = 0
    for data, sr in parts:
        if data is None:
            lengths.append(EMPTY_FRAMES)
            rates.append(EMPTY_RATE)
            offsets.append(-1)
            continue
        lengths.append(int(data.shape[1]))
        rates.append(int(sr))
        offsets.append(pos)
        blocks.append(data)
        pos += data.shape[1]
    silence_at = pos
    offsets = [silence_at if o < 0 else o for o in offsets]
    lengths += [EMPTY_FRAMES] * (MAX_PARTS - len(parts))
    rates += [EMPTY_RATE] * (MAX_PARTS - len(parts))
    offsets += [silence_at] * (MAX_PARTS - len(parts))
    total = silence_at + EMPTY_FRAMES
    buf = np.zeros((chans, total))
    at = 0
    for data in blocks:
        k = data.shape[1]
        buf[: data.shape[0], at:at + k] = data
        at += k
    # part = int(part) clamped to 0..255
    part = B.prim("int", part_in)
    part = B.prim("max", const(0), B.prim("min", part, const(MAX_PARTS - 1)))
    length = _table(lengths, part)
    rate = _table(rates, part)
    offset = _table(offsets, part)
    # frame = int(max(0, min(float(index), float(length - 1))))
    last = B.prim("float", B.sub(length, const(1)))
    frame = B.prim("int", B.prim("max", const(0.0), B.prim("min", B.prim("float", index_in), last)))
    at = B.add(offset, frame)
    outs = [length, rate]
    for c in range(box.chans):
        outs.append(mk("rdtable", total, (mk("waveform", tuple(float(v) for v in buf[c % chans])), at)))
    return tuple(outs)
