"""The examples of docs/testing.md run as written: put in one test file and run by pytest, with
pytest-trio's marker (no configuration) and with ``trio_mode`` (the markers then change nothing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
BLOCK = re.compile(r"<!-- docs-test: (module|sync|async) -->\n```python\n(.*?)```", re.S)


def doc_test_file() -> tuple[str, int]:
    """The page's marked examples, in order, as one test module; and how many tests it defines."""
    blocks = BLOCK.findall(DOC.read_text())
    source = "\n\n".join(code for _, code in blocks)
    return source, len(re.findall(r"^(?:async )?def test_", source, re.M))


def test_every_python_example_is_marked_for_the_test() -> None:
    text = DOC.read_text()
    assert text.count("```python") == len(BLOCK.findall(text))
    _, tests = doc_test_file()
    assert tests == 5


@pytest.mark.parametrize("mode", ["marker", "trio_mode"])
def test_the_testing_docs_run_as_written(tmp_path: Path, mode: str) -> None:
    source, tests = doc_test_file()
    (tmp_path / "test_orders.py").write_text(source)
    ini = "[pytest]\n" + ("trio_mode = true\n" if mode == "trio_mode" else "")
    (tmp_path / "pytest.ini").write_text(ini)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_orders.py"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{tests} passed" in done.stdout
