"""Joining a Ray cluster (or starting a local Ray) for one run, and what the driver knows of its nodes.

`--ray-address HOST:PORT` joins a running cluster (`ray start --head` on one machine, `ray start
--address HOST:PORT` on the others); without it Ray's own convention applies (the RAY_ADDRESS
environment variable, `auto` included), and with neither a local Ray is started for the run and
stopped at its end. An address that does not answer is a one-line error naming it, before Ray is
asked (Ray itself would retry for a minute). A loopback address (127.x.y.z) makes the driver join
as that address, so a cluster on loopback keeps all of its traffic inside 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from avsbench_tools.engine.options import EngineOptions
from avsbench_tools.errors import AvsError, UsageError, require

CONNECT_TIMEOUT_S = 3.0
# a Ray started for the run listens on loopback only; Ray rewrites 127.0.0.1 to the machine's network
# address, so another loopback address is used where the system routes all of 127.0.0.0/8 (Linux)
LOCAL_IP = "127.0.0.2" if sys.platform.startswith("linux") else None


@dataclass
class Cluster:
    """The Ray cluster of a run: its address (None: local for the run) and alive nodes {ip: CPUs}."""

    address: str | None
    nodes: dict[str, float] = field(default_factory=dict)
    gpus: float = 0.0

    @property
    def cpus(self) -> int:
        return max(1, int(sum(self.nodes.values())))

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray started for this run"
        return f"{where}: {len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}, {self.cpus} CPUs" + \
            (f", {self.gpus:g} GPUs" if self.gpus else "")


def resolve_address(address: str | None) -> str | None:
    """--ray-address, else RAY_ADDRESS (Ray's convention), else None (a local Ray for the run)."""
    return (address or os.environ.get("RAY_ADDRESS") or "").strip() or None


def _host_port(address: str) -> tuple[str, int]:
    if address.startswith("ray://"):
        raise UsageError(f"--ray-address {address}: Ray Client (ray://) addresses are not supported; run "
                         "avs-tools on a node of the cluster (or any machine that can reach it) with HOST:PORT "
                         "of the head's GCS (ray start --head prints it)")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--ray-address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)


def _unreachable(host: str, port: int) -> str | None:
    """Why HOST:PORT cannot be reached (None: a TCP connection opened)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__ if not isinstance(exc, TimeoutError) else \
            f"no answer in {CONNECT_TIMEOUT_S:g} s"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _alive_nodes(ray) -> tuple[dict[str, float], float]:
    nodes: dict[str, float] = {}
    gpus = 0.0
    for n in ray.nodes():
        if n.get("Alive"):
            res = n.get("Resources", {})
            nodes[n["NodeManagerAddress"]] = res.get("CPU", 0.0)
            gpus += res.get("GPU", 0.0)
    return nodes, gpus


@contextlib.contextmanager
def ray_cluster(opts: EngineOptions) -> Iterator[Cluster]:
    """Join the cluster `opts` names (or start a local Ray) for the block; disconnect (or stop it) after.

    An unreachable address or a refused connection is an AvsError naming the address."""
    ray = require("ray", "ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    address = resolve_address(opts.address)
    kw = {"log_to_driver": False, "logging_level": logging.ERROR}
    saved = handlers()
    if ray.is_initialized():  # a caller (a test, a notebook) already joined a cluster: use it as it is
        yield Cluster("(already connected)", *_alive_nodes(ray))
        return
    scratch = None  # a local cluster's workers keep their temporary files here, removed after (also those of a
    try:  # worker killed by Ctrl-C mid-clip, which its own clean-up never reached)
        if address is None:
            if LOCAL_IP:
                kw["_node_ip_address"] = LOCAL_IP
            scratch = tempfile.mkdtemp(prefix="avs-ray-scratch-")
            kw["runtime_env"] = {"env_vars": {"TMPDIR": scratch}}
            ray.init(address="local", include_dashboard=False, **kw)
        elif address == "auto":
            ray.init(address="auto", **kw)
        else:
            host, port = _host_port(address)
            why = _unreachable(host, port)
            if why is not None:
                raise AvsError(f"cannot reach the Ray cluster at {address}: {why} (is `ray start --head` "
                               "running there?)")
            if _is_loopback(host):
                kw["_node_ip_address"] = host
            ray.init(address=f"{host}:{port}", **kw)
    except (AvsError, KeyboardInterrupt):
        _remove(scratch)
        raise
    except Exception as exc:  # noqa: BLE001 - ConnectionError, version mismatch...: one line naming the address
        with contextlib.suppress(Exception):
            ray.shutdown()
        _remove(scratch)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise AvsError(f"cannot connect to the Ray cluster at {address or 'local'}: {first}") from None
    restore(saved)
    try:
        yield Cluster(address, *_alive_nodes(ray))
    finally:
        ray.shutdown()
        restore(saved)
        _remove(scratch)


def _remove(folder: str | None) -> None:
    if folder is not None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore(saved: dict) -> None:
    """Put Python's handlers back (cheap; the stream loop does it while it waits): Ray's core worker
    installs its own SIGINT/SIGTERM handlers in the driver once work is submitted, and a Ctrl-C would
    otherwise never reach the stage (which cancels the tasks and records what finished)."""
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)


def node_ip() -> str:
    """The address of the node this worker runs on (inside a Ray task or actor)."""
    import ray

    return ray.util.get_node_ip_address()
