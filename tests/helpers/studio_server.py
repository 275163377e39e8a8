"""The Label Studio server of the studio tests (its fixtures are in tests/studio/conftest.py): the server
record, SDK clients, extra users, workspaces under the server's document root, the migrated data-dir
template and the process-group check."""

from __future__ import annotations

import contextlib
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


def ls_version(binary: Path) -> str | None:
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


def fail_start(what: str, proc, ws: Path) -> None:
    log = ws / "studio" / "server.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no server.log)"
    pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n--- server.log tail ---\n{tail}",
                pytrace=False)


def cold_template(dest: Path, scratch: Path) -> None:
    """Build a template by a real cold start through the CLI, then stop it and keep its files."""
    ws = scratch / "template-ws"
    run_cli("init", ws, "--recipe", "avsbench-ms3", check=True)
    proc = run_cli("studio", "start", ws, "--timeout", str(START_TIMEOUT), timeout=START_TIMEOUT + 60)
    stop = run_cli("studio", "stop", ws)
    if proc.returncode != 0:
        fail_start("avs-tools studio start (cold, template)", proc, ws)
    assert stop.returncode == 0, stop.stderr
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(ws / "studio" / "data", tmp / "data")
    for name in ("token", "credentials"):
        shutil.copy2(ws / "studio" / name, tmp / name)
    os.replace(tmp, dest)


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
