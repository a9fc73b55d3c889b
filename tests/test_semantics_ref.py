"""Measured Faust semantics, pinned: every fact of docs/SEMANTICS.md as a test.

Each case runs a tiny program through the real Faust compiler (tests/faustref.py)
and checks the exact numbers; when ``diffaust.compile`` exists the same program
is rendered by diffaust and checked against the same numbers (or against
``diffaust_expect`` where diffaust deliberately differs, e.g. constant folding).

Inputs: ``"ones"`` (every input channel is 1.0, so ``_*k`` is a run-time value
equal to k that Faust cannot constant-fold), ``"impulse"``, or an explicit array.
Expected values are given per output channel, either one number (the same for
all n samples) or a list of n numbers. NaN == NaN and -0.0 == 0.0 here.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pytest

import faustref
from conftest import diffaust_compile_or_none

pytestmark = pytest.mark.reference

INT_MIN = -2147483648
NAN = float("nan")
PI = math.pi


@dataclass
class Fact:
    id: str
    source: str
    expect: list
    x: object = "ones"
    n: int = 2
    double: bool = True
    params: dict = field(default_factory=dict)
    sample_rate: int = 44100
    # None: diffaust must give `expect`; a list: diffaust must give that instead;
    # a string: diffaust is not checked on this case, for the reason given.
    diffaust_expect: object = None


FACTS = [
    # ------------------------------------------------------------ ^ and pow
    Fact("pow_int_int_is_int",
         "process = int(_*2) ^ int(_*3), (int(_*2) ^ int(_*3)) + 2147483647, "
         "pow(int(_*2), int(_*3)) + 2147483647;",
         [8, -2147483641, -2147483641]),
    Fact("pow_int_small_const_exponent_multiplies_and_wraps",
         "process = int(_*3)^2 + 2147483647, int(_*46341)^2, int(_*3)^8, int(_*3)^0, int(_*3)^1;",
         [-2147483640, -2147479015, 6561, 1, 3]),
    Fact("pow_int_large_exponent_converts_pow_result",
         "process = int(_*3)^9, int(_*2)^31, int(_*2)^32, int(_*10)^10;",
         [19683, INT_MIN, INT_MIN, INT_MIN]),
    Fact("pow_int_negative_exponent",
         "process = int(_*2)^(-1), int(_*2)^(-2), int(_*2)^int(_*-1), 2^(-1), (2^3) + 2147483647;",
         [0.5, 0.25, 0, 0.5, -2147483641]),
    Fact("pow_real_edge_cases",
         "process = (_*-2.0)^2, (_*-2.0)^3, (_*-8)^(1/3), (_*-2)^0.5, int(_*0)^int(_*0), pow(_-1, _*-1);",
         [4, -8, NAN, NAN, 1, math.inf]),
    # ------------------------------------------------------------ min max abs
    Fact("min_max_abs_on_ints_are_int",
         "process = min(int(_*2), int(_*3)) + 2147483647, max(int(_*2), int(_*3)) + 2147483647, "
         "abs(int(_*-3)) + 2147483647, abs(int(_*-2147483648.0));",
         [-2147483647, -2147483646, -2147483646, INT_MIN]),
    Fact("min_max_int_and_real_are_real",
         "process = min(int(_*2), _*3.5) + 2147483647, max(int(_*2), _*0.5), abs(_*-2.5);",
         [2147483649, 2, 2.5]),
    # ------------------------------------------------------------ bitwise
    Fact("bitwise_on_reals_truncates_operands",
         "process = (_*2.7) << 1, (_*5.5) & 3, (_*-2.5) >> 1, (_*6.9) | 1, (_*6.9) xor 3, "
         "(_*-7.5) & 255, (_*5.5) & (_*3.7), ((_*2.5) | 0) + 2147483647;",
         [4, 1, -1, 7, 5, 249, 1, -2147483647]),
    Fact("bitwise_on_negative_ints",
         "process = int(_*-6) & 3, int(_*-6) | 1, int(_*-6) xor 3, xor(int(_*-6), 3), int(_*-6) << 2, int(_*-7) >> 1;",
         [2, -5, -7, -7, -24, -4]),
    Fact("shift_by_32_or_more_constant_folded",
         "process = 1 << 32, 1 << 33;",
         [1, 2],
         diffaust_expect="a shift count >= 32 is undefined behaviour in Faust's C++ (run time gives 0 "
                         "at -O1, the constant folder masks the count): diffaust defines its own"),
    # ------------------------------------------------------------ rounding
    Fact("rint_ties_to_even_floor_ceil",
         "process = rint(_*2.5), rint(_*3.5), rint(_*-2.5), rint(_*-0.5), floor(_*-2.5), ceil(_*-2.5), "
         "floor(_*2.5) + 2147483647, rint(int(_*7)) + 2147483647;",
         [2, 4, -2, -0.0, -3, -2, 2147483649, 2147483654]),
    Fact("round_ties_away_from_zero",
         "process = round(_*2.5), round(_*-2.5), round(_*0.5), round(_*-0.5), round(_*1.49), round(_*-1.51);",
         [3, -3, 1, -1, 1, -2]),
    # ------------------------------------------------------------ % fmod remainder
    Fact("remainder_rounds_quotient_to_nearest_even",
         "process = remainder(_*5.5, 2), remainder(_*7, 2), remainder(_*-5.5, 2), remainder(_*5, 2), "
         "remainder(_*-7, 2), remainder(_*6.5, -2), remainder(int(_*7), int(_*2)) + 2147483647;",
         [-0.5, -1, 0.5, 1, 1, 0.5, 2147483646]),
    Fact("fmod_sign_of_dividend_and_real_on_ints",
         "process = fmod(_*-5.5, 2), fmod(_*5.5, -2), fmod(_*-5.5, -2), fmod(int(_*-7), int(_*3)), "
         "fmod(int(_*7), int(_*4)) + 2147483647;",
         [-1.5, 1.5, -1.5, -1, 2147483650]),
    Fact("mod_mixed_int_real_is_fmod_int_int_is_int",
         "process = int(_*7) % (_*2.5), (_*7.5) % int(_*2), int(_*-7) % (_*2.5), "
         "(int(_*7) % int(_*4)) + 2147483647;",
         [2, 1.5, -2, -2147483646]),
    Fact("mod_constant_folding_truncates",
         "process = 7 % 2.5, -5.5 % 2, 7.5 % 2.0;",
         [1, -1, 1],
         diffaust_expect=[2, -1.5, 1.5]),
    Fact("fmod_by_runtime_zero_is_nan",
         'process = fmod(_, hslider("z", 0, 0, 1, 0.1)), _ % hslider("z2", 0, 0, 1, 0.1);',
         [NAN, NAN]),
    # ------------------------------------------------------------ atan2, x*0
    Fact("atan2_zeros_and_signs",
         "process = atan2(_*0, _*-1), atan2(_*-1, _*-1), atan2(_, _*0);",
         [PI, -3 * PI / 4, PI / 2]),
    Fact("atan2_of_runtime_zeros",
         'process = atan2(hslider("y", 0, -1, 1, 0.1), hslider("x", 0, -1, 1, 0.1)), '
         'atan2(hslider("y2", 0, -1, 1, 0.1), -1);',
         [0.0, -PI], params={"y2": -0.0}),
    Fact("times_zero_is_simplified_to_zero",
         "process = _*0, 0*_, _*0.0, atan2(_*0, _*0);",
         [0, 0, 0, 0], x=np.array([[math.inf, math.nan]] * 5)),
    # ------------------------------------------------------------ select2/3
    Fact("select3_real_selector_compares_exactly",
         "process = select3(_*-1, 10, 20, 30), select3(_*3, 10, 20, 30), select3(_*1.7, 10, 20, 30), "
         "select3(_*0.5, 10, 20, 30), select3(_*1.0, 10, 20, 30), select3(_*0, 10, 20, 30);",
         [30, 30, 30, 30, 20, 10]),
    Fact("select3_int_selector_out_of_range_picks_third",
         "process = select3(int(_*1.7), 10, 20, 30), select3(int(_*-1), 10, 20, 30), "
         "select3(int(_*5), 10, 20, 30), select3(3, 10, 20, 30), select3(-1, 10, 20, 30);",
         [20, 30, 30, 30, 30]),
    Fact("select2_truncates_selector_nan_picks_second",
         "process = select2(_*0.5, 10, 20), select2(_*-0.9, 10, 20), select2(sqrt(_*-1), 10, 20);",
         [10, 10, 20]),
    # ------------------------------------------------------------ prefix, delays
    Fact("prefix_first_sample_then_delayed_input",
         "process = prefix(7), prefix(0.5, _*2);",
         [[7, 1, 0, 0], [0.5, 2, 0, 0]], x="impulse", n=4),
    Fact("delay_zero_and_one_sample_forms",
         "process = _@0, _@1, _', _'', mem, mem(_), _@(1+1);",
         [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
         x="impulse", n=4),
    Fact("variable_delay_truncates_amount",
         'process = _ @ hslider("d", 2, 0, 4, 1);',
         [[0, 0, 1, 0, 0]], x="impulse", n=5, params={"d": 2.7}),
    Fact("delay_amount_above_minus_one_truncates_to_zero",
         'process = @(-0.5), @(-0.999), @(hslider("d", 0, -0.5, 3, 0.1)), '
         '@(max(0.0000001, int(hslider("x", 2, 0, 10, 1))) - 1);',
         [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], x="impulse", n=4, params={"d": -0.3}),
    Fact("delay_bounded_by_bitwise_ops",
         'd = int(hslider("d", 3, 0, 10, 1)); process = _ <: _@(d & 15), _@(d >> 1), _@(d << 2), _@((d | 1) & 7);',
         [[1.0 if k == 3 else 0.0 for k in range(14)], [1.0 if k == 1 else 0.0 for k in range(14)],
          [1.0 if k == 12 else 0.0 for k in range(14)], [1.0 if k == 3 else 0.0 for k in range(14)]],
         x="impulse", n=14),
    Fact("delay_masked_from_an_unbounded_signal",
         "process(x) = x@(int(x*100) & 7);",
         [[0, 0.5, 0.01, 0.01, 0.01, 0.5]], x=np.array([[0.5, 0.01, 0.01, 0.02, 0.5, 0.09]]), n=6),
    Fact("audio_input_range_bounds_delay",
         "process(s, s2) = s@(int(abs(s2)*10)), s@(int(s2*5 + 5));",
         [[1.0 if k == 3 else 0.0 for k in range(8)], [1.0 if k == 6 else 0.0 for k in range(8)]],
         x=np.array([[1.0] + [0.0] * 7, [0.35] * 8]), n=8),
    Fact("variable_delay_beyond_max_wraps_in_ring_buffer",
         'process = _ @ hslider("d", 2, 0, 100, 1);',
         [[1.0 if k == 72 else 0.0 for k in range(200)]], x="impulse", n=200, params={"d": 200},
         diffaust_expect="beyond the slider's max Faust reads its power-of-two ring buffer modulo its "
                         "size (128 here); short lines (max <= 16) read out of bounds (undefined): "
                         "diffaust defines its own behaviour"),
    # ------------------------------------------------------------ tables
    Fact("rwtable_type_follows_initial_content",
         "process = rwtable(4, 0, int(_*2), _*1.24, int(_*2)), rwtable(waveform{1,2,3,4}, int(_*3), _*2.7, int(_*3)), "
         "rwtable(4, 0.0, int(_*2), int(_*3), int(_*2)), rwtable(waveform{1.0,2,3,4}, int(_*1), _*2.7, int(_*1)), "
         "rwtable(4, +(1)~_, int(_*2), _*-1.5, int(_*2));",
         [1, 2, 3, 2.7, -1]),
    # ------------------------------------------------------------ int conversions
    Fact("int_of_out_of_range_or_nan_is_int_min",
         "process = int(_*3e9), int(_*-3e9), int(sqrt(_*-1)), int(_*1e30), int(_*2147483520), int(_*-0.5), "
         "int(3e9), int(log(_*0));",
         [INT_MIN, INT_MIN, INT_MIN, INT_MIN, 2147483520, 0, INT_MIN, INT_MIN]),
    Fact("int_overflow_wraps_in_mul_and_add",
         "process = int(_*65536) * int(_*65536), int(_*100000) * int(_*100000), int(_*1103515245) * 12345, "
         "int(_*2147483647) + 1, 100000 * 100000, 1103515245 * 12345;",
         [0, 1410065408, -740563387, INT_MIN, 1410065408, -740563387]),
    Fact("comparisons_of_reals_are_int",
         "process = ((_*0.5) < 1) + 2147483647, (_ > 0.5) / 2, sqrt(_*-1) < 1, sqrt(_*-1) != sqrt(_*-1), "
         "(_*0.5 == 0.5) * 3;",
         [INT_MIN, 0.5, 0, 1, 3]),
    Fact("float_of_int_double",
         "process = float(int(_*3)) / 2, float(int(_*16777217)) - 16777216, float(2147483647), "
         "float(int(_*7)) + 2147483647;",
         [1.5, 1, 2147483647, 2147483654]),
    Fact("float_mode_rounds_real_literals_and_float_of_int",
         "process = int(_*16777217) - 16777216, float(int(_*16777219)) - 16777216, float(2147483647);",
         [0, 4, 2147483648], double=False),
    Fact("stdfaust_sample_rate_is_real",
         'import("stdfaust.lib"); process = ma.SR, ma.SR/7, ma.SR*ma.SR*2;',
         [48000, 48000 / 7, 4608000000], sample_rate=48000),
]

REJECTED = [
    # (id, source, text expected in faust's error message)
    ("round_is_not_a_primitive_in_2_54_9", "process = round(_);", "undefined symbol : round"),
    ("fmod_by_constant_zero", "process = fmod(_, 0);", "% by 0"),
    ("mod_by_constant_zero", "process = _ % 0;", "% by 0"),
    ("prefix_needs_init_time_first_argument",
     'process = prefix(hslider("a", 0.25, 0, 1, 0.01), _);', "checkInit failed"),
]


def _expected(spec, n: int) -> np.ndarray:
    rows = [np.full(n, float(v)) if np.isscalar(v) else np.asarray(v, float) for v in spec]
    return np.array(rows)


def _input(fact: Fact, inputs: int) -> np.ndarray:
    if isinstance(fact.x, str) and fact.x == "ones":
        return np.ones((inputs, fact.n))
    return faustref.make_input(fact.x, inputs, fact.n)


def _check(got: np.ndarray, want: np.ndarray, what: str, double: bool) -> None:
    if not double:
        want = want.astype(np.float32).astype(np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    if double:  # libm results (atan2 of pi multiples...) may differ in the last bit
        bad &= ~np.isclose(got, want, rtol=4e-16, atol=0)
    assert not bad.any(), f"{what}: got\n{got}\nexpected\n{want}"


@pytest.mark.parametrize("fact", FACTS, ids=[f.id for f in FACTS])
def test_reference_fact(faust_ref, fact: Fact):
    info = faust_ref.reference_info(fact.source, double=fact.double)
    x = _input(fact, info["inputs"])
    got = faust_ref.render_reference(fact.source, n=fact.n, x=x, params=fact.params,
                                     double=fact.double, sample_rate=fact.sample_rate)
    _check(got, _expected(fact.expect, fact.n), "faust", fact.double)


@pytest.mark.parametrize("fact", FACTS, ids=[f.id for f in FACTS])
def test_diffaust_fact(faust_ref, fact: Fact):
    compile_ = diffaust_compile_or_none()
    if compile_ is None:
        pytest.skip("diffaust.compile is not available yet (runtime missing)")
    if isinstance(fact.diffaust_expect, str):
        pytest.skip(fact.diffaust_expect)
    want = fact.expect if fact.diffaust_expect is None else fact.diffaust_expect
    info = faust_ref.reference_info(fact.source, double=fact.double)
    dsp = compile_(fact.source, double=fact.double, sample_rate=fact.sample_rate)
    x = _input(fact, info["inputs"]) if info["inputs"] else None
    if x is not None and not fact.double:
        x = x.astype(np.float32)
    got = np.asarray(dsp.render(x=x, n=fact.n, params=fact.params or None), dtype=np.float64)
    _check(got, _expected(want, fact.n), "diffaust", fact.double)


@pytest.mark.parametrize("case", REJECTED, ids=[c[0] for c in REJECTED])
def test_faust_rejects(faust_ref, case):
    _, source, message = case
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prog.dsp")
        with open(path, "w") as f:
            f.write(source + "\n")
        p = subprocess.run([faust_ref.FAUST, "-lang", "cpp", path, "-o", os.devnull],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert message in p.stderr + p.stdout
