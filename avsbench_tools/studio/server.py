"""A local Label Studio server for one workspace: `start_studio`, `stop_studio`, `studio_status`.

Files (all under WS/studio/):

    data/         the Label Studio data dir (its SQLite database holds the users, tasks and annotations, and
                  the admin's token): mode 0700, every file in it private (the server runs under umask 077);
                  WS/studio itself is 0700 from the first start
    token         the API token, mode 0600 (generated here with `secrets`, kept across restarts)
    credentials   {"username", "password"} for the browser login, mode 0600
    server.json   pid, url, port, host, username, document_root, data_dir and its inode (never the token)
    server.log    the server's stdout and stderr (appended)

The server runs detached in its own session (process group), bound to 127.0.0.1 on a free port, in its
data dir: `status` and `stop` find it by its pid and the inode of its working folder, so a workspace moved
while its server runs still finds it (a pid <= 1 or one without a /proc entry is never taken for it).
Secrets reach it through environment variables only (argv shows in `ps`); it never prints them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avsbench_tools.errors import AvsError, Interrupted, UsageError
from avsbench_tools.fsutil import atomic_write_private, atomic_write_text
from avsbench_tools.studio.process import (
    alive,
    announced_port,
    free_port,
    http_status,
    kill_group,
    last_line,
    make_private,
    orphan_pid,
    port_free,
    same_folder,
    seed_database,
)
from avsbench_tools.studio.project import previous_port

ENV_BINARY = "AVS_TOOLS_LABEL_STUDIO"
NOT_INSTALLED = "Label Studio is not installed: run `make studio-install` (or set AVS_TOOLS_LABEL_STUDIO)"
DEFAULT_USERNAME = "admin@avs-tools.local"
START_TIMEOUT = 300.0  # a start: ~15 s (2 cores, load 8); the one migration per Label Studio version: ~2.5 min
STOP_GRACE = 5.0
#: Plain variable names that label-studio also reads (it tries LABEL_STUDIO_X, HEARTEX_X, then X):
#: a stray HOST/PORT/USERNAME in the user's shell must not reach the server.
_SCRUBBED = ("HOST", "PORT", "USERNAME", "PASSWORD", "USER_TOKEN", "DATABASE_NAME", "DEBUG", "LOG_LEVEL")


@dataclass(frozen=True)
class StudioPaths:
    """Where a workspace keeps its server's files."""

    root: Path

    @classmethod
    def of(cls, ws) -> StudioPaths:
        """The paths of workspace `ws` (a Workspace or its folder)."""
        root = ws if isinstance(ws, (str, os.PathLike)) else ws.root  # a Path has a .root too ("/")
        return cls(Path(os.path.abspath(root)) / "studio")

    @property
    def ws_root(self) -> Path:
        return self.root.parent

    data = property(lambda self: self.root / "data")
    token = property(lambda self: self.root / "token")
    credentials = property(lambda self: self.root / "credentials")
    state = property(lambda self: self.root / "server.json")
    log = property(lambda self: self.root / "server.log")
    lock = property(lambda self: self.root / ".lock")


@dataclass
class StudioInfo:
    """A running server: where it listens, who logs in, where the secrets are (never the token itself)."""

    url: str
    host: str
    port: int
    pid: int
    username: str
    token_file: Path
    credentials_file: Path
    log_file: Path
    document_root: str
    already_running: bool = False
    orphan_pid: int | None = None  # server.json named this live Label Studio of other data (left running)


def find_binary() -> Path:
    """The `label-studio` program: $AVS_TOOLS_LABEL_STUDIO, else <repo>/.studio-venv/bin/label-studio
    (beside the package's source tree), else `label-studio` on PATH; else a UsageError (exit 2)."""
    import shutil

    env = os.environ.get(ENV_BINARY)
    if env:
        p = Path(env).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise UsageError(f"{NOT_INSTALLED}; {ENV_BINARY}={env} is not an executable file")
    repo = Path(__file__).resolve().parent.parent.parent
    local = repo / ".studio-venv" / "bin" / "label-studio"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("label-studio")
    if found:
        return Path(found)
    raise UsageError(NOT_INSTALLED)


# -- secrets ---------------------------------------------------------------------------------------------
def read_token(paths: StudioPaths) -> str | None:
    """The workspace server's API token, or None when there is no token file."""
    try:
        token = paths.token.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        from avsbench_tools.errors import UsageError

        raise UsageError(f"{paths.token}: not UTF-8 text (the token file is damaged; it holds the server's API "
                         "token as hex digits)") from None
    return token or None


def read_credentials(paths: StudioPaths) -> dict | None:
    """{"username", "password"} of the browser login, or None."""
    try:
        d = json.loads(paths.credentials.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("username") and d.get("password") else None


def _ensure_secrets(paths: StudioPaths) -> tuple[str, str, str]:
    """(username, password, token): the ones kept in the workspace, made on the first start.

    A data dir keeps the account it was made with, so a data dir without its token or credentials
    file cannot be used (it is never removed here: it holds the annotations)."""
    token, creds = read_token(paths), read_credentials(paths)
    has_db = (paths.data / "label_studio.sqlite3").exists()
    if has_db and (token is None or creds is None):
        missing = paths.token if token is None else paths.credentials
        raise UsageError(f"{paths.data} was made by an earlier start but {missing} is gone: restore it, or move "
                         f"{paths.data} away to start with a new, empty Label Studio")
    if creds is None:
        creds = {"username": DEFAULT_USERNAME, "password": secrets.token_urlsafe(12)}
        atomic_write_private(paths.credentials, json.dumps(creds, indent=1) + "\n")
    if token is None:
        token = secrets.token_hex(20)  # 40 hex digits: the length of a Label Studio (DRF) token
        atomic_write_private(paths.token, token + "\n")
    return creds["username"], creds["password"], token


# -- the process -------------------------------------------------------------------------------------
def _read_state(paths: StudioPaths) -> dict | None:
    try:
        d = json.loads(paths.state.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(d, dict):
        return None
    pid = d.get("pid")
    return d if isinstance(pid, int) and not isinstance(pid, bool) else None


def _running(paths: StudioPaths) -> dict | None:
    """server.json of a live server of this workspace's data dir (found by pid and its working folder's
    inode after a move); a stale one (dead pid, pid <= 1) is removed. One naming a live Label Studio that
    serves other data (an orphan) is kept, so that `status` can name its pid."""
    state = _read_state(paths)
    if state is None:
        return None
    if alive(state["pid"], str(paths.data), paths.data):
        return state
    if orphan_pid(state) is None:
        with contextlib.suppress(FileNotFoundError):
            paths.state.unlink()
    return None


def moved(state: dict, paths: StudioPaths) -> bool:
    """True if the server was started when the workspace was somewhere else (it works on the old paths):
    the folder it was started in is no longer the workspace's folder (another path to the same folder, a
    symbolic link, is not a move)."""
    return bool(state.get("document_root")) and not same_folder(state["document_root"], paths.ws_root)



def _url(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def _server_env(paths: StudioPaths, username: str, password: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUBBED and not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))}
    root = str(paths.ws_root)
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(paths.data),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": root,
        "LATEST_VERSION_CHECK": "false", "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "fflag_feat_utc_210_prediction_validation_15082025": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_USERNAME": username, "LABEL_STUDIO_PASSWORD": password, "LABEL_STUDIO_USER_TOKEN": token,
        # nothing leaves the machine: no error reports, no usage analytics; INFO never logs a token
        "LABEL_STUDIO_SENTRY_DSN": "", "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false", "LABEL_STUDIO_LOG_LEVEL": "INFO",
        "LABEL_STUDIO_DEBUG": "false", "PYTHONUNBUFFERED": "1",
    })
    # studio/lsboot/sitecustomize.py: TCP_NODELAY on the server's sockets (no 40 ms stall per request)
    boot = str(Path(__file__).resolve().parent / "lsboot")
    env["PYTHONPATH"] = os.pathsep.join([boot] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _wait_ready(state: dict, token: str, paths: StudioPaths, timeout: float, log_offset: int | None) -> None:
    """Poll /health, then an authenticated call, until both answer; one-line errors naming server.log.
    With `log_offset` (a start of ours), follow the port the server announces in its log (it moves to the
    next port if ours was taken meanwhile) and record it in `state` and server.json."""
    end = time.monotonic() + timeout
    while True:
        if not alive(state["pid"], str(paths.data), paths.data):
            last = last_line(paths.log, token, log_offset or 0)
            raise AvsError(f"Label Studio exited during its start: see {paths.log}" + (f" ({last})" if last else ""))
        port = announced_port(paths.log, log_offset) if log_offset is not None else None
        if port is not None and port != state["port"]:
            state.update(port=port, url=_url(state["host"], port))
            atomic_write_text(paths.state, json.dumps(state, indent=1) + "\n")
        url = state["url"]
        if http_status(url + "/health") == 200:
            code = http_status(url + "/api/current-user/whoami", token)
            if code == 200:
                return
            if code in (401, 403):
                raise AvsError(f"Label Studio at {url} refused the token in {paths.token} ({code}): {paths.data} "
                               "was made with another token; restore that token file")
        if time.monotonic() > end:
            raise AvsError(f"Label Studio did not answer at {url} within {timeout:.0f} s: see {paths.log}")
        time.sleep(0.5)


@contextlib.contextmanager
def _studio_lock(paths: StudioPaths):
    """One `studio start`/`stop` at a time per workspace (flock; released when the process dies)."""
    import fcntl

    paths.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another `avs-tools studio start/stop` is running on {paths.ws_root}: wait for it") from None
        yield
    finally:
        os.close(fd)


def _info(state: dict, paths: StudioPaths, already: bool) -> StudioInfo:
    return StudioInfo(url=state["url"], host=state["host"], port=state["port"], pid=state["pid"],
                      username=state["username"], token_file=paths.token, credentials_file=paths.credentials,
                      log_file=paths.log, document_root=state["document_root"], already_running=already)


def start_studio(ws, port: int | None = None, host: str = "127.0.0.1", timeout: float = START_TIMEOUT,
                 progress: Callable[[str, int, int, str], None] | None = None) -> StudioInfo:
    """Start the workspace's Label Studio server (or find it running) and wait until its API answers.

    Idempotent: a running server is reported as it is (`already_running`). Ctrl-C, a timeout or a
    failed start stops the half-started server (no process is left). `progress("studio", 0, 1, text)`
    is called once before the wait."""
    paths = StudioPaths.of(ws)
    if ":" in host:
        raise UsageError(f"--host {host}: give an IPv4 address (label-studio start does not take IPv6)")
    with _studio_lock(paths):
        state = _running(paths)
        if state is not None and moved(state, paths):
            # started before the workspace moved: it still looks for its database and files at the old path
            if progress:
                progress("studio", 0, 1, f"the workspace moved since its server (pid {state['pid']}) started at "
                                         f"{state['document_root']}: restarting it")
            _stop(state["pid"], paths)
            state = None
        if state is not None:
            token = read_token(paths)
            if token is None:
                raise UsageError(f"Label Studio is running at {state['url']} but {paths.token} is gone: stop it with "
                                 f"avs-tools studio stop {paths.ws_root}, then restore that file")
            _wait_ready(state, token, paths, timeout, None)
            return _info(state, paths, already=True)
        orphan = orphan_pid(_read_state(paths))
        binary = find_binary()
        username, password, token = _ensure_secrets(paths)
        try:
            port = port or previous_port(paths.ws_root, host) or free_port(host)  # keeps its port when free
        except OSError as exc:
            raise UsageError(f"--host {host}: cannot listen there ({exc.strerror})") from None
        if not port_free(host, port):
            raise UsageError(f"--port {port}: the port is in use on {host}; choose another or leave --port out")
        url = _url(host, port)
        make_private(paths.data)
        os.chmod(paths.root, 0o700)  # WS/studio: nobody else lists, replaces or reads the token and the login
        env = _server_env(paths, username, password, token)
        seeded = seed_database(binary, paths.data, env, timeout,  # a new data dir: a migrated database, copied
                               lambda text: progress and progress("studio", 0, 1, text))
        argv = [str(binary), "start", "--no-browser", "--internal-host", host, "-p", str(port),
                "--data-dir", str(paths.data), "--enable-legacy-api-token", "--log-level", "INFO"]
        with open(paths.log, "ab") as log:
            offset = log.tell()
            log.write(f"\n=== avs-tools studio start {time.strftime('%Y-%m-%d %H:%M:%S')} {url} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, env=env, cwd=paths.data,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, umask=0o077)  # what it writes stays private
        st = os.stat(paths.data)
        state = {"pid": proc.pid, "url": url, "host": host, "port": port, "username": username,
                 "document_root": str(paths.ws_root), "data_dir": str(paths.data),
                 "data_inode": [st.st_dev, st.st_ino], "started_at": time.time()}
        atomic_write_text(paths.state, json.dumps(state, indent=1) + "\n")
        try:
            if progress:
                progress("studio", 0, 1, f"starting Label Studio at {url}"
                         + (" (its database migrated now: about 2 min, once per Label Studio version)"
                            if seeded == "made" else " (about 15 s; up to 30 s on a loaded machine)"))
            _wait_ready(state, token, paths, timeout, offset)
        except KeyboardInterrupt:
            _stop(proc.pid, paths)
            raise Interrupted(0, 1, "the half-started Label Studio server was stopped") from None
        except BaseException:
            _stop(proc.pid, paths)
            raise
        if progress:
            progress("studio", 1, 1, "ready")
        info = _info(state, paths, already=False)
        info.orphan_pid = orphan
        return info


def _stop(pid: int, paths: StudioPaths) -> None:
    kill_group(pid, str(paths.data), STOP_GRACE, paths.data)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    with contextlib.suppress(FileNotFoundError):
        paths.state.unlink()


def stop_studio(ws) -> bool:
    """Stop the workspace's server (SIGTERM to its process group, SIGKILL after a few seconds).
    True if one was running; False if none was (idempotent). Token, credentials and data are kept."""
    paths = StudioPaths.of(ws)
    if not paths.root.is_dir():
        return False
    with _studio_lock(paths):
        state = _running(paths)
        if state is None:
            return False
        _stop(state["pid"], paths)
        return True


def studio_status(ws) -> dict:
    """{"running": bool, "url": str | None, "token_file": str | None}: running means the workspace's
    server process is alive and answers /health. Added when they apply: "moved_from" and "pid" (the
    workspace moved since its server started there: the server, found by pid and the inode of its data
    folder, still works on the old paths and is not running for this workspace; `start` restarts it,
    `stop` stops it) and "orphan_pid" (server.json names a live Label Studio that serves other data)."""
    paths = StudioPaths.of(ws)
    state = _running(paths)
    elsewhere = state is not None and moved(state, paths)
    running = state is not None and not elsewhere and http_status(state["url"] + "/health") == 200
    out = {"running": running, "url": state["url"] if running else None,
           "token_file": str(paths.token) if paths.token.is_file() else None}
    if elsewhere:
        out.update(moved_from=state["document_root"], pid=state["pid"])
    orphan = orphan_pid(_read_state(paths)) if state is None else None
    if orphan is not None:
        out["orphan_pid"] = orphan
    return out


def server_state(ws) -> dict | None:
    """server.json of the workspace's live server (pid, url, port, host, username, document_root), or None."""
    return _running(StudioPaths.of(ws))
