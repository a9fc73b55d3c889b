"""A compile's result does not depend on what was compiled before (issue 11, point 2).

Each program is compiled in two fresh processes, in opposite orders, without the disk
cache; the optimized LLVM IR must be identical.  The default run covers the project's
test programs and the bundled examples (with derivatives where they have [diff:1], and then
reverse mode's programs too); the slow one also Faust's example corpus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path("/usr/share/doc/faust-common/examples")

CHILD = r"""
import hashlib, json, os, sys
import diffaust
out = {}
for path in json.loads(sys.argv[1]):
    text = open(path, encoding="utf-8", errors="replace").read()
    try:
        d = diffaust.compile(path, diff="[diff:1]" in text, use_cache=False,
                             import_dirs=(os.path.dirname(path),))
        out[path] = hashlib.sha256(d.listing("llvm").encode()).hexdigest()
        if d.diff:  # reverse mode's tape and adjoint programs too
            out[path] += ":" + hashlib.sha256(d.reverse().listing("llvm").encode()).hexdigest()
    except Exception as e:  # a program diffaust refuses: refused the same way both times
        out[path] = "error: " + type(e).__name__ + ": " + str(e).splitlines()[0][:200]
json.dump(out, sys.stdout)
"""


def _digests(paths: list) -> dict:
    env = dict(os.environ, DIFFAUST_NO_CACHE="1")
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps([str(p) for p in paths])],
                       capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _check(paths: list) -> None:
    forward = _digests(paths)
    backward = _digests(paths[::-1])
    differ = [p for p in forward if forward[p] != backward[p]]
    assert not differ, f"{len(differ)} of {len(paths)} programs compile differently by order: {differ[:5]}"


def test_same_ir_whatever_was_compiled_before():
    paths = sorted((ROOT / "tests" / "programs").glob("*.dsp"))
    paths += sorted((ROOT / "src" / "diffaust" / "examples").glob("*/diff.dsp"))
    assert len(paths) > 20
    _check(paths)


def test_permuted_sums_compile_alike(tmp_path):
    terms = ["sin*0.3", "cos*0.7", "tan*0.11", "exp*0.2"]
    orders = [terms, terms[::-1], terms[1:] + terms[:1]]
    paths = []
    for k, order in enumerate(orders):
        p = tmp_path / f"sum{k}.dsp"
        p.write_text("process = _ <: " + " + ".join(order) + ";\n")
        paths.append(p)
    _check(paths)


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="needs Faust's example corpus (Debian package faust-common)")
def test_faust_example_corpus_compiles_alike_in_any_order():
    _check(sorted(EXAMPLES.rglob("*.dsp")))
