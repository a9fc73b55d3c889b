"""The PyTorch layer's work outside its compiled calls, per step (issue 12's scaling).

One step as in benchmarks/torch_layer.py (resonlp, a batch of 16 one-second examples,
``y = layer(x, params); y.backward(w)``), with the compiled calls made no-ops (the native
pool's `run` and a lane instance's `_run` do nothing): what is left is the Python and torch
around them, warm (no 12 MB of samples streamed through the cache between them, as the
real calls do).  Beside it, torch's own share: the same step through a do-nothing
`torch.autograd.Function` with the same inputs and outputs.  Medians of --reps steps.

    python benchmarks/torch_overhead.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)
from torch_layer import BATCH, N, RESONLP, RESONLP_RANGES, SEED, SR, batch_values, noise  # noqa: E402


def median_step(step, reps: int) -> float:
    for _ in range(50):
        step()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def layer_step(x_grad: bool, threads: int):
    import torch

    from diffaust.torch import FaustModule

    x = torch.from_numpy(noise((BATCH, 1, N), SEED)).requires_grad_(x_grad)
    w = torch.from_numpy(noise((BATCH, 1, N), SEED + 1))
    params = {k: torch.tensor(v, dtype=torch.float32).requires_grad_()
              for k, v in batch_values(RESONLP_RANGES).items()}
    m = FaustModule(RESONLP, sample_rate=SR, threads=threads, ad="reverse")

    def step():
        for t in (x, *params.values()):
            t.grad = None
        m(x, params).backward(w)

    return step


def torch_step(x_grad: bool):
    import torch

    x = torch.from_numpy(noise((BATCH, 1, N), SEED)).requires_grad_(x_grad)
    w = torch.from_numpy(noise((BATCH, 1, N), SEED + 1))
    params = [torch.rand(BATCH).requires_grad_() for _ in RESONLP_RANGES]
    out = np.zeros((BATCH, 1, N), np.float32)

    class Nothing(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, *p):
            ctx.save_for_backward(x, *p)
            return torch.from_numpy(out)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, gy):
            ctx.saved_tensors  # noqa: B018
            gx = torch.from_numpy(np.empty((BATCH, 1, N), np.float32)) if x_grad else None
            return (gx,) + tuple(torch.from_numpy(np.zeros(BATCH, np.float32)) for _ in params)

    def step():
        for t in (x, *params):
            t.grad = None
        Nothing.apply(x, *params).backward(w)

    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    args = ap.parse_args(argv)
    import diffaust.runtime.lanes as lanes
    import diffaust.runtime.pool as pool

    pool.NativePool.run = lambda self, jobs: None  # no compiled call: what is around them
    lanes.LaneInstance._run = lambda self, *a: None
    print("| x grad | layer, 1 thread | layer, 2 threads | torch's share (a do-nothing Function) |")
    print("|---|---|---|---|")
    for x_grad in (True, False):
        t1, t2 = (median_step(layer_step(x_grad, k), args.reps) for k in (1, 2))
        tt = median_step(torch_step(x_grad), args.reps)
        print(f"| {'yes' if x_grad else 'no'} | {t1 * 1e6:.0f} µs | {t2 * 1e6:.0f} µs | {tt * 1e6:.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
