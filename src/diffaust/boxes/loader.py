"""Finding and parsing Faust source files, with an in-process and an on-disk cache.

Search order for `import("x.lib")`, `library("x.lib")`, `component("x.dsp")`:
  1. options.import_dirs (`-I`)
  2. the importing file's folder
  3. $FAUST_LIB_PATH (colon-separated)
  4. an installed Faust's library folder (/usr/share/faust, /usr/local/share/faust,
     /opt/homebrew/share/faust, ...: the folders are checked, faust is never run)
  5. diffaust's bundled `src/diffaust/lib/`
With `bundled_only=True` the bundled library comes first and the installed Faust
and $FAUST_LIB_PATH are not searched (tests that must not depend on the machine).

Parsed files are cached in-process (by path, mtime and size) and on disk:
a pickle of the AST in `$DIFFAUST_CACHE_DIR/ast/` (default `~/.cache/diffaust/ast/`),
keyed by the sha256 of the file content, the diffaust version and the source of the
parser itself, so a stale entry can never be found.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from typing import Optional

from .. import __version__
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


def resolve(name: str, importing_dir: Optional[str], options, span=None, what="library") -> str:
    """The absolute path of `name`, or FaustEvalError `cannot find library 'x' (searched: ...)`."""
    if os.path.isabs(name):
        if os.path.isfile(name):
            return os.path.abspath(name)
        raise FaustEvalError(f"cannot find {what} '{name}'", span)
    dirs = search_dirs(importing_dir, options)
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return os.path.abspath(p)
    raise FaustEvalError(
        f"cannot find {what} '{name}' (searched: {', '.join(dirs)})",
        span,
        hint="add its folder with -I, or set FAUST_LIB_PATH",
    )


# ----------------------------------------------------------------- parse caches

_MEM: dict = {}
_PARSER_KEY: Optional[str] = None


def cache_root() -> str:
    root = os.environ.get("DIFFAUST_CACHE_DIR")
    if root:
        return root
    return os.path.join(os.path.expanduser("~"), ".cache", "diffaust")


def _parser_key() -> str:
    """A digest of the parser's own source: a new parser never reads an old AST."""
    global _PARSER_KEY
    if _PARSER_KEY is None:
        h = hashlib.sha256(__version__.encode())
        syntax_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "syntax")
        try:
            names = sorted(n for n in os.listdir(syntax_dir) if n.endswith(".py"))
        except OSError:
            names = []
        for n in names:
            h.update(n.encode())
            try:
                with open(os.path.join(syntax_dir, n), "rb") as f:
                    h.update(f.read())
            except OSError:
                pass
        _PARSER_KEY = h.hexdigest()
    return _PARSER_KEY


def _parse_text(text: str, path: str):
    from ..syntax.parser import parse

    return parse(text, path)


def parse_file_cached(path: str, use_disk_cache: bool = True):
    """The AST (`ast.Program`) of the file at `path`, from a cache when it is fresh."""
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise FaustEvalError(f"cannot read '{path}': {e.strerror}") from None
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _MEM.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    program = None
    cache_file = None
    if use_disk_cache and not os.environ.get("DIFFAUST_NO_CACHE"):
        digest = hashlib.sha256(data + b"\0" + path.encode() + b"\0" + _parser_key().encode()).hexdigest()
        cache_file = os.path.join(cache_root(), "ast", digest[:2], digest + ".pickle")
        try:
            with open(cache_file, "rb") as f:
                program = pickle.load(f)
        except Exception:
            program = None
    if program is None:
        program = _parse_text(text, path)
        if cache_file is not None:
            _store(cache_file, program)
    _MEM[path] = (stamp, program)
    return program


def _store(cache_file: str, program) -> None:
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cache_file), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(program, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, cache_file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except Exception:
        pass  # a cache that cannot be written is not an error


def clear_memory_cache() -> None:
    _MEM.clear()
