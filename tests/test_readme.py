"""The README's Python tour runs as written (from the repository root's point of view)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_block_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python block"
    examples = ROOT / "src" / "diffaust" / "examples"
    monkeypatch.chdir(tmp_path)  # the block writes loss.csv and fit.json into the current folder
    for code in blocks:
        code = code.replace('"examples/', f'"{examples}/')
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "fit.json").exists() and (tmp_path / "loss.csv").exists()
