"""Foreign functions from C/C++ headers: `ffunction(float f(float), <f.h>, "")`.

Faust's C++ output `#include`s the header and calls `f` directly.  The LLVM backend
cannot read C++, so for a foreign function that is neither in the C math library nor
in a library the program names, diffaust builds a *shim*: one small C++ file that
includes the headers and wraps each function in an `extern "C"` function over the
program's own sample type,

    extern "C" double diffaust_ff_<h>_f(double a0) { return f(a0); }

compiled once with the system C++ compiler (`$CXX`, else c++/g++/clang++) into a
shared library kept in the cache: `<cache>/foreign/<h>-<d>.so`, h = hash of the shim
text and of the headers' contents, d = digest of the library itself, named by the index
`<cache>/foreign/<h>.json`; a library is loaded only from there, private and with that
digest (see runtime/cache.py), else from a private folder of this process.  The call `f(a0)` is the very expression Faust's C++
contains, so the implicit conversions (double → float argument, float result →
double) are C++'s own.

Headers are looked up, in order, in the -I folders, the program's folder, then the
folders of an installed Faust's architecture files (where e.g. `fast_pow2.h`, used
by the SAM examples, lives) — the folders the C++ compiler is then given.

Consent.  Compiling a header runs its code (a `static` initializer runs when the shim is
loaded), so only an installed Faust's own headers are *trusted* (`trusted_path`: the file,
symbolic links resolved, lies under TRUSTED_ROOTS — Faust's architecture folders and
Debian's faust-common examples, e.g. the faust-stk and SAM headers).  A header found
anywhere else (next to the program, in an -I folder, in the working folder) is compiled
only with ``allow_native=True`` (``--allow-native``), and then a DiffaustWarning says
which files and which compiler command.  A header found in none of the searched folders
is a system header (`<math.h>`): it is compiled without asking.  The shim includes each
header found by its path (a trusted one with symbolic links resolved) and a system
header as `<name>` (no lookup next to the shim), and the compiler is given only the
folders of the headers found (never an untrusted folder without consent), so a system
header cannot be shadowed by a file of the program's.  A name with a `..` component or an
absolute path that is found nowhere is not a system header (it could reach any file).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import warnings
from dataclasses import dataclass
from typing import Optional

from ..errors import DiffaustWarning, FaustTypeError, NativeCodeError

ARCH_ROOTS = ("/usr/share/faust", "/usr/local/share/faust", "/opt/homebrew/share/faust")
# folders of an installed Faust whose headers are compiled without --allow-native: its
# architecture folders and Debian's copy of its examples (faust-stk's bass.h ...)
TRUSTED_ROOTS = ARCH_ROOTS + ("/usr/share/doc/faust-common/examples",)

ALLOW_HINT = "pass --allow-native (allow_native=True) to compile it"


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


# a header name: printable, no quotes, angle brackets, backslashes or comment marks
_BAD_INCLUDE = re.compile(r'[\x00-\x1f\x7f"<>\\\u0085\u2028\u2029]|/\*|\*/|//')


def check_include(include: str) -> str:
    """The include of an ffunction as it is written after `#include`: `<name>` or `"name"`
    (a bare name becomes `<name>`).  A name that could end the directive or open a
    comment (a newline, a quote, `*/` ...) raises FaustTypeError: it is written into C++."""
    s = (include or "").strip()
    name = header_name(s)
    if not name or _BAD_INCLUDE.search(name) or name != name.strip():
        raise FaustTypeError(f"ffunction include {_shown(s)}: not a header file name (a name without quotes, "
                             "'<', '>', backslashes, comment marks or control characters)")
    return f'"{name}"' if s.startswith('"') else f"<{name}>"


def _shown(s: str) -> str:
    """A user string for a message: repr-escaped when it holds anything unprintable."""
    return s if s.isprintable() else repr(s)


def trusted_path(path: str) -> bool:
    """Whether a file (symbolic links resolved) lies in an installed Faust's own folders."""
    real = os.path.realpath(path)
    for root in TRUSTED_ROOTS:
        r = os.path.realpath(root)
        if os.path.isdir(r) and os.path.commonpath([real, r]) == r:
            return True
    return False


def system_name(include: str) -> bool:
    """Whether a header name not found in any searched folder may be left to the compiler's
    own (system) folders: a relative name without `..` components."""
    name = header_name(include)
    return bool(name) and not os.path.isabs(name) and ".." not in name.replace("\\", "/").split("/")


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
    found = locate_header(include, dirs)
    return found[1] if found else None


def locate_header(include: str, dirs=()) -> Optional[tuple]:
    """(folder searched, path) of the header an ffunction names, searched in `dirs` then
    Faust's architecture folders; None when not found."""
    name = header_name(include)
    if not name:
        return None
    for d in (*dirs, *_arch_dirs()):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return os.path.abspath(d), os.path.abspath(p)
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
    includes: the ffunction include strings, in first-use order (an absolute path: that file)
    real: 'float' or 'double', the program's sample type
    """
    lines = ["// diffaust foreign-function shim (generated)"]
    # a header found by diffaust is included by its absolute path (build_shim); any other by
    # <name>: a "name" include would also be looked up next to the shim's own file
    for inc in includes:
        name = header_name(check_include(inc))
        lines.append(f'#include "{name}"' if os.path.isabs(name) else f"#include <{name}>")
    symbols = {}
    for name, args, result in funcs:
        sym = f"diffaust_ff_{tag}_{name}"
        params = ", ".join(f"{_c_type(a, real)} a{i}" for i, a in enumerate(args))
        call = ", ".join(f"a{i}" for i in range(len(args)))
        lines.append(f'extern "C" {_c_type(result, real)} {sym}({params}) {{ return {name}({call}); }}')
        symbols[name] = sym
    return "\n".join(lines) + "\n", symbols


# shims built in this process without the on-disk cache: tag → library path
_PRIVATE: dict = {}
_PRIVATE_LOCK = threading.Lock()
_LIB_NAME = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{16}\.so$")


def _cached_library(tag: str) -> Optional[str]:
    """The cached shim for `tag`: its index `<tag>.json` names `<tag>-<digest>.so` and its
    sha256; both files private (owned by this user, writable by no one else) and the
    library's content matching.  None otherwise (then it is built again)."""
    from ..runtime import cache

    d = cache.folder("foreign")
    if d is None:
        return None
    raw = cache.read_private(os.path.join(d, tag + ".json"), limit=4096)
    try:
        index = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(index, dict) or not isinstance(index.get("library"), str) or \
            not _LIB_NAME.match(index["library"]) or not index["library"].startswith(tag + "-"):
        return None
    path = os.path.join(d, index["library"])
    return path if cache.library_ok(path, str(index.get("sha256"))) else None


def _keep_library(tag: str, data: bytes, use_cache: bool) -> str:
    """Put a built shim where it is loaded from: the cache's own folder (content-addressed,
    written atomically, then its index), else a private folder of this process."""
    from ..runtime import cache

    digest = cache.sha256(data)
    d = cache.folder("foreign") if use_cache else None
    if d is not None:
        path = os.path.join(d, f"{tag}-{digest[:16]}.so")
        index = json.dumps({"library": os.path.basename(path), "sha256": digest}).encode()
        if cache.write_atomic(path, data) and cache.write_atomic(os.path.join(d, tag + ".json"), index):
            return path
    with _PRIVATE_LOCK:
        tmp = tempfile.mkdtemp(prefix="diffaust-ff-")  # 0700, removed at exit
        atexit.register(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, f"{tag}.so")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _PRIVATE[tag] = path
        return path


def header_candidates(include: str, dirs=()) -> list:
    """Every path the header search looks at for `include`, in order, up to the one found:
    a file appearing at one of them later would change what is compiled."""
    name = header_name(include)
    out = []
    for d in (*dirs, *_arch_dirs()):
        p = os.path.abspath(os.path.join(d, name))
        out.append(p)
        if os.path.isfile(p):
            break
    return out


def resolve_includes(includes, search_dirs=()) -> list:
    """[(include, folder searched or None, header path or None, trusted)] for each include:
    trusted when the header lies in an installed Faust's folders, or when it is found in no
    searched folder and may be a system header (`system_name`)."""
    out = []
    for inc in includes:
        found = locate_header(inc, search_dirs)
        if found is None:
            out.append((inc, None, None, system_name(inc)))
        else:
            out.append((inc, found[0], found[1], trusted_path(found[1])))
    return out


def build_shim(funcs, includes, real: str, search_dirs=(), allow_native: bool = False,
               use_cache: bool = True) -> ForeignShim:
    """Build (or find in the cache) and load the shim for `funcs` (see shim_source).
    With use_cache=False (or DIFFAUST_NO_CACHE=1) it is built in a private folder of
    this process, once per process.

    A header outside an installed Faust's folders (see the module's "Consent") is compiled
    only with allow_native (else NativeCodeError), and then a DiffaustWarning names the
    files and the compiler command before the compiler runs.
    Raises FaustTypeError naming the functions when no C++ compiler is found or the
    compiler rejects the shim (a missing header, an undeclared function)."""
    names = [n for n, _, _ in funcs]
    headers, inc_dirs, untrusted, shim_includes = [], [], [], []
    for inc, folder, path, trusted in resolve_includes(includes, search_dirs):
        if not trusted:
            if not allow_native:
                where = path or header_name(inc)
                raise NativeCodeError(f"foreign function {', '.join(names)}: its header {_shown(inc)} "
                                      f"({_shown(where)}) "
                                      "is not one of an installed Faust's own: compiling it runs its C++ code on "
                                      f"this machine; {ALLOW_HINT}")
            untrusted.append(path or inc)
        if path is None:  # a system header (<math.h>), or missing: the compiler says which
            shim_includes.append(inc)
            continue
        headers.append(path)
        # the very file found, by its path (a trusted one with links resolved: the folder given
        # to the compiler for its own <...> includes is then Faust's, not the one of a link to it)
        where = os.path.realpath(path) if trusted else path
        shim_includes.append(f'"{where}"')
        if os.path.dirname(where) not in inc_dirs:
            inc_dirs.append(os.path.dirname(where))
    h = hashlib.sha256()
    for p in headers:
        with open(p, "rb") as f:
            h.update(p.encode() + b"\0" + f.read() + b"\0")
    h.update(repr((tuple(funcs), tuple(shim_includes), real, tuple(inc_dirs))).encode())
    tag = h.hexdigest()[:12]
    text, symbols = shim_source(funcs, shim_includes, real, tag)
    from ..runtime import cache

    use_cache = cache.enabled(use_cache)
    with _PRIVATE_LOCK:
        lib = _PRIVATE.get(tag)
    if lib is None and use_cache:
        lib = _cached_library(tag)
    if lib is None:
        lib = _keep_library(tag, _compile(text, inc_dirs, names, notice=untrusted), use_cache)
    load_library(lib)
    return ForeignShim(lib, tuple(headers), symbols)


def _command(cxx: str, inc_dirs, src: str, out: str) -> list:
    return [*cxx.split(), "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-w",
            "-fno-diagnostics-show-caret", *(a for d in inc_dirs for a in ("-I", d)), src, "-o", out]


_DIAG = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?:(?P<col>\d+):)? "
                   r"(?P<kind>fatal error|error|warning|note): (?P<msg>.*)$")


def compiler_messages(stderr: str, src: str, limit: int = 6) -> list:
    """The compiler's errors, without quoting any file but the shim: an error in the shim
    (a missing header, an undeclared function) is given in full; one in a header only by
    its place (its text, and the compiler's excerpts of source lines, are not shown)."""
    out = []
    for line in stderr.splitlines():
        m = _DIAG.match(line)
        if m is None or m["kind"] in ("note", "warning"):
            continue
        if os.path.abspath(m["file"]) == os.path.abspath(src):
            out.append(f"shim.cpp:{m['line']}: {m['kind']}: {m['msg']}")
        else:
            out.append(f"{_shown(m['file'])}:{m['line']}{(':' + m['col']) if m['col'] else ''}: {m['kind']} "
                       "(in a header; its text is not quoted)")
        if len(out) >= limit:
            break
    return out


def _compile(text: str, inc_dirs, names, notice=()) -> bytes:
    """The shared library built from the shim's text (its bytes)."""
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
        cmd = _command(cxx, inc_dirs, src, out)
        if notice:
            warnings.warn(f"--allow-native: compiling and loading native code from {', '.join(map(_shown, notice))} "
                          f"(foreign function {who}): {shlex.join(cmd)}", DiffaustWarning, stacklevel=2)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except OSError as e:
            raise FaustTypeError(f"foreign function {who}: cannot run the C++ compiler {cxx}: {e}") from None
        if r.returncode != 0:
            msgs = compiler_messages(r.stderr or r.stdout or "", src) or [f"(exit status {r.returncode})"]
            raise FaustTypeError(f"foreign function {who}: the C++ compiler rejected the call through its "
                                 f"header (headers are searched in the -I folders, the program's folder and "
                                 f"Faust's architecture folders):\n" + "\n".join(msgs))
        with open(out, "rb") as f:
            return f.read()


@functools.lru_cache(maxsize=None)
def load_library(lib: str) -> None:
    """Load a shim into the process, its symbols visible to the JIT and to ctypes."""
    import llvmlite.binding as llvm

    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    llvm.load_library_permanently(lib)
