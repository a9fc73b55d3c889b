"""Forward mode's P tangents in P SIMD lanes: `render_jvp` of a large derivative program.

The derivative program computes the primal and one tangent per `[diff:1]` parameter, each
tangent a program about as large as the primal: for zita_rev1 with P = 2, 1,211 loop
statements against the primal's ~400, and the loop spills (docs/DESIGN-NOTES.md, "Fitting
real sounds"): 3.5–3.7× the primal render.  Here one program computes the primal and the
tangent along a direction v given by P seed widgets (autodiff/jvp.py,
`DirectionalTangents`), lowered in P lanes (codegen/lanes.py) with v = e_k in lane k:
lane k's tangent is d/dp_k, and the P tangents share the instructions (and registers) of
one.  Every lane reads the same input and writes the same primal outputs (equal values).

Used by `Dsp.render_jvp` when the derivative program is large (`MIN_LOOP_STATEMENTS`
statements in its loop: a small loop is latency-bound, its tangents already overlap, and
lanes only add their I/O — resonlp: 0.34 ms in lanes against 0.27 ms) and 2 ≤ P ≤ 16.
The result equals the per-variable program's to rounding (the union's operations in
another order: 3e-7 relative in float, 4e-16 in double, on zita); a tangent that comes
out NaN or infinite — a contribution 0·∞ where another variable's partial is infinite —
makes `render_jvp` run the per-variable program instead, so no derivative is worse than
that program's.
"""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ..errors import UsageError
from .dsp import set_read_params, thread_instance
from .kernels import all_finite

MIN_LOOP_STATEMENTS = 400  # a derivative program's loop at least this long runs its tangents in lanes
MAX_LANES = 16
SEED_PATH = "/__diffaust_direction__/v{}"  # the seed widgets (no Faust path has this form)


class DirectionalLanes:
    """The directional program of a diff Dsp in P lanes (built by `Dsp.render_jvp`)."""

    def __init__(self, dsp):
        from ..autodiff.jvp import directional_jvp_program
        from ..signals.nodes import Control, mk
        from .reverse import _compile_signals, program_signals

        with program_signals(dsp) as (st, variables, nondiff):
            P = len(variables)
            seeds = [mk("control", Control("hslider", SEED_PATH.format(j), f"v{j}", 0.0, 0.0, 1.0, 0.0))
                     for j in range(P)]
            warnings: list = []
            partners: dict = {}
            tangents = directional_jvp_program(st.outputs, variables, seeds, nondiff=nondiff, warnings=warnings,
                                               partners=partners)
            self.dsp, _, self.program = _compile_signals(st, list(st.outputs) + tangents, st.inputs, dsp, "jvpdir",
                                                         partners=partners)
        self.warnings = []  # the derivative program's compile has shown them
        self.primal = dsp
        self.P, self.O = P, len(st.outputs)
        self.paths = [v.attr.path for v in variables]
        # every lane reads the same input and parameters: the primal is uniform, computed once
        # as scalars; only the tangents, which read the seeds, are vectors
        read = {p.path for p in self.dsp.params}
        self.seeds_read = [j for j in range(P) if SEED_PATH.format(j) in read]
        self.lanes = self.dsp.lanes(P, shared_inputs=range(self.dsp.inputs),
                                    shared_params=[p.path for p in self.dsp.params
                                                   if not p.path.startswith(SEED_PATH.format(""))])
        self._tls = threading.local()

    def render(self, x, n: int, params: Optional[dict], block_size: int, reuse: bool):
        """(y (outputs, n), dy (outputs, P, n)), or None when a tangent is not finite."""
        from .dsp import input_block

        d, P, O = self.dsp, self.P, self.O
        L = self.lanes.lanes
        dt = d.dtype
        xs, n = input_block(x, d.inputs, n, dt)
        if params is not None and not hasattr(params, "items"):
            raise UsageError(f"params must be a dict {{name: value}}, got {type(params).__name__}")
        values = {}
        for k, v in (params or {}).items():
            try:
                values[k] = np.full(L, float(v))
            except (TypeError, ValueError):
                label = self.primal.params[self.primal.param_index(k)].label
                raise UsageError(f"parameter '{label}': the value must be a real number, got {v!r}") from None
        inst = thread_instance(self._tls, "lanes", self.lanes)
        set_read_params(inst, self.primal, values)
        for j in self.seeds_read:  # (a seed the program does not read: that tangent is 0)
            inst.set_param(SEED_PATH.format(j), np.eye(L)[j])
        if reuse:
            bufs = self._tls.__dict__.setdefault("buffers", {})
            if bufs.get("n") != n:
                bufs.update(n=n, y=np.empty((L, O, n), dtype=dt), dy=np.empty((O, P, n), dtype=dt))
            y, dy = bufs["y"], bufs["dy"]
        else:
            y, dy = np.empty((L, O, n), dtype=dt), np.empty((O, P, n), dtype=dt)
        # every lane reads x; lane k writes its primal outputs (equal in every lane) to y[k]
        # (lanes storing to one row stall on each other) and its tangent of output o,
        # d out_o/dp_k, to dy[o, k] (L = P lanes)
        inst.compute_items([(np.ascontiguousarray(xs)[None], 0)],
                           [(y, 0, range(L)), (dy.transpose(1, 0, 2), 0, range(L))], [0] * L, n, block_size)
        if not all_finite(dy):
            return None
        return y[0], dy
