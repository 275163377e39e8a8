"""Driving a stage that runs in a real subprocess: start the CLI in its own process group, optionally held
at a given number of finished clips (AVS_TOOLS_TEST_HOLD / _AT, read by cli/bars.py, test-only), wait
for a condition, and send Ctrl-C to the group."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from avsbench_tools.catalog import Clip, Source
from avsbench_tools.workspace import init_workspace
from tests.helpers.media_factory import make_video


def clip_workspace(root: Path, recipe: str, n: int, seconds: int, w: int = 320, h: int = 240) -> Path:
    """A workspace with n clips (copies of one real video: sampling them is real work each time)."""
    video = make_video(root / "one.mp4", seconds=seconds, w=w, h=h)
    ws, _ = init_workspace(root / "ws", recipe)
    for i in range(n):
        cid = f"c{i:02d}"
        shutil.copy(video, ws.path("clips", f"{cid}.mp4"))
        ws.catalog.add_source_if_new(Source(source_id=f"local-{cid}", kind="local", path=str(root / f"{cid}.mp4")))
        ws.catalog.add_clip(Clip(clip_id=cid, source_id=f"local-{cid}", start=0, seconds=seconds,
                                 path=f"clips/{cid}.mp4"))
    ws.close()
    return root / "ws"


def start_cli(*args, hold: Path | None = None, hold_at: int = 0) -> subprocess.Popen:
    """The CLI in its own process group; with `hold`, the stage pauses in its progress report from `hold_at`
    clips done while that file exists (cli/bars.py, test-only), so the test never races the machine."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    if hold is not None:
        hold.touch()
        env.update(AVS_TOOLS_TEST_HOLD=str(hold), AVS_TOOLS_TEST_HOLD_AT=str(hold_at))
    return subprocess.Popen([sys.executable, "-m", "avsbench_tools", *map(str, args)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(cond, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"finished before the test could interrupt it: {proc.communicate()}"
        assert time.monotonic() < end, "no progress"
        time.sleep(0.03)


def ctrl_c(proc: subprocess.Popen) -> tuple[int, str, str, float]:
    """SIGINT to the process group; (rc, stdout, stderr, seconds to exit); asserts nothing is left in the group."""
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - t0
    left = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.info["pid"]) == proc.pid:
                left.append(p.info["pid"])
        except (ProcessLookupError, psutil.Error):
            pass
    assert not left, f"processes left in the group: {left}"
    return proc.returncode, out, err, took
