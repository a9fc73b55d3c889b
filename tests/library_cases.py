"""Issue 8, point 3: the derivatives of the standard library's functions over long signals.

Each `Case` is a small program, ``import("stdfaust.lib");``, one to three ``[diff:1]``
sliders feeding one library function of Faust 2.54.9's libraries (``fi de os en co re ve
si ba an ef pf sy pm``), with the checker's deterministic noise on its inputs where it takes
some.  `run_case` compares diffaust's forward-mode derivatives with central finite
differences of the real Faust compiler's double-precision output (tests/derivcheck.py)
over `N` samples; one row per (function, parameter).

A row's status:

* ``pass``: max |ad - fd| <= TOL * peak(fd) over at least `min_compared` of the samples;
* ``FAIL``: anything else, for a row expected to pass;
* ``nondiff``: Faust's output is piecewise constant in the parameter (a truncated table
  index, a comparison, a delay ``x@d`` by a real amount ``d``, which Faust truncates): its
  derivative is 0 wherever it exists, the finite difference is 0 or a jump; the row checks
  that diffaust's derivative is 0 on the smooth samples;
* ``convention``: a row expected to disagree with the finite differences by a documented
  convention: Faust's output is piecewise constant in the parameter (finite difference 0
  where compared) and diffaust's derivative is not 0 by design (the table oscillators'
  frequency: a table read at a truncated real index gets the table's slope, docs/DERIVATIVES.md;
  tests/test_table_slope.py checks it against a 0.1 Hz central difference of Faust's output).

Run as a script it renders the table to docs/LIBRARY-DERIVATIVES.md::

    python tests/library_cases.py                                     # every case, 48,000 samples
    python tests/library_cases.py -k resonlp -n 10000 --no-write      # a few, printed only
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from dataclasses import dataclass, field

N = 48000
TOL = 1e-5          # of the peak of Faust's central finite difference
JUMP_ATOL = 1e-6    # derivcheck's jump test: absolute floor, times the peak (TOL / 10)

HEADER = 'import("stdfaust.lib");\n'
# a gate for the envelopes: on for 8000 samples of every 20000 (0.18 s of 0.45 s)
GATE = "gate = (ba.time % 20000) < 8000;\n"
# an excitation for the physical models: one impulse every 11025 samples
IMP = "exc = (ba.time % 11025) == 0;\n"


def S(label, init, lo, hi, step=0.0001):
    """A [diff:1] slider."""
    return f'hslider("{label}[diff:1]", {init}, {lo}, {hi}, {step})'


@dataclass(frozen=True)
class Case:
    func: str                       # the library function, as users write it
    body: str                       # the program after the import line
    rel_step: float = 1e-6          # finite-difference step, relative to max(1, |p|)
    steps: dict = field(default_factory=dict)    # label -> its own rel_step
    mask: str = "prefix"            # derivcheck: "prefix", "pointwise" or "kinks"
    kink_tol: float = 3e-6          # derivcheck, mask="kinks": largest corner-induced error kept
    expect: dict = field(default_factory=dict)   # label -> ("nondiff" | "convention", why)
    note: str = ""                  # why the step or the mask, what the row shows
    fast: bool = False              # in the default (fast) test subset
    min_compared: float | None = None  # fraction of the samples that must be compared
    #                                    (default: all for "prefix", 90% for "pointwise"/"kinks")

    @property
    def source(self):
        return HEADER + self.body

    @property
    def labels(self):
        return re.findall(r'hslider\("([^"\[]+)\[diff:1\]"', self.body)

    @property
    def min_fraction(self):
        if self.min_compared is not None:
            return self.min_compared
        return 1.0 if self.mask == "prefix" else 0.9

    def step(self, label):
        return self.steps.get(label, self.rel_step)


def case(func, body, **kw):
    return Case(func, body.strip() + "\n", **kw)


_PHASE_NOTE = ("d/dfreq grows like t: a small step keeps the O(h^2) error of the difference "
               "below 1e-6 at t = 1.1 s; freq off 440 Hz (440 n/SR hits an exact wrap at n = 46,305, "
               "a corner exactly at p); samples where a wrap or a corner falls within the step are "
               "not compared (kinks)")
_BLEP_NOTE = ("; the correction's curvature (~1/Q^2) on the 2 samples of each period next to a "
              "transition needs a step of 3e-10 to have them compared")
_CONV = ("nondiff", "x@d with a real-valued d: Faust truncates d, its output is piecewise constant in d; "
         "diffaust's derivative is 0 too, with a warning pointing to de.fdelay (docs/DERIVATIVES.md)")
_TIME_NOTE = "times in seconds (~1e-2): a step of 1e-8 s (h = rel_step * max(1, |p|))"
_ENV = dict(rel_step=1e-6, steps={t: 1e-8 for t in ("at", "dt", "rt", "att", "dec", "rel")}, mask="kinks",
            note="times chosen off the sample grid (t*SR not an integer, else a corner falls exactly "
                 "on p); the corners where segments meet are not compared (kinks)")
_SWITCH = dict(rel_step=1e-7, steps={"att": 1e-9, "rel": 1e-7}, mask="kinks",
               note="the attack/release branch (x > y) and max(level - thresh, 0) switch inside the "
                    "recursion: the output has corners in p; samples within a step of one not compared (kinks)")
_ADAA_NOTE = ("antiderivative antialiasing: (F(x) - F(x'))/(x - x') loses ~1e-11 to cancellation when "
              "x ~ x', which the difference divides by 2h: ~1e-6 of the peak at this step")
_TABLE = ("convention", "the table index is truncated (int): Faust's output is piecewise constant "
          "in freq (finite difference 0 where compared); diffaust's derivative is the table's slope "
          "times d(index)/dfreq by convention (docs/DERIVATIVES.md), checked against a 0.1 Hz "
          "difference in tests/test_table_slope.py")

CASES = [
    # ------------------------------------------------------------------ filters (fi.)
    case("fi.lowpass(1)", f"fc = {S('fc', 1000, 20, 20000)};\nprocess = fi.lowpass(1, fc);"),
    case("fi.lowpass(3)", f"fc = {S('fc', 1000, 20, 20000)};\nprocess = fi.lowpass(3, fc);"),
    case("fi.lowpass(6)", f"fc = {S('fc', 2500, 20, 20000)};\nprocess = fi.lowpass(6, fc);"),
    case("fi.highpass(2)", f"fc = {S('fc', 300, 20, 20000)};\nprocess = fi.highpass(2, fc);"),
    case("fi.highpass(5)", f"fc = {S('fc', 800, 20, 20000)};\nprocess = fi.highpass(5, fc);"),
    case("fi.resonlp", f"fc = {S('fc', 1000, 50, 10000)};\nq = {S('q', 4, 0.5, 20)};\n"
         f"g = {S('gain', 0.8, 0, 1)};\nprocess = fi.resonlp(fc, q, g);", fast=True),
    case("fi.resonhp", f"fc = {S('fc', 700, 50, 10000)};\nq = {S('q', 3, 0.5, 20)};\n"
         "process = fi.resonhp(fc, q, 1);"),
    case("fi.resonbp", f"fc = {S('fc', 2000, 50, 10000)};\nq = {S('q', 8, 0.5, 20)};\n"
         "process = fi.resonbp(fc, q, 1);"),
    case("fi.svf.lp", f"f = {S('f', 1200, 20, 20000)};\nq = {S('q', 2, 0.3, 20)};\nprocess = fi.svf.lp(f, q);"),
    case("fi.svf.bp", f"f = {S('f', 900, 20, 20000)};\nq = {S('q', 5, 0.3, 20)};\nprocess = fi.svf.bp(f, q);"),
    case("fi.svf.hp", f"f = {S('f', 400, 20, 20000)};\nq = {S('q', 0.8, 0.3, 20)};\nprocess = fi.svf.hp(f, q);"),
    case("fi.svf.notch", f"f = {S('f', 3000, 20, 20000)};\nq = {S('q', 1.5, 0.3, 20)};\nprocess = fi.svf.notch(f, q);"),
    case("fi.svf.bell", f"f = {S('f', 1500, 20, 20000)};\nq = {S('q', 1.2, 0.3, 20)};\n"
         f"g = {S('g', 6, -24, 24)};\nprocess = fi.svf.bell(f, q, g);"),
    case("fi.svf.ls", f"f = {S('f', 250, 20, 20000)};\ng = {S('g', -9, -24, 24)};\nprocess = fi.svf.ls(f, 0.707, g);"),
    case("fi.svf.hs", f"f = {S('f', 5000, 20, 20000)};\ng = {S('g', 4, -24, 24)};\nprocess = fi.svf.hs(f, 0.707, g);"),
    case("fi.peak_eq", f"lv = {S('level', 6, -24, 24)};\nf = {S('freq', 1000, 20, 20000)};\n"
         f"b = {S('bw', 300, 10, 5000)};\nprocess = fi.peak_eq(lv, f, b);"),
    case("fi.peak_eq_cq", f"lv = {S('level', -8, -24, 24)};\nf = {S('freq', 2500, 20, 20000)};\n"
         f"q = {S('q', 2, 0.1, 30)};\nprocess = fi.peak_eq_cq(lv, f, q);"),
    case("fi.low_shelf", f"lv = {S('level', 6, -24, 24)};\nf = {S('freq', 200, 20, 20000)};\n"
         "process = fi.low_shelf(lv, f);"),
    case("fi.high_shelf", f"lv = {S('level', -6, -24, 24)};\nf = {S('freq', 6000, 20, 20000)};\n"
         "process = fi.high_shelf(lv, f);"),
    case("fi.tf2", f"b1 = {S('b1', 0.5, -2, 2)};\na1 = {S('a1', -1.6, -1.99, 1.99)};\n"
         f"a2 = {S('a2', 0.8, -0.99, 0.99)};\nprocess = fi.tf2(1, b1, 0.3, a1, a2);"),
    case("fi.tf2s", f"a1 = {S('damping', 0.5, 0.01, 2)};\nw1 = {S('w1', 3000, 100, 20000)};\n"
         "process = fi.tf2s(0, 0, 1, a1, 1, w1);"),
    case("fi.zero", f"z = {S('z', 0.7, -1, 1)};\nprocess = fi.zero(z);"),
    case("fi.pole", f"p = {S('p', 0.99, -0.999, 0.999)};\nprocess = fi.pole(p);"),
    case("fi.dcblockerat", f"fb = {S('fb', 30, 1, 500)};\nprocess = fi.dcblockerat(fb);"),
    case("fi.allpass_comb", f"a = {S('a', 0.6, -0.99, 0.99)};\nprocess = fi.allpass_comb(1024, 331, a);"),
    case("fi.allpass_comb(N)", f"n = {S('N', 331.4, 2, 1000)};\nprocess = fi.allpass_comb(1024, n, 0.6);",
         expect={"N": _CONV}),
    case("fi.fb_comb", f"b0 = {S('b0', 0.9, 0, 1)};\na = {S('aN', -0.7, -0.99, 0.99)};\n"
         "process = fi.fb_comb(1024, 200, b0, a);"),
    case("fi.fb_comb(N)", f"n = {S('N', 200.3, 2, 1000)};\nprocess = fi.fb_comb(1024, n, 1, -0.7);",
         expect={"N": _CONV}),
    case("fi.ff_comb", f"bm = {S('bM', 0.5, -1, 1)};\nprocess = fi.ff_comb(1024, 100, 1, bm);"),
    case("fi.fb_fcomb", f"n = {S('N', 200.3, 2, 1000)};\na = {S('aN', -0.7, -0.99, 0.99)};\n"
         "process = fi.fb_fcomb(1024, n, 1, a);"),
    case("fi.ff_fcomb", f"m = {S('M', 100.6, 1, 1000)};\nprocess = fi.ff_fcomb(1024, m, 1, 0.5);"),
    case("fi.allpass_fcomb", f"n = {S('N', 120.25, 2, 1000)};\na = {S('a', 0.5, -0.99, 0.99)};\n"
         "process = fi.allpass_fcomb(1024, n, a);"),
    case("fi.highshelf(5)", f"lv = {S('level', 4, -24, 24)};\nf = {S('freq', 3000, 20, 20000)};\n"
         "process = fi.highshelf(5, lv, f);"),
    case("fi.tf1s", f"w = {S('w1', 2000, 10, 20000)};\nprocess = fi.tf1s(0, 1, 1, w);"),
    case("fi.allpassnn", f"a = {S('theta', 0.3, -1.5, 1.5)};\nprocess = fi.allpassnn(3, (a, 0.2, -0.4));"),
    case("fi.dcblocker", f"g = {S('dc', 0.6, 0, 1)};\nprocess = +(g) : fi.dcblocker;"),
    case("fi.avg_tau", f"t = {S('tau', 0.01, 0.0001, 1)};\nprocess = fi.avg_tau(t);", rel_step=1e-8, note=_TIME_NOTE),
    case("fi.lowpass3e", f"fc = {S('fc', 2000, 20, 20000)};\nprocess = fi.lowpass3e(fc);"),
    case("fi.lowpass6e", f"fc = {S('fc', 3000, 20, 20000)};\nprocess = fi.lowpass6e(fc);"),
    case("fi.highpass3e", f"fc = {S('fc', 500, 20, 20000)};\nprocess = fi.highpass3e(fc);"),
    case("fi.lowpassLR4", f"fc = {S('fc', 800, 20, 20000)};\nprocess = fi.lowpassLR4(fc);"),
    case("fi.notchw", f"w = {S('width', 200, 10, 5000)};\nf = {S('freq', 1000, 20, 20000)};\n"
         "process = fi.notchw(w, f);"),
    case("fi.bandpass", f"fl = {S('fl', 500, 20, 20000)};\nfu = {S('fu', 2000, 20, 20000)};\n"
         "process = fi.bandpass(2, fl, fu);"),
    case("fi.spectral_tilt", f"a = {S('alpha', -0.5, -1, 1)};\nprocess = fi.spectral_tilt(5, 100, 8000, a);"),
    case("fi.lptau", f"t = {S('tau', 0.002, 0.0001, 1)};\nprocess = fi.lptau(t);"),
    # ------------------------------------------------------------------ delays (de.)
    case("de.fdelay", f"d = {S('d', 10.3, 0, 1000)};\nprocess = de.fdelay(1024, d);", fast=True),
    case("de.fdelay(long)", f"d = {S('d', 2205.7, 0, 4000)};\nprocess = de.fdelay(4096, d);"),
    case("de.fdelay1", f"d = {S('d', 20.4, 1, 1000)};\nprocess = de.fdelay1(1024, d);"),
    case("de.fdelay2", f"d = {S('d', 20.4, 1, 1000)};\nprocess = de.fdelay2(1024, d);"),
    case("de.fdelay3", f"d = {S('d', 20.4, 2, 1000)};\nprocess = de.fdelay3(1024, d);"),
    case("de.fdelay4", f"d = {S('d', 20.4, 2, 1000)};\nprocess = de.fdelay4(1024, d);"),
    case("de.fdelay5", f"d = {S('d', 20.4, 3, 1000)};\nprocess = de.fdelay5(1024, d);"),
    case("de.fdelaylti(2)", f"d = {S('d', 20.4, 1, 1000)};\nprocess = de.fdelaylti(2, 1024, d);"),
    case("de.fdelaylti(4)", f"d = {S('d', 20.4, 2, 1000)};\nprocess = de.fdelaylti(4, 1024, d);"),
    case("de.fdelay1a", f"d = {S('d', 20.4, 1, 1000)};\nprocess = de.fdelay1a(1024, d);"),
    case("de.fdelay2a", f"d = {S('d', 20.4, 2, 1000)};\nprocess = de.fdelay2a(1024, d);"),
    case("de.fdelay4a", f"d = {S('d', 20.4, 4, 1000)};\nprocess = de.fdelay4a(1024, d);"),
    case("de.fdelay(modulated)", f"dp = {S('depth', 5, 0, 20)};\nprocess = de.fdelay(1024, 20 + dp*os.oscrs(3));",
         mask="kinks", rel_step=1e-7, note="a vibrato: the delay sweeps across whole samples, the corners of the "
         "linear interpolation within the step are not compared (kinks)"),
    case("de.sdelay", f"d = {S('d', 20.4, 1, 1000)};\nprocess = de.sdelay(1024, 512, d);",
         expect={"d": _CONV}),
    case("de.delay", f"d = {S('d', 20.4, 0, 1000)};\nprocess = de.delay(1024, d);", expect={"d": _CONV}),
    # ------------------------------------------------------------------ oscillators (os.)
    case("os.osc", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.osc(f);", rel_step=1e-7,
         mask="pointwise", expect={"freq": _TABLE}, min_compared=0.0),
    case("os.osccos", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.osccos(f);", rel_step=1e-7,
         mask="pointwise", expect={"freq": _TABLE}, min_compared=0.0),
    case("os.oscp", f"ph = {S('phase', 0.4, -3.14, 3.14)};\nprocess = os.oscp(440, ph);",
         note="the phase enters through cos/sin of the slider: smooth (freq goes through a table)"),
    case("os.osci", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.osci(f);", rel_step=1e-9,
         mask="kinks", note="linear interpolation of a 65,536-point table: corners every table step"),
    case("os.lf_sawpos", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.lf_sawpos(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE, fast=True),
    case("os.lf_saw", f"f = {S('freq', 221.3, 20, 8000)};\nprocess = os.lf_saw(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.lf_triangle", f"f = {S('freq', 331.9, 20, 8000)};\nprocess = os.lf_triangle(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.lf_sawpos_phase", f"ph = {S('phase', 0.3, 0, 1)};\nprocess = os.lf_sawpos_phase(441.73, ph);",
         mask="pointwise"),
    case("os.lf_squarewave", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.lf_squarewave(f);",
         rel_step=1e-7, mask="pointwise", min_compared=0.0,
         expect={"freq": ("nondiff", "a comparison of the phase: piecewise constant in freq")}),
    case("os.sawtooth", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.sawtooth(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.saw2dpw", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.saw2dpw(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.square", f"f = {S('freq', 441.73, 30, 8000)};\nprocess = os.square(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.triangle", f"f = {S('freq', 441.73, 30, 8000)};\nprocess = os.triangle(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.polyblep_saw", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.polyblep_saw(f);",
         rel_step=3e-10, mask="kinks", note=_PHASE_NOTE + _BLEP_NOTE),
    case("os.polyblep_square", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.polyblep_square(f);",
         rel_step=3e-10, mask="kinks", note=_PHASE_NOTE + _BLEP_NOTE),
    case("os.polyblep_triangle", f"f = {S('freq', 441.73, 20, 8000)};\nprocess = os.polyblep_triangle(f);",
         rel_step=1e-8, mask="kinks", note=_PHASE_NOTE),
    case("os.oscrs", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.oscrs(f);", rel_step=1e-7,
         note="d/dfreq grows like t: small step", fast=True),
    case("os.oscrc", f"f = {S('freq', 1000, 20, 8000)};\nprocess = os.oscrc(f);", rel_step=1e-7,
         note="d/dfreq grows like t: small step"),
    case("os.oscws", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.oscws(f);", rel_step=1e-7,
         note="d/dfreq grows like t: small step"),
    case("os.oscb", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.oscb(f);", rel_step=1e-7,
         note="d/dfreq grows like t: small step"),
    case("os.oscs", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.oscs(f);", rel_step=1e-7,
         note="d/dfreq grows like t: small step"),
    case("os.quadosc", f"f = {S('freq', 440, 20, 8000)};\nprocess = os.quadosc(f);", rel_step=1e-7,
         note="d/dfreq grows like t: small step"),
    case("os.oscrs(ba.midikey2hz)", f"k = {S('key', 60.5, 0, 127)};\nprocess = os.oscrs(ba.midikey2hz(k));",
         rel_step=1e-8, note="d/dkey grows like t: small step"),
    case("os.CZsaw", f"ix = {S('index', 0.4, 0, 1)};\nprocess = os.CZsaw(os.lf_sawpos(441.73), ix);",
         mask="kinks", rel_step=1e-7),
    case("os.CZresSaw", f"r = {S('res', 2.3, 1, 10)};\nprocess = os.CZresSaw(os.lf_sawpos(441.73), r);",
         mask="kinks", rel_step=1e-7),
    # ------------------------------------------------------------------ envelopes (en.)
    case("en.adsr", GATE + f"a = {S('at', 0.0513, 0.001, 1)};\nd = {S('dt', 0.1071, 0.001, 1)};\n"
         f"s = {S('sl', 0.6, 0, 1)};\nprocess = en.adsr(a, d, s, 0.2, gate);", fast=True, **_ENV),
    case("en.adsr(rt)", GATE + f"r = {S('rt', 0.2037, 0.001, 1)};\nprocess = en.adsr(0.01, 0.05, 0.5, r, gate);", **_ENV),
    case("en.ar", GATE + f"a = {S('at', 0.0317, 0.001, 1)};\nr = {S('rt', 0.2541, 0.001, 1)};\n"
         "process = en.ar(a, r, gate);", **_ENV),
    case("en.asr", GATE + f"a = {S('at', 0.0419, 0.001, 1)};\ns = {S('sl', 0.7, 0, 1)};\n"
         f"r = {S('rt', 0.1533, 0.001, 1)};\nprocess = en.asr(a, s, r, gate);", **_ENV),
    case("en.smoothEnvelope", GATE + f"t = {S('ar', 0.02, 0.0001, 1)};\nprocess = en.smoothEnvelope(t, gate);", rel_step=1e-8, note=_TIME_NOTE),
    case("en.adsre", GATE + f"a = {S('att', 0.0513, 0.001, 1)};\nd = {S('dec', 0.2037, 0.001, 1)};\n"
         f"s = {S('sus', 0.6, 0, 1)};\nprocess = en.adsre(a, d, s, 0.3, gate);", **_ENV),
    case("en.are", GATE + f"a = {S('att', 0.0513, 0.001, 1)};\nr = {S('rel', 0.3071, 0.001, 1)};\n"
         "process = en.are(a, r, gate);", **_ENV),
    case("en.ahdsre", GATE + f"a = {S('att', 0.0513, 0.001, 1)};\nh = {S('hold', 0.0317, 0.001, 1)};\n"
         "process = en.ahdsre(a, h, 0.2037, 0.6, 0.3, gate);",
         expect={"hold": ("nondiff", "the hold time is counted in whole samples: int(hold*SR)")}, **_ENV),
    # ------------------------------------------------------------------ smoothers, analyzers
    case("si.smooth", f"s = {S('s', 0.99, 0, 0.9999)};\nprocess = si.smooth(s);"),
    case("si.smooth(ba.tau2pole)", f"t = {S('tau', 0.01, 0.0001, 1)};\nprocess = si.smooth(ba.tau2pole(t));", rel_step=1e-8, note=_TIME_NOTE),
    case("si.onePoleSwitching", f"a = {S('att', 0.002, 0.0001, 1)};\nr = {S('rel', 0.05, 0.0001, 1)};\n"
         "process = si.onePoleSwitching(a, r);", **_SWITCH),
    case("an.amp_follower", f"r = {S('rel', 0.1, 0.001, 1)};\nprocess = an.amp_follower(r);", **_SWITCH),
    case("an.rms_envelope_tau", f"t = {S('tau', 0.05, 0.001, 1)};\nprocess = an.rms_envelope_tau(t);", rel_step=1e-6),
    case("an.amp_follower_ud", f"a = {S('att', 0.002, 0.0001, 1)};\nr = {S('rel', 0.05, 0.001, 1)};\n"
         "process = an.amp_follower_ud(a, r);", **_SWITCH),
    case("ba.sAndH", f"g = {S('gain', 0.7, 0, 1)};\nprocess = *(g) : ba.sAndH((ba.time % 100) == 0);"),
    case("ba.peakhold", f"g = {S('gain', 0.7, 0, 1)};\nprocess = *(g) : abs : ba.peakhold((ba.time % 1000) > 0);",
         mask="kinks"),
    case("sp.panner", f"g = {S('pan', 0.3, 0, 1)};\nprocess = sp.panner(g);"),
    case("ba.db2linear", f"g = {S('gain', -6, -60, 12)};\nprocess = *(ba.db2linear(g)) : fi.lowpass(2, 3000);"),
    case("si.smooth(square)", f"s = {S('s', 0.995, 0, 0.9999)};\nprocess = os.lf_squarewavepos(3) : si.smooth(s);"),
    case("ba.line", f"t = {S('time', 400.3, 1, 2000)};\nprocess = os.lf_squarewavepos(3) : ba.line(t);",
         mask="kinks"),
    # ------------------------------------------------------------------ compressors (co.)
    case("co.compressor_mono", f"r = {S('ratio', 4, 1, 20)};\nt = {S('thresh', -12, -60, 0)};\n"
         f"a = {S('att', 0.005, 0.0001, 1)};\nprocess = co.compressor_mono(r, t, a, 0.1);", fast=True, **_SWITCH),
    case("co.compressor_mono(rel)", f"r = {S('rel', 0.1, 0.001, 1)};\nprocess = co.compressor_mono(4, -12, 0.005, r);", **_SWITCH),
    case("co.limiter_1176_R4_mono", f"g = {S('drive', 2, 0.1, 10)};\nprocess = *(g) : co.limiter_1176_R4_mono;", **_SWITCH),
    case("co.peak_compression_gain_mono", f"s = {S('strength', 0.8, 0, 1)};\nt = {S('thresh', -15, -60, 0)};\n"
         f"k = {S('knee', 6, 0, 30)};\nprocess = co.peak_compression_gain_mono(s, t, 0.002, 0.05, k, 0);",
         mask="pointwise"),
    case("co.RMS_compression_gain_mono", f"s = {S('strength', 0.7, 0, 1)};\nt = {S('thresh', -18, -60, 0)};\n"
         "process = co.RMS_compression_gain_mono(s, t, 0.01, 0.1, 6, 0);", **_SWITCH),
    case("co.limiter_lad_mono", f"c = {S('ceiling', 0.5, 0.01, 1)};\na = {S('att', 0.001, 0.0001, 1)};\n"
         f"r = {S('rel', 0.05, 0.001, 1)};\nprocess = co.limiter_lad_mono(0.01, c, a, 0.005, r);", **_SWITCH),
    case("ef.gate_mono", f"t = {S('thresh', -12, -60, 0)};\nprocess = ef.gate_mono(t, 0.001, 0.05, 0.02);",
         mask="kinks", rel_step=1e-7, min_compared=0.0,
         expect={"thresh": ("nondiff", "the gate is a comparison of the level with the threshold: the gain "
                            "follows a 0/1 signal whose switching samples are piecewise constant in thresh")}),
    # ------------------------------------------------------------------ reverbs (re.)
    case("re.zita_rev1_stereo", f"t = {S('t60m', 2, 1, 8)};\nf2 = {S('hfdamp', 6000, 1500, 20000)};\n"
         "process = re.zita_rev1_stereo(60, 200, f2, 3, t, 48000);", fast=True),
    case("re.zita_rev1_stereo(t60dc)", f"t = {S('t60dc', 3, 1, 8)};\nf1 = {S('lfx', 200, 50, 1000)};\n"
         "process = re.zita_rev1_stereo(60, f1, 6000, t, 2, 48000);"),
    case("re.jcrev", f"g = {S('gain', 0.5, 0, 1)};\nprocess = *(g) : re.jcrev;"),
    case("re.mono_freeverb", f"f1 = {S('fb1', 0.84, 0, 0.98)};\nf2 = {S('fb2', 0.5, 0, 0.98)};\n"
         f"d = {S('damp', 0.3, 0, 1)};\nprocess = re.mono_freeverb(f1, f2, d, 23);"),
    case("re.mono_freeverb(spread)", f"s = {S('spread', 23.5, 0, 100)};\nprocess = re.mono_freeverb(0.84, 0.5, 0.3, s);",
         expect={"spread": _CONV}),
    case("re.stereo_freeverb", f"f1 = {S('fb1', 0.8, 0, 0.98)};\nd = {S('damp', 0.4, 0, 1)};\n"
         "process = re.stereo_freeverb(f1, 0.5, d, 23);"),
    case("re.dattorro_rev", f"dc = {S('decay', 0.5, 0, 0.99)};\ndmp = {S('damping', 0.3, 0, 1)};\n"
         f"bw = {S('bw', 0.7, 0, 1)};\nprocess = re.dattorro_rev(0, bw, 0.75, 0.625, dc, 0.7, 0.5, dmp);"),
    case("re.jpverb", f"t = {S('t60', 1.5, 0.1, 60)};\ndmp = {S('damp', 0.3, 0, 0.999)};\n"
         "process = re.jpverb(t, dmp, 1.0, 0.707, 0.1, 2, 1, 1, 1, 500, 2000);"),
    case("re.greyhole", f"dmp = {S('damp', 0.3, 0, 0.99)};\nfb = {S('feedback', 0.7, 0, 1)};\n"
         "process = re.greyhole(0.2, dmp, 1.0, 0.707, fb, 0.1, 2);"),
    # ------------------------------------------------------------------ virtual analog (ve.)
    case("ve.moog_vcf", f"r = {S('res', 0.7, 0, 1)};\nf = {S('fr', 1500, 20, 10000)};\nprocess = ve.moog_vcf(r, f);", fast=True),
    case("ve.moog_vcf_2b", f"r = {S('res', 0.8, 0, 1)};\nf = {S('fr', 2000, 20, 10000)};\nprocess = ve.moog_vcf_2b(r, f);"),
    case("ve.moogLadder", f"f = {S('normFreq', 0.2, 0, 1)};\nq = {S('Q', 2, 0.7, 10)};\nprocess = ve.moogLadder(f, q);"),
    case("ve.korg35LPF", f"f = {S('normFreq', 0.3, 0, 1)};\nq = {S('Q', 3, 0.5, 10)};\nprocess = ve.korg35LPF(f, q);"),
    case("ve.korg35HPF", f"f = {S('normFreq', 0.15, 0, 1)};\nq = {S('Q', 2, 0.5, 10)};\nprocess = ve.korg35HPF(f, q);"),
    case("ve.oberheimLPF", f"f = {S('normFreq', 0.25, 0, 1)};\nq = {S('Q', 4, 0.5, 10)};\nprocess = ve.oberheimLPF(f, q);"),
    case("ve.sallenKey2ndOrderLPF", f"f = {S('normFreq', 0.3, 0, 1)};\nq = {S('Q', 2, 0.5, 10)};\n"
         "process = ve.sallenKey2ndOrderLPF(f, q);"),
    case("ve.wah4", f"f = {S('fr', 800, 100, 2000)};\nprocess = ve.wah4(f);"),
    case("ve.crybaby", f"w = {S('wah', 0.6, 0, 1)};\nprocess = ve.crybaby(w);"),
    case("ve.autowah", f"l = {S('level', 0.8, 0, 1)};\nprocess = ve.autowah(l);"),
    case("ve.moogHalfLadder", f"f = {S('normFreq', 0.2, 0, 1)};\nq = {S('Q', 2, 0.7, 10)};\n"
         "process = ve.moogHalfLadder(f, q);"),
    case("ve.diodeLadder", f"f = {S('normFreq', 0.2, 0, 1)};\nq = {S('Q', 2, 0.7, 10)};\n"
         "process = ve.diodeLadder(f, q);", mask="kinks", rel_step=1e-7,
         note="its cubic soft clipper (ef.cubicnl) has corners at +-1: kinks"),
    case("ve.sallenKeyOnePoleLPF", f"f = {S('normFreq', 0.3, 0, 1)};\nprocess = ve.sallenKeyOnePoleLPF(f);"),
    case("ve.korg35LPF(modulated)", f"q = {S('Q', 4, 0.5, 10)};\nprocess = ve.korg35LPF(0.3 + 0.2*os.oscrs(2.3), q);"),
    case("fi.resonlp(modulated)", f"dp = {S('depth', 0.5, 0, 0.9)};\nq = {S('q', 5, 0.5, 20)};\n"
         "process = fi.resonlp(1000*(1 + dp*os.oscrs(2)), q, 1);"),
    case("fi.lowpass6e(modulated)", f"dp = {S('depth', 0.3, 0, 0.9)};\nprocess = fi.lowpass6e(2000*(1 + dp*os.oscrs(1.5)));"),
    case("fi.iir", f"a1 = {S('a1', -0.5, -0.9, 0.9)};\nb2 = {S('b2', 0.3, -1, 1)};\n"
         "process = fi.iir((1, 0.2, b2), (a1, 0.2, -0.1));"),
    # ------------------------------------------------------------------ effects (ef., pf.)
    case("pf.flanger_mono", f"d = {S('curdel', 100.3, 0, 500)};\ndp = {S('depth', 0.8, 0, 1)};\n"
         f"fb = {S('fb', 0.5, -0.99, 0.99)};\nprocess = pf.flanger_mono(512, d, dp, fb, 0);"),
    case("ef.cubicnl", f"d = {S('drive', 0.4, 0, 1)};\no = {S('offset', 0.1, -0.5, 0.5)};\n"
         "process = ef.cubicnl(d, o);", mask="pointwise"),
    case("ef.echo", f"fb = {S('feedback', 0.6, 0, 0.99)};\nprocess = ef.echo(0.5, 0.11, fb);"),
    case("ef.cubicnl_nodc", f"d = {S('drive', 0.6, 0, 1)};\nprocess = ef.cubicnl_nodc(d, 0.2);", mask="kinks"),
    case("aa.tanh1", f"g = {S('drive', 2.3, 0.1, 10)};\nprocess = *(g) : aa.tanh1;", mask="kinks", note=_ADAA_NOTE),
    case("aa.hardclip", f"g = {S('drive', 1.7, 0.1, 10)};\nprocess = *(g) : aa.hardclip;", mask="kinks", note=_ADAA_NOTE),
    case("aa.cubic1", f"g = {S('drive', 0.9, 0.1, 10)};\nprocess = *(g) : aa.cubic1;", mask="kinks", note=_ADAA_NOTE),
    case("ef.echo(duration)", f"d = {S('duration', 0.1103, 0.01, 0.5)};\nprocess = ef.echo(0.5, d, 0.6);",
         expect={"duration": _CONV}),
    case("ef.speakerbp", f"f1 = {S('f1', 130, 20, 1000)};\nf2 = {S('f2', 5000, 1000, 20000)};\n"
         "process = ef.speakerbp(f1, f2);"),
    case("pf.phaser2_mono", f"dp = {S('depth', 1, 0, 2)};\nfb = {S('fb', 0.5, -0.99, 0.99)};\n"
         f"w = {S('width', 1000, 10, 5000)};\nprocess = pf.phaser2_mono(4, 0, w, 100, 1.5, 800, 0.5, dp, fb, 0);"),
    case("pf.vibrato2_mono", f"w = {S('width', 1000, 10, 5000)};\nspd = {S('speed', 0.5, 0, 10)};\n"
         "process = pf.vibrato2_mono(4, 0, 0.3, w, 100, 1.5, 800, spd);"),
    case("sy.combString", f"f = {S('freq', 220.37, 50, 1000)};\nr = {S('res', 0.7, 0, 0.99)};\n"
         "process = sy.combString(f, r, (ba.time % 11025) < 100);", mask="kinks", steps={"freq": 1e-9},
         note="freq sets a fractional delay in a feedback loop: after k round trips the output's "
              "curvature in freq grows like k^2, a step of 1e-9 keeps h |y''| / 2 below the kink test's bound"),
    # ------------------------------------------------------------------ physical models (pm.)
    case("pm.ks", IMP + f"l = {S('length', 0.7731, 0.1, 2)};\ndmp = {S('damping', 0.3, 0, 1)};\n"
         "process = float(exc) : pm.ks(l, dmp);"),
    case("pm.modeFilter", f"f = {S('freq', 440, 50, 5000)};\nt = {S('t60', 0.8, 0.01, 5)};\n"
         "process = pm.modeFilter(f, t, 0.5);", steps={"t60": 1e-5},
         note="t60: the pole radius 0.001^(1/(t60 SR)) ~ 0.9998 moves by 2e-11 for the h/10 step of "
              "1e-7, its rounding (1e-16) is a 5e-6 relative error of that difference: a step of 1e-5"),
    case("pm.djembeModel", f"f = {S('freq', 180, 50, 500)};\nprocess = pm.djembeModel(f);"),
    case("pm.elecGuitarModel", IMP + f"l = {S('length', 0.6731, 0.1, 2)};\npp = {S('pluckPosition', 0.3, 0, 1)};\n"
         "process = float(exc) : pm.elecGuitarModel(l, pp, 0.9);"),
    case("sy.dubDub", f"c = {S('ctFreq', 1500, 100, 8000)};\nq = {S('q', 2, 0.5, 10)};\n"
         "process = sy.dubDub(220.37, c, q, 1);", mask="kinks", rel_step=1e-7),
    case("ef.transpose", f"s = {S('shift', 3, -12, 12)};\nprocess = ef.transpose(2048, 512, s);",
         mask="kinks", min_compared=0.85,
         note="the delay d accumulates 1 - 2^(s/12) on a grid of 4.5e-13 (d + w < 4096): the output is "
              "a staircase in s at that scale, the difference's relative error is ~2e-13/(h |di/ds|): "
              "5e-7 at this step, 5e-5 at a step 100 times smaller; corners of the linear "
              "interpolation (integer d) within the step not compared (kinks)"),
]


# ---------------------------------------------------------------------------- running

def run_case(c: Case, n: int = N, sources=("faust",)) -> list[dict]:
    """One row per (diff parameter, finite-difference source) of case `c`, `n` samples."""
    from derivcheck import check_derivatives

    t0 = time.perf_counter()
    steps = {label: c.step(label) for label in c.labels}
    checks = check_derivatives(c.source, n=n, sources=list(sources), rel_step=steps, mask=c.mask,
                               kink_tol=c.kink_tol, jump_atol=JUMP_ATOL)
    secs = time.perf_counter() - t0
    rows = []
    for ch in checks:
        exp = c.expect.get(ch.label)
        kind = exp[0] if exp else "pass"
        ok = ch.error <= TOL and ch.compared >= c.min_fraction * n
        if kind == "pass":
            # a zero derivative everywhere checks nothing: such a row must say "nondiff"
            status = "pass" if ok and ch.peak > 0 else "FAIL"
        elif kind == "nondiff":
            ok = ch.peak == 0 and ch.ad_peak == 0 and ch.compared >= c.min_fraction * n
            status = "nondiff" if ok else "FAIL"
        elif ok:
            status = "pass?"  # a convention row that agrees: the convention (or Faust) changed
        else:
            status = "convention" if ch.peak == 0 and ch.ad_peak > 0 else "FAIL"
        rows.append(dict(func=c.func, param=ch.label, source=ch.source, n=n, error=ch.error,
                         peak=ch.peak, ad_peak=ch.ad_peak, worst=ch.worst, compared=ch.compared, status=status,
                         expect=kind, why=(exp[1] if exp else c.note), rel_step=c.step(ch.label),
                         mask=c.mask, secs=secs / max(1, len(checks))))
    return rows


def _run_one(args):
    c, n = args
    try:
        return run_case(c, n)
    except Exception as e:  # noqa: BLE001  (a row that says why, not a crashed table)
        return [dict(func=c.func, param="?", source="faust", n=n, error=float("nan"), peak=float("nan"),
                     ad_peak=float("nan"),
                     worst=(0, 0), compared=0, status="ERROR", expect="pass",
                     why=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}", rel_step=c.rel_step,
                     mask=c.mask, secs=0.0)]


def select(pattern: str | None = None, fast: bool = False) -> list[Case]:
    out = [c for c in CASES if (not fast or c.fast) and (not pattern or pattern in c.func)]
    return out


def render_markdown(rows: list[dict], command: str, wall: float, n: int, jobs: int = 1) -> str:
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    funcs = len({r["func"] for r in rows})
    lines = [
        "# Library derivatives over long signals",
        "",
        "diffaust's forward-mode derivatives of Faust 2.54.9's library functions against central",
        "finite differences of the real Faust compiler's double-precision output (issue 8, point 3).",
        "Each row is one `[diff:1]` parameter of one small program `import(\"stdfaust.lib\");` feeding",
        "the function (tests/library_cases.py), with deterministic uniform noise in [-0.9, 0.9] on its",
        f"inputs, {n:,} samples at 44.1 kHz.",
        "",
        "- **error**: max |ad − fd| over the compared samples, divided by **peak** = max |fd| there",
        "  (tests/derivcheck.py); **worst**: output:sample of that maximum.",
        "- **max ad**: max |diffaust's derivative| over the compared samples.",
        "- **compared**: samples where the finite differences with steps h and h/10 agree (1e-3",
        "  relative plus 1e-6 of the peak; h = rel_step · max(1, |p|), column **step**): `prefix`",
        "  compares those before the first disagreement; `pointwise` every one (functions",
        "  piecewise smooth in p that come back to the same path after a jump: phase wraps);",
        "  `kinks` every one where, in addition, no corner of the output in p lies within the",
        "  step, i.e. |y(p+h) − 2y(p) + y(p−h)| / 2h,",
        "  which is the central difference's error at a corner, stays below 3e-6 of the peak",
        "  (envelope segments, attack/release switches, compressor thresholds, linear",
        "  interpolation).  The masks are computed from Faust's outputs only, never from",
        "  diffaust's derivative, so they cannot hide a wrong one; a row passes only if enough",
        "  samples were compared (all for `prefix`, 90% otherwise unless its note says).",
        "- Envelopes are driven by `gate = (ba.time % 20000) < 8000`, the physical models by an",
        "  impulse every 11,025 samples; oscillators have no input.",
        f"- **status**: `pass` = error ≤ {TOL:g} and enough samples compared; `nondiff` = Faust's",
        "  output is piecewise constant in p (derivative 0 a.e.), diffaust's is 0 where compared;",
        "  `convention` = Faust's output is piecewise constant in p, diffaust's derivative is not 0",
        "  by a documented convention (table reads at a truncated index); `FAIL` = unexpected.",
        "",
        f"Made by `{command}` on {datetime.date.today().isoformat()} ({wall:.0f} s wall, {jobs} processes).",
        "",
        f"**{funcs} programs, {len(rows)} rows: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".**",
        "",
        "| function | param | N | error | peak | max ad | worst | compared | step | status | note |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['func']}` | {r['param']} | {r['n']} | {r['error']:.2e} | {r['peak']:.3g} | {r['ad_peak']:.3g} | "
            f"{r['worst'][0]}:{r['worst'][1]} | {r['compared']} | {r['rel_step']:g} {r['mask']} | "
            f"{r['status']} | {r['why'].replace('|', '/')} |")
    return "\n".join(lines) + "\n" + NOTES


NOTES = """
## What the rows that are not plain passes mean

- **`nondiff`, delays** (`de.delay`, `de.sdelay`, the delay length of `fi.fb_comb`,
  `fi.allpass_comb`, the `spread` of `re.mono_freeverb`, `ef.echo`'s duration): these read
  `x@d` with a real-valued `d` that depends on the parameter (`de.delay(n, d) =
  x@min(n, max(0, d))`).  Faust truncates `d`, so its output is piecewise constant in `d`
  and its finite difference is 0 between the jumps; diffaust's derivative is 0 too, and
  compiling with `-diff` warns that the delay amount's derivative is lost.  The fractional
  delays (`de.fdelay*`, `fi.fb_fcomb`, `fi.ff_fcomb`, `fi.allpass_fcomb`, `pf.flanger_mono`)
  are the differentiable way to move a delay.
- **`nondiff`** (`os.lf_squarewave` in freq): Faust's output is a comparison of the phase,
  piecewise constant in the frequency: both derivatives are 0 wherever they exist.
- **`convention`** (`os.osc`, `os.osccos` in freq): Faust's output is a 65,536-point table
  read at a truncated index (`int(phasor)`), piecewise constant in the frequency: the finite
  difference at this step is 0 where compared (it jumps on most samples, hence few compared).
  diffaust gives such a read the table's slope, (tab[i+1] − tab[i]) · d(index)/dfreq, by
  convention (docs/DERIVATIVES.md, docs/SEMANTICS.md), so that the frequency can be learnt:
  against a central difference of Faust's output with a step of 0.1 Hz (over which the
  staircase averages out) it agrees within 0.35% of the peak over 2,048 samples
  (tests/test_table_slope.py).  `os.oscrs`, `os.oscs`, `os.quadosc`, `os.oscws`, `os.oscb`
  and `os.osci` (interpolated table: its exact derivative, no convention) have exact
  frequency derivatives.

## Finite-difference artifacts met on the way (not diffaust bugs)

- **Step size.** The derivative of a phase grows like t (d/dfreq sin(2π f t) = 2π t cos):
  at t = 1.1 s a relative step of 1e-4 gives a 1% O(h²) error; time constants of a few ms
  need an absolute step of ~1e-8 s (h = rel_step · max(1, |p|) is then 1e-4 *absolute*
  for `rel_step=1e-4`).  Too small a step and the rounding of long recursions takes over
  (a smoother with a pole at 0.9995 at a step of 1e-9).  Each case's step is in the table.
- **Corners exactly at p.** At 440 Hz the phase 440 n/44100 is exactly an integer at
  n = 46,305, and at 441.7 Hz exactly 0.5 at n = 31,500 (where `os.polyblep_square`'s
  correction pieces meet, a C¹ junction: central-difference error ∝ h); envelope times
  with t·SR an integer put `max(0, ·)`'s corner exactly on p.  The output has no
  derivative there (or only a one-sided one); the cases use 441.73 Hz and times like
  0.0513 s.
- **Corners within the step.** `os.osci` (linear interpolation of a 65,536-point table),
  `os.polyblep_*`, the envelopes, `si.onePoleSwitching`, the compressors: a corner
  between p − h and p + h shifts the central difference by up to half the slope change,
  which the h vs h/10 comparison does not always see (1e-4 relative for `os.osci`):
  hence the `kinks` mask.
- **A staircase in p.** `ef.transpose` accumulates `1 - 2^(s/12)` into a delay in
  [0, 2048) rounded to a grid of 4.5e-13: Faust's output is a staircase in `s` at that
  scale and the difference's relative error is ~2e-13 / (h · |di/ds|), constant over
  time (6e-7 at the table's step, 3e-6 and 3e-5 at steps 10 and 100 times smaller).
- **Ill-conditioned outputs.** The antiderivative-antialiased saturators compute
  (F(x) − F(x'))/(x − x') (first order) or a quotient by (x − x')² (second order):
  Faust's double output carries ~2e-11 of cancellation error, which a difference over
  2h = 4e-6 turns into 1e-5 of the peak.  The first-order ones (`aa.tanh1`,
  `aa.hardclip`, `aa.cubic1`) stay within 1e-6 at the table's step; the second-order
  ones (`aa.arctan2`, `aa.hardclip2`, `aa.hyperbolic2`) reach 3e-5 to 5e-5 at any step
  that also keeps the corners out, so they are not in the table: checked instead against
  the same formula evaluated in 80-bit long double (`aa.arctan2`, drive 2.1, 48,000
  samples), diffaust's derivative is within 2e-8 of the peak of that difference.
- **Rounding of the h/10 difference.** The jump test compares the steps h and h/10 within
  1e-3 relative plus an absolute floor; with derivcheck's default floor (1e-7 of the
  peak) the h/10 difference's rounding trips it where the derivative crosses zero (a
  resonator's pole radius 0.9998 moved by 2e-11, `pm.modeFilter`'s t60; `ve.crybaby`,
  `pf.vibrato2_mono`), and in `prefix` mode the comparison stops there.  The table uses a
  floor of 1e-6 of the peak (TOL/10: a jump it misses moves the h difference by less than
  that), and a step of 1e-5 for `pm.modeFilter`'s t60.
"""


def write_atomic(path: str, text: str):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=N, help=f"samples (default {N})")
    ap.add_argument("-k", dest="pattern", help="only the cases whose function contains this text")
    ap.add_argument("--fast", action="store_true", help="only the fast subset")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-o", "--out", default=os.path.join(os.path.dirname(__file__), "..", "docs",
                                                         "LIBRARY-DERIVATIVES.md"))
    ap.add_argument("--no-write", action="store_true", help="print the rows only")
    a = ap.parse_args(argv)
    cases = select(a.pattern, a.fast)
    t0 = time.perf_counter()
    rows = []
    jobs = [(c, a.n) for c in cases]
    if a.jobs > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(a.jobs) as ex:
            results = ex.map(_run_one, jobs)
            for res in results:
                rows += res
                for r in res:
                    print(_fmt(r), flush=True)
    else:
        for j in jobs:
            res = _run_one(j)
            rows += res
            for r in res:
                print(_fmt(r), flush=True)
    wall = time.perf_counter() - t0
    bad = [r for r in rows if r["status"] in ("FAIL", "ERROR", "pass?")]
    print(f"{len(cases)} cases, {len(rows)} rows, {len(bad)} unexpected, {wall:.1f} s")
    if not a.no_write:
        cmd = "python tests/library_cases.py" + ("" if argv is None and len(sys.argv) == 1
                                                 else " " + " ".join(sys.argv[1:] if argv is None else argv))
        write_atomic(os.path.normpath(a.out), render_markdown(rows, cmd, wall, a.n, a.jobs))
    return 1 if bad else 0


def _fmt(r):
    return (f"{r['status']:10s} {r['func']:32s} {r['param']:10s} err {r['error']:.2e} peak {r['peak']:.3g} "
            f"worst {r['worst'][0]}:{r['worst'][1]} compared {r['compared']} ({r['secs']:.1f} s) "
            + (r["why"] if r["status"] not in ("pass",) else ""))


if __name__ == "__main__":
    sys.exit(main())
