"""pull: the annotations made in Label Studio -> reviewed mask versions in the catalog.

Incremental: the tasks whose `updated_at` is newer than the project's cursor (a Data Manager filter,
with a margin for saves that were in flight at the last pull), then, in each, the annotations not
pulled at their current `updated_at`. Idempotent: a second pull stores nothing and says "0 new".
Each batch of tasks is one transaction (the pulled annotations, the touched clips' review sets
rebuilt whole from every annotation pulled for them, the cursor with the last batch), so Ctrl-C
keeps what finished. The conversion rules are in `review_set.py`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from avsbench_tools import formats
from avsbench_tools.catalog.reviews import SILENT, UNUSABLE, StudioReview
from avsbench_tools.catalog.studio import project_key as make_project_key
from avsbench_tools.errors import AvsError, Interrupted, UsageError
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.progress import Progress, no_progress
from avsbench_tools.studio.review_set import (
    HAND_DRAWN_FIDS,
    SETTINGS,
    FidBook,
    TaskInfo,
    clip_reviews,
    ls_time,
    parse_annotation,
)
from avsbench_tools.workspace import Workspace

CURSOR_MARGIN_S = 5.0  # tasks saved this long before the cursor are listed again (saves in flight at the last
# pull: a task's updated_at is stamped before its transaction commits); their known annotations are skipped
BATCH = 100  # tasks per transaction
PAGE = 100  # tasks per request
_LS_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass
class PullOptions:
    """null_expressions: {clip: texts} to record as the clip's null expressions (Ref-AVS test_n; [] clears)."""

    null_expressions: dict[str, list[str]] = field(default_factory=dict)
    batch: int | None = None  # tasks per transaction (None: BATCH)
    margin_s: float = CURSOR_MARGIN_S


@dataclass
class PullResult:
    """What one pull did. `new`: annotations stored for the first time or changed since the last pull."""

    url: str
    project_key: str
    tasks: int = 0  # tasks listed (updated since the cursor)
    new: int = 0  # submitted annotations stored (new or changed)
    cancelled: int = 0  # cancelled (skipped) annotations counted, no masks stored
    unchanged: int = 0  # annotations already pulled at their current updated_at
    regions: int = 0  # brush regions stored as masks
    silent: int = 0  # new annotations marking their frame "no sounding object"
    unusable: int = 0  # new annotations marking their frame "unusable frame"
    dropped_regions: int = 0  # regions on frames marked "no sounding object" (not stored)
    foreign: int = 0  # tasks that are not this workspace's frames (other workspace, unknown clip)
    clips: int = 0  # clips whose review set was rebuilt
    clips_done: int = 0  # ... of which every pushed frame is reviewed
    null_expressions: int = 0  # clips whose null expressions were set
    cursor: str | None = None


def pull(ws: Workspace, conn, opts: PullOptions | None = None, progress: Progress | None = None) -> PullResult:
    """Pull the project's new and changed annotations from the server of `conn` (a studio.connect
    Connection) into the workspace's catalog; records stage "pull" per clip (done when every pushed frame
    of the clip is reviewed, else partial). UsageError when the workspace has no project on that server
    (push first) or an option names an unknown clip; Interrupted on Ctrl-C (finished batches are kept)."""
    opts = opts or PullOptions()
    progress = progress or no_progress
    _check_null_expressions(ws, opts.null_expressions)
    conn.check()
    pid = ws.catalog.studio_project(conn.url)
    if pid is None:
        raise UsageError(f"workspace {ws.root} has no project on the Label Studio server at {conn.url}: run "
                         f"`avs-tools push {ws.root}` first (or pass the --url it was pushed to)")
    key = make_project_key(conn.url, pid)
    res = PullResult(conn.url, key)
    client = conn.client()
    _check_project(client, pid, conn.url)
    if opts.null_expressions:
        ws.catalog.set_null_expressions(opts.null_expressions)
        res.null_expressions = len(opts.null_expressions)
    puller = _Puller(ws, key, res, lambda: _list_users(client))
    old_cursor = ws.catalog.pull_cursor(key)
    tasks = _list_tasks(client, pid, old_cursor, opts.margin_s)
    total, done = None, 0
    batch: list[dict] = []
    stamps: list[str] = []  # the listed tasks' updated_at: the newest is the next cursor
    try:
        for task, count in tasks:
            total = count if count is not None else total
            batch.append(task)
            stamps.append(ls_time(task.get("updated_at")))
            if len(batch) >= (opts.batch or BATCH):
                done += puller.store(batch, None)
                progress("pulling", done, max(total or 0, done), "")
                batch = []
        cursor = max([old_cursor or "", *stamps]) or None
        done += puller.store(batch, cursor)
        progress("pulling", done, max(total or 0, done), "")
    except KeyboardInterrupt:
        puller.discard_unsaved()
        raise Interrupted(done, max((total or 0) - done, 0), what="the annotations pulled so far are saved") from None
    except BaseException as exc:
        puller.discard_unsaved()
        _server_error(exc, conn.url, done)
        raise
    res.tasks, res.cursor = done, cursor
    return res


def _server_error(exc: BaseException, url: str, done: int) -> None:
    """Raise a one-line AvsError for a server that failed mid-pull (never its headers: they hold cookies)."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    kept = f"; the {done} tasks pulled before are saved, pull again to go on" if done else ""
    if isinstance(exc, ApiError):
        raise AvsError(f"Label Studio at {url} answered HTTP {exc.status_code} while pulling{kept}") from None
    if isinstance(exc, httpx.HTTPError):
        raise AvsError(f"lost Label Studio at {url} while pulling ({type(exc).__name__}){kept}") from None


def _check_null_expressions(ws: Workspace, given: dict[str, list[str]]) -> None:
    if not given:
        return
    f = formats.find(ws.recipe.format)
    if f is None or not f.per_object:
        raise UsageError(f"--null-expression: only Ref-AVS workspaces have null expressions ({ws.root} is "
                         f"{ws.recipe.format})")
    for clip_id in given:
        if ws.catalog.clip(clip_id) is None:
            raise UsageError(f"--null-expression {clip_id}=...: no clip {clip_id} in {ws.root}")


def _check_project(client, pid: int, url: str) -> None:
    from label_studio_sdk.core.api_error import ApiError

    try:
        client.projects.get(id=pid)
    except ApiError as exc:
        if exc.status_code == 404:
            raise UsageError(f"project {pid} of this workspace is gone from {url} (deleted by hand?): push again "
                             "to make a new one") from None
        raise AvsError(f"Label Studio at {url} answered HTTP {exc.status_code} for project {pid}") from None


def _filter_value(cursor: str, margin_s: float) -> str:
    t = datetime.strptime(cursor, _LS_TIME) if "." in cursor else datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ")
    return (t - timedelta(seconds=margin_s)).strftime(_LS_TIME)


def _list_tasks(client, pid: int, cursor: str | None, margin_s: float):
    """(task dict with annotations and predictions, total count) for each task updated since `cursor`."""
    query: dict = {"ordering": ["tasks:id"]}  # a stable order: a task saved during the pull does not move
    if cursor:
        query["filters"] = {"conjunction": "and", "items": [
            {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
             "value": _filter_value(cursor, margin_s)}]}
    from label_studio_sdk.core.api_error import ApiError

    seen, page = 0, 1
    while True:
        try:
            got = client.tasks.list(project=pid, fields="all", query=json.dumps(query), page=page, page_size=PAGE)
        except ApiError as exc:
            if exc.status_code == 404 and page > 1:  # past the last page ("Invalid page")
                return
            raise
        items = list(got.items or [])
        total = getattr(got.response, "total", None)
        for t in items:
            yield (t if isinstance(t, dict) else t.dict()), total
        seen += len(items)
        if not items or len(items) < PAGE or (total is not None and seen >= total):
            return
        page += 1


def _list_users(client) -> dict[int, str]:
    try:
        return {int(u.id): (u.email or u.username or str(u.id)) for u in client.users.list()}
    except Exception:  # noqa: BLE001 - a key that may not list users: annotations' created_username then
        return {}


def store_tasks(ws: Workspace, project_key: str, tasks: list[dict], users: dict[int, str] | None = None,
                cursor: str | None = None) -> PullResult:
    """Store Label Studio task dicts (as `tasks.list(fields="all")` or a JSON export gives them: data,
    annotations, predictions) of the project `project_key` in one transaction, as `pull` does with each
    batch; `users` maps user ids to emails (else the annotations' created_username is used)."""
    res = PullResult(project_key.rsplit("#", 1)[0], project_key)
    puller = _Puller(ws, project_key, res, lambda: dict(users or {}))
    try:
        res.tasks = puller.store(tasks, cursor)
    except BaseException:
        puller.discard_unsaved()
        raise
    res.cursor = cursor
    return res


class _Puller:
    """Turns batches of tasks into stored reviews; keeps the users, fid books and written files."""

    def __init__(self, ws: Workspace, key: str, res: PullResult, list_users):
        self.ws, self.key, self.res, self.list_users = ws, key, res, list_users
        self.ws_id = ws.catalog.studio_ws_id()
        self.tasks = {tid: cs for cs, tid in ws.catalog.studio_tasks(key).items()}
        self.pushed: dict[str, set[int]] = {}
        for clip_id, second in self.tasks.values():
            self.pushed.setdefault(clip_id, set()).add(second)
        self.stamps = ws.catalog.review_stamps(key)
        self.users: dict[int, str] | None = None
        self.frames: dict[str, dict[int, tuple[int, int]]] = {}
        self.written: list = []

    def _users(self) -> dict[int, str]:
        if self.users is None:
            self.users = self.list_users()
        return self.users

    def _where(self, task: dict) -> tuple[str, int] | None:
        """(clip, second) of a task of this workspace, else None."""
        data = task.get("data") or {}
        known = self.tasks.get(int(task["id"]))
        if known is not None:
            return known
        if data.get("ws_id") != self.ws_id:
            return None
        try:
            clip_id, second = str(data["clip_id"]), int(data["second"])
        except (KeyError, TypeError, ValueError):
            return None
        return (clip_id, second) if self.ws.catalog.clip(clip_id) is not None else None

    def _shape(self, clip_id: str, second: int) -> tuple[int, int] | None:
        if clip_id not in self.frames:
            self.frames[clip_id] = {}
            for f in self.ws.catalog.frames(clip_id):
                h, w = f.height, f.width
                if not (h and w):
                    from PIL import Image

                    with Image.open(self.ws.path(f.path)) as im:
                        w, h = im.size
                self.frames[clip_id][f.second] = (int(h), int(w))
        return self.frames[clip_id].get(second)

    def _write_mask(self, clip_id: str):
        from avsbench_tools.mask_store import mask_png

        def write(name: str, mask: np.ndarray) -> str:
            p = self.ws.path("masks", clip_id, "studio", f"{name}.png")
            self.written.append(p)
            atomic_write_bytes(p, mask_png(mask))
            return self.ws.rel(p)
        return write

    def store(self, tasks: list[dict], cursor: str | None) -> int:
        """Parse and store one batch of tasks (one transaction); returns the number of tasks."""
        reviews: list[StudioReview] = []
        books: dict[str, FidBook] = {}
        for task in tasks:
            where = self._where(task)
            shape = where and self._shape(*where)
            if where is None or shape is None:
                self.res.foreign += 1
                continue
            clip_id, second = where
            models = {int(p["id"]): p.get("model_version") for p in task.get("predictions") or [] if isinstance(p, dict)}
            info = TaskInfo(self.key, int(task["id"]), clip_id, second, shape, models)
            for ann in task.get("annotations") or []:
                stamp = ls_time(ann.get("updated_at"))
                if self.stamps.get(int(ann["id"])) == stamp:
                    self.res.unchanged += 1
                    continue
                book = books.get(clip_id) or books.setdefault(clip_id, FidBook(
                    clip_id, self.ws.catalog.studio_object_keys(clip_id),
                    max(self.ws.catalog.max_fid(clip_id) + 1, HAND_DRAWN_FIDS)))
                try:
                    review, dropped = parse_annotation(ann, info, self._users(), book, self._write_mask(clip_id))
                except ValueError as exc:
                    raise AvsError(f"task {task['id']} (clip {clip_id}, second {second}), annotation {ann['id']}: "
                                   f"{exc}") from None
                reviews.append(review)
                self._count(review, dropped)
        clips, superseded = {}, set()
        touched = sorted({r.clip_id for r in reviews})
        for clip_id in touched:
            pulled = {(r.project_key, r.annotation_id): r for r in self.ws.catalog.studio_reviews([clip_id])}
            for r in reviews:
                if r.clip_id == clip_id:
                    superseded |= {g["path"] for g in pulled.get((r.project_key, r.annotation_id), r).regions}
                    pulled[(r.project_key, r.annotation_id)] = r
            expected = self.pushed.get(clip_id) or {f.second for f in self.ws.catalog.frames(clip_id)}
            clips[clip_id] = clip_reviews(clip_id, list(pulled.values()), expected)
        keys = [k for b in books.values() for k in b.new]
        settings = {**SETTINGS, "project": self.key}
        self.ws.catalog.save_pull(self.key, reviews, keys, clips, cursor, settings)
        for r in reviews:
            self.stamps[r.annotation_id] = r.ls_updated_at
        self.written = []
        kept = {g["path"] for r in reviews for g in r.regions}
        for rel in superseded - kept:  # masks of an earlier pull of an annotation changed since (ours)
            with contextlib.suppress(FileNotFoundError):
                self.ws.path(rel).unlink()
        self.res.clips += len(clips)
        self.res.clips_done += sum(c.done for c in clips.values())
        return len(tasks)

    def _count(self, r: StudioReview, dropped: int) -> None:
        if not r.submitted:
            self.res.cancelled += 1
            return
        self.res.new += 1
        self.res.regions += len(r.regions)
        self.res.silent += SILENT in r.flags
        self.res.unusable += UNUSABLE in r.flags
        self.res.dropped_regions += dropped

    def discard_unsaved(self) -> None:
        """Remove the mask files of a batch that was not committed (files the catalog does not name)."""
        for p in self.written:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        self.written = []

