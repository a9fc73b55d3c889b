"""Write a learned program: the fitted values become the sliders' defaults.

``learned_source(text, values)`` rewrites the Faust source text: in each
``hslider``/``vslider``/``nentry`` call whose label (metadata ``[...]`` and any
group path stripped) names a learned parameter, the second argument, the default,
is replaced by the learned value.  The default must be written as a number literal
(as it is in almost every program); otherwise the program cannot be rewritten
faithfully and a UsageError says which slider and where.  Everything else in the
file — comments, layout, other sliders — is left byte for byte.

The result is compiled again (``check_learned``) and each learned slider's default is
compared with its value, so a file that would not give back the fit is never written.
"""

from __future__ import annotations

import re

from ..errors import UsageError

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fd]?"
# hslider("label", default, ...   (the label as a Faust string literal)
_SLIDER = re.compile(r'\b(hslider|vslider|nentry)(\s*\(\s*)"((?:[^"\\]|\\.)*)"(\s*,\s*)(' + _NUMBER + r'|[^,()]*)(\s*,)')


def _strip_label(label: str) -> str:
    """The widget label as the UI shows it: metadata [..] removed, last path part, trimmed."""
    bare = re.sub(r"\[[^\]]*\]", "", label)
    return bare.split("/")[-1].strip()


def _format(v: float) -> str:
    text = repr(float(v))
    return text if any(c in text for c in ".e") else text + ".0"


def learned_source(text: str, values: dict, filename: str = "<program>") -> str:
    """``text`` with the default of each slider named in ``values`` (label -> value) replaced."""
    found = {label: 0 for label in values}
    bad = []

    def line_col(pos):
        line = text.count("\n", 0, pos) + 1
        return line, pos - (text.rfind("\n", 0, pos) + 1) + 1

    def sub(m):
        label = _strip_label(m.group(3))
        if label not in values:
            return m.group(0)
        found[label] += 1
        if not re.fullmatch(_NUMBER, m.group(5).strip()):
            line, col = line_col(m.start(5))
            bad.append(f"{filename}:{line}:{col}: the default of slider '{label}' is '{m.group(5).strip()}', "
                       "not a number")
            return m.group(0)
        return m.group(1) + m.group(2) + '"' + m.group(3) + '"' + m.group(4) + _format(values[label]) + m.group(6)

    out = _SLIDER.sub(sub, text)
    if bad:
        raise UsageError("cannot write the learned program: " + "; ".join(bad))
    missing = [label for label, k in found.items() if k == 0]
    if missing:
        raise UsageError(f"cannot write the learned program: no slider labelled "
                         f"{', '.join(repr(m) for m in missing)} is written in {filename} itself "
                         "(it comes from another file or a computed label); the values are in --json")
    return out


def check_learned(text: str, values: dict, compile_fn) -> None:
    """Compile ``text`` with ``compile_fn(text)`` and check that each learned slider's default
    is its value (to float precision); UsageError otherwise."""
    dsp = compile_fn(text)
    for label, v in values.items():
        for p in dsp.params:
            if p.label == label and abs(p.init - v) > 1e-9 * max(1.0, abs(v)):
                raise UsageError(f"cannot write the learned program: slider '{label}' reads back as {p.init}, "
                                 f"not {v}")
