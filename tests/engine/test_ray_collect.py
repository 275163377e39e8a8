"""collect --engine ray: downloads spread over the loopback cluster's nodes give the local engine's workspace."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from avsbench_tools.engine import nodes_summary
from tests.helpers import run_cli
from tests.helpers.httpserver import MediaServer
from tests.helpers.ray_cluster import (
    HEAD_IP,
    RAY_DATA_SERVICES,
    SECOND_IP,
    digest,
    kill_second_when_busy,
    left_behind,
    run_processes,
    start_cli,
    wait_held,
)

pytestmark = pytest.mark.xdist_group("ray")  # the one loopback cluster: every Ray test on one worker


@pytest.fixture(scope="session")
def served(world_ms3, tmp_path_factory):
    """The world's videos on the loopback HTTP server (the first answers 404: a failure for good), their URL
    list, and the workspace the local engine collects from it (-j 2): what every Ray run must equal."""
    base = tmp_path_factory.mktemp("served")
    shutil.copytree(world_ms3 / "videos", base / "www" / "videos")
    srv = MediaServer(base / "www")
    try:
        names = (world_ms3 / "urls.txt").read_text().split()
        srv.modes[names[0]] = "404"
        urls = base / "urls.txt"
        urls.write_text("".join(srv.url(n) + "\n" for n in names))
        local = base / "local"
        run_cli("init", local, "--recipe", world_ms3 / "recipe.toml", check=True)
        run_cli("collect", local, "--urls", urls, "--world", world_ms3, "--any-license", "-j", "2", "-q", check=True)
        yield SimpleNamespace(srv=srv, names=names, urls=urls, local=local)
    finally:
        srv.close()


def _collect_on_ray(ws_dir: Path, served, world: Path):
    """collect --urls URLS --world W --any-license --retries 0 --engine ray, in this process (the session's
    driver), with the options the CLI gives."""
    from avsbench_tools.collect import CollectOptions, collect
    from avsbench_tools.engine import EngineOptions
    from avsbench_tools.workspace import open_workspace

    ws = open_workspace(ws_dir, lock="collect")
    try:
        return collect(ws, CollectOptions(urls=served.urls, world=world, any_license=True, retries=0,
                                          require_category=True, engine=EngineOptions("ray")))
    finally:
        ws.close()


def test_ray_collect_equals_local_and_ledger_names_the_node(served, world_ms3, on_cluster, tmp_path):
    # (the media fixtures first: they are made while the loopback cluster starts)
    on_ray = tmp_path / "ray"
    run_cli("init", on_ray, "--recipe", world_ms3 / "recipe.toml", check=True)
    res = _collect_on_ray(on_ray, served, world_ms3)
    names = served.names
    assert (res.new_clips, res.rejected, res.failed) == (len(names) - 1, 1, 0)
    assert set(res.nodes) == {HEAD_IP, SECOND_IP}, res.nodes  # SPREAD: both nodes downloaded
    assert nodes_summary(res.nodes, "sources").startswith("ray: 2 nodes: 127.0.0.2 ")
    assert digest(on_ray) == digest(served.local)  # source files, clips and rows (the node in the ledger left out)
    db = sqlite3.connect(on_ray / "catalog.sqlite")
    (payload,) = db.execute("SELECT payload FROM failures WHERE stage='collect'").fetchone()
    db.close()
    assert json.loads(payload)["node"] in (HEAD_IP, SECOND_IP)
    nodes = json.loads(run_cli("status", on_ray, "--json", check=True).stdout)["nodes"]["collect"]["nodes"]
    assert nodes == res.nodes and sum(nodes.values()) == len(names)


def test_killed_node_downloads_are_retried_elsewhere(on_cluster, served, world_ms3, tmp_path):
    """The second node's raylet is killed while downloads run on it (the server trickles the videos, about 2 s
    each; the kill comes as soon as a task runs there): Ray runs its tasks again on the head,
    collect finishes, and the workspace equals the local engine's: every source and clip once, nothing lost,
    no temporary left. In this process (the session's driver), with the CLI's options."""
    ws_dir = tmp_path / "ray"
    run_cli("init", ws_dir, "--recipe", world_ms3 / "recipe.toml", check=True)
    ok = served.names[1:]
    served.srv.slow_rate = max(1, max((world_ms3 / n).stat().st_size for n in ok) // 2)
    killed: list = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_second_when_busy, args=(on_cluster, stop, killed, lambda t: "IDLE" not in t),
                              daemon=True)
    for n in ok:
        served.srv.modes[n] = "slow"
    before = dict(served.srv.gets)
    killer.start()
    try:
        res = _collect_on_ray(ws_dir, served, world_ms3)
    finally:
        stop.set()
        killer.join(5)
        for n in ok:
            served.srv.modes.pop(n, None)
    assert killed, "no task ran on the second node"
    assert (res.new_clips, res.rejected, res.failed) == (len(ok), 1, 0)
    assert digest(ws_dir) == digest(served.local)
    assert not [p for p in ws_dir.rglob(".tmp-*")] and not [p for p in ws_dir.rglob("*.part")]
    gets = {n: served.srv.gets.get(n, 0) - before.get(n, 0) for n in ok}
    assert all(g >= 1 for g in gets.values()), gets


def test_ctrl_c_on_ray_data_records_finished_sources_and_leaves_no_worker(on_cluster, served, world_ms3, tmp_path):
    """Ctrl-C on a Ray Data stage run by the CLI (collect: a Ray Data map): exit 130 with the "interrupted" line,
    the sources finished so far recorded, nothing of the run left on the cluster (its job's workers) but, where
    this was the cluster's first Ray Data job, Ray Data's own detached services (RAY_DATA_SERVICES, which stay
    with the cluster for every later job); the same command again finishes the rest: the local engine's
    workspace."""
    ws_dir = tmp_path / "ray"
    run_cli("init", ws_dir, "--recipe", world_ms3 / "recipe.toml", check=True)
    before = on_cluster.processes()
    hold = tmp_path / "hold"
    args = ("collect", ws_dir, "--urls", served.urls, "--world", world_ms3, "--any-license", "--retries", "0",
            "--engine", "ray", "--ray-address", on_cluster.address, "-q")
    proc = start_cli(*args, hold=hold, hold_at=2)
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
    assert started, "the run started no worker process"
    left, kept = left_behind(started)
    assert left == []
    assert kept <= RAY_DATA_SERVICES, kept
    assert not [p for p in ws_dir.rglob(".tmp-*")] and not [p for p in ws_dir.rglob("*.part")]
    res = _collect_on_ray(ws_dir, served, world_ms3)  # the same command again (in this process): the rest
    assert res.new_clips + res.rejected < len(served.names)  # the first run had recorded some
    assert digest(ws_dir) == digest(served.local)
