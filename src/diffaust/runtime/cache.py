"""On-disk cache of compiled DSPs: optional, self-validating, never fatal.

Layout under the cache root ($DIFFAUST_CACHE_DIR, default ~/.cache/diffaust), every
folder created 0700:

  dsp/<key>.entry      one compiled program, one file, written atomically:
                         MAGIC  sha256(body) "\\n"  body
                       body = 8-byte little-endian length of the header, the header
                       (JSON: key, metadata, the files it depends on, the shared
                       libraries it links, the object's sha256), then the object file
  foreign/             the header-function shims (see codegen.foreign_c)

key = sha256 of everything given to the compiler: source, file name, working folder,
options (absolute -I folders, FAUST_LIB_PATH, ...), diffaust's own code, llvmlite,
host CPU.  Everything found on disk is checked at load: the entry's digest, its key,
the shape of its metadata, the digest of every file the compile read, the absence of
every file the library search tried before the one it found, the digest of each
shared library.  Any problem is a miss: the program is compiled again and the entry
rewritten.

The cache is never trusted beyond what it can check: a folder or an entry owned by
another user, or writable by others, is not used; shared libraries are loaded only
from the cache's own folder.  A cache that cannot be created or written warns once
and the compile goes on without it.  `use_cache=False`, `--no-cache` and
DIFFAUST_NO_CACHE=1 turn every cache off.  Entries beyond DIFFAUST_CACHE_MAX_MB
(default 512 MB) are pruned, least recently used first.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import threading
import warnings
from typing import Optional

MAGIC = b"diffaust-cache-entry 3\n"
MAX_ENTRY_BYTES = 1 << 30
DEFAULT_MAX_MB = 512


def disabled_by_env() -> bool:
    return os.environ.get("DIFFAUST_NO_CACHE", "").strip() not in ("", "0")


def enabled(use_cache: bool = True) -> bool:
    return bool(use_cache) and not disabled_by_env()


def cache_root() -> str:
    return os.environ.get("DIFFAUST_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "diffaust")


# ----------------------------------------------------------------- folders

_WARNED: set = set()
_WARN_LOCK = threading.Lock()


def _warn_once(what: str, why: str) -> None:
    """One warning per process and problem: the compile goes on without the cache."""
    from ..errors import DiffaustWarning

    with _WARN_LOCK:
        if what in _WARNED:
            return
        _WARNED.add(what)
    warnings.warn(f"compile cache off: {why} (set DIFFAUST_CACHE_DIR to a folder of yours, "
                  "or DIFFAUST_NO_CACHE=1)", DiffaustWarning, stacklevel=4)


def private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else."""
    getuid = getattr(os, "getuid", None)
    owner_ok = getuid is None or st.st_uid == getuid()
    return owner_ok and not (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def folder(sub: str) -> Optional[str]:
    """The cache folder `sub` (created 0700), or None, with one warning, when it cannot be
    created or is not private (owned by another user, writable by others)."""
    root = cache_root()
    path = os.path.join(root, sub)
    for d in (root, path):
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.stat(d)
        except OSError as e:
            _warn_once(d, f"cannot create {d}: {e.strerror or e}")
            return None
        if not stat.S_ISDIR(st.st_mode):
            _warn_once(d, f"{d} is not a folder")
            return None
        if not private(st):
            _warn_once(d, f"{d} is owned by another user or writable by others")
            return None
    return path


def write_atomic(path: str, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file in the same folder and a rename;
    False (and nothing at `path` changed) when it cannot be written."""
    d = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    except OSError as e:
        _warn_once("write:" + d, f"cannot write in {d}: {e.strerror or e}")
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError as e:
        _warn_once("write:" + d, f"cannot write in {d}: {e.strerror or e}")
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def read_private(path: str, limit: int = MAX_ENTRY_BYTES) -> Optional[bytes]:
    """The content of a regular file owned by this user and writable by no one else
    (not followed through a symbolic link); None otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not private(st) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- keys

_HOST = None
_HOST_LOCK = threading.Lock()


def host_id() -> str:
    global _HOST
    with _HOST_LOCK:
        if _HOST is None:
            import llvmlite
            import llvmlite.binding as llvm

            from .. import __version__

            _HOST = (f"{MAGIC!r}|{__version__}|{_code_stamp()}|{llvmlite.__version__}|"
                     f"{llvm.get_host_cpu_name()}|{llvm.get_process_triple()}")
        return _HOST


def _code_stamp() -> str:
    """Digest of the compiler's own source files: a changed compiler never reuses old code."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "examples"))
        for fn in sorted(filenames):
            if fn.endswith((".py", ".lib")):
                with open(os.path.join(dirpath, fn), "rb") as f:
                    h.update(os.path.relpath(os.path.join(dirpath, fn), root).encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()[:16]


def make_key(source: str, filename: str, options: tuple) -> str:
    """The entry's name: everything given to the compiler.  The working folder is part of
    it (a source string's imports, a sound file's relative name are looked for there)."""
    h = hashlib.sha256()
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "<no working folder>"
    for part in (source, os.path.abspath(filename) if not filename.startswith("<") else filename,
                 cwd, repr(options), host_id()):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()[:32]


# ----------------------------------------------------------------- entries


class Entry:
    """A checked cache entry: metadata, object file, shared libraries [(path, sha256)]."""

    def __init__(self, meta: dict, obj: bytes, libraries: list):
        self.meta = meta
        self.obj = obj
        self.libraries = libraries


def _entry_path(d: str, key: str) -> str:
    return os.path.join(d, key + ".entry")


def pack(key: str, meta: dict, obj: bytes, deps: dict, libraries: list) -> bytes:
    header = json.dumps({"key": key, "meta": meta, "deps": deps,
                         "libraries": [list(x) for x in libraries], "object": sha256(obj)},
                        separators=(",", ":")).encode()
    body = struct.pack("<Q", len(header)) + header + obj
    return MAGIC + sha256(body).encode() + b"\n" + body


def unpack(data: bytes, key: str) -> Optional[tuple]:
    """(meta, obj, deps, libraries) from an entry's bytes, or None when anything is wrong."""
    n = len(MAGIC)
    if data is None or len(data) < n + 65 + 8 or not data.startswith(MAGIC) or data[n + 64:n + 65] != b"\n":
        return None
    digest, body = data[n:n + 64], data[n + 65:]
    if sha256(body).encode() != digest:
        return None
    (hlen,) = struct.unpack("<Q", body[:8])
    if hlen > len(body) - 8:
        return None
    try:
        header = json.loads(body[8:8 + hlen])
    except ValueError:
        return None
    obj = body[8 + hlen:]
    if not isinstance(header, dict) or header.get("key") != key or header.get("object") != sha256(obj):
        return None
    meta, deps, libs = header.get("meta"), header.get("deps"), header.get("libraries")
    if not (valid_meta(meta) and _valid_deps(deps) and _valid_pairs(libs)) or not obj:
        return None
    return meta, obj, deps, libs


def _is_int(x, lo=0, hi=1 << 40) -> bool:
    return type(x) is int and lo <= x <= hi


def _is_num(x) -> bool:
    return type(x) in (int, float)


def valid_meta(meta) -> bool:
    """The metadata a Dsp is built from has the expected shape and consistent sizes."""
    try:
        if not isinstance(meta, dict):
            return False
        if not all(_is_int(meta.get(k)) for k in ("inputs", "outputs", "primal_outputs", "state_size")):
            return False
        if not isinstance(meta.get("sym"), str) or not meta["sym"].isidentifier():
            return False
        if meta["primal_outputs"] > meta["outputs"]:
            return False
        size = meta["state_size"]
        params = meta.get("params")
        if not isinstance(params, list):
            return False
        for p in params:
            if not isinstance(p, dict) or not _is_int(p.get("offset"), 0, max(size - 4, 0)):
                return False
            if not all(isinstance(p.get(k), str) for k in ("path", "label", "kind")):
                return False
            if not all(_is_num(p.get(k)) for k in ("init", "min", "max", "step")):
                return False
            if not isinstance(p.get("meta"), list) or not isinstance(p.get("diff"), bool):
                return False
        di = meta.get("diff_indices")
        if not isinstance(di, list) or not all(_is_int(i, 0, len(params) - 1) for i in di):
            return False
        names = meta.get("derivative_names")
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            return False
        if names and len(names) != meta["primal_outputs"] * len(di):
            return False
        if not isinstance(meta.get("warnings"), list) or not isinstance(meta.get("metadata"), list):
            return False
        return True
    except (TypeError, KeyError, AttributeError):
        return False


def _valid_pairs(x) -> bool:
    return isinstance(x, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
                                       for p in x)


def _valid_deps(deps) -> bool:
    return isinstance(deps, dict) and _valid_pairs(deps.get("found")) and \
        isinstance(deps.get("absent"), list) and all(isinstance(p, str) for p in deps["absent"])


def _deps_unchanged(deps: dict) -> bool:
    from ..boxes.loader import FileDeps

    return FileDeps.from_json(deps).unchanged()


def library_ok(path: str, digest: str) -> bool:
    """A shared library may be loaded: it lies in the cache's own foreign folder, is private,
    and has the content it was recorded with."""
    d = folder("foreign")
    if d is None or os.path.dirname(os.path.realpath(path)) != os.path.realpath(d):
        return False
    data = read_private(path)
    return data is not None and sha256(data) == digest


def load(key: str) -> Optional[Entry]:
    """The checked entry for `key`, or None (a miss) when absent or anything about it is wrong."""
    d = folder("dsp")
    if d is None:
        return None
    path = _entry_path(d, key)
    got = unpack(read_private(path), key)
    if got is None:
        return None
    meta, obj, deps, libs = got
    if not _deps_unchanged(deps) or not all(library_ok(p, s) for p, s in libs):
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return Entry(meta, obj, libs)


def store(key: str, meta: dict, obj: bytes, deps: dict, libraries=()) -> bool:
    """Write the entry for `key` atomically; False when the cache is off or unwritable."""
    d = folder("dsp")
    if d is None:
        return False
    path = _entry_path(d, key)
    ok = write_atomic(path, pack(key, meta, obj, deps, list(libraries)))
    if ok:
        prune(d, keep=path)
    return ok


def max_bytes() -> int:
    try:
        mb = float(os.environ.get("DIFFAUST_CACHE_MAX_MB", DEFAULT_MAX_MB))
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(max(mb, 0) * (1 << 20))


def prune(d: str, limit: Optional[int] = None, keep: Optional[str] = None) -> int:
    """Remove the least recently used entries of folder `d` (never `keep`) until it holds at
    most `limit` bytes (temporary files older than an hour go too); the number removed."""
    import time

    limit = max_bytes() if limit is None else limit
    entries, total, removed = [], 0, 0
    now = time.time()
    try:
        names = os.listdir(d)
    except OSError:
        return 0
    for name in names:
        p = os.path.join(d, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if name.startswith(".tmp-"):
            if now - st.st_mtime > 3600:
                try:
                    os.unlink(p)
                except OSError:
                    pass
            continue
        entries.append((st.st_mtime, st.st_size, p))
        total += st.st_size
    entries.sort()
    for _, size, p in entries:
        if total <= limit:
            break
        if p == keep:
            continue
        try:
            os.unlink(p)
            total -= size
            removed += 1
        except OSError:
            pass
    return removed
