"""The code in README.md and the documentation site (docs/) can't rot.

Every block fenced as ```python runs as a program of its own (a fresh
interpreter, as a reader would run it) with MYSQL_DSN pointing at the test
server. Blocks fenced ```python no-run need what the suite doesn't have (a
web server's port, a metrics endpoint, a cluster); they, and the runnable
ones too, must pass ruff and ``mypy --strict``, each block as a module of
its own: no undefined names, no call that doesn't type-check.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```$", re.S | re.M)

# Imports are grouped for reading in the docs, not sorted by isort's rules.
_RUFF_IGNORE = "I"


class Block:
    def __init__(self, page: Path, line: int, code: str, runs: bool) -> None:
        self.where = f"{page.relative_to(ROOT)}:{line}"
        self.code = code
        self.runs = runs

    @property
    def module(self) -> str:
        return "block_" + re.sub(r"\W", "_", self.where)


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            runs = "no-run" not in match.group(1)
            found.append(Block(page, line, match.group(2), runs))
    return found


BLOCKS = _blocks()


def test_the_docs_have_runnable_examples() -> None:
    assert sum(block.runs for block in BLOCKS if block.where.startswith("README")) >= 2
    assert sum(block.runs for block in BLOCKS if block.where.startswith("docs")) >= 6


@pytest.mark.parametrize(
    "block", [pytest.param(block, id=block.where) for block in BLOCKS if block.runs]
)
def test_example_runs(block: Block, mysql_dsn: str) -> None:
    env = {**os.environ, "MYSQL_DSN": mysql_dsn}
    result = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", block.code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{block.where} failed:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert "Warning" not in result.stderr


@pytest.fixture(scope="module")
def block_files(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Block]:
    folder = tmp_path_factory.mktemp("doc_blocks")
    files = {}
    for block in BLOCKS:
        path = folder / f"{block.module}.py"
        path.write_text(block.code, encoding="utf-8")
        files[path] = block
    return files


def _blame(output: str, files: dict[Path, Block]) -> str:
    """The tools' output with each temporary file named by its page and line."""
    for path, block in files.items():
        output = output.replace(str(path), block.where + " (block)")
    return output


def test_every_example_passes_ruff(block_files: dict[Path, Block]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--quiet",
         "--config", str(ROOT / "pyproject.toml"), "--extend-ignore", _RUFF_IGNORE,
         *map(str, block_files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, _blame(result.stdout + result.stderr, block_files)


@pytest.mark.timeout(180)
def test_every_example_passes_mypy_strict(block_files: dict[Path, Block]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file",
         str(ROOT / "pyproject.toml"), *map(str, block_files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, _blame(result.stdout + result.stderr, block_files)
