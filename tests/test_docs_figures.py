"""The figures README and the docs quote agree with each other and with the
published benchmark run they come from (benchmarks/results/results.md)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# "2.9-3.2 µs for mysqlpool", "2.9-3.2 µs in the benchmark harness", ...
_OVERHEAD = re.compile(
    r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?) µs\s+(?:for\s+mysqlpool|in\s+the\s+(?:benchmark\s+)?harness)"
)
# | acquire+release, 1 task (10 idle) | aiomysql | raw-fifo | mysqlpool | ...
_RESULT_ROW = re.compile(
    r"^\| acquire\+release, 1 task \([^)]*\) \|[^|]*\|[^|]*\| ([\d.]+) µs \|", re.M
)


def test_one_overhead_figure_matching_the_published_run() -> None:
    quoted = {
        (page.relative_to(ROOT).as_posix(), match.group(1, 2))
        for page in PAGES
        for match in _OVERHEAD.finditer(page.read_text(encoding="utf-8"))
    }
    assert {where for where, _ in quoted} >= {"README.md", "docs/figures.md"}
    ranges = {figures for _, figures in quoted}
    assert len(ranges) == 1, f"the pages quote different overheads: {sorted(quoted)}"
    low, high = (float(x) for x in ranges.pop())
    results = (ROOT / "benchmarks" / "results" / "results.md").read_text(encoding="utf-8")
    measured = [float(x) for x in _RESULT_ROW.findall(results)]
    assert measured, "no single-task acquire+release row in results.md"
    # The quotes round to one decimal.
    assert low - 0.05 <= min(measured), (measured, low)
    assert max(measured) <= high + 0.05, (measured, high)


def test_the_cluster_session_s_duration_is_stated_once() -> None:
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    docstring = re.search(r"def cluster\(.*?\"\"\"(.*?)\"\"\"", noxfile, re.S)
    assert docstring is not None
    in_noxfile = re.findall(r"about (\d+ minutes?)", docstring.group(1))
    in_docs = [
        match
        for page in PAGES
        for match in re.findall(
            r"`nox -s cluster` \(about (\d+ minutes?)", page.read_text(encoding="utf-8")
        )
    ]
    assert in_noxfile
    assert in_docs
    assert set(in_docs) == set(in_noxfile), (in_docs, in_noxfile)
