"""The derivative campaign: random programs (tests/progen.py), forward mode vs finite differences.

    python tests/campaign.py --seeds 0:2000 [-n 10000] [--batch 16] [--no-faust] [--shrink]

For a batch of generated programs (side by side in one Faust file, so that one compile
serves many programs), diffaust's derivative channels (`-diff -double`) are compared,
program by program and parameter by parameter, with central finite differences of

* diffaust's own double-precision output (always), and
* the real Faust compiler's (`faust -double`, when it is installed),

and diffaust's primal output with Faust's (a difference there is status `primal`: a
conformance finding, not a derivative one, kept under tests/programs/campaign/primal/; the
derivatives of such a program are checked against diffaust's finite differences only,
since Faust's measure another function).

Finite differences are taken with two steps, h = 1e-4·max(1, |p|) and h/10.  A sample
is compared only where the two agree (|fd_h − fd_h/10| ≤ 1e-7·(peak + |fd_h/10|)):
where the output is not differentiable in p (a select, floor, comparison or integer delay
that flips between p − h and p + h, a kink of min/max/abs, or the after-effect of one in a
recursion) the two disagree by a large factor and the sample says nothing about the
derivative.  The error of a (program, parameter) pair is

    max over compared samples |ad − fd_h/10| / max(peak, 1e-3),  peak = max |fd_h/10|

and a pair fails above `TOL` (1e-6).  Where a jump's after-effect is small enough to pass the
agreement test, it is 10 times larger in fd_h/10 than in fd_h, so what it can add to the
error is at most 10/9 of the agreement bound: about 1e-7 of the peak, well below `TOL`.  A program whose output is not finite, or exceeds 1e6, or
where fewer than half of the samples can be compared, is counted apart (not a pass).

A failing program is shrunk (`progen.shrink`) to a minimal one that still fails on its own,
printed, and written under tests/programs/campaign/ when `--keep` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import progen  # noqa: E402

import diffaust  # noqa: E402

TOL = 1e-6
PRIMAL_TOL = 1e-7
HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Result:
    seed: int
    status: str = "pass"        # pass | fail | primal | unbounded | discontinuous | error
    errors: dict = field(default_factory=dict)    # (param, source) -> relative error
    compared: dict = field(default_factory=dict)  # (param, source) -> fraction of samples compared
    message: str = ""
    kinds: set = field(default_factory=set)

    def worst(self):
        if not self.errors:
            return None
        return max(self.errors.items(), key=lambda kv: kv[1])


def _inputs(total_inputs: int, n: int, seed: int = 7):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (total_inputs, n)) if total_inputs else None


class _Faust:
    """The real Faust compiler for one combined source (built once)."""

    def __init__(self, source: str):
        from diffaust.reference import build

        self.prog = build(source, double=True)

    def __call__(self, x, n, params):
        from diffaust.reference import run_binary

        try:
            return run_binary(self.prog, n=n, x=x, params=params)
        except KeyError:
            # Faust simplified the widget away: the output does not depend on it
            return run_binary(self.prog, n=n, x=x, params={})


def compare(ad, fds, fine_fds):
    """(error, fraction compared) for one parameter: ad, fd, fd_fine of shape (outputs, n)."""
    diff = np.abs(fds - fine_fds)
    loose = diff <= 1e-3 * np.abs(fine_fds) + 1e-12
    peak = float(np.max(np.abs(fine_fds[loose]), initial=0.0))
    good = diff <= 1e-7 * (peak + np.abs(fine_fds)) + 1e-12
    frac = float(np.mean(good)) if good.size else 1.0
    if not good.any():
        return 0.0, frac
    peak = float(np.max(np.abs(fine_fds[good])))
    err = float(np.max(np.abs(ad - fine_fds)[good])) / max(peak, 1e-3)
    return err, frac


@dataclass
class Spec:
    """One program inside a combined source: its outputs and its parameters there."""

    seed: int
    outputs: int | None                  # number of outputs (None: all of the source's)
    params: list                         # [(label in the source, base value)]
    kinds: set = field(default_factory=set)


def check_batch(programs, n: int = 10000, faust: bool = True, tol: float = TOL) -> list:
    """One `Result` per program of the batch (programs get label prefixes c0_, c1_...)."""
    for k, p in enumerate(programs):
        p.prefix = f"c{k}_"
    specs = [Spec(p.seed, len(p.outputs), [(p.prefix + lab, init) for lab, init, _, _ in p.params], p.kinds())
             for p in programs]
    results = check_specs(progen.combine(programs), specs, n, faust, tol)
    if results is None:  # the batch does not compile: find the culprit one by one
        return [r for p in programs for r in check_batch([p], n, faust, tol)]
    return results


def check_source(source: str, params, n: int = 10000, faust: bool = True, tol: float = TOL) -> Result:
    """Check one program given as text; `params`: [(label, base value)]."""
    res = check_specs(source, [Spec(-1, None, list(params))], n, faust, tol, single=True)
    return res[0]


def check_specs(source, specs, n, faust, tol, single=False):
    """Results for the programs `specs` of `source`, or None when it does not compile and
    there are several (the caller splits the batch)."""
    results = [Result(s.seed, kinds=s.kinds) for s in specs]
    single = single or len(specs) == 1
    try:
        d = diffaust.compile(source, diff=True, double=True, use_cache=False)
        plain = diffaust.compile(source, double=True, use_cache=False)
    except Exception as e:  # noqa: BLE001 — one bad program: the caller checks them one by one
        if not single:
            return None
        results[0].status, results[0].message = "error", f"diffaust: {type(e).__name__}: {e}"
        return results
    x = _inputs(d.inputs, n)
    y, dy = d.render_jvp(x, n=n)
    runners = [("diffaust", lambda params: plain.render(x, n=n, params=params))]
    ref_y = None
    if faust:
        try:
            f = _Faust(source)
            ref_y = f(x, n, {})
            runners.append(("faust", lambda params: f(x, n, params)))
        except Exception as e:  # noqa: BLE001
            if not single:
                return None
            results[0].status, results[0].message = "error", f"faust: {type(e).__name__}: {str(e)[:300]}"
            return results
    o0 = 0
    labels = [p.label for p in d.diff_params]
    for spec, r in zip(specs, results):
        count = spec.outputs if spec.outputs is not None else y.shape[0]
        outs = slice(o0, o0 + count)
        o0 += count
        yk = y[outs]
        if not np.all(np.isfinite(yk)) or np.max(np.abs(yk), initial=0) > 1e6:
            r.status = "unbounded"
            continue
        if ref_y is not None:
            rk = ref_y[outs]
            scale = max(1.0, float(np.max(np.abs(rk))))
            perr = float(np.max(np.abs(yk - rk))) / scale
            r.errors[("primal", "faust")] = perr
            if perr > PRIMAL_TOL:
                r.status, r.message = "primal", f"primal output differs from Faust's by {perr:.3g} of its peak"
        # a program whose output differs from Faust's is not the function Faust's finite
        # differences measure: its derivatives are checked against diffaust's own only
        usable = runners[:1] if r.status == "primal" else runners
        for full, init in spec.params:
            if full not in labels:
                continue  # the parameter is not used: no channel
            j = labels.index(full)
            h = 1e-4 * max(1.0, abs(init))
            for name, run in usable:
                def at(v):
                    return run({full: v})[outs]

                fd = (at(init + h) - at(init - h)) / (2 * h)
                fine = (at(init + h / 10) - at(init - h / 10)) / (2 * h / 10)
                err, frac = compare(dy[outs, j], fd, fine)
                r.errors[(full, name)] = err
                r.compared[(full, name)] = frac
                if err > tol:
                    r.message = (f"d/d{full} vs {name} FD: error {err:.3g} of the peak"
                                 if r.status != "fail" else r.message)
                    r.status = "fail"
        if r.status == "pass" and r.compared and min(r.compared.values()) < 0.5:
            r.status = "discontinuous"
    return results


def fails_alone(prog, n, faust, tol=TOL, status="fail") -> bool:
    prog.prefix = ""
    res = check_batch([prog], n=n, faust=faust, tol=tol)[0]
    return res.status == status


def run(seeds, n=10000, batch=16, faust=True, shrink=False, keep=False, max_depth=5, progress=True):
    """Check every seed; returns (results, minimal failing programs)."""
    results, minimal = [], []
    seeds = list(seeds)
    t0 = time.time()
    for b in range(0, len(seeds), batch):
        progs = [progen.generate(s, max_depth=max_depth) for s in seeds[b:b + batch]]
        res = check_batch(progs, n=n, faust=faust)
        results.extend(res)
        for p, r in zip(progs, res):
            if r.status in ("fail", "primal") and shrink:
                small = progen.shrink(progen.generate(p.seed, max_depth=max_depth),
                                      lambda c, st=r.status: fails_alone(c, n, faust, status=st))
                small.prefix = ""
                minimal.append((r, small))
                if keep:
                    _keep(small, r)
        if progress:
            counts = _counts(results)
            print(f"\r{len(results)}/{len(seeds)} programs, {time.time() - t0:.0f} s: {counts}",
                  end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return results, minimal


def _counts(results) -> dict:
    c: dict = {}
    for r in results:
        c[r.status] = c.get(r.status, 0) + 1
    return c


def _keep(prog, res):
    folder = os.path.join(HERE, "programs", "campaign", *(["primal"] if res.status == "primal" else []))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"seed{prog.seed}.dsp")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"// found by tests/campaign.py (seed {prog.seed}): {res.message}\n")
        f.write(prog.source())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0:200", help="START:STOP")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-faust", action="store_true")
    ap.add_argument("--shrink", action="store_true")
    ap.add_argument("--keep", action="store_true", help="write minimal failing programs to tests/programs/campaign/")
    ap.add_argument("--depth", type=int, default=5)
    a = ap.parse_args(argv)
    start, stop = (int(v) for v in a.seeds.split(":"))
    faust = not a.no_faust
    if faust:
        from diffaust.reference import faust_available

        faust = faust_available()
    results, minimal = run(range(start, stop), n=a.n, batch=a.batch, faust=faust, shrink=a.shrink,
                           keep=a.keep, max_depth=a.depth)
    counts = _counts(results)
    kinds: dict = {}
    for r in results:
        if r.status == "pass":
            for k in r.kinds:
                kinds[k] = kinds.get(k, 0) + 1
    print(f"seeds {start}:{stop}, n={a.n}, faust={'yes' if faust else 'no'}: {counts}")
    print("passing programs per family: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    worst = max((r.worst() for r in results if r.status == "pass" and r.worst()), key=lambda kv: kv[1],
                default=None)
    if worst:
        print(f"largest error among passing programs: {worst[1]:.3g} ({worst[0]})")
    for r in results:
        if r.status in ("fail", "error", "primal"):
            print(f"seed {r.seed}: {r.status}: {r.message}")
    for r, small in minimal:
        print(f"--- seed {r.seed}, shrunk:\n{small.source()}")
    return 1 if counts.get("fail") or counts.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
