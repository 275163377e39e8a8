"""Schema version 3 (issue #14): the Label Studio tables, and the in-place upgrade of a version-2 catalog.

The version-2 schema is the exact SQL text of the previous main (data/schema_v2.sql)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from avsbench_tools.catalog import Catalog, schema
from avsbench_tools.catalog.studio import project_key
from avsbench_tools.recipe import load_recipe
from tests.helpers import run_cli

DATA = Path(__file__).parent / "data"
T = "2025-01-01T00:00:00Z"


def make_v2_workspace(ws: Path) -> Path:
    """A version-2 workspace after sample and preannotate: one clip, two frames, one mask version."""
    for sub in ("clips", "frames/c1", "masks/c1/proposal-abc"):
        (ws / sub).mkdir(parents=True, exist_ok=True)
    (ws / "recipe.toml").write_text(load_recipe("avsbench-ms3").text)
    con = sqlite3.connect(ws / "catalog.sqlite")
    con.executescript((DATA / "schema_v2.sql").read_text())
    con.executemany("INSERT INTO meta(key, value) VALUES(?, ?)", [
        ("recipe", "avsbench-ms3"), ("recipe_digest", "d"), ("schema_version", "2"), ("initialised", T)])
    con.execute("INSERT INTO sources(source_id, kind, status) VALUES('s', 'local', 'done')")
    con.execute("INSERT INTO clips(clip_id, source_id, start, seconds, path, created_at) "
                "VALUES('c1', 's', 0, 5, 'clips/c1.mp4', ?)", (T,))
    con.execute("INSERT INTO stage_status(clip_id, stage, status, updated_at) VALUES('c1', 'collect', 'done', ?)", (T,))
    con.executemany("INSERT INTO frames VALUES('c1', ?, ?, ?, ?, 160, 120)",
                    [(0, 23, 0.94, "frames/c1/0.png"), (1, 48, 1.94, "frames/c1/1.png")])
    con.execute("INSERT INTO mask_versions(clip_id, second, fid, kind, category, score, backend, settings_hash, "
                "settings_json, path, created_at) VALUES('c1', 0, 1, 'proposal', 'dog_barking', 0.5, 'motion', "
                "'abc', '{}', 'masks/c1/proposal-abc/0_1.png', ?)", (T,))
    con.commit()
    con.close()
    return ws


def _dump(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: sorted(tuple(r) for r in con.execute(f"SELECT * FROM {n}")) for n in names}
    finally:
        con.close()


def test_a_version_2_catalog_is_upgraded_to_3_in_place(tmp_path):
    ws = make_v2_workspace(tmp_path / "ws")
    before = _dump(ws / "catalog.sqlite")
    assert "studio_tasks" not in before and "studio_predictions" not in before
    cat = Catalog(ws / "catalog.sqlite")
    assert cat.schema_version() == schema.SCHEMA_VERSION >= 3
    after = _dump(ws / "catalog.sqlite")
    assert after["studio_tasks"] == [] and after["studio_predictions"] == []
    # every older table and row is kept as it was, except the version number
    for table, rows in before.items():
        if table == "meta":
            assert {k: v for k, v in rows if k != "schema_version"} == \
                {k: v for k, v in after["meta"] if k != "schema_version"}
        else:
            assert after[table] == rows, table
    assert dict(after["meta"])["schema_version"] == str(schema.SCHEMA_VERSION)
    assert cat.migrate() == {"columns": 0, "mask_sets": 0, "paths": 0, "projects": 0, "duplicates": 0}  # idempotent
    assert _dump(ws / "catalog.sqlite") == after
    cat.close()


def test_a_v2_workspace_upgraded_through_the_cli(tmp_path):
    ws = make_v2_workspace(tmp_path / "ws")
    proc = run_cli("status", ws, "--json")
    assert proc.returncode == 0, proc.stderr
    con = sqlite3.connect(ws / "catalog.sqlite")
    try:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == \
            str(schema.SCHEMA_VERSION)
        assert con.execute("SELECT COUNT(*) FROM studio_tasks").fetchone()[0] == 0
    finally:
        con.close()


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.sqlite")
    c.create_schema({"recipe": "avsbench-ms3"})
    yield c
    c.close()


def test_studio_tasks_and_predictions(cat):
    key = project_key("http://127.0.0.1:8080/", 7)
    assert key == "http://127.0.0.1:8080#7"
    other = project_key("http://127.0.0.1:8080", 8)
    assert cat.studio_tasks(key) == {} and cat.studio_predictions(key) == {}
    assert cat.save_studio_tasks(key, [("c1", 0, 101), ("c1", 1, 102)]) == 2
    cat.save_studio_tasks(other, [("c1", 0, 900)])
    assert cat.studio_tasks(key) == {("c1", 0): 101, ("c1", 1): 102}
    assert cat.studio_tasks(other) == {("c1", 0): 900}
    cat.save_studio_tasks(key, [("c1", 1, 103)])  # the same (clip, second) re-recorded: one row, the new id
    assert cat.studio_tasks(key) == {("c1", 0): 101, ("c1", 1): 103}
    cat.save_studio_predictions(key, [(101, "motion:abc", 5001, [1, 2]), (101, "motion:def", 5002, [3])])
    assert cat.studio_predictions(key) == {(101, "motion:abc"): 5001, (101, "motion:def"): 5002}
    assert cat.studio_predictions(other) == {}
    assert cat.prediction_versions(key, 5001) == [1, 2] and cat.prediction_versions(key, 5002) == [3]
    assert cat.prediction_versions(key, 9999) is None and cat.prediction_versions(other, 5001) is None


def test_studio_project_per_url_and_ws_id(cat, tmp_path):
    assert cat.studio_project("http://a:1") is None
    cat.set_studio_project("http://a:1/", 4)
    assert cat.studio_project("http://a:1") == 4 and cat.studio_project("http://b:1") is None
    assert cat.meta()["studio.project:http://a:1"] == "4"
    cat.set_studio_project("http://a:1", None)
    assert cat.studio_project("http://a:1") is None
    wid = cat.studio_ws_id()
    assert len(wid) == 16 and cat.studio_ws_id() == wid
    cat.close()
    again = Catalog(tmp_path / "catalog.sqlite")
    try:
        assert again.studio_ws_id() == wid  # kept in the catalog, not per process
    finally:
        again.close()
