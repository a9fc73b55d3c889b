"""runtime/pool.py: the native pool runs a batch's prepared lane calls as the calls themselves
would, bit for bit, pass after pass; a non-finite cotangent skips its call and is reported;
a worker asleep is woken; closing stops the threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import diffaust
from diffaust.errors import UsageError
from diffaust.runtime.lanes import lane_groups
from diffaust.runtime.pool import JOB_WORDS, NativePool

RESONLP = """import("stdfaust.lib");
process = fi.resonlp(hslider("fc [diff:1]", 1000, 50, 10000, 1), hslider("q [diff:1]", 1, 0.5, 20, 0.01), 1);"""
COUNT = """g = hslider("g [diff:1]", 0.5, 0, 1, 0.01);
process(x) = x*g + fvariable(int count, <math.h>)*0.001 : +~*(0.5*g);"""


def table(calls):
    jobs = np.zeros((len(calls), JOB_WORDS), dtype=np.int64)
    for c, row in zip(calls, jobs):
        assert c.job(row)
    return jobs


def reverse_batch(src, batch, n, block_size=None, seed=0, with_tape=False):
    """A batch's reverse-mode passes as prepared calls on fresh instances: (tape calls,
    adjoint calls, arrays written, adjoint instances[, the groups' tapes])."""
    d = diffaust.compile(src, sample_rate=48000)
    if block_size:
        d.block_size = block_size
    rev = d.reverse()
    rl = rev.lanes()
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (batch, d.inputs, n)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (batch, d.primal_outputs, n)).astype(np.float32)
    y = np.zeros((batch, d.primal_outputs, n), np.float32)
    g = np.zeros((batch, d.inputs, n), np.float32)
    groups = lane_groups(batch, rl[0].lanes)
    tape = np.zeros((len(groups),) + rev.tape_shape(rl, n), np.float32)
    vals = {p.path: np.linspace(p.min, p.max, batch + 2)[1:-1] for p in d.params}

    def values(it):
        return {k: v[it.start:it.stop] for k, v in vals.items()}

    ti = [rl[0].instance() for _ in groups]
    ai = [rl[1].instance() for _ in groups]
    fwd = [rev.forward_items(rl, x, it, n, values(it), y, tape[k], inst=ti[k], defer=True)
           for k, it in enumerate(groups)]
    bwd = [rev.backward_items(rl, tape[k], w, it, n, values(it), g, inst=ai[k], defer=True)
           for k, it in enumerate(groups)]
    return (fwd, bwd, (y, g, w), ai) + ((tape,) if with_tape else ())


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("src,block", [(RESONLP, None), (COUNT, 64)])
def test_pool_equals_the_calls(workers, src, block):
    n = 1000
    fwd, bwd, (y0, g0, _), ai0 = reverse_batch(src, 19, n, block)
    for c in fwd + bwd:
        c()
    ref = (y0.copy(), g0.copy(), np.concatenate([a.accumulators() for a in ai0], 1))
    if block:  # a program that reads `count`, longer than a block: the block driver's job
        assert fwd[0].inst._native_call(n, 0, 0, block)[0] == 1
    pool = NativePool(workers)
    try:
        for rep in range(30):  # pass after pass: the generations, the claims, the done counts
            fwd, bwd, (y, g, _), ai = reverse_batch(src, 19, n, block)
            pool.wake()
            pool.run(table(fwd))
            if rep % 10 == 5:
                time.sleep(0.01)  # the workers go to sleep between the passes
            pool.run(table(bwd))
            got = (y, g, np.concatenate([a.accumulators() for a in ai], 1))
            for a, b in zip(ref, got):
                assert np.array_equal(a, b)
    finally:
        pool.close()


def test_nonfinite_cotangent_skips_its_call():
    fwd, bwd, (y, g, w), ai = reverse_batch(RESONLP, 16, 300)
    pool = NativePool(1)
    try:
        pool.run(table(fwd))
        w[11, 0, 299] = np.inf  # item 11: the second group of 8 lanes
        g[:] = 7.0
        jobs = table(bwd)
        pool.run(jobs)
        assert jobs[0, 13] == 0 and jobs[1, 13] != 0
        assert not np.any(g[:8] == 7.0) and np.all(g[8:] == 7.0)  # the second group's call did not run
        with pytest.raises(UsageError, match="NaN or Inf"):
            bwd[1]()  # the same check on the Python path
    finally:
        pool.close()


def test_close_stops_the_workers():
    before = {t for t in threading.enumerate() if t.name == "diffaust-pool"}
    pool = NativePool(2)
    mine = [t for t in threading.enumerate() if t.name == "diffaust-pool" and t not in before]
    assert len(mine) == 2
    pool.close()
    for t in mine:
        t.join(timeout=5)
        assert not t.is_alive()


@pytest.mark.parametrize("src,block", [(RESONLP, None), (COUNT, 64)])
def test_call_plan_rebinds_to_new_arrays(src, block):
    """A CallPlan of a batch's adjoint calls, bound to other arrays of the same layout (ȳ,
    the tapes and x̄'s buffer in new memory), runs what calls prepared on those arrays run,
    bit for bit; the ȳ check follows the new ȳ."""
    from diffaust.errors import DiffaustError
    from diffaust.runtime.lanes import CallPlan, geometry

    n = 700
    fwd, bwd, (y, g, w), ai = reverse_batch(src, 19, n, block, seed=3)
    for c in fwd + bwd:
        c()
    ref = (g.copy(), np.concatenate([a.accumulators() for a in ai], 1))
    # the same passes again, planned over (tapes, ȳ, x̄), then bound to copies in new memory
    fwd2, bwd2, (y2, g2, w2), ai2, tbuf2 = reverse_batch(src, 19, n, block, seed=3, with_tape=True)
    for c in fwd2:
        c()
    plan = CallPlan.build(bwd2, (tbuf2, w2, g2))
    assert plan is not None and plan.insts == ai2
    t3, w3, g3 = tbuf2.copy(), w2.copy(), np.full_like(g2, np.nan)
    d = fwd2[0].inst.dsp  # (the tape program's: the parameters are the primal's)
    vals = {p.path: np.linspace(p.min, p.max, 19 + 2)[1:-1] for p in d.params}
    for inst, it in zip(ai2, lane_groups(19, ai2[0].lanes)):  # as backward_items sets them
        inst.reset()
        for path, v in vals.items():
            if path in inst._by_path:
                inst.set_param(path, v[it.start:it.stop])
    plan.bind((t3, w3, g3))
    plan.run()
    assert np.array_equal(g3, ref[0])
    assert np.array_equal(np.concatenate([a.accumulators() for a in ai2], 1), ref[1])
    # one run per bind: its arrays are let go after it
    with pytest.raises(DiffaustError, match="without bind"):
        plan.run()
    # the check reads the bound ȳ
    w3[4, 0, 9] = np.inf
    plan.bind((t3, w3, g3))
    with pytest.raises(UsageError, match="y_bar"):
        plan.run()
    # another layout: an internal error, never pointers into the wrong place
    with pytest.raises(DiffaustError, match="another layout"):
        plan.bind((t3, w3[:, :, :-1], g3))
    assert geometry((t3, w3, g3)) == geometry((tbuf2, w2, g2))


def test_call_plan_refuses_ambiguous_slots():
    """A pointer inside two slots (overlapping arrays) cannot be laid out again: no plan."""
    from diffaust.runtime.lanes import CallPlan

    fwd, bwd, (y, g, w), ai, tbuf = reverse_batch(RESONLP, 16, 200, with_tape=True)
    assert CallPlan.build(bwd, (tbuf, w, g)) is not None
    fwd, bwd, (y, g, w), ai, tbuf = reverse_batch(RESONLP, 16, 200, with_tape=True)
    assert CallPlan.build(bwd, (tbuf, w, w[:, :, 10:], g)) is None


@pytest.mark.parametrize("double", [False, True])
def test_call_plan_resets_and_writes_parameters_natively(double):
    """A plan whose jobs reset their instance, write its parameters from the run's values
    array and zero the tape's history (`native_ready`) runs, on instances left in any state
    and a tape whose history holds garbage, what calls prepared anew with those values run,
    bit for bit (the values cast to the state's float type as NumPy casts them; -1 writes 0)."""
    from diffaust.runtime.dsp import read_views
    from diffaust.runtime.lanes import CallPlan

    d = diffaust.compile(RESONLP, sample_rate=48000, double=double)
    dt = np.float64 if double else np.float32
    rev = d.reverse()
    rl = rev.lanes()
    assert rev.max_back > 0  # (a tape with a history to zero)
    B, n = 13, 300
    L = rl[0].lanes
    groups = lane_groups(B, L)
    paths = tuple(p.path for p in d.params)
    rng = np.random.default_rng(5)

    def batch(seed):
        r = np.random.default_rng(seed)
        vals = np.stack([r.uniform(200, 5000, B), r.uniform(0.7, 8, B)], 1)  # (B, 2) float64
        return r.uniform(-1, 1, (B, 1, n)).astype(dt), vals

    def fresh(x, vals):  # calls prepared anew: the reference
        y = np.zeros((B, 1, n), dt)
        tape = np.zeros((len(groups),) + rev.tape_shape(rl, n), dt)
        insts = [rl[0].instance() for _ in groups]
        for g, it in enumerate(groups):
            rev.forward_items(rl, x, it, n, {p: vals[it.start:it.stop, k] for k, p in enumerate(paths)}, y, tape[g],
                              inst=insts[g], defer=True)()
        return y, tape

    x0, v0 = batch(1)
    y0 = np.zeros((B, 1, n), dt)
    t0 = np.zeros((len(groups),) + rev.tape_shape(rl, n), dt)
    insts = [rl[0].instance() for _ in groups]
    calls = [rev.forward_items(rl, x0, it, n, {p: v0[it.start:it.stop, k] for k, p in enumerate(paths)}, y0, t0[g],
                               inst=insts[g], defer=True) for g, it in enumerate(groups)]
    writes = []
    for inst, it in zip(insts, groups):
        base = inst._state.ctypes.data
        writes.append([(view.ctypes.data - base + lane * view.itemsize, i * 2 + k)
                       for k, view in read_views(inst, d, paths) for lane, i in enumerate(it)])
    plan = CallPlan.build(calls, (x0, y0, t0), v0, writes, [[rev.tape_history(t0[g], L)] for g in range(len(groups))])
    assert plan is not None and plan.native_ready
    plan.run()
    ref_y, ref_t = fresh(x0, v0)
    assert np.array_equal(y0, ref_y) and np.array_equal(t0, ref_t)
    for seed in (2, 3):
        x, vals = batch(seed)
        y = np.full((B, 1, n), np.nan, dt)
        tape = rng.uniform(-9, 9, t0.shape).astype(dt)  # garbage, history included
        for inst in insts:
            inst._state[:] = rng.uniform(-9, 9, inst._state.shape)  # an instance in any state
        plan.bind((x, y, tape), values=vals)
        plan.run()
        ref_y, ref_t = fresh(x, vals)
        assert np.array_equal(y, ref_y)
        assert np.array_equal(tape[..., :ref_t.shape[-1]], ref_t)
