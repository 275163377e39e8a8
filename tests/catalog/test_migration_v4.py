"""Schema version 4 (issue #20): a version-3 catalog whose own Label Studio server restarted on a new port is
upgraded in place: the rows keyed by the old URLs are merged under the workspace's key, duplicates dropped.

data/catalog_v3_restarted.sql is the `sqlite3 .dump` of a catalog the previous main wrote, for real: one
synthetic clip pushed to the workspace's own server, three frames annotated, pulled; `studio stop`,
`studio start` (its old port taken, so it moved), `push` ("5 tasks made by an interrupted push"), `pull`
(every annotation stored a second time). data/server_v3_restarted.log holds that server.log's start lines.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from avsbench_tools.catalog import Catalog, schema
from avsbench_tools.catalog.studio import own_server, project_key
from avsbench_tools.recipe import load_recipe

DATA = Path(__file__).parent / "data"
WS_ID = "152177a37bacb075"
OLD = ("http://127.0.0.1:46559", "http://127.0.0.1:39363")


def restarted_v3_workspace(ws: Path, log: bool = True) -> Path:
    (ws / "studio").mkdir(parents=True)
    (ws / "recipe.toml").write_text(load_recipe("avsbench-ms3").text)
    con = sqlite3.connect(ws / "catalog.sqlite")
    con.executescript((DATA / "catalog_v3_restarted.sql").read_text())
    con.close()
    if log:
        shutil.copy(DATA / "server_v3_restarted.log", ws / "studio" / "server.log")
    return ws


def _rows(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return [tuple(r) for r in con.execute(sql)]
    finally:
        con.close()


def test_the_copy_is_what_the_previous_main_wrote(tmp_path):
    ws = restarted_v3_workspace(tmp_path / "ws")
    db = ws / "catalog.sqlite"
    assert _rows(db, "SELECT value FROM meta WHERE key='schema_version'") == [("3",)]
    per_key = dict(_rows(db, "SELECT project_key, COUNT(*) FROM studio_reviews GROUP BY 1"))
    assert per_key == {f"{OLD[0]}#1": 3, f"{OLD[1]}#1": 3}  # every annotation stored twice


def test_a_restarted_version_3_workspace_is_merged_in_place(tmp_path):
    ws = restarted_v3_workspace(tmp_path / "ws")
    db = ws / "catalog.sqlite"
    reviews_before = _rows(db, "SELECT annotation_id, ls_updated_at, regions_json FROM studio_reviews "
                               "WHERE project_key LIKE '%39363#1'")
    cat = Catalog(db)
    try:
        assert cat.schema_version() == schema.SCHEMA_VERSION == 4
        key = project_key(own_server(WS_ID), 1)
        assert cat.studio_project(own_server(WS_ID)) == 1
        assert all(cat.studio_project(u) is None for u in OLD)
        reviews = cat.studio_reviews()
        assert [(r.project_key, r.annotation_id) for r in reviews] == [(key, 1), (key, 2), (key, 3)]
        assert sorted((r.annotation_id, r.ls_updated_at, json.dumps(r.regions, sort_keys=True)) for r in reviews) == \
            sorted((a, u, json.dumps(json.loads(g), sort_keys=True)) for a, u, g in reviews_before)
        assert len(cat.studio_tasks(key)) == 5 and len(cat.studio_predictions(key)) == 5
        assert cat.pull_cursor(key) == "2026-12-06T10:19:32.267338Z"
        assert _rows(db, "SELECT DISTINCT project_key FROM studio_tasks UNION "
                         "SELECT DISTINCT project_key FROM studio_predictions UNION "
                         "SELECT project_key FROM studio_cursor") == [(key,)]
        assert cat.migrate() == {"columns": 0, "mask_sets": 0, "paths": 0, "projects": 0, "duplicates": 0}
    finally:
        cat.close()
    # the uniqueness rule: one task id once per project
    con = sqlite3.connect(db)
    try:
        tid = con.execute("SELECT task_id FROM studio_tasks LIMIT 1").fetchone()[0]
        try:
            con.execute("INSERT INTO studio_tasks VALUES(?, 'other-clip', 9, ?, 'now')", (key, tid))
            raise AssertionError("a second row for one task was accepted")
        except sqlite3.IntegrityError:
            pass
    finally:
        con.close()


def test_without_its_server_log_an_url_is_an_outside_server(tmp_path):
    ws = restarted_v3_workspace(tmp_path / "ws", log=False)
    cat = Catalog(ws / "catalog.sqlite")
    try:
        assert cat.studio_project(OLD[1]) == 1 and cat.studio_project(own_server(WS_ID)) is None
        assert len(cat.studio_reviews(project_key=f"{OLD[0]}#1")) == 3  # nothing merged, nothing lost
    finally:
        cat.close()
