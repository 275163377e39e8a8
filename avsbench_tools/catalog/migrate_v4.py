"""Schema version 4's data step: the workspace's own Label Studio server is named by the workspace, not by a URL.

Up to version 3 a project was keyed "<server url>#<project id>". The workspace's own server
(`avs-tools studio start`) takes a new port when it restarts, so its project got a second key, every
task was "adopted" again under it, and the next pull stored every annotation a second time. Version 4
names that server "ws:<ws_id>" (meta `studio.ws_id`), so its key is "ws:<ws_id>#<project id>" at any
port. This step finds the URLs the workspace's own server ran at (the start lines of
WS/studio/server.log, the url of WS/studio/server.json) and moves every row keyed by one of them to
the new key: studio_tasks, studio_predictions, studio_reviews (of two rows of one annotation the
newest pull is kept), studio_cursor (the newest), the meta `studio.project:<url>` entries (one
`studio.project:ws:<ws_id>`, the project of the URL the server ran at last). Then every project
holds one task id once (`studio_tasks_task`). No file is touched.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

OWN_PREFIX = "ws:"
PROJECT_META = "studio.project:"
WS_ID_META = "studio.ws_id"
_START = re.compile(r"^=== avs-tools studio start \S+ \S+ (\S+) ===$")
UNIQUE_TASKS = "CREATE UNIQUE INDEX IF NOT EXISTS studio_tasks_task ON studio_tasks(project_key, task_id)"


def own_urls(root: Path) -> list[str]:
    """The URLs the workspace's own server ran at, oldest first (server.log start lines, then server.json)."""
    studio = Path(root) / "studio"
    urls: list[str] = []
    try:
        with open(studio / "server.log", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = _START.match(line.strip())
                if m:
                    urls.append(m.group(1).rstrip("/"))
    except OSError:
        pass
    try:
        state = json.loads((studio / "server.json").read_text(encoding="utf-8"))
        if isinstance(state, dict) and isinstance(state.get("url"), str):
            urls.append(state["url"].rstrip("/"))
    except (OSError, ValueError):
        pass
    out: list[str] = []
    for u in urls:  # oldest first, each once, at its last position
        if u in out:
            out.remove(u)
        out.append(u)
    return out


def merge_own_projects(db: sqlite3.Connection, root: Path) -> dict[str, int]:
    """Move the rows of the own server's URL keys to "ws:<ws_id>#<id>" (see the module doc), inside the
    caller's transaction; idempotent. Returns {"projects": keys merged, "duplicates": rows dropped}."""
    out = {"projects": 0, "duplicates": 0}
    row = db.execute("SELECT value FROM meta WHERE key=?", (WS_ID_META,)).fetchone()
    if row is not None:
        own = OWN_PREFIX + row[0]
        urls = own_urls(root)
        meta = dict(db.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                               (len(PROJECT_META), PROJECT_META)).fetchall())
        latest = None
        for url in urls:
            pid = meta.get(PROJECT_META + url)
            if pid is None:
                continue
            latest = pid
            rekey_project(db, f"{url}#{int(pid)}", f"{own}#{int(pid)}", out)
            db.execute("DELETE FROM meta WHERE key=?", (PROJECT_META + url,))
            out["projects"] += 1
        if latest is not None:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (PROJECT_META + own, str(int(latest))))
    out["duplicates"] += _dedupe_task_ids(db)
    db.execute(UNIQUE_TASKS)
    return out


def rekey_project(db: sqlite3.Connection, old: str, new: str, out: dict[str, int]) -> None:
    """Move the rows of project key `old` to `new` (also `Catalog.merge_studio_project`)."""
    # reviews: one row per (project, annotation): the newest pull of it wins
    for r in db.execute("SELECT annotation_id, ls_updated_at, pulled_at FROM studio_reviews WHERE project_key=?",
                        (old,)).fetchall():
        have = db.execute("SELECT ls_updated_at, pulled_at FROM studio_reviews WHERE project_key=? AND "
                          "annotation_id=?", (new, r[0])).fetchone()
        if have is not None:
            out["duplicates"] += 1
            if (r[1] or "", r[2] or "") <= (have[0] or "", have[1] or ""):
                db.execute("DELETE FROM studio_reviews WHERE project_key=? AND annotation_id=?", (old, r[0]))
                continue
            db.execute("DELETE FROM studio_reviews WHERE project_key=? AND annotation_id=?", (new, r[0]))
        db.execute("UPDATE studio_reviews SET project_key=? WHERE project_key=? AND annotation_id=?", (new, old, r[0]))
    for table in ("studio_tasks", "studio_predictions"):
        n = db.execute(f"SELECT COUNT(*) FROM {table} WHERE project_key=?", (old,)).fetchone()[0]
        db.execute(f"UPDATE OR IGNORE {table} SET project_key=? WHERE project_key=?", (new, old))
        left = db.execute(f"DELETE FROM {table} WHERE project_key=?", (old,)).rowcount
        out["duplicates"] += left if n else 0
    cur = db.execute("SELECT updated_at, pulled_at FROM studio_cursor WHERE project_key=?", (old,)).fetchone()
    if cur is not None:
        db.execute("INSERT INTO studio_cursor(project_key, updated_at, pulled_at) VALUES(?, ?, ?) "
                   "ON CONFLICT(project_key) DO UPDATE SET updated_at=MAX(updated_at, excluded.updated_at), "
                   "pulled_at=MAX(pulled_at, excluded.pulled_at)", (new, cur[0], cur[1]))
        db.execute("DELETE FROM studio_cursor WHERE project_key=?", (old,))


def _dedupe_task_ids(db: sqlite3.Connection) -> int:
    """Rows naming a task id already named in the same project (the oldest row kept)."""
    rows = db.execute("SELECT rowid FROM studio_tasks WHERE rowid NOT IN (SELECT MIN(rowid) FROM studio_tasks "
                      "GROUP BY project_key, task_id)").fetchall()
    db.executemany("DELETE FROM studio_tasks WHERE rowid=?", rows)
    return len(rows)
