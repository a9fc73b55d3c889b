"""Parameter paths against Faust's (MapUI paths of the reference build).

Faust names a widget by its folders: the program's name, its groups, the folders its label
names ("h:group/label").  When the whole UI is one top-level folder, that folder is the
root (Faust's prepareUserInterfaceTree drops the program-name level).  Labels follow
Faust's label2path ("h:group/", "/", "../" prefixes; "a/b" alone is one label) and
extractMetadata (nested brackets, keys with spaces); empty labels are "0x00".
"""

from __future__ import annotations

import pytest

import diffaust
from diffaust.signals.propagate import mapui_path as _mangle
from diffaust.runtime.pipeline import CompileOptions, run_pipeline

PROGRAMS = {
    "flat": 'process = hslider("g", 0.5, 0, 1, 0.1) * _, hslider("h", 0.5, 0, 1, 0.1) * _;',
    "one_group": 'process = vgroup("foo", hslider("g", 0.5, 0, 1, 0.1) * _);',
    "label_path": 'process = hslider("h:foo/g", 0.5, 0, 1, 0.1) * _;',
    "same_group_twice": 'process = hgroup("a", hslider("g", 0.5, 0, 1, 0.1) * _), '
                        'hgroup("a", hslider("h", 0.5, 0, 1, 0.1) * _);',
    "nested": 'process = vgroup("foo", hslider("g", 0.5, 0, 1, 0.1) * _, '
              'vgroup("bar", hslider("g", 0.5, 0, 1, 0.1) * _));',
    "two_groups": 'process = hgroup("a", hslider("g", 0.5, 0, 1, 0.1) * _), '
                  'hgroup("b", hslider("g", 0.5, 0, 1, 0.1) * _);',
    "group_and_widget": 'process = hgroup("a", hslider("g", 0.5, 0, 1, 0.1) * _), '
                        'hslider("h", 0.5, 0, 1, 0.1) * _;',
    "bargraph": 'process = vgroup("m", _ <: attach(_, abs : hbargraph("lvl", 0, 1)));',
    "label_syntax": 'process = hslider("a/b [unit:x]",0,0,1,0.1)*_, hslider("h:g1/c/d",0,0,1,0.1)*_, '
                    'hgroup("G", hslider("../e",0,0,1,0.1)*_, hslider("/f",0,0,1,0.1)*_), '
                    'hslider("x\n   y [tooltip: p\n q]",0,0,1,0.1)*_;',
    "metadata_nesting": 'process = hslider("Other\n   [tooltip: a [b] c]", 0.1,0,2,0.01)*_, '
                        'hslider("[3]", 0.1,0,2,0.01)*_, hslider("p [tooltip q]", 0.1,0,2,0.01)*_;',
    "empty_groups": 'process = vgroup("[1]", hslider("a",0,0,1,0.1)*_) : vgroup("[2]", hslider("b",0,0,1,0.1)*_);',
    "empty_lone_group": 'process = hgroup("", vgroup("[0] X", hslider("a",0,0,1,0.1)*_));',
    "declared_name": 'declare name "Zed"; declare name "Alpha";\n'
                     'process = hslider("g",0,0,1,0.1)*_, hslider("h",0,0,1,0.1)*_;',
    "environment_name": 'e = environment { declare name "Env"; x = 1; };\n'
                        'process = hslider("g",0,0,1,0.1)*_, hslider("h",0,0,1,0.1)*_;',
    "stdlib": 'import("stdfaust.lib"); process = hgroup("fx", fi.lowpass(2, hslider("fc", 1000, 50, 5000, 1)));',
}


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_paths_match_faust(faust_ref, tmp_path, name):
    f = tmp_path / "prog.dsp"  # the reference builds a copy named prog.dsp
    f.write_text(PROGRAMS[name])
    ref = sorted(p["path"] for p in faust_ref.reference_info(f)["params"])
    dsp = diffaust.compile(str(f), use_cache=False)
    st = run_pipeline(f.read_text(), str(f), CompileOptions())
    got = sorted([p.path for p in dsp.params] + [c.path for _, c in st.program.bargraphs])
    assert [_mangle(p) for p in got] == ref  # MapUI spells ' ( ) [ ] …' as '_'


def test_lone_folder_is_the_root(tmp_path):
    f = tmp_path / "prog.dsp"
    f.write_text(PROGRAMS["nested"])
    assert sorted(p.path for p in diffaust.compile(str(f), use_cache=False).params) == ["/foo/bar/g", "/foo/g"]
    f.write_text(PROGRAMS["group_and_widget"])
    assert sorted(p.path for p in diffaust.compile(str(f), use_cache=False).params) == ["/prog/a/g", "/prog/h"]


def test_params_by_faust_mapui_path(tmp_path):
    f = tmp_path / "prog.dsp"
    f.write_text('process = hgroup("Input (dry)", hslider("In Delay", 60, 20, 100, 1) * _);')
    dsp = diffaust.compile(str(f), use_cache=False)
    assert dsp.params[0].path == "/Input (dry)/In Delay"
    for name in ("/Input__dry_/In_Delay", "Input__dry_/In_Delay", "In_Delay", "In Delay"):
        assert dsp.param_index(name) == 0


def test_cli_param_by_mapui_path(tmp_path):
    from diffaust.cli import main

    f = tmp_path / "prog.dsp"
    f.write_text('process = hgroup("Input (dry)", hslider("In Delay", 60, 20, 100, 1) * _);')
    out = tmp_path / "y.npy"
    assert main(["render", str(f), "-n", "4", "--input", "impulse", "--param", "/Input__dry_/In_Delay=30",
                 "-o", str(out)]) == 0
    import numpy as np

    assert np.load(out)[0, 0] == 30.0
