"""The parameter export: a JSON description of a program in the shape of `faust -json`.

    {"name", "filename", "version", "compile_options", "inputs", "outputs",
     "meta": [{key: value}, ...],
     "ui": [{"type": "vgroup", "label": ..., "items": [...]},
            {"type": "hslider", "label", "shortname", "address", "meta": [...],
             "init", "min", "max", "step"}, ...],
     "diffaust": {"outputs": [channel names], "diff_params": [addresses]}}

Groups and widgets are nested and ordered as the C++ export's buildUserInterface
(codegen/cpp.py) opens them; addresses are diffaust's parameter paths (Faust's, see
signals/propagate.py); short names are the shortest unique path suffixes joined by `_`
(as Faust's PathBuilder computes them, `0x00` folders left out).
"""

from __future__ import annotations

import json

from .cpp import UiGroup, faust_string_value, stages_meta, ui_layout
from ..signals.propagate import EMPTY_LABEL

_GROUP_TYPE = {"h": "hgroup", "v": "vgroup", "t": "tgroup"}


def _str2id(path: str) -> str:
    """Each run of characters other than letters, digits, '_' and '/' becomes one '_' (none
    at the end), as Faust's short names are spelled."""
    out, pending = [], False
    for ch in path:
        if (ch.isascii() and (ch.isalnum() or ch == "_")) or ch == "/":
            if pending:
                out.append("_")
                pending = False
            out.append(ch)
        else:
            pending = True
    return "".join(out)


def short_names(paths: list, keep_last=frozenset()) -> dict:
    """{path: short name}: for each path the fewest trailing components that no other
    path shares (0x00 folders and labels left out, except the last component of the
    paths in keep_last: Faust names an unlabelled bargraph by an address, not 0x00),
    joined with '_'."""
    comps = {}
    for p in paths:
        parts = p.split("/")
        kept = [x for x in parts[:-1] if x != EMPTY_LABEL]
        if parts[-1] != EMPTY_LABEL or p in keep_last:
            kept.append(parts[-1])
        c = [x for x in _str2id("/".join(kept)).split("/") if x]
        comps[p] = c or [EMPTY_LABEL]
    level = {p: 1 for p in paths}
    while True:
        seen: dict = {}
        clash: set = set()
        for p in paths:
            key = tuple(comps[p][-level[p]:])
            if key in seen and seen[key] != p:
                clash.update((p, seen[key]))
            else:
                seen[key] = p
        grow = {p for p in clash if level[p] < len(comps[p])}
        if not grow:
            break
        for p in grow:
            level[p] += 1
    return {p: "_".join(comps[p][-level[p]:]) for p in paths}


def _widget_item(c, short: str) -> dict:
    item = {"type": c.kind, "label": c.label, "shortname": short, "address": c.path}
    if c.meta:
        item["meta"] = [{k: v} for k, v in c.meta]
    if c.kind in ("hbargraph", "vbargraph"):
        item.update(min=c.min, max=c.max)
    elif c.kind not in ("button", "checkbox"):
        item.update(init=c.init, min=c.min, max=c.max, step=c.step)
    return item


def ui_tree(prog, name: str) -> list:
    """The nested `ui` list, the C++ export's UI tree (cpp.ui_layout)."""
    widgets = list(prog.params) + list(prog.bargraphs)
    shorts = short_names([c.path for _, c in widgets],
                         {c.path for _, c in prog.bargraphs if c.label == EMPTY_LABEL})

    def item(it) -> dict:
        if isinstance(it, UiGroup):
            d = {"type": _GROUP_TYPE.get(it.kind, "vgroup"), "label": it.name}
            if it.meta:
                d["meta"] = [{k: v} for k, v in it.meta]
            d["items"] = [item(x) for x in it.items]
            return d
        return _widget_item(it[1], shorts[it[1].path])

    return [item(r) for r in ui_layout(prog, name)]


def emit_json(st, options) -> str:
    """The JSON text for a pipeline result (after schedule_program)."""
    meta = stages_meta(st, options)
    prog = st.program
    doc = {
        "name": meta["name"],
        "filename": meta["filename"],
        "version": meta["version"],
        "compile_options": meta["compile_options"].replace("-lang cpp", "-lang json"),
        "inputs": prog.inputs,
        "outputs": prog.outputs,
        # the values Faust's JSON means (its text copies the escapes as written): cpp.faust_string_value
        "meta": [{k: faust_string_value(v)} for k, v in meta["metadata"]],
        "ui": ui_tree(prog, meta["name"]),
        "diffaust": {"outputs": meta["outputs"],
                     "diff_params": [v.attr.path for v in st.diff_params]},
    }
    return json.dumps(doc, indent=1, ensure_ascii=False)
