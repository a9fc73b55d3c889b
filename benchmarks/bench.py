#!/usr/bin/env python3
"""diffaust benchmarks, side by side with Faust's own C++ (issue 2's speed goals).

    python benchmarks/bench.py [--reps 5] [--only render,compile,train,latency,speed,corpus]
                               [--examples one_pole,gain] [--limit N] [--corpus-cache both|own|shared]

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
  latency  ``diffaust.compile(src)`` of ``re.zita_rev1_stereo`` (stdfaust.lib) in a fresh process:
           cold (empty $DIFFAUST_CACHE_DIR: no compiled code, libraries parsed from scratch; median
           of min(--reps, 3) runs) and warm (second fresh process, same cache dir).
           Goals: cold < 2 s, warm < 0.2 s.
  speed    render 10 s of float noise at 48 kHz in blocks of 256: Faust's zitaRev, clarinet,
           faust-stk clarinet, englishBell examples (and the zita_rev1_stereo expression). Only the
           compute() calls are timed on both sides: diffaust's compute is called block after block
           by a native loop (``diffaust.codegen.llvm.block_driver``), the reference is the Faust C++
           built with g++ -O3 -ffp-contract=off driven the same way; the two alternate, --reps
           times, medians compared. Goal: diffaust <= 1.5x the reference.
  corpus   the cold compile time of every .dsp of Faust's examples
           (/usr/share/doc/faust-common/examples) that ``faust`` compiles, each in a fresh process
           with ``diffaust.compile(path, import_dirs=(its folder,))``; --limit N takes N of them,
           evenly spaced. Two cache setups (--corpus-cache): ``own`` = an empty cache dir per
           program, ``shared`` = one cache dir for all (primed first), so the foreign-function
           shims (faust-stk's headers) are built once but every program's compiled code is not
           in it yet (parsed libraries are not cached on disk: parsing is faster than unpickling). Goal: median < 0.5 s. The reference column is the median time of
           ``faust -lang cpp`` (measured while checking which programs faust accepts, in parallel).
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
NOTES: list[str] = []  # printed after the table


def row(what, ours=None, ref=None, goal="", ok=None, note=""):
    ratio = f"{ours / ref:.2f}x" if isinstance(ours, float) and isinstance(ref, float) and ref > 0 else ""
    fmt = lambda v: f"{v * 1e3:.2f} ms" if isinstance(v, float) else (v if v is not None else "n/a")
    verdict = "" if ok is None else ("pass" if ok else "FAIL")
    ROWS.append((what, fmt(ours), fmt(ref), ratio, goal, verdict or note))


def na(what, reason):
    ROWS.append((what, "n/a", "n/a", "", "", reason))


def info(what, ours, ref=""):
    """An information row (no goal): values are seconds (float) or text."""
    fmt = lambda v: f"{v * 1e3:.2f} ms" if isinstance(v, float) else str(v)
    ROWS.append((what, fmt(ours), fmt(ref), "", "(info)", ""))


def print_table():
    head = ("what", "diffaust", "reference", "ratio", "goal", "pass/fail")
    widths = [max(len(str(r[i])) for r in ROWS + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in ROWS:
        print(line(r))
    for n in NOTES:
        print(n)


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
spec = json.loads(sys.argv[1])
t1 = time.perf_counter()
diffaust.compile(spec["src"], **spec.get("kwargs", {}))
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "compile": t2 - t1}))
"""


def _child(path, diff: bool, cache: str, timeout: float = 300, **kwargs) -> dict:
    """Compile ``path`` (a file or source text) in a fresh process with DIFFAUST_CACHE_DIR=cache:
    {"import": s, "compile": s, "start": process start + import + exit, s}."""
    env = dict(os.environ, DIFFAUST_CACHE_DIR=cache)
    spec = json.dumps({"src": str(path), "kwargs": dict(kwargs, diff=diff)})
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, spec],
                       capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or [f"failed (status {p.returncode})"])[-1])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["start"] = wall - out["compile"]  # process start + import + exit
    return out


def _faust_time(path: Path, timeout: float = 120) -> float | str:
    """Seconds of ``faust -lang cpp`` on a file (its folder searched), or 'n/a (why)'."""
    if not shutil.which("faust"):
        return "n/a (no faust)"
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["faust", "-lang", "cpp", "-I", str(Path(path).parent), str(path),
                            "-o", os.devnull], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "n/a (faust timed out)"
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


# ----------------------------------------------------------------------------- latency
FAUST_EXAMPLES = Path("/usr/share/doc/faust-common/examples")
ZITA_SRC = 'import("stdfaust.lib");\nprocess = re.zita_rev1_stereo(60, 200, 6000, 3, 2, 48000);\n'


def bench_latency(reps: int) -> None:
    what = "latency zita_rev1_stereo (stdfaust.lib)"
    try:
        import diffaust  # noqa: F401
    except Exception as e:  # noqa: BLE001
        na(what, _reason(e))
        return
    ref = "n/a (no faust)"
    if shutil.which("faust"):
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "zita.dsp"
            f.write_text(ZITA_SRC)
            ref = _faust_time(f)
    colds, warms, starts = [], [], []
    try:
        for _ in range(max(1, min(reps, 3))):
            cache = tempfile.mkdtemp(prefix="diffaust-bench-")
            try:
                colds.append(_child(ZITA_SRC, False, cache)["compile"])
                w = _child(ZITA_SRC, False, cache)
                warms.append(w["compile"])
                starts.append(w["start"])
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    except Exception as e:  # noqa: BLE001
        na(what, _reason(e))
        return
    cold, warm, start = (statistics.median(v) for v in (colds, warms, starts))
    row(f"{what}, cold (fresh process, empty cache)", cold, ref, "< 2 s", cold < 2.0)
    row(f"{what}, warm (fresh process, disk cache)", warm, None, "< 0.2 s", warm < 0.2)
    info("  warm, with process start + import diffaust", warm + start)


# ----------------------------------------------------------------------------- speed
PM = FAUST_EXAMPLES / "physicalModeling"
SPEED = [
    # (row name, file or source text, parameters set before the first sample)
    ("reverb/zitaRev.dsp", FAUST_EXAMPLES / "reverb" / "zitaRev.dsp", {}),
    ("zita_rev1_stereo (expression)", ZITA_SRC, {}),
    ("physicalModeling/clarinet.dsp pressure=.5", PM / "clarinet.dsp", {"pressure": 0.5}),
    ("physicalModeling/faust-stk/clarinet.dsp gate=1", PM / "faust-stk" / "clarinet.dsp", {"gate": 1}),
    ("physicalModeling/englishBell.dsp", PM / "englishBell.dsp", {}),
]


def _speed_runner(dsp, x, params, block_size: int):
    """A function timing one render of x (seconds of compute() calls only, native block loop)."""
    import ctypes

    from diffaust.codegen.llvm import block_driver

    drive = block_driver(dsp.double)
    n = x.shape[1]
    inst = dsp.instance(params)
    y = np.zeros((dsp.total_outputs, n), dtype=dsp.dtype)
    ip = (ctypes.c_void_p * max(dsp.inputs, 1))(*[x[i].ctypes.data for i in range(dsp.inputs)])
    op = (ctypes.c_void_p * max(dsp.total_outputs, 1))(*[y[i].ctypes.data for i in range(dsp.total_outputs)])
    compute = ctypes.cast(dsp._compute, ctypes.c_void_p).value
    keep = (x, y, ip, op)  # the buffers live as long as the runner

    def run() -> float:
        assert keep
        inst.reset()
        for k, v in (params or {}).items():
            inst.set_param(k, v)
        t0 = time.perf_counter()
        drive(compute, inst._addr, n, block_size, dsp.inputs, dsp.total_outputs,
              ctypes.addressof(ip), ctypes.addressof(op))
        return time.perf_counter() - t0

    run.output = y
    return run


def bench_speed(reps: int, block_size: int = 256) -> None:
    try:
        import diffaust
        import faustref
    except Exception as e:  # noqa: BLE001
        na("speed", _reason(e))
        return
    n = SR * SECONDS
    have_ref = faustref.faust_available()
    for name, src, params in SPEED:
        what = f"render {name} {SECONDS} s @ {SR // 1000} kHz, blocks of {block_size} (float)"
        if isinstance(src, Path) and not src.exists():
            na(what, f"{src} missing")
            continue
        try:
            kw = {"import_dirs": (str(src.parent),)} if isinstance(src, Path) else {}
            dsp = diffaust.compile(str(src) if isinstance(src, Path) else src, sample_rate=SR, **kw)
            x = faustref.noise_input(dsp.inputs, n)
            run = _speed_runner(dsp, np.ascontiguousarray(x, dtype=np.float32), params, block_size)
            run()  # warm-up
            if not np.isfinite(run.output).all():
                raise RuntimeError("non-finite output")
        except Exception as e:  # noqa: BLE001
            na(what, _reason(e))
            continue
        ours, refs, ref_note = [], [], None
        for _ in range(reps):  # alternate, so that both sides see the same machine load
            ours.append(run())
            if have_ref and ref_note is None:
                try:
                    # bench mode: repetition 0 is a warm-up; ask for 2, keep what comes back
                    refs.extend(faustref.bench_reference(src, n, x=x, params=params, reps=2,
                                                         sample_rate=SR, block_size=block_size,
                                                         opt="-O3"))
                except Exception as e:  # noqa: BLE001
                    ref_note = f"n/a ({_reason(e)})"
        ref = statistics.median(refs) if refs else (ref_note or "n/a (faust/g++ missing)")
        ours_m = statistics.median(ours)
        ok = (ours_m <= 1.5 * ref) if isinstance(ref, float) else None
        row(what, ours_m, ref, "<= 1.5x C++ -O3", ok)


# ----------------------------------------------------------------------------- corpus
def _corpus_files(limit: int | None) -> list[Path]:
    files = sorted(FAUST_EXAMPLES.rglob("*.dsp")) if FAUST_EXAMPLES.is_dir() else []
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(k * step)] for k in range(limit)]
    return files


def bench_corpus(limit: int | None, modes: list[str]) -> None:
    what = "corpus: Faust examples, median cold compile"
    try:
        import diffaust  # noqa: F401
    except Exception as e:  # noqa: BLE001
        na(what, _reason(e))
        return
    files = _corpus_files(limit)
    if not files:
        na(what, f"no .dsp under {FAUST_EXAMPLES}")
        return
    if not shutil.which("faust"):
        na(what, "faust missing: cannot tell which examples faust compiles")
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        ftimes = dict(zip(files, ex.map(_faust_time, files)))
    accepted = [f for f in files if isinstance(ftimes[f], float)]
    ref = statistics.median(ftimes[f] for f in accepted) if accepted else None
    NOTES.append(f"corpus: {len(accepted)} of {len(files)} examples compile with faust")
    for mode in modes:
        shared = tempfile.mkdtemp(prefix="diffaust-bench-") if mode == "shared" else None
        times, failed, results = [], [], []
        try:
            if shared:  # prime the shared cache
                try:
                    _child('import("stdfaust.lib");\nprocess = os.osc(440);\n', False, shared)
                except Exception:  # noqa: BLE001
                    pass
            for k, f in enumerate(accepted):
                cache = shared or tempfile.mkdtemp(prefix="diffaust-bench-")
                try:
                    r = _child(f, False, cache, timeout=600, import_dirs=[str(f.parent)])
                    times.append(r["compile"])
                    results.append((r["compile"], f))
                except Exception as e:  # noqa: BLE001
                    failed.append((f, _reason(e)))
                finally:
                    if not shared:
                        shutil.rmtree(cache, ignore_errors=True)
                if (k + 1) % 25 == 0:
                    print(f"corpus ({mode}): {k + 1}/{len(accepted)}", file=sys.stderr)
        finally:
            if shared:
                shutil.rmtree(shared, ignore_errors=True)
        label = {"own": "empty cache per program", "shared": "one shared cache dir"}[mode]
        if not times:
            na(f"{what} ({label})", "nothing compiled")
            continue
        med = statistics.median(times)
        row(f"{what} ({label}, {len(times)} programs)", med, ref, "< 0.5 s", med < 0.5)
        qs = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else [times[0]] * 9
        info(f"  p90 / max of the {len(times)}", f"{qs[8]:.2f} s / {max(times):.2f} s")
        for t, f in sorted(results, key=lambda tf: tf[0], reverse=True)[:5]:
            info(f"  slowest: {f.relative_to(FAUST_EXAMPLES)}", t, ftimes[f])
        if failed:
            info(f"  diffaust rejects {len(failed)} of them (listed below the table)", "")
            for f, why in failed:
                NOTES.append(f"corpus ({mode}): diffaust rejects {f.relative_to(FAUST_EXAMPLES)}: {why}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions for the render timing (median)")
    ap.add_argument("--only", default="render,compile,train,latency,speed",
                    help="comma-separated sections: render, compile, train, latency, speed, corpus "
                         "(corpus takes minutes, so it runs only when named)")
    ap.add_argument("--examples", default="", help="comma-separated example names (compile section)")
    ap.add_argument("--limit", type=int, default=None, help="corpus: only N programs, evenly spaced")
    ap.add_argument("--corpus-cache", default="both", choices=("both", "own", "shared"),
                    help="corpus: an empty cache dir per program (own), one shared (shared), or both")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - {"render", "compile", "train", "latency", "speed", "corpus"}
    if unknown:
        ap.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if "render" in only:
        bench_render(args.reps)
    if "compile" in only:
        bench_compile([s for s in args.examples.split(",") if s] or None)
    if "train" in only:
        bench_train()
    if "latency" in only:
        bench_latency(args.reps)
    if "speed" in only:
        bench_speed(args.reps)
    if "corpus" in only:
        modes = ["own", "shared"] if args.corpus_cache == "both" else [args.corpus_cache]
        bench_corpus(args.limit, modes)
    print_table()
    return 1 if any(r[5] == "FAIL" for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
