"""The real CLI in a subprocess, and the repository's paths the tests read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL_METADATA = REPO / "tests" / "data" / "real-metadata"  # copied from ../shared (see its README)


def run_cli(*args: str, check: bool = False, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run the real `avs-tools` entry point in a subprocess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.update(kw.pop("env", {}))
    proc = subprocess.run([sys.executable, "-m", "avsbench_tools", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"avs-tools {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
