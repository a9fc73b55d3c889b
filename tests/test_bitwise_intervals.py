"""Intervals of the integer bitwise primitives are sound (issue 13, point 1).

For any operand ranges and any int32 operands inside them, the primitive's value
(diffaust's own evaluation rule) lies in the interval its typing rule gives; a delay
bounded through `&`, `>>`, `<<`, `|` gets a line no shorter than the values reach.
"""

from __future__ import annotations

import pytest

from diffaust.primitives.table import PRIMITIVES

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

INT32 = st.integers(-2**31, 2**31 - 1)


def _range_and_value(draw, small: bool = False):
    lo_hi = st.integers(-40, 40) if small else INT32
    a, b = sorted((draw(lo_hi), draw(lo_hi)))
    return (float(a), float(b)), draw(st.integers(a, b))


@pytest.mark.parametrize("name", ["&", "|", "xor", "<<", ">>"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_value_lies_in_interval(name, data):
    prim = PRIMITIVES[name]
    small = name in ("<<", ">>")
    ra, x = _range_and_value(data.draw, small=False)
    if small:  # shift amounts: mostly in 0..31, sometimes outside
        rb, k = _range_and_value(data.draw, small=True)
    else:
        rb, k = _range_and_value(data.draw)
    lo, hi = prim.interval(ra, rb)
    v = prim.fold(("int", "int"), (x, k))
    assert lo <= v <= hi, (name, ra, rb, x, k, v, (lo, hi))


def test_mask_bounds_an_unbounded_operand():
    inf = float("inf")
    assert PRIMITIVES["&"].interval((-inf, inf), (15.0, 15.0)) == (0.0, 15.0)
    assert PRIMITIVES["&"].interval((0.0, 10.0), (0.0, 7.0)) == (0.0, 7.0)
    assert PRIMITIVES[">>"].interval((0.0, 10.0), (1.0, 1.0)) == (0.0, 5.0)
    assert PRIMITIVES["<<"].interval((0.0, 10.0), (2.0, 2.0)) == (0.0, 40.0)
    assert PRIMITIVES["|"].interval((0.0, 10.0), (1.0, 1.0)) == (0.0, 15.0)
