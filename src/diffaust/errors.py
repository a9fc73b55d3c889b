"""Errors a user can act on.

Every error raised for a bad program, a bad flag or a missing file is a
`DiffaustError`.  Its first line names the place (`file:line:column`) and says
what is wrong; `format()` adds the offending source line with a caret.  The CLI
prints `format()` and exits with status 1: no Python traceback for user errors.

Only Faust sources are quoted: a file whose name ends in .dsp or .lib, or in-memory text
("<string>").  An error located in any other file (`import("/etc/passwd")`) gives its
place only: neither the line nor the message, whose quoted tokens come from the file.
"""

from __future__ import annotations

import os
from typing import Optional


class DiffaustError(Exception):
    """A user-facing error, optionally located in a source file."""

    kind = "error"

    def __init__(self, message: str, span=None, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def location(self) -> str:
        s = self.span
        if s is None or not getattr(s, "line", 0):
            return ""
        return f"{s.file}:{s.line}:{s.col}"

    def __str__(self) -> str:
        loc = self.location()
        if loc and not quotable(self.span.file):
            return f"{loc}: {self.kind}: {NOT_QUOTED}"
        text = f"{loc}: {self.kind}: {self.message}" if loc else f"{self.kind}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def format(self, source: Optional[str] = None) -> str:
        """The one-line message, then the offending line and a caret when known."""
        head = str(self)
        line = source_line(self.span, source)
        if line is None:
            return head
        caret = " " * (self.span.col - 1) + "^"
        return f"{head}\n    {line}\n    {caret}"


class FaustSyntaxError(DiffaustError):
    kind = "syntax error"


class FaustEvalError(DiffaustError):
    """Undefined names, arity mismatches, bad arguments: errors of evaluation."""


class FaustTypeError(DiffaustError):
    """A signal that cannot be typed or scheduled (recursion without delay, unbounded delay...)."""


class NativeCodeError(FaustTypeError):
    """An ffunction's header would be compiled and loaded without the user's consent
    (``--allow-native`` / ``allow_native=True``)."""


class DerivativeError(DiffaustError):
    """A primitive has no derivative rule (never silently zero)."""


class DiffaustWarning(UserWarning):
    """Something the user should know that does not stop the compile (a missing soundfile...)."""


class UsageError(DiffaustError):
    """Bad flag, missing file, unknown parameter."""


QUOTED_SUFFIXES = (".dsp", ".lib")
NOT_QUOTED = ("in a file that is not a Faust source (its name does not end in .dsp or .lib), "
              "whose text is not quoted")


def quotable(file) -> bool:
    """Whether an error may quote text from `file`: a Faust source (.dsp, .lib) or in-memory
    text ("<string>")."""
    f = str(file or "")
    return (f.startswith("<") and f.endswith(">")) or f.lower().endswith(QUOTED_SUFFIXES)


def source_line(span, source: Optional[str] = None) -> Optional[str]:
    """The text of the line `span` points at, read from `source` or from the file (None
    for a file that is not a Faust source: see `quotable`)."""
    if span is None or not getattr(span, "line", 0) or not quotable(getattr(span, "file", "")):
        return None
    text = source
    if text is None:
        try:
            if not os.path.isfile(span.file):
                return None
            with open(span.file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            return None
    lines = text.splitlines()
    if 1 <= span.line <= len(lines):
        return lines[span.line - 1].expandtabs(1)
    return None
