"""A real two-node Ray cluster on loopback (`LoopbackCluster`, see tests/engine/conftest.py for the
fixtures) and what the Ray engine tests compare: workspace digests, finished clip ids."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.helpers.interrupt import start_cli  # noqa: F401 (the Ray tests' CLI runs, one definition)

HEAD_IP, SECOND_IP = "127.0.0.2", "127.0.0.3"
RAY = str(Path(sys.executable).with_name("ray"))
# no usage report; no token authentication (a token in ~/.ray from another Ray must not change the tests)
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           # a killed node is declared dead after 3 missed health checks of 1 s (Ray: 5 of 3 s)
           "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
ENV = {**os.environ, **RAY_ENV, "RAY_ADDRESS": ""}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback or addr.is_unspecified


def outside_loopback(pids) -> list[tuple]:
    """(pid, name, local, remote) of every inet connection of `pids` that leaves 127.0.0.0/8."""
    bad = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            name = p.name()
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            for addr in (c.laddr, c.raddr):
                if addr and not is_loopback(addr.ip):
                    bad.append((pid, name, c.laddr, c.raddr))
    return bad


class LoopbackCluster:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="avsray-", dir="/tmp"))  # short: Ray's unix sockets live here
        self.port = free_port(HEAD_IP)
        self.address = f"{HEAD_IP}:{self.port}"
        self.second_starts = 0  # second nodes started: each registers as a new node (ready_for_work)

    def _ray(self, *args: str) -> None:
        scratch = self.tmp / "scratch"  # the workers' temporary files (tempfile), removed with the cluster's folder
        scratch.mkdir(exist_ok=True)
        proc = subprocess.run([RAY, "start", *args, "--num-cpus", "1", "--disable-usage-stats"],
                              env={**ENV, "TMPDIR": str(scratch)},
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")

    def start(self) -> LoopbackCluster:
        self._ray("--head", "--node-ip-address", HEAD_IP, "--port", str(self.port), "--include-dashboard=false",
                  "--temp-dir", str(self.tmp))
        self.start_second()
        return self

    def start_second(self) -> None:
        self.second_starts += 1
        self._ray("--address", self.address, "--node-ip-address", SECOND_IP, "--temp-dir", str(self.tmp))
        self.wait_nodes(2)

    def wait_nodes(self, n: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.raylets()) == n:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the loopback cluster did not reach {n} raylets")

    def ready_for_work(self, nodes: list[dict], free_cpus: float) -> bool:
        """Whether Ray's own view (`ray.nodes()`, the free CPUs) shows the cluster as a test expects it: the head and
        the second node started last registered and alive, every earlier second node seen dead, both CPUs free.
        (A restarted second node has a raylet process before it is registered; a killed one stays alive to the GCS
        for seconds; a task of an earlier test may still hold a CPU: each would let SPREAD place every task on one
        node.)"""
        head = [n for n in nodes if n["NodeManagerAddress"] == HEAD_IP]
        second = [n for n in nodes if n["NodeManagerAddress"] == SECOND_IP]
        return ([n["Alive"] for n in head] == [True] and len(second) == self.second_starts
                and sum(n["Alive"] for n in second) == 1 and free_cpus >= 2)

    def describe(self) -> str:
        """What Ray shows of the cluster (for a fixture that waits): its nodes, the free CPUs of each, every actor
        that is not dead (class, state, node, pid)."""
        import ray
        from ray._private import state  # the GCS's own tables: no dashboard on this cluster

        free = {k[:8]: v.get("CPU", 0) for k, v in state.available_resources_per_node().items()}
        nodes = [(n["NodeManagerAddress"], n["NodeID"][:8], n["Alive"]) for n in ray.nodes()]
        actors = [(a["ActorClassName"], a["State"], a["Address"]["IPAddress"], a.get("Pid"))
                  for a in state.actors().values() if a["State"] != "DEAD"]
        return f"nodes {nodes}, free CPUs per node {free}, actors not dead {actors}"

    def leftover_actors(self) -> list[dict]:
        """The actors of a Ray Data actor pool (`MapWorker(...)`) that are not dead: an earlier test's run has
        ended, so none should be; each holds a CPU that the next test's tasks would not get."""
        from ray._private import state

        return [a for a in state.actors().values()
                if a["State"] != "DEAD" and a["ActorClassName"].startswith("MapWorker")]

    def roots(self) -> list[psutil.Process]:
        """The cluster's own daemons (their command lines name its temp folder)."""
        out = []
        for p in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(str(self.tmp) in a for a in (p.info["cmdline"] or [])):
                    out.append(p)
        return out

    def processes(self) -> set[int]:
        """Every process of the cluster: its daemons and all their descendants (workers, agents)."""
        pids: set[int] = set()
        for p in self.roots():
            pids.add(p.pid)
            with contextlib.suppress(psutil.Error):
                pids.update(c.pid for c in p.children(recursive=True))
        return pids

    def raylets(self, ip: str | None = None) -> list[psutil.Process]:
        out = []
        for p in self.roots():
            with contextlib.suppress(psutil.Error):
                cmd = p.cmdline()
                if cmd and Path(cmd[0]).name == "raylet" and (ip is None or f"--node_ip_address={ip}" in cmd):
                    out.append(p)
        return out

    def kill_second(self) -> int:
        """SIGKILL the second node's raylet; returns its pid."""
        (raylet,) = self.raylets(SECOND_IP)
        raylet.send_signal(signal.SIGKILL)
        return raylet.pid

    def stop(self) -> None:
        """Kill every process of the cluster, looking again until none is left (a daemon can start one
        while the others die)."""
        for _ in range(5):
            procs = []
            for pid in self.processes() - {os.getpid()}:
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(pid))
            if not procs:
                break
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(procs, timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def copy_ws(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def digest(ws: Path) -> tuple[dict, dict]:
    """({file: sha256} of frames/audio/masks/clips, {table: sorted rows}) with timestamps (*_at columns)
    and the Ray engine's own meta key left out: what must be equal between the engines."""
    import hashlib
    import sqlite3

    files = {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
             for sub in ("frames", "audio", "masks", "clips", "sources") for p in sorted((ws / sub).rglob("*"))
             if p.is_file()}
    db = sqlite3.connect(ws / "catalog.sqlite")
    try:
        rows = {}
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if not c[1].endswith("_at")]
            got = db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
            if table == "meta":
                got = [r for r in got if r[0] not in ("engine.nodes", "initialised")]  # a time
            if table == "failures":  # the Ray engine's ledger rows name the node (a host name): left out
                at = cols.index("payload")
                got = [(*r[:at], _without_node(r[at]), *r[at + 1:]) for r in got]
            rows[table] = sorted(map(repr, got))
    finally:
        db.close()
    return files, rows


def _without_node(payload: str | None) -> str | None:
    import json

    if not payload:
        return payload
    value = json.loads(payload)
    value.pop("node", None)
    return json.dumps(value, sort_keys=True)


def done_ids(ws: Path, stage: str) -> list[str]:
    import sqlite3

    db = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return sorted(r[0] for r in db.execute("SELECT clip_id FROM stage_status WHERE stage=? AND status='done'",
                                               (stage,)))
    finally:
        db.close()


def wait_held(hold: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not hold.with_name(hold.name + ".held").exists():
        assert proc.poll() is None, f"finished before it was held: {proc.communicate()}"
        assert time.monotonic() < end, "the run never reached its hold"
        time.sleep(0.05)


def tree(pid: int) -> set[int]:
    """The process and all its descendants."""
    try:
        p = psutil.Process(pid)
        return {pid} | {c.pid for c in p.children(recursive=True)}
    except psutil.Error:
        return set()


# Ray Data's cluster-wide service actors: detached (they belong to the cluster, not to a job), created with
# get_if_exists by the first Ray Data job on a cluster and reused by every later one (stats, autoscaling
# coordination; ray/data/_internal/stats.py, cluster_autoscaler/, execution/node_trackers/, usage/)
RAY_DATA_SERVICES = frozenset({"_StatsActor", "_AutoscalingCoordinatorActor", "ActorLocationTracker",
                               "AutoscalingRequester", "_StatsSummaryActor", "_UsageCollectionActor"})


def detached_actors() -> dict[int, str]:
    """{pid: class name} of the cluster's alive detached actors, from the GCS's actor table (this process must
    be a driver of the cluster; Ray's state API needs the dashboard, which the loopback cluster does not run,
    so the table is read through ray._private.state, test-only)."""
    from ray._private import state

    return {a["Pid"]: a["ActorClassName"] for a in state.actors(actor_state_name="ALIVE").values()
            if a["IsDetached"] and a["Pid"]}


# a node's own agents (started by its raylet, sometimes seconds after the node joined): the node's, no run's
NODE_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def title(pid: int) -> str:
    """A process's title (Ray names a worker `ray::<what it runs>`, `ray::IDLE` when it runs nothing)."""
    try:
        return " ".join(psutil.Process(pid).cmdline()).strip()
    except psutil.Error:
        return ""


def node_agents(pids) -> set[int]:
    return {p for p in pids if title(p).startswith(NODE_AGENTS)}


def busy_workers(cluster: LoopbackCluster) -> set[int]:
    """The cluster's worker processes that run something now: title `ray::<task or actor>`, not `ray::IDLE`
    (a worker Ray started ahead for a job to come, or one a job left idle) nor a node's agent."""
    out = set()
    for pid in cluster.processes():
        t = title(pid)
        if t.startswith("ray::") and not t.startswith(("ray::IDLE", *NODE_AGENTS)):
            out.add(pid)
    return out


def run_processes(cluster: LoopbackCluster, before: set[int], proc) -> set[int]:
    """What a CLI run `proc` started on the cluster, seen while it is held: the processes new since `before`
    (its own children included; not a node's agent, which may start after the node joined) and the workers
    busy now (the run's: Ray may hand a job workers it started ahead of any job; not a detached actor that
    was there before). This process must be a driver of the cluster (detached_actors)."""
    new = (cluster.processes() | tree(proc.pid)) - before - {proc.pid}
    return (new - node_agents(new)) | (busy_workers(cluster) - (before & set(detached_actors())))


def left_behind(started: set[int], timeout: float = 20) -> tuple[list[str], set[str]]:
    """After the run: (the command lines of the `started` processes still running after up to `timeout` s,
    Ray Data's detached cluster services apart; the class names of those services among `started`).
    The services (RAY_DATA_SERVICES) are what a Ray Data job started on a cluster where none ran before:
    they stay with the cluster, as Ray Data intends, and the next job reuses them."""
    end = time.monotonic() + timeout
    while True:
        services = detached_actors()
        left = [p for p in still_running(started) if p not in services]
        if not left or time.monotonic() > end:
            break
        time.sleep(0.2)
    kept = {services[p] for p in still_running(started) if p in services}
    return [title(p) for p in left], kept


def still_running(pids) -> list[int]:
    """The `pids` that are alive (not zombies)."""
    out = []
    for p in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def kill_second_when_busy(cluster: LoopbackCluster, stop, killed: list, busy, timeout: float = 120) -> None:
    """Kill the second node's raylet (appending its pid to `killed`) as soon as a worker process there is
    `busy(title)` (its process title, `ray::<what it runs>`; an idle worker's is `ray::IDLE`): the kill
    finds work in flight. Returns when done, when `stop` is set or after `timeout` s. Run it on a thread."""
    end = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < end:
        for raylet in cluster.raylets(SECOND_IP):
            with contextlib.suppress(psutil.Error):
                for p in raylet.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        title = " ".join(p.cmdline())
                        if title.startswith("ray::") and busy(title):
                            killed.append(cluster.kill_second())
                            return
        time.sleep(0.02)
