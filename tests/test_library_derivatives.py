"""Issue 8, point 3: derivatives of the standard library's functions over long signals.

Every case of tests/library_cases.py (filters, delays, oscillators, envelopes, compressors,
reverbs, virtual-analog filters...) against central finite differences of the real Faust
compiler's double-precision output over 48,000 samples: max |ad - fd| within 1e-5 of the
finite difference's peak (`slow`, `reference`).  A handful of the most important ones (a
resonant lowpass, a fractional delay, oscillator frequencies, an ADSR, a compressor, the Moog
filter, Zita's T60 and damping) run by default, also over 48,000 samples (`reference`; about
12 s from cold caches on 2 cores).  The table of results is docs/LIBRARY-DERIVATIVES.md
(``python tests/library_cases.py`` remakes it).
"""

import os
import re

import pytest

import library_cases as L

FAST = [c for c in L.CASES if c.fast]


def _check(case, n):
    rows = L.run_case(case, n)
    assert {r["param"] for r in rows} == set(case.labels), rows
    for r in rows:
        where = f"{case.func} d/d{r['param']}: error {r['error']:.3g} of peak {r['peak']:.3g} " \
                f"at {r['worst']}, {r['compared']} of {n} samples compared"
        if r["expect"] == "pass":
            assert r["error"] <= L.TOL, where
            assert r["compared"] >= case.min_fraction * n, where
        elif r["expect"] == "nondiff":
            # Faust's output is piecewise constant in p: diffaust's derivative is 0 where compared
            assert r["peak"] == 0.0 and r["ad_peak"] == 0.0, where
            assert r["compared"] >= case.min_fraction * n, where
        else:
            # a table read at a truncated real index (os.osc's freq): Faust's derivative is 0
            # a.e., diffaust's the table's slope by convention (tests/test_table_slope.py checks
            # it against a coarse difference); if this starts agreeing, the convention changed
            assert r["expect"] == "convention", r
            assert r["peak"] == 0.0 and r["ad_peak"] > 0.0, where
            assert r["status"] == "convention", where


@pytest.mark.reference
@pytest.mark.parametrize("case", FAST, ids=[c.func for c in FAST])
def test_library_derivatives_fast_subset(case):
    _check(case, L.N)


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("case", L.CASES, ids=[c.func for c in L.CASES])
def test_library_derivatives_48000_samples(case):
    _check(case, L.N)


@pytest.mark.reference
def test_a_wrong_rule_fails_the_check(monkeypatch, tmp_path):
    """The check can fail: with tan's derivative rule off by 2e-5 (relative), the resonant
    lowpass's d/dfc must fail it, the other two parameters (no tan on their path) pass."""
    from diffaust.primitives.table import PRIMITIVES
    from diffaust.signals import build as B

    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(tmp_path))  # no compiled code from the right rule
    tan = PRIMITIVES["tan"]
    right = tan.jvp
    object.__setattr__(tan, "jvp", lambda args, dots: B.mul(right(args, dots), B.const(1 + 2e-5)))
    try:
        rows = L.run_case(next(c for c in L.CASES if c.func == "fi.resonlp"), L.N)
    finally:
        object.__setattr__(tan, "jvp", right)
    status = {r["param"]: r["status"] for r in rows}
    assert status == {"fc": "FAIL", "q": "pass", "gain": "pass"}, rows
    assert 1.5e-5 < next(r["error"] for r in rows if r["param"] == "fc") < 2.5e-5, rows


# ------------------------------------------------------------------ the cases themselves

SLIDER = re.compile(r'hslider\("([^"\[]+)\[diff:1\]", ([-0-9.e]+), ([-0-9.e]+), ([-0-9.e]+), ([-0-9.e]+)\)')


@pytest.mark.parametrize("case", L.CASES, ids=[c.func for c in L.CASES])
def test_case_is_well_formed(case):
    """1-3 [diff:1] sliders, unique labels, inits inside their ranges, steps and
    expectations naming real labels, the function used by the program."""
    sliders = SLIDER.findall(case.body)
    labels = [s[0] for s in sliders]
    assert 1 <= len(labels) <= 3 and labels == case.labels, case.body
    assert len(set(labels)) == len(labels), labels
    for label, init, lo, hi, _ in sliders:
        assert float(lo) < float(init) < float(hi), (label, init, lo, hi)
    assert all(0 < r < 1e-3 for r in [case.rel_step, *case.steps.values()]), case.steps
    assert set(case.expect) <= set(labels), case.expect
    assert case.mask in ("prefix", "pointwise", "kinks")
    name = case.func.split("(")[0]
    assert name in case.body, (name, case.body)
    assert case.source.startswith('import("stdfaust.lib");')


def test_cases_are_distinct():
    assert len({c.func for c in L.CASES}) == len(L.CASES)
    assert len({c.body for c in L.CASES}) == len(L.CASES)
    assert FAST and all(c.func in {f.func for f in L.CASES} for c in FAST)


def test_table_lists_every_case():
    """docs/LIBRARY-DERIVATIVES.md has one row per (function, parameter) of the cases:
    remake it (python tests/library_cases.py) when a case is added or changed."""
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "LIBRARY-DERIVATIVES.md")
    with open(path) as f:
        rows = re.findall(r"^\| `([^`]+)` \| ([^ |]+) \|", f.read(), re.M)
    want = {(c.func, label) for c in L.CASES for label in c.labels}
    assert set(rows) == want, (sorted(want - set(rows)), sorted(set(rows) - want))


# ------------------------------------------------------------------ an ill-conditioned one

@pytest.mark.reference
def test_second_order_adaa_against_long_double_model():
    """aa.arctan2 (second-order antiderivative antialiasing) is too ill-conditioned for a
    double-precision finite difference to reach 1e-5 (its quotient by (x - x')^2 loses
    ~2e-11 to cancellation).  Its formula (aanl.lib) evaluated in 80-bit long double gives
    a finite difference good to ~1e-9: diffaust's derivative must match it."""
    import numpy as np

    import diffaust

    LD = np.longdouble
    if np.finfo(LD).eps > 1e-18:
        pytest.skip("no extended long double on this platform")
    n, g0 = 48000, 2.1
    src = ('import("stdfaust.lib");\n'
           f'g = hslider("drive[diff:1]", {g0}, 0.1, 10, 0.0001);\nprocess = *(g) : aa.arctan2;\n')
    x = np.random.default_rng(7).uniform(-0.9, 0.9, (1, n))
    y, dy = diffaust.compile(src, diff=True, double=True).render_jvp(x, n=n)

    eps = LD(1) / LD(44100)                            # EPS = 1.0 / ma.SR

    def F1(v):
        return v * np.arctan(v) - LD(0.5) * np.log(v * v + 1)

    def F2(v):
        return LD(0.5) * v * v * np.arctan(v) - v / 2 + LD(0.5) * np.arctan(v)

    def T(a, b):                                       # ADAA2's T1 (a = x) and T2 (a = x'')
        dd = (a - b) ** 2
        safe = (a * (F1(a) - F1(b)) - (F2(a) - F2(b))) / np.where(dd == 0, 1, dd)
        return np.where(dd <= eps, LD(0.5) * np.arctan((a + 2 * b) / 3), safe)

    xs = x[0].astype(LD)

    def Y(g):
        u = g * xs
        u1 = np.concatenate([[LD(0)], u[:-1]])
        u2 = np.concatenate([[LD(0), LD(0)], u[:-2]])
        return T(u, u1) + T(u2, u1)

    g, h = LD(g0), LD(1e-6)
    assert np.max(np.abs(Y(g) - y[0])) < 1e-9       # the model is the program
    fd = (Y(g + h) - Y(g - h)) / (2 * h)
    # no branch of the model flips within the step (else the difference is not a derivative)
    u = g * xs
    du = np.abs(np.diff(u.astype(float))) ** 2
    assert np.min(np.abs(du - float(eps))) > 1e-9
    err = float(np.max(np.abs(fd - dy[0, 0]))) / float(np.max(np.abs(fd)))
    assert err < 1e-6, err
