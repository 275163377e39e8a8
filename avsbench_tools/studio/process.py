"""Process and port helpers of the local server (server.py): is a pid still our server, stop a process
group, free ports, a plain HTTP status probe, the last line of a log."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from pathlib import Path


def alive(pid: int, marker: str) -> bool:
    """True if `pid` is a live process (not a zombie) with `marker` as one of its arguments (the server's
    data dir: a reused pid is not taken for the server). Reaps `pid` first if it is our own child."""
    own_child = False
    with contextlib.suppress(ChildProcessError, OSError):
        # reap it if it is our own child (a start of ours); (0, 0): our child, still running
        own_child = os.waitpid(pid, os.WNOHANG) == (0, 0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not ours
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust the pid
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    # Our own child may not have exec'd yet (a loaded machine): its cmdline is still ours, so no marker.
    return own_child or marker.encode() in cmd


def free_port(host: str) -> int:
    """A port nothing listens on at `host` now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    """True if a server could listen on `host`:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def http_status(url: str, token: str | None = None, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET (None when nothing answers)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - our own loopback URL
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def last_line(log: Path, token: str, offset: int) -> str:
    """The last non-empty line the server wrote since `offset` (for an error message; token redacted)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            lines = [x.strip() for x in fh.read().decode("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].replace(token, "***")[:200] if lines else ""


def kill_group(pid: int, marker: str, grace: float = 5.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds; returns when it is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not alive(pid, marker) and not group_alive(pid):  # alive() first: it reaps our own child
                return
            time.sleep(0.1)


def group_alive(pgid: int) -> bool:
    """True while any process of process group `pgid` exists (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_ANNOUNCED = re.compile(rb"Starting development server at https?://\S+?:(\d+)/")


def announced_port(log: Path, offset: int) -> int | None:
    """The port the server says it listens on (Django's "Starting development server at ..." line, written
    since `offset`), or None before it says so. label-studio moves to the next port by itself when the one
    it was given has been taken meanwhile."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            found = _ANNOUNCED.findall(fh.read())
    except OSError:
        return None
    return int(found[-1]) if found else None
