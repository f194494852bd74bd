"""benchmarks/run.py: a quick smoke run never replaces the published results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    added = str(BENCHMARKS) not in sys.path
    try:
        spec.loader.exec_module(module)  # it puts benchmarks/ on sys.path for its imports
    finally:
        if added and str(BENCHMARKS) in sys.path:
            sys.path.remove(str(BENCHMARKS))
    return module


def test_a_quick_run_writes_outside_the_published_results() -> None:
    runner = _load_runner()
    published = BENCHMARKS / "results"
    quick: Path = runner.default_out(True)
    assert runner.default_out(False) == published
    assert published not in (quick, *quick.parents)
    assert not quick.is_relative_to(published)
    # Somewhere git ignores, so a smoke run leaves the work tree clean.
    ignored = (BENCHMARKS.parent / ".gitignore").read_text().split()
    assert f"{quick.relative_to(BENCHMARKS.parent).parts[0]}/" in ignored
