"""Atomic output files: a reader never sees a half-written CSV, JSON, WAV, .npy or .dsp.

    with atomic_output("fit.json", "w") as f:
        f.write(text)

writes a temporary file in the destination's folder (same file system), flushes and
fsyncs it, then ``os.replace``s it onto the destination.  When the body raises, the
temporary file is removed and the destination is left as it was (absent or old).
OSError becomes :class:`diffaust.errors.UsageError` ``cannot write PATH: reason``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from .errors import UsageError


@contextlib.contextmanager
def atomic_output(path, mode: str = "wb", **open_kw):
    """Yield a file object (``mode`` "w"/"wb", plus ``open_kw`` such as newline/encoding)
    whose content replaces ``path`` only when the block ends without an exception."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        if "b" not in mode:
            open_kw.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:  # mkstemp makes 0600 files; an output gets the usual permissions (umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path, "w") as f:
        f.write(text)
