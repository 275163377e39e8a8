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


def cli_here(*args, check: bool = False, env: dict | None = None, cwd: Path | str | None = None
             ) -> subprocess.CompletedProcess:
    """The same `avs-tools` command, run in this process through `avsbench_tools.cli.run` (what the entry point
    runs after setting its SIGTERM handler): the same exit code, stdout and stderr, one line per error, without
    a Python start and the imports each CLI process pays (numpy, PyAV, torch: seconds per command on a loaded
    2-core machine). For tests of what a command answers and writes; what concerns the process itself
    (Ctrl-C, kill, umask, the entry point, imports) runs it with `run_cli`. `env` is set for the call only,
    `cwd` is the working folder during the call (both restored after)."""
    import contextlib
    import io

    from avsbench_tools.cli import run

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update({"COLUMNS": "200", **(env or {})})
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = run([str(a) for a in args])
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    proc = subprocess.CompletedProcess(["avs-tools", *map(str, args)], rc, out.getvalue(), err.getvalue())
    if check and rc != 0:
        raise AssertionError(f"avs-tools {' '.join(map(str, args))} failed ({rc}):\n{proc.stderr}")
    return proc
