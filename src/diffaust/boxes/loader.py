"""Finding and parsing Faust source files, and the record of what a compile read.

Search order for `import("x.lib")`, `library("x.lib")`, `component("x.dsp")`:
  1. options.import_dirs (`-I`)
  2. the importing file's folder
  3. $FAUST_LIB_PATH (colon-separated)
  4. an installed Faust's library folder (/usr/share/faust, /usr/local/share/faust,
     /opt/homebrew/share/faust, ...: the folders are checked, faust is never run)
  5. diffaust's bundled `src/diffaust/lib/`
With `bundled_only=True` the bundled library comes first and the installed Faust
and $FAUST_LIB_PATH are not searched (tests that must not depend on the machine).

Parsed files are cached in this process only, by path and content digest (an on-disk
cache of parsed files is not worth it: reading one back is slower than parsing).

Every search is recorded in a `FileDeps` when the caller passes one: the files found,
with the digest of the very bytes parsed, and every path tried before them that did
not exist.  The compile cache checks both before reusing a compiled program, so a
library added earlier in the search path (a `stdfaust.lib` next to the program) or
a changed library is never hidden by an old entry.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Optional

from ..errors import FaustEvalError

BUNDLED_LIB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
SYSTEM_LIB_DIRS = (
    "/usr/share/faust",
    "/usr/local/share/faust",
    "/opt/homebrew/share/faust",
    "/opt/local/share/faust",
)


def search_dirs(importing_dir: Optional[str], options) -> list[str]:
    dirs: list[str] = []
    import_dirs = list(getattr(options, "import_dirs", ()) or ())
    bundled_only = getattr(options, "bundled_only", False)
    if bundled_only:
        dirs.append(BUNDLED_LIB_DIR)
    dirs.extend(import_dirs)
    if importing_dir:
        dirs.append(importing_dir)
    if not bundled_only:
        env = os.environ.get("FAUST_LIB_PATH", "")
        dirs.extend(d for d in env.split(os.pathsep) if d)
        dirs.extend(SYSTEM_LIB_DIRS)
        dirs.append(BUNDLED_LIB_DIR)
    seen = set()
    out = []
    for d in dirs:
        key = os.path.abspath(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


class FileDeps:
    """The files one compile depended on: {absolute path: sha256 of its content} for the
    files read, and the set of absolute paths that were looked for and did not exist
    (a file appearing there later would change the result).  One per compile."""

    def __init__(self):
        self.found: dict = {}
        self.absent: set = set()

    def note_found(self, path: str, digest: str) -> None:
        self.found.setdefault(os.path.abspath(path), digest)

    def note_absent(self, path: str) -> None:
        self.absent.add(os.path.abspath(path))

    def note_file(self, path: str) -> None:
        """A file read by other means (a sound file, a header): its digest now, or absent."""
        path = os.path.abspath(path)
        if path in self.found or path in self.absent:
            return
        digest = file_digest(path) if os.path.isfile(path) else None
        if digest is None:
            self.absent.add(path)
        else:
            self.found[path] = digest

    def unchanged(self) -> bool:
        """True when every file still has the recorded content and every absent path is still absent."""
        return all(file_digest(p) == d for p, d in self.found.items()) and \
            not any(os.path.isfile(p) for p in self.absent)

    def to_json(self) -> dict:
        return {"found": sorted(self.found.items()), "absent": sorted(self.absent)}

    @classmethod
    def from_json(cls, data: dict) -> "FileDeps":
        deps = cls()
        deps.found = {p: d for p, d in data["found"]}
        deps.absent = set(data["absent"])
        return deps


def file_digest(path: str) -> Optional[str]:
    """sha256 of a regular file's content; None when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def resolve(name: str, importing_dir: Optional[str], options, span=None, what="library") -> str:
    """The absolute path of `name`, or FaustEvalError `cannot find library 'x' (searched: ...)`.
    Paths tried before the one found are noted absent in `options.deps` (a FileDeps), if any."""
    deps = getattr(options, "deps", None)
    if os.path.isabs(name):
        if os.path.isfile(name):
            return os.path.abspath(name)
        raise FaustEvalError(f"cannot find {what} '{name}'", span)
    dirs = search_dirs(importing_dir, options)
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return os.path.abspath(p)
        if deps is not None:
            deps.note_absent(p)
    raise FaustEvalError(
        f"cannot find {what} '{name}' (searched: {', '.join(dirs)})",
        span,
        hint="add its folder with -I, or set FAUST_LIB_PATH",
    )


# ----------------------------------------------------------------- parse cache

# (path, sha256 of the content) → AST; the AST is immutable, so sharing it is safe
_MEM: dict = {}
_MEM_LOCK = threading.Lock()


def _parse_text(text: str, path: str):
    from ..syntax.parser import parse

    return parse(text, path)


def parse_file_cached(path: str, deps: Optional[FileDeps] = None):
    """The AST (`ast.Program`) of the file at `path`, parsed once per content in this process.
    The digest of the bytes parsed is noted in `deps`."""
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FaustEvalError(f"cannot read '{path}': {e.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if deps is not None:
        deps.note_found(path, digest)
    with _MEM_LOCK:
        program = _MEM.get((path, digest))
    if program is None:
        program = _parse_text(data.decode("utf-8", errors="replace"), path)
        with _MEM_LOCK:
            if len(_MEM) > 512:
                _MEM.clear()
            _MEM[(path, digest)] = program
    return program


def clear_memory_cache() -> None:
    with _MEM_LOCK:
        _MEM.clear()
