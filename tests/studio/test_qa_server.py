"""qa after the right review, through the run's real Label Studio server: a silent frame's proposal deleted by
"no sounding object", a wrong label fixed, a frame accepted as it was. The lead must read two good decisions,
not a mean IoU of 0.67 and nothing about the label."""

from __future__ import annotations

import json

import httpx
import pytest

from avsbench_tools.workspace import open_workspace
from tests.helpers.studio_tasks import build_workspace, cli, frame_choice


def _tasks(srv, ws_id: str) -> list[dict]:
    """The workspace's tasks on the server, with their predictions (plain JSON API)."""
    h = {"Authorization": f"Token {srv.api_key}"}
    projects = httpx.get(f"{srv.url}/api/projects/", params={"page_size": 1000}, headers=h, timeout=60).json()
    rows = projects.get("results", projects) if isinstance(projects, dict) else projects
    (pid,) = [p["id"] for p in rows if ws_id in (p.get("description") or "")]
    tasks = httpx.get(f"{srv.url}/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"},
                      headers=h, timeout=120).json()
    return tasks.get("tasks", tasks) if isinstance(tasks, dict) else tasks


@pytest.fixture(scope="module")
def reviewed(studio_server):
    srv = studio_server
    root = srv.ws / "b-qa"
    root.mkdir()
    path = build_workspace(root, clips=1)
    env = {"LABEL_STUDIO_API_KEY": srv.api_key}
    r = cli("push", path, "--url", srv.url, "-q", env=env)
    assert r.returncode == 0, r.stderr
    ws = open_workspace(path)
    try:
        ws_id = ws.catalog.studio_ws_id()
        clip = sorted(c.clip_id for c in ws.catalog.clips())[0]
        other = next(c for c in ws.recipe.categories if c != "guitar")
    finally:
        ws.close()
    by_second = {t["data"]["second"]: t for t in _tasks(srv, ws_id) if t["data"]["clip_id"] == clip}
    client = srv.client()

    def with_object(second: int) -> dict:  # in a silent second, the prediction apart that holds the silent object
        (pred,) = [p for p in by_second[second]["predictions"] if any(x["type"] == "brushlabels" for x in p["result"])]
        return pred

    def annotate(second: int, result: list[dict]) -> None:
        t = by_second[second]
        client.annotations.create(id=t["id"], result=result, lead_time=5.0, parent_prediction=with_object(second)["id"])

    def shown(second: int, **value) -> list[dict]:
        pred = with_object(second)
        assert [x["value"]["brushlabels"] for x in pred["result"] if x["type"] == "brushlabels"] == [["guitar"]]
        return [dict(x, origin="prediction", value={**x["value"], **value}) if x["type"] == "brushlabels" else dict(x)
                for x in pred["result"]]  # the audio's second region too: pull ignores it

    annotate(0, shown(0) + [frame_choice("no sounding object")])  # the object is silent here: its proposal goes
    annotate(1, [dict(x, origin="prediction-changed") for x in shown(1, brushlabels=[other])])  # a wrong label fixed
    annotate(2, shown(2))  # right as proposed
    pulled = cli("pull", path, "--url", srv.url, env=env)
    assert pulled.returncode == 0, pulled.stderr
    return path, clip, other


def test_qa_reads_the_right_review_as_right(reviewed):
    path, clip, other = reviewed
    r = cli("qa", path, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    got = {o["second"]: (o["outcome"], o["iou"], o["relabelled_to"]) for o in rep["objects"] if o["clip_id"] == clip}
    assert got == {0: ("deleted_silent", None, None), 1: ("kept", 1.0, other), 2: ("kept", 1.0, None)}
    (row,) = rep["by_backend"]
    assert {k: row[k] for k in ("category", "proposed", "unchanged", "kept", "edited", "relabelled", "deleted_silent",
                                "deleted", "added", "mean_iou")} == {
        "category": "guitar", "proposed": 3, "unchanged": 1, "kept": 2, "edited": 0, "relabelled": 1,
        "deleted_silent": 1, "deleted": 0, "added": 0, "mean_iou": 1.0}  # the deletion is no bad outline
    assert rep["relabels"] == [{"from": "guitar", "to": other, "objects": 1}]
    assert rep["agreement"]["frames"] == 0  # one annotator
    changed = [(c["clip_id"], c["second"]) for c in rep["most_changed"]]
    assert changed == [(clip, 0), (clip, 1)]  # second 2 changed nothing: not listed
    assert rep["most_changed"][1]["changed_pixels"] == 0 and rep["most_changed"][1]["relabels"] == [f"guitar -> {other}"]
    text = cli("qa", path)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "None" not in out and f"relabelled: guitar -> {other} 1" in out
    assert f"second 1: IoU 1.000, 0 pixels changed, relabelled guitar -> {other}" in out
    assert "second 2:" not in out and "agreement" not in out
