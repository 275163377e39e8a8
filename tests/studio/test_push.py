"""avs-tools push against the run's real Label Studio server (tests/studio/conftest.py `studio_server`).

A tiny synthetic workspace (2 clips of 5 s, MS3 world, weight-free motion proposals) is built once
inside the server's document root and copied for each test. A loopback proxy (real HTTP to the real
server) drops the answer of one import after the server has committed it: the state a server that
dies mid-push leaves, and the one that could duplicate tasks if push trusted only its own records.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.errors import AvsError
from avsbench_tools.mask_store import save_versions
from avsbench_tools.masks import ObjectMask
from avsbench_tools.studio.push_build import SILENT_SCORE, SILENT_SUFFIX, UNVERIFIED_SCORE
from avsbench_tools.workspace import open_workspace
from tests.helpers import run_cli
from tests.helpers.studio_push import fresh  # noqa: F401
from tests.helpers.studio_push import push_ws as _push
from tests.helpers.studio_push import server_tasks as _server_tasks
from tests.helpers.studio_server import group_processes


# -- the workspace ----------------------------------------------------------------------------------------
def _cli(ws: Path, server, *args: str, key: str | None = None, url: str | None = None):
    return run_cli("push", ws, "--url", url or server.url, *args, env={"LABEL_STUDIO_API_KEY": key or server.api_key})


# -- what the server and the catalog hold ------------------------------------------------------------------
def _project_id(ws: Path, url: str) -> int:
    w = open_workspace(ws)
    try:
        return w.catalog.studio_project(url)
    finally:
        w.close()


def _keys(tasks: list[dict]) -> list[tuple[str, int]]:
    return sorted((t["data"]["clip_id"], t["data"]["second"]) for t in tasks)


def _rows(ws: Path, table: str) -> list[tuple]:
    con = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return sorted(tuple(r) for r in con.execute(f"SELECT * FROM {table}"))
    finally:
        con.close()


def _frames(ws: Path) -> dict[tuple[str, int], object]:
    w = open_workspace(ws)
    try:
        return {(f.clip_id, f.second): f for c in w.catalog.clips() for f in w.catalog.frames(c.clip_id)}
    finally:
        w.close()


def _proposals(ws: Path) -> dict[tuple[str, int, str], dict[int, object]]:
    """{(clip, second, model_version): {fid: MaskVersion}} of every prediction push should send: per proposal
    set and second covered, the objects believed to sound (the sample stage's activity, preannotate's gate), and
    when one is believed silent, every object under the model version + SILENT_SUFFIX."""
    from avsbench_tools.sample import activity_of

    w = open_workspace(ws)
    try:
        sets: dict = {}
        for c in w.catalog.clips():
            vs = w.catalog.mask_versions(c.clip_id, ["proposal"])
            for v in vs:
                sets.setdefault((c.clip_id, v.second, f"{v.backend}:{v.settings_hash}"), {})[v.fid] = v
            for h in {v.settings_hash for v in vs}:
                backend = next(v.backend for v in vs if v.settings_hash == h)
                for s in w.catalog.mask_set_seconds(c.clip_id, "proposal", h) or []:
                    sets.setdefault((c.clip_id, s, f"{backend}:{h}"), {})
        out: dict = {}
        for (clip_id, s, mv), objs in sets.items():
            act = activity_of(w, clip_id)
            quiet = act is not None and not act.active[s]
            out[(clip_id, s, mv)] = {f: v for f, v in objs.items() if not quiet and v.sounding is not False}
            if len(out[(clip_id, s, mv)]) < len(objs):
                out[(clip_id, s, mv + SILENT_SUFFIX)] = objs
        return out
    finally:
        w.close()


def _check_predictions(ws: Path, tasks: list[dict]) -> int:
    """Every prediction on the server decodes (with the SDK's decoder) to the catalog's masks. Returns the count."""
    from label_studio_sdk.converter.brush import decode_rle

    props, frames, n = _proposals(ws), _frames(ws), 0
    for t in tasks:
        key = (t["data"]["clip_id"], t["data"]["second"])
        f = frames[key]
        mvs = [p["model_version"] for p in t["predictions"]]
        assert len(mvs) == len(set(mvs)), f"duplicate prediction on {key}"
        assert sorted(mvs) == sorted(mv for (c, s, mv) in props if (c, s) == key)
        for p in t["predictions"]:
            objs = props[(*key, p["model_version"])]
            brush = [r for r in p["result"] if r["type"] == "brushlabels"]
            assert {r["id"] for r in brush} == {f"o{fid}" for fid in objs}
            apart = p["model_version"].endswith(SILENT_SUFFIX)  # the prediction of objects believed silent
            scores = [v.score for v in objs.values()] + ([SILENT_SCORE] if apart else []) + \
                ([UNVERIFIED_SCORE] if brush and p["model_version"].startswith("motion:") else [])
            assert (p["score"] is None) if not scores else p["score"] == pytest.approx(min(scores))
            for r in brush:
                v = objs[int(r["id"][1:])]
                assert (r["from_name"], r["to_name"], r["type"]) == ("mask", "image", "brushlabels")
                assert (r["original_width"], r["original_height"]) == (f.width, f.height)
                assert r["value"]["brushlabels"] == [v.category]
                alpha = decode_rle(r["value"]["rle"]).reshape(f.height, f.width, 4)[..., 3]
                assert np.array_equal(alpha >= 128, v.load(ws)), (key, v.fid)
                n += 1
    return n


def _token_nowhere(ws: Path, token: str, *texts: str) -> None:
    for p in ws.rglob("catalog.sqlite*"):
        assert token.encode() not in p.read_bytes(), p
    for text in texts:
        assert token not in text


# -- a loopback proxy: real HTTP to the real server, and a way to lose one answer ------------------------------
class Proxy:
    """Forwards every request to `upstream`. `drop(method, path)` True: forward it, wait for the server's
    answer, then close the connection without answering (the server committed, the client never knows).
    `delay`: seconds to wait before forwarding an import. `hold(method, path)` True: keep that request until
    `release` is set (`holding` counts those kept); `on_import()`: called before any other import is forwarded."""

    def __init__(self, upstream: str):
        import httpx

        self.upstream, self.drop, self.delay, self.dropped, self.inflight = upstream, (lambda m, p: False), 0.0, 0, 0
        self.hold, self.release, self.holding, self.on_import = (lambda m, p: False), threading.Event(), 0, None
        self.http = httpx.Client(base_url=upstream, timeout=600)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                proxy.inflight += 1
                try:
                    self._pass()
                finally:
                    proxy.inflight -= 1

            def _pass(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection", "accept-encoding")}
                if "import" in self.path and proxy.delay:
                    time.sleep(proxy.delay)
                if proxy.hold(self.command, self.path):
                    proxy.holding += 1
                    proxy.release.wait(120)
                    try:
                        proxy.http.request(self.command, self.path, content=body, headers=headers)
                    finally:
                        proxy.holding -= 1
                    self.close_connection = True  # (its client is gone)
                    return
                if "import" in self.path and proxy.on_import is not None:
                    proxy.on_import()
                r = proxy.http.request(self.command, self.path, content=body, headers=headers)
                if proxy.drop(self.command, self.path):
                    proxy.dropped += 1
                    self.close_connection = True
                    return
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("transfer-encoding", "content-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.http.close()


@pytest.fixture
def proxy(studio_server):
    p = Proxy(studio_server.url)
    yield p
    p.close()


def _nth(method: str, needle: str, n: int):
    """A drop rule: the n-th request whose path holds `needle` (and only that one)."""
    seen = {"k": 0}

    def rule(m, path):
        if m == method and needle in path.split("?")[0]:
            seen["k"] += 1
            return seen["k"] == n
        return False
    return rule


# -- tests ---------------------------------------------------------------------------------------------------
def test_push_then_repush_then_a_new_mask_version(studio_server, built):
    server, ws = studio_server, fresh(built, "c1-round")
    frames = _frames(ws)
    proc = _cli(ws, server, "--chunk-size", "4")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    n_sets = len({k for k in _proposals(ws)})
    assert lines[0].startswith(f"push: {len(frames)} tasks created, 0 already there; {n_sets} predictions sent")
    assert lines[-1].startswith(f"next: avs-tools pull {ws}")
    pid = _project_id(ws, server.url)
    c = server.client()
    proj = c.projects.get(id=pid)
    assert proj.sampling == "Uncertainty sampling" and proj.show_instruction
    assert "sounding" in proj.expert_instruction and "most representative part" in proj.expert_instruction
    assert 'name="mask" toName="image"' in proj.label_config and proj.title.startswith("c1-round")
    storages = sorted(Path(s.path).name for s in c.import_storage.local.list(project=pid))
    assert storages == ["audio", "clips", "frames"]
    tasks = _server_tasks(server, pid)
    assert _keys(tasks) == sorted(frames)  # one task per sampled frame
    t0 = next(t for t in tasks if t["data"]["second"] == 2)
    f = frames[(t0["data"]["clip_id"], 2)]
    assert t0["data"]["image"] == f"/data/local-files/?d=c1-round/{f.path}"
    assert t0["data"]["audio"].endswith(f"/audio/seconds/{f.clip_id}/2.wav")  # the clip's audio from second 2 on
    assert t0["data"]["video"].endswith(".mp4")
    assert (t0["data"]["width"], t0["data"]["height"], t0["data"]["frame_index"]) == (f.width, f.height, f.frame_index)
    assert "listen to 2.0-3.0 s" in t0["data"]["note"]
    import httpx  # the frame is served to the API key's user, byte for byte

    r = httpx.get(server.url + t0["data"]["image"], headers={"Authorization": f"Token {server.api_key}"})
    assert r.status_code == 200 and r.content == (ws / f.path).read_bytes()
    assert _check_predictions(ws, tasks) > 0
    key = f"{server.url}#{pid}"
    assert sorted((c_, s, t) for _, c_, s, t, _ in _rows(ws, "studio_tasks")) == \
        sorted((t["data"]["clip_id"], t["data"]["second"], t["id"]) for t in tasks)
    on_server = sorted((p["task"], p["model_version"], p["id"]) for t in tasks for p in t["predictions"])
    # every prediction recorded when its import was answered; its id is not learnt at push (0: an import answers
    # none, and listing them would cost the server a third of the import): found by task and model version
    assert sorted(r[1:4] for r in _rows(ws, "studio_predictions")) == [(t, mv, 0) for t, mv, _ in on_server]
    w = open_workspace(ws)
    try:
        v = w.catalog.prediction_versions(key, on_server[0][2], on_server[0][0], on_server[0][1])
        assert v is not None and all(isinstance(i, int) for i in v)
        assert w.catalog.prediction_versions(key, on_server[0][2]) is None  # by its id: not learnt yet
        assert w.catalog.clip_ids_done("push") == sorted({c_ for c_, _ in frames})
    finally:
        w.close()
    _token_nowhere(ws, server.api_key, proc.stdout, proc.stderr)

    before = {t: _rows(ws, t) for t in ("studio_tasks", "studio_predictions")}
    again = _cli(ws, server)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"push: nothing to do: {len(frames)} tasks and their {n_sets} predictions")
    assert {t: _rows(ws, t) for t in before} == before
    assert len(_server_tasks(server, pid)) == len(frames) and c.projects.get(id=pid).total_predictions_number == n_sets

    # a new mask version (other settings): a new prediction on the same tasks, shown by default
    w = open_workspace(ws)
    try:
        for clip in w.catalog.clips():
            objs = []
            for v in w.catalog.mask_versions(clip.clip_id, ["proposal"]):
                m = v.load(w.root).copy()
                m[: m.shape[0] // 2] = False  # a visibly different mask
                if m.any():
                    objs.append(ObjectMask(v.second, v.fid, v.category, m, None, 0.25, v.sounding))
            save_versions(w, clip.clip_id, objs, "proposal", "motion", {"backend": "motion", "test": "v2"},
                          seconds=list(range(clip.seconds)))
    finally:
        w.close()
    res = _push(ws, server.url, server.api_key)
    assert res.tasks_created == 0 and res.tasks_reused == len(frames)
    assert res.predictions_sent == len(_proposals(ws)) - n_sets and res.predictions_skipped == n_sets
    tasks = _server_tasks(server, pid)
    assert _keys(tasks) == sorted(frames) and all(len(t["predictions"]) >= 1 for t in tasks)
    _check_predictions(ws, tasks)
    assert c.projects.get(id=pid).model_version == res.model_versions[0] and len(res.model_versions) == 1
    assert _push(ws, server.url, server.api_key).predictions_sent == 0


@pytest.mark.parametrize("per_task", [False, True], ids=["project-list", "per-task"])
def test_a_lost_answer_mid_push_then_push_again_makes_no_duplicate(studio_server, built, proxy, per_task,
                                                                   monkeypatch):
    """Both ways of learning prediction ids: the project's list, and one request per task."""
    from avsbench_tools.studio import project

    monkeypatch.setattr(project, "PER_TASK_COST", 0 if per_task else 10**9)
    server, ws = studio_server, fresh(built, f"c1-lost-{int(per_task)}")
    frames = _frames(ws)
    proxy.drop = _nth("POST", "/import", 2)  # the server creates the 2nd chunk, push never hears of it
    with pytest.raises(AvsError) as exc:
        _push(ws, proxy.url, server.api_key, chunk_size=3)
    msg = str(exc.value)
    assert proxy.dropped == 1 and "\n" not in msg and proxy.url in msg and "stopped answering" in msg
    assert "run avs-tools push" in msg and "again" in msg
    pid = _project_id(ws, proxy.url)
    assert len(_rows(ws, "studio_tasks")) == 3 and len(_server_tasks(server, pid)) == 6
    lost = set(_keys(_server_tasks(server, pid))) - {(c, s) for _, c, s, _, _ in _rows(ws, "studio_tasks")}
    proxy.drop = lambda m, p: False
    res = _push(ws, proxy.url, server.api_key, chunk_size=3)
    assert res.tasks_adopted == 3 and res.tasks_created == len(frames) - 6
    # the first chunk's predictions were recorded with its answer; those of the lost chunk are found on the server
    assert res.predictions_adopted == sum((c, s) in lost for c, s, _ in _proposals(ws))
    tasks = _server_tasks(server, pid)
    assert _keys(tasks) == sorted(frames)  # every frame once: no duplicate task
    _check_predictions(ws, tasks)  # every (task, model version) once
    assert len(_rows(ws, "studio_predictions")) == sum(len(t["predictions"]) for t in tasks)

    # the same for new predictions on existing tasks: the answer to their import is lost
    w = open_workspace(ws)
    try:
        clip = w.catalog.clips()[0]
        v = w.catalog.mask_versions(clip.clip_id, ["proposal"])[0]
        save_versions(w, clip.clip_id, [ObjectMask(v.second, v.fid, v.category, v.load(w.root), None, 0.5, True)],
                      "proposal", "motion", {"backend": "motion", "test": "lost"}, seconds=[v.second])
    finally:
        w.close()
    proxy.drop = _nth("POST", "/import/predictions", 1)
    with pytest.raises(AvsError):
        _push(ws, proxy.url, server.api_key)
    proxy.drop = lambda m, p: False
    res = _push(ws, proxy.url, server.api_key)
    assert res.predictions_adopted == 1 and res.predictions_sent == 0
    tasks = _server_tasks(server, pid)
    assert _keys(tasks) == sorted(frames)
    _check_predictions(ws, tasks)


def test_ctrl_c_stops_push_and_the_next_push_finishes_it(studio_server, built, proxy):
    server, ws = studio_server, fresh(built, "c1-intr")
    frames = _frames(ws)
    proxy.delay = 1.0  # each import waits a second in the proxy: time to interrupt in the middle
    env = dict(os.environ, PYTHONUNBUFFERED="1", LABEL_STUDIO_API_KEY=server.api_key)
    proc = subprocess.Popen([sys.executable, "-m", "avsbench_tools", "push", str(ws), "--url", proxy.url,
                             "--chunk-size", "2"], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 180
    while len(_rows(ws, "studio_tasks")) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "push made no progress"
        time.sleep(0.05)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5.0 and proc.returncode == 130, (proc.returncode, err)
    assert "interrupted:" in err and "Traceback" not in err
    assert not group_processes(proc.pid)
    recorded = len(_rows(ws, "studio_tasks"))
    assert 2 <= recorded < len(frames)
    proxy.delay = 0.0
    while proxy.inflight:  # the import the interrupt cut short still reaches the server (as it would)
        time.sleep(0.05)
    res = _push(ws, proxy.url, server.api_key)
    assert res.tasks_reused == recorded + res.tasks_adopted and res.tasks_created == len(frames) - res.tasks_reused
    tasks = _server_tasks(server, _project_id(ws, proxy.url))
    assert _keys(tasks) == sorted(frames)
    _check_predictions(ws, tasks)


def test_an_import_left_by_an_interrupted_push_lands_during_the_next_one(studio_server, built, proxy):
    """The import a Ctrl-C cut short reaches the server only after the next push has read what the server holds
    (here: just before that push's first import): its tasks are found at the end of that push and the duplicates
    deleted. A push whose imports were all answered leaves no such doubt (the catalog's mark is cleared)."""
    server, ws = studio_server, fresh(built, "c1-late")
    frames = _frames(ws)
    mark = "studio.importing:"
    proxy.hold = _nth("POST", "/import", 2)  # the second import waits in the proxy until released
    env = dict(os.environ, PYTHONUNBUFFERED="1", LABEL_STUDIO_API_KEY=server.api_key)
    proc = subprocess.Popen([sys.executable, "-m", "avsbench_tools", "push", str(ws), "--url", proxy.url,
                             "--chunk-size", "2"], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 180
    while proxy.holding < 1 or len(_rows(ws, "studio_tasks")) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "push made no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted:" in err, err
    assert [k for k, _ in _rows(ws, "meta") if k.startswith(mark)]  # an import was never answered
    assert len(_rows(ws, "studio_tasks")) == 2

    def land():  # the held import reaches the server before the next push's first one
        proxy.on_import = None
        proxy.release.set()
        while proxy.holding:
            time.sleep(0.02)
    proxy.on_import = land
    res = _push(ws, proxy.url, server.api_key, chunk_size=2)
    assert proxy.release.is_set() and not proxy.holding
    assert res.tasks_reused == 2 and res.tasks_created == len(frames) - 2
    assert any("duplicate tasks" in n and "deleted" in n for n in res.notes), res.notes
    tasks = _server_tasks(server, _project_id(ws, proxy.url))
    assert _keys(tasks) == sorted(frames)  # every frame once
    _check_predictions(ws, tasks)
    assert not [k for k, _ in _rows(ws, "meta") if k.startswith(mark)]  # every import of that push answered


def test_a_hand_edited_project_is_a_one_line_error(studio_server, built):
    server, ws = studio_server, fresh(built, "c1-edit")
    assert _cli(ws, server, "-q").returncode == 0
    pid = _project_id(ws, server.url)
    c = server.client()
    xml = c.projects.get(id=pid).label_config
    c.projects.update(id=pid, label_config=xml.replace('name="frame"', 'name="flags"'))
    proc = _cli(ws, server)
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and f"project {pid} at {server.url} was edited by hand" in err[0]
    assert 'name="frame"' in err[0]


def test_wrong_key_and_a_workspace_the_server_cannot_serve(studio_server, built, tmp_path):
    server = studio_server
    ws = fresh(built, "c1-key")
    proc = _cli(ws, server, key="not-the-key-0123456789")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"avs-tools: error: Label Studio at {server.url} refused the API "
                                                 "key (401)"]
    assert "not-the-key" not in proc.stderr and _rows(ws, "studio_tasks") == []
    outside = fresh(built, "c1-outside", where=tmp_path)  # not under the server's document root
    projects = {p.id for p in server.client().projects.list()}
    proc = _cli(outside, server)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "cannot serve the workspace's files" in err[0], proc.stderr
    assert {p.id for p in server.client().projects.list()} == projects  # the refusal left no project behind
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in err[0]
    _token_nowhere(outside, server.api_key, proc.stdout, proc.stderr)


def test_clips_whose_newest_proposals_differ_show_every_prediction(studio_server, built):
    """The server gives a project without a model version the one of its first import's last prediction; when the
    clips' newest proposals come from two settings, push leaves the project showing every prediction (""): on its
    first push, and when a later push imports more tasks into it."""
    server, ws = studio_server, fresh(built, "c1-two-sets")
    w = open_workspace(ws)
    try:
        clips = sorted(c.clip_id for c in w.catalog.clips())
        objs = [ObjectMask(v.second, v.fid, v.category, v.load(w.root), None, 0.4, v.sounding)
                for v in w.catalog.mask_versions(clips[0], ["proposal"])]
        save_versions(w, clips[0], objs, "proposal", "motion", {"backend": "motion", "test": "second set"},
                      seconds=list(range(w.catalog.clip(clips[0]).seconds)))
    finally:
        w.close()
    c = server.client()
    res = _push(ws, server.url, server.api_key, clips=[clips[1]])  # one setting: the project shows it
    assert len(res.model_versions) == 1 and c.projects.get(id=res.project_id).model_version == res.model_versions[0]
    res = _push(ws, server.url, server.api_key)  # the first clip's tasks, its newest proposals from the second setting
    assert res.tasks_created > 0 and len(res.model_versions) == 2
    assert c.projects.get(id=res.project_id).model_version == ""
    assert any("2 settings" in n for n in res.notes)
    c.projects.delete(id=res.project_id)  # made again: both settings in the first push of a new project
    res = _push(ws, server.url, server.api_key)
    assert res.project_created and len(res.model_versions) == 2
    assert c.projects.get(id=res.project_id).model_version == ""


def test_push_only_some_clips(studio_server, built):
    server, ws = studio_server, fresh(built, "c1-some")
    frames = _frames(ws)
    first = sorted({c for c, _ in frames})[0]
    res = _push(ws, server.url, server.api_key, clips=[first])
    assert res.clips == 1 and res.tasks_created == sum(1 for c, _ in frames if c == first)
    res = _push(ws, server.url, server.api_key)
    assert res.tasks_reused == sum(1 for c, _ in frames if c == first) and res.tasks_created == len(frames) - \
        res.tasks_reused
    proc = _cli(ws, server, "--clip", "no-such-clip")
    assert proc.returncode == 2 and "--clip no-such-clip" in proc.stderr


def test_duplicates_of_our_tasks_on_the_server_are_deleted(studio_server, built):
    """A late import of an interrupted push lands after the next push recorded its own tasks: the next push
    deletes the unannotated duplicates of its keys (and only those)."""
    server, ws = studio_server, fresh(built, "c1-dup")
    _push(ws, server.url, server.api_key)
    pid = _project_id(ws, server.url)
    c = server.client()
    tasks = _server_tasks(server, pid)
    dup = {"data": dict(tasks[0]["data"])}
    foreign = {"data": {**tasks[1]["data"], "ws_id": "another-workspace"}}
    c.projects.import_tasks(id=pid, request=[dup, dup, foreign])
    res = _push(ws, server.url, server.api_key)
    assert res.tasks_created == 0 and any("2 duplicate tasks" in n for n in res.notes), res.notes
    after = _server_tasks(server, pid)
    ours = [t for t in after if t["data"]["ws_id"] != "another-workspace"]
    assert _keys(ours) == _keys(tasks) and len(after) == len(tasks) + 1  # the other workspace's task is kept
    assert sorted(t["id"] for t in ours) == sorted(t["id"] for t in tasks)


def test_a_project_deleted_on_the_server_is_made_again(studio_server, built):
    server, ws = studio_server, fresh(built, "c1-gone")
    first = _push(ws, server.url, server.api_key)
    c = server.client()
    c.projects.update(id=first.project_id, description="renamed by hand")  # still ours: reused
    again = _push(ws, server.url, server.api_key)
    assert again.project_id == first.project_id and again.tasks_created == 0
    c.projects.delete(id=first.project_id)
    res = _push(ws, server.url, server.api_key)
    assert res.project_created and res.project_id != first.project_id and res.tasks_created == first.tasks_created
    assert _keys(_server_tasks(server, res.project_id)) == sorted(_frames(ws))


@pytest.mark.parametrize("recipe", ["avsbench-s4", "avss", "ref-avs"])
def test_the_server_takes_every_recipes_config_and_instructions(studio_server, recipe):
    from avsbench_tools.recipe import load_recipe
    from avsbench_tools.studio.labelling import instructions, label_config

    rec = load_recipe(recipe)
    c = studio_server.client()
    p = c.projects.create(title=f"c1 config {recipe}", label_config=label_config(rec),
                          expert_instruction=instructions(rec), show_instruction=True)
    try:
        got = c.projects.get(id=p.id)
        assert got.label_config.strip() == label_config(rec).strip()
        assert set(got.parsed_label_config) >= {"mask", "frame"} | ({"expression"} if recipe == "ref-avs" else set())
    finally:
        c.projects.delete(id=p.id)


def test_a_prediction_that_does_not_fit_the_config_is_a_one_line_error_and_nothing_is_sent(studio_server, built):
    server, ws = studio_server, fresh(built, "c1-badlabel")
    con = sqlite3.connect(ws / "catalog.sqlite")
    clip, second = con.execute("SELECT clip_id, MAX(second) FROM mask_versions WHERE kind='proposal' "
                               "GROUP BY clip_id ORDER BY clip_id").fetchone()
    con.execute("UPDATE mask_versions SET category='not_a_label' WHERE clip_id=? AND second=?", (clip, second))
    con.commit()
    con.close()
    proc = _cli(ws, server, "--clip", clip, "-q")
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert f"clip {clip} second {second}" in err[0] and "'not_a_label'" in err[0]
    pid = _project_id(ws, server.url)
    assert _server_tasks(server, pid) == [] and _rows(ws, "studio_tasks") == []  # one chunk: nothing sent
