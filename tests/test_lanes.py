"""Batches in SIMD lanes (codegen/lanes.py, runtime/lanes.py): lane k of a lane instance
computes exactly what a scalar instance computes with lane k's parameters and input."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import diffaust
from diffaust.codegen.lanes import LanesUnsupported
from diffaust.errors import UsageError

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = sorted(glob.glob(os.path.join(HERE, "programs", "*.dsp")))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "examples", "*", "diff.dsp")))

LIBRARY = {
    "resonlp": """import("stdfaust.lib");
fc = hslider("fc [diff:1]", 1000, 50, 10000, 1);
q = hslider("q [diff:1]", 1, 0.5, 20, 0.01);
gain = hslider("gain [diff:1]", 1, 0, 2, 0.01);
process = fi.resonlp(fc, q, gain);""",
    "zita": """import("stdfaust.lib");
t60dc = hslider("t60dc [diff:1]", 2, 0.5, 8, 0.01);
t60m = hslider("t60m [diff:1]", 1.5, 0.5, 8, 0.01);
process = re.zita_rev1_stereo(0, 200, 6000, t60dc, t60m, 48000);""",
    # a table oscillator (uniform table, per-lane index: a gather) and a fractional delay whose
    # amount differs from lane to lane (gathers from the ring buffer)
    "osc_fdelay": """import("stdfaust.lib");
f = hslider("f [diff:1]", 440, 50, 2000, 0.1);
d = hslider("d [diff:1]", 20.3, 1, 100, 0.01);
process = os.osc(f) * 0.5 : de.fdelay(128, d);""",
    # per-lane int arithmetic: %, shifts, comparisons, select2, a real pow, a C function
    "ints": """import("stdfaust.lib");
n = hslider("n", 5, -8, 8, 1);
g = hslider("g [diff:1]", 0.7, 0.1, 2, 0.01);
c = (+(1) ~ _);
process(x) = (c % int(n)) + (c << 3 >> int(n+8)), select2(x > 0, x*g, pow(abs(x) + g, g)),
             ma.tanh(x*g) + floor(x*10*g), int(x*1e6*g);""",
    # two delay lines that no input or parameter reaches (uniform: one copy for every lane),
    # interleaved as a line group, next to per-lane ones
    "uniform_lines": """g = hslider("g [diff:1]", 0.5, 0, 1, 0.01);
c = (+(1) ~ _) : *(0.001);
process(x) = x*g + c@100 + (c*c)@100, (x*g)@50 + (x*x)@50 + c;""",
    # reads `count`: run block by block
    "count": """g = hslider("g [diff:1]", 0.5, 0, 1, 0.01);
process(x) = x*g + fvariable(int count, <math.h>)*0.001 : +~*(0.5*g);""",
}


def _cases():
    for p in PROGRAMS:
        yield pytest.param(p, False, id=os.path.basename(p))
    for p in EXAMPLES:
        yield pytest.param(p, True, id="example-" + os.path.basename(os.path.dirname(p)))
    for name in LIBRARY:
        yield pytest.param(name, True, id="lib-" + name)


def _compile(what, diff, double):
    src = LIBRARY.get(what, what)
    return diffaust.compile(src, diff=diff, double=double, sample_rate=48000)


def _values(d, lanes, rng):
    """Per parameter, `lanes` values spread over its range (a button / checkbox: 0 or 1)."""
    out = {}
    for i, p in enumerate(d.params):
        lo, hi = float(p.min), float(p.max)
        if hi <= lo:
            out[i] = np.full(lanes, p.init)
        elif p.kind in ("button", "checkbox"):
            out[i] = rng.integers(0, 2, lanes).astype(float)
        else:
            v = rng.uniform(lo, hi, lanes)
            if p.step and p.step >= 1:
                v = np.round(v)
            out[i] = v
    return out


def _check_lanes(d, lanes, items, n, rng):
    lp = d.lanes(lanes)
    assert lp.lanes == lanes
    values = _values(d, lanes, rng)
    xs = [np.ascontiguousarray(rng.uniform(-1, 1, (d.inputs, n)).astype(d.dtype)) for _ in range(items)]
    outs = [np.full((d.total_outputs, n), np.nan, dtype=d.dtype) for _ in range(items)]
    inst = lp.instance()
    for i, v in values.items():
        inst.set_param(i, v)
    inst.compute(xs if d.inputs else None, n, outs)
    for k in range(items):
        si = d.instance()
        for i, v in values.items():
            si.set_param(i, float(v[k]))
        y = si.compute(xs[k] if d.inputs else None, n)
        # bit for bit: the same IEEE operations and C functions on the same values
        assert np.array_equal(y.view(np.uint32 if d.dtype == np.float32 else np.uint64),
                              outs[k].view(np.uint32 if d.dtype == np.float32 else np.uint64)), \
            f"lane {k} of {lanes}: max |diff| {np.nanmax(np.abs(y - outs[k]))}"


@pytest.mark.parametrize("what,diff", list(_cases()))
@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_each_lane_computes_what_a_scalar_instance_computes(what, diff, double):
    d = _compile(what, diff, double)
    rng = np.random.default_rng(abs(hash(str(what))) % 2**32)
    n = 4800 if what == "zita" else 700  # 700: three blocks of 256 and a shorter one
    _check_lanes(d, 8 if not double else 4, 8 if not double else 4, n, rng)


@pytest.mark.parametrize("lanes,items", [(3, 3), (8, 5), (2, 1)])
def test_any_width_and_a_partly_filled_group(lanes, items):
    d = _compile("osc_fdelay", True, False)
    _check_lanes(d, lanes, items, 1000, np.random.default_rng(lanes))


def test_lanes_continue_from_the_last_sample_and_reset():
    d = _compile("resonlp", True, False)
    lp = d.lanes(4)
    rng = np.random.default_rng(1)
    xs = [np.ascontiguousarray(rng.uniform(-1, 1, (1, 600)).astype(np.float32)) for _ in range(4)]
    whole = [np.empty((d.total_outputs, 600), np.float32) for _ in range(4)]
    inst = lp.instance()
    inst.set_param("fc", [300, 600, 1200, 2400])
    inst.compute(xs, 600, whole)
    inst.reset()
    inst.set_param("fc", [300, 600, 1200, 2400])
    first = [np.empty((d.total_outputs, 250), np.float32) for _ in range(4)]
    second = [np.empty((d.total_outputs, 350), np.float32) for _ in range(4)]
    inst.compute([np.ascontiguousarray(x[:, :250]) for x in xs], 250, first)
    inst.compute([np.ascontiguousarray(x[:, 250:]) for x in xs], 350, second)
    for k in range(4):
        assert np.array_equal(np.concatenate([first[k], second[k]], axis=1), whole[k])
    assert list(inst.get_param("fc")) == [300, 600, 1200, 2400]


def test_a_program_with_control_is_not_run_in_lanes():
    d = diffaust.compile('c = checkbox("on"); process = _ <: control(_ : +~*(0.5), c), _;')
    with pytest.raises(LanesUnsupported, match="control/enable"):
        d.lanes(4)
    with pytest.raises(LanesUnsupported):  # remembered, not compiled again
        d.lanes(4)


def test_bad_lane_arguments():
    d = _compile("resonlp", False, False)
    with pytest.raises(UsageError, match="lanes must be >= 2"):
        d.lanes(1)
    inst = d.lanes(2).instance()
    with pytest.raises(UsageError, match="3 values for 2 lanes"):
        inst.set_param("fc", [1, 2, 3])
    x = np.zeros((1, 10), np.float32)
    with pytest.raises(UsageError, match="C-contiguous"):
        inst.compute([x, x], 10, [np.zeros((1, 10), np.float64)] * 2)
    with pytest.raises(UsageError, match="1 to 2 items"):
        inst.compute_items([(x[None], 0)], [(x[None], 0)], [0, 0, 0], 10)
    with pytest.raises(UsageError, match="must be float32"):
        inst.compute_items([(x[None].astype(np.float64), 0)], [(x[None], 0)], [0, 0], 10)


def test_compute_items_and_packed_channels_give_what_compute_gives():
    """The batch fast path (pointers by array arithmetic; lanes without an item on zeros) and
    reverse mode's packed tape: the tape program in lanes writes, interleaved, what the
    scalar tape program writes item by item, and the adjoint reading it gives the same
    gradients (a fractional delay: the adjoint reads tape history before the buffer)."""
    src = 'import("stdfaust.lib"); process = de.fdelay(64, hslider("d [diff:1]", 7.3, 1, 60, 0.01)) : fi.lowpass(1, hslider("fc [diff:1]", 900, 100, 5000, 1));'
    d = diffaust.compile(src, sample_rate=48000)
    rev = d.reverse()
    assert rev.max_back > 0 and rev.n_tape > 0
    lanes = rev.lanes(4)
    B, n = 3, 900  # 3 items in 4 lanes
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (B, 1, n)).astype(np.float32)
    yb = rng.uniform(-1, 1, (B, 1, n)).astype(np.float32)
    dvals, fvals = np.array([3.3, 20.7, 41.9]), np.array([300.0, 1200.0, 4000.0])
    y = np.full((B, 1, n), np.nan, np.float32)
    tape = np.full(rev.tape_shape(lanes, n), np.nan, np.float32)
    vals = {"/dsp/d": dvals, "/dsp/fc": fvals}
    assert rev.forward_items(lanes, x, range(B), n, vals, y, tape)
    g = np.full((B, 1, n), np.nan, np.float32)
    acc = rev.backward_items(lanes, tape, yb, range(B), n, vals, g)
    for b in range(B):
        run = rev.forward(x[b], n, {"d": dvals[b], "fc": fvals[b]})
        assert np.array_equal(run.y, y[b])
        L, D = 4, rev.max_back
        packed = tape[:, (D * L):].reshape(rev.n_tape, n, L)[:, :, b]
        assert np.array_equal(run.tape[:, D:], packed)
        grad = rev.backward(run, yb[b])
        assert np.array_equal(grad.input, g[b])
        assert [grad.by_path[p] for p in rev.paths] == list(acc[:, b])


def test_a_program_lowered_in_chunks_is_not_run_in_lanes(monkeypatch):
    from diffaust.codegen import llvm

    monkeypatch.setattr(llvm, "CHUNK_ABOVE", 10)  # this program's loop counts as large
    d = diffaust.compile('process = _ : + ~ *(hslider("a", 0.5, 0, 0.9, 0.01)) : *(2) : +(1);', use_cache=False)
    with pytest.raises(LanesUnsupported, match="chunks"):
        d.lanes(4)
