"""Label Studio test fixtures: ONE real server per test run (per xdist worker), on loopback.

API for the studio tests (helpers build on it):

- `studio_server` (session fixture) -> `StudioServer` with
    .url        "http://127.0.0.1:PORT" (no trailing slash)
    .api_key    the legacy API token (the SDK sends it as `Authorization: Token <key>`)
    .username   the admin's login (an email), .password its password (browser login at /user/login/)
    .ws         Path of the session workspace (recipe avsbench-ms3) whose server it is, started through
                the real CLI `avs-tools studio start`. It is also the server's local-files document
                root: files are served only from inside it, so a test that pushes media makes its own
                workspace INSIDE it (`make_workspace(server, "name")`) and connects with
                `--url server.url` and `LABEL_STUDIO_API_KEY=server.api_key` (or `connect(ws, url, key)`).
    .pid        the server's pid; .start the CompletedProcess of `avs-tools studio start`
    .client()   a label_studio_sdk client as the admin
  It is stopped (`avs-tools studio stop`) at the end of the run and no process is left.
  Label Studio missing: the fixture FAILS (never skips) saying to run `make studio-install`.
Helpers (import them: `from studio.conftest import make_user, sdk_client, make_workspace`; tests/studio
is a package so that this file does not shadow tests/conftest.py):
- `make_user(server, email, password=None) -> api_key`: a second annotator (signs up through the web
  form, joins the server's organisation, gets its own legacy token).
- `sdk_client(url, api_key)` / `annotator_client(url, api_key)` -> `label_studio_sdk.LabelStudio`.
- `make_workspace(server, name, recipe="avsbench-ms3") -> Path`: `avs-tools init` under server.ws.
- `studio_template` (session fixture) -> Path of a migrated data dir template (data/, token,
  credentials); `copy_template(template, ws)` puts it in a workspace, so `avs-tools studio start ws`
  restarts in seconds instead of a cold start (database migrations: ~30 s idle, minutes when loaded).

The template is built once by a real cold start through the CLI and cached in pytest's cache folder
(.pytest_cache/d/studio-template/<label-studio version>); AVS_TEST_STUDIO_COLD=1 skips the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import run_cli

TEMPLATE_FORMAT = 1  # bump when the template's layout changes
START_TIMEOUT = 900


@dataclass
class StudioServer:
    url: str
    api_key: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    ws: Path
    pid: int
    start: object = field(repr=False, default=None)

    def client(self):
        return sdk_client(self.url, self.api_key)


def sdk_client(url: str, api_key: str):
    """A label_studio_sdk client for `url` with `api_key`."""
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=api_key)


annotator_client = sdk_client


def make_user(server: StudioServer, email: str, password: str | None = None) -> str:
    """Create another user through the sign-up form (community edition: no admin API to mint tokens)
    and return its API token. The user joins the server's organisation, so it sees every project."""
    import httpx

    password = password or secrets.token_urlsafe(10)
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=60) as s:
        page = s.get("/user/signup/")
        m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert page.status_code == 200 and m, f"sign-up page: HTTP {page.status_code}"
        r = s.post("/user/signup/", data={"csrfmiddlewaretoken": m.group(1), "email": email, "password": password},
                   headers={"Referer": server.url + "/user/signup/"})
        assert r.status_code == 302, f"sign-up of {email} refused: HTTP {r.status_code}"
        r = s.get("/api/current-user/token")
        assert r.status_code == 200, f"token of {email}: HTTP {r.status_code}"
        return r.json()["token"]


def make_workspace(server: StudioServer, name: str, recipe: str = "avsbench-ms3") -> Path:
    """A new workspace under server.ws (inside the server's document root, so its files are served)."""
    ws = server.ws / name
    run_cli("init", ws, "--recipe", recipe, check=True)
    return ws


def require_label_studio() -> Path:
    """The label-studio binary, or FAIL the test (CI installs it: a missing server is not a skip)."""
    from avsbench_tools.errors import UsageError
    from avsbench_tools.studio.server import find_binary

    try:
        return find_binary()
    except UsageError as exc:
        pytest.fail(str(exc), pytrace=False)


def _ls_version(binary: Path) -> str | None:
    """label-studio's version from its dist-info folder (no start-up cost), or None."""
    for p in binary.resolve().parent.parent.glob("lib/python*/site-packages/label_studio-*.dist-info"):
        return p.name[len("label_studio-"):-len(".dist-info")]
    return None


def copy_template(template: Path, ws: Path) -> None:
    """Put the template's data dir, token and credentials into workspace `ws` (modes kept: 0600)."""
    dst = Path(ws) / "studio"
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template / "data", dst / "data")
    for name in ("token", "credentials"):
        shutil.copy2(template / name, dst / name)


def _fail_start(what: str, proc, ws: Path) -> None:
    log = ws / "studio" / "server.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no server.log)"
    pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n--- server.log tail ---\n{tail}",
                pytrace=False)


def _cold_template(dest: Path, scratch: Path) -> None:
    """Build a template by a real cold start through the CLI, then stop it and keep its files."""
    ws = scratch / "template-ws"
    run_cli("init", ws, "--recipe", "avsbench-ms3", check=True)
    proc = run_cli("studio", "start", ws, "--timeout", str(START_TIMEOUT), timeout=START_TIMEOUT + 60)
    stop = run_cli("studio", "stop", ws)
    if proc.returncode != 0:
        _fail_start("avs-tools studio start (cold, template)", proc, ws)
    assert stop.returncode == 0, stop.stderr
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(ws / "studio" / "data", tmp / "data")
    for name in ("token", "credentials"):
        shutil.copy2(ws / "studio" / name, tmp / name)
    os.replace(tmp, dest)


@pytest.fixture(scope="session")
def studio_template(pytestconfig, tmp_path_factory) -> Path:
    """A migrated Label Studio data dir with its token and credentials (see the module docstring)."""
    binary = require_label_studio()
    version = _ls_version(binary)
    cache = getattr(pytestconfig, "cache", None)
    if version is None or cache is None or os.environ.get("AVS_TEST_STUDIO_COLD"):
        dest = tmp_path_factory.mktemp("studio-template") / "t"
        _cold_template(dest, tmp_path_factory.mktemp("studio-cold"))
        return dest
    base = cache.mkdir("studio-template")
    dest = base / f"ls-{version}-f{TEMPLATE_FORMAT}"
    with open(base / ".lock", "w") as lock:  # concurrent test runs (xdist workers) build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / "data" / "label_studio.sqlite3").is_file():
            shutil.rmtree(dest, ignore_errors=True)
            _cold_template(dest, tmp_path_factory.mktemp("studio-cold"))
    return dest


def start_from_template(template: Path, ws: Path, *args: str):
    """`avs-tools init ws` + the template + `avs-tools studio start ws ARGS` (a CompletedProcess)."""
    run_cli("init", ws, "--recipe", "avsbench-ms3", check=True)
    copy_template(template, ws)
    return run_cli("studio", "start", ws, "--timeout", str(START_TIMEOUT), *args, timeout=START_TIMEOUT + 60)


def group_processes(pid: int) -> list:
    """Live (non-zombie) processes in process group `pid`."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.info["pid"]) == pid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


@pytest.fixture(scope="session")
def studio_server(studio_template, tmp_path_factory):
    """The run's Label Studio server (see the module docstring)."""
    ws = tmp_path_factory.mktemp("studio-server") / "ws"
    proc = start_from_template(studio_template, ws)
    if proc.returncode != 0:
        _fail_start("avs-tools studio start", proc, ws)
    state = json.loads((ws / "studio" / "server.json").read_text())
    creds = json.loads((ws / "studio" / "credentials").read_text())
    server = StudioServer(url=state["url"], api_key=(ws / "studio" / "token").read_text().strip(),
                          username=creds["username"], password=creds["password"], ws=ws, pid=state["pid"], start=proc)
    try:
        yield server
    finally:
        stop = run_cli("studio", "stop", ws)
        assert stop.returncode == 0, stop.stderr
        assert not group_processes(server.pid), "Label Studio left processes behind"
