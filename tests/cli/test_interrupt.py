"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and the workspace lock, on real
processes: a prompt stop, no process left, every finished clip recorded, nothing half-written, and the
re-run skips the finished clips."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.errors import Interrupted
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import deferred_interrupt, open_workspace
from tests.helpers import run_cli
from tests.helpers.interrupt import clip_workspace, ctrl_c, start_cli, wait_for

STOP_LIMIT_S = 5.0  # the target is ~2 s; two loaded cores get some slack
MSG = re.compile(r"interrupted: (\d+) done, (\d+) left; run the same command to resume")


@pytest.fixture(scope="module")
def ws24(tmp_path_factory) -> Path:
    # held (start_cli): the size is no race; the pool holds at most 2 clips per job (sample/stage.py
    # IN_FLIGHT_PER_JOB), so a run held on its main thread cannot finish the 24 clips behind the test's back
    return clip_workspace(tmp_path_factory.mktemp("i24"), "ref-avs", 24, 10, w=160, h=120)


@pytest.fixture(scope="module")
def ws_sampled(tmp_path_factory) -> Path:
    d = clip_workspace(tmp_path_factory.mktemp("ip"), "avsbench-s4", 6, 5, w=160, h=120)  # held: size is no race
    run_cli("sample", d, "-q", check=True)
    return d


def _count(ws: Path, stage: str) -> int:
    db = sqlite3.connect(ws / "catalog.sqlite", timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM stage_status WHERE stage=? AND status='done'", (stage,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _numbers(err: str) -> tuple[int, int]:
    m = MSG.search(err)
    assert m, err
    assert "Traceback" not in err
    return int(m.group(1)), int(m.group(2))


def test_ctrl_c_during_sample_records_every_finished_clip_and_resumes(tmp_path, ws24):
    ws = tmp_path / "ws"
    shutil.copytree(ws24, ws)
    hold = tmp_path / "hold"
    proc = start_cli("sample", ws, "-q", "-j", "2", hold=hold, hold_at=3)
    wait_for(lambda: (tmp_path / "hold.held").exists(), proc)  # held with 3 clips done
    rc, out, err, took = ctrl_c(proc)
    assert rc == 130 and took < STOP_LIMIT_S, (rc, took, err)
    done, left = _numbers(err)
    assert done + left == 24 and done >= 3 and left >= 1, err
    assert done <= 3 + 2 * 2, err  # held after 3 clips: only the clips in flight then (2 per job) could finish
    # what is on disk is exactly what is recorded: no clip written but not recorded, nothing half-written
    recorded = {r[0] for r in sqlite3.connect(ws / "catalog.sqlite").execute(
        "SELECT clip_id FROM stage_status WHERE stage='sample' AND status='done'")}
    assert len(recorded) == done
    on_disk = {p.name.split(".")[0] for p in (ws / "audio").iterdir()}
    frames = {d.name for d in (ws / "frames").iterdir() if any(d.iterdir())}
    assert on_disk == recorded and frames == recorded
    for cid in recorded:
        assert len(list((ws / "frames" / cid).glob("*.jpg"))) == 10
    assert not list(ws.rglob(".tmp-*"))
    assert not (ws / ".lock").exists() or _lock_free(ws)
    # the same command resumes: the finished clips are skipped
    r = run_cli("sample", ws, "-q", check=True)
    assert f"{left} sampled, {done} already done, 0 failed (of 24 clips)" in r.stdout


def _lock_free(ws: Path) -> bool:
    import fcntl

    fd = os.open(ws / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_ctrl_c_during_preannotate_records_finished_clips_and_resumes(tmp_path, ws_sampled):
    ws = tmp_path / "ws"
    shutil.copytree(ws_sampled, ws)
    hold = tmp_path / "hold"
    proc = start_cli("preannotate", ws, "-q", "--backend", "motion", hold=hold, hold_at=2)
    wait_for(lambda: (tmp_path / "hold.held").exists(), proc)  # held with 2 clips done
    rc, out, err, took = ctrl_c(proc)
    assert rc == 130 and took < STOP_LIMIT_S, (rc, took, err)
    done, left = _numbers(err)
    assert done + left == 6 and done >= 2 and left >= 1, err
    db = sqlite3.connect(ws / "catalog.sqlite")
    recorded = {r[0] for r in db.execute("SELECT clip_id FROM stage_status WHERE stage='preannotate' AND status='done'")}
    assert len(recorded) == done
    # every mask file on disk belongs to a recorded mask row; no half-written clip
    rows = {r[0] for r in db.execute("SELECT path FROM mask_versions")}
    files = {str(p.relative_to(ws)) for p in (ws / "masks").rglob("*.png")}
    assert files == rows
    assert {r[0] for r in db.execute("SELECT DISTINCT clip_id FROM mask_versions")} <= recorded
    assert not list(ws.rglob(".tmp-*"))
    db.close()
    r = run_cli("preannotate", ws, "-q", "--backend", "motion", check=True)
    assert f"{left} clips proposed" in r.stdout and f"{done} already done" in r.stdout


def test_a_second_run_on_a_busy_workspace_is_refused(tmp_path, ws24):
    ws = tmp_path / "ws"
    shutil.copytree(ws24, ws)
    proc = start_cli("sample", ws, "-q", "-j", "1", hold=tmp_path / "hold")  # held at its first report
    try:
        wait_for(lambda: (tmp_path / "hold.held").exists(), proc)
        assert b"sample" in (ws / ".lock").read_bytes()
        for cmd in (("sample", ws, "-q"), ("preannotate", ws, "-q")):
            r = run_cli(*cmd)
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "is busy" in lines[0] and f"pid {proc.pid}" in lines[0], r.stderr
        assert proc.poll() is None, "the first run ended: the refusal was not tested against a running stage"
        # read-only commands never wait for the lock
        assert run_cli("status", ws, "--json").returncode == 0
        assert run_cli("clips", ws, "--json").returncode == 0
    finally:
        rc, _, err, _ = ctrl_c(proc)
    assert rc == 130 and MSG.search(err)
    assert _lock_free(ws)  # released when the process ended


def test_vggish_embedding_loop_stops_on_ctrl_c_and_resumes(tmp_path):
    torch = pytest.importorskip("torch")  # the models extra; installed by make install
    from torchvggish.torchvggish import _vgg

    weights = tmp_path / "vggish.pth"
    torch.save(_vgg(postprocess=False).eval().state_dict(), weights)
    wsdir = clip_workspace(tmp_path, "avsbench-s4", 4, 5, w=96, h=64)
    ws = open_workspace(wsdir, lock="sample")
    assert sample(ws, SampleOptions(jobs=1)).sampled == 4
    calls = []

    def ctrl_c_after_two(stage, done, total, info):  # Ctrl-C lands right after the second embedding
        if stage == "vggish":
            calls.append(info)
            if len(calls) == 2:
                raise KeyboardInterrupt

    with pytest.raises(Interrupted) as exc:
        sample(ws, SampleOptions(jobs=1, vggish_weights=weights), progress=ctrl_c_after_two)
    assert (exc.value.done, exc.value.left) == (2, 2)
    rows = ws.catalog.query("SELECT clip_id, embedding_path FROM audio ORDER BY clip_id")
    embedded = [r["clip_id"] for r in rows if r["embedding_path"]]
    assert embedded == calls
    assert sorted(p.name for p in (wsdir / "audio").glob("*.vggish.npy")) == [f"{c}.vggish.npy" for c in calls]
    res = sample(ws, SampleOptions(jobs=1, vggish_weights=weights))
    assert res.embedded == 2 and res.sampled == 0 and res.skipped == 4
    for r in ws.catalog.query("SELECT embedding_path FROM audio"):
        assert np.load(wsdir / r[0].split("#")[0]).shape == (5, 128)
    ws.close()


def test_deferred_interrupt_holds_ctrl_c_until_the_commit_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now: it must not raise inside the block
            done.append(True)
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_no_stage_handles_still_prints_a_line():
    """typer turns an unhandled KeyboardInterrupt into a silent exit 130; the CLI says it was interrupted."""
    code = ("import sys, time\n"
            "from avsbench_tools.cli import app, run\n"
            "@app.command()\n"
            "def hang():\n"
            "    print('ready', flush=True)\n"
            "    time.sleep(60)\n"
            "sys.exit(run(['hang']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    rc, _, err, took = ctrl_c(proc)
    assert rc == 130 and took < STOP_LIMIT_S
    assert err.strip() == "interrupted; finished work is kept: run the same command to resume"
