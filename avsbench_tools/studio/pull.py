"""pull: the annotations made in Label Studio -> reviewed mask versions in the catalog.

Incremental: the tasks whose `updated_at` is newer than the project's cursor (a Data Manager filter,
with a margin for saves that were in flight at the last pull), then, in each, the annotations not
pulled at their current `updated_at`. Idempotent: a second pull stores nothing and says "0 new".
Each batch of tasks is one transaction (the pulled annotations, the touched clips' review sets
rebuilt whole from every annotation pulled for them, the cursor with the last batch), so Ctrl-C
keeps what finished. The conversion rules are in `review_set.py`, the storing in `pull_store.py`.

The catalog mirrors the server: an annotation the server no longer lists for a task (deleted), a task
missing from the project's id listing, or the whole project answering 404 retracts the reviews
concerned (kept as history, never shown; their frames are pending again), and forgets the tasks (the next
push makes them again; the audio excerpts no task uses any more are removed: studio.excerpt.prune). An
annotation that cannot be
used is skipped and listed; the tasks of open skips are fetched again by the next pull. The project of
the workspace's own server is found by the workspace id whatever its port (`project.server_name`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from avsbench_tools import formats
from avsbench_tools.catalog.studio import project_key as make_project_key
from avsbench_tools.errors import AvsError, Interrupted, UsageError
from avsbench_tools.progress import Progress, no_progress
from avsbench_tools.studio.project import server_name
from avsbench_tools.studio.pull_store import Puller, PullResult, Skipped
from avsbench_tools.studio.review_set import ls_time
from avsbench_tools.workspace import Workspace

__all__ = ["PullOptions", "PullResult", "Skipped", "pull", "store_tasks"]

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


def pull(ws: Workspace, conn, opts: PullOptions | None = None, progress: Progress | None = None) -> PullResult:
    """Mirror the project of the server of `conn` (a studio.connect Connection) into the workspace's catalog:
    new and changed annotations stored, those deleted or cancelled on the server (or whose task or project
    was deleted) retracted, annotations it cannot use listed and skipped (`res.skipped`, the failure ledger;
    tried again next time). Records stage "pull" per touched clip (done when every frame its exported form
    supervises is reviewed, else partial). UsageError when the workspace has no project on that server
    (push first) or an option names an unknown clip; Interrupted on Ctrl-C (finished batches are kept)."""
    opts = opts or PullOptions()
    progress = progress or no_progress
    _check_null_expressions(ws, opts.null_expressions)
    conn.check()
    server = server_name(conn, ws.catalog.studio_ws_id())
    pid = ws.catalog.studio_project(server)
    if pid is None:
        raise UsageError(f"workspace {ws.root} has no project on the Label Studio server at {conn.url}: run "
                         f"`avs-tools push {ws.root}` first (or pass the --url it was pushed to)")
    key = make_project_key(server, pid)
    res = PullResult(conn.url, key)
    client = conn.client()
    puller = Puller(ws, key, res, lambda: _list_users(client))
    if opts.null_expressions:
        ws.catalog.set_null_expressions(opts.null_expressions)
        res.null_expressions = len(opts.null_expressions)
    if not _project_exists(client, pid, conn.url):
        puller.retract_all(f"project {pid} was deleted on the server")
        ws.catalog.forget_studio_tasks(key, set(puller.tasks))  # no task of it uses its frames' audio excerpts
        ws.catalog.set_studio_project(server, None)  # the next push makes a new project
        res.project_gone = pid
        return _totals(ws, res)
    try:
        on_server = _task_ids(client, pid)
        gone = (set(puller.live) | set(puller.tasks)) - on_server
        puller.retract_tasks({t for t in gone if puller.live.get(t)}, "its task was deleted on the server")
        puller.resolve_gone(gone)
        ws.catalog.forget_studio_tasks(key, gone & set(puller.tasks))  # the next push makes them again
    except BaseException as exc:
        puller.discard_unsaved()
        _server_error(exc, conn.url, 0)
        raise
    old_cursor = ws.catalog.pull_cursor(key)
    retry = [t for t in puller.retry_task_ids() if t in on_server]
    total, done = None, 0
    batch: list[dict] = []
    stamps: list[str] = []  # the listed tasks' updated_at: the newest is the next cursor
    seen: set[int] = set()
    try:
        for task, count in _chain(_get_tasks(client, retry), _list_tasks(client, pid, old_cursor, opts.margin_s)):
            if int(task["id"]) in seen:
                continue
            seen.add(int(task["id"]))
            total = count + len(retry) if count is not None else total
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
    return _totals(ws, res)


def _totals(ws: Workspace, res: PullResult) -> PullResult:
    from avsbench_tools.completeness import review_counts
    from avsbench_tools.studio.excerpt import prune

    res.excerpts_removed = prune(ws).removed  # the audio excerpts of tasks gone from every project
    counts = review_counts(ws)
    res.reviewed_clips, res.partial_clips = counts["reviewed"], counts["partial"]
    return res


def _chain(*iters):
    for it in iters:
        yield from it


def _server_error(exc: BaseException, url: str, done: int) -> None:
    """Raise a one-line AvsError for a server that failed mid-pull (never its headers: they hold cookies)."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    kept = f"; the {done} tasks pulled before are saved, pull again to go on" if done else ""
    if isinstance(exc, ApiError):
        raise AvsError(f"Label Studio at {url} answered HTTP {exc.status_code} while pulling{kept}") from None
    if isinstance(exc, httpx.HTTPStatusError):
        raise AvsError(f"Label Studio at {url} answered HTTP {exc.response.status_code} while pulling{kept}") from None
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


def _project_exists(client, pid: int, url: str) -> bool:
    """Whether the project is on the server (False: it answers 404, the project was deleted)."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        client.projects.get(id=pid)
    except ApiError as exc:
        if exc.status_code == 404:
            return False
        raise AvsError(f"Label Studio at {url} answered HTTP {exc.status_code} for project {pid}") from None
    return True


def _task_ids(client, pid: int) -> set[int]:
    """Every task id of the project (a light listing: ids only)."""
    http = client._client_wrapper.httpx_client
    out: set[int] = set()
    page = 1
    while True:
        r = http.request("api/tasks/", method="GET", params={"project": pid, "page": page, "page_size": 1000,
                                                             "fields": "task_only", "include": "id"},
                         request_options={"max_retries": 0, "timeout_in_seconds": 600})
        if r.status_code == 404 and page > 1:
            return out
        r.raise_for_status()
        d = r.json()
        rows = d.get("tasks", []) if isinstance(d, dict) else d
        out |= {int(t["id"]) for t in rows}
        total = d.get("total", len(out)) if isinstance(d, dict) else len(out)
        if not rows or len(out) >= total:
            return out
        page += 1


def _get_tasks(client, task_ids: list[int]):
    """(task dict, None) of each task id (those of annotations skipped before), fetched one by one."""
    http = client._client_wrapper.httpx_client
    for tid in task_ids:
        r = http.request(f"api/tasks/{int(tid)}/", method="GET",
                         request_options={"max_retries": 0, "timeout_in_seconds": 120})
        if r.status_code == 404:
            continue
        r.raise_for_status()
        yield r.json(), None


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
    puller = Puller(ws, project_key, res, lambda: dict(users or {}))
    try:
        res.tasks = puller.store(tasks, cursor)
    except BaseException:
        puller.discard_unsaved()
        raise
    res.cursor = cursor
    return res
