"""README.md's examples run, so they can't rot.

Every block fenced as ```python runs as a program of its own (a fresh
interpreter, as a reader would run it) with MYSQL_DSN pointing at the test
server; blocks fenced ```python no-run (they need a framework, a port or a
service the suite doesn't have) are compiled, so they at least parse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```$", re.S | re.M)


def _blocks() -> list[tuple[str, str, bool]]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append((f"README.md:{line}", match.group(2), "no-run" not in match.group(1)))
    return found


BLOCKS = _blocks()


def test_readme_has_runnable_examples() -> None:
    assert sum(runs for _, _, runs in BLOCKS) >= 4


@pytest.mark.parametrize(
    ("where", "code"),
    [pytest.param(where, code, id=where) for where, code, runs in BLOCKS if runs],
)
def test_example_runs(where: str, code: str, mysql_dsn: str) -> None:
    env = {**os.environ, "MYSQL_DSN": mysql_dsn}
    result = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert "Warning" not in result.stderr


@pytest.mark.parametrize(
    ("where", "code"),
    [pytest.param(where, code, id=where) for where, code, runs in BLOCKS if not runs],
)
def test_example_compiles(where: str, code: str) -> None:
    compile(code, where, "exec")
