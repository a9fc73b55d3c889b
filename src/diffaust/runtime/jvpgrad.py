"""The gradient of Σ ȳ·y w.r.t. parameters constant over the block, by forward mode, summed
in the compiled loop.

    g_j = Σ_n Σ_o ȳ_o[n] · ∂y_o[n]/∂p_j          (j over the [diff:1] parameters)

is what a training layer's backward pass needs from forward mode (DDSP: a network predicts
the parameters; the excitation needs no gradient).  Instead of writing the derivative
channels ∂y_o/∂p_j (P·O·n samples, as large as P + 1 renders' outputs) and taking the dot
products afterwards, one program computes the tangents and sums ȳ_o·ẏ_o,j as it goes:

    inputs:       the program's inputs, then ȳ_o for each output o
    outputs:      none
    accumulators: g_j, one per parameter (double: `schedule.Accumulate`)

The tangents are those of `-diff` (autodiff/jvp.py: the same rules, tested against
finite differences); the products ȳ_o·ẏ_o,j are taken in the program's precision and
summed over time in double.  With `Dsp.lanes`, a group of batch items runs in one call.
"""

from __future__ import annotations

import threading
from typing import Optional

from ..errors import DiffaustError, UsageError
from .dsp import set_read_params, thread_instance
from .lanes import checked_sums


class JvpGradient:
    """The compiled gradient program of a Dsp (built by `Dsp.jvp_gradient` on first use)."""

    def __init__(self, dsp):
        from ..autodiff.jvp import jvp_program
        from ..signals import build as B
        from ..signals.nodes import input_
        from .reverse import _compile_signals, program_signals

        with program_signals(dsp) as (st, variables, nondiff):
            if not variables:
                raise UsageError("the program has no [diff:1] parameter: there is no gradient to compute")
            warnings: list = []
            partners: dict = {}
            with B.paused_gc():
                tangents = jvp_program(st.outputs, variables, nondiff=nondiff, warnings=warnings, partners=partners)
                I, O = st.inputs, len(st.outputs)
                sums = []
                for j in range(len(variables)):
                    g = B.const(0.0)
                    for o in range(O):  # Σ_o ȳ_o·ẏ_o,j
                        g = B.add(g, B.mul(input_(I + o), tangents[o][j]))
                    sums.append(g)
            self.warnings = warnings
            self.dsp, self._acc, self.program = _compile_signals(
                st, sums, I + O, dsp, "jvpgrad", accumulate=len(variables), partners=partners)
        if self.dsp.total_outputs != 0:
            raise DiffaustError("internal error: the jvp gradient program has outputs")
        self.n_inputs, self.n_outputs = I, O
        self.labels = [v.attr.label for v in variables]
        self.paths = [v.attr.path for v in variables]
        self.primal = dsp
        self._tls = threading.local()

    def _instance(self, params):
        inst = thread_instance(self._tls, "instances", self.dsp)
        set_read_params(inst, self.primal, params)
        return inst

    def run(self, x, y_bar, n: int, params: Optional[dict] = None, block_size: Optional[int] = None) -> dict:
        """{path: g_j} for one block of n samples from a reset state: x (inputs, n), ȳ (outputs, n)."""
        from .reverse import _check_cotangent, _inputs

        dt = self.dsp.dtype
        xs = _inputs(x, self.n_inputs, n, dt)
        yb = _check_cotangent(y_bar, self.n_outputs, n, dt)
        inst = self._instance(params)
        inst.compute_rows(list(xs) + list(yb), [], n, self.primal._bs(block_size))
        words = inst._state
        return {path: float(words[off // 8]) for path, off in zip(self.paths, self._acc)}

    def lane_instance(self, lanes):
        """This thread's instance of the lane programs `lanes` (``self.dsp.lanes()``), reset."""
        return thread_instance(self._tls, "lane_instances", lanes)

    def ready_items(self, inst, values: dict) -> None:
        """What `run_items` sets before its call (a `runtime.lanes.CallPlan` sets it again
        before each run): the group's parameters on the lane instance (reset)."""
        set_read_params(inst, self.primal, values)

    def run_items(self, lanes, x, y_bar, items, n: int, values: dict, block_size: Optional[int] = None, *,
                  inst=None, defer: bool = False):
        """`run` for the batch items `items` (at most the lane width) at once, in the lanes of
        `lanes` (``self.dsp.lanes()``): x (batch, inputs, n) and ȳ (batch, outputs, n)
        C-contiguous arrays of the samples' dtype; values: {path: values over `items`} of
        the parameters set.  Returns (parameters, len(items)): g_j of each item, in
        `self.paths` order.  inst: the lane instance to run on, reset (default: this
        thread's); defer: prepared now, returns a callable that checks ȳ and runs it; g is
        then ``inst.accumulators()``."""
        if inst is None:
            inst = self.lane_instance(lanes)
        self.ready_items(inst, values)
        run = inst.compute_items([(x, 0), (y_bar, 0)], [], items, n, self.primal._bs(block_size), defer=True)
        return checked_sums(inst, run, y_bar, items, defer)
