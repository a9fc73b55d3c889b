"""The real Faust compiler as a numerical oracle for diffaust's tests.

``render_reference(source, ...)`` compiles a Faust program with the installed
``faust`` (``-lang cpp [-double]``), builds it with g++ (``-O1 -ffp-contract=off -fwrapv``)
together with the small driver below (ours; it only uses Faust's installed
headers ``faust/dsp/dsp.h``, ``faust/gui/UI.h``, ``faust/gui/meta.h``,
``faust/gui/MapUI.h``), and runs it on a float64 input of shape (inputs, n).
The result is a float64 array of shape (outputs, n).

``-fwrapv`` makes Faust's int arithmetic wrap (its documented semantics, and
what diffaust's LLVM code does) instead of being C++ undefined behaviour that
g++ exploits: without it ``abs(int(-3)) + 2147483647`` comes out as 2147483647.

Binaries are cached under ``$DIFFAUST_TEST_CACHE/faustref`` (default
``~/.cache/diffaust-tests/faustref``), keyed by sha256 of the tool versions,
the source text, the options and the driver text. Builds go to a temporary
folder that is renamed into place, so parallel test processes are safe.

Conventions (the same as diffaust's ``Dsp.render``):

* ``x=None`` means all-zero inputs; ``x`` may also be ``"impulse"``,
  ``"noise"``, ``"zeros"``, ``"ones"`` or an array (inputs, n) (1-D for one input).
* float mode (default) uses ``FAUSTFLOAT=float``: inputs, outputs and controls
  are rounded to float32. ``double=True`` uses ``faust -double`` and
  ``FAUSTFLOAT=double``.
* ``round(x)`` is added as a Faust definition when the program calls it
  without defining it (Faust 2.54.9 has no ``round`` primitive): see ``ROUND_SHIM``.
* ``params`` maps a full path (``/gt/gain``), a MapUI short name or a bare
  label to a value set after ``init(sample_rate)``, before the first sample, or to
  a schedule ``[(offset, value), ...]`` (automation: a button pressed at sample
  1024 is ``[(1024, 1.0), (2048, 0.0)]``); offsets are multiples of ``block_size``.
  Controls are read once per ``compute()`` call of ``block_size`` samples.

Noise input (``noise_input``), per channel c (same as shared/tools/faust-ref):
``seed = fmix32(c + 1)`` (murmur3 finalizer), ``state = (1664525*state +
1013904223) mod 2^32`` advanced before each sample, ``x = (state >> 8)/2^23 - 1``,
in [-1, 1) and exact in float32.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "FaustRefError",
    "faust_available",
    "render_reference",
    "reference_info",
    "bench_reference",
    "noise_input",
    "impulse_input",
    "make_input",
    "schedule_array",
    "build_cpp",
    "build_cpp_bundle",
    "run_binary",
    "binary_info",
]

FAUST = os.environ.get("FAUST", "faust")
CXX = os.environ.get("CXX", "g++")

# --------------------------------------------------------------------------- driver
# Compiled in two translation units: the per-program unit (FAUSTREF_UNIT defined)
# includes the generated class and exports a factory; the driver (main) is built
# once per option set and cached as an object file.
DRIVER_CPP = r"""
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include <chrono>
#include <faust/dsp/dsp.h>
#include <faust/gui/meta.h>
#include <faust/gui/UI.h>

dsp* faustref_new();

#ifdef FAUSTREF_UNIT
#include "gen.cpp"
dsp* faustref_new() { return new mydsp(); }
#else
#include <faust/gui/MapUI.h>

struct Widget {
    std::string type, label;
    FAUSTFLOAT* zone;
    double init, lo, hi, step;
    std::vector<std::pair<std::string, std::string>> meta;
};

static std::string q(const std::string& s) {
    std::string r = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') { r += '\\'; r += char(c); }
        else if (c < 0x20) { char b[8]; snprintf(b, 8, "\\u%04x", c); r += b; }
        else r += char(c);
    }
    return r + "\"";
}

static std::string num(double v) {
    if (std::isnan(v)) return "null";
    char b[32]; snprintf(b, 32, "%.17g", v); return b;
}

struct Collect : public MapUI {
    std::vector<Widget> ws;
    std::map<FAUSTFLOAT*, std::vector<std::pair<std::string, std::string>>> pending;
    void declare(FAUSTFLOAT* z, const char* k, const char* v) override {
        if (z) pending[z].emplace_back(k, v);
    }
    void add(const char* t, const char* l, FAUSTFLOAT* z, double i, double a, double b, double s) {
        ws.push_back(Widget{t, l, z, i, a, b, s, pending[z]});
    }
    void addButton(const char* l, FAUSTFLOAT* z) override { add("button", l, z, 0, 0, 1, 1); MapUI::addButton(l, z); }
    void addCheckButton(const char* l, FAUSTFLOAT* z) override { add("checkbox", l, z, 0, 0, 1, 1); MapUI::addCheckButton(l, z); }
    void addVerticalSlider(const char* l, FAUSTFLOAT* z, FAUSTFLOAT i, FAUSTFLOAT a, FAUSTFLOAT b, FAUSTFLOAT s) override {
        add("vslider", l, z, i, a, b, s); MapUI::addVerticalSlider(l, z, i, a, b, s); }
    void addHorizontalSlider(const char* l, FAUSTFLOAT* z, FAUSTFLOAT i, FAUSTFLOAT a, FAUSTFLOAT b, FAUSTFLOAT s) override {
        add("hslider", l, z, i, a, b, s); MapUI::addHorizontalSlider(l, z, i, a, b, s); }
    void addNumEntry(const char* l, FAUSTFLOAT* z, FAUSTFLOAT i, FAUSTFLOAT a, FAUSTFLOAT b, FAUSTFLOAT s) override {
        add("nentry", l, z, i, a, b, s); MapUI::addNumEntry(l, z, i, a, b, s); }
    void addHorizontalBargraph(const char* l, FAUSTFLOAT* z, FAUSTFLOAT a, FAUSTFLOAT b) override {
        add("hbargraph", l, z, 0, a, b, 0); MapUI::addHorizontalBargraph(l, z, a, b); }
    void addVerticalBargraph(const char* l, FAUSTFLOAT* z, FAUSTFLOAT a, FAUSTFLOAT b) override {
        add("vbargraph", l, z, 0, a, b, 0); MapUI::addVerticalBargraph(l, z, a, b); }

    FAUSTFLOAT* find(const std::string& name) {
        for (auto* m : {&getFullpathMap(), &getShortnameMap(), &getLabelMap()}) {
            auto it = m->find(name);
            if (it != m->end()) return it->second;
        }
        return nullptr;
    }
    std::string nameOf(std::map<std::string, FAUSTFLOAT*>& m, FAUSTFLOAT* z) {
        for (auto& it : m) if (it.second == z) return it.first;
        return "";
    }
};

// usage: prog info
//        prog run   SR N BS [NAME VALUE]...   stdin: inputs*N f64, stdout: outputs*N f64
//        prog bench SR N BS REPS [NAME VALUE]...   stdin as run; stdout: JSON seconds
int main(int argc, char** argv) {
    if (argc < 2) return 2;
    std::string mode = argv[1];
    dsp* d = faustref_new();
    Collect ui;
    d->buildUserInterface(&ui);
    int ni = d->getNumInputs(), no = d->getNumOutputs();
    if (mode == "info") {
        std::string s = "{\"inputs\":" + std::to_string(ni) + ",\"outputs\":" + std::to_string(no) + ",\"params\":[";
        for (size_t k = 0; k < ui.ws.size(); k++) {
            Widget& w = ui.ws[k];
            s += std::string(k ? "," : "") + "{\"type\":" + q(w.type) + ",\"label\":" + q(w.label)
               + ",\"path\":" + q(ui.nameOf(ui.getFullpathMap(), w.zone))
               + ",\"shortname\":" + q(ui.nameOf(ui.getShortnameMap(), w.zone))
               + ",\"init\":" + num(w.init) + ",\"min\":" + num(w.lo) + ",\"max\":" + num(w.hi)
               + ",\"step\":" + num(w.step) + ",\"meta\":{";
            for (size_t j = 0; j < w.meta.size(); j++)
                s += std::string(j ? "," : "") + q(w.meta[j].first) + ":" + q(w.meta[j].second);
            s += "}}";
        }
        printf("%s]}\n", s.c_str());
        return 0;
    }
    bool bench = mode == "bench";
    int a = 2;
    int sr = atoi(argv[a++]);
    long n = atol(argv[a++]);
    int bs = atoi(argv[a++]);
    int reps = bench ? atoi(argv[a++]) : 0;
    d->init(sr);
    // VALUE is a number (set now) or a schedule "OFFSET:VALUE,OFFSET:VALUE,...": each value
    // is set before the compute() call of the block that starts at its sample offset
    std::vector<std::pair<long, std::pair<FAUSTFLOAT*, double>>> sched;
    for (; a + 1 < argc; a += 2) {
        FAUSTFLOAT* z = ui.find(argv[a]);
        if (!z) { fprintf(stderr, "unknown parameter '%s'\n", argv[a]); return 6; }
        const char* v = argv[a + 1];
        if (!strchr(v, ':')) { *z = FAUSTFLOAT(strtod(v, nullptr)); continue; }
        while (*v) {
            char* e;
            long off = strtol(v, &e, 10);
            if (*e != ':') { fprintf(stderr, "bad schedule '%s'\n", argv[a + 1]); return 2; }
            double val = strtod(e + 1, &e);
            sched.push_back({off, {z, val}});
            v = *e == ',' ? e + 1 : e;
        }
    }
    std::vector<double> raw(size_t(ni) * n);
    if (ni && fread(raw.data(), sizeof(double), raw.size(), stdin) != raw.size()) {
        fprintf(stderr, "short input\n"); return 2;
    }
    std::vector<FAUSTFLOAT> in(size_t(ni) * n), out(size_t(no) * n);
    for (size_t k = 0; k < raw.size(); k++) in[k] = FAUSTFLOAT(raw[k]);
    std::vector<FAUSTFLOAT*> ip(ni + 1), op(no + 1);
    std::vector<double> secs;
    for (int r = 0; r <= reps; r++) {  // bench: repetition 0 is a warm-up
        if (r == 1) secs.clear();
        auto t0 = std::chrono::steady_clock::now();
        for (long done = 0; done < n; done += bs) {
            int cnt = int(n - done < bs ? n - done : bs);
            for (auto& ev : sched) if (ev.first == done) *ev.second.first = FAUSTFLOAT(ev.second.second);
            for (int c = 0; c < ni; c++) ip[c] = in.data() + size_t(c) * n + done;
            for (int c = 0; c < no; c++) op[c] = out.data() + size_t(c) * n + done;
            d->compute(cnt, ip.data(), op.data());
        }
        secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    if (bench) {
        std::string s = "{\"seconds\":[";
        for (size_t k = 1; k < secs.size(); k++) s += std::string(k > 1 ? "," : "") + num(secs[k]);
        printf("%s]}\n", s.c_str());
        return 0;
    }
    std::vector<double> res(out.size());
    for (size_t k = 0; k < out.size(); k++) res[k] = double(out[k]);
    fwrite(res.data(), sizeof(double), res.size(), stdout);
    return 0;
}
#endif
"""


class FaustRefError(RuntimeError):
    """faust rejected the program, g++ failed, or the program failed at run time."""


# --------------------------------------------------------------------------- tools
def _which(cmd: str) -> str | None:
    return shutil.which(cmd)


@functools.lru_cache(maxsize=None)
def faust_available() -> bool:
    """True when both ``faust`` and ``g++`` (and Faust's C++ headers) are usable."""
    if not (_which(FAUST) and _which(CXX)):
        return False
    try:
        _versions()
    except (OSError, subprocess.SubprocessError):
        return False
    inc = subprocess.run([CXX, "-E", "-x", "c++", "-"], input="#include <faust/dsp/dsp.h>\n",
                         capture_output=True, text=True)
    return inc.returncode == 0


@functools.lru_cache(maxsize=None)
def _versions() -> str:
    f = subprocess.run([FAUST, "--version"], capture_output=True, text=True, timeout=30, check=True)
    g = subprocess.run([CXX, "--version"], capture_output=True, text=True, timeout=30, check=True)
    return f.stdout.splitlines()[0] + " | " + g.stdout.splitlines()[0]


def cache_dir() -> Path:
    root = os.environ.get("DIFFAUST_TEST_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "diffaust-tests"
    d = base / "faustref"
    from .runtime.cache import private

    for folder in (base, d):  # binaries built here are run: only from a folder of this user's
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(folder)
        except OSError as e:
            raise FaustRefError(f"cannot create the reference build folder {folder}: {e.strerror or e}") from None
        if not private(st):
            raise FaustRefError(f"the reference build folder {folder} is owned by another user or writable by "
                                "others: set DIFFAUST_TEST_CACHE to a folder of yours")
    return d


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _cxx_flags(double: bool, opt: str) -> list[str]:
    flags = ["-std=c++17", *opt.split(), "-ffp-contract=off", "-fwrapv", "-w"]
    if double:
        flags.append("-DFAUSTFLOAT=double")
    return flags


def _publish(tmp: Path, final: Path) -> None:
    """Atomically move a finished build folder into place (first writer wins)."""
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        status = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}"
        raise FaustRefError(f"{what} failed ({' '.join(cmd)}):\n{p.stderr.strip() or '(no message, ' + status + ')'}")


def _driver_object(double: bool, opt: str) -> Path:
    flags = _cxx_flags(double, opt)
    final = cache_dir() / ("driver-" + _sha(_versions(), DRIVER_CPP, *flags)[:24])
    if not (final / "driver.o").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir()))
        (tmp / "driver.cpp").write_text(DRIVER_CPP)
        _run([CXX, *flags, "-c", "driver.cpp", "-o", "driver.o"], tmp, "g++ (driver)")
        _publish(tmp, final)
    return final / "driver.o"


# ``round`` is not a primitive of Faust 2.54.9 ("undefined symbol : round"); diffaust
# implements it as C's round (ties away from zero). For the oracle, a program that
# calls round() without defining it gets this exact definition appended (x - rint(x)
# is exact, and x +- 0.5 is exact at a tie).
# It is written point-free so that round(_) keeps one input (a pattern definition
# ``round(x) = ... x ... x`` would substitute the box ``_`` several times).
ROUND_SHIM = ("\nround = _ <: ((_ <: (_ - rint(_))) : abs : ==(0.5)), rint, "
              "(_ <: (_ + select2(_ < 0, 0.5, -0.5))) : select2;  // added by tests/faustref.py\n")
_USES_ROUND = re.compile(r"(?<![\w.])round\s*\(")
_DEFINES_ROUND = re.compile(r"(?m)^\s*round\s*(\(|=)")


def with_round_shim(text: str) -> str:
    """``text`` plus a Faust definition of ``round`` when it calls round() undefined."""
    if _USES_ROUND.search(text) and not _DEFINES_ROUND.search(text):
        return text + ROUND_SHIM
    return text


def _as_source(source) -> tuple[str, list[str]]:
    """Source text and -I folders; a Path is read and its folder is searched."""
    if isinstance(source, Path):
        return with_round_shim(source.read_text()), [str(source.resolve().parent)]
    return with_round_shim(source), []


# A program with a soundfile gets Faust's own sound loader (faust/gui/SoundUI.h, with
# libsndfile): its dsp is wrapped so that init() is followed by the SoundUI pass, which
# loads the url files from the program's folder (a missing file gives Faust's silence).
SOUND_PRELUDE = "#include <faust/gui/SoundUI.h>\n#define faustref_new faustref_new_inner\n"
SOUND_POSTLUDE = r"""
#undef faustref_new
struct FaustrefSoundDsp : public decorator_dsp {
    explicit FaustrefSoundDsp(dsp* d) : decorator_dsp(d) {}
    void init(int sr) override {
        fDSP->init(sr);
        // kept alive: the SoundUI owns the loaded sound files
        SoundUI* sound = new SoundUI(SOUND_DIR, -1, nullptr, sizeof(FAUSTFLOAT) == sizeof(double));
        fDSP->buildUserInterface(sound);
    }
};
dsp* faustref_new() { return new FaustrefSoundDsp(faustref_new_inner()); }
"""
_USES_SOUNDFILE = re.compile(r"\bsoundfile\s*\(")


def _unit_text(text: str, incs) -> tuple[str, list[str]]:
    """The per-program C++ unit and extra link flags (Faust's SoundUI for soundfile programs)."""
    if not _USES_SOUNDFILE.search(text):
        return DRIVER_CPP, []
    folder = incs[0] if incs else os.getcwd()
    post = SOUND_POSTLUDE.replace("SOUND_DIR", json.dumps(folder))
    return SOUND_PRELUDE + DRIVER_CPP + "#ifdef FAUSTREF_UNIT\n" + post + "#endif\n", ["-lsndfile"]


def _header_dirs(gen_cpp: str, incs) -> list[str]:
    """-I flags for the headers the generated C++ includes (ffunction headers): found in the
    program's folders or an installed Faust's architecture folders, as diffaust finds them."""
    import re

    from diffaust.codegen.foreign_c import find_header

    flags: list[str] = []
    for name in re.findall(r'^#include\s*[<"]([^>"]+)[>"]', gen_cpp, re.M):
        path = find_header(name, incs)
        if path and os.path.dirname(path) not in flags:
            flags += ["-I", os.path.dirname(path)]
    return flags


def build(source, *, double: bool = False, opt: str = "-O1", faust_args=(),
          include_dirs=()) -> Path:
    """Compile ``source`` (text or Path) and return the path of the cached binary."""
    text, incs = _as_source(source)
    incs = [*incs, *map(str, include_dirs)]
    fargs = ["-lang", "cpp", *(["-double"] if double else []), *faust_args]
    for d in incs:
        fargs += ["-I", d]
    flags = _cxx_flags(double, opt)
    unit, libs = _unit_text(text, incs)
    key = _sha(_versions(), text, json.dumps(fargs), json.dumps(flags), unit)
    final = cache_dir() / key[:32]
    prog = final / "prog"
    if prog.exists():
        return prog
    driver = _driver_object(double, opt)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir()))
    try:
        (tmp / "prog.dsp").write_text(text)
        _run([FAUST, *fargs, "prog.dsp", "-o", "gen.cpp"], tmp, "faust")
        (tmp / "unit.cpp").write_text(unit)
        hdirs = _header_dirs((tmp / "gen.cpp").read_text(), incs)
        _run([CXX, *flags, *hdirs, "-DFAUSTREF_UNIT", "-c", "unit.cpp", "-o", "unit.o"], tmp, "g++")
        _run([CXX, "unit.o", str(driver), "-o", "prog", "-lm", *libs], tmp, "link")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return prog


# --------------------------------------------------------------------------- inputs
def noise_input(channels: int, n: int) -> np.ndarray:
    """Deterministic LCG white noise in [-1, 1), float64 of shape (channels, n): faust-ref's
    generator, the one `diffaust render --input noise` uses (checked bit for bit in test_audio)."""
    from diffaust.audio import lcg_noise

    return np.stack([lcg_noise(ch, n) for ch in range(channels)]) if channels else np.zeros((0, n))


def impulse_input(channels: int, n: int) -> np.ndarray:
    """1.0 at sample 0 on every channel, 0 elsewhere: float64 (channels, n)."""
    x = np.zeros((channels, n))
    if n:
        x[:, 0] = 1.0
    return x


def make_input(kind, channels: int, n: int) -> np.ndarray:
    """An input array from a kind name (impulse/noise/zeros/ones) or an array-like."""
    if kind is None or (isinstance(kind, str) and kind == "zeros"):
        return np.zeros((channels, n))
    if isinstance(kind, str):
        if kind == "impulse":
            return impulse_input(channels, n)
        if kind == "noise":
            return noise_input(channels, n)
        if kind == "ones":
            return np.ones((channels, n))
        raise ValueError(f"unknown input kind {kind!r}")
    x = np.asarray(kind, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[0] != channels:
        raise ValueError(f"input has {x.shape[0]} channels, the program has {channels}")
    return x[:, :n] if x.shape[1] >= n else x


# --------------------------------------------------------------------------- API
def _env(cls):
    """Environment of a run: FAUSTREF_CLASS picks a class of a ``build_cpp_bundle`` binary."""
    if cls is None:
        return None
    return {**os.environ, "FAUSTREF_CLASS": str(cls)}


@functools.lru_cache(maxsize=512)
def _info(prog: Path, cls=None) -> dict:
    p = subprocess.run([str(prog), "info"], capture_output=True, text=True, timeout=60, env=_env(cls))
    if p.returncode != 0:
        raise FaustRefError(f"info failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def reference_json(path: Path, include_dirs=()) -> dict:
    """``faust -json`` of a .dsp file (its own name and folder, so the UI root is the file's
    name): the UI description Faust's architectures read.  Cached like the builds."""
    path = Path(path).resolve()
    incs = [str(path.parent), *(str(Path(d).resolve()) for d in include_dirs)]
    key = _sha(_versions(), "json", str(path), path.read_text(), *(incs[1:]))
    final = cache_dir() / ("json-" + key[:32] + ".json")
    if final.exists():
        return json.loads(final.read_text())
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir()))
    try:
        iflags = [f for d in incs for f in ("-I", d)]
        _run([FAUST, "-json", "-O", str(tmp), *iflags, str(path), "-o", "gen.cpp"], tmp, "faust -json")
        text = (tmp / (path.name + ".json")).read_text()
        tmp_file = tmp / "out.json"
        tmp_file.write_text(text)
        os.replace(tmp_file, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(text)


def reference_info(source, *, double: bool = False, **build_kw) -> dict:
    """``{"inputs": int, "outputs": int, "params": [{type, label, path, shortname,
    init, min, max, step, meta}, ...]}`` in UI order."""
    return _info(build(source, double=double, **build_kw))


def _param_args(params, block_size: int = 256) -> list[str]:
    """Driver arguments NAME VALUE for ``params``: a value is a number (set after init) or a
    schedule ``[(offset, value), ...]`` of changes at sample offsets, each a multiple of
    ``block_size`` (a value is applied before the compute() call of the block starting there)."""
    args = []
    for k, v in (params or {}).items():
        if isinstance(v, (list, tuple)):
            events = []
            for ev in v:
                try:
                    off, val = ev
                except (TypeError, ValueError):
                    raise ValueError(f"parameter {k!r}: a schedule is a list of (offset, value) pairs, "
                                     f"got {ev!r}") from None
                if isinstance(off, bool) or not isinstance(off, (int, np.integer)) or off < 0:
                    raise ValueError(f"parameter {k!r}: a schedule offset must be a sample index >= 0, "
                                     f"got {off!r}")
                if off % block_size:
                    raise ValueError(f"parameter {k!r}: schedule offset {off} is not a multiple of the "
                                     f"block size {block_size} (controls change between compute() calls)")
                events.append((int(off), float(val)))
            events.sort(key=lambda e: e[0])  # stable: the last of equal offsets wins
            # an empty schedule leaves the widget at its init value (offset -1: never applied)
            args += [str(k), ",".join(f"{o}:{val!r}" for o, val in events) or "-1:0"]
        else:
            args += [str(k), repr(float(v))]
    return args


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a whole number of samples >= 1, got {block_size!r}")
    return int(block_size)


def schedule_array(schedule, n: int, init: float) -> np.ndarray:
    """The per-sample values (float64, (n,)) of a parameter following ``schedule``: a number
    (constant) or ``[(offset, value), ...]`` changes at sample offsets, ``init`` before the first."""
    a = np.full(n, float(init))
    if isinstance(schedule, (list, tuple)):
        for off, val in sorted(schedule, key=lambda e: e[0]):
            a[int(off):] = float(val)
    else:
        a[:] = float(schedule)
    return a


def render_reference(source, n: int = 4096, x=None, params=None, double: bool = False,
                     sample_rate: int = 44100, block_size: int = 256, *,
                     opt: str = "-O1", faust_args=(), include_dirs=()) -> np.ndarray:
    """Render ``source`` with the real Faust compiler; float64 array (outputs, n).

    If ``x`` is an array with fewer samples than ``n`` the array length wins.
    ``params``: {name: value}, where a value is a number (set after init) or a schedule
    ``[(offset, value), ...]``: the widget takes ``value`` before the compute() call of the
    block starting at sample ``offset`` (a multiple of ``block_size``, else ValueError), and
    keeps its init value before the first change.  compute() is called per ``block_size``
    samples, the last block being shorter when ``block_size`` does not divide ``n``.
    """
    block_size = _check_block_size(block_size)
    _param_args(params, block_size)  # ValueError before building
    prog = build(source, double=double, opt=opt, faust_args=faust_args,
                 include_dirs=include_dirs)
    return run_binary(prog, n=n, x=x, params=params, sample_rate=sample_rate, block_size=block_size)


def run_binary(prog: Path, n: int = 4096, x=None, params=None, sample_rate: int = 44100,
               block_size: int = 256, cls=None) -> np.ndarray:
    """Run a binary from ``build``, ``build_cpp`` or ``build_cpp_bundle`` (``cls``: which class
    of a bundle): float64 array (outputs, n)."""
    block_size = _check_block_size(block_size)
    args = _param_args(params, block_size)
    info = _info(prog, cls)
    xin = make_input(x, info["inputs"], n)
    n = xin.shape[1] if info["inputs"] else n
    cmd = [str(prog), "run", str(int(sample_rate)), str(int(n)), str(block_size), *args]
    p = subprocess.run(cmd, input=np.ascontiguousarray(xin, "<f8").tobytes(),
                       capture_output=True, timeout=300, env=_env(cls))
    if p.returncode == 6:
        raise KeyError(p.stderr.decode().strip())
    if p.returncode != 0:
        raise FaustRefError(f"program failed with status {p.returncode}: {p.stderr.decode()}")
    return np.frombuffer(p.stdout, dtype="<f8").reshape(info["outputs"], n).copy()


def binary_info(prog: Path, cls=None) -> dict:
    """``info`` of a binary from ``build``, ``build_cpp`` or ``build_cpp_bundle`` (see ``reference_info``)."""
    return _info(prog, cls)


def build_cpp(cpp_text: str, *, double: bool = False, opt: str = "-O1") -> Path:
    """Build the driver around C++ text defining ``class mydsp : public dsp`` (for example
    diffaust's ``compile -lang cpp`` export) instead of running faust; cached like ``build``."""
    flags = _cxx_flags(double, opt)
    key = _sha(_versions(), "cpp-text", cpp_text, json.dumps(flags), DRIVER_CPP)
    final = cache_dir() / ("cpp-" + key[:28])
    prog = final / "prog"
    if prog.exists():
        return prog
    driver = _driver_object(double, opt)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir()))
    try:
        (tmp / "gen.cpp").write_text(cpp_text)
        (tmp / "unit.cpp").write_text(DRIVER_CPP)
        _run([CXX, *flags, "-DFAUSTREF_UNIT", "-c", "unit.cpp", "-o", "unit.o"], tmp, "g++")
        _run([CXX, "unit.o", str(driver), "-o", "prog", "-lm"], tmp, "link")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return prog


def build_cpp_bundle(classes: dict, *, double: bool = False, opt: str = "-O1") -> Path:
    """One binary holding several classes ``{class name: C++ text}`` (each text defines that
    class, e.g. diffaust's export with another class name): one g++ run instead of one per
    class. Pick the class of a run with ``cls=`` (``run_binary``, ``binary_info``)."""
    names = list(classes)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name == "mydsp":
            raise ValueError(f"bad class name {name!r}")
    pick = "".join(f'    if (!strcmp(w, "{n}")) return new {n}();\n' for n in names)
    text = "\n".join(classes[n] for n in names) + (
        "\n#include <cstdio>\n#include <cstdlib>\n#include <cstring>\n"
        "static dsp* faustref_pick() {\n"
        '    const char* w = getenv("FAUSTREF_CLASS");\n'
        '    if (!w) w = "";\n' + pick +
        '    fprintf(stderr, "FAUSTREF_CLASS=%s: no such class in the bundle\\n", w);\n'
        "    exit(7);\n}\n"
        "struct mydsp : public decorator_dsp { mydsp() : decorator_dsp(faustref_pick()) {} };\n")
    return build_cpp(text, double=double, opt=opt)


def bench_reference(source, n: int, x=None, params=None, *, reps: int = 5,
                    double: bool = False, sample_rate: int = 48000, block_size: int = 256,
                    opt: str = "-O3") -> list[float]:
    """Seconds of ``compute()`` for n samples, per repetition (after one warm-up)."""
    block_size = _check_block_size(block_size)
    args = _param_args(params, block_size)
    prog = build(source, double=double, opt=opt)
    info = _info(prog)
    xin = make_input(x, info["inputs"], n)
    cmd = [str(prog), "bench", str(int(sample_rate)), str(int(n)), str(block_size),
           str(int(reps)), *args]
    p = subprocess.run(cmd, input=np.ascontiguousarray(xin, "<f8").tobytes(),
                       capture_output=True, timeout=600)
    if p.returncode != 0:
        raise FaustRefError(f"bench failed with status {p.returncode}: {p.stderr.decode()}")
    return json.loads(p.stdout)["seconds"]
