"""On-disk cache of compiled DSPs.

Layout under the cache root ($DIFFAUST_CACHE_DIR, default ~/.cache/diffaust):
  dsp/<key>.json   metadata (I/O, parameters, layout, derivative names) and the
                   files the compile read, with their size and mtime
  dsp/<key>.o      the native object file

key = sha256(source, file name, options, diffaust version, llvmlite version,
host CPU); the options are everything that changes the compiled code: double, diff,
import folders, bundled_only, FAUST_LIB_PATH and the --nondiff names.  An entry is
used only if every file it read is unchanged.
Writes are atomic (temp file + rename), so concurrent processes are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Optional


def cache_root() -> str:
    return os.environ.get("DIFFAUST_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "diffaust")


def _dir() -> str:
    d = os.path.join(cache_root(), "dsp")
    os.makedirs(d, exist_ok=True)
    return d


_HOST = None
FORMAT = 2  # bump when the metadata layout changes


def host_id() -> str:
    global _HOST
    if _HOST is None:
        import llvmlite
        import llvmlite.binding as llvm

        from .. import __version__

        _HOST = (f"{FORMAT}|{__version__}|{_code_stamp()}|{llvmlite.__version__}|"
                 f"{llvm.get_host_cpu_name()}|{llvm.get_process_triple()}")
    return _HOST


def _code_stamp() -> str:
    """Size and mtime of the compiler's own source files: a changed compiler never reuses old code."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "examples"))
        for fn in sorted(filenames):
            if fn.endswith((".py", ".lib")):
                st = os.stat(os.path.join(dirpath, fn))
                h.update(f"{fn}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def make_key(source: str, filename: str, options: tuple) -> str:
    h = hashlib.sha256()
    for part in (source, os.path.abspath(filename) if not filename.startswith("<") else filename,
                 repr(options), host_id()):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:32]


def file_stamp(path: str):
    try:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path, -1, -1]


def load(key: str) -> Optional[tuple[dict, bytes]]:
    d = _dir()
    try:
        with open(os.path.join(d, key + ".json")) as f:
            meta = json.load(f)
        for path, size, mtime in meta.get("files", []):
            if file_stamp(path) != [path, size, mtime]:
                return None
        with open(os.path.join(d, key + ".o"), "rb") as f:
            obj = f.read()
        return meta, obj
    except (OSError, ValueError):
        return None


def store(key: str, meta: dict, obj: bytes) -> None:
    d = _dir()
    for suffix, data in ((".o", obj), (".json", json.dumps(meta).encode())):
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(d, key + suffix))
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
