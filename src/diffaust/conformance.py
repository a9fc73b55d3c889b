"""Conformance: real Faust programs rendered by diffaust and by the ``faust`` binary.

    diffaust conformance [PATH...] [--precision double|float|both] [-j N] [--subset ci]
                         [-n 4096] [--timeout 300] [--json report.json] [-q]

Each ``.dsp`` (PATH: files or folders, searched recursively; default: the Faust
examples of Debian's ``faust-common`` plus diffaust's own examples) is run, with its
default parameters, by the reference compiler (``diffaust.reference``: ``faust
-lang cpp`` + g++) and by diffaust, on an impulse and on noise (one run of zeros for
a program without inputs), ``n`` samples at 44.1 kHz, and compared per sample:

    double: |err| <= 1e-9 * (1 + |ref|)        float: |err| <= 1e-5 * (1 + |ref|)

A program the reference compiler rejects is reported apart and does not count.
The reference build compiles a program's ffunction headers (faust-stk's `bass.h`...) with
g++ in any case, so diffaust compiles them too: it is given ``allow_native=True``.
Every program runs in its own process (``python -m diffaust.conformance --one``),
so a crash, a hang (``--timeout``) or a memory blow-up costs one program only.

The report gives the pass rate per precision and the failures grouped by cause
(the diffaust error with names and numbers blanked, or "output differs").
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

FAUST_EXAMPLES = Path("/usr/share/doc/faust-common/examples")
OWN_EXAMPLES = Path(__file__).resolve().parent / "examples"
TOL = {"double": 1e-9, "float": 1e-5}

# A representative subset that CI runs (names relative to the Faust examples folder):
# oscillators, filters, delays and reverbs, physical models, tables, recursion-heavy
# and UI-heavy programs, several libraries each.
CI_SUBSET = (
    "ambisonics/fourSourcesToOcto.dsp",
    "analysis/dbmeter.dsp",
    "analysis/spectralLevel.dsp",
    "delayEcho/echo.dsp",
    "delayEcho/quadEcho.dsp",
    "dynamic/compressor.dsp",
    "filtering/APF.dsp",
    "filtering/cryBaby.dsp",
    "filtering/graphicEqLab.dsp",
    "filtering/lowCut.dsp",
    "filtering/vcfWahLab.dsp",
    "gameaudio/rain.dsp",
    "generator/noise.dsp",
    "generator/osc.dsp",
    "generator/sawtoothLab.dsp",
    "misc/tester.dsp",
    "misc/switcher.dsp",
    "phasing/phaser.dsp",
    "physicalModeling/brass.dsp",
    "physicalModeling/englishBell.dsp",
    "physicalModeling/faust-stk/modalBar.dsp",  # ffunctions from C headers (codegen/foreign_c.py)
    "physicalModeling/karplus.dsp",
    "pitchShifting/pitchShifter.dsp",
    "psychoacoustic/harmonicExciter.dsp",
    "reverb/freeverb.dsp",
    "reverb/zitaRev.dsp",
    "SAM/echo/echo.dsp",  # a header from Faust's architecture folder (fast_pow2.h)
    "smartKeyboard/crazyGuiro.dsp",
    "spat/panpot.dsp",
)


# ---------------------------------------------------------------- one program (worker side)
def _compare(got: np.ndarray, ref: np.ndarray, tol: float) -> Optional[str]:
    """None when got matches ref within tol·(1+|ref|) (NaN where ref is NaN), else a summary."""
    if got.shape != ref.shape:
        return f"shape {got.shape}, reference {ref.shape}"
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (got == ref) | (np.abs(got - ref) <= tol * (1 + np.abs(ref)))
        ok |= np.isnan(got) & np.isnan(ref)
        ok &= np.isnan(got) == np.isnan(ref)
        if ok.all():
            return None
        bad = np.argwhere(~ok)
        ch, k = bad[0]
        rel = np.abs(got - ref) / (1 + np.abs(ref))
        worst = float(np.nanmax(np.where(ok, 0.0, np.where(np.isnan(rel), np.inf, rel))))
    return (f"{len(bad)} samples differ, worst {worst:.3g}; first at output {ch}, sample {k}: "
            f"diffaust {float(got[ch, k])!r}, faust {float(ref[ch, k])!r}")


def _param_table_diff(dsp, info: dict, path: Path) -> Optional[str]:
    """None when diffaust's parameters are Faust's (paths, kinds, init/min/max/step), else
    the first difference.  The reference builds a copy named prog.dsp: its root folder
    'prog' stands for the file's stem."""
    from .signals.propagate import mapui_path as _mangle

    def row(p_path, kind, init, lo, hi, step):
        return (_mangle(p_path), kind, *(float(np.float32(v)) for v in (init, lo, hi, step)))

    stem_root = "/" + _mangle(path.stem) + "/"
    ref = []
    for p in info["params"]:
        if p["type"].endswith("bargraph"):
            continue
        rp = p["path"]
        if rp.startswith("/prog/"):
            rp = stem_root + rp[len("/prog/"):]
        ref.append(row(rp, p["type"], p["init"], p["min"], p["max"], p["step"]))
    got = [row(p.path, p.kind, p.init, p.min, p.max, p.step) for p in dsp.params]
    ref.sort()
    got.sort()
    if ref == got:
        return None
    if len(ref) != len(got):
        return f"{len(got)} parameters, faust has {len(ref)}"
    a, b = next((a, b) for a, b in zip(got, ref) if a != b)
    return f"diffaust {a}, faust {b}"


def _unnamed(text: str) -> str:
    # Faust names an unlabelled bargraph after its address in memory (0x7fb8...); diffaust 0x00
    return re.sub(r"0x[0-9a-f]{5,}", "0x00", text)


def ui_shape(items: list) -> list:
    """A `-json` ui list reduced to what both compilers must agree on: nesting, order,
    kinds, labels, addresses (MapUI spelling), short names, metadata, and the numbers to
    the 6 significant digits `faust -json` prints."""
    from .signals.propagate import mapui_path

    out = []
    for it in items:
        d = {"type": it["type"], "label": _unnamed(it["label"])}
        if "items" in it:
            d["items"] = ui_shape(it["items"])
        else:
            d["address"] = _unnamed(mapui_path(it["address"]))
            d["shortname"] = _unnamed(it["shortname"])
            for k in ("init", "min", "max", "step"):
                if k in it:
                    d[k] = float(f"{float(it[k]):.6g}")
        d["meta"] = sorted((k, v) for m in it.get("meta", []) for k, v in m.items())
        out.append(d)
    return out


def _first_difference(a, b, where: str = "ui") -> Optional[str]:
    if type(a) is not type(b):
        return f"{where}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items, faust {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{where}: diffaust {a!r}, faust {b!r}"


def _ui_diff(path: Path, double: bool) -> Optional[str]:
    """None when `diffaust compile -lang json` describes the UI as `faust -json` does."""
    from . import reference
    from .codegen.json_ui import emit_json
    from .runtime.pipeline import CompileOptions, run_pipeline

    try:
        ref = reference.reference_json(path)
    except reference.FaustRefError:
        return None  # faust -json fails where the build succeeded: nothing to compare
    opts = CompileOptions(double=double, import_dirs=(str(path.parent),), allow_native=True)
    st = run_pipeline(path.read_text(), str(path), opts)
    ours = json.loads(emit_json(st, opts))
    return _first_difference(ui_shape(ours["ui"]), ui_shape(ref["ui"]))


def _error_text(e: BaseException) -> str:
    from .errors import DiffaustError

    if isinstance(e, DiffaustError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def run_one(path: Path, precisions: Sequence[str], n: int) -> dict:
    """Render ``path`` with faust and diffaust in each precision; a JSON-able result."""
    from . import reference
    from .runtime.dsp import compile as da_compile

    out = {"path": str(path), "results": {}}
    for prec in precisions:
        double = prec == "double"
        res = out["results"][prec] = {}
        t0 = time.perf_counter()
        try:
            info = reference.reference_info(path, double=double)
        except reference.FaustRefError as e:
            res.update(status="reference-rejects", detail=str(e).strip().splitlines()[-1][:300])
            continue
        res["reference_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        try:
            # the examples' own headers (faust-stk's bass.h ...) are compiled: consent given
            dsp = da_compile(path, double=double, import_dirs=(str(path.parent),), allow_native=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, grouped by cause
            res.update(status="compile-error", detail=_error_text(e))
            continue
        res["compile_s"] = round(time.perf_counter() - t0, 3)
        if (dsp.inputs, dsp.outputs) != (info["inputs"], info["outputs"]):
            res.update(status="shape", detail=f"diffaust {dsp.inputs} inputs, {dsp.outputs} outputs; "
                                              f"faust {info['inputs']}, {info['outputs']}")
            continue
        problems = []
        ptab = _param_table_diff(dsp, info, path)
        if ptab:
            problems.append(f"parameters: {ptab}")
        elif not double:  # the UI tree once per program, in float like `faust -json`'s default
            ui = _ui_diff(path, double)
            if ui:
                problems.append(f"parameters: {ui}")
        kinds = ("impulse", "noise") if info["inputs"] else ("zeros",)
        for kind in kinds:
            x = reference.make_input(kind, info["inputs"], n) if info["inputs"] else None
            try:
                ref = reference.render_reference(path, n=n, x=x, double=double)
            except reference.FaustRefError as e:
                res.update(status="reference-rejects", detail=str(e).strip().splitlines()[-1][:300])
                break
            xin = None if x is None else (x if double else x.astype(np.float32))
            try:
                got = np.asarray(dsp.render(x=xin, n=n), dtype=np.float64)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{kind}: render failed: {_error_text(e)}")
                continue
            msg = _compare(got, ref, TOL[prec])
            if msg:
                problems.append(f"{kind}: {msg}")
        if "status" in res:
            continue
        if problems:
            res.update(status="mismatch", detail="; ".join(problems))
        else:
            res["status"] = "pass"
    return out


# ---------------------------------------------------------------- the suite (parent side)
@dataclass
class Report:
    precisions: Sequence[str]
    rows: list = field(default_factory=list)   # one dict per program (run_one's shape)

    def counted(self, prec: str) -> list:
        return [r for r in self.rows if r["results"].get(prec, {}).get("status") != "reference-rejects"]

    def passed(self, prec: str) -> list:
        return [r for r in self.counted(prec) if r["results"][prec]["status"] == "pass"]

    def causes(self, prec: str) -> dict:
        """cause -> [program, ...] for the programs that fail in ``prec``."""
        groups = defaultdict(list)
        for r in self.counted(prec):
            res = r["results"][prec]
            if res["status"] != "pass":
                groups[cause_of(res)].append(r)
        return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def cause_of(res: dict) -> str:
    """A failure's group: its status plus its message with names and numbers blanked."""
    status, detail = res["status"], res.get("detail", "")
    if status == "mismatch":
        if detail.startswith("parameters:"):
            return "parameter table differs"
        if "render failed" in detail:
            return "render failed: " + _blank(detail.split("render failed:", 1)[1])
        return "output differs beyond tolerance"
    if status == "timeout":
        return "timeout"
    if status == "crash":
        return "crash (worker died)"
    if status == "shape":
        return "different number of inputs/outputs"
    # compile errors: drop the location, blank quoted names and numbers
    detail = re.sub(r"^\S+:\d+:\d+: ", "", detail)
    return "compile error: " + _blank(detail)


def _blank(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else text
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "N", text)
    text = re.sub(r"\(did you mean[^)]*\)", "", text)
    return text.strip()[:160]


def collect(paths: Sequence[str], subset: Optional[str]) -> list[Path]:
    if subset == "ci":
        if not FAUST_EXAMPLES.is_dir():
            raise FileNotFoundError(f"{FAUST_EXAMPLES}: no such folder (install Debian's faust-common)")
        return [FAUST_EXAMPLES / p for p in CI_SUBSET]
    roots = [Path(p) for p in paths] or [d for d in (FAUST_EXAMPLES, OWN_EXAMPLES) if d.is_dir()]
    files = []
    for root in roots:
        if root.is_dir():
            files += sorted(root.rglob("*.dsp"))
        elif root.is_file():
            files.append(root)
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
    return files


def _run_worker(path: Path, precisions, n: int, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "diffaust.conformance", "--one", str(path),
           "--precision", ",".join(precisions), "-n", str(n)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"path": str(path), "results": {pr: {"status": "timeout", "detail": f"over {timeout:g} s"}
                                               for pr in precisions}}
    if p.returncode != 0 or not p.stdout.strip():
        tail = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        return {"path": str(path), "results": {pr: {"status": "crash", "detail": tail[:300]}
                                               for pr in precisions}}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _short(path: str) -> str:
    p = Path(path)
    for root in (FAUST_EXAMPLES, OWN_EXAMPLES):
        if p.is_relative_to(root):
            return ("" if root == FAUST_EXAMPLES else "diffaust/") + p.relative_to(root).as_posix()
    return path


def run_suite(files: Sequence[Path], precisions: Sequence[str], n: int = 4096, jobs: int = 0,
              timeout: float = 300.0, progress=None) -> Report:
    """Run every file in its own worker process, ``jobs`` at a time; a `Report`."""
    report = Report(precisions)
    jobs = jobs or os.cpu_count() or 1
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(_run_worker, f, precisions, n, timeout): f for f in files}
        for k, fut in enumerate(cf.as_completed(futs), 1):
            row = fut.result()
            report.rows.append(row)
            if progress:
                progress(k, len(files), row)
    report.rows.sort(key=lambda r: r["path"])
    return report


def format_report(report: Report) -> str:
    lines = []
    for prec in report.precisions:
        counted, passed = report.counted(prec), report.passed(prec)
        rejected = len(report.rows) - len(counted)
        rate = 100.0 * len(passed) / len(counted) if counted else 0.0
        lines.append(f"{prec}: {len(passed)}/{len(counted)} programs match the reference "
                     f"({rate:.1f}%, tolerance {TOL[prec]:g}·(1+|ref|))"
                     + (f"; {rejected} rejected by the reference compiler, not counted" if rejected else ""))
        for name, root in (("Faust's examples", FAUST_EXAMPLES), ("diffaust's examples", OWN_EXAMPLES)):
            mine = [r for r in counted if Path(r["path"]).is_relative_to(root)]
            if mine and len(mine) < len(counted):
                ok = sum(1 for r in mine if r["results"][prec]["status"] == "pass")
                lines.append(f"  {name}: {ok}/{len(mine)} ({100.0 * ok / len(mine):.1f}%)")
        for cause, rows in report.causes(prec).items():
            lines.append(f"  {len(rows):3d}  {cause}")
            for r in rows:
                lines.append(f"         {_short(r['path'])}: {r['results'][prec].get('detail', '')[:200]}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, prog: str = "diffaust conformance") -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, no usage dump
            print(f"{prog}: error: {message} (see '{prog} --help')", file=sys.stderr)
            raise SystemExit(2)

    ap = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", metavar="PATH", help=".dsp files or folders (default: the Faust "
                                                             "examples and diffaust's own)")
    ap.add_argument("--precision", default="both", help="double, float or both (default both)")
    ap.add_argument("--subset", choices=("ci",), help="run the representative subset CI runs")
    ap.add_argument("-j", "--jobs", type=int, default=0, help="parallel programs (default: CPU count)")
    ap.add_argument("-n", type=int, default=4096, help="samples per render (default 4096)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per program (default 300)")
    ap.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-program progress lines")
    ap.add_argument("--one", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    precisions = ["double", "float"] if args.precision == "both" else args.precision.split(",")
    for p in precisions:
        if p not in TOL:
            print(f"{prog}: error: unknown precision '{p}' (double, float or both)", file=sys.stderr)
            return 2
    if args.one:
        print(json.dumps(run_one(Path(args.one), precisions, args.n)))
        return 0
    from . import reference

    if not reference.faust_available():
        print(f"{prog}: error: the reference needs `faust`, `g++` and Faust's C++ headers "
              "(Debian: apt-get install faust g++)", file=sys.stderr)
        return 1
    try:
        files = collect(args.paths, args.subset)
    except FileNotFoundError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1

    def progress(k, total, row):
        if args.quiet:
            return
        marks = " ".join(f"{pr}:{row['results'][pr]['status']}" for pr in precisions)
        print(f"[{k:3d}/{total}] {_short(row['path'])}  {marks}", flush=True)

    t0 = time.perf_counter()
    report = run_suite(files, precisions, args.n, args.jobs, args.timeout, progress)
    print(format_report(report))
    print(f"({len(files)} programs in {time.perf_counter() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"precisions": precisions, "rows": report.rows}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
