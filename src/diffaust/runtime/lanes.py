"""Batches in SIMD lanes: L instances of a compiled program run by one compute() call.

    lp = dsp.lanes()              # LanePrograms: dsp's program lowered with lanes (codegen/lanes.py)
    inst = lp.instance()          # L instances, each with its own state and parameters
    inst.set_param("fc", [500, 1000, 2000, 4000, ...])   # one value per lane
    inst.compute(xs, n, outs)     # xs[k]: (inputs, n) of lane k; outs[k]: (outputs, n)

Lane k's outputs are those of `dsp.instance()` with lane k's parameters and input, bit for
bit (the same operations on the same values; tests/test_lanes.py).  A batch of B examples
runs as ceil(B / L) lane groups; a group with fewer than L examples leaves its last lanes
on a zero input.  The lane width: 8 in float, 4 in double (256-bit vectors) by default,
half that for a program with a large state (`lane_width`).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from typing import Optional

import numpy as np

from ..errors import DiffaustError, UsageError
from .kernels import all_finite, nonfinite_address
from .pool import (ARGS, CHECK, CHECK_COUNT, CHECK_PTR, FN, JOB_WORDS, KIND, P_BASES, P_BYTES, P_CDST, P_COFF,
                   P_CSLOT, P_F64, P_NPAR, P_NPTR, P_NZERO, P_PDST, P_POFF, P_PSLOT, P_PSRC, P_PTRS, P_SNAP,
                   P_STATE, P_VSLOT, P_ZERO, PROLOGUE, PROLOGUE_WORDS, RESULT, NativePool)

DEFAULT_LANES = {False: 8, True: 4}  # by `double`: 256-bit vectors
SMALL_STATE = 512 << 10  # bytes: a larger program's state runs in half as many lanes (lane_width)


def lane_width(dsp) -> int:
    """The default lane width of a Dsp: 8 in float (4 in double), 256-bit vectors, for a
    program whose state is at most SMALL_STATE bytes; half that for a larger one, whose
    delay lines, L copies of them, leave the cache (measured on this machine, per item,
    float: zita_rev1's adjoint 1.5 ms in 4 lanes, 3.2 ms in 8, 3.1 ms alone; its forward
    gradient program 1.75 ms in 4 lanes, 1.86 in 8; resonlp's programs 2× faster in 8 lanes
    than in 4: docs/DESIGN-NOTES.md, "Batches in SIMD lanes")."""
    width = DEFAULT_LANES[bool(dsp.double)]
    return width if dsp.state_size <= SMALL_STATE else width // 2


class LanePrograms:
    """A Dsp's program lowered with `lanes` lanes (compiled once, by `Dsp.lanes`)."""

    def __init__(self, dsp, lanes: int, packed_inputs=frozenset(), packed_outputs=frozenset(),
                 shared_inputs=frozenset(), shared_params=frozenset()):
        from ..codegen.lanes import build_lane_module
        from ..codegen.llvm import jit
        from .dsp import _INIT, _COMPUTE, _reserve_symbol
        from .pipeline import run_pipeline

        self.dsp = dsp
        self.lanes = lanes
        # the scheduled program: kept by a Dsp built from signals (reverse mode's tape and
        # adjoint programs), else compiled again from the Dsp's source and options
        # (deterministic: the program the Dsp runs)
        prog = dsp.__dict__.get("_program")
        if prog is None:
            if dsp._meta.get("name") in ("tape", "adjoint"):
                raise DiffaustError("internal error: a reverse-mode program without its schedule")
            prog = run_pipeline(dsp.source, dsp.filename, dsp.options).program
        if (prog.inputs, prog.outputs) != (dsp.inputs, dsp.total_outputs):
            raise DiffaustError("internal error: the lane program's channels are not the Dsp's")
        sym = _reserve_symbol(f"lanes{lanes}_{id(self):x}")
        self.packed_inputs, self.packed_outputs = frozenset(packed_inputs), frozenset(packed_outputs)
        self.shared_inputs = frozenset(shared_inputs)
        slots = {c.path: slot for slot, c in prog.params}
        unknown = sorted(set(shared_params) - set(slots))
        if unknown:
            raise UsageError(f"shared_params: the program has no parameter {unknown[0]}")
        mod, info = build_lane_module(prog, sym, lanes, self.packed_inputs, self.packed_outputs, self.shared_inputs,
                                      frozenset(slots[path] for path in shared_params))
        obj, _ = jit().emit_object(str(mod))
        addrs = jit().load(obj, sym)
        if addrs is None or not all(addrs):
            raise DiffaustError(f"internal error: the compiled program {sym} could not be loaded")
        if len(info["param_offsets"]) != len(dsp.params):
            raise DiffaustError("internal error: the lane program's parameters are not the Dsp's")
        self._init = _INIT(addrs[0])
        self._compute = _COMPUTE(addrs[1])
        self._compute_addr = addrs[1]
        self.state_size = info["state_size"]
        self.param_offsets = info["param_offsets"]
        self.param_uniform = info["param_uniform"]  # one value for every lane (shared_params)
        # reverse mode's adjoint: its accumulators (double, one per lane)
        self.accumulator_offsets = [info["layout"][slot][0] for slot in prog.accumulators]

    def instance(self) -> "LaneInstance":
        return LaneInstance(self)


class LaneInstance:
    """L running instances in one state: parameters per lane, `compute` for all lanes at once."""

    def __init__(self, prog: LanePrograms):
        self.prog = prog
        d = prog.dsp
        self.dsp = d
        self.lanes = prog.lanes
        self._state = np.zeros(max((prog.state_size + 7) // 8, 2), dtype=np.float64)
        self._addr = self._state.ctypes.data
        self._dt = d.dtype
        self._width = 8 if d.double else 4
        self._zero: Optional[np.ndarray] = None
        self._sink: Optional[np.ndarray] = None
        # each parameter's values in the state: (lanes,) or, shared by every lane, (1,)
        self._views = [np.ndarray((1 if prog.param_uniform[i] else self.lanes,), dtype=self._dt,
                                  buffer=self._state, offset=prog.param_offsets[i]) for i in range(len(d.params))]
        self._by_path = {p.path: i for i, p in enumerate(d.params)}
        self.reset()

    def reset(self):
        """Every lane's state to zero, init(sample_rate), parameters to their init values
        (the state that gives is kept: later resets copy it)."""
        snap = self.prog.__dict__.get("_reset_state")
        if snap is not None and snap.shape == self._state.shape:
            np.copyto(self._state, snap)
            return
        self._state[:] = 0
        for i, p in enumerate(self.dsp.params):
            self.set_param(i, np.full(self.lanes, p.init))
        self.prog._init(self._addr, self.dsp.sample_rate)
        self.prog._reset_state = self._state.copy()

    def set_param(self, name, values) -> None:
        """Parameter `name` (label, path or index) in every lane: `values` of shape (lanes,)
        (or fewer: the remaining lanes keep theirs)."""
        i = self._by_path.get(name) if isinstance(name, str) else None
        if i is None:
            i = self.dsp.param_index(name)
        if type(values) is np.ndarray and values.ndim == 1 and not self.prog.param_uniform[i]:
            if values.size > self.lanes:  # (the batch layers' case: a group's values, one per lane)
                raise UsageError(f"{values.size} values for {self.lanes} lanes")
            self._views[i][:values.size] = values
            return
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size > self.lanes:
            raise UsageError(f"{v.size} values for {self.lanes} lanes")
        if self.prog.param_uniform[i]:  # one value, shared by every lane
            if v.size and np.any(v != v[0]):
                raise UsageError(f"parameter '{self.dsp.params[i].label}' is shared by every lane: one value")
            v = v[:1]
        self._views[i][:v.size] = v

    def get_param(self, name) -> np.ndarray:
        i = self.dsp.param_index(name)
        if self.prog.param_uniform[i]:
            return np.full(self.lanes, np.ndarray((1,), dtype=self._dt, buffer=self._state,
                                                  offset=self.prog.param_offsets[i])[0], dtype=np.float64)
        return np.ndarray((self.lanes,), dtype=self._dt, buffer=self._state,
                          offset=self.prog.param_offsets[i]).astype(np.float64)

    def compute_items(self, ins, outs, items, n: int, block_size: Optional[int] = None, defer: bool = False):
        """`compute` for batch items `items` (a range or sequence of at most `lanes` indices,
        lane k = items[k]) of batch arrays: ins / outs are lists of (array, column) pairs, each
        array (batch, channels, samples) of the samples' dtype, contiguous along the samples
        (a transposed view is fine), whose channels, in
        list order, are the program's inputs / outputs, read / written from column `column`
        on (n samples); or (array, column, lane_items): the same with the array's own items
        per lane (lane k = lane_items[k]); or (array, column, "packed"): the group's own
        (channels, L·samples) array of packed channels (`LanePrograms.packed_inputs` /
        `packed_outputs`), sample i of lane k at (column + i)·L + k.  Checked once per array,
        the channel pointers made from its address and strides: a batch's fast path (the
        PyTorch and JAX layers).
        defer: checked and prepared now, run later: returns a callable that runs it (the
        batch layers prepare every group, then run the compiled calls on their threads)."""
        d, L, dt = self.dsp, self.lanes, self._dt
        items = list(items) if isinstance(items, range) else [int(i) for i in np.asarray(items, dtype=np.intp).ravel()]
        m = len(items)
        items_lo, items_hi = (min(items), max(items)) if m else (0, 0)
        if m > L or m == 0:
            raise UsageError(f"compute_items: 1 to {L} items, got {m}")
        size = np.dtype(dt).itemsize

        def pointers(segs, want, spare):
            # ptr[c·L + k]: channel c of lane k (a few dozen Python ints: cheaper than array arithmetic)
            ptr = []
            spare = spare.ctypes.data if m < L else 0
            for seg in segs:
                a, col = seg[0], seg[1]
                if len(seg) > 2 and seg[2] == "packed":  # the group's interleaved (channels, L·samples)
                    if (not isinstance(a, np.ndarray) or a.dtype != dt or a.ndim != 2 or not a.flags.c_contiguous
                            or a.shape[1] < (col + n) * L):
                        raise UsageError(f"compute_items: a packed array must be C-contiguous "
                                         f"{np.dtype(dt).name} (channels, >= {L} x (column + {n}))")
                    # channel c's L pointers all point at its row (the lanes are interleaved)
                    base, s0 = a.ctypes.data + col * L * size, a.strides[0]
                    for c in range(a.shape[0]):
                        ptr += [base + c * s0] * L
                    continue
                if len(seg) == 2:
                    its, lo, hi = items, items_lo, items_hi
                else:
                    its = [int(i) for i in np.asarray(seg[2], dtype=np.intp).reshape(-1)]
                    lo, hi = (min(its), max(its)) if its else (0, 0)
                if isinstance(a, np.ndarray) and a.ndim == 3 and a.shape[1] == 0:
                    continue  # no channel: no pointer (numpy's strides of an empty array are anything)
                if (not isinstance(a, np.ndarray) or a.dtype != dt or a.ndim != 3 or a.strides[2] != size
                        or min(a.strides[:2]) < 0 or a.shape[2] < col + n or len(its) != m
                        or hi >= a.shape[0] or lo < 0):
                    raise UsageError(f"compute_items: arrays must be {np.dtype(dt).name} (batch, channels, "
                                     f">= column + {n}), contiguous along the samples, an item per lane")
                base, (s0, s1) = a.ctypes.data + col * size, a.strides[:2]
                for c in range(a.shape[1]):
                    row = base + c * s1
                    ptr += [row + i * s0 for i in its]
                    if m < L:  # lanes without an item: a spare row (zeros in; a sink out, shared)
                        ptr += [spare] * (L - m)
            if len(ptr) != want * L:
                raise UsageError(f"compute_items: {want} channels expected, got {len(ptr) // L}")
            return np.array(ptr or [0], dtype=np.uintp)

        if m < L and (self._zero is None or self._zero.shape[1] < n):
            self._zero = np.zeros((max(d.inputs, 1), n), dtype=dt)
            self._sink = np.empty((max(d.total_outputs, 1), n), dtype=dt)
        ip = pointers(ins, d.inputs, self._zero[0] if m < L else None)
        op = pointers(outs, d.total_outputs, self._sink[0] if m < L else None)
        if defer:
            return PreparedCall(self, n, ip, op, block_size, (ins, outs))
        self._run(n, ip.ctypes.data, op.ctypes.data, block_size)

    def _run(self, n, ip, op, block_size):
        if n <= 0:
            return
        kind, driver, args = self._native_call(n, ip, op, block_size)
        (self.prog._compute if kind == 0 else driver)(*args)

    def _native_call(self, n, ip, op, block_size) -> tuple:
        """(kind, function, arguments) of the call that runs n samples: kind 0 the compute
        function (the function: its address), 1 the block driver, block after block, for a
        program whose output depends on the block size (the function: the driver, a ctypes
        function; its address by `ctypes.cast`).  `_run` calls it; a native pool's job
        table (runtime/pool.py) holds it."""
        d, L = self.dsp, self.lanes
        bs = d._bs(block_size)
        if n <= bs or not d.block_dependent:
            return 0, self.prog._compute_addr, (self._addr, n, ip, op)
        from ..codegen.llvm import block_driver

        return 1, block_driver(d.double), (self.prog._compute_addr, self._addr, n, bs, d.inputs * L,
                                           d.total_outputs * L, ip, op)

    def _acc_index(self) -> np.ndarray:
        """(accumulators, lanes): where each lane's sum lies among the state's float64 words
        (found once per lane programs)."""
        idx = self.prog.__dict__.get("_acc_index")
        if idx is None:
            offs = self.prog.accumulator_offsets
            if any(off % 8 for off in offs):
                raise DiffaustError("internal error: an accumulator not on a float64 word of the state")
            idx = self.prog._acc_index = (np.array(offs, dtype=np.intp)[:, None] // 8
                                          + np.arange(self.lanes, dtype=np.intp)[None, :])
        return idx

    def accumulators(self) -> np.ndarray:
        """(accumulators, lanes) float64: the adjoint program's sums over time, lane by lane."""
        return self._state[self._acc_index()]

    def accumulator_view(self, k: int) -> np.ndarray:
        """(lanes,) float64: accumulator k's sums, lane by lane: a view of the state, read
        after each call (`accumulators` copies them all)."""
        i = int(self._acc_index()[k, 0])
        return self._state[i:i + self.lanes]

    def compute(self, xs, n: int, outs, block_size: Optional[int] = None) -> None:
        """Run n samples in every lane: xs[k] (inputs) and outs[k] (outputs) are lane k's input
        and output channels, each a 2-D array (channels, >= n) or a sequence of 1-D rows, every
        row C-contiguous, of the samples' dtype; at most `lanes` of them (lanes without one run
        on zeros into a scratch buffer).  xs may be None for a program without inputs.
        block_size: as in `Instance.compute`."""
        d, L, dt = self.dsp, self.lanes, self._dt
        nin, nout = d.inputs, d.total_outputs
        xs = [] if xs is None else [list(a) for a in xs]
        outs = [list(a) for a in outs]
        if len(outs) > L or len(xs) > L or (nin and len(xs) != len(outs)):
            raise UsageError(f"compute: at most {L} lanes, as many inputs as outputs")
        for rows, want in [(r, nin) for r in xs] + [(r, nout) for r in outs]:
            if len(rows) != want or not all(
                    isinstance(a, np.ndarray) and a.dtype == dt and a.ndim == 1 and a.shape[0] >= n
                    and a.flags.c_contiguous for a in rows):
                raise UsageError(f"compute: each lane needs {want} C-contiguous {np.dtype(dt).name} rows "
                                 f"of >= {n} samples")
        if len(outs) < L:
            if self._zero is None or self._zero.shape[1] < n:
                self._zero = np.zeros((max(nin, 1), n), dtype=dt)
                self._sink = np.empty((max(nout, 1), n), dtype=dt)
        ip = (ctypes.c_void_p * max(nin * L, 1))()
        op = (ctypes.c_void_p * max(nout * L, 1))()
        for k in range(L):
            x = xs[k] if k < len(xs) else self._zero
            y = outs[k] if k < len(outs) else self._sink
            for c in range(nin):
                ip[c * L + k] = x[c].ctypes.data
            for c in range(nout):
                op[c * L + k] = y[c].ctypes.data
        self._run(n, ctypes.addressof(ip), ctypes.addressof(op), block_size)


class PreparedCall:
    """A lane instance's compiled call, checked and prepared by `compute_items(defer=True)`:
    calling it runs it (after the check of `check`, a cotangent that must be finite, when
    one is set); `job(row)` writes it into a native pool's job table (runtime/pool.py)
    instead.  It holds its pointer arrays and the arrays they point into (a deferred call
    never reads freed memory)."""

    __slots__ = ("inst", "n", "ip", "op", "block_size", "check", "_arrays")

    def __init__(self, inst, n, ip, op, block_size, arrays=()):
        self.inst, self.n, self.ip, self.op, self.block_size = inst, n, ip, op, block_size
        self.check = None
        self._arrays = arrays

    def _checked(self) -> None:
        if self.check is not None and not all_finite(self.check):
            raise UsageError("y_bar holds NaN or Inf")

    def __call__(self) -> None:
        self._checked()
        self.inst._run(self.n, self.ip.ctypes.data, self.op.ctypes.data, self.block_size)

    def job(self, row: np.ndarray) -> bool:
        """Fill `row` (JOB_WORDS int64) with this call; False (nothing written) when it has
        no sample to run.  A check the native kernel cannot do (a non-contiguous cotangent)
        is done now."""
        if self.n <= 0:
            self._checked()
            return False
        kind, fn, args = self.inst._native_call(self.n, self.ip.ctypes.data, self.op.ctypes.data,
                                                self.block_size)
        row[KIND], row[FN] = kind, fn if kind == 0 else ctypes.cast(fn, ctypes.c_void_p).value
        row[ARGS:ARGS + len(args)] = args
        c = self.check
        if c is not None:
            addr = nonfinite_address(c)
            if addr:
                row[CHECK], row[CHECK_PTR], row[CHECK_COUNT] = addr, c.ctypes.data, c.size
            else:
                self._checked()
        return True


def _span(a: np.ndarray) -> tuple:
    """[lo, hi): the bytes an array's elements occupy."""
    lo = hi = a.ctypes.data
    for d, s in zip(a.shape, a.strides):
        if s < 0:
            lo += s * (d - 1)
        else:
            hi += s * (d - 1)
    return lo, hi + a.itemsize


def geometry(arrays) -> tuple:
    """What a `CallPlan`'s pointers depend on besides the arrays' addresses: each array's
    shape, strides and dtype."""
    return tuple((a.shape, a.strides, a.dtype.str) for a in arrays)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class CallPlan:
    """A pass's prepared lane calls, laid out once and run again on new arrays.

    Built (`CallPlan.build`) from the `PreparedCall`s of a pass (one per lane group, each on
    an instance of its own) and `slots`, the arrays they point into.  Every pointer the
    calls hold (each lane's channel pointers, the address of a cotangent checked first) is
    recorded as slot + offset, and each job of the table (runtime/pool.py), built once, gets
    a prologue that lays its pointers out on the slots' addresses of the run (`bind` writes
    them: a few words) before its call, on the thread that runs it.  A pointer outside every
    slot must be into an instance's own spare rows (a group with fewer items than lanes),
    which stay with the plan's instances.  With `writes`, the prologue also resets the
    job's instance (its state copied from the reset snapshot), writes its parameters from
    the run's `values` array and zeroes the `zero` regions (`native_ready`); else the
    caller sets the instances before `run`.

    Invariant: after `bind`, a run is exactly the run of those `PreparedCall`s prepared on
    the bound arrays, their instances set as the build's were (reset, then the writes of the
    bound values, or the caller's settings)."""

    __slots__ = ("insts", "table", "key", "memo", "native_ready", "_geom", "_vgeom", "_bases", "_checked",
                 "_keep", "_serial", "_bound")

    @classmethod
    def build(cls, calls: list, slots: tuple, values: Optional[np.ndarray] = None,
              writes: Optional[list] = None, zero: Optional[list] = None) -> Optional["CallPlan"]:
        """The plan of `calls` over `slots`, or None where it cannot be planned (a call with no
        sample, a check the native kernel cannot do, a pointer into no slot, or into two).
        writes[g]: [(byte offset in call g's instance's state, index into values.ravel(), or
        -1 for 0)], the parameter values written after the reset, in the state's float type;
        values: float64, C-contiguous (its layout part of the plan's); zero[g]: arrays
        (views into the slots, 1-D or 2-D with contiguous rows) zeroed before call g."""
        if not calls or len({id(c.inst) for c in calls}) != len(calls):
            return None
        if writes is not None and (values is None or values.dtype != np.float64 or not values.flags.c_contiguous
                                   or len(writes) != len(calls)):
            return None
        spans = [_span(a) if a.size else (0, 0) for a in slots]
        owned = [_span(b) for c in calls for b in (c.inst._zero, c.inst._sink) if b is not None]
        S = len(slots)  # bases[S] = 0 (an absolute address), bases[S + 1] = the values' address

        def locate(p: int):  # (slot, offset); (S, p): a spare row; None: not plannable
            hits = [k for k, (lo, hi) in enumerate(spans) if lo <= p < hi]
            if len(hits) == 1:
                return hits[0], p - _address(slots[hits[0]])
            if not hits and any(lo <= p < hi for lo, hi in owned):
                return S, p
            return None

        keep: list = []

        def words(seq) -> np.ndarray:  # an int64 array kept with the plan
            a = np.array(list(seq) or [0], dtype=np.int64)
            keep.append(a)
            return a

        table = np.zeros((len(calls), JOB_WORDS), dtype=np.int64)
        bases = words([0] * (S + 2))
        pros = np.zeros((len(calls), PROLOGUE_WORDS), dtype=np.int64)
        checked = False
        for g, c in enumerate(calls):
            if c.n <= 0:
                return None
            ptr = words(np.concatenate([c.ip.view(np.int64), c.op.view(np.int64)]))
            c.ip, c.op = ptr[:c.ip.size].view(np.uintp), ptr[c.ip.size:c.ip.size + c.op.size].view(np.uintp)
            where = [locate(p) if p else (S, 0) for p in ptr.tolist()]  # (0: a program without that channel)
            if None in where:
                return None
            if not c.job(table[g]):
                return None
            pro = pros[g]
            pro[P_NPTR] = len(where)
            pro[P_PSLOT] = words(w[0] for w in where).ctypes.data
            pro[P_POFF] = words(w[1] for w in where).ctypes.data
            pro[P_PTRS] = ptr.ctypes.data
            pro[P_BASES] = bases.ctypes.data
            pro[P_CSLOT] = -1
            if c.check is not None:
                if not table[g, CHECK]:
                    return None  # (checked in Python at job(): not the native kernel's)
                w = locate(int(table[g, CHECK_PTR]))
                if w is None or w[0] == S:
                    return None
                pro[P_CSLOT], pro[P_COFF] = w
                pro[P_CDST] = table[g:g + 1, CHECK_PTR].ctypes.data
                checked = True
            if writes is not None:
                inst = c.inst
                snap = inst.prog.__dict__.get("_reset_state")
                if snap is None or snap.shape != inst._state.shape:
                    return None
                keep.append(snap)
                pro[P_STATE], pro[P_SNAP], pro[P_BYTES] = inst._addr, snap.ctypes.data, inst._state.nbytes
                pro[P_NPAR] = len(writes[g])
                pro[P_PDST] = words(off for off, _ in writes[g]).ctypes.data
                pro[P_PSRC] = words(src for _, src in writes[g]).ctypes.data
                pro[P_F64] = int(inst._dt == np.float64)
                pro[P_VSLOT] = S + 1
                regions = []
                for z in (zero[g] if zero else ()):
                    for row in (z if z.ndim == 2 else z[None]):
                        if row.size:
                            w = locate(_address(row))
                            if w is None or w[0] == S or row.strides[-1] != row.itemsize:
                                return None
                            regions += [w[0], w[1], row.nbytes]
                pro[P_NZERO] = len(regions) // 3
                pro[P_ZERO] = words(regions).ctypes.data
            table[g, PROLOGUE] = pro.ctypes.data
        keep.append(pros)
        plan = cls()
        plan.insts = [c.inst for c in calls]
        plan.table = table
        plan.key = None  # (its owner's: FaustModule keeps plans by pass)
        plan.memo = {}  # (its owner's: what it derives from the plan's instances)
        plan.native_ready = writes is not None
        plan._geom = geometry(slots)
        plan._vgeom = geometry((values,)) if writes is not None else None
        plan._bases = bases
        plan._checked = checked
        plan._keep = keep
        plan._serial = None
        plan._bound = None
        plan.bind(slots, values=values)
        for c in calls:  # (the plan keeps no array of the call it was built from)
            c._arrays, c.check = (), None
        return plan

    def bind(self, slots: tuple, geom: Optional[tuple] = None, values: Optional[np.ndarray] = None) -> None:
        """Lay the calls out on `slots` (arrays of the plan's geometry, else an internal error;
        geom: `geometry(slots)` where the caller has it), the parameters read from `values`
        (`native_ready`: an array of the build's layout)."""
        if (geometry(slots) if geom is None else geom) != self._geom:
            raise DiffaustError("internal error: CallPlan.bind: arrays of another layout")
        addrs = [_address(a) for a in slots]
        if self._vgeom is not None:
            if values is None or geometry((values,)) != self._vgeom:
                raise DiffaustError("internal error: CallPlan.bind: parameter values of another layout")
            addrs += [0, _address(values)]
        self._bases[:len(addrs)] = addrs
        self._bound = (slots, values)  # (alive until the run: the addresses stay theirs)

    def run(self, pool=None) -> None:
        """Run the bound calls: on `pool` (a NativePool whose lock the caller holds), else on
        this thread alone (natively, the GIL released); UsageError where a checked cotangent
        held NaN or Inf (its call skipped).  One run per `bind` (the arrays then let go)."""
        if self._bound is None:
            raise DiffaustError("internal error: CallPlan.run without bind (its arrays may be gone)")
        if pool is None:
            if self._serial is None:
                self._serial = NativePool(0)
            pool = self._serial
        try:
            pool.run(self.table)
        finally:
            self._bound = None
        if self._checked and self.table[:, RESULT].any():
            raise UsageError("y_bar holds NaN or Inf")


def checked_sums(inst, run, y_bar, items, defer: bool):
    """A lane call that sums over time (reverse mode's adjoint, forward mode's gradient
    program) with its cotangent ȳ checked first: `run` (a prepared `compute_items` call of
    `inst`) after ȳ's rows of `items` are found finite.  defer: returns the checked call;
    else runs it and returns (sums, len(items)), `inst.accumulators()` of the items' lanes."""
    run.check = y_bar[items.start:items.stop] if isinstance(items, range) else y_bar[list(items)]
    if defer:
        return run
    run()
    return inst.accumulators()[:, :len(items)]


@functools.lru_cache(maxsize=256)
def lane_groups(batch: int, width: int) -> tuple:
    """A batch's items as ceil(batch / width) groups of consecutive items (ranges), as even
    as can be: a group per compute() call of an instance `width` lanes wide."""
    g = -(-batch // width)
    return tuple(range(k * batch // g, (k + 1) * batch // g) for k in range(g))


_LOCK = threading.Lock()


def lane_programs(dsp, lanes: Optional[int] = None, packed_inputs=(), packed_outputs=(), shared_inputs=(),
                  shared_params=()) -> LanePrograms:
    """dsp's LanePrograms (compiled on first use, kept on the Dsp); raises
    codegen.lanes.LanesUnsupported for a program that cannot run in lanes."""
    from ..codegen.lanes import LanesUnsupported

    L = lane_width(dsp) if lanes is None else int(lanes)
    if L < 2:
        raise UsageError(f"lanes must be >= 2, got {lanes!r}")
    key = (L, frozenset(packed_inputs), frozenset(packed_outputs), frozenset(shared_inputs),
           frozenset(shared_params))
    cache = dsp.__dict__.setdefault("_lanes", {})
    with _LOCK:
        r = cache.get(key)
        if r is None:
            try:
                r = cache[key] = LanePrograms(dsp, L, *key[1:])
            except LanesUnsupported as e:
                cache[key] = e
                raise
        if isinstance(r, Exception):
            raise r
        return r
