"""Pushing a copy of the studio tests' built workspace (`built`, tests/studio/conftest.py) and listing what the
server holds: shared by test_push.py and test_push_audio.py; `learn_prediction_ids` for the tests that annotate
through the API right after a push (test_pull, test_mirror, test_own_project)."""

from __future__ import annotations

import shutil
from pathlib import Path

from avsbench_tools.studio.connect import connect
from avsbench_tools.studio.push import PushOptions, push
from avsbench_tools.workspace import open_workspace


def fresh(built: Path, name: str, where: Path | None = None) -> Path:
    dst = (where or built.parent) / name
    shutil.copytree(built, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def push_ws(ws: Path, url: str, key: str, **opts):
    w = open_workspace(ws, lock="push")
    try:
        return push(w, connect(w, url, key), PushOptions(**opts))
    finally:
        w.close()


def server_tasks(server, pid: int) -> list[dict]:
    c = server.client()
    return [t.dict() if hasattr(t, "dict") else t for t in c.tasks.list(project=pid, fields="all", page_size=500)]


def learn_prediction_ids(ws: Path, url: str | None = None, key: str | None = None) -> None:
    """Record the server's ids of the predictions push recorded without (an import answers none; push learns them
    only when it needs them, pull from the tasks it lists): for tests that annotate through the API with
    parent_prediction right after a push. url/key None: the workspace's own server."""
    from avsbench_tools.catalog.studio import project_key
    from avsbench_tools.studio.project import Api, server_name
    from avsbench_tools.studio.push_sync import learn_ids

    w = open_workspace(ws, lock="push")
    try:
        conn = connect(w, url, key)
        server = server_name(conn, w.catalog.studio_ws_id())
        pid = w.catalog.studio_project(server)
        k = project_key(server, pid)
        learn_ids(w, Api(conn), pid, k, set(w.catalog.studio_tasks(k).values()), 0)
    finally:
        w.close()
