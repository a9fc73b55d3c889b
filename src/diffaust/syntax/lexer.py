"""Tokenizer of the Faust language (Faust 2.54's `faustlexer.l`, our own code).

One compiled master regex scans the text; whitespace, `//` and `/* */`
comments, and `<mdoc> ... </mdoc>` documentation blocks are skipped inside
the same match as the token that follows them, so the Python loop runs once
per token.

The scanner produces three parallel lists (`kinds`, `values`, `starts`):

* `kinds[i]` is the token kind: for symbols and keywords the text itself
  (`":"`, `"<:"`, `"with"`, `"sin"` ...), otherwise one of `ID`, `INT`,
  `REAL`, `STR`, `EOF`.
* `values[i]` is the payload: the name of an identifier, the `int` of an
  integer, `(float, text)` of a real, the contents of a string (quotes
  removed, escapes kept as written), the text of a symbol or keyword.
* `starts[i]` is the offset of the token's first character.

`LineMap` turns offsets into 1-based line/column.  `tokenize()` gives the
friendlier `Token` list (with line/col) used by tools and tests; the parser
uses the parallel lists directly.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import NamedTuple

from ..errors import FaustSyntaxError
from ..primitives.arity import PRIMITIVE_KEYWORDS
from .ast import Span

# Keywords of Faust 2.54 (compiler/parser/faustlexer.l): the language's own words, and the
# primitive names, which come from the primitive table (`round` is not one: the libraries
# define it; its entry says so).
LANGUAGE_KEYWORDS = frozenset(
    """
    with letrec where
    any
    ffunction fconstant fvariable
    button checkbox vslider hslider nentry vgroup hgroup tgroup
    vbargraph hbargraph soundfile
    seq par sum prod inputs outputs
    import component library environment waveform route
    declare case
    singleprecision doubleprecision quadprecision fixedpointprecision
    """.split()
)
KEYWORDS = LANGUAGE_KEYWORDS | PRIMITIVE_KEYWORDS

# Symbols, longest first where one is a prefix of another.
SYMBOLS = (
    "<:", ":>", "+>", "<<", ">>", "<=", ">=", "==", "!=", "=>",
    ":", ",", "~", "+", "-", "*", "/", "%", "@", "'", "&", "|", "^",
    "<", ">", "_", "!", ";", "=", "(", ")", "{", "}", "[", "]", "\\", ".",
)

_SKIP = r"(?:[ \t\r\n\f\v]+|//[^\n]*|/\*[\s\S]*?\*/|<mdoc>[\s\S]*?</mdoc>)*"
_EXP = r"(?:[eE][-+]?[0-9]+)"
_ID1 = r"_*[A-Za-z][A-Za-z0-9_]*"

# group numbers (lastindex) of the master regex
G_REAL, G_INT, G_ID, G_STR, G_OPENCOMMENT, G_OPENSTR, G_OPENDOC, G_SYM, G_BAD = range(1, 10)

_MASTER = re.compile(
    _SKIP
    + "(?:"
    + rf"([0-9]+\.[0-9]*{_EXP}?f?|\.[0-9]+{_EXP}?f?|[0-9]+{_EXP}f?|[0-9]+f)"  # 1 real
    + r"|([0-9]+)"  # 2 int
    + rf"|((?:::)?{_ID1}(?:::{_ID1})*)"  # 3 identifier / keyword
    + r'|"([^"\\]*(?:\\[\s\S][^"\\]*)*)"'  # 4 string
    + r"|(/\*)"  # 5 unterminated comment
    + r'|(")'  # 6 unterminated string
    + r"|(<mdoc>)"  # 7 unterminated documentation block
    + "|(" + "|".join(re.escape(s) for s in SYMBOLS) + ")"  # 8 symbol
    + r"|([\s\S])"  # 9 unknown character
    + r"|\Z)"
)


class LineMap:
    """Offsets to 1-based (line, column)."""

    __slots__ = ("starts", "file")

    def __init__(self, text: str, file: str):
        starts = [0]
        find = text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self.starts = starts
        self.file = file

    def linecol(self, pos: int) -> tuple[int, int]:
        ln = bisect_right(self.starts, pos)
        return ln, pos - self.starts[ln - 1] + 1

    def span(self, pos: int) -> Span:
        ln = bisect_right(self.starts, pos)
        return Span(self.file, ln, pos - self.starts[ln - 1] + 1)


_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_TO_SPACE = {c: " " for c in range(32)}


def _wrap32(v: int) -> int:
    """Two's complement 32-bit value of `v` (an integer literal as Faust reads it)."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _char_desc(c: str) -> str:
    if c.isprintable() and not c.isspace():
        return f"'{c}'"
    return f"{c!r} (U+{ord(c):04X})"


def scan(text: str, file: str = "<string>", lines: LineMap | None = None):
    """Tokenize `text` into parallel lists `(kinds, values, starts)`, ending with EOF.

    Raises FaustSyntaxError at an unknown character or an unterminated
    string / comment.
    """
    kinds: list = []
    values: list = []
    starts: list = []
    kadd = kinds.append
    vadd = values.append
    sadd = starts.append
    keywords = KEYWORDS
    for m in _MASTER.finditer(text):
        g = m.lastindex
        if g is None:  # end of text
            break
        s = m.group(g)
        if g == G_ID:
            kadd(s if s in keywords else "ID")
            vadd(s)
        elif g == G_SYM:
            kadd(s)
            vadd(s)
        elif g == G_INT:
            kadd("INT")
            # past Python's 4300-digit conversion limit: the last 32 digits give the same
            # value modulo 2**32 (10**32 is a multiple of 2**32), which is all Faust keeps
            vadd(int(s) if len(s) <= 4000 else _wrap32(int(s[-32:])))
        elif g == G_REAL:
            kadd("REAL")
            vadd((float(s[:-1] if s[-1] == "f" else s), s))
        elif g == G_STR:
            kadd("STR")
            # Faust reads a control character written raw in a string (newline, tab...) as a space
            vadd(s.translate(_CONTROL_TO_SPACE) if _CONTROL.search(s) else s)
        else:
            lm = lines or LineMap(text, file)
            pos = m.start(g)
            if g == G_OPENCOMMENT:
                raise FaustSyntaxError("unterminated comment (missing '*/')", lm.span(pos))
            if g == G_OPENSTR:
                raise FaustSyntaxError("unterminated string", lm.span(pos))
            if g == G_OPENDOC:
                raise FaustSyntaxError("unterminated <mdoc> block (missing '</mdoc>')", lm.span(pos))
            raise FaustSyntaxError(f"unknown character {_char_desc(s)}", lm.span(pos))
        sadd(m.start(g))
    kinds.append("EOF")
    values.append(None)
    starts.append(len(text))
    return kinds, values, starts


class Token(NamedTuple):
    kind: str  # symbol/keyword text, or ID INT REAL STR EOF
    value: object
    line: int
    col: int
    pos: int


def tokenize(text: str, file: str = "<string>") -> list[Token]:
    """The tokens of `text` with their line and column (the last one is EOF)."""
    lm = LineMap(text, file)
    kinds, values, starts = scan(text, file, lm)
    out = []
    for k, v, p in zip(kinds, values, starts):
        ln, col = lm.linecol(p)
        out.append(Token(k, v, ln, col, p))
    return out
