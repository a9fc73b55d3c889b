"""diffaust's bundled Faust library (``src/diffaust/lib``) against Faust's own libraries.

Every case of ``CASES`` is compiled twice, both by diffaust in double precision:
with ``bundled_only=True`` (our library first) and with the installed Faust
libraries (/usr/share/faust); both are run on the same noise input and must agree
to 1e-9 (relative to 1 + |reference|).  The bundled compile always runs, so the
bundled library is exercised even on a machine without Faust; the comparison is
skipped there.

``test_every_public_definition_has_a_case`` parses each bundled .lib and fails
when a public definition (or a member of a public environment) is not named by
any case, so no untested function ships.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import diffaust
from diffaust.boxes import loader
from diffaust.reference import make_input
from diffaust.syntax import ast as A
from diffaust.syntax import parse_file

LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(diffaust.__file__)), "lib")
SYSTEM_STDFAUST = "/usr/share/faust/stdfaust.lib"
N = 4096
TOL = 1e-9

# (expression, input kind[, samples]): `process = EXPR;` after `import("stdfaust.lib");`.
# The input kind (noise, ones, impulse, zeros) feeds every input of the program.
CASES = [
    # ---------------------------------------------------------------- maths, platform
    ("ma.SR, ma.T, ma.BS, ma.PI, ma.E, ma.EPSILON, ma.MIN, ma.MAX, ma.INFINITY", "noise"),
    ("pl.SR, pl.BS, pl.tablesize", "noise"),
    ("ma.neg, ma.sub(1), ma.inv(_ + 3), ma.FTZ(_ * 1e-300), ma.frac(_ * 5), ma.decimal(_ * 5)", "noise"),
    ("ma.modulo(int(_ * 100), 7), ma.signum, ma.nextpow2(abs(_) * 100 + 1), ma.log2(abs(_) + 0.1)", "noise"),
    ("ma.diffn, ma.zc, ma.fabs, ma.fmax(_, 0.2), ma.fmin(_, 0.3)", "noise"),
    ("ma.np2(100), ma.np2(int(abs(_) * 1000) + 1)", "noise"),
    ("ma.chebychev(3), ma.chebychevpoly((0.1, 0.2, 0.3, 0.4))", "noise"),
    ("ma.copysign(1.5, _), ma.cbrt, ma.hypot(_, 0.5), ma.log1p(abs(_)), ma.expm1", "noise"),
    ("ma.sinh, ma.cosh, ma.tanh, ma.asinh, ma.acosh(abs(_) + 1), ma.atanh(_ * 0.9)", "noise"),
    ("ma.erf, ma.erfc, ma.gamma(_ + 2), ma.lgamma(abs(_) + 0.5)", "noise"),
    # ---------------------------------------------------------------- basics
    ("ba.samp2sec(441), ba.sec2samp(0.5), ba.db2linear(_ * 20), ba.linear2db(abs(_)), ba.linear2db(0)", "noise"),
    ("ba.lin2LogGain, ba.log2LinGain(abs(_)), ba.tau2pole(abs(_) * 0.01), ba.tau2pole(0), ba.pole2tau(abs(_))",
     "noise"),
    ("ba.midikey2hz(60 + _), ba.hz2midikey(440 + 100 * _), ba.pianokey2hz(49 + _), ba.hz2pianokey(440 + 100 * _)",
     "noise"),
    ("ba.semi2ratio(_ * 12), ba.ratio2semi(abs(_) + 0.5), ba.cent2ratio(_ * 100), ba.ratio2cent(abs(_) + 0.5)",
     "noise"),
    ("ba.time, ba.counter(_ > 0.5), ba.countdown(100, _ > 0.9), ba.countup(100, _ > 0.9)", "noise"),
    ("ba.sweep(100, _ > -0.9), ba.tempo(120), ba.period(100), ba.pulse(100), ba.pulsen(10, 100), ba.beat(6000)",
     "noise"),
    (r"\(x).(ba.pulse_countup(x > 0), ba.pulse_countdown(x > 0), ba.pulse_countup_loop(20, x > 0),"
     r" ba.pulse_countdown_loop(-20, x > 0))", "noise"),
    ("ba.cycle(3), ba.resetCtr(4, 2)", "ones"),
    ("ba.ramp(10), ba.ramp(0), ba.line(50, int(_ * 3))", "noise"),
    ("ba.count((1, 2, 3, 4)), ba.take(3, (10, 20, 30, 40)), ba.subseq((1, 2, 3, 4, 5), 1, 3)", "noise"),
    (r"\(x).(ba.if(x > 0, 1, 2)), ba.selector(2, 4), ba.cselector(1, 3)", "noise"),
    (r"\(x, a, b, c, d).(a, b, c, d : ba.select2stereo(x > 0))", "noise"),
    (r"\(x).(ba.selectn(5, int(abs(x) * 5), 1, 2, 3, 4, 5)), \(x).(x : ba.selectoutn(3, int(abs(x) * 3)))",
     "noise"),
    (r"\(i, a, b, c).(a, b, c : ba.selectnX(3, int(abs(i) * 3), \(k, j, u, v).(select2(k >= j, u, v))))", "noise"),
    (r"\(x).(ba.sAndH(x > 0.5, x), ba.latch(x > 0, x), ba.downSample(1000, x))", "noise"),
    (r"\(x).(ba.peakhold(x > -0.99, x), ba.peakholder(100, x), ba.impulsify(x > 0))", "noise"),
    ("abs(_) * 4 : ba.bpf.start(0, 0) : ba.bpf.point(1, 1) : ba.bpf.point(2, -1) : ba.bpf.end(4, 0)", "noise"),
    ("abs(_) * 4 : ba.listInterp((0, 1, -1, 0.5, 0))", "noise"),
    (r"\(b, x).(x : ba.bypass1(b > 0, *(2))), \(b, x, y).(x, y : ba.bypass2(b > 0, (+ <: _, _)))", "noise"),
    (r"\(b, x).(x : ba.bypass1to2(b > 0, (_ <: _, *(3)))), \(b, x).(x : ba.bypass_fade(10, b > 0, *(2)))",
     "noise"),
    (r"\(x).(ba.toggle(x > 0.5), ba.on_and_off(x > 0.5, x < -0.5)), ba.bitcrusher(4)", "noise"),
    ("ba.slidingSum(10), ba.slidingMean(10), ba.slidingRMS(10)", "noise"),
    ("ba.parallelOp(+, 3), ba.parallelMax(3), ba.parallelMin(3), ba.parallelMean(3), ba.parallelRMS(3), "
     "ba.millisec", "noise"),
    # ---------------------------------------------------------------- signals, routes
    ("si.bus(3), si.block(2), si.bus(0), si.bus(1), si.bus(2), si.cbus(2), si.cbus(1)", "noise"),
    (r"\(a, x, y).(si.interpolate(a, x, y)), si.dot(3), si.cmul, si.cconj", "noise"),
    ("si.smooth(0.99), si.smooth_imp(0, 0.9), si.smooth_imp(1, 0.9), si.smooth_imp(2, 0.9), si.smoo", "noise"),
    (r"\(g, x).(x : si.polySmooth(g > 0.5, 0.999, 10)), \(t, x).(x : si.smoothAndH(t > 0, 0.99)), si.bsmooth",
     "noise"),
    (r"\(x).(si.onePoleSwitching(0.01, 0.1, x), si.lag_ud(0.001, 0.01, x)), si.rev(64)", "noise"),
    ("ro.cross(3), ro.cross2, ro.crossNM(2, 3), ro.crossnn(2), ro.crossn1(2), ro.cross1n(2)", "noise"),
    ("ro.interleave(1, 2), ro.interleave(3, 2), ro.butterfly(2), ro.butterfly(4), ro.hadamard(2), "
     "ro.hadamard(4)", "noise"),
    ("ro.bubbleSort(4), ro.bubbleSort(1), ro.bubbleSort(0)", "noise"),
    # ---------------------------------------------------------------- delays
    (r"\(x).(de.delay(100, int(abs(x) * 120), x), de.fdelay(100, abs(x) * 120, x), de.delay(10, -3, x))",
     "noise"),
    (r"\(x).(de.sdelay(1024, 64, ba.sAndH(ba.pulse(300), int(abs(x) * 1000)), x))", "noise"),
    (r"\(x).(de.fdelayltv(3, 100, 10 + 5 * abs(x), x), de.fdelaylti(3, 100, 10.3, x))", "noise"),
    (r"\(x).(de.fdelay1(100, 10.5 + abs(x), x), de.fdelay2(100, 10.5 + abs(x), x), "
     r"de.fdelay3(100, 10.5 + abs(x), x), de.fdelay4(100, 10.5 + abs(x), x), de.fdelay5(100, 10.5 + abs(x), x))",
     "noise"),
    (r"\(x).(de.fdelay1a(100, 10.3, x), de.fdelay2a(100, 10.3, x), de.fdelay3a(100, 10.3, x), "
     r"de.fdelay4a(100, 10.3, x))", "noise"),
    (r"\(x).(de.delay1s(1000, x), de.delay2s(3000, x), de.fdelay1s(1000.5, x), de.fdelay2s(3000.25, x))",
     "noise"),
    # ---------------------------------------------------------------- filters
    ("fi.zero(0.5), fi.pole(0.9), fi.integrator, fi.dcblocker, fi.dcblockerat(30)", "noise"),
    (r"\(x).(fi.lptN(40, 0.01, x), fi.lptau(0.01, x), fi.lpt60(0.1, x), fi.lpt19(0.05, x))", "noise"),
    ("fi.ff_comb(100, 17, 0.5, 0.4), fi.ff_fcomb(100, 17.3, 0.5, 0.4), fi.ffcombfilter(100, 17, 0.3)", "noise"),
    ("fi.fb_comb(100, 17, 0.5, 0.4), fi.fb_fcomb(100, 17.3, 0.5, 0.4), fi.rev1(100, 17, 0.5), "
     "fi.fbcombfilter(100, 17, 0.5), fi.ffbcombfilter(100, 17.3, 0.5)", "noise"),
    ("fi.allpass_comb(100, 17, 0.5), fi.allpass_fcomb(100, 17.3, 0.5), fi.allpass_fcomb5(100, 17.3, 0.5), "
     "fi.allpass_fcomb1a(100, 17.3, 0.5), fi.rev2(100, 17, 0.5)", "noise"),
    ("fi.fir((0.1, 0.2, 0.3)), fi.fir(0.5), fi.conv((0.1, 0.5, -0.2)), fi.iir((0.1, 0.2, 0.1), (-1.2, 0.5))",
     "noise"),
    ("fi.tf1(0.5, 0.2, -0.3), fi.tf2(0.1, 0.2, 0.1, -1.2, 0.5), fi.tf3(0.1, 0.2, 0.1, 0.05, -1.2, 0.5, -0.1)",
     "noise"),
    ("fi.tf21(0.1, 0.2, 0.1, -1.2, 0.5), fi.tf22(0.1, 0.2, 0.1, -1.2, 0.5), fi.tf22t(0.1, 0.2, 0.1, -1.2, 0.5), "
     "fi.tf21t(0.1, 0.2, 0.1, -1.2, 0.5), fi.notchw(100, 1000)", "noise"),
    ("fi.tf1s(0.3, 1, 1, 2000), fi.tf2s(0.2, 0.5, 1, 1.4, 1, 3000), fi.tf1sb(0.1, 1, 1, 3000.0, 6000.0), "
     "fi.tf2sb(0.1, 0.3, 1, 1.4, 1, 3000.0, 6000.0), fi.tf2sb(0.1, 0.3, 1, 1.4, 1, 3000, 6000)", "noise"),
    ("fi.resonlp(1000, 5, 0.5), fi.resonhp(1000, 5, 0.5), fi.resonbp(1000, 5, 0.5)", "noise"),
    ("fi.lowpass(3, 1000)", "noise"),
    ("fi.lowpass(1, 1000), fi.lowpass(2, 1000), fi.lowpass(4, 500), fi.lowpass(5, 3000)", "noise"),
    ("fi.highpass(1, 1000), fi.highpass(2, 1000), fi.highpass(3, 1000), fi.highpass(6, 200), "
     "fi.lowpass0_highpass1(1, 3, 800)", "noise"),
    ("fi.highpass_plus_lowpass(1, 1000), fi.highpass_plus_lowpass(3, 1000), fi.highpass_plus_lowpass(5, 1000), "
     "fi.highpass_plus_lowpass(4, 1000)", "noise"),
    ("fi.highpass_minus_lowpass(3, 1000), fi.highpass_minus_lowpass(5, 1000), fi.highpass_minus_lowpass(4, 1000)",
     "noise"),
    ("fi.lowpass3e(1000), fi.highpass3e(1000), fi.lowpass6e(1000), fi.highpass6e(1000)", "noise"),
    ("fi.bandpass(1, 500, 2000), fi.bandpass(2, 500, 2000), fi.bandpass(3, 500, 2000), "
     "fi.bandstop(1, 500, 2000), fi.bandstop(2, 500, 2000), fi.bandpass0_bandstop1(0, 4, 300, 3000)", "noise"),
    ("fi.bandpass6e(500, 2000), fi.bandpass12e(500, 2000)", "noise"),
    ("fi.lowshelf(3, 6, 500), fi.lowshelf(4, -3, 400), fi.highshelf(3, -6, 2000), fi.low_shelf(6, 500), "
     "fi.high_shelf(-6, 2000)", "noise"),
    ("fi.low_shelf1(6, 500), fi.low_shelf1_l(2, 500), fi.high_shelf1(6, 500), fi.high_shelf1_l(2, 500), "
     "fi.lowshelf_other_freq(3, 6, 500), fi.highshelf_other_freq(3, 6, 500)", "noise"),
    ("fi.peak_eq(6, 1000, 100), fi.peak_eq(-6, 1000, 100), fi.peak_eq_cq(6, 1000, 2), "
     "fi.peak_eq_rm(6, 1000, tan(ma.PI * 100 / ma.SR))", "noise"),
    (r"fi.spectral_tilt(4, 50, 10000, -0.5), \(x).(fi.levelfilter(0.5, 1000, x)), fi.levelfilterN(3, 1000, 0.5)",
     "noise"),
    ("fi.filterbank(3, (300, 1000, 3000)), fi.filterbank(5, (1000)), fi.mth_octave_filterbank(3, 1, 10000, 4), "
     "fi.mth_octave_filterbank5(2, 8000, 5)", "noise"),
    ("fi.svf.lp(1000, 2), fi.svf.bp(1000, 2), fi.svf.hp(1000, 2), fi.svf.notch(1000, 2), fi.svf.peak(1000, 2)",
     "noise"),
    ("fi.svf.ap(1000, 2), fi.svf.bell(1000, 2, 6), fi.svf.ls(1000, 2, 6), fi.svf.hs(1000, 2, -6), "
     "fi.svf.svf(1, 300, 0.7, 0)", "noise"),
    ("fi.lowpassLR4(1000), fi.highpassLR4(1000), fi.crossover2LR4(1000)", "noise"),
    (r"\(x).(fi.nlf2(1000, 0.99, x), fi.wgr(1000, 0.99, x))", "noise"),
    (r"\(x).(fi.avg_rect(0.01, x), fi.avg_tau(0.01, x), fi.avg_t60(0.01, x), fi.avg_t19(0.01, x))", "noise"),
    # ---------------------------------------------------------------- analyzers
    ("an.amp_follower(0.01), an.peak_envelope(0.01), an.amp_follower_ud(0.001, 0.01), "
     "an.amp_follower_ar(0.001, 0.01)", "noise"),
    (r"\(x).(an.abs_envelope_rect(0.01, x), an.abs_envelope_tau(0.01, x), an.abs_envelope_t60(0.01, x), "
     r"an.abs_envelope_t19(0.01, x), an.zcr(0.01, x))", "noise"),
    (r"\(x).(an.ms_envelope_rect(0.01, x), an.ms_envelope_tau(0.01, x), an.ms_envelope_t60(0.01, x), "
     r"an.ms_envelope_t19(0.01, x))", "noise"),
    (r"\(x).(an.rms_envelope_rect(0.01, x), an.rms_envelope_tau(0.01, x), an.rms_envelope_t60(0.01, x), "
     r"an.rms_envelope_t19(0.01, x))", "noise"),
    ("an.analyzer(3, (300, 1000, 3000)), an.mth_octave_analyzer(3, 1, 10000, 4), "
     "an.mth_octave_analyzer3(2, 8000, 4), an.mth_octave_analyzer5(2, 8000, 4)", "noise"),
    # ---------------------------------------------------------------- oscillators
    ("os.osc(440)", "zeros"),
    ("os.sinwaveform(64), os.coswaveform(64), os.phasor_imp(440, 0, 0), os.phasor_table(16, 440, 0, 0), "
     "os.phasor(10, 440), os.lf_sawpos(440)", "noise"),
    (r"\(x).(os.hs_phasor(100, 440, x > 0.9), os.hsp_phasor(100, 440, x > 0.9, 0.25))", "noise"),
    ("os.oscsin(440), os.osccos(1000), os.oscp(440, 0.5), os.osci(440)", "noise"),
    (r"\(x).(os.hs_oscsin(440, x > 0.9), os.hs_osccos(440, x > 0.9))", "noise"),
    (r"\(x).(os.lf_sawpos_phase(440, 0.3), os.lf_sawpos_reset(440, x > 0.9), "
     r"os.lf_sawpos_phase_reset(440, 0.3, x > 0.9))", "noise"),
    ("os.saw1(440), os.lf_saw(440), os.lf_rawsaw(100), os.lf_imptrain(440), os.lf_pulsetrainpos(440, 0.3), "
     "os.lf_pulsetrain(440, 0.3)", "noise"),
    ("os.lf_squarewavepos(440), os.lf_squarewave(440), os.lf_trianglepos(440), os.lf_triangle(440)", "noise"),
    ("os.MAX_SAW_ORDER, os.MAX_SAW_ORDER_NEXTPOW2, os.sawN(1, 440), os.sawN(2, 440), os.sawN(3, 440), "
     "os.sawN(4, 440), os.sawN(6, 440), os.sawNp(3, 440, 0.5)", "noise"),
    ("os.saw2ptr(440), os.saw2dpw(440), os.saw2(440), os.saw3(440), os.saw4(440), os.sawtooth(440), os.impulse",
     "noise"),
    ("os.pulsetrainN(3, 440, 0.3), os.pulsetrain(440, 0.3), os.squareN(3, 440), os.square(440)", "noise"),
    ("os.imptrainN(3, 440), os.imptrain(440), os.triangleN(3, 440), os.triangle(440)", "noise"),
    (r"\(f).(os.osc(440 + 100 * f), os.saw2(440 + 100 * f), os.sawN(3, 440 + 100 * f), "
     r"os.square(440 + 100 * f), os.triangle(440 + 100 * f))", "noise"),
    ("os.oscb(440), os.oscrq(440), os.oscrs(440), os.oscrc(440), os.oscrp(440, 0.3), os.oscr(440)", "noise"),
    ("os.oscs(440), os.quadosc(440), os.oscwc(440), os.oscws(440), os.oscq(440), os.oscw(440)", "noise"),
    # ---------------------------------------------------------------- noises
    ("no.noise, no.noise_env(777).noise, no.noise_env(3).noises(3, 1), no.noise_env(5).multirandom(2), "
     "no.noise_env(5).multinoise(2), no.noise_env(5).RANDMAX", "zeros"),
    ("no.multirandom(3), no.multinoise(3), no.noises(4, 2)", "zeros"),
    ("no.pink_filter, no.pink_noise, no.pink_noise_m, no.pink_noise_vm(4)", "noise"),
    ("no.lfnoise0(100), no.lfnoiseN(3, 100), no.lfnoise(100)", "zeros"),
    ("no.sparse_noise(100), no.velvet_noise(0.5, 100), no.gnoise(4), no.gnoisem(4)", "zeros"),
    # ---------------------------------------------------------------- envelopes
    ("en.adsr(0.01, 0.1, 0.5, 0.2, ba.pulsen(1000, 3000))", "zeros"),
    ("en.ar(0.002, 0.01, ba.pulsen(300, 1000)), en.asr(0.002, 0.6, 0.01, ba.pulsen(300, 1000)), "
     "en.adsr(0.002, 0.005, 0.5, 0.01, ba.pulsen(400, 1500))", "zeros"),
    (r"\(g).(en.ar(0.001, 0.002, g > 0.5), en.asr(0.001, 0.7, 0.002, g > 0.5), "
     r"en.adsr(0.001, 0.001, 0.5, 0.002, g > 0.5))", "noise"),
    (r"\(x).(en.smoothEnvelope(0.01, x))", "noise"),
    ("en.asrfe(0.01, 0.6, 0.02, 0.1, ba.pulsen(300, 1000)), en.arfe(0.01, 0.02, 0.1, ba.pulsen(300, 1000)), "
     "en.are(0.01, 0.02, ba.pulsen(300, 1000)), en.asre(0.01, 0.6, 0.02, ba.pulsen(300, 1000))", "zeros"),
    ("en.adsre(0.005, 0.01, 0.4, 0.02, ba.pulsen(800, 2000)), "
     "en.ahdsre(0.003, 0.005, 0.01, 0.4, 0.02, ba.pulsen(1000, 2000))", "zeros"),
    # ---------------------------------------------------------------- reverbs
    ("re.mono_freeverb(0.5, 0.5, 0.5, 23)", "noise"),
    ("re.stereo_freeverb(0.5, 0.5, 0.5, 23)", "noise"),
    ("re.jcrev, re.satrev", "noise"),
    ("re.zita_rev1_stereo(20, 200, 6000, 3, 2, 48000)", "noise", 24000),   # long enough for the feedback
    ("re.zita_rev1_ambi(3, 20, 200, 6000, 3, 2, 48000)", "noise", 24000),
    ("re.zita_rev_fdn(200, 6000, 3, 2, 48000), re.zita_in_delay(20), re.zita_distrib2(8)", "noise"),
]
CASES = [c if len(c) == 3 else (*c, N) for c in CASES]

# A few cases again in single precision (the float32 definitions of ma.EPSILON etc.).
FLOAT_CASES = [
    ("ma.EPSILON, ma.MIN, ma.MAX, ma.INFINITY, ma.tanh, ba.linear2db(abs(_))", "noise", N),
    ("fi.lowpass(3, 1000), fi.svf.bell(1000, 2, 6), fi.peak_eq(6, 1000, 100)", "noise", N),
    ("os.osc(440), os.sawN(3, 440), no.pink_noise, en.adsr(0.01, 0.1, 0.5, 0.2, ba.pulsen(1000, 3000))",
     "zeros", N),
    ("re.stereo_freeverb(0.5, 0.5, 0.5, 23)", "noise", N),
]


def _program(expr: str) -> str:
    return 'import("stdfaust.lib");\nprocess = %s;\n' % expr


def _render(dsp, kind: str, n: int = N) -> np.ndarray:
    x = make_input(kind, dsp.inputs, n) if dsp.inputs else None
    return np.asarray(dsp.render(x, n=n), dtype=np.float64)


def _compare(expr: str, kind: str, n: int, double: bool, tol: float) -> None:
    src = _program(expr)
    mine = diffaust.compile(src, double=double, bundled_only=True)
    y = _render(mine, kind, n)
    assert np.all(np.isfinite(y)), "the bundled library gives non-finite samples"
    if not os.path.isfile(SYSTEM_STDFAUST):
        pytest.skip("Faust's libraries are not installed in /usr/share/faust")
    ref = diffaust.compile(src, double=double)
    assert (mine.inputs, mine.outputs) == (ref.inputs, ref.outputs)
    yr = _render(ref, kind, n)
    err = np.abs(y - yr) - tol * (1 + np.abs(yr))
    if err.size and err.max() > 0:
        ch, k = np.unravel_index(int(np.argmax(err)), err.shape)
        pytest.fail(f"output {ch}, sample {k}: bundled {y[ch, k]!r}, Faust libraries {yr[ch, k]!r}")


@pytest.mark.parametrize("expr,kind,n", CASES, ids=[c[0][:60] for c in CASES])
def test_bundled_matches_installed_faust_libraries(expr, kind, n):
    _compare(expr, kind, n, double=True, tol=TOL)


@pytest.mark.parametrize("expr,kind,n", FLOAT_CASES, ids=[c[0][:60] for c in FLOAT_CASES])
def test_bundled_matches_installed_faust_libraries_float32(expr, kind, n):
    _compare(expr, kind, n, double=False, tol=1e-5)


# ---------------------------------------------------------------- coverage of the table


def _library_prefixes() -> dict:
    """{file name: environment name} of the bundled stdfaust.lib."""
    std = parse_file(os.path.join(LIB_DIR, "stdfaust.lib"))
    return {s.body.path: s.name for s in std.statements
            if isinstance(s, A.Definition) and isinstance(s.body, A.Library)}


def _public_names(path: str) -> list[str]:
    """Top-level definitions of a .lib file (its `x = library(...)` imports aside), and
    `env.member` for the members of a top-level environment (`env(args).member` when
    the environment takes arguments, as `no.noise_env(seed)`)."""
    out: list[str] = []
    for s in parse_file(path).statements:
        if not isinstance(s, A.Definition) or isinstance(s.body, A.Library):
            continue
        if s.name not in out:
            out.append(s.name)
        if isinstance(s.body, A.Environment):
            head = s.name if s.params is None else s.name + "(...)"
            for m in s.body.defs:
                if isinstance(m, A.Definition) and f"{head}.{m.name}" not in out:
                    out.append(f"{head}.{m.name}")
    return out


def _name_pattern(env: str, name: str) -> str:
    """A regex finding `env.name` as a whole name; `(...)` stands for one argument list."""
    parts = [re.escape(p) for p in f"{env}.{name}".split("(...)")]
    return r"(?<![\w.])" + r"\([^()]*\)".join(parts) + r"(?![\w])"


def test_every_bundled_lib_parses_and_is_in_stdfaust():
    files = sorted(f for f in os.listdir(LIB_DIR) if f.endswith(".lib"))
    for f in files:
        assert parse_file(os.path.join(LIB_DIR, f)).statements, f
    prefixes = _library_prefixes()
    assert sorted(prefixes) == [f for f in files if f != "stdfaust.lib"]
    for env in ("an", "ba", "de", "en", "fi", "ma", "no", "os", "pl", "re", "ro", "si"):
        assert env in prefixes.values(), env


def test_every_public_definition_has_a_case():
    text = "\n".join(c[0] for c in CASES)
    missing = []
    for f, env in sorted(_library_prefixes().items()):
        names = _public_names(os.path.join(LIB_DIR, f))
        assert names, f
        for name in names:
            if not re.search(_name_pattern(env, name), text):
                missing.append(f"{env}.{name}")
    assert not missing, f"bundled functions without a test case: {', '.join(missing)}"


# ---------------------------------------------------------------- no Faust installed


def test_bundled_lib_used_when_no_faust_is_installed(monkeypatch):
    """Without any installed Faust library, `import("stdfaust.lib")` falls back on ours."""
    monkeypatch.setattr(loader, "SYSTEM_LIB_DIRS", ())
    monkeypatch.delenv("FAUST_LIB_PATH", raising=False)
    assert loader.resolve("stdfaust.lib", None, None) == os.path.join(LIB_DIR, "stdfaust.lib")
    src = _program("fi.lowpass(3, 1000), os.osc(440), en.adsr(0.01, 0.1, 0.5, 0.2, ba.pulsen(1000, 3000)), "
                   "re.mono_freeverb(0.5, 0.5, 0.5, 0), no.noise, si.smoo, de.fdelay(100, 10.5), ro.cross(2), "
                   "an.amp_follower(0.1), ma.tanh, pl.tablesize")
    y = _render(diffaust.compile(src, double=True, use_cache=False), "noise")
    yb = _render(diffaust.compile(src, double=True, bundled_only=True), "noise")
    np.testing.assert_array_equal(y, yb)
