"""Conformance: real Faust programs rendered by diffaust and by the ``faust`` binary.

    diffaust conformance [PATH...] [--precision double|float|both] [-j N] [--subset ci]
                         [-n 4096] [--block-size 256] [--press] [--timeout 300]
                         [--json report.json] [-q]

Each ``.dsp`` (PATH: files or folders, searched recursively; default: the Faust
examples of Debian's ``faust-common`` plus diffaust's own examples) is run, with its
default parameters, by the reference compiler (``diffaust.reference``: ``faust
-lang cpp`` + g++) and by diffaust, on an impulse and on noise (one run of zeros for
a program without inputs), ``n`` samples at 44.1 kHz in compute() calls of
``--block-size`` samples (default 256, both sides), and compared per sample:

    double: |err| <= 1e-9 * (1 + |ref|)        float: |err| <= 1e-5 * (1 + |ref|)

Imports are looked up in the program's own folder and in the PATH folder it was found
under (both compilers get both as -I), so any folder of programs with its own
libraries can be run.  ``--press`` adds, for a program with buttons or checkboxes, a
run that presses them as Faust's impulse-test harness does (tests/impulse-tests,
controlTools.h: every button down during the first block, up from the second on)
and also switches every checkbox on from the second block on (the reference harness
sets the controls before the compute() call of a block; diffaust gets the same
values as per-sample parameters).

A program the reference compiler rejects is reported apart and does not count.
The reference build compiles a program's ffunction headers (faust-stk's `bass.h`...) with
g++ in any case, so diffaust compiles them too: it is given ``allow_native=True``.
Every program runs in its own process (``python -m diffaust.conformance --one``),
so a crash, a hang (``--timeout``) or a memory blow-up costs one program only.

The report gives the pass rate per precision and the failures grouped by cause
(the diffaust error's first line with names and numbers blanked, or "output
differs"), each failure with the full first line of its error.
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
            d["shortname"] = _unnamed(it.get("shortname", ""))  # (faust gives a soundfile none)
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


def _ui_diff(path: Path, double: bool, include_dirs=()) -> Optional[str]:
    """None when `diffaust compile -lang json` describes the UI as `faust -json` does."""
    from . import reference
    from .codegen.json_ui import emit_json
    from .runtime.pipeline import CompileOptions, run_pipeline

    try:
        ref = reference.reference_json(path, include_dirs)
    except reference.FaustRefError:
        return None  # faust -json fails where the build succeeded: nothing to compare
    opts = CompileOptions(double=double, import_dirs=(str(path.parent), *map(str, include_dirs)), allow_native=True)
    st = run_pipeline(path.read_text(), str(path), opts)
    ours = json.loads(emit_json(st, opts))
    return _first_difference(ui_shape(ours["ui"]), ui_shape(ref["ui"]))


def _error_text(e: BaseException) -> str:
    """The first line of a diffaust error (its place and message, in full)."""
    from .errors import DiffaustError

    text = str(e) if isinstance(e, DiffaustError) else f"{type(e).__name__}: {e}"
    return first_error_line(text)


_ERROR_LINE = re.compile(r"\berror\b|\bERROR\b", re.I)


def first_error_line(text: str) -> str:
    """The line of ``text`` that says what went wrong, in full: the first line naming an
    error (faust's ``ERROR :``, g++'s ``error:``), else the first non-empty line.  A
    reference failure's own first line (``faust failed (COMMAND):``) only introduces the
    tool's output, and a caret or source line under an error is never the answer."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return ""
    head = re.match(r"^(.*?) failed \((.*)\):$", lines[0])
    body = lines[1:] if head and len(lines) > 1 else lines
    hit = next((ln for ln in body if _ERROR_LINE.search(ln)), body[0])
    return f"{head.group(1)}: {hit}" if head and body is not lines else hit


def _reference_failure(e: BaseException, path: Path) -> str:
    """The first error line of a reference failure (the reference compiles a copy named prog.dsp)."""
    text = first_error_line(str(e)) if str(e).strip() else type(e).__name__
    return re.sub(r"(?<![\w.])prog\.dsp\b", path.name, text)


def press_schedule(kind: str, block_size: int) -> list:
    """The value changes (sample offset, value) ``--press`` gives a widget: a button is down
    during the first block and up from the second on (Faust's impulse-test harness), a
    checkbox is switched on from the second block on."""
    if kind == "button":
        return [(0, 1.0), (block_size, 0.0)]
    return [(block_size, 1.0)]


def _runs(info: dict, press: bool) -> list:
    """(name, input kind, {reference widget path: schedule}) of the renders of a program."""
    kinds = ("impulse", "noise") if info["inputs"] else ("zeros",)
    runs = [(k, k, {}) for k in kinds]
    pressed = {p["path"]: p["type"] for p in info["params"] if p["type"] in ("button", "checkbox")}
    if press and pressed:
        runs.append(("press", "impulse" if info["inputs"] else "zeros", pressed))
    return runs


def _diffaust_name(ref_path: str, path: Path) -> str:
    """A reference widget path as diffaust's: the reference's root 'prog' is the file's stem."""
    from .signals.propagate import mapui_path as _mangle

    if ref_path.startswith("/prog/"):
        return "/" + _mangle(path.stem) + "/" + ref_path[len("/prog/"):]
    return ref_path


def run_one(path: Path, precisions: Sequence[str], n: int, block_size: int = 256, press: bool = False,
            include_dirs: Sequence[str] = ()) -> dict:
    """Render ``path`` with faust and diffaust in each precision; a JSON-able result.

    block_size: samples per compute() call, both sides.  press: also run the program with
    its buttons and checkboxes pressed (`press_schedule`).  include_dirs: import folders
    besides the program's own (the PATH folder it was found under)."""
    from . import reference
    from .runtime.dsp import compile as da_compile

    incs = tuple(str(d) for d in include_dirs if Path(d).resolve() != path.resolve().parent)
    out = {"path": str(path), "results": {}}
    for prec in precisions:
        double = prec == "double"
        res = out["results"][prec] = {}
        t0 = time.perf_counter()
        try:
            info = reference.reference_info(path, double=double, include_dirs=incs)
        except (reference.FaustRefError, OSError, UnicodeDecodeError, subprocess.SubprocessError) as e:
            res.update(status="reference-rejects", detail=_reference_failure(e, path))
            continue
        res["reference_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        try:
            # the examples' own headers (faust-stk's bass.h ...) are compiled: consent given
            dsp = da_compile(path, double=double, import_dirs=(str(path.parent), *incs), allow_native=True,
                             block_size=block_size)
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
            ui = _ui_diff(path, double, incs)
            if ui:
                problems.append(f"parameters: {ui}")
        runs = _runs(info, press)
        res["runs"] = [r[0] for r in runs]
        for run, kind, schedules in runs:
            x = reference.make_input(kind, info["inputs"], n) if info["inputs"] else None
            ref_params = {rp: press_schedule(t, block_size) for rp, t in schedules.items()}
            try:
                ref = reference.render_reference(path, n=n, x=x, double=double, block_size=block_size,
                                                 params=ref_params or None, include_dirs=incs)
            except (reference.FaustRefError, OSError, subprocess.SubprocessError) as e:
                res.update(status="reference-rejects", detail=_reference_failure(e, path))
                break
            xin = None if x is None else (x if double else x.astype(np.float32))
            try:
                params = {}
                for rp, sched in ref_params.items():
                    p = dsp.params[dsp.param_index(_diffaust_name(rp, path))]
                    params[p.path] = reference.schedule_array(sched, n, 0.0 if p.kind == "button" else p.init)
                got = np.asarray(dsp.render(x=xin, n=n, params=params or None, block_size=block_size),
                                 dtype=np.float64)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{run}: render failed: {_error_text(e)}")
                continue
            msg = _compare(got, ref, TOL[prec])
            if msg:
                problems.append(f"{run}: {msg}")
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
    block_size: int = 256
    press: bool = False

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

    def rejected(self, prec: str) -> dict:
        """cause -> [program, ...] for the programs the reference compiler rejects in ``prec``."""
        groups = defaultdict(list)
        for r in self.rows:
            res = r["results"].get(prec, {})
            if res.get("status") == "reference-rejects":
                groups["rejected by the reference: " + _blank(_unlocated(res.get("detail", "")))].append(r)
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
    return "compile error: " + _blank(_unlocated(detail))


def _unlocated(text: str) -> str:
    """An error line without its place (``file:line:col: `` or faust's ``file : line : ``)."""
    text = first_error_line(text)
    text = re.sub(r"^(\w[\w+ -]*: )?\S+:\d+:\d+: ", lambda m: m.group(1) or "", text)
    return re.sub(r"^(\w[\w+ -]*: )?\S+ : -?\d+ : ", lambda m: m.group(1) or "", text)


def _blank(text: str) -> str:
    """A cause: an error's first line with names and numbers blanked (the whole line)."""
    text = first_error_line(text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"|‘[^’]*’", "'…'", text)
    text = re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "N", text)
    text = re.sub(r"\(did you mean[^)]*\)", "", text)
    return text.strip()


def collect(paths: Sequence[str], subset: Optional[str]) -> list[Path]:
    if subset == "ci":
        if not FAUST_EXAMPLES.is_dir():
            raise FileNotFoundError(f"{FAUST_EXAMPLES}: no such folder (install Debian's faust-common)")
        return [FAUST_EXAMPLES / p for p in CI_SUBSET]
    roots = [Path(p) for p in paths] or [d for d in (FAUST_EXAMPLES, OWN_EXAMPLES) if d.is_dir()]
    files, seen = [], set()
    for root in roots:
        if root.is_dir():
            found = sorted(f for f in root.rglob("*.dsp") if f.is_file())
        elif root.is_file():
            found = [root]
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
        for f in found:  # a file under two PATHs (or given twice) runs once
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files


def search_roots(paths: Sequence[str]) -> list[Path]:
    """The folders among ``paths``: a program found under one also imports from it."""
    return [Path(p).resolve() for p in paths if Path(p).is_dir()]


def _include_dirs(path: Path, roots: Sequence[Path]) -> list[str]:
    """The PATH folders ``path`` lies under (besides its own folder, always searched)."""
    here = path.resolve()
    return [str(r) for r in roots if here.is_relative_to(r) and r != here.parent]


def _run_worker(path: Path, precisions, n: int, timeout: float, block_size: int = 256, press: bool = False,
                include_dirs: Sequence[str] = ()) -> dict:
    cmd = [sys.executable, "-m", "diffaust.conformance", "--one", str(path),
           "--precision", ",".join(precisions), "-n", str(n), "--block-size", str(block_size),
           *(["--press"] if press else []), *[f for d in include_dirs for f in ("-I", str(d))]]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"path": str(path), "results": {pr: {"status": "timeout", "detail": f"over {timeout:g} s"}
                                               for pr in precisions}}
    if p.returncode != 0 or not p.stdout.strip():
        # a traceback's last line is the exception; a signal leaves no text
        tail = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1].strip()
        return {"path": str(path), "results": {pr: {"status": "crash", "detail": tail}
                                               for pr in precisions}}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _short(path: str) -> str:
    p = Path(path)
    for root in (FAUST_EXAMPLES, OWN_EXAMPLES):
        if p.is_relative_to(root):
            return ("" if root == FAUST_EXAMPLES else "diffaust/") + p.relative_to(root).as_posix()
    return path


def run_suite(files: Sequence[Path], precisions: Sequence[str], n: int = 4096, jobs: int = 0,
              timeout: float = 300.0, progress=None, *, block_size: int = 256, press: bool = False,
              roots: Sequence[Path] = ()) -> Report:
    """Run every file in its own worker process, ``jobs`` at a time; a `Report`.
    block_size: samples per compute() call (both compilers); press: add the run with buttons
    and checkboxes pressed; roots: the PATH folders (import folders of the files under them)."""
    report = Report(precisions, block_size=block_size, press=press)
    jobs = jobs or os.cpu_count() or 1
    roots = [Path(r).resolve() for r in roots]
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(_run_worker, f, precisions, n, timeout, block_size, press,
                            _include_dirs(f, roots)): f for f in files}
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
                lines.append(f"         {_short(r['path'])}: {r['results'][prec].get('detail', '')}")
        for cause, rows in report.rejected(prec).items():
            lines.append(f"  {len(rows):3d}  {cause} (not counted)")
            for r in rows:
                lines.append(f"         {_short(r['path'])}: {r['results'][prec].get('detail', '')}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, prog: str = "diffaust conformance") -> int:
    from .cli import block_size_arg  # (a whole number of samples, 1 .. 2^31 - 1: -n too)

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
    ap.add_argument("-n", type=block_size_arg, default=4096, help="samples per render (default 4096)")
    ap.add_argument("--block-size", dest="block_size", type=block_size_arg, default=256, metavar="N",
                    help="samples per compute() call, for faust and diffaust alike (default 256); what "
                         "fvariable(int count) reads")
    ap.add_argument("--press", action="store_true",
                    help="also run each program with buttons and checkboxes: buttons down during the first "
                         "block and up after (as Faust's impulse tests), checkboxes on from the second block")
    ap.add_argument("-I", dest="import_dirs", action="append", default=[], metavar="DIR",
                    help=argparse.SUPPRESS)  # the worker's PATH folders
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
        print(json.dumps(run_one(Path(args.one), precisions, args.n, args.block_size, args.press,
                                 args.import_dirs)))
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
    except OSError as e:  # an unreadable folder
        print(f"{prog}: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1

    def progress(k, total, row):
        if args.quiet:
            return
        marks = " ".join(f"{pr}:{row['results'][pr]['status']}" for pr in precisions)
        print(f"[{k:3d}/{total}] {_short(row['path'])}  {marks}", flush=True)

    if not files:
        print(f"{prog}: error: no .dsp file in {', '.join(args.paths)}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    report = run_suite(files, precisions, args.n, args.jobs, args.timeout, progress, block_size=args.block_size,
                       press=args.press, roots=search_roots(args.paths))
    print(format_report(report))
    print(f"({len(files)} programs in {time.perf_counter() - t0:.0f} s, blocks of {args.block_size} samples"
          + (", buttons and checkboxes pressed" if args.press else "") + ")")
    if args.json:
        Path(args.json).write_text(json.dumps({"precisions": precisions, "block_size": args.block_size,
                                               "press": args.press, "n": args.n, "rows": report.rows}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
