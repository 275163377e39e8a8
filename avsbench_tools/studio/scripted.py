"""A scripted annotator: reviews a few pushed tasks through the Label Studio API, as a demonstration of the
review loop (`make demo`), never as a substitute for a person.

It works as its own Label Studio user, SCRIPTED_EMAIL (signed up through the server's sign-up form on first
use; its password and token are kept in WS/studio/scripted-annotator, mode 0600), so every annotation it
makes is recorded as that user's by pull and shown under that name by qa. Its lead_time is the time the
script really spent deciding the task (reading the proposal, building the result), not a made-up human time.

Its decisions, each on the first task still without annotations that qualifies (tasks in clip, second order;
a project it reviewed before gets nothing more, so a re-run adds nothing):
- accept: a second the sample stage found sounding, a proposal with at least one object: submitted unchanged;
- edit: the same kind of task: its first object grown by EDIT_GROW_PX pixels (the rest unchanged);
- delete_silent: a second the sample stage found silent, whose proposals hold an object: every object is
  deleted and the frame marked "no sounding object";
- relabel (only when the recipe is multi-source, where a second category in a clip is allowed): its first
  object given the next label of the project's config.
Results are built with the project's own conversion (studio/convert.py: from_studio, to_studio,
flags_to_studio); requests go through studio/project.py's Api.

    python -m avsbench_tools.studio.scripted WS [--url URL --api-key KEY]
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from avsbench_tools.errors import AvsError, UsageError
from avsbench_tools.fsutil import atomic_write_private

SCRIPTED_EMAIL = "scripted-annotator@avs-tools.invalid"
SECRETS_FILE = "scripted-annotator"  # in WS/studio (0700), mode 0600
EDIT_GROW_PX = 2
ACTIONS = ("accept", "edit", "delete_silent", "relabel")
_REGION = re.compile(r"^o(\d+)$")


@dataclass
class Decision:
    """One scripted review: which task, what was done, what was sent."""

    action: str  # one of ACTIONS
    task_id: int
    clip_id: str
    second: int
    prediction_id: int
    result: list[dict]
    what: str  # one line, e.g. "object 3 grown by 2 px (812 -> 1,020 pixels)"
    lead_time: float = 0.0
    annotation_id: int | None = None

    def line(self) -> str:
        return (f"scripted annotator ({SCRIPTED_EMAIL}): {self.action:<13} {self.clip_id} second {self.second}: "
                f"{self.what} (annotation {self.annotation_id}, {self.lead_time:.2f} s)")


# -- decisions (pure: task JSON in, results out) ---------------------------------------------------------------
def _brush(pred: dict) -> list[dict]:
    return [r for r in pred.get("result") or [] if r.get("type") == "brushlabels"]


def _fid(result: dict) -> int:
    m = _REGION.match(str(result.get("id") or ""))
    if not m:
        raise ValueError(f"region {result.get('id')!r} is not a proposed object (o<fid>)")
    return int(m.group(1))


def _with_regions(task: dict) -> list[dict]:
    """The task's predictions holding at least one object, highest score first."""
    preds = [p for p in task.get("predictions") or [] if _brush(p)]
    return sorted(preds, key=lambda p: -(p.get("score") if p.get("score") is not None else 1.0))


def _shape(task: dict, region: dict) -> tuple[int, int]:
    d = task.get("data") or {}
    return int(d.get("height") or region["original_height"]), int(d.get("width") or region["original_width"])


def _prediction_origin(results: list[dict]) -> list[dict]:
    return [dict(r, origin="prediction") for r in results if r.get("type") != "choices"] + \
        [r for r in results if r.get("type") == "choices"]


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """`mask` dilated by `px` pixels (4-neighbour steps), the edit a reviewer makes to an outline too tight."""
    out = np.asarray(mask, bool).copy()
    for _ in range(px):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def accept(task: dict) -> tuple[dict, list[dict], str]:
    pred = _with_regions(task)[0]
    return pred, _prediction_origin(pred["result"]), f"accepted unchanged ({_n(len(_brush(pred)), 'object')})"


def edit(task: dict, px: int = EDIT_GROW_PX) -> tuple[dict, list[dict], str]:
    from avsbench_tools.studio.convert import from_studio, to_studio

    pred = _with_regions(task)[0]
    first = _brush(pred)[0]
    shape, fid = _shape(task, first), _fid(first)
    obj = from_studio(first, int(task["data"]["second"]), fid, shape)
    grown = grow(obj.mask, px)
    from avsbench_tools.masks import box_of

    new = to_studio(replace(obj, mask=grown, box=box_of(grown)), obj.category, shape)
    new["origin"] = "prediction-changed"
    rest = [r for r in _prediction_origin(pred["result"]) if r.get("id") != first.get("id")]
    return pred, [new, *rest], (f"object {fid} grown by {px} px ({int(obj.mask.sum()):,} -> "
                                f"{int(grown.sum()):,} pixels)")


def delete_silent(task: dict) -> tuple[dict, list[dict], str]:
    from avsbench_tools.catalog.reviews import SILENT
    from avsbench_tools.studio.convert import flags_to_studio

    pred = max(_with_regions(task), key=lambda p: len(_brush(p)))
    fids = [str(_fid(r)) for r in _brush(pred)]
    return pred, flags_to_studio([SILENT]), (f"silent second: {'object' if len(fids) == 1 else 'objects'} "
                                             f"{', '.join(fids)} deleted, marked no sounding object")


def relabel(task: dict, labels: list[str]) -> tuple[dict, list[dict], str]:
    pred = _with_regions(task)[0]
    first = _brush(pred)[0]
    old = (first["value"].get("brushlabels") or [None])[0]
    others = [x for x in labels if x != old]
    if not others:
        raise ValueError("the project has one label: nothing to relabel to")
    new = labels[(labels.index(old) + 1) % len(labels)] if old in labels else others[0]
    changed = dict(first, origin="prediction-changed", value={**first["value"], "brushlabels": [new]})
    rest = [r for r in _prediction_origin(pred["result"]) if r.get("id") != first.get("id")]
    return pred, [changed, *rest], (f"object {_fid(first)} relabelled {old} -> {new} (to show the action: the script "
                                    "does not know the right label)")


def plan(tasks: list[dict], silent: dict[str, set[int]], labels: list[str], multi_source: bool) -> list[Decision]:
    """The scripted decisions on these tasks (each task's "data" has clip_id and second; "predictions" their
    results; "total_annotations" or "annotations" how many it has). silent: {clip: seconds the sample stage
    found silent}. At most one task per action; an action no task qualifies for is left out."""
    todo = [t for t in tasks if not (t.get("total_annotations") or len(t.get("annotations") or []))
            and _with_regions(t)]
    todo.sort(key=lambda t: (str(t["data"]["clip_id"]), int(t["data"]["second"]), int(t["id"])))
    wanted = [a for a in ACTIONS if a != "relabel" or (multi_source and len(labels) > 1)]
    out, used = [], set()
    for action in wanted:
        for t in todo:
            d = t["data"]
            quiet = int(d["second"]) in silent.get(str(d["clip_id"]), set())
            if t["id"] in used or quiet != (action == "delete_silent"):
                continue
            t0 = time.perf_counter()
            pred, result, what = (relabel(t, labels) if action == "relabel" else
                                  {"accept": accept, "edit": edit, "delete_silent": delete_silent}[action](t))
            out.append(Decision(action, int(t["id"]), str(d["clip_id"]), int(d["second"]), int(pred["id"]), result,
                                what, round(time.perf_counter() - t0, 3)))
            used.add(t["id"])
            break
    return out


# -- the scripted user -----------------------------------------------------------------------------------------
def scripted_user(url: str, ws_root: Path) -> str:
    """The scripted annotator's API token on the server at `url`: logged in with the password kept in
    WS/studio/SECRETS_FILE, signed up (once per server) when that fails or there is none yet."""
    import httpx

    folder = Path(ws_root) / "studio"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / SECRETS_FILE
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    password = saved.get("password")
    if not password:  # kept before the account is made: no account without its password on disk
        password = secrets.token_urlsafe(16)
        atomic_write_private(path, json.dumps({"email": SCRIPTED_EMAIL, "password": password}) + "\n")
    try:
        with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as s:
            for page in ("/user/login/", "/user/signup/") if saved else ("/user/signup/", "/user/login/"):
                form = s.get(page)
                m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
                if form.status_code != 200 or not m:
                    raise AvsError(f"Label Studio at {url}: its {page} page answered HTTP {form.status_code}")
                r = s.post(page, data={"csrfmiddlewaretoken": m.group(1), "email": SCRIPTED_EMAIL,
                                       "password": password}, headers={"Referer": url + page})
                if r.status_code == 302:
                    break
            else:
                raise AvsError(f"Label Studio at {url} refused the scripted annotator {SCRIPTED_EMAIL} (sign-up and "
                               f"log-in; its password is in {path})")
            r = s.get("/api/current-user/token")
            if r.status_code != 200:
                raise AvsError(f"Label Studio at {url}: the scripted annotator's token: HTTP {r.status_code}")
            return r.json()["token"]
    except httpx.HTTPError as exc:
        raise AvsError(f"cannot reach Label Studio at {url} ({type(exc).__name__})") from None


def _user_id(who) -> int | None:
    """An annotation's `completed_by`: a user id, or the user as a dict."""
    return who.get("id") if isinstance(who, dict) else who


# -- running it ------------------------------------------------------------------------------------------------
def silent_seconds(ws) -> dict[str, set[int]]:
    """{clip: the sampled seconds whose sound activity (the sample stage's) says nothing sounds}."""
    from avsbench_tools.audio.activity import Activity

    out: dict[str, set[int]] = {}
    for c in ws.catalog.clips():
        audio = ws.catalog.audio(c.clip_id)
        if audio is None or not audio.activity:
            continue
        active = list(Activity.from_dict(audio.activity).active)
        out[c.clip_id] = {f.second for f in ws.catalog.frames(c.clip_id)
                          if not (f.second < len(active) and active[f.second])}
    return out


def annotate(ws, conn) -> list[Decision]:
    """Sign the scripted annotator in, plan its decisions on the workspace's pushed tasks and submit them."""
    from avsbench_tools.studio import labelling as config
    from avsbench_tools.studio.connect import Connection
    from avsbench_tools.studio.project import Api

    admin = Api(conn)
    ws_id = ws.catalog.studio_ws_id()
    project = admin.find_project(ws_id)
    if project is None:
        raise UsageError(f"Label Studio at {admin.url} holds no project of workspace {ws.root}: run avs-tools push first")
    token = scripted_user(admin.url, ws.root)
    api = Api(Connection(url=admin.url, api_key=token, source="scripted"))
    tasks, page = [], 1
    while True:
        d = api.request("GET", "api/tasks/", params={"project": project.id, "page": page, "page_size": 100,
                                                      "fields": "all"}, what="the task list", timeout=600)
        rows = d.get("tasks", []) if isinstance(d, dict) else d
        tasks += [t for t in rows if (t.get("data") or {}).get("ws_id") == ws_id]
        if not rows or not isinstance(d, dict) or page * 100 >= int(d.get("total", 0)):
            break
        page += 1
    me = api.request("GET", "api/current-user/whoami", what="the scripted annotator's user")["id"]
    if any(_user_id(a.get("completed_by")) == me for t in tasks for a in t.get("annotations") or []):
        return []  # it reviewed this project before: a re-run adds nothing
    decisions = plan(tasks, silent_seconds(ws), config.categories(ws.recipe), ws.recipe.multi_source)
    for dec in decisions:
        body = {"result": dec.result, "parent_prediction": dec.prediction_id, "lead_time": dec.lead_time}
        made = api.request("POST", f"api/tasks/{dec.task_id}/annotations/", body,
                           what=f"the scripted annotation of task {dec.task_id}")
        dec.annotation_id = int(made["id"])
    return decisions


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from avsbench_tools.studio.connect import connect
    from avsbench_tools.workspace import open_workspace

    ap = argparse.ArgumentParser(prog="python -m avsbench_tools.studio.scripted",
                                 description="A scripted annotator (a demonstration, not a person) reviews a few "
                                             "pushed tasks through the Label Studio API: accept, edit, delete in a "
                                             "silent second, relabel.")
    ap.add_argument("ws", type=Path)
    ap.add_argument("--url")
    ap.add_argument("--api-key")
    a = ap.parse_args(argv)
    try:
        ws = open_workspace(a.ws)
        try:
            conn = connect(ws, a.url, a.api_key)
            conn.check()
            decisions = annotate(ws, conn)
        finally:
            ws.close()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AvsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for dec in decisions:
        print(dec.line())
    if not decisions:
        print(f"scripted annotator ({SCRIPTED_EMAIL}): it reviewed this workspace's project before; nothing added")
        return 0
    done = {d.action for d in decisions}
    for action in ACTIONS:
        if action not in done:
            print(f"scripted annotator: no task still unannotated qualifies for {action!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
