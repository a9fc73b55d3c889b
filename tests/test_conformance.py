"""The conformance command on CI's representative subset of the Faust examples.

`diffaust conformance --subset ci` renders each program with diffaust and with
the faust binary (impulse and noise, 4096 samples, double and float) and every
one must match.  The full corpus runs with `diffaust conformance` (docs/CONFORMANCE.md).
"""

from __future__ import annotations

import pytest

from diffaust import conformance as C


def test_report_groups_failures_by_cause():
    rows = [
        {"path": "/x/a.dsp", "results": {"double": {"status": "pass"}}},
        {"path": "/x/b.dsp", "results": {"double": {"status": "compile-error",
                                                    "detail": "b.dsp:3:4: error: undefined symbol 'foo'"}}},
        {"path": "/x/c.dsp", "results": {"double": {"status": "compile-error",
                                                    "detail": "c.dsp:9:1: error: undefined symbol 'bar'"}}},
        {"path": "/x/d.dsp", "results": {"double": {"status": "mismatch", "detail": "noise: 3 samples differ"}}},
        {"path": "/x/e.dsp", "results": {"double": {"status": "reference-rejects", "detail": "faust failed"}}},
    ]
    report = C.Report(["double"], rows)
    causes = report.causes("double")
    assert list(causes.values())[0] == rows[1:3]          # the largest group first
    assert "compile error: error: undefined symbol '…'" in causes
    text = C.format_report(report)
    assert text.splitlines()[0].startswith("double: 1/4 programs match the reference (25.0%")
    assert "1 rejected by the reference compiler, not counted" in text


def test_subset_programs_exist():
    if not C.FAUST_EXAMPLES.is_dir():
        pytest.skip("Debian's faust-common examples are not installed")
    missing = [p for p in C.CI_SUBSET if not (C.FAUST_EXAMPLES / p).is_file()]
    assert not missing


@pytest.mark.reference
def test_ci_subset_matches_faust(faust_ref):
    if not C.FAUST_EXAMPLES.is_dir():
        pytest.skip("Debian's faust-common examples are not installed")
    files = C.collect([], "ci")
    report = C.run_suite(files, ["double", "float"], n=4096, jobs=2, timeout=300)
    text = C.format_report(report)
    for prec in ("double", "float"):
        assert len(report.passed(prec)) == len(report.counted(prec)) == len(files), text


def test_cli_runs_the_conformance_command(capsys):
    from diffaust.cli import main

    assert main(["conformance", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "diffaust conformance: error: unrecognized arguments: --bogus (see 'diffaust conformance --help')"
    assert main(["conformance", "--help"]) == 0
    assert "--subset" in capsys.readouterr().out


@pytest.mark.reference
def test_cli_conformance_on_one_program(faust_ref, tmp_path, capsys):
    from diffaust.cli import main

    f = tmp_path / "one.dsp"
    f.write_text("process = _ : + ~ *(0.5);")
    assert main(["conformance", "-q", "--precision", "double", str(f)]) == 0
    out = capsys.readouterr().out
    assert "double: 1/1 programs match the reference (100.0%" in out
