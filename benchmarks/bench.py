#!/usr/bin/env python3
"""diffaust benchmarks, side by side with Faust's own C++ (issue 2's speed goals).

    python benchmarks/bench.py [--reps 5] [--only render,compile,train] [--examples one_pole,gain]

Sections (each prints 'n/a' and the reason when what it needs is missing):
  render   one-pole filter (+~*(a), a slider), 10 s at 48 kHz, float: diffaust's
           ``diffaust.compile(src).render(x)`` (median of --reps) vs the Faust 2.54.9 C++
           built with g++ -O3 -ffp-contract=off (tests/faustref.py, compute() only, median).
           Goal: diffaust <= 2x the reference.
  compile  ``diffaust.compile(example/diff.dsp, diff=True)`` for each bundled example, in a
           fresh process: cold (empty $DIFFAUST_CACHE_DIR, libraries included) and warm (same
           cache, new process). Only the compile call is timed; the process start + import is
           shown on its own row. Reference column: ``faust -lang cpp`` on the same file.
           Goals: cold < 1 s, warm < 0.05 s.
  train    10,000 per-sample training iterations of the one_zero example after compilation
           (``diffaust.train.fit.fit``). Goal: < 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/faustref.py re-exports diffaust.reference

EXAMPLES = ROOT / "src" / "diffaust" / "examples"
SR = 48000
SECONDS = 10
ONE_POLE = 'a = hslider("a", 0.9, 0, 0.99, 0.001);\nprocess = + ~ *(a);\n'

ROWS: list[tuple] = []


def row(what, ours=None, ref=None, goal="", ok=None, note=""):
    ratio = f"{ours / ref:.2f}x" if isinstance(ours, float) and isinstance(ref, float) and ref > 0 else ""
    fmt = lambda v: f"{v * 1e3:.2f} ms" if isinstance(v, float) else (v if v is not None else "n/a")
    verdict = "" if ok is None else ("pass" if ok else "FAIL")
    ROWS.append((what, fmt(ours), fmt(ref), ratio, goal, verdict or note))


def na(what, reason):
    ROWS.append((what, "n/a", "n/a", "", "", reason))


def print_table():
    head = ("what", "diffaust", "reference", "ratio", "goal", "pass/fail")
    widths = [max(len(str(r[i])) for r in ROWS + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in ROWS:
        print(line(r))


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:110]


# ----------------------------------------------------------------------------- render
def bench_render(reps: int) -> None:
    what = f"render one-pole {SECONDS} s @ {SR // 1000} kHz (float)"
    n = SR * SECONDS
    import faustref

    x = faustref.noise_input(1, n)
    ours = ref = None
    try:
        import diffaust

        dsp = diffaust.compile(ONE_POLE, sample_rate=SR)
        x32 = x.astype(np.float32)
        dsp.render(x=x32)  # warm-up (first call may allocate / load)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            dsp.render(x=x32)
            times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
    except Exception as e:  # noqa: BLE001 - report and go on
        ours = f"n/a ({_reason(e)})"
    if faustref.faust_available():
        try:
            ref = statistics.median(faustref.bench_reference(
                ONE_POLE, n, x=x, reps=reps, sample_rate=SR, opt="-O3"))
        except Exception as e:  # noqa: BLE001
            ref = f"n/a ({_reason(e)})"
    else:
        ref = "n/a (faust/g++ missing)"
    ok = (ours <= 2 * ref) if isinstance(ours, float) and isinstance(ref, float) else None
    row(what, ours, ref, "<= 2x C++ -O3", ok)


# ----------------------------------------------------------------------------- compile
CHILD = r"""
import importlib, json, sys, time
t0 = time.perf_counter()
import diffaust
# diffaust imports its heavy modules lazily; import them here so that the timed call
# is the compile itself (they are part of "process start + import").
for name in ("numpy", "llvmlite.binding", "diffaust.runtime", "diffaust.runtime.dsp", "diffaust.codegen.llvm"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
t1 = time.perf_counter()
diffaust.compile(sys.argv[1], diff=sys.argv[2] == "1")
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "compile": t2 - t1}))
"""


def _child(path: Path, diff: bool, cache: str) -> dict:
    env = dict(os.environ, DIFFAUST_CACHE_DIR=cache)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, str(path), "1" if diff else "0"],
                       capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or ["failed"])[-1])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["start"] = wall - out["compile"]  # process start + import + exit
    return out


def _faust_time(path: Path) -> float | str:
    if not shutil.which("faust"):
        return "n/a (no faust)"
    t0 = time.perf_counter()
    p = subprocess.run(["faust", "-lang", "cpp", str(path), "-o", os.devnull],
                       capture_output=True, text=True, timeout=120)
    dt = time.perf_counter() - t0
    return dt if p.returncode == 0 else "n/a (faust rejects it)"


def bench_compile(names: list[str] | None) -> None:
    try:
        import diffaust

        if not callable(getattr(diffaust, "compile", None)):
            raise ImportError("diffaust.compile is missing")
    except Exception as e:  # noqa: BLE001
        na("compile examples", _reason(e))
        return
    dirs = sorted(d for d in EXAMPLES.iterdir() if (d / "diff.dsp").exists()) if EXAMPLES.is_dir() else []
    if names:
        dirs = [d for d in dirs if d.name in names]
    if not dirs:
        na("compile examples", "no src/diffaust/examples/*/diff.dsp")
        return
    jobs = [(d.name, d / "diff.dsp") for d in dirs]
    if not names and (ROOT / "tests" / "programs" / "stdlib.dsp").exists():
        jobs.append(("stdlib.dsp (stdfaust.lib)", ROOT / "tests" / "programs" / "stdlib.dsp"))
    starts = []
    for name, path in jobs:
        ref = _faust_time(path)
        cache = tempfile.mkdtemp(prefix="diffaust-bench-")
        try:
            cold = _child(path, True, cache)
            warm = _child(path, True, cache)
            starts.append(warm["start"])
            row(f"compile {name} -diff, cold", cold["compile"], ref, "< 1 s", cold["compile"] < 1.0)
            row(f"compile {name} -diff, warm (disk cache)", warm["compile"], None, "< 0.05 s",
                warm["compile"] < 0.05)
        except Exception as e:  # noqa: BLE001
            na(f"compile {name}", _reason(e))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    if starts:
        row("  process start + import diffaust (median)", statistics.median(starts), None, "(info)", None)


# ----------------------------------------------------------------------------- train
def bench_train() -> None:
    what = "train one_zero: 10,000 per-sample iterations"
    try:
        import diffaust
        from diffaust.train.fit import fit
    except Exception as e:  # noqa: BLE001
        na(what, _reason(e))
        return
    try:
        import faustref

        n = 10_000
        x = faustref.noise_input(1, n)
        gt = diffaust.compile(EXAMPLES / "one_zero" / "gt.dsp")
        target = np.asarray(gt.render(x=x.astype(np.float32)), dtype=np.float64)
        dsp = diffaust.compile(EXAMPLES / "one_zero" / "diff.dsp", diff=True)
        t0 = time.perf_counter()
        hist = fit(dsp, target, x, iterations=n, patience=None)
        dt = time.perf_counter() - t0
        done = getattr(hist, "iterations", None)
        done = done() if callable(done) else done
        note = "" if done in (None, n) else f"only {done} iterations ran"
        row(what, dt, None, "< 1 s", dt < 1.0 and not note, note)
    except Exception as e:  # noqa: BLE001
        na(what, _reason(e))
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions for the render timing (median)")
    ap.add_argument("--only", default="render,compile,train", help="comma-separated sections")
    ap.add_argument("--examples", default="", help="comma-separated example names (compile section)")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if "render" in only:
        bench_render(args.reps)
    if "compile" in only:
        bench_compile([s for s in args.examples.split(",") if s] or None)
    if "train" in only:
        bench_train()
    print_table()
    return 1 if any(r[5] == "FAIL" for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
