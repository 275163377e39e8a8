"""Campaigns with more than one annotator, on the run's real Label Studio server (issue #22 item 8).

push --overlap F sets Label Studio's own overlap settings; two real users then take tasks through the server's
label stream (GET /api/projects/ID/next/, as the editor does), so the server, not the test, decides which frames
the second annotator gets; qa reports their agreement per category and on the frame flags, on exactly the frames
annotated twice. push --order imports the new tasks by need of a human, as a sortable task field.
"""

from __future__ import annotations

import json

import httpx
import pytest

from avsbench_tools.catalog.reviews import UNUSABLE
from avsbench_tools.studio.convert import flags_to_studio
from avsbench_tools.workspace import open_workspace
from tests.helpers.studio_server import make_user
from tests.helpers.studio_tasks import brush, build_workspace, cli, rect


def _get(srv, path: str, key: str | None = None, **params):
    r = httpx.get(f"{srv.url}/{path}", params=params, headers={"Authorization": f"Token {key or srv.api_key}"},
                  timeout=120)
    return r


def _project(srv, path) -> dict:
    ws = open_workspace(path)
    try:
        ws_id = ws.catalog.studio_ws_id()
    finally:
        ws.close()
    rows = _get(srv, "api/projects/", page_size=1000).json()
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    (p,) = [p for p in rows if ws_id in (p.get("description") or "")]
    return _get(srv, f"api/projects/{p['id']}/").json()


def _tasks(srv, pid: int) -> list[dict]:
    d = _get(srv, "api/tasks/", project=pid, page_size=1000, fields="all").json()
    return sorted(d.get("tasks", d) if isinstance(d, dict) else d, key=lambda t: t["id"])


def _stream(srv, pid: int, key: str, decide) -> list[int]:
    """Annotate as the user of `key` every task the server's label stream hands out, until it has none."""
    done = []
    while True:
        r = _get(srv, f"api/projects/{pid}/next/", key)
        if r.status_code == 404:
            return done
        assert r.status_code == 200, r.text[:300]
        task = r.json()
        assert task["id"] not in done, "the label stream served a task twice"
        result, lead = decide(task)
        made = httpx.post(f"{srv.url}/api/tasks/{task['id']}/annotations/", json={"result": result, "lead_time": lead},
                          headers={"Authorization": f"Token {key}"}, timeout=120)
        assert made.status_code == 201, made.text[:300]
        done.append(task["id"])
        assert len(done) <= 50


def _objects(task: dict) -> list[dict]:
    """The objects an annotator paints: the proposed ones (the prediction holding objects, as the editor shows it),
    or, on a frame without a proposed object, a box drawn by hand that both annotators draw alike."""
    preds = [p for p in task.get("predictions") or [] if any(x["type"] == "brushlabels" for x in p["result"])]
    if not preds:
        x = 10 + 7 * (task["id"] % 10)
        return [brush("m1", rect(x, 20, x + 40, 70), "guitar")]
    best = max(preds, key=lambda p: p.get("score") or 0)
    return [dict(x, origin="prediction") for x in best["result"] if x["type"] == "brushlabels"]


def test_overlap_gives_a_share_of_frames_to_two_annotators_and_qa_reports_their_agreement(studio_server):
    srv = studio_server
    root = srv.ws / "h2-overlap"
    root.mkdir()
    path = build_workspace(root, clips=2, seed=21)
    env = {"LABEL_STUDIO_API_KEY": srv.api_key}
    for bad in ("1.2", "-0.1", "nan"):
        r = cli("push", path, "--url", srv.url, "--overlap", bad, env=env)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"--overlap {bad}" in r.stderr and "from 0 to 1" in r.stderr
    r = cli("push", path, "--url", srv.url, "--overlap", "0.5", env=env)
    assert r.returncode == 0, r.stderr
    assert "50% of the project's tasks go to two annotators" in r.stdout
    proj = _project(srv, path)
    assert (proj["maximum_annotations"], proj["overlap_cohort_percentage"]) == (2, 50)
    tasks = _tasks(srv, proj["id"])
    twice = {t["id"] for t in tasks if t["overlap"] == 2}
    assert len(tasks) >= 6 and len(twice) == round(len(tasks) / 2), [t["overlap"] for t in tasks]
    other = next(c for c in ("piano", "dog", "car", "helicopter") if c in proj["label_config"])

    a_key, b_key = make_user(srv, "h2.first@example.org"), make_user(srv, "h2.second@example.org")
    got_a = _stream(srv, proj["id"], a_key, lambda t: (_objects(t), 3.0))  # accepts every proposal as it is
    assert sorted(got_a) == sorted(t["id"] for t in tasks)  # the first annotator's stream: every task

    plan: dict[int, str] = {}

    def second(task):  # on one frame deletes everything, on one relabels, on one marks unusable; agrees elsewhere
        objs = _objects(task)
        todo = [k for k in ("delete", "relabel", "unusable") if k not in plan.values()]
        action = todo[0] if todo else "same"
        plan[task["id"]] = action
        if action == "delete":
            return [], 5.0
        if action == "relabel":
            return [dict(x, value={**x["value"], "brushlabels": [other]}) for x in objs], 5.0
        if action == "unusable":
            return objs + flags_to_studio([UNUSABLE]), 5.0
        return objs, 5.0

    got_b = _stream(srv, proj["id"], b_key, second)
    assert set(got_b) == twice  # the server gave the second annotator exactly the overlap cohort
    assert sorted(plan.values()).count("same") == len(twice) - 3

    pulled = cli("pull", path, "--url", srv.url, env=env)
    assert pulled.returncode == 0, pulled.stderr
    rep = json.loads(cli("qa", path, "--json").stdout)
    ag = rep["agreement"]
    assert (ag["frames"], ag["pairs"]) == (len(twice), len(twice))  # exactly the frames annotated twice
    n = len(twice)
    cats = {c["category"]: c for c in ag["by_category"]}
    # every overlap frame holds guitar objects for the first annotator: IoU 1 where the second agreed (the same
    # RLE), 0 where it deleted them or relabelled them (no guitar left); the relabelled frame is the only one
    # with the other category, which the first annotator did not paint: 0
    assert cats["guitar"]["pairs"] == n and cats["guitar"]["mean_iou"] == round((n - 2) / n, 4)
    assert cats["guitar"]["min_iou"] == 0.0
    assert (cats[other]["pairs"], cats[other]["mean_iou"]) == (1, 0.0)
    assert ag["flags"]["unusable"] == {"pairs": n, "both": 0, "neither": n - 1, "disagree": 1,
                                       "agreement": round((n - 1) / n, 4)}
    assert ag["flags"]["silent"]["disagree"] == 0 and ag["flags"]["silent"]["pairs"] == n
    # the annotator time per frame (lead_time) is recorded and printed
    t = rep["time"]
    assert t["annotations_timed"] == len(tasks) + n
    assert t["mean_s"] == round((3.0 * len(tasks) + 5.0 * n) / (len(tasks) + n), 2)
    text = cli("qa", path).stdout
    assert f"frames annotated by two or more: {n}): mean IoU" in text
    assert f"guitar           mean IoU {(n - 2) / n:.3f} (lowest 0.000) over {n} pairs" in text
    assert f"flag 'unusable': set alike in {n - 1} of {n} pairs (0 both, 1 only one)" in text
    assert "s per reviewed frame" in text

    r = cli("push", path, "--url", srv.url, "--overlap", "0", env=env)  # back to one annotator per frame
    assert r.returncode == 0 and "one annotator per task" in r.stdout, r.stderr
    proj = _project(srv, path)
    assert proj["maximum_annotations"] == 1


@pytest.fixture()
def ordered(studio_server):
    srv = studio_server
    root = srv.ws / "h2-order"
    root.mkdir()
    path = build_workspace(root, clips=3, seed=8)
    r = cli("push", path, "--url", srv.url, "--order", env={"LABEL_STUDIO_API_KEY": srv.api_key})
    assert r.returncode == 0, r.stderr
    return srv, path, r


def test_order_imports_the_frames_that_need_a_human_first_as_a_sortable_field(ordered):
    srv, path, r = ordered
    proj = _project(srv, path)
    tasks = _tasks(srv, proj["id"])
    assert f"{len(tasks)} new tasks imported by priority" in r.stdout
    prio = [t["data"]["priority"] for t in tasks]  # by task id: the import order
    assert prio == sorted(prio, reverse=True) and len(set(prio)) > 1, prio
    assert all(0 <= p <= 100 and "mask change" in t["data"]["priority_why"] for p, t in zip(prio, tasks, strict=True))
    # the number the server holds is the documented one, recomputed here from the catalog
    from avsbench_tools.studio.campaign import priorities
    from avsbench_tools.studio.push import _plan

    ws = open_workspace(path)
    try:
        want = priorities(ws, _plan(ws, ws.catalog.clip_ids_done("sample")))
    finally:
        ws.close()
    assert {(t["data"]["clip_id"], t["data"]["second"]): t["data"]["priority"] for t in tasks} == \
        {k: v["priority"] for k, v in want.items()}
    # a column of the Data Manager, and the label stream serves the highest priority first
    cols = _get(srv, "api/dm/columns/", project=proj["id"]).json()["columns"]
    assert any(c.get("id") == "priority" and c.get("parent") == "data" for c in cols), [c.get("id") for c in cols]
    assert proj["sampling"] == "Sequential sampling"
    first = _get(srv, f"api/projects/{proj['id']}/next/").json()
    assert first["data"]["priority"] == max(prio)
    # tasks already there keep their place; their field is brought up to date by the next push --order
    t = tasks[-1]
    httpx.patch(f"{srv.url}/api/tasks/{t['id']}/", json={"data": {**t["data"], "priority": -1}},
                headers={"Authorization": f"Token {srv.api_key}"}, timeout=60).raise_for_status()
    again = cli("push", path, "--url", srv.url, "--order", env={"LABEL_STUDIO_API_KEY": srv.api_key})
    assert again.returncode == 0, again.stderr
    assert "the priority of 1 tasks already on the server set or updated" in again.stdout
    assert [x["data"]["priority"] for x in _tasks(srv, proj["id"])] == prio

    # what the label stream follows: task ids (the import order) by default, every task's priority from the tab
    # push --order makes. The highest and the lowest task deleted on the server come back with the next push --order,
    # imported highest first but after every task already there
    from avsbench_tools.studio.campaign import ORDER_TAB

    for x in (tasks[0], tasks[-1]):
        httpx.delete(f"{srv.url}/api/tasks/{x['id']}/", headers={"Authorization": f"Token {srv.api_key}"},
                     timeout=60).raise_for_status()
    again = cli("push", path, "--url", srv.url, "--order", env={"LABEL_STUDIO_API_KEY": srv.api_key})
    assert again.returncode == 0, again.stderr
    assert "2 new tasks imported by priority" in again.stdout and f"tab '{ORDER_TAB}'" in again.stdout, again.stdout
    now = _tasks(srv, proj["id"])
    assert [x["data"]["priority"] for x in now] == prio[1:-1] + [prio[0], prio[-1]]
    assert _get(srv, f"api/projects/{proj['id']}/next/").json()["id"] == tasks[1]["id"]  # by id
    views = _get(srv, "api/dm/views/", project=proj["id"]).json()
    (tab,) = [v for v in views if v["data"].get("title") == ORDER_TAB]
    served = _get(srv, f"api/projects/{proj['id']}/next/", view=tab["id"]).json()
    assert served["data"]["priority"] == max(prio) > now[0]["data"]["priority"] or prio[0] == prio[1]
    assert served["id"] == now[-2]["id"] or prio[0] == prio[1]


@pytest.mark.parametrize("level, relative, margin", [
    (-20.0, 30.0, 20.0),  # sounding, 20 dB over the 10 dB rule
    (-40.0, 12.0, 2.0),  # sounding by 2 dB
    (-40.0, 8.0, 2.0),  # silent, 2 dB short of the rule
    (-25.0, 2.0, 5.0),  # sounding only as louder than -30 dBFS: 5 dB from silent
    (-35.0, 2.0, 5.0),  # silent: 5 dB short of -30 dBFS, 8 dB short of the rule
    (-70.0, 5.0, 10.0),  # below -60 dBFS: 10 dB to rise above it, which also puts it 15 dB over the floor
])
def test_the_sound_margin_is_the_db_that_flip_the_silence_decision(level, relative, margin):
    from avsbench_tools.studio.campaign import sound_margin

    assert sound_margin(level, relative) == margin
