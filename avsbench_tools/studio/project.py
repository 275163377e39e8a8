"""The workspace's Label Studio project as push sees it: found or made, its storages, and what the
server already holds (task keys, prediction ids), over plain JSON HTTP.

Bulk bodies are sent as JSON bytes through the SDK client's own HTTP client (its auth headers, no
retry: a retried import could duplicate tasks); the SDK's generic encoder walks every RLE value in
Python and would cost more than the server's import. Errors become one line naming the URL and
never the API key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsbench_tools.errors import AvsError, UsageError

MARKER = "avs-tools workspace "  # + ws_id, in the project's description: finds a project whose id was lost
TITLE_MAX = 50  # Label Studio's limit on a project title
SAMPLING = "Uncertainty sampling"  # lowest prediction score first (of the project's model_version)
SEQUENTIAL = "Sequential sampling"  # the Data Manager's order (push --order imports by priority)
STORAGE_DIRS = ("frames", "audio", "clips")  # what tasks point at; never WS itself (WS/studio holds secrets)
BULK_TIMEOUT = 600.0
PER_TASK_COST = 20  # one request per task costs about as much as listing this many predictions


class StudioError(AvsError):
    """The server refused or dropped a request during push (one line, names the URL)."""


@dataclass
class Project:
    """The project push works on: its id, config, counts as the server reports them, and whether it is new."""

    id: int
    label_config: str
    task_number: int
    prediction_number: int
    model_version: str | None
    description: str = ""
    instructions: str = ""
    created: bool = False  # made by this push
    storages: bool = False  # its local-files storages made by this push (push_sync.new_project)
    storage_paths: frozenset[str] | None = None  # the paths of its local-files storages, when listed already
    maximum_annotations: int = 1
    overlap_cohort_percentage: int = 100
    sampling: str = ""

    def is_ours(self, ws_id: str) -> bool:
        """Whether this project (whose id the catalog recorded) is still this workspace's: not when its
        description names another workspace (the server was reset and the id reused by another push).
        A description edited by hand keeps the project ours."""
        return (MARKER + ws_id) in self.description or MARKER not in self.description


class Api:
    """A thin JSON-over-HTTP layer on a label_studio_sdk client, for one server URL."""

    def __init__(self, conn):
        self.url = conn.url.rstrip("/")
        self.client = conn.client()
        self._http = self.client._client_wrapper.httpx_client  # the SDK's authenticated HTTP client

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None,
                what: str = "", timeout: float = 120.0) -> Any:
        """One request without retries; the parsed JSON answer (None when empty). HTTP errors and a
        dropped connection become a one-line StudioError."""
        import httpx

        from avsbench_tools.studio.payload import encode

        content = body if isinstance(body, bytes) or body is None else encode(body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            r = self._http.request(path, method=method, params=params, content=content, headers=headers,
                                   request_options={"max_retries": 0, "timeout_in_seconds": timeout})
        except httpx.TimeoutException:
            raise StudioError(f"Label Studio at {self.url} gave no answer within {timeout:.0f} s "
                              f"({what or path})") from None
        except httpx.HTTPError as exc:
            raise StudioError(f"Label Studio at {self.url} stopped answering ({what or path}: "
                              f"{type(exc).__name__})") from None
        if r.status_code >= 400:
            raise StudioError(f"Label Studio at {self.url} answered HTTP {r.status_code} to {what or path}: "
                              f"{_short(r.text)}")
        return r.json() if r.content else None

    # -- projects -----------------------------------------------------------------------------------
    def project(self, pid: int) -> Project | None:
        """The project with this id, or None if the server has none (deleted)."""
        try:
            d = self.request("GET", f"api/projects/{int(pid)}/", what=f"project {pid}")
        except StudioError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        return _project(d)

    def find_project(self, ws_id: str) -> Project | None:
        """A project whose description carries this workspace's marker (made by a push whose id was lost)."""
        page, marker = 1, MARKER + ws_id
        while True:
            d = self.request("GET", "api/projects/", params={"page": page, "page_size": 100, "include": "id,description"},
                             what="the project list")  # include: those fields only (no task counts computed)
            rows = d.get("results", []) if isinstance(d, dict) else d
            for p in rows:
                if marker in (p.get("description") or ""):
                    return self.project(p["id"])
            if not isinstance(d, dict) or not d.get("next"):
                return None
            page += 1

    def create_project(self, title: str, ws_id: str, config: str, instructions: str) -> Project:
        """A new project: our config and instructions, shown before labelling, sampled by prediction score, showing
        every prediction (no model version). Push makes it before it knows the model versions: the server
        gives a project without one the last prediction's of its first import (push mirrors it, then sets its own
        if that differs)."""
        body = {"title": title[:TITLE_MAX], "description": f"{MARKER}{ws_id} (made by avs-tools push)",
                "label_config": config, "expert_instruction": instructions, "show_instruction": True,
                "sampling": SAMPLING, "show_collab_predictions": True, "model_version": ""}
        p = _project(self.request("POST", "api/projects/", body, what="creating the project"))
        p.created = True
        return p

    def update_project(self, pid: int, **fields: Any) -> None:
        """PATCH some project fields."""
        self.request("PATCH", f"api/projects/{int(pid)}/", fields, what=f"updating project {pid}")

    # -- storages -----------------------------------------------------------------------------------
    def storage_paths(self, pid: int) -> frozenset[str]:
        """The (normalised) paths of the project's local-files storages."""
        return frozenset(os.path.normpath(s.get("path") or "") for s in self.request(
            "GET", "api/storages/localfiles/", params={"project": pid}, what="the storages"))

    def ensure_storages(self, pid: int, root: Path, new: bool = False, have: frozenset[str] | None = None) -> int:
        """Local-files import storages on the workspace's media folders (what lets the server serve them);
        never synced (a sync would import every file as a task). Returns how many were made. `new`: the project
        was made by this push (it has none: they are not listed first); `have`: the paths listed already
        (`storage_paths`)."""
        have = frozenset() if new else have if have is not None else self.storage_paths(pid)
        made = 0
        for sub in STORAGE_DIRS:
            path = os.path.join(os.path.abspath(root), sub)
            if os.path.normpath(path) in have or not os.path.isdir(path):
                continue
            try:
                self.request("POST", "api/storages/localfiles/", {
                    "project": pid, "path": path, "title": f"avs-tools {sub}", "use_blob_urls": False,
                    "regex_filter": "^$", "synchronizable": False}, what=f"the local-files storage for {path}")
            except StudioError as exc:
                raise UsageError(f"Label Studio at {self.url} cannot serve the workspace's files from {path} "
                                 f"({_storage_reason(str(exc))}): use the workspace's own server (avs-tools studio "
                                 "start WS), or start yours with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                                 "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to the workspace or a folder above it, "
                                 "and pass that folder as --document-root") from None
            made += 1
        return made

    def serves(self, rel: str) -> bool:
        """Whether the server serves the file at `rel` (a path relative to its document root) to us."""
        import httpx

        try:
            r = self._http.request("data/local-files/", method="GET", params={"d": rel},
                                   headers={"Range": "bytes=0-0"},
                                   request_options={"max_retries": 0, "timeout_in_seconds": 30})
        except httpx.HTTPError as exc:
            raise StudioError(f"Label Studio at {self.url} stopped answering (a file request: "
                              f"{type(exc).__name__})") from None
        return r.status_code in (200, 206)

    # -- what the server holds ----------------------------------------------------------------------
    def task_keys(self, pid: int, ws_id: str) -> tuple[dict[tuple[str, int], dict[int, int]], set[int]]:
        """({(clip_id, second): {task id: annotations}} of this workspace's tasks, every task id of the project)."""
        ours: dict[tuple[str, int], dict[int, int]] = {}
        every: set[int] = set()
        page = 1
        while True:
            d = self.request("GET", "api/tasks/", params={"project": pid, "page": page, "page_size": 1000,
                                                           "include": "id,data,total_annotations",
                                                           "fields": "task_only"},
                             what="the task list", timeout=BULK_TIMEOUT)
            rows = d.get("tasks", []) if isinstance(d, dict) else d
            for t in rows:
                every.add(int(t["id"]))
                data = t.get("data") or {}
                if data.get("ws_id") == ws_id and "clip_id" in data and "second" in data:
                    key = (str(data["clip_id"]), int(data["second"]))
                    ours.setdefault(key, {})[int(t["id"])] = int(t.get("total_annotations") or 0)
            total = d.get("total", len(every)) if isinstance(d, dict) else len(every)
            if not rows or len(every) >= total:
                return ours, every
            page += 1

    def tasks_data(self, pid: int) -> dict[int, dict]:
        """{task id: its data} of every task of the project (no predictions or annotations: a light listing)."""
        out: dict[int, dict] = {}
        page = 1
        while True:
            d = self.request("GET", "api/tasks/", params={"project": pid, "page": page, "page_size": 1000,
                                                           "fields": "task_only", "include": "id,data"},
                             what="the task list", timeout=BULK_TIMEOUT)
            rows = d.get("tasks", []) if isinstance(d, dict) else d
            out.update({int(t["id"]): t.get("data") or {} for t in rows})
            if not rows or not isinstance(d, dict) or len(out) >= int(d.get("total", 0)):
                return out
            page += 1

    def update_task_data(self, task_id: int, data: dict, what: str) -> None:
        """Replace a task's data in place (its annotations and predictions stay)."""
        self.request("PATCH", f"api/tasks/{int(task_id)}/", {"data": data}, what=what)

    def delete(self, what: str, ids: list[int]) -> None:
        """Delete tasks or predictions (`what`: "tasks" | "predictions") by id."""
        for i in ids:
            self.request("DELETE", f"api/{what}/{int(i)}/", what=f"deleting a duplicate of {what[:-1]} {i}")

    def task_number(self, pid: int) -> int:
        """How many tasks the project holds now."""
        p = self.project(pid)
        return 0 if p is None else p.task_number

    def prediction_ids(self, pid: int, tasks: set[int], in_project: int) -> dict[tuple[int, str], list[int]]:
        """{(task id, model_version): [prediction ids, oldest first]} of these tasks. The server returns
        predictions with their masks and an import does not return their ids: a few tasks of a large
        project are asked one by one, otherwise the project's list is read once (`in_project`: about
        how many predictions it holds)."""
        out: dict[tuple[int, str], list[int]] = {}
        if len(tasks) * PER_TASK_COST < in_project:
            rows = [p for t in sorted(tasks) for p in self.request(
                "GET", "api/predictions/", params={"task": t}, what=f"the predictions of task {t}")]
        else:
            rows = self.request("GET", "api/predictions/", params={"project": pid}, what="the prediction list",
                                timeout=BULK_TIMEOUT)
        for p in sorted(rows or [], key=lambda p: p["id"]):
            if int(p["task"]) not in tasks:
                continue
            out.setdefault((int(p["task"]), str(p.get("model_version") or "")), []).append(int(p["id"]))
        return out

    def import_tasks(self, pid: int, tasks: list[dict] | bytes, n: int | None = None,
                     predictions: int | None = None) -> list[int]:
        """Create tasks (with their predictions) in one request; their ids, in order. `tasks`: the task dicts,
        or their JSON array already encoded (`encode`) with `n` tasks in it; `predictions`: how many they carry
        (checked against the server's count; the import answers no prediction id)."""
        n = len(tasks) if n is None else n
        d = self.request("POST", f"api/projects/{int(pid)}/import", tasks, params={"return_task_ids": "true"},
                         what=f"importing {n} tasks", timeout=BULK_TIMEOUT) or {}
        ids = [int(i) for i in d.get("task_ids", [])]
        if len(ids) != n:
            raise StudioError(f"Label Studio at {self.url} created {len(ids)} of {n} tasks in one import")
        if predictions is not None and d.get("prediction_count") != predictions:
            raise StudioError(f"Label Studio at {self.url} stored {d.get('prediction_count')} of the {predictions} "
                              f"predictions of {n} tasks in one import")
        return ids

    def update_prediction(self, pid: int, task_id: int, prediction_id: int, prediction: dict) -> None:
        """Replace what a prediction carries (its result, score, model version) in place (the server validates
        it against the project's config, so the body names the project and task)."""
        self.request("PATCH", f"api/predictions/{int(prediction_id)}/",
                     {**prediction, "project": int(pid), "task": int(task_id)}, what=f"updating prediction {prediction_id}")

    def import_predictions(self, pid: int, predictions: list[dict] | bytes, n: int | None = None) -> None:
        """Add predictions (each with its "task") to existing tasks, in one request (`predictions`: dicts, or their
        JSON array already encoded, `n` of them)."""
        n = len(predictions) if n is None else n
        d = self.request("POST", f"api/projects/{int(pid)}/import/predictions", predictions,
                         what=f"importing {n} predictions", timeout=BULK_TIMEOUT) or {}
        if d.get("created") != n:
            raise StudioError(f"Label Studio at {self.url} created {d.get('created')} of {n} predictions in one import")


def server_name(conn, ws_id: str) -> str:
    """The catalog's name of the server of `conn`: "ws:<ws_id>" for the workspace's own server (its port may
    change between starts, its project stays), else the URL (an outside server: URL + project id)."""
    from avsbench_tools.catalog.studio import own_server

    own = getattr(conn, "source", None) == "workspace" or getattr(conn, "document_root", None) is not None
    return own_server(ws_id) if own else conn.url.rstrip("/")


def previous_port(ws_root: Path, host: str) -> int | None:
    """The port the workspace's own server last ran at on `host` (WS/studio/server.log), when it is free now:
    a restart keeps its URL (open browser tabs and bookmarks still work)."""
    from urllib.parse import urlsplit

    from avsbench_tools.catalog.migrate_v4 import own_urls
    from avsbench_tools.studio.process import port_free

    urls = own_urls(Path(ws_root))
    if not urls:
        return None
    parts = urlsplit(urls[-1])
    want = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if parts.hostname != want or not parts.port:
        return None
    return parts.port if port_free(host, parts.port) else None


def known_root(ws, conn, given: str | None) -> Path | None:
    """The document root given, else the one known for the workspace's own server, else None (`document_root`
    checks it with the server)."""
    root = given or getattr(conn, "document_root", None)
    return Path(os.path.abspath(root)) if root else None


def document_root(ws, conn, api: Api, given: str | None, probe: str) -> Path:
    """The server's local-files document root: the one given (--document-root or its variable), else
    the one known for the workspace's own server, else the first folder from the workspace upwards
    under which the server serves `probe` (a frame of the workspace) to us."""
    wsroot = Path(os.path.abspath(ws.root))
    target = Path(os.path.abspath(ws.abs(probe)))
    if given:
        root = Path(os.path.abspath(given))
        if root != wsroot and root not in wsroot.parents:
            raise UsageError(f"--document-root {root}: the workspace {ws.root} is not inside it (Label Studio serves "
                             "only files below its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
        if not api.serves(target.relative_to(root).as_posix()):
            raise UsageError(f"Label Studio at {api.url} does not serve {target} as "
                             f"{target.relative_to(root).as_posix()}: is {root} its document root "
                             "(LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)?")
        return root
    known = getattr(conn, "document_root", None)
    tried = [Path(os.path.abspath(known))] if known else []
    tried += [d for d in (wsroot, *wsroot.parents) if d not in tried]
    for root in tried:
        if (root == wsroot or root in wsroot.parents) and api.serves(target.relative_to(root).as_posix()):
            return root
    raise UsageError(f"Label Studio at {api.url} does not serve the workspace's files ({target}): start it with "
                     "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set "
                     "to the workspace or a folder above it, or use the workspace's own server "
                     "(avs-tools studio start WS)")


def _project(d: dict) -> Project:
    return Project(id=int(d["id"]), label_config=d.get("label_config") or "",
                   task_number=int(d.get("task_number") or 0),
                   prediction_number=int(d.get("total_predictions_number") or 0),
                   model_version=d.get("model_version") or None, description=d.get("description") or "",
                   instructions=d.get("expert_instruction") or "",
                   maximum_annotations=int(d.get("maximum_annotations") or 1),
                   overlap_cohort_percentage=int(d.get("overlap_cohort_percentage") if d.get("overlap_cohort_percentage")
                                                 is not None else 100),
                   sampling=d.get("sampling") or "")


def _short(text: str, limit: int = 200) -> str:
    """A server's error body on one line, cut (prediction errors quote whole RLE arrays)."""
    try:
        body = json.loads(text)
        text = body.get("detail") or body.get("validation_errors") or body if isinstance(body, dict) else body
    except (ValueError, TypeError):
        pass
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "..."


def _storage_reason(msg: str) -> str:
    low = msg.lower()
    if "subdirectory of" in low or "document_root" in low:
        return "the folder is not under the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
    if "serving local files" in low or "local_files_serving_enabled" in low:
        return "local file serving is off on that server"
    return msg.split(": ", 1)[-1]
