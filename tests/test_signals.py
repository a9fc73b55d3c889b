"""Signals: hash-consing, builders' simplifications, types (nature, rate, interval), propagation."""

import pytest

from diffaust.errors import FaustTypeError
from diffaust.runtime.pipeline import CompileOptions, run_pipeline
from diffaust.signals import build as B
from diffaust.signals.nodes import Control, const, control, input_
from diffaust.signals.printer import format_program
from diffaust.signals.types import infer_types


def sigs(src, **kw):
    return run_pipeline(src, "<string>", CompileOptions(**kw), until="propagate_box").outputs


def test_hash_consing_makes_equal_signals_identical():
    x = input_(0)
    assert B.add(x, const(1.0)) is B.add(input_(0), const(1.0))
    assert const(1) is not const(1.0)          # int and real constants differ
    assert const(0.0) is not const(-0.0)       # so do 0.0 and -0.0


def test_builders_fold_and_drop_identities():
    x = input_(0)
    assert B.add(const(2), const(3)) is const(5)
    assert B.div(const(1), const(4)) is const(0.25)        # `/` is real division
    assert B.mul(x, const(0.0)) is const(0.0)
    assert B.add(x, const(0.0)) is x
    assert B.mul(const(1.0), x) is x
    assert B.prim("select2", const(0), x, const(2.0)) is x
    assert B.delay(x, const(0)) is x
    assert B.delay(B.delay(x, const(2)), const(3)) is B.delay(x, const(5))
    assert B.prim("%", const(7), const(-3)) is const(1)       # C remainder on ints
    assert B.add(const(2147483647), const(1)) is const(-2147483648)  # 32-bit wrap


def test_natures_of_recursions_are_a_fixpoint():
    counter, real_acc = sigs("process = (+(1) ~ _), (+(0.5) ~ _);")
    t = infer_types([counter, real_acc])
    assert t.nature[counter] == "int"
    assert t.nature[real_acc] == "real"


def test_rates_and_intervals():
    g = control(Control("hslider", "/dsp/g", "g", 0.5, 0.0, 2.0, 0.01))
    e = B.mul(g, const(3.0))
    s = B.mul(e, input_(0))
    t = infer_types([s])
    assert t.rate[e] == "control" and t.rate[s] == "sample" and t.rate[const(3.0)] == "const"
    assert t.interval[e] == (0.0, 6.0)


def test_propagate_split_merge_and_partial_application():
    out = sigs("process = _ <: *(2), -(1) :> _;")
    assert len(out) == 1
    text = format_program(out)
    assert "IN[0] * 2" in text and "IN[0] - 1" in text


def test_recursion_is_printed_once_with_its_group():
    out = sigs("process = + ~ *(0.5);")
    assert "rec(" in format_program(out)


def test_unbounded_delay_is_refused():
    with pytest.raises(FaustTypeError, match="cannot bound the delay"):
        run_pipeline("process = _ @ (+(1) ~ _);", "<string>", CompileOptions())
    # an audio input is typed [-1, 1] as in Faust (issue 13, point 2): it may be -1
    with pytest.raises(FaustTypeError, match="negative delay"):
        run_pipeline("process = _ @ _;", "<string>", CompileOptions())


def test_negative_delay_is_refused():
    with pytest.raises(FaustTypeError, match="negative delay"):
        run_pipeline('process = _ @ hslider("d", 1, -4, 4, 1);', "<string>", CompileOptions())
    with pytest.raises(FaustTypeError, match="negative delay"):  # int(-1) < 0, as Faust refuses
        run_pipeline('process = _ @ hslider("d", 1, -1, 4, 1);', "<string>", CompileOptions())
    # (-1, 0] truncates to 0 toward zero: Faust accepts it (issue 13, point 7)
    run_pipeline('process = _ @ hslider("d", 1, -0.999, 4, 1);', "<string>", CompileOptions())


def test_an_output_that_is_also_a_term_of_another_sum():
    # old/rewriting/mesh.dsp: a sum that is an output and the tail of another output's chain
    # (the left-association pass absorbed it and lost the output: KeyError)
    import numpy as np

    import diffaust

    d = diffaust.compile("f = + <: _,_; process = (f, _) : (_, f);", double=True, use_cache=False)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 16))
    y = d.render(x, 16)
    np.testing.assert_array_equal(y[0], x[0] + x[1])
    np.testing.assert_array_equal(y[1], y[2])
    np.testing.assert_allclose(y[1], x[0] + x[1] + x[2], rtol=0, atol=1e-15)
