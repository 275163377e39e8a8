"""sample --engine ray on a two-node loopback cluster: byte-identical outputs, faults, Ctrl-C, loopback only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import open_workspace
from tests.helpers import run_cli
from tests.helpers.ray_cluster import SECOND_IP, copy_ws, digest, done_ids, outside_loopback

N_CLIPS = 8
pytestmark = pytest.mark.xdist_group("ray")  # one loopback cluster per test run: every Ray test on one worker


@pytest.fixture(scope="module")
def local_sampled(collected_ws, tmp_path_factory) -> Path:
    """The same workspace sampled by the local engine (-j 2): what every Ray run must equal."""
    ws_dir = copy_ws(collected_ws, tmp_path_factory.mktemp("local") / "ws")
    ws = open_workspace(ws_dir, lock="sample")
    try:
        res = sample(ws, SampleOptions(jobs=2))
    finally:
        ws.close()
    assert res.sampled == N_CLIPS
    return ws_dir


def _start(*args, hold: Path | None = None, hold_at: int = 0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    if hold is not None:
        hold.touch()
        env.update(AVS_TOOLS_TEST_HOLD=str(hold), AVS_TOOLS_TEST_HOLD_AT=str(hold_at))
    return subprocess.Popen([sys.executable, "-m", "avsbench_tools", *map(str, args)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_held(hold: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not hold.with_name(hold.name + ".held").exists():
        assert proc.poll() is None, f"finished before it was held: {proc.communicate()}"
        assert time.monotonic() < end, "the run never reached its hold"
        time.sleep(0.05)


def _tree(pid: int) -> set[int]:
    try:
        p = psutil.Process(pid)
        return {pid} | {c.pid for c in p.children(recursive=True)}
    except psutil.Error:
        return set()


def test_ray_sample_is_byte_identical_to_local_and_stays_on_loopback(ray_cluster, collected_ws, local_sampled,
                                                                     tmp_path):
    """The same files and rows as the local engine; and every TCP/UDP endpoint of the cluster's processes and of
    the run (driver and its children), taken while the run is in the middle of its work, is in 127.0.0.0/8."""
    ws = copy_ws(collected_ws, tmp_path / "ws")
    hold = tmp_path / "hold"
    proc = _start("sample", ws, "--engine", "ray", "--ray-address", ray_cluster.address, "-q", hold=hold, hold_at=2)
    try:
        _wait_held(hold, proc)
        pids = ray_cluster.processes() | _tree(proc.pid)
        bad = outside_loopback(pids)
        conns = sum(len(psutil.Process(p).net_connections(kind="inet")) for p in pids if psutil.pid_exists(p))
    finally:
        hold.unlink(missing_ok=True)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert conns > 10  # the check looked at a live cluster
    assert bad == []
    assert f"sample: {N_CLIPS} sampled, 0 already done, 0 failed" in out
    assert "ray: 2 nodes: 127.0.0.2 " in out and f"{SECOND_IP} " in out, out
    assert digest(ws) == digest(local_sampled)
    nodes = json.loads(run_cli("status", ws, "--json", check=True).stdout)["nodes"]["sample"]["nodes"]
    assert set(nodes) == {"127.0.0.2", SECOND_IP} and sum(nodes.values()) == N_CLIPS
    again = run_cli("sample", ws, "--engine", "ray", "--ray-address", ray_cluster.address, "-q")
    assert again.returncode == 0 and "nothing to do: 8 of 8 clips already sampled" in again.stdout


def test_ctrl_c_records_finished_clips_and_leaves_no_worker(ray_cluster, collected_ws, tmp_path):
    ws = copy_ws(collected_ws, tmp_path / "ws")
    before = ray_cluster.processes()
    hold = tmp_path / "hold"
    proc = _start("sample", ws, "--engine", "ray", "--ray-address", ray_cluster.address, "-q", hold=hold, hold_at=2)
    try:
        _wait_held(hold, proc)
        started = (ray_cluster.processes() | _tree(proc.pid)) - before - {proc.pid}
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted: " in err and "run the same command to resume" in err
    done = done_ids(ws, "sample")
    assert 2 <= len(done) <= N_CLIPS
    sampled = {p.name for p in (ws / "frames").iterdir()}
    assert sampled == set(done)  # files only of recorded clips
    assert not [p for p in ws.rglob(".tmp-*")]
    assert started, "the run started no worker process"  # the check below looks at real processes
    end = time.monotonic() + 20
    while [p for p in started if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] \
            and time.monotonic() < end:
        time.sleep(0.2)
    left = [p for p in started if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == [], [psutil.Process(p).cmdline() for p in left]
    resumed = run_cli("sample", ws, "--engine", "ray", "--ray-address", ray_cluster.address, "-q")
    assert resumed.returncode == 0 and "already done" in resumed.stdout
    assert len(done_ids(ws, "sample")) == N_CLIPS


def test_unreachable_cluster_is_one_line_naming_it(collected_ws, tmp_path):
    ws = copy_ws(collected_ws, tmp_path / "ws")
    proc = run_cli("sample", ws, "--engine", "ray", "--ray-address", "127.0.0.9:9", "-q", timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.9:9" in lines[0] and lines[0].startswith("avs-tools: error: "), proc.stderr
    assert done_ids(ws, "sample") == []


def test_local_ray_for_the_run_stays_on_loopback_and_ctrl_c_leaves_nothing(collected_ws, tmp_path, monkeypatch):
    """No --ray-address and no RAY_ADDRESS: a Ray started for the run, on a loopback address; Ctrl-C stops it
    and every process it started."""
    monkeypatch.setenv("RAY_ADDRESS", "")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ws = copy_ws(collected_ws, tmp_path / "ws")
    hold = tmp_path / "hold"
    proc = _start("sample", ws, "--engine", "ray", "-q", hold=hold, hold_at=2)
    try:
        _wait_held(hold, proc)
        started = _tree(proc.pid) - {proc.pid}
        bad = outside_loopback(started | {proc.pid})
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted: " in err, err
    assert len(started) >= 3  # gcs_server, raylet, workers...: a real local cluster was looked at
    assert bad == []
    end = time.monotonic() + 20
    alive = [p for p in started if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    while alive and time.monotonic() < end:
        time.sleep(0.2)
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert 2 <= len(done_ids(ws, "sample")) <= N_CLIPS


def test_killed_node_work_is_retried_elsewhere(ray_cluster, collected_ws, local_sampled, tmp_path):
    """The second node's raylet is killed while the run holds (tasks in flight or their results still on that
    node): Ray runs them again on the head, the stage finishes, nothing is lost or duplicated. (The next test
    that asks for the cluster gets its second node back.)"""
    ws = copy_ws(collected_ws, tmp_path / "ws")
    hold = tmp_path / "hold"
    # --ray-shared-workspace: the nodes share this machine's disk, so the tasks read the clips where they are
    proc = _start("sample", ws, "--engine", "ray", "--ray-address", ray_cluster.address, "--ray-shared-workspace",
                  "-q", hold=hold, hold_at=1)
    try:
        _wait_held(hold, proc)
        ray_cluster.kill_second()
        hold.unlink()
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert f"sample: {N_CLIPS} sampled, 0 already done, 0 failed" in out
        assert len(done_ids(ws, "sample")) == N_CLIPS
        assert digest(ws) == digest(local_sampled)  # each clip once: same frames, rows, no leftovers
        assert not [p for p in ws.rglob(".tmp-*")]
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
