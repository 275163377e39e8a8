"""What `push` records about a Label Studio project: its tasks and the predictions sent to them.

The catalog's table access for the `studio/` package (push, pull and qa call these methods; no SQL there).

A server is named by its URL, except the workspace's own server (`avs-tools studio start`), whose port
may change between starts: it is named "ws:<ws_id>" (`own_server`). A project is named by its key
"<server name>#<project id>" (never a token), so the own server's project keeps its key at any port.
`studio_tasks` maps each pushed (clip, second) to its task id (one task id once per project);
`studio_predictions` maps (task id, model version) to the prediction id, the mask versions it holds
and the digest of what it carries (objects and labels). An import does not return prediction ids, so push
records a prediction as soon as its import is answered with the id 0 ("not learnt yet"); the server's id is
learnt when something needs it (pull sees it in the tasks it lists, push asks before it updates one), and a
review finds the prediction it started from by (task, model version) as well (`prediction_versions`). The project id of each server is kept in meta
(`studio.project:<server name>`), and the workspace's random id (`studio.ws_id`) marks the tasks it made.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from avsbench_tools.catalog.connection import CatalogBase
from avsbench_tools.catalog.migrate_v4 import OWN_PREFIX, PROJECT_META, WS_ID_META, rekey_project
from avsbench_tools.catalog.records import now

IMPORTING_META = "studio.importing:"  # + a project key: push's imports there not all answered (studio_importing)


def project_key(server: str, project_id: int) -> str:
    """The key of a project in the catalog: "<server name (a URL without trailing slash)>#<project id>"."""
    return f"{server.rstrip('/')}#{int(project_id)}"


def own_server(ws_id: str) -> str:
    """The name of the workspace's own server: "ws:<ws_id>" (the same at every port)."""
    return OWN_PREFIX + ws_id


class StudioMethods(CatalogBase):
    """Label Studio projects, pushed tasks and pushed predictions."""

    # -- meta: the workspace id and the project of each server ---------------------------------------
    def studio_ws_id(self) -> str:
        """The workspace's random id (made and stored on first use): pushed tasks carry it as `ws_id`."""
        with self.tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (WS_ID_META,)).fetchone()
            if row is not None:
                return row[0]
            value = secrets.token_hex(8)
            db.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (WS_ID_META, value))
            return value

    def studio_project(self, url: str) -> int | None:
        """The id of this workspace's project on the server named `url` (a URL, or `own_server(ws_id)`),
        or None if none was made there."""
        row = self._one("SELECT value FROM meta WHERE key=?", (PROJECT_META + url.rstrip("/"),))
        return None if row is None else int(row[0])

    def set_studio_project(self, url: str, project_id: int | None) -> None:
        """Record (or, with None, forget) the project id of this workspace on the server named `url`."""
        key = PROJECT_META + url.rstrip("/")
        with self.tx() as db:
            if project_id is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, str(int(project_id))))

    def studio_importing(self, project_key: str) -> bool:
        """Whether a push into the project sent an import whose answer it never recorded (it was interrupted or
        failed: the import may land on the server later). Set and cleared by push, per project."""
        return self._one("SELECT 1 FROM meta WHERE key=?", (IMPORTING_META + project_key,)) is not None

    def set_studio_importing(self, project_key: str, on: bool) -> None:
        with self.tx() as db:
            if on:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, '1')", (IMPORTING_META + project_key,))
            else:
                db.execute("DELETE FROM meta WHERE key=?", (IMPORTING_META + project_key,))

    # -- tasks --------------------------------------------------------------------------------------
    def studio_tasks(self, project_key: str) -> dict[tuple[str, int], int]:
        """{(clip_id, second): task_id} of the tasks pushed to the project."""
        return {(r[0], int(r[1])): int(r[2]) for r in self.query(
            "SELECT clip_id, second, task_id FROM studio_tasks WHERE project_key=?", (project_key,))}

    def save_studio_tasks(self, project_key: str, rows: Iterable[tuple[str, int, int]]) -> int:
        """Record pushed tasks, (clip_id, second, task_id) each, in one transaction (a known (clip,
        second) gets the new task id). Returns the number of rows."""
        t = now()
        data = [(project_key, str(c), int(s), int(tid), t) for c, s, tid in rows]
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO studio_tasks(project_key, clip_id, second, task_id, created_at) "
                           "VALUES(?, ?, ?, ?, ?)", data)
        return len(data)

    # -- predictions --------------------------------------------------------------------------------
    def studio_predictions(self, project_key: str) -> dict[tuple[int, str], int]:
        """{(task_id, model_version): prediction_id} of the predictions pushed to the project."""
        return {(int(r[0]), r[1]): int(r[2]) for r in self.query(
            "SELECT task_id, model_version, prediction_id FROM studio_predictions WHERE project_key=?",
            (project_key,))}

    def save_studio_predictions(self, project_key: str, rows: Iterable[tuple]) -> int:
        """Record pushed predictions, (task_id, model_version, prediction_id, mask version ids[, digest]) each,
        in one transaction. Returns the number of rows."""
        t = now()
        data = [(project_key, int(r[0]), str(r[1]), int(r[2]), json.dumps([int(v) for v in r[3]]),
                 r[4] if len(r) > 4 else None, t) for r in rows]
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO studio_predictions(project_key, task_id, model_version, "
                           "prediction_id, version_ids, digest, created_at) VALUES(?, ?, ?, ?, ?, ?, ?)", data)
        return len(data)

    def prediction_digests(self, project_key: str) -> dict[tuple[int, str], str | None]:
        """{(task_id, model_version): digest of what the prediction carries (None: pushed before version 4)}."""
        return {(int(r[0]), r[1]): r[2] for r in self.query(
            "SELECT task_id, model_version, digest FROM studio_predictions WHERE project_key=?", (project_key,))}

    def set_prediction_digests(self, project_key: str, rows: Iterable[tuple[int, str, str]]) -> None:
        """Record (task_id, model_version, digest) of predictions updated on the server, in one transaction."""
        data = [(d, project_key, int(t), mv) for t, mv, d in rows]
        with self.tx() as db:
            db.executemany("UPDATE studio_predictions SET digest=? WHERE project_key=? AND task_id=? AND "
                           "model_version=?", data)

    def merge_studio_project(self, old_key: str, new_key: str) -> int:
        """Move every row of project `old_key` to `new_key` (the same project of the same server, reached under
        another name), in one transaction; of two rows of one annotation the newest pull is kept. Returns the
        duplicates dropped."""
        out = {"duplicates": 0}
        with self.tx() as db:
            rekey_project(db, old_key, new_key, out)
            db.execute("UPDATE OR REPLACE meta SET key=? WHERE key=?", (IMPORTING_META + new_key,
                                                                        IMPORTING_META + old_key))
        return out["duplicates"]

    def studio_project_keys(self, server: str) -> list[str]:
        """Every project key of a server name ("" : of every server) that the catalog holds rows of."""
        prefix = server.rstrip("/") + "#"
        return sorted({r[0] for r in self.query(
            "SELECT project_key FROM studio_tasks UNION SELECT project_key FROM studio_reviews")
            if r[0].startswith(prefix) or not server})

    def learn_prediction_ids(self, project_key: str, rows: Iterable[tuple[int, str, int]]) -> int:
        """Record the server's ids of pushed predictions, (task_id, model_version, prediction_id) each, where the
        id was not learnt yet (0), in one transaction. Returns how many were learnt."""
        data = [(int(p), project_key, int(t), str(mv)) for t, mv, p in rows]
        with self.tx() as db:
            cur = db.executemany("UPDATE studio_predictions SET prediction_id=? WHERE project_key=? AND task_id=? AND "
                                 "model_version=? AND prediction_id=0", data)
            return cur.rowcount

    def prediction_versions(self, project_key: str, prediction_id: int, task_id: int | None = None,
                            model_version: str | None = None) -> list[int] | None:
        """The mask version ids a pushed prediction holds, or None if it was not pushed from here. Found by its id,
        else (its id not learnt yet) by its task and model version when given."""
        row = self._one("SELECT version_ids FROM studio_predictions WHERE project_key=? AND prediction_id=?",
                        (project_key, int(prediction_id)))
        if row is None and task_id is not None and model_version is not None:
            row = self._one("SELECT version_ids FROM studio_predictions WHERE project_key=? AND task_id=? AND "
                            "model_version=? AND prediction_id IN (0, ?)",
                            (project_key, int(task_id), str(model_version), int(prediction_id)))
        return None if row is None else [int(v) for v in json.loads(row[0])]

    def forget_studio_tasks(self, project_key: str, task_ids: Iterable[int]) -> int:
        """Drop the records of tasks that no longer exist on the server (and of their predictions), in one
        transaction, so the next push makes them again. Returns the number of task rows dropped."""
        ids = [(project_key, int(t)) for t in task_ids]
        with self.tx() as db:
            db.executemany("DELETE FROM studio_predictions WHERE project_key=? AND task_id=?", ids)
            cur = db.executemany("DELETE FROM studio_tasks WHERE project_key=? AND task_id=?", ids)
            return cur.rowcount
