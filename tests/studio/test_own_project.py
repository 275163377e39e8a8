"""Issue #20 row 1 (and a deleted project), on a workspace's OWN Label Studio server: a project belongs to the
workspace, not to a URL. `studio stop`, `studio start` on a new port, then pull and push find the same project,
nothing is adopted or stored twice; a restart with the old port free keeps it; a project deleted on the server
retracts its reviews and the next push makes a new one.

`studio start`/`stop` run as processes (the server outlives the command that started it); push, pull and qa run
in the test's process (`cli_here`: the same exit code and output, without a Python start per command)."""

from __future__ import annotations

import json
import socket
import sqlite3

import pytest

from tests.helpers import cli_here
from tests.helpers.studio_push import learn_prediction_ids
from tests.helpers.studio_server import copy_template, sdk_client
from tests.helpers.studio_tasks import build_workspace, cli

pytestmark = pytest.mark.xdist_group("studio")


def _state(path) -> dict:
    return json.loads((path / "studio" / "server.json").read_text())


def _ok(r, *needles):
    assert r.returncode == 0, (r.stdout, r.stderr)
    for n in needles:
        assert n in r.stdout, (n, r.stdout)
    return r


def _started(studio_template, tmp_path, clips: int):
    """A workspace of `clips` synthetic clips with its own server started (from the test template)."""
    root = tmp_path / "own"
    root.mkdir()
    path = build_workspace(root, clips=clips)
    copy_template(studio_template, path)
    _ok(cli("studio", "start", path, "--timeout", "900", timeout=960))
    return path


def test_a_restart_on_a_new_port_keeps_the_project_and_counts_once(studio_template, tmp_path):
    path = _started(studio_template, tmp_path, clips=1)
    try:
        url1 = _state(path)["url"]
        _ok(cli_here("push", path), "5 tasks created")
        learn_prediction_ids(path)  # push records predictions without their ids (an import answers none)
        client = sdk_client(url1, (path / "studio" / "token").read_text().strip())
        con = sqlite3.connect(path / "catalog.sqlite")
        tasks = dict(con.execute("SELECT second, task_id FROM studio_tasks").fetchall())
        preds = dict(con.execute("SELECT task_id, prediction_id FROM studio_predictions").fetchall())
        con.close()
        for s in (0, 1):
            result = [dict(x, origin="prediction") for x in client.predictions.get(id=preds[tasks[s]]).result]
            client.annotations.create(id=tasks[s], result=result, lead_time=4.0, parent_prediction=preds[tasks[s]])
        _ok(cli_here("pull", path), "2 new annotations")
        _ok(cli("studio", "stop", path))
        port1 = int(url1.rsplit(":", 1)[1])
        with socket.socket() as blocker:  # the old port is taken: the server moves
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", port1))
            blocker.listen()
            _ok(cli("studio", "start", path, "--timeout", "900", timeout=960))
        url2 = _state(path)["url"]
        assert url2 != url1
        _ok(cli_here("pull", path), "pull: 0 new annotations", "2 unchanged")
        push = _ok(cli_here("push", path), "push: nothing to do")
        assert "interrupted push" not in push.stderr, push.stderr
        _ok(cli_here("pull", path), "pull: 0 new annotations")
        frames = json.loads(_ok(cli_here("qa", path, "--json")).stdout)["frames"]
        assert (frames["reviewed"], frames["annotations"]) == (2, 2), frames
        con = sqlite3.connect(path / "catalog.sqlite")
        keys = con.execute("SELECT DISTINCT project_key FROM studio_reviews").fetchall()
        n = con.execute("SELECT COUNT(*) FROM studio_reviews").fetchone()[0]
        con.close()
        assert n == 2 and len(keys) == 1 and keys[0][0].startswith("ws:"), keys
        # a restart with its port free keeps the port
        _ok(cli("studio", "stop", path))
        _ok(cli("studio", "start", path, "--timeout", "900", timeout=960))
        assert _state(path)["url"] == url2
        # the project deleted on the server: its reviews are retracted, the next push makes a new project
        pid = int(con_value(path, "SELECT value FROM meta WHERE key LIKE 'studio.project:ws:%'"))
        sdk_client(url2, (path / "studio" / "token").read_text().strip()).projects.delete(id=pid)
        _ok(cli_here("pull", path), f"project {pid} was deleted", "its 2 reviews are retracted", "0 clips fully reviewed")
        frames = json.loads(_ok(cli_here("qa", path, "--json")).stdout)["frames"]
        assert (frames["reviewed"], frames["annotations"]) == (0, 0), frames
        _ok(cli_here("push", path), "5 tasks created", "(new)")
    finally:
        cli("studio", "stop", path)


def con_value(path, sql: str):
    con = sqlite3.connect(path / "catalog.sqlite")
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_later_pushes_to_the_own_server_add_each_new_frame_once(studio_template, tmp_path):
    """Later pushes into the workspace's project on its own server: no serving check, the project's storages listed
    while the catalog is planned, the new tasks built from the end of the plan. Every frame ends on the server once,
    recorded under its own task; a task deleted on the server meanwhile (the server's count is then not the
    catalog's, so the early build is dropped) is made again; the storages are made once."""
    path = _started(studio_template, tmp_path, clips=3)
    try:
        clips = sorted(r[0] for r in sqlite3.connect(path / "catalog.sqlite").execute("SELECT clip_id FROM clips"))
        _ok(cli_here("push", path, "--clip", clips[0]), "5 tasks created", "(new)")
        _ok(cli_here("push", path, "--clip", clips[1]), "5 tasks created, 0 already there")
        client = sdk_client(_state(path)["url"], (path / "studio" / "token").read_text().strip())
        pid = int(con_value(path, "SELECT value FROM meta WHERE key LIKE 'studio.project:ws:%'"))
        gone = con_value(path, f"SELECT task_id FROM studio_tasks WHERE clip_id='{clips[0]}' AND second=3")
        client.tasks.delete(id=gone)
        r = _ok(cli_here("push", path), "6 tasks created, 9 already there")
        assert "1 tasks were deleted on the server: they are made again" in r.stderr + r.stdout, (r.stdout, r.stderr)
        _ok(cli_here("push", path), "push: nothing to do: 15 tasks")
        on_server = {(t.data["clip_id"], t.data["second"]): t.id for t in client.tasks.list(project=pid, page_size=100)}
        con = sqlite3.connect(path / "catalog.sqlite")
        recorded = {(c, s): t for c, s, t in con.execute("SELECT clip_id, second, task_id FROM studio_tasks")}
        marks = con.execute("SELECT key FROM meta WHERE key LIKE 'studio.importing:%'").fetchall()
        con.close()
        assert len(on_server) == 15 and sum(1 for _ in client.tasks.list(project=pid, page_size=100)) == 15
        assert recorded == on_server  # every frame once, under the task the server holds for it
        assert gone not in on_server.values()
        paths = sorted(s.path for s in client.import_storage.local.list(project=pid))
        assert paths == sorted(str(path / d) for d in ("audio", "clips", "frames")), paths
        assert marks == []
    finally:
        cli("studio", "stop", path)
