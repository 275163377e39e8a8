"""The round trip against the run's real Label Studio server: push a tiny workspace, annotate through
the SDK the way two annotators would (accept, edit, erase, silent, cancel, two on one frame, unusable;
anti-aliased editor-style masks), pull, and check the catalog, QA, re-pull, incremental pull and export.
The commands run in the test's process (`cli_here`: the same exit code and output without a Python start per
command), except the pull that Ctrl-C interrupts (a process of its own)."""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.mask_store import latest_masks, load_mask
from avsbench_tools.studio.connect import connect
from avsbench_tools.studio.pull import PullOptions, pull
from avsbench_tools.studio.qa import qa
from avsbench_tools.workspace import open_workspace
from tests.helpers import cli_here as cli
from tests.helpers.catalog_rows import stage_of
from tests.helpers.studio_push import learn_prediction_ids
from tests.helpers.studio_server import make_user, sdk_client
from tests.helpers.studio_tasks import build_workspace, frame_choice, rect, rle_of_alpha, soft_alpha


def iou(a, b) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def edited(rid: str, mask: np.ndarray, label: str, seed: int) -> dict:
    """A result as the editor saves a region the annotator painted: anti-aliased alpha at its edges."""
    h, w = mask.shape
    return {"id": rid, "type": "brushlabels", "from_name": "mask", "to_name": "image", "origin": "prediction-changed",
            "original_width": w, "original_height": h, "image_rotation": 0,
            "value": {"format": "rle", "rle": rle_of_alpha(soft_alpha(mask, seed)), "brushlabels": [label]}}


@pytest.fixture(scope="module")
def round_trip(studio_server):
    """The workspace pushed and annotated; returns what the annotators did (all the test needs)."""
    srv = studio_server
    root = srv.ws / "c2-pull"
    root.mkdir()
    path = build_workspace(root, clips=2)
    env = {"LABEL_STUDIO_API_KEY": srv.api_key}
    r = cli("push", path, "--url", srv.url, "-q", env=env)
    assert r.returncode == 0, r.stderr
    learn_prediction_ids(path, srv.url, srv.api_key)  # push records predictions without their ids
    ws = open_workspace(path)
    try:
        pid = ws.catalog.studio_project(srv.url)
        key = f"{srv.url}#{pid}"
        tasks = ws.catalog.studio_tasks(key)
        preds = {}  # the prediction holding the object: in a second the audio says is silent, the one apart
        for (tid, mv), p in sorted(ws.catalog.studio_predictions(key).items(), key=lambda kv: kv[0][1]):
            if tid not in preds or not ws.catalog.prediction_versions(key, preds[tid][0]):
                preds[tid] = (p, mv)
        prop = {}
        for (clip, s), tid in tasks.items():
            (v,) = ws.catalog.versions_by_id(ws.catalog.prediction_versions(key, preds[tid][0]))
            prop[(clip, s)] = (load_mask(ws, v.path), v.category)
        a, b = (c.clip_id for c in ws.catalog.clips())
    finally:
        ws.close()
    second_key = make_user(srv, "second.annotator@example.com")
    first, second = srv.client(), sdk_client(srv.url, second_key)

    def shown(t):  # the prediction result the editor shows, with region ids o<fid>
        return [dict(x) for x in first.predictions.get(id=preds[t][0]).result]

    def annotate(client, clip, s, result, lead, cancelled=False):
        t = tasks[(clip, s)]
        return client.annotations.create(id=t, result=result, lead_time=lead, was_cancelled=cancelled,
                                         parent_prediction=preds[t][0]).id

    cat = prop[(a, 0)][1]
    fin = {}
    acc = [dict(x, origin="prediction") for x in shown(tasks[(a, 0)])]
    ids = {"accept": annotate(first, a, 0, acc, 11.5)}
    fin[(a, 0)] = prop[(a, 0)][0]
    fin[(a, 1)] = prop[(a, 1)][0] | rect(0, 0, 40, 30)
    ids["edit"] = annotate(first, a, 1, [edited("o0", fin[(a, 1)], cat, 1)], 30.0)
    fin[(a, 2)] = prop[(a, 2)][0] & ~rect(0, 0, 160, 70)
    ids["erase"] = annotate(first, a, 2, [edited("o0", fin[(a, 2)], cat, 2)], 21.0)
    silent = [dict(x, origin="prediction") for x in shown(tasks[(a, 3)])] + [frame_choice("no sounding object")]
    ids["silent"] = annotate(first, a, 3, silent, 4.0)
    ids["first"] = annotate(first, a, 4, [dict(x, origin="prediction") for x in shown(tasks[(a, 4)])], 9.0)
    time.sleep(0.05)
    fin[(a, 4)] = rect(30, 20, 110, 90)
    ids["second"] = annotate(second, a, 4, [edited("o0", fin[(a, 4)], cat, 4)], 15.0)
    ids["cancel"] = annotate(first, b, 0, [], 2.0, cancelled=True)
    unusable = [dict(x, origin="prediction") for x in shown(tasks[(b, 1)])] + [frame_choice("unusable frame")]
    ids["unusable"] = annotate(second, b, 1, unusable, 6.0)
    # the first pull, here: every test of this module starts from the pulled workspace, in any order
    pulled = cli("pull", path, "--url", srv.url, env=env)
    assert pulled.returncode == 0, pulled.stderr
    return {"path": path, "srv": srv, "key": key, "tasks": tasks, "preds": preds, "prop": prop, "fin": fin,
            "a": a, "b": b, "ids": ids, "second": second, "second_key": second_key, "cat": cat, "pulled": pulled}


def _dump(path) -> dict:
    db = sqlite3.connect(path / "catalog.sqlite")
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
                for t in ("mask_versions", "mask_sets", "studio_reviews", "frame_flags", "objects", "expressions")}
    finally:
        db.close()


def test_pull_stores_exactly_the_submitted_masks_with_their_provenance(round_trip):
    rt = round_trip
    srv, path, a, b, ids = rt["srv"], rt["path"], rt["a"], rt["b"], rt["ids"]
    r = rt["pulled"]  # the fixture's pull
    assert "pull: 7 new annotations (6 masks), 1 cancelled (counted, not stored), 0 unchanged" in r.stdout
    assert "1 of the annotations mark their frame 'no sounding object'" in r.stdout
    assert "1 of the annotations mark their frame 'unusable'" in r.stdout
    assert r.stdout.rstrip().endswith(f"next: avs-tools qa {path}  (then: avs-tools export {path} OUT)")
    ws = open_workspace(path)
    try:
        rows = {x.annotation_id: x for x in ws.catalog.studio_reviews(project_key=rt["key"])}
        assert set(rows) == {v for k, v in ids.items() if k != "later"} and rows[ids["cancel"]].status == "cancelled"
        assert rows[ids["cancel"]].regions == [] and rows[ids["silent"]].regions == []
        got = {v.second: v for v in latest_masks(ws, a, ("review",))}
        assert sorted(got) == [0, 1, 2, 4]  # second 3: no sounding object, an empty reviewed set
        assert ws.catalog.review_seconds(a) == {0, 1, 2, 3, 4} and ws.catalog.clip_flags(a) == {3: {"silent"}}
        assert ws.catalog.clip_flags(b) == {1: {"unusable"}}
        for s, v in got.items():
            assert np.array_equal(load_mask(ws, v.path), rt["fin"][(a, s)]), s
            t = rt["tasks"][(a, s)]
            ev = v.evidence
            assert (ev["task_id"], ev["parent_prediction"], ev["model_version"]) == (t, *rt["preds"][t])
            assert ev["alpha_threshold"] == 128 and v.kind == "review" and v.fid == 0
        assert got[0].evidence["origin"] == "prediction" and got[0].evidence["partial_alpha_pixels"] == 0
        assert got[1].evidence["origin"] == got[2].evidence["origin"] == "prediction-changed"
        assert got[1].evidence["partial_alpha_pixels"] > 0  # the editor-style edges were binarised at 128
        assert (got[1].evidence["lead_time"], got[1].author) == (30.0, srv.username)
        assert (got[4].author, got[4].evidence["annotation_id"], got[4].evidence["annotators"]) == (
            "second.annotator@example.com", ids["second"], 2)
        assert stage_of(ws.catalog, a, "pull").status == "done" and stage_of(ws.catalog, b, "pull").status == "partial"
        newest = max(x.ls_updated_at for x in rows.values())
        assert ws.catalog.pull_cursor(rt["key"]) >= newest  # the newest task save the pull saw
    finally:
        ws.close()


def test_qa_figures_equal_the_hand_computed_ones(round_trip):
    rt = round_trip
    a, p, f = rt["a"], {k: m for k, (m, _) in rt["prop"].items()}, rt["fin"]
    ws = open_workspace(rt["path"])
    try:
        rep = qa(ws)
    finally:
        ws.close()
    assert {k: rep.frames[k] for k in ("pushed", "reviewed", "pending", "silent", "unusable", "cancelled")} == {
        "pushed": 10, "reviewed": 6, "pending": 4, "silent": 1, "unusable": 1, "cancelled": 1}
    ious = [1.0, iou(p[(a, 1)], f[(a, 1)]), iou(p[(a, 2)], f[(a, 2)]), iou(p[(a, 4)], f[(a, 4)])]  # kept + edited
    (row,) = rep.by_backend  # second 3, marked silent: a deletion, not an IoU of 0
    assert (row["backend"], row["category"], row["proposed"], row["unchanged"], row["edited"], row["deleted_silent"],
            row["deleted"], row["added"]) == ("motion", rt["cat"], 5, 1, 3, 1, 0, 0)
    assert row["mean_iou"] == round(statistics.fmean(ious), 4) and row["share_unchanged"] == 0.2
    leads = [11.5, 30.0, 21.0, 4.0, 9.0, 15.0, 6.0]
    assert rep.time["total_s"] == sum(leads) and rep.time["per_reviewed_frame_s"] == round(sum(leads) / 6, 2)
    assert rep.agreement["frames"] == 1 and rep.agreement["mean_iou"] == round(iou(p[(a, 4)], f[(a, 4)]), 4)
    assert rep.agreement["per_frame"][0]["chosen"] == "second.annotator@example.com"
    assert rep.most_changed[0].second == 3 and rep.most_changed[0].iou == 0.0


def test_export_uses_the_reviews_and_honours_the_unusable_frame(round_trip, tmp_path):
    rt = round_trip
    srv, path, a, b = rt["srv"], rt["path"], rt["a"], rt["b"]
    out = tmp_path / "rel"
    r = cli("export", path, out, "-q")
    assert r.returncode == 0, r.stderr
    (d,) = (out / "Multi-sources" / "ms3_data" / "gt_masks").glob(f"*/{a}")
    for s in range(5):
        want = rt["fin"].get((a, s), np.zeros((120, 160), bool))
        want = np.asarray(Image.fromarray(want.astype(np.uint8) * 255).resize((224, 224), Image.NEAREST)) > 0
        assert np.array_equal(np.asarray(Image.open(d / f"{a}_{s + 1}.png")) > 0, want), s
    assert not list(out.rglob(f"*{b}*"))
    card = (out / "DATASET_CARD.md").read_text()
    assert f"marked a frame 'unusable frame': 1 ({b} (second 1))" in card
    # no token anywhere: the catalog, the release, the workspace's files (but the server's own token file)
    for key in (srv.api_key, rt["second_key"]):
        for p in [*path.rglob("*"), *out.rglob("*")]:
            if p.is_file():
                assert key.encode() not in p.read_bytes(), p


def test_repull_changes_nothing_and_pull_is_incremental(round_trip, tmp_path):
    """On a copy of the pulled workspace: the annotation it adds on the server never reaches the others'."""
    rt = round_trip
    srv = rt["srv"]
    path = tmp_path / "copy"
    shutil.copytree(rt["path"], path, ignore=shutil.ignore_patterns(".lock"))
    before = _dump(path)
    r = cli("pull", path, "--url", srv.url, "-q", env={"LABEL_STUDIO_API_KEY": srv.api_key})
    assert r.returncode == 0 and r.stdout.startswith("pull: 0 new annotations"), (r.stdout, r.stderr)
    assert _dump(path) == before
    # a later annotation: only its task is listed (no margin), and only it is stored
    t = rt["tasks"][(rt["b"], 2)]
    new = rt["second"].annotations.create(id=t, result=[edited("o0", rect(5, 5, 60, 60), rt["cat"], 9)],
                                          lead_time=3.0, parent_prediction=rt["preds"][t][0]).id
    rt["ids"]["later"] = new  # the Ctrl-C test below pulls everything again
    ws = open_workspace(path, lock="pull")
    try:
        res = pull(ws, connect(ws, srv.url, srv.api_key), PullOptions(margin_s=0))
        assert (res.tasks, res.new, res.unchanged) == (1, 1, 0)
        assert {x.annotation_id for x in ws.catalog.studio_reviews([rt["b"]])} >= {new}
        again = pull(ws, connect(ws, srv.url, srv.api_key), PullOptions(margin_s=0))
        assert (again.tasks, again.new) == (0, 0)
    finally:
        ws.close()


# -- errors and Ctrl-C ---------------------------------------------------------------------------------------
def _one_line(r, code: int, *needles: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_pull_errors_are_one_line(studio_server, tmp_path):
    srv = studio_server
    ws = tmp_path / "never-pushed"
    assert cli("init", ws, "--recipe", "avsbench-ms3").returncode == 0
    env = {"LABEL_STUDIO_API_KEY": srv.api_key, "LABEL_STUDIO_URL": ""}
    _one_line(cli("pull", ws, "--url", srv.url, env=env), 2, f"has no project on the Label Studio server at {srv.url}",
              f"avs-tools push {ws}")
    _one_line(cli("pull", ws, "--url", srv.url, env={"LABEL_STUDIO_API_KEY": "0" * 40}), 1, "refused the API key")
    _one_line(cli("pull", ws, "--url", "http://127.0.0.1:9", env=env), 1, "cannot reach Label Studio at "
              "http://127.0.0.1:9")
    _one_line(cli("pull", ws, env={"LABEL_STUDIO_URL": "", "LABEL_STUDIO_API_KEY": ""}), 2, "no Label Studio server")
    _one_line(cli("pull", ws, "--url", srv.url, "--null-expression", "c1=the violin", env=env), 2,
              "only Ref-AVS workspaces have null expressions")
    _one_line(cli("pull", ws, "--url", srv.url, "--null-expression", "no-equals-sign", env=env), 2, "CLIP=TEXT")
    refavs = tmp_path / "refavs"
    assert cli("init", refavs, "--recipe", "ref-avs").returncode == 0
    _one_line(cli("pull", refavs, "--url", srv.url, "--null-expression", "nope=the violin", env=env), 2, "no clip nope")


class _SlowProxy:
    """A loopback HTTP proxy to the real server that holds the answer to every task listing past page 2."""

    def __init__(self, target: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        proxy = self
        self.held = threading.Event()
        self.slow = True

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _go(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                late = any(f"page={n}&" in self.path + "&" for n in range(3, 9))
                if proxy.slow and self.path.startswith("/api/tasks") and late:
                    proxy.held.set()
                    time.sleep(30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = httpx.request(self.command, target + self.path, headers=headers, content=body, timeout=60)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _go

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_ctrl_c_keeps_the_finished_batches_and_the_next_pull_finishes(round_trip, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import psutil

    rt = round_trip
    ws = tmp_path / "copy"
    shutil.copytree(rt["path"], ws, ignore=shutil.ignore_patterns(".lock"))
    proxy = _SlowProxy(rt["srv"].url)
    try:
        w = open_workspace(ws)
        try:
            pid = w.catalog.studio_project(rt["srv"].url)
            w.catalog.set_studio_project(proxy.url, pid)  # the same server, reached through the proxy
        finally:
            w.close()
        script = ("import sys; import avsbench_tools.studio.pull as p; p.PAGE = 2; p.BATCH = 2; "
                  "from avsbench_tools.cli import run; sys.exit(run(sys.argv[1:]))")
        env = dict(os.environ, LABEL_STUDIO_API_KEY=rt["srv"].api_key, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-c", script, "pull", str(ws), "--url", proxy.url, "-q"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        assert proxy.held.wait(120), "pull never asked for page 3"
        time.sleep(0.5)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130 and time.monotonic() - t0 < 5, (proc.returncode, out, err)
        assert "interrupted: 4 done" in err and "Traceback" not in err
        assert not [p for p in psutil.process_iter() if p.pid != proc.pid and _group(p) == proc.pid]
        key = f"{proxy.url}#{pid}"
        first4 = set(sorted(rt["tasks"].values())[:4])
        w = open_workspace(ws)
        try:
            kept = w.catalog.studio_reviews(project_key=key)
            assert {r.task_id for r in kept} == first4 and w.catalog.pull_cursor(key) is None
        finally:
            w.close()
        # the next pull finishes the work, skipping what was kept
        proxy.slow = False
        r = cli("pull", ws, "--url", proxy.url, env={"LABEL_STUDIO_API_KEY": rt["srv"].api_key})
        assert r.returncode == 0, r.stderr
        w = open_workspace(ws)
        try:
            every = {r.annotation_id for r in w.catalog.studio_reviews(project_key=key)}
            assert every == set(rt["ids"].values()) and w.catalog.pull_cursor(key) is not None
        finally:
            w.close()
        assert f", {len(kept)} unchanged, from 10 updated tasks" in r.stdout  # what Ctrl-C kept is not pulled again
    finally:
        proxy.close()


def _group(p) -> int | None:
    import os

    try:
        return os.getpgid(p.pid)
    except OSError:
        return None
