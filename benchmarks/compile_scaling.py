#!/usr/bin/env python3
"""Compile time of large programs (issue 9, point 8), side by side with the Faust compiler.

    python benchmarks/compile_scaling.py [--only chain100,chain200,merge1000,par5000]
                                         [--reps 1] [--no-faust] [--timeout 600]

One row per program: the time of ``diffaust.compile(src, diff=..., use_cache=False)`` end to
end (front end, differentiation, scheduling, LLVM optimization and code generation), in a
fresh process whose numpy and llvmlite are already imported (only the call is timed; the
fastest of --reps runs); the reference column is ``faust -lang cpp`` on the same text, output
to /dev/null, measured in the same run (Faust 2.54.9 has no ``-diff``: for the chains it
compiles the program itself, without derivatives).

  chain100   100 one-pole filters in series, each with its own [diff:1] coefficient, -diff
             (5,050 tangent recursions: the derivative of stage k's output with respect to
             every coefficient before it).  Goal: < 10 s.
  chain200   the same with 200 (20,100 tangent recursions).  Information.
  merge1000  ``process = par(i, 1000, _) :> _;`` (a sum of 1,000 inputs).  Goal: < 20 s.
  par5000    ``process = par(i, 5000, _);`` (5,000 channels).  Goal: < 20 s.

It prints one table and exits with status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def chain(n: int) -> str:
    return ('one_pole(i) = _ : *(1-a) : + ~ *(a) with { a = hslider("a%i [diff:1]", 0.5, 0, 0.99, 0.01); };\n'
            f"process = seq(i, {n}, one_pole(i));\n")


CASES = [
    # (name, what, source, diff, goal in seconds or None)
    ("chain100", "-diff, 100 chained one-poles, 100 [diff:1] parameters", chain(100), True, 10.0),
    ("chain200", "-diff, 200 chained one-poles, 200 [diff:1] parameters", chain(200), True, None),
    ("merge1000", "par(i, 1000, _) :> _  (1,000-input merge)", "process = par(i, 1000, _) :> _;\n", False, 20.0),
    ("par5000", "par(i, 5000, _)  (5,000 channels)", "process = par(i, 5000, _);\n", False, 20.0),
]

CHILD = r"""
import importlib, json, sys, time
import diffaust
for name in ("numpy", "llvmlite.binding", "diffaust.runtime.dsp", "diffaust.codegen.llvm"):
    importlib.import_module(name)
from diffaust.codegen.llvm import jit
jit()  # the process's JIT (about 15 ms, once per process) is not part of a compile
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
d = diffaust.compile(spec["src"], diff=spec["diff"], use_cache=False)
t1 = time.perf_counter()
print(json.dumps({"compile": t1 - t0, "outputs": d.total_outputs}))
"""


def diffaust_time(src: str, diff: bool, timeout: float) -> tuple[float, int]:
    """Seconds of one compile in a fresh process, and the program's channel count."""
    with tempfile.TemporaryDirectory(prefix="diffaust-scaling-") as cache:
        env = dict(os.environ, DIFFAUST_CACHE_DIR=cache, PYTHONPATH=str(ROOT / "src") + os.pathsep
                   + os.environ.get("PYTHONPATH", ""))
        p = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"src": src, "diff": diff})],
                           capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or [f"status {p.returncode}"])[-1])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["compile"], out["outputs"]


def faust_time(src: str, timeout: float) -> float | str:
    if not shutil.which("faust"):
        return "n/a (no faust)"
    with tempfile.TemporaryDirectory(prefix="diffaust-scaling-") as d:
        f = Path(d) / "p.dsp"
        f.write_text(src)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(["faust", "-lang", "cpp", str(f), "-o", os.devnull],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"n/a (over {timeout:.0f} s)"
        dt = time.perf_counter() - t0
    return dt if p.returncode == 0 else "n/a (faust rejects it)"


def fmt(v) -> str:
    return f"{v:.2f} s" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated case names (default: all)")
    ap.add_argument("--reps", type=int, default=1, help="diffaust compiles per case, the fastest counts")
    ap.add_argument("--no-faust", action="store_true", help="leave out the reference column")
    ap.add_argument("--timeout", type=float, default=600, help="seconds, per compile")
    args = ap.parse_args(argv)
    names = set(args.only.split(",")) if args.only else None
    rows, failed = [], False
    for name, what, src, diff, goal in CASES:
        if names and name not in names:
            continue
        try:
            runs = [diffaust_time(src, diff, args.timeout) for _ in range(max(1, args.reps))]
            ours, outputs = min(r[0] for r in runs), runs[0][1]
        except Exception as e:  # noqa: BLE001 - report and go on
            ours, outputs = f"n/a ({type(e).__name__}: {str(e)[:60]})", "?"
        ref = "(not measured)" if args.no_faust else faust_time(src, args.timeout)
        ratio = f"{ours / ref:.2f}x" if isinstance(ours, float) and isinstance(ref, float) else ""
        if goal is None:
            verdict, goal_s = "(info)", ""
        else:
            ok = isinstance(ours, float) and ours < goal
            failed |= not ok
            verdict, goal_s = ("pass" if ok else "FAIL"), f"< {goal:.0f} s"
        rows.append((name, what, f"{outputs}", fmt(ours), fmt(ref), ratio, goal_s, verdict))
        print(f"  {name}: diffaust {fmt(ours)}, faust {fmt(ref)}", file=sys.stderr, flush=True)
    head = ("case", "program", "channels", "diffaust", "faust -lang cpp", "ratio", "goal", "pass/fail")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
