"""Malformed programs: each one gives a clear error, quickly, in bounded memory.

tests/malformed/programs.dsp holds the programs, one per section introduced by
``//=== <id>: <what is wrong>`` and optionally followed by ``//expect: <regex>``
lines that the error output must match.  Each program is compiled by
``python -m diffaust compile`` in a subprocess limited to 5 s and 2 GiB of
address space; it must exit with status 1 and an error message (a located one
where the regexes ask for ``file:line:column``), never a Python traceback.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "malformed" / "programs.dsp"
TIMEOUT_S = 5.0
MEMORY_LIMIT = 2 << 30  # bytes of address space (RLIMIT_AS)
SRC = str(Path(__file__).resolve().parent.parent / "src")


def split_programs(text: str):
    """[(id, what, expects, source)]: the sections of programs.dsp.  The header and
    expect lines become empty lines, so line numbers stay those of the section."""
    out = []
    for m in re.finditer(r"^//=== (\S+?): (.*?)$(.*?)(?=^//=== |\Z)", text, flags=re.M | re.S):
        pid, what, body = m.group(1), m.group(2), m.group(3)
        expects, lines = [], [""]
        for line in body.split("\n")[1:]:
            if line.startswith("//expect:"):
                expects.append(line[len("//expect:"):].strip())
                line = ""
            lines.append(line)
        out.append((pid, what, expects, "\n".join(lines).rstrip() + "\n"))
    return out


CASES = split_programs(PROGRAMS.read_text(encoding="utf-8"))


def _limit_memory():  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_one(case, folder: Path):
    pid, _what, _expects, source = case
    d = folder / pid
    d.mkdir()
    path = d / "prog.dsp"
    path.write_text(source, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "diffaust", "compile", str(path)], cwd=d, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT_S, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "elapsed": time.monotonic() - t0}
    return {"timeout": False, "elapsed": time.monotonic() - t0, "rc": r.returncode,
            "stdout": r.stdout, "stderr": r.stderr}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """All the programs compiled once, in parallel: {id: result}."""
    folder = tmp_path_factory.mktemp("malformed")
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        futures = {c[0]: pool.submit(_run_one, c, folder) for c in CASES}
        return {pid: f.result() for pid, f in futures.items()}


def test_enough_programs():
    assert len(CASES) >= 50
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids), "duplicate program ids"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_program(case, results):
    pid, what, expects, source = case
    r = results[pid]
    assert not r["timeout"], f"{pid} ({what}): no answer within {TIMEOUT_S} s"
    err = r["stderr"]
    assert "Traceback" not in err, f"{pid} ({what}): a Python traceback\n{err}"
    assert r["rc"] == 1, f"{pid} ({what}): exit status {r['rc']}, expected 1\nstderr: {err}"
    assert err.strip(), f"{pid} ({what}): nothing on stderr"
    assert re.search(r"\berror\b", err), f"{pid} ({what}): no error line\n{err}"
    assert "MemoryError" not in err and "RecursionError" not in err, err
    for rx in expects:
        assert re.search(rx, err), f"{pid} ({what}): stderr does not match {rx!r}\n{err}"
    assert r["elapsed"] < TIMEOUT_S, f"{pid}: took {r['elapsed']:.1f} s"
