"""Reverse mode at run time: the tape program, the adjoint program, checkpoints.

    g = dsp.vjp(x, y_bar)          # x: (inputs, n), y_bar: (outputs, n)
    g.params["fc"]                 # d/d fc of Σ_c Σ_n y_bar[c, n]·y[c, n]
    g.input                        # (inputs, n): the same gradient w.r.t. every input sample

Two programs compiled from the Dsp's source (autodiff/vjp.py builds their signals):
the *tape program* (the primal outputs, then the primal values the backward sweep
needs) and the *adjoint program* (reversed time: ȳ and the tape in; x̄ and the
parameters' cotangent streams out).  Both are native code through the same passes as
every program.

Memory.  A whole-signal tape costs (outputs + tape channels) × n samples.  Beyond
`memory` bytes the signal is cut into segments: a forward run keeps only a snapshot of
the tape program's state at the start of each segment; the backward sweep then, from
the last segment to the first, restores the snapshot, runs the segment again to get its
tape, and runs the adjoint program over it (the adjoint's own state carries on from
segment to segment: its time runs backward).  Cost: one more forward run.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import DiffaustError, UsageError
from .dsp import set_read_params, thread_instance
from .kernels import all_finite
from .lanes import checked_sums

DEFAULT_MEMORY = 256 << 20  # bytes of tape (and of segment buffers) before checkpointing


@dataclass
class Gradient:
    """The gradient of Σ_c Σ_n ȳ[c, n]·y[c, n] for one block rendered from a reset state.

    params:  {label: float} for each [diff:1] parameter (an ndarray (samples,) for a
             parameter given per sample: the gradient w.r.t. each sample's value)
    input:   (inputs, samples) gradient w.r.t. every input sample
    output:  (outputs, samples) the primal outputs y
    by_path: {path: float} the same as params, keyed by widget path"""

    params: dict
    input: np.ndarray
    output: Optional[np.ndarray] = None
    by_path: dict = field(default_factory=dict, repr=False)


@contextmanager
def program_signals(dsp):
    """(stages, [diff:1] variables, --nondiff names) of `dsp`'s program up to its foreign
    functions (the pipeline to link_foreign, without derivatives), for a program built from
    its signals (reverse mode's, the jvp gradient's): under the compile lock, with a
    recursion limit deep enough for their builders."""
    from ..autodiff.jvp import diff_variables
    from .pipeline import COMPILE_LOCK, CompileOptions, _run_pipeline, check_nondiff

    opts = CompileOptions(double=dsp.double, diff=False, import_dirs=dsp.options.import_dirs,
                          bundled_only=dsp.options.bundled_only, nondiff=(),
                          allow_native=dsp.options.allow_native, use_cache=dsp.options.use_cache,
                          varying=dsp.options.varying)
    old = sys.getrecursionlimit()
    with COMPILE_LOCK:
        sys.setrecursionlimit(max(old, 20000))
        try:
            st = _run_pipeline(dsp.source, dsp.filename, opts, until="link_foreign")
            yield st, diff_variables(st.outputs), check_nondiff(st.outputs, dsp.options.nondiff)
        finally:
            sys.setrecursionlimit(old)


class Reverse:
    """The compiled tape and adjoint programs of a Dsp (built by `Dsp.vjp` on first use)."""

    def __init__(self, dsp):
        from ..autodiff.vjp import vjp_program

        with program_signals(dsp) as (st, variables, nondiff):
            warnings: list = []
            adj = vjp_program(st.outputs, variables, st.inputs, nondiff=nondiff, warnings=warnings)
            self.warnings = warnings
            primal = adj.primal if adj.primal is not None else st.outputs  # control/enable as held
            self.tape_dsp, _, self.tape_program = _compile_signals(st, list(primal) + list(adj.tape), st.inputs, dsp,
                                                                   "tape")
            self.adjoint_dsp, self._acc, self.adjoint_program = _compile_signals(
                st, adj.outputs, adj.inputs, dsp, "adjoint", reversed_io=True, accumulate=len(variables))
        self.n_outputs = len(st.outputs)
        self.n_tape = len(adj.tape)
        self.max_back = adj.max_back
        self.n_inputs = st.inputs
        self.labels = [v.attr.label for v in variables]
        self.paths = [v.attr.path for v in variables]
        self.dsp = dsp
        self._tls = threading.local()

    def listing(self, lang: str = "c") -> str:
        """The tape program and the adjoint program: 'c' (C-like listings of their loops,
        with a table of their channels) or 'llvm' (their LLVM IR)."""
        from ..codegen.clike import format_schedule
        from ..codegen.llvm import build_module

        if lang not in ("c", "llvm"):
            raise UsageError(f"the reverse-mode programs are listed as c or llvm, not {lang}")
        O, I = self.n_outputs, self.n_inputs
        head = [f"// reverse mode of {self.dsp.filename}: {len(self.labels)} parameter(s), {I} input(s), "
                f"{O} output(s), {self.n_tape} tape channel(s)",
                "// tape program (forward in time): outputs 0.." f"{O - 1} are the program's, "
                f"{O}..{O + self.n_tape - 1} the tape",
                "// adjoint program (backward in time: sample i reads and writes buffer index count-1-i):",
                f"//   inputs 0..{O - 1}: y_bar; {O}..{O + self.n_tape - 1}: the tape",
                f"//   outputs 0..{I - 1}: x_bar" if I else "//   outputs: none (the program has no input)",
                "//   accumulators (summed over time, double): "
                + ", ".join(f"fAcc{k} = d/d {lab}" for k, lab in enumerate(self.labels))]
        parts = [("tape program", self.tape_program), ("adjoint program", self.adjoint_program)]
        out = ["\n".join(head)]
        for name, prog in parts:
            text = format_schedule(prog) if lang == "c" else str(build_module(prog, f"{name.split()[0]}"))
            out.append(f"// ---- {name}\n{text}")
        return "\n\n".join(out) + "\n"

    # ------------------------------------------------------------ running
    def _instances(self, params):
        """This thread's tape and adjoint instances, reset, parameters set."""
        pair = getattr(self._tls, "pair", None)
        if pair is None:
            pair = self._tls.pair = (self.tape_dsp.instance(), self.adjoint_dsp.instance())
        else:
            for inst in pair:
                inst.reset()
        for inst in pair:
            set_read_params(inst, self.dsp, params)
        return pair

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """This thread's buffer `name` (uninitialized), kept for the next call of that shape:
        a training loop's steps allocate nothing (fresh pages cost more than a small render)."""
        bufs = self._tls.__dict__.setdefault("buffers", {})
        a = bufs.get(name)
        if a is None or a.shape != shape:
            a = bufs[name] = np.empty(shape, dtype=self.dsp.dtype)
        return a

    def _check_blocks(self, n: int, bs: int, checkpoints: bool) -> None:
        """UsageError where reverse mode cannot follow the blocks of a program that reads
        `count`.  Its tape program is run block by block from time 0 (the tape records each
        sample's count; checkpoints and replays start on block boundaries), but an adjoint
        program that reads `count` itself runs backward in time: it gets one call over the
        whole signal, right only when that is one block."""
        if self.adjoint_dsp.block_dependent and checkpoints:
            raise UsageError(f"reverse mode of a program whose adjoint reads `count` (fvariable(int count)) "
                             f"cannot checkpoint a signal of {n} samples: give more memory (memory=...) so "
                             "that the tape holds the whole signal, or use forward mode (render_jvp)")
        if n > bs and self.adjoint_dsp.block_dependent:
            raise UsageError(f"reverse mode of a program that reads `count` (fvariable(int count)) with a block "
                             f"size ({bs}) smaller than the signal ({n} samples) is not supported: render one "
                             "block (block_size >= n) or use forward mode (render_jvp)")

    def run(self, x, n: int, params, cotangent, memory: int = DEFAULT_MEMORY, block_size: Optional[int] = None):
        """A `Gradient` (with .output); cotangent(y) -> ȳ (outputs, n) is called once, on the
        whole primal output, before the backward sweep.  The returned arrays are new.
        block_size: samples per compute() call (default the Dsp's)."""
        dt = self.dsp.dtype
        bs = self.dsp._bs(block_size)
        O, T, I = self.n_outputs, self.n_tape, self.n_inputs
        D = self.max_back  # samples of tape history the adjoint reads before a buffer's start
        size = np.dtype(dt).itemsize
        k = max(1024, int(memory // max(1, (O + T) * size)))  # samples of tape per segment
        self._check_blocks(n, bs, n > k)
        tape, adj = self._instances(params)
        xs = _inputs(x, I, n, dt)
        y = np.empty((O, n), dtype=dt)
        g = np.empty((I, n), dtype=dt)
        if n <= k:
            tbuf = self._buffer("tape", (T, D + n))
            tbuf[:, :D] = 0.0
            rows = [r[D:] for r in tbuf]
            tape.compute_rows(list(xs), list(y) + rows, n, bs)
            y_bar = _check_cotangent(cotangent(y), O, n, dt)
            adj.compute_rows(list(y_bar) + rows, list(g), n, max(1, n))  # backward in time: one call
            return self._gradient(g, y, adj)
        # checkpoints: segments of k samples; the tape program's state is kept where the replay
        # of each segment starts, D samples early (the history its adjoint reads).  A tape
        # program that reads `count` runs in blocks of bs from time 0: its segments and
        # replays then start on block boundaries (k a multiple of bs, a replay up to bs - 1
        # samples earlier still), so every block it runs is a block of the render.
        a = bs if self.tape_dsp.block_dependent else 1
        if a > 1:
            k = max(a, k // a * a)
        E = D if a == 1 else D + a  # scratch column of a segment's start (history before it)
        starts = list(range(0, n, k))
        begin = [max(0, (s0 - D) // a * a) for s0 in starts]
        snaps = {}
        scratch = self._buffer("tape", (T, E + k))
        pos = 0
        for p in sorted(set(begin)) + [n]:
            if p > pos:
                tape.compute_rows([r[pos:p] for r in xs], [r[pos:p] for r in y] + list(scratch), p - pos, bs)
                pos = p
            if p < n:
                snaps[p] = tape.snapshot()
        y_bar = _check_cotangent(cotangent(y), O, n, dt)
        yscratch = self._buffer("y", (O, E + k))
        for s0, b in zip(reversed(starts), reversed(begin)):
            s1 = min(n, s0 + k)
            tape.restore(snaps[b])
            c0 = E - (s0 - b)  # column of time b: column E is time s0
            scratch[:, :c0] = 0.0
            tape.compute_rows([r[b:s1] for r in xs], [r[c0:c0 + s1 - b] for r in yscratch]
                              + [r[c0:c0 + s1 - b] for r in scratch], s1 - b, bs)
            adj.compute_rows([r[s0:s1] for r in y_bar] + [r[E:] for r in scratch], [r[s0:s1] for r in g], s1 - s0)
        return self._gradient(g, y, adj)

    # -- the two passes apart (a training layer: the forward pass keeps the tape, the
    #    backward pass runs the adjoint alone, no second forward render)
    def forward(self, x, n: int, params, block_size: Optional[int] = None) -> "TapeRun":
        """The tape program over a whole block: the primal outputs `.y` (outputs, n) and the
        tape the backward pass needs (new arrays, owned by the result).  A block whose tape
        would exceed the default memory keeps none: `backward` then runs `run` (checkpoints)."""
        dt = self.dsp.dtype
        bs = self.dsp._bs(block_size)
        O, T, I = self.n_outputs, self.n_tape, self.n_inputs
        xs = _inputs(x, I, n, dt)
        params = dict(params or {})
        if n * (O + T) * np.dtype(dt).itemsize > DEFAULT_MEMORY:
            y = self.run(xs, n, params, lambda y: np.zeros_like(y), block_size=bs).output
            return TapeRun(y, None, xs, params, n, bs)
        self._check_blocks(n, bs, False)
        tape = self._instances(params)[0]
        D = self.max_back
        y = np.empty((O, n), dtype=dt)
        tbuf = _tape_buffer(T, D, n, dt)
        tape.compute_rows(list(xs), list(y) + [r[D:] for r in tbuf], n, bs)
        return TapeRun(y, tbuf, xs, params, n, bs)

    def backward(self, run: "TapeRun", y_bar) -> Gradient:
        """The gradient of Σ ȳ·y for the block `run` of `forward` (its tape is kept: the run
        may be used again)."""
        O = self.n_outputs
        if run.tape is None:
            return self.run(run.x, run.n, run.params, lambda y: y_bar, block_size=run.block_size)
        dt = self.dsp.dtype
        adj = self._instances(run.params)[1]
        y_bar = _check_cotangent(y_bar, O, run.n, dt)
        g = np.empty((self.n_inputs, run.n), dtype=dt)
        adj.compute_rows(list(y_bar) + [r[self.max_back:] for r in run.tape], list(g), run.n, max(1, run.n))
        return self._gradient(g, run.y, adj)

    # -- batch items in SIMD lanes (runtime/lanes.py): forward and backward of a group at once
    def lanes(self, width: Optional[int] = None):
        """(tape program, adjoint program) lowered with lanes (`Dsp.lanes`), or None where
        either cannot run in lanes (control/enable)."""
        from ..codegen.lanes import LanesUnsupported

        from .lanes import lane_width

        O, T = self.n_outputs, self.n_tape
        tape = range(O, O + T)  # the tape channels: written and read by lane programs only, interleaved
        if width is None:  # one width for both: the adjoint reads the tape as the tape program wrote it
            width = min(lane_width(self.tape_dsp), lane_width(self.adjoint_dsp))
        try:
            return self.tape_dsp.lanes(width, packed_outputs=tape), self.adjoint_dsp.lanes(width, packed_inputs=tape)
        except LanesUnsupported:
            return None

    def _lane_instance(self, lp):
        return thread_instance(self._tls, "lane_instances", lp)

    def tape_shape(self, lanes, n: int) -> tuple:
        """The shape of a group's tape for `forward_items`: (tape channels, L·(history + n)),
        the lanes interleaved."""
        return (self.n_tape, lanes[0].lanes * (self.max_back + n))

    def forward_items(self, lanes, x, items, n: int, values: dict, y, tape, block_size: Optional[int] = None, *,
                      inst=None, defer: bool = False):
        """`forward` of the batch items `items` (at most the lane width) at once, in the lanes
        of `lanes` (from `Reverse.lanes`): x (batch, inputs, n) and y (batch, outputs, n)
        C-contiguous arrays of the samples' dtype, the items' rows of y written; tape: the
        group's (`tape_shape`), written (its history zeroed); values: {path: values over
        `items`}.  False, nothing run, when the group's tape would exceed the default memory
        (the caller runs `forward` item by item: checkpoints).  inst: the tape program's lane
        instance to run on, reset (default: this thread's); defer: prepared now, returns a
        callable that runs it (`LaneInstance.compute_items`) instead of True."""
        dt = self.dsp.dtype
        bs = self.dsp._bs(block_size)
        O, T = self.n_outputs, self.n_tape
        L = lanes[0].lanes
        if n * (O + T) * np.dtype(dt).itemsize * L > DEFAULT_MEMORY:
            return False
        self._check_blocks(n, bs, False)
        D = self.max_back
        if tape.shape != self.tape_shape(lanes, n) or tape.dtype != dt:
            raise DiffaustError("internal error: forward_items: a tape of the wrong shape")
        if inst is None:
            inst = self._lane_instance(lanes[0])
        self.ready_tape_items(inst, values, tape)
        run = inst.compute_items([(x, 0)], [(y, 0), (tape, D, "packed")], items, n, bs, defer=defer)
        return run if defer else True

    def ready_tape_items(self, inst, values: dict, tape) -> None:
        """What `forward_items` sets before its call (a `runtime.lanes.CallPlan` of the tape
        pass sets it again before each run): the group's parameters on its tape program's lane
        instance (reset), and the tape's history (its first max_back samples, `tape_shape`;
        one group's, or (groups, ...) of several) zeroed."""
        self.tape_history(tape, inst.lanes)[...] = 0.0
        set_read_params(inst, self.dsp, values)

    def tape_history(self, tape, lanes: int):
        """The history of a tape of `lanes` lanes: its first max_back samples, read by the
        adjoint before time 0 (`tape_shape`), zeroed before the tape program runs."""
        return tape[..., :self.max_back * lanes]

    def ready_adjoint_items(self, inst, values: dict) -> None:
        """What `backward_items` sets before its call: the group's parameters on the adjoint
        program's lane instance (reset)."""
        set_read_params(inst, self.dsp, values)

    def backward_items(self, lanes, tape, y_bar, items, n: int, values: dict, g, *, inst=None, defer: bool = False):
        """`backward` of the items of one `forward_items` call at once (`tape`: its group's):
        ȳ (batch, outputs, n), g (batch, inputs, n) for x̄ (written), or a list of such arrays
        whose channels, in order, are the inputs'.  Returns (variables, len(items)): the gradient
        w.r.t. each parameter of `self.paths`, item by item.  inst: the adjoint's lane
        instance to run on, reset (default: this thread's); defer: prepared now, returns a
        callable that checks ȳ and runs it; the gradient is then ``inst.accumulators()``."""
        if lanes[0].lanes != lanes[1].lanes or tape.shape != self.tape_shape(lanes, n):
            raise DiffaustError("internal error: backward_items: the tape of another lane width")
        if inst is None:
            inst = self._lane_instance(lanes[1])
        self.ready_adjoint_items(inst, values)
        outs = [(a, 0) for a in (g if isinstance(g, (list, tuple)) else [g])] if self.n_inputs else []
        run = inst.compute_items([(y_bar, 0), (tape, self.max_back, "packed")], outs,
                                 items, n, max(1, n), defer=True)
        return checked_sums(inst, run, y_bar, items, defer)

    def _gradient(self, g, y, adj):
        words = adj._state
        values = [float(words[off // 8]) for off in self._acc]
        return Gradient(params=dict(zip(self.labels, values)), input=g, output=y,
                        by_path=dict(zip(self.paths, values)))


@dataclass
class TapeRun:
    """A block's forward pass kept for its backward pass (`Reverse.forward`)."""

    y: np.ndarray                 # (outputs, n) the primal outputs
    tape: Optional[np.ndarray]    # (tape channels, history + n), None: recomputed by checkpoints
    x: np.ndarray                 # (inputs, n)
    params: dict
    n: int
    block_size: Optional[int] = None  # of the forward pass (None: the Dsp's)


def _tape_buffer(T: int, D: int, n: int, dt) -> np.ndarray:
    """(T, D + n) for a tape: the D columns of history before time 0 are zeros, the rest is
    written by the tape program (every sample of every output: not zeroed first, whose fresh
    pages cost as much as a small program's render)."""
    a = np.empty((T, D + n), dtype=dt)
    a[:, :D] = 0.0
    return a


def _inputs(x, inputs: int, n: int, dt) -> np.ndarray:
    """x as (inputs, n) C-contiguous rows of dtype dt (zeros for None): Dsp's own check."""
    from .dsp import input_block

    return input_block(x, inputs, n, dt)[0]


def _check_cotangent(y_bar, outputs: int, n: int, dt) -> np.ndarray:
    try:
        a = np.asarray(y_bar)
    except (TypeError, ValueError) as e:
        raise UsageError(f"y_bar must be an array of shape (outputs, n): {e}") from None
    if a.ndim == 1 and outputs == 1:
        a = a[None, :]
    if a.shape != (outputs, n):
        raise UsageError(f"y_bar must have shape (outputs, samples) = {(outputs, n)}, got {a.shape}")
    if a.dtype.kind not in "fiub":
        raise UsageError(f"y_bar must hold real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=dt)
    if not all_finite(a):
        raise UsageError("y_bar holds NaN or Inf")
    return a


def _compile_signals(st, signals, n_inputs: int, dsp, what: str, reversed_io: bool = False, accumulate: int = 0,
                     partners: dict | None = None):
    """(a runnable Dsp (diff=False) for a list of output signals of the program of `st`, the
    byte offsets in its state of the accumulators summing its last `accumulate` outputs)."""
    from ..codegen.llvm import build_module, jit
    from ..codegen.schedule import schedule
    from ..signals.types import infer_types
    from .dsp import Dsp, _reserve_symbol
    from .pipeline import CompileOptions

    from contextlib import nullcontext

    from ..signals.nodes import walk
    from ..signals.ops import unbounded_inputs

    # the adjoint's inputs are cotangents and tape channels: not audio in [-1, 1] (the jvp
    # gradient's cotangents only multiply tangents that are summed: their range sizes nothing)
    with unbounded_inputs() if reversed_io else nullcontext():
        types = infer_types(signals)
        prog = schedule(signals, types, n_inputs, dsp.double, foreign=st.foreign, accumulate=accumulate,
                        partners=partners)
    prog.reversed_io = reversed_io
    from ..codegen.llvm import layout

    lay, size = layout(prog)
    params = [{"path": c.path, "label": c.label, "kind": c.kind, "init": c.init, "min": c.min, "max": c.max,
               "step": c.step, "meta": list(c.meta), "diff": c.is_diff, "offset": lay[slot][0]}
              for slot, c in prog.params]
    meta = {"inputs": n_inputs, "outputs": prog.outputs, "primal_outputs": prog.outputs, "params": params,
            "diff_indices": [], "derivative_names": [], "state_size": size, "metadata": [], "name": what,
            "block_dependent": any(s.op == "fvar" for s in walk(signals))}  # reads `count`
    sym = _reserve_symbol(f"{what}_{id(dsp):x}")
    mod = build_module(prog, sym)
    obj, _ = jit().emit_object(str(mod))
    addrs = jit().load(obj, sym)
    opts = CompileOptions(double=dsp.double)
    out = Dsp(meta, addrs[0], addrs[1], dsp.source, dsp.filename, opts, dsp.sample_rate)
    out._program = prog  # its schedule (Dsp.lanes lowers it again; the source is the primal's)
    return out, [lay[a][0] for a in prog.accumulators], prog
