"""`diffaust compile -lang json`: the parameter export against `faust -json`.

The `ui` tree (group kinds and labels, widget types, labels, addresses, short names,
init/min/max/step, metadata) and the I/O counts must be Faust's; diffaust adds its
derivative channel names under "diffaust".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffaust import reference
from diffaust.cli import main
from diffaust.conformance import ui_shape

from test_ui_paths import PROGRAMS

EXAMPLES = Path("/usr/share/doc/faust-common/examples")
CORPUS = ["reverb/zitaRev.dsp", "filtering/graphicEqLab.dsp", "misc/mixer.dsp", "physicalModeling/violin.dsp",
          "dynamic/gateCompressor.dsp", "analysis/vumeter.dsp", "SAM/chorus/chorus.dsp"]


def _faust_json(path: Path, tmp: Path) -> dict:
    return reference.reference_json(path)


def _ours(path: Path, capsys) -> dict:
    assert main(["compile", "-lang", "json", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def _compare(ours: dict, ref: dict):
    assert (ours["inputs"], ours["outputs"]) == (ref["inputs"], ref["outputs"])
    assert ui_shape(ours["ui"]) == ui_shape(ref["ui"])


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_json_ui_matches_faust(faust_ref, tmp_path, capsys, name):
    f = tmp_path / "prog.dsp"
    f.write_text(PROGRAMS[name])
    _compare(_ours(f, capsys), _faust_json(f, tmp_path))


@pytest.mark.reference
@pytest.mark.parametrize("rel", CORPUS)
def test_json_ui_matches_faust_examples(faust_ref, tmp_path, capsys, rel):
    path = EXAMPLES / rel
    if not path.is_file():
        pytest.skip("Debian's faust-common examples are not installed")
    _compare(_ours(path, capsys), _faust_json(path, tmp_path))


def test_json_names_derivative_channels(tmp_path, capsys):
    f = tmp_path / "g.dsp"
    f.write_text('process = _ * hslider("gain [diff:1]", 0.5, 0, 1, 0.01) + hslider("dc", 0, -1, 1, 0.01);')
    assert main(["compile", "-lang", "json", "-diff", str(f)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outputs"] == 2 and doc["diffaust"]["outputs"] == ["out0", "d out0/d gain"]
    assert doc["diffaust"]["diff_params"] == ["/g/gain"]
    assert [it["label"] for it in doc["ui"][0]["items"]] == ["dc", "gain"]
