"""A real two-node Ray cluster on loopback for the Ray engine tests (one per test run, 1 CPU per node).

`ray_cluster` -> `LoopbackCluster` (one per test run, `loopback_cluster`; its second node restarted when an
earlier test killed it): a head node started with `ray start --head
--node-ip-address 127.0.0.2` and a second node `ray start --address 127.0.0.2:PORT --node-ip-address
127.0.0.3` (Ray rewrites 127.0.0.1 to the machine's address: other loopback addresses keep every
connection inside 127.0.0.0/8). `.address` is what `--ray-address` takes; `.kill_second()` kills the
second node's raylet (its workers die with it), `.start_second()` brings a second node back;
`.processes()` are every process of the cluster. At the end every process of the cluster is killed
(found by its own temp folder, and their descendants): no `ray stop`, which would stop any Ray of
the machine. Ray missing: the fixture FAILS (it is part of `make install`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import psutil
import pytest

from tests.helpers.ray_cluster import HEAD_IP, RAY_ENV, SECOND_IP, LoopbackCluster, copy_ws


@pytest.fixture
def ray_cluster(loopback_cluster):
    """The session's cluster with both nodes (a test that killed the second leaves it to the next one)."""
    if len(loopback_cluster.raylets()) < 2:
        loopback_cluster.start_second()
    return loopback_cluster


@pytest.fixture(scope="session", autouse=True)
def _starting_cluster():
    """The session's loopback cluster, started on a thread as soon as the first test here begins, so that
    its start overlaps the fixtures that make media (the tests list those first); `loopback_cluster` waits
    for it. Stopped (every process of it) at the end of the session."""
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail("ray is not installed: it is part of make install (pip install -e '.[ray]')")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)  # the drivers these tests start in-process and as CLIs
    cluster = LoopbackCluster()
    failed: list[BaseException] = []

    def start() -> None:
        try:
            cluster.start()
        except BaseException as exc:  # noqa: BLE001 - raised by loopback_cluster on the test's thread
            failed.append(exc)

    starting = threading.Thread(target=start, name="ray-cluster-start", daemon=True)
    starting.start()
    try:
        yield cluster, starting, failed
    finally:
        starting.join(120)
        cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def loopback_cluster(_starting_cluster):
    cluster, starting, failed = _starting_cluster
    starting.join(180)
    if failed:
        raise failed[0]
    assert not starting.is_alive(), "the loopback cluster did not start in 180 s"
    return cluster


@pytest.fixture(scope="session")
def ray_driver(loopback_cluster):
    """This test process joined to the session's cluster as one Ray driver (one job for the whole session, so
    its worker processes start once and stay warm for every in-process run; the stages' `ray_cluster()` use
    this connection as it is). Disconnected at the end of the session, before the cluster stops."""
    import logging

    import ray

    ray.init(address=loopback_cluster.address, _node_ip_address=HEAD_IP, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield loopback_cluster
    finally:
        ray.shutdown()


@pytest.fixture
def on_cluster(ray_driver, ray_cluster):
    """The session's cluster with both nodes, this process its driver: run stages in-process with
    `EngineOptions("ray")` (no CLI start-up, warm workers), once Ray itself shows both nodes alive and idle
    (`LoopbackCluster.ready_for_work`). A CPU still held 20 s on: a warning says by what (`describe`), any
    actor-pool actor left by an earlier run is killed and the second node restarted, once (CI saw one CPU held
    for minutes after the preannotate node-kill test, which did not happen in 7 runs here)."""
    import time
    import warnings

    import ray

    start = time.monotonic()
    healed = False
    while not ray_cluster.ready_for_work(ray.nodes(), ray.available_resources().get("CPU", 0)):
        waited = time.monotonic() - start
        if waited > 20 and not healed:
            healed = True
            warnings.warn(f"the loopback cluster was not idle 20 s after the last test: {ray_cluster.describe()}",
                          stacklevel=1)
            for actor in ray_cluster.leftover_actors():
                with contextlib.suppress(psutil.Error, TypeError, ValueError):
                    psutil.Process(int(actor["Pid"])).kill()
            if ray_cluster.raylets(SECOND_IP):
                ray_cluster.kill_second()
            ray_cluster.start_second()
        if waited > 110:
            raise RuntimeError(f"Ray has not shown the loopback cluster's two nodes alive and idle in {waited:.0f} s: "
                               f"{ray_cluster.describe()}")
        time.sleep(0.1)
    return ray_cluster


# -- workspaces ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def collected_ws(tmp_path_factory) -> Path:
    """A collected workspace (recipe of a synthetic MS3 world: 8 clips of 5 s at 160x120); copy it."""
    from avsbench_tools.collect import CollectOptions, collect
    from avsbench_tools.synth import SynthParams, synthesize
    from avsbench_tools.workspace import init_workspace

    base = tmp_path_factory.mktemp("ray-ws")
    synthesize(base / "world", SynthParams(clips=8, seconds=5, width=160, height=120, seed=11, gold="avsbench-ms3"))
    ws, _ = init_workspace(base / "ws", base / "world" / "recipe.toml")
    try:
        collect(ws, CollectOptions(world=base / "world"))
    finally:
        ws.close()
    return base / "ws"


@pytest.fixture(scope="session")
def sampled_ws(collected_ws, tmp_path_factory) -> Path:
    """`collected_ws` sampled by the local engine (-j 2): what every Ray run of sample must equal, and the
    input of the preannotate tests; copy it."""
    from avsbench_tools.sample import SampleOptions, sample
    from avsbench_tools.workspace import open_workspace

    base = copy_ws(collected_ws, tmp_path_factory.mktemp("sampled") / "ws")
    ws = open_workspace(base, lock="sample")
    try:
        res = sample(ws, SampleOptions(jobs=2))
    finally:
        ws.close()
    assert res.sampled == 8
    return base
