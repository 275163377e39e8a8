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
Helpers (in tests/helpers/studio_server.py: `from tests.helpers.studio_server import make_user, sdk_client,
make_workspace`):
- `make_user(server, email, password=None) -> api_key`: a second annotator (signs up through the web
  form, joins the server's organisation, gets its own legacy token).
- `sdk_client(url, api_key)` / `annotator_client(url, api_key)` -> `label_studio_sdk.LabelStudio`.
- `make_workspace(server, name, recipe="avsbench-ms3") -> Path`: `avs-tools init` under server.ws.
- `studio_browser` (session fixture): one headless Chromium per worker, logged in to the server as the admin;
  `studio_page` (per test) hands it to a test and leaves the page afterwards (the login is kept). A test sets its
  window with `tests.helpers.browser.set_window(driver, "W,H")`.
- `studio_template` (session fixture) -> Path of a migrated data dir template (data/, token,
  credentials); `copy_template(template, ws)` puts it in a workspace, so `avs-tools studio start ws`
  restarts in seconds instead of a cold start (database migrations: ~30 s idle, minutes when loaded).

The template is built once by a real cold start through the CLI and cached in pytest's cache folder
(.pytest_cache/d/studio-template/<label-studio version>); AVS_TEST_STUDIO_COLD=1 skips the cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.helpers.studio_server import (
    TEMPLATE_FORMAT,
    StudioServer,
    cold_template,
    fail_start,
    group_processes,
    ls_version,
    require_label_studio,
    start_from_template,
)


@pytest.fixture(scope="session")
def studio_template(pytestconfig, tmp_path_factory) -> Path:
    """A migrated Label Studio data dir with its token and credentials (see the module docstring)."""
    binary = require_label_studio()
    version = ls_version(binary)
    cache = getattr(pytestconfig, "cache", None)
    if version is None or cache is None or os.environ.get("AVS_TEST_STUDIO_COLD"):
        dest = tmp_path_factory.mktemp("studio-template") / "t"
        cold_template(dest, tmp_path_factory.mktemp("studio-cold"))
        return dest
    base = cache.mkdir("studio-template")
    dest = base / f"ls-{version}-f{TEMPLATE_FORMAT}"
    with open(base / ".lock", "w") as lock:  # concurrent test runs (xdist workers) build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / "data" / "label_studio.sqlite3").is_file():
            shutil.rmtree(dest, ignore_errors=True)
            cold_template(dest, tmp_path_factory.mktemp("studio-cold"))
    return dest


@pytest.fixture(scope="session")
def studio_server(studio_template, tmp_path_factory):
    """The run's Label Studio server (see the module docstring)."""
    ws = tmp_path_factory.mktemp("studio-server") / "ws"
    proc = start_from_template(studio_template, ws)
    if proc.returncode != 0:
        fail_start("avs-tools studio start", proc, ws)
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


@pytest.fixture(scope="session")
def studio_browser(studio_server):
    """One headless Chromium per worker, logged in to the run's server once: the browser tests share it (a Chromium
    start, a login and the editor's scripts fetched into an empty cache cost seconds each on a loaded machine).
    Media may play without a gesture (the audio tests play the task's second)."""
    from tests.helpers.browser import chromium, login

    with chromium("--autoplay-policy=no-user-gesture-required", window="1366,768") as driver:
        login(driver, studio_server)
        yield driver


@pytest.fixture
def studio_page(studio_browser):
    """The shared browser for one test; afterwards it leaves the page, so the next test starts on a blank page."""
    from tests.helpers.browser import leave

    yield studio_browser
    leave(studio_browser)


@pytest.fixture(scope="module")
def built(studio_server, tmp_path_factory) -> Path:
    """Sampled and pre-annotated, never pushed; inside the server's document root."""
    from avsbench_tools.synth import SynthParams, synthesize

    world = tmp_path_factory.mktemp("c1-world") / "w"
    synthesize(world, SynthParams(clips=2, seconds=5, width=160, height=120, seed=11, gold="avsbench-ms3"))
    ws = studio_server.ws / "c1-built"
    run_cli("init", ws, "--recipe", world / "recipe.toml", check=True)
    run_cli("collect", ws, "--world", world, "-q", check=True)
    run_cli("sample", ws, "-q", check=True)
    run_cli("preannotate", ws, "--backend", "motion", "-q", check=True)
    return ws
