"""Count a child process's instructions with callgrind: the figure the
instruction-level benchmarks (contended.py, dropin.py) compare, since it
doesn't move with the machine's load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def child_instructions(script: str, args: list[str], src: str) -> int:
    """Instructions ``python script *args`` executes, importing mysqlpool from
    ``src`` (a ``src`` folder, e.g. an older commit's worktree)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                script,
                *args,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total for {args}:\n{result.stderr[-2000:]}")
    return int(found.group(1))
