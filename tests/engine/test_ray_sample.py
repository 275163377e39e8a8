"""sample --engine ray on a two-node loopback cluster: byte-identical outputs, faults, Ctrl-C, loopback only."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from avsbench_tools.engine import EngineOptions, nodes_summary, ray_tasks
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.workspace import open_workspace
from tests.helpers import run_cli
from tests.helpers.ray_cluster import (
    HEAD_IP,
    SECOND_IP,
    copy_ws,
    digest,
    done_ids,
    kill_second_when_busy,
    left_behind,
    outside_loopback,
    run_processes,
    start_cli,
    tree,
    wait_held,
)

N_CLIPS = 8
pytestmark = pytest.mark.xdist_group("ray")  # one loopback cluster per test run: every Ray test on one worker


def _sample(ws_dir: Path, progress=None, shared: bool = False):
    """sample --engine ray in this process (the session's driver: its workers are warm)."""
    ws = open_workspace(ws_dir, lock="sample")
    try:
        return sample(ws, SampleOptions(engine=EngineOptions("ray", shared=shared)), progress=progress)
    finally:
        ws.close()


def test_ray_sample_is_byte_identical_to_local_and_stays_on_loopback(on_cluster, collected_ws, sampled_ws,
                                                                     tmp_path, monkeypatch):
    """The same files and rows as the local engine; and every TCP/UDP endpoint of the cluster's processes and of
    the driver, taken while the run is in the middle of its work, is in 127.0.0.0/8. One task per CPU in flight
    (IN_FLIGHT_PER_CPU 1): the driver reads each clip as a task finishes, as in a run larger than memory."""
    monkeypatch.setattr(ray_tasks, "IN_FLIGHT_PER_CPU", 1)
    ws = copy_ws(collected_ws, tmp_path / "ws")
    seen = {}

    def midway(stage, done, total, info=""):
        if done >= 2 and not seen:
            pids = on_cluster.processes() | {os.getpid()}
            seen["bad"] = outside_loopback(pids)
            seen["conns"] = sum(len(psutil.Process(p).net_connections(kind="inet")) for p in pids
                                if psutil.pid_exists(p))

    res = _sample(ws, midway)
    assert seen["conns"] > 10  # the check looked at a live cluster
    assert seen["bad"] == []
    assert (res.sampled, res.skipped, res.failures) == (N_CLIPS, 0, [])
    assert set(res.nodes) == {HEAD_IP, SECOND_IP}, res.nodes  # Ray spread the tasks over both nodes
    assert nodes_summary(res.nodes).startswith("ray: 2 nodes: 127.0.0.2 ")
    assert digest(ws) == digest(sampled_ws)
    nodes = json.loads(run_cli("status", ws, "--json", check=True).stdout)["nodes"]["sample"]["nodes"]
    assert nodes == res.nodes
    again = _sample(ws)
    assert (again.sampled, again.skipped) == (0, N_CLIPS)


def test_ctrl_c_records_finished_clips_and_leaves_no_worker(on_cluster, collected_ws, tmp_path):
    ws = copy_ws(collected_ws, tmp_path / "ws")
    before = on_cluster.processes()
    hold = tmp_path / "hold"
    proc = start_cli("sample", ws, "--engine", "ray", "--ray-address", on_cluster.address, "-q", hold=hold, hold_at=2)
    try:
        wait_held(hold, proc)
        started = run_processes(on_cluster, before, proc)
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
    left, kept = left_behind(started)
    assert left == []
    assert kept == set()  # plain Ray tasks: not even Ray Data's cluster services (ray_tasks)
    resumed = _sample(ws)  # the same command again (in this process, the session's driver): the rest only
    assert (resumed.skipped, resumed.sampled, resumed.failures) == (len(done), N_CLIPS - len(done), [])
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
    proc = start_cli("sample", ws, "--engine", "ray", "-q", hold=hold, hold_at=1)
    try:
        wait_held(hold, proc)
        started = tree(proc.pid) - {proc.pid}
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
    assert 1 <= len(done_ids(ws, "sample")) <= N_CLIPS


def test_killed_node_work_is_retried_elsewhere(on_cluster, collected_ws, sampled_ws, tmp_path):
    """The second node's raylet is killed while a sample task runs there (a worker whose title is not
    `ray::IDLE`): Ray runs it again on the head, the stage finishes, nothing is lost or duplicated.
    --ray-shared-workspace: the tasks read the clips in place (the nodes share this machine's disk). (The next
    test that asks for the cluster gets its second node back.)"""
    ws = copy_ws(collected_ws, tmp_path / "ws")
    killed: list = []
    stop = threading.Event()
    busy = threading.Thread(target=kill_second_when_busy, args=(on_cluster, stop, killed, lambda t: "IDLE" not in t),
                            daemon=True)
    busy.start()
    try:
        res = _sample(ws, shared=True)
    finally:
        stop.set()
        busy.join(5)
    assert killed, "no task ran on the second node"
    assert (res.sampled, res.failures) == (N_CLIPS, [])
    assert len(done_ids(ws, "sample")) == N_CLIPS
    assert digest(ws) == digest(sampled_ws)  # each clip once: same frames, rows, no leftovers
    assert not [p for p in ws.rglob(".tmp-*")]
