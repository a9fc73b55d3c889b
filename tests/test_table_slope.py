"""Issue 10, point 6: table reads at a truncated real index get the table's slope.

Faust's table oscillators (os.osc = os.oscsin, os.osccos, os.hs_oscsin...) read
``rdtable(65536, wave, int(65536·phase))``: piecewise constant in the frequency, exact
derivative 0.  By convention (docs/DERIVATIVES.md, docs/SEMANTICS.md "Table reads at a
truncated real index") diffaust differentiates such a read as

    d/dp tab[G(int(x))] = (tab[G(int(x) + 1)] - tab[G(int(x))]) · dx/dp

so that an oscillator's frequency can be learnt.  The `reference` tests compare it with
central differences of the real Faust compiler's output (double precision) over a step
coarse enough that the staircase averages out (0.1 Hz: ~150 table steps at sample 2048),
where the two agree within ~0.35% of the derivative's peak; the others pin the rule's
scope (interpolated reads keep their exact derivative, integer indices keep 0, the
neighbour follows the index's wraps and clamps).
"""

import numpy as np
import pytest

import diffaust

N = 2048
STEP = 0.1  # Hz: central difference f ± 0.05
TOL = 0.01  # of the peak of the finite difference

OSC = ('import("stdfaust.lib"); process = os.osc(hslider("f[diff:1]",440,20,2000,0.1))'
       '*hslider("a[diff:1]",0.5,0,1,0.01);')


def _ad(src, label, params=None, n=N, x=None):
    d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    y, dy = d.render_jvp(x, n=n, params=params)
    k = [p.label for p in d.diff_params].index(label)
    return dy[:, k, :]


def _faust_fd(src, label, p0, h, n=N, params=None):
    from faustref import render_reference

    base = dict(params or {})
    hi = render_reference(src, n=n, params=dict(base, **{label: p0 + h / 2}), double=True)
    lo = render_reference(src, n=n, params=dict(base, **{label: p0 - h / 2}), double=True)
    return (hi - lo) / h


def _error(ad, fd):
    return float(np.abs(ad - fd).max() / np.abs(fd).max())


# ------------------------------------------------------------------ against Faust


@pytest.mark.reference
def test_os_osc_frequency_against_faust_central_difference():
    """The acceptance check of issue 10.6: os.osc(f)·a, f = 440 Hz ± 0.05, 2048 samples."""
    ad = _ad(OSC, "f")
    fd = _faust_fd(OSC, "f", 440.0, STEP)
    assert np.abs(fd).max() > 0.1  # ~0.5 · 2π · 2048/44100
    err = _error(ad, fd)
    assert err < TOL, err
    # the amplitude's derivative is exact (the oscillator itself)
    ad_a = _ad(OSC, "a")
    fd_a = _faust_fd(OSC, "a", 0.5, 0.01)
    assert _error(ad_a, fd_a) < 1e-9


@pytest.mark.reference
@pytest.mark.parametrize("osc, f0", [("os.oscsin", 1234.5), ("os.osccos", 3001.7),
                                     ("os.hs_oscsin", 777.7), ("os.hs_osccos", 1500.3)])
def test_table_oscillators_against_faust(osc, f0):
    call = f"{osc}(f, 1 - 1')" if osc.startswith("os.hs_") else f"{osc}(f)"  # reset at n = 0
    src = f'import("stdfaust.lib"); f = hslider("f[diff:1]", {f0}, 20, 5000, 0.1); process = {call};'
    ad = _ad(src, "f")
    fd = _faust_fd(src, "f", f0, STEP)
    err = _error(ad, fd)
    assert err < TOL, (osc, err)


@pytest.mark.reference
def test_wrapped_phase_index_against_faust():
    """dx7.lib's read: ma.modulo(int(phasor + offset), N): the neighbour's index goes through
    the same + and the double %."""
    src = ('import("stdfaust.lib"); f = hslider("f[diff:1]", 1234.5, 20, 5000, 0.1); N = 65536;'
           'process = rdtable(N, os.sinwaveform(N), ma.modulo(int(os.phasor(N, f) + 0.3*N), N));')
    ad = _ad(src, "f")
    fd = _faust_fd(src, "f", 1234.5, STEP)
    assert _error(ad, fd) < TOL


@pytest.mark.reference
def test_integer_counter_index_stays_zero():
    """A table read at an integer counter whose increment depends on p through int(): the
    index is genuinely integer (p moves it only in jumps), so the derivative stays 0, as
    Faust's finite difference says away from the jumps."""
    src = ('import("stdfaust.lib"); k = hslider("k[diff:1]", 2.5, 0, 8, 0.01);'
           'process = rdtable(64, os.sinwaveform(64), (+(int(k)) ~ _) % 64);')
    ad = _ad(src, "k")
    assert np.abs(ad).max() == 0.0
    fd = _faust_fd(src, "k", 2.5, 0.1)
    assert np.abs(fd).max() == 0.0
    # and one read at ba.time (no dependence on p at all) times p: only the product rule
    src2 = ('import("stdfaust.lib"); p = hslider("p[diff:1]", 0.5, 0, 1, 0.01);'
            'process = rdtable(64, os.sinwaveform(64), ba.time % 64) * p;')
    ad2 = _ad(src2, "p")
    fd2 = _faust_fd(src2, "p", 0.5, 0.01)
    assert _error(ad2, fd2) < 1e-9


# ------------------------------------------------------------------ scope of the rule (diffaust only)


def _fd(src, label, p0, h, n=N, x=None):
    plain = diffaust.compile(src, double=True, use_cache=False)
    return (plain.render(x, n=n, params={label: p0 + h / 2}) - plain.render(x, n=n, params={label: p0 - h / 2})) / h


@pytest.mark.parametrize("body", ["os.osci(f)", "ba.tabulate(1, sin, 4096, 0, 8, f/1000).lin",
                                  "ba.tabulate(1, sin, 4096, 0, 8, f/1000).cub",
                                  "it.frdtable(3, 4096, os.sinwaveform(4096), f)"])
def test_interpolated_reads_keep_their_exact_derivative(body):
    """os.osci, ba.tabulate(...).lin/.cub, it.frdtable take the fractional part of the index
    themselves: their derivative is exact, the slope convention must not add itself (it
    would double it)."""
    src = f'import("stdfaust.lib"); f = hslider("f[diff:1]", 441.73, 20, 5000, 0.01); process = {body};'
    ad = _ad(src, "f")
    fd = _fd(src, "f", 441.73, 1e-4)
    assert np.abs(fd).max() > 0
    assert _error(ad, fd) < 1e-2, body


TAB = "waveform{0.0, 1.0, 4.0, 9.0, 16.0, 25.0, 36.0, 49.0}"


@pytest.mark.parametrize("name, index, p, expected", [
    # tab[i] = i², x = 8p = 2.4: i = 2, slope tab[3] - tab[2] = 5, ẋ = 8
    ("int(x)", "int(8*p)", 0.3, 40.0),
    # a real index: the read truncates it
    ("real index", "8*p", 0.3, 40.0),
    # int(x) + c: tab[4] - tab[3] = 7
    ("offset", "int(8*p) + 1", 0.3, 56.0),
    ("offset on the left", "1 + int(8*p)", 0.3, 56.0),
    # c - int(x): the neighbour is c - (i+1): tab[4] - tab[5] = -9
    ("reflected", "7 - int(8*p)", 0.3, -72.0),
    # clamps: the neighbour's index is clamped like the index (min(8, 7) = 7), and the read
    # clamps to the last entry: no slope past the end
    ("min clamp", "min(int(8*p) + 5, 7)", 0.3, 0.0),
    ("read clamp", "int(8*p)", 0.9, 0.0),
    # % wraps the neighbour: i = 7, (7 + 1) % 8 = 0: tab[0] - tab[7] = -49
    ("% wrap", "(int(8*p) + 0) % 8", 0.9, -392.0),
    # x = 8·frac(y): the index wraps modulo 8 even without a %: i = 7, neighbour 0
    ("frac phase wraps", "int(8*(p*3 - floor(p*3)))", 0.3, -49.0 * 24),
    # the same phase not at a whole multiple of the frac: no wrap, the read clamps
    ("non-integer factor", "int(7.5*(p*3 - floor(p*3)))", 0.65, 0.0),
    # indices the rule does not look through: 0
    ("product", "int(8*p) * 1 * (1 + (p > 2))", 0.3, 0.0),
    ("comparison", "(p > 0.2) + 3", 0.3, 0.0),
])
def test_neighbour_follows_the_index(name, index, p, expected):
    src = (f'p = hslider("p[diff:1]", 0, 0, 1, 0.001); '
           f'process = {TAB}, {index} : rdtable;')
    d = diffaust.compile(src, diff=True, double=True, use_cache=False)
    dy = d.render(None, n=1, params={"p": p})
    np.testing.assert_allclose(dy[:, 0], [expected], rtol=1e-12, atol=1e-9, err_msg=name)


def test_oscillator_neighbour_wraps_at_the_last_entry():
    """os.osc's index int(65536·decimal(φ)) wraps modulo 65536: at i = 65535 the slope is
    tab[0] - tab[65535] (a clamp would give 0 there).  Start the phase just below 1."""
    src = ('import("stdfaust.lib"); f = hslider("f[diff:1]", 44099.9, 20, 50000, 0.1);'
           'process = os.osc(f);')
    ad = _ad(src, "f", n=1)
    # sample 0: phase = f/SR = 0.9999977..., x = 65535.85: i = 65535, ẋ = 65536/44100
    i = 65535
    slope = np.sin(0.0) - np.sin(2 * np.pi * i / 65536)
    np.testing.assert_allclose(ad[0, 0], slope * 65536 / 44100, rtol=1e-9)


def test_content_and_rwtable_reads_are_unchanged():
    """A constant table has no slope; a rwtable read at a truncated index keeps today's
    rule (the written signal's derivative only, no slope of the index)."""
    src = 'p = hslider("p[diff:1]", 0.3, 0, 1, 0.001); process = rdtable(4, 0.5, int((p + 1)*1.5));'
    assert np.abs(_ad(src, "p", n=8)).max() == 0.0
    src = ('p = hslider("p[diff:1]", 0.3, 0, 1, 0.001);'
           'process = rwtable(8, 0.0, (+(1) ~ _) % 8, float((+(1) ~ _) % 8) * 2, int(8*p));')
    assert np.abs(_ad(src, "p", n=64)).max() == 0.0
