"""What a package index shows: one version everywhere, the tested Pythons in
the classifiers, a changelog entry for the version, and a long description
whose links work away from the repository."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import mysqlpool

ROOT = Path(__file__).resolve().parent.parent


def _noxfile_pythons() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "PYTHONS" for t in targets):
                assert node.value is not None
                value = ast.literal_eval(node.value)
                assert isinstance(value, tuple)
                return tuple(str(v) for v in value)
    raise AssertionError("noxfile.py defines no PYTHONS")


def test_the_version_has_one_source() -> None:
    assert mysqlpool.__version__ == importlib.metadata.version("mysqlpool")
    result = subprocess.run(
        [sys.executable, "-m", "mysqlpool", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"mysqlpool {mysqlpool.__version__}"


def test_the_changelog_s_newest_entry_is_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions, "CHANGELOG.md has no '## [version]' heading"
    newest = next(v for v in versions if v != "Unreleased")
    assert newest == mysqlpool.__version__
    assert f"[{newest}]: " in text  # the link reference Keep a Changelog ends with


def test_classifiers_name_exactly_the_pythons_nox_tests() -> None:
    metadata = importlib.metadata.metadata("mysqlpool")
    classifiers = metadata.get_all("Classifier") or []
    versions = {
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    pythons = _noxfile_pythons()
    assert versions == set(pythons)
    assert metadata["Requires-Python"] == f">={pythons[0]}"
    assert metadata["License-Expression"] == "MIT"
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    urls = {u.split(",", 1)[0].lower() for u in metadata.get_all("Project-URL") or []}
    assert {"source", "documentation", "changelog", "issues"} <= urls


def test_the_long_description_has_no_relative_links() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    inline = re.findall(r"\]\(([^)\s]+)\)", readme)
    references = re.findall(r"^\[[^\]]+\]:\s*(\S+)", readme, re.M)
    targets = inline + references
    assert targets, "README.md has no links at all?"
    relative = [t for t in targets if not re.match(r"https?://", t)]
    assert relative == [], "relative links break on a package index"
