"""Foreign functions from C/C++ headers: `ffunction(float f(float), <f.h>, "")`.

Faust's C++ output `#include`s the header and calls `f` directly.  The LLVM backend
cannot read C++, so for a foreign function that is neither in the C math library nor
in a library the program names, diffaust builds a *shim*: one small C++ file that
includes the headers and wraps each function in an `extern "C"` function over the
program's own sample type,

    extern "C" double diffaust_ff_<h>_f(double a0) { return f(a0); }

compiled once with the system C++ compiler (`$CXX`, else c++/g++/clang++) into a
shared library kept in the cache (`<cache>/foreign/<h>.so`, h = hash of the shim text
and of the headers' contents).  The call `f(a0)` is the very expression Faust's C++
contains, so the implicit conversions (double → float argument, float result →
double) are C++'s own.

Headers are looked up, in order, in the -I folders, the program's folder, then the
folders of an installed Faust's architecture files (where e.g. `fast_pow2.h`, used
by the SAM examples, lives) — the folders the C++ compiler is then given.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Optional

from ..errors import FaustTypeError

ARCH_ROOTS = ("/usr/share/faust", "/usr/local/share/faust", "/opt/homebrew/share/faust")


@dataclass(frozen=True)
class ForeignShim:
    """A built shim: shared library path, header files read, {C name: shim symbol}."""

    library: str
    headers: tuple
    symbols: dict


def header_name(include: str) -> str:
    """`<bass.h>` / `"bass.h"` / `bass.h` → `bass.h`."""
    s = include.strip()
    if len(s) >= 2 and s[0] in "<\"" and s[-1] in ">\"":
        s = s[1:-1]
    return s.strip()


@functools.lru_cache(maxsize=None)
def _arch_dirs() -> tuple:
    """Folders (two levels deep) of an installed Faust's architecture files."""
    out = []
    for root in ARCH_ROOTS:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, _ in os.walk(root):
            depth = dirpath[len(root):].count(os.sep)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < 2 else []
            out.append(dirpath)
    return tuple(out)


def find_header(include: str, dirs=()) -> Optional[str]:
    """Path of the header an ffunction names, searched in `dirs` then Faust's
    architecture folders; None when not found (a system header such as <math.h>)."""
    name = header_name(include)
    if not name:
        return None
    for d in (*dirs, *_arch_dirs()):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return os.path.abspath(p)
    return None


def compiler() -> Optional[str]:
    """The C++ compiler: $CXX, else the first of c++, g++, clang++ on PATH."""
    env = os.environ.get("CXX")
    if env:
        return env
    for c in ("c++", "g++", "clang++"):
        p = shutil.which(c)
        if p:
            return p
    return None


def _c_type(nature: str, real: str) -> str:
    return "int" if nature == "int" else real


def shim_source(funcs, includes, real: str, tag: str = "") -> tuple[str, dict]:
    """The shim's C++ text and {C name: symbol}.

    funcs: [(C name, argument natures ('int'|'real'), result nature)]
    includes: the ffunction include strings, in first-use order
    real: 'float' or 'double', the program's sample type
    """
    lines = ["// diffaust foreign-function shim (generated)"]
    lines += ["#include " + (inc if inc[0] in "<\"" else f"<{inc}>") for inc in includes]
    symbols = {}
    for name, args, result in funcs:
        sym = f"diffaust_ff_{tag}_{name}"
        params = ", ".join(f"{_c_type(a, real)} a{i}" for i, a in enumerate(args))
        call = ", ".join(f"a{i}" for i in range(len(args)))
        lines.append(f'extern "C" {_c_type(result, real)} {sym}({params}) {{ return {name}({call}); }}')
        symbols[name] = sym
    return "\n".join(lines) + "\n", symbols


def _cache_dir() -> str:
    from ..runtime.cache import cache_root

    d = os.path.join(cache_root(), "foreign")
    os.makedirs(d, exist_ok=True)
    return d


def build_shim(funcs, includes, real: str, search_dirs=()) -> ForeignShim:
    """Build (or find in the cache) and load the shim for `funcs` (see shim_source).

    Raises FaustTypeError naming the functions when no C++ compiler is found or the
    compiler rejects the shim (a missing header, an undeclared function)."""
    headers, inc_dirs = [], []
    for inc in includes:
        path = find_header(inc, search_dirs)
        if path is None:  # a system header (<math.h>), or missing: the compiler says which
            continue
        headers.append(path)
        if os.path.dirname(path) not in inc_dirs:
            inc_dirs.append(os.path.dirname(path))
    h = hashlib.sha256()
    for p in headers:
        with open(p, "rb") as f:
            h.update(p.encode() + b"\0" + f.read() + b"\0")
    h.update(repr((tuple(funcs), tuple(includes), real)).encode())
    tag = h.hexdigest()[:12]
    text, symbols = shim_source(funcs, includes, real, tag)
    lib = os.path.join(_cache_dir(), f"{tag}.so")
    if not os.path.exists(lib):
        _compile(text, inc_dirs, lib, [n for n, _, _ in funcs])
    load_library(lib)
    return ForeignShim(lib, tuple(headers), symbols)


def _compile(text: str, inc_dirs, lib: str, names) -> None:
    cxx = compiler()
    who = ", ".join(names)
    if cxx is None:
        raise FaustTypeError(f"foreign function {who} is defined in a C/C++ header: compiling it needs a C++ "
                             "compiler (none found; install g++ or set CXX)")
    with tempfile.TemporaryDirectory(prefix="diffaust-ff-") as tmp:
        src = os.path.join(tmp, "shim.cpp")
        with open(src, "w") as f:
            f.write(text)
        out = os.path.join(tmp, "shim.so")
        cmd = [*cxx.split(), "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-w",
               *(a for d in inc_dirs for a in ("-I", d)), src, "-o", out]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except OSError as e:
            raise FaustTypeError(f"foreign function {who}: cannot run the C++ compiler {cxx}: {e}") from None
        if r.returncode != 0:
            first = "\n".join((r.stderr or r.stdout).strip().splitlines()[:6])
            raise FaustTypeError(f"foreign function {who}: the C++ compiler rejected the call through its "
                                 f"header (headers are searched in the -I folders, the program's folder and "
                                 f"Faust's architecture folders):\n{first}")
        os.replace(out, lib)  # atomic: concurrent builds of the same shim are safe


@functools.lru_cache(maxsize=None)
def load_library(lib: str) -> None:
    """Load a shim into the process, its symbols visible to the JIT and to ctypes."""
    import llvmlite.binding as llvm

    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    llvm.load_library_permanently(lib)
