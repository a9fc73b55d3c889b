"""share_recursions: alpha-equivalent recursion groups computed once."""

from __future__ import annotations

import numpy as np

import diffaust
from diffaust.runtime.pipeline import CompileOptions, run_pipeline
from diffaust.signals.nodes import walk

# two smoothers written separately (the same box twice would already be one signal)
TWO_SMOOTHERS = ('g = hslider("g", 0.5, 0, 1, 0.01); sm1 = *(0.001) : + ~ *(0.999); sm2 = *(0.001) : + ~ *(0.999);'
                 'process = _ * (g : sm1), _ * (g : sm2) + (g : sm1 : sm2);')


def _groups(src: str, until: str) -> set:
    st = run_pipeline(src, "<string>", CompileOptions(), until=until)
    return {n for n in walk(st.outputs) if n.op == "rec"}


def test_equal_recursions_become_one_group():
    before = _groups(TWO_SMOOTHERS, "propagate_box")
    after = _groups(TWO_SMOOTHERS, "share_recursions")
    assert len(before) == 3 and len(after) == 2  # g:sm1 and g:sm2 are one; sm2 of it another


def test_nested_recursions_equal_up_to_names():
    src = ("f1 = + ~ (_ <: (+ ~ *(0.5)) * 0.25); f2 = + ~ (_ <: (+ ~ *(0.5)) * 0.25);"
           "process = _ <: f1, f2 :> _;")
    assert len(_groups(src, "propagate_box")) == 4
    assert len(_groups(src, "share_recursions")) == 2


def test_different_recursions_stay_apart():
    src = "process = _ <: (+ ~ *(0.5)), (+ ~ *(0.25));"
    assert len(_groups(src, "share_recursions")) == 2


def test_sharing_keeps_the_output():
    x = np.random.default_rng(1).uniform(-1, 1, (1, 2000))
    y = diffaust.compile(TWO_SMOOTHERS, double=True, use_cache=False).render(np.vstack([x, x]))
    s = np.zeros(2000)
    s2 = np.zeros(2000)
    prev = prev2 = 0.0
    for n in range(2000):  # y = 0.001·x + 0.999·y'
        prev = 0.001 * 0.5 + 0.999 * prev
        prev2 = 0.001 * prev + 0.999 * prev2
        s[n], s2[n] = prev, prev2
    np.testing.assert_allclose(y[0], x[0] * s, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y[1], x[0] * s + s2, rtol=1e-9, atol=1e-12)
