"""diffaust against Faust 2.85.9 and its libraries (issue 13: "programs written for a current
Faust's libraries, rendered against that Faust, match in double").

The oracle is the libfaust 2.85.9 inside DawDreamer (`pip install ".[bench]"`): its
`boxToSource(box, "cpp", ...)` writes the C++ of a program compiled with its own libraries
(DawDreamer's `faustlibraries` folder), built and run by diffaust's reference harness
(`reference.build_cpp`, the same driver as for the installed faust: noise input, blocks of
256, double). diffaust compiles the same file with that library folder first on its import
path (`import_dirs`). Compared per sample: |err| <= 1e-9·(1+|ref|).

    python benchmarks/faust285_conformance.py [PATH...] [-n 4096] [--timeout 600] [--json FILE]

Each program runs in its own process (libfaust 2.85.9 crashes on one example; a process
that dies counts the program as rejected by the oracle).

PATH: files or folders, or `wdmodels` (default: the Faust examples of Debian's faust-common
and `wdmodels.lib`'s own documented circuits, below).  A program libfaust 2.85.9 rejects is
reported apart and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

TOL = 1e-9

# wdmodels.lib's documented examples (its `buildtree` circuits): the lowpass of the
# library's own documentation and a series RLC driven by the input
WDF = {
    "wdmodels_lowpass_doc_example.dsp": '''import("stdfaust.lib");
vs1(i) = wd.u_voltage(i, no.noise);
r1(i) = wd.resistor(i, 47*10^3);
c1(i) = wd.capacitor_Vout(i, 10*10^-9);
tree_lowpass = vs1 : wd.series : (r1, c1);
process = wd.buildtree(tree_lowpass);
''',
    "wdmodels_rlc_input.dsp": '''import("stdfaust.lib");
vin(i) = wd.u_voltage(i, _);
r1(i) = wd.resistor(i, 100);
l1(i) = wd.inductor(i, 10*10^-3);
c1(i) = wd.capacitor_Vout(i, 1*10^-6);
tree = vin : wd.series : (r1, (wd.series : (l1, c1)));
process = wd.buildtree(tree);
''',
}


def dd_library() -> str:
    import dawdreamer

    return os.path.join(os.path.dirname(dawdreamer.__file__), "faustlibraries")


def dd_dirs() -> tuple:
    """The library folders: DawDreamer's faustlibraries and its dx7 folder (all.lib imports
    dx7.lib, env.lib, lfo.lib, operator.lib from there)."""
    return (dd_library(), os.path.join(dd_library(), "dx7"))


def faust285_cpp(src: str, folder: str) -> str:
    from dawdreamer.faust import createLibContext, destroyLibContext
    from dawdreamer.faust.box import boxFromDSP, boxToSource

    argv = ["-I", folder] + [a for d in dd_dirs() for a in ("-I", d)]
    createLibContext()
    try:
        box = boxFromDSP(src, argv)
        return boxToSource(box, "cpp", "mydsp", ["-double", *argv])
    finally:
        destroyLibContext()


def run_one(name: str, src: str, folder: str, n: int) -> dict:
    import warnings

    import diffaust
    from diffaust import reference
    from diffaust.conformance import _compare

    res = {"path": name}
    try:
        cpp = faust285_cpp(src, folder)
        prog = reference.build_cpp(cpp, double=True)
        info = reference.binary_info(prog)
    except Exception as e:  # noqa: BLE001 - the oracle's refusal: reported apart
        res.update(status="rejected", detail=str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__)
        return res
    x = reference.make_input("noise", info["inputs"], n) if info["inputs"] else None
    ref = reference.run_binary(prog, n=n, x=x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = diffaust.compile(src, double=True, import_dirs=(*dd_dirs(), folder), allow_native=True)
        got = np.asarray(d.render(x, n), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        res.update(status="error", detail=str(e).strip().splitlines()[0][:300])
        return res
    msg = _compare(got, ref, TOL)  # the conformance command's comparison
    res.update({"status": "mismatch", "detail": msg} if msg else {"status": "pass"})
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*")
    ap.add_argument("-n", type=int, default=4096)
    ap.add_argument("--json")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per program (default 600)")
    ap.add_argument("--one", nargs=2, metavar=("NAME", "FOLDER"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:  # one program, in its own process (libfaust may crash: 2dKirchhoffThinPlate)
        name, folder = a.one
        src = WDF[name] if name in WDF else Path(name).read_text(errors="replace")
        print(json.dumps(run_one(name, src, folder, a.n)))
        return 0
    jobs = []
    paths = a.paths or ["/usr/share/doc/faust-common/examples"]
    for p in paths:
        if p == "wdmodels":  # the library's documented circuits alone
            jobs += [(name, src, HERE) for name, src in WDF.items()]
            continue
        p = Path(p)
        files = sorted(p.rglob("*.dsp")) if p.is_dir() else [p]
        for f in files:
            jobs.append((str(f), f.read_text(errors="replace"), str(f.parent)))
    if not a.paths:
        jobs += [(name, src, HERE) for name, src in WDF.items()]
    rows, t0 = [], time.perf_counter()
    import subprocess

    for k, (name, src, folder) in enumerate(jobs, 1):
        try:
            p = subprocess.run([sys.executable, __file__, "--one", name, folder, "-n", str(a.n)],
                               capture_output=True, text=True, timeout=a.timeout)
            lines = p.stdout.strip().splitlines()
            r = json.loads(lines[-1]) if p.returncode == 0 and lines else \
                {"path": name, "status": "rejected", "detail": f"the process died (status {p.returncode})"}
        except subprocess.TimeoutExpired:
            r = {"path": name, "status": "error", "detail": f"over {a.timeout:g} s"}
        rows.append(r)
        print(f"[{k:3d}/{len(jobs)}] {r['status']:9s} {name} {r.get('detail', '')}", flush=True)
    counted = [r for r in rows if r["status"] != "rejected"]
    passed = [r for r in counted if r["status"] == "pass"]
    print(f"\nFaust 2.85.9 (DawDreamer's libfaust and libraries), double: {len(passed)}/{len(counted)} match "
          f"(tolerance {TOL:g}·(1+|ref|)); {len(rows) - len(counted)} rejected by libfaust, not counted; "
          f"{time.perf_counter() - t0:.0f} s")
    for r in counted:
        if r["status"] != "pass":
            print(f"  {r['status']}: {r['path']}: {r.get('detail', '')}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
