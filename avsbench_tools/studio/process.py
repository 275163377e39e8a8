"""Process and port helpers of the local server (server.py): is a pid still our server (never a pid <= 1,
found by its data folder after a move), stop a process group, free ports, a plain HTTP status probe, the
last line of a log, the data folder made private, the pid of another folder's server (an orphan)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from pathlib import Path


def alive(pid: int, marker: str, data_dir: str | os.PathLike | None = None) -> bool:
    """True if `pid` is a live process (not a zombie) that is our server: `marker` (the server's data dir)
    is one of its arguments, or its working folder is `data_dir` (the same inode: the server runs in its data
    dir, so a workspace moved while its server runs is still found); a reused pid is not taken for the server.
    A pid <= 1 is never alive (os.kill(0) and (-1) would name our own process group, or every process); a pid
    without a /proc entry is dead. Reaps `pid` first if it is our own child."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
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
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True  # no /proc at all (not Linux): trust the pid
    try:
        cmd = (proc / "cmdline").read_bytes().split(b"\0")
        stat = (proc / "stat").read_text()
    except OSError:
        return False  # gone meanwhile (or never there)
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    # Our own child may not have exec'd yet (a loaded machine): its cmdline is still ours, so no marker.
    return own_child or marker.encode() in cmd or (data_dir is not None and same_folder(proc / "cwd", data_dir))


def same_folder(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if both paths exist and are the same folder (device and inode)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def cmdline(pid: int) -> list[str]:
    """The arguments of a live process ([] when unknown)."""
    if not isinstance(pid, int) or pid <= 1:
        return []
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


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


def kill_group(pid: int, marker: str, grace: float = 5.0, data_dir: str | os.PathLike | None = None) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds; returns when it is gone.
    A pid <= 1 is refused (killpg(0) would signal our own group)."""
    if not isinstance(pid, int) or pid <= 1:
        raise ValueError(f"refusing to signal process group {pid!r}")
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not alive(pid, marker, data_dir) and not group_alive(pid):  # alive() first: it reaps our own child
                return
            time.sleep(0.1)


def group_alive(pgid: int) -> bool:
    """True while any process of process group `pgid` exists (zombies included); never for a pgid <= 1."""
    if pgid <= 1:
        return False
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


def make_private(data: Path) -> None:
    """The data dir and everything in it readable by its owner only (the database holds the token)."""
    data.mkdir(parents=True, exist_ok=True)
    for dirpath, dirs, files in os.walk(data):
        for name in [*dirs, *files]:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(p)
                if not os.path.islink(p) and st.st_mode & 0o077:
                    os.chmod(p, st.st_mode & 0o7700)
    os.chmod(data, 0o700)


def orphan_pid(state: dict | None) -> int | None:
    """The pid server.json names when it is a live Label Studio that is not this workspace's server."""
    if state is None or not isinstance(state.get("pid"), int) or state["pid"] <= 1:
        return None
    args = cmdline(state["pid"])
    return state["pid"] if "--data-dir" in args and any("label-studio" in a or "label_studio" in a for a in args) \
        else None


# -- a migrated database for a new data folder -------------------------------------------------------------
def _ls_version(binary: Path) -> str:
    """label-studio's version from its dist-info folder beside the binary, else the binary's size and mtime
    (a template is only used by the Label Studio that made it)."""
    for p in sorted(Path(binary).resolve().parent.parent.glob("lib/python*/site-packages/label_studio-*.dist-info")):
        return p.name[len("label_studio-"):-len(".dist-info")]
    st = Path(binary).resolve().stat()
    return f"bin-{st.st_size}-{int(st.st_mtime)}"


def _sqlite_copy(src: Path, dst: Path) -> None:
    """Copy an SQLite database (online backup: a consistent copy) to dst through a temp file and a rename;
    the copy is private (0600)."""
    import sqlite3

    tmp = dst.with_name(f".tmp-{os.getpid()}-{dst.name}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as a, \
                contextlib.closing(sqlite3.connect(tmp)) as b:
            a.backup(b)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def seed_database(binary: Path, data_dir: Path, env: dict[str, str], timeout: float, say=None) -> str:
    """Give a new data folder a migrated, empty Label Studio database, so its first start skips the ~100
    migrations that Label Studio applies to a new database (minutes on a loaded machine).

    The template, `<cache>/label-studio-<version>.sqlite3` (checkpoints.cache_root()), is made once per Label
    Studio version by `label-studio version` on a scratch data folder (it migrates and exits; no account, no
    token, nothing of a workspace) and copied from then on. -> "copied", "made" (the template was made now)
    or "kept" (the folder has its database). `say(text)` is told before a template is made."""
    import shutil
    import subprocess
    import tempfile

    from avsbench_tools.checkpoints import cache_root

    db = data_dir / "label_studio.sqlite3"
    if db.exists():
        return "kept"
    cache = cache_root()
    template = cache / f"label-studio-{_ls_version(binary)}.sqlite3"
    made = "copied"
    if not template.is_file():
        if say:
            say("first start of this Label Studio version here: migrating a template database once")
        cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".ls-template-", dir=cache))
        try:
            run_env = {**env, "LABEL_STUDIO_BASE_DATA_DIR": str(scratch)}
            for k in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"):
                run_env.pop(k, None)  # the template holds no account
            proc = subprocess.run([str(binary), "version", "--data-dir", str(scratch)], env=run_env, cwd=scratch,
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
            made_db = scratch / "label_studio.sqlite3"
            if proc.returncode != 0 or not made_db.is_file():
                return "kept"  # no template: the server migrates its own database as before
            _sqlite_copy(made_db, template)
        except (subprocess.TimeoutExpired, OSError):
            return "kept"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        made = "made"
    data_dir.mkdir(parents=True, exist_ok=True)
    _sqlite_copy(template, db)
    return made
