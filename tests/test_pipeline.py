"""The pipeline as named passes, and `diffaust compile --dump` printing each stage."""

import subprocess
import sys

import pytest

from diffaust.runtime.pipeline import PASSES, CompileOptions, run_pipeline

ONE_POLE = 'a = hslider("a [diff:1]", 0.3, -0.99, 0.99, 0.001);\nprocess = + ~ *(a);\n'


def test_passes_are_named_in_order():
    assert [p.__name__ for p in PASSES] == ["parse_source", "evaluate_ast", "propagate_box", "share_recursions", "normalize_signals", "vary_params", "differentiate",
                                            "infer_types", "link_foreign", "schedule_program"]


def test_tangent_recursion_is_a_recursion():
    st = run_pipeline(ONE_POLE, "<string>", CompileOptions(diff=True), until="differentiate")
    d = st.tangents[0][0]
    assert d.op == "proj" and d.args[0].op == "rec"


@pytest.mark.parametrize("stage, expect", [("ast", "process = + ~ *(a);"), ("box", "~"),
                                           ("sig", "d out0/d a"), ("sched", "for (int i0")])
def test_dump_stages(tmp_path, stage, expect):
    f = tmp_path / "one_pole.dsp"
    f.write_text(ONE_POLE)
    r = subprocess.run([sys.executable, "-m", "diffaust.cli", "compile", str(f), "-diff", "--dump", stage],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout
