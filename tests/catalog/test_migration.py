"""A catalog written by the previous avs-tools (schema version 1) is upgraded in place when opened.

The version-1 schema is the exact SQL text of the previous main (data/schema_v1.sql, from commit
2641f3a; data/schema_v1_no_permanent.sql from 19587ec, before failures.permanent existed), and the
rows are what that code wrote: an absolute sources.path inside the workspace, masks-done meta keys,
the fingerprints table splits.py created outside the schema.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from avsbench_tools.catalog import Catalog, schema
from avsbench_tools.errors import UsageError
from avsbench_tools.recipe import load_recipe
from avsbench_tools.workspace import open_workspace
from avsbench_tools.ws_status import list_clips, workspace_status
from tests.helpers import run_cli
from tests.helpers.catalog_rows import stage_of

DATA = Path(__file__).parent / "data"
FINGERPRINTS_V1 = ("CREATE TABLE IF NOT EXISTS fingerprints(clip_id TEXT PRIMARY KEY, frames TEXT NOT NULL, "
                   "audio BLOB NOT NULL, n_audio INTEGER NOT NULL)")  # as splits.py created it
T = "2024-05-01T10:00:00Z"


def make_v1_workspace(ws: Path, schema_file: str = "schema_v1.sql", old_root: Path | None = None) -> Path:
    """A workspace as the previous main left it after collect, sample, preannotate and export."""
    root = Path(os.path.abspath(ws))
    old = old_root or root  # where the workspace was when the rows were written
    for sub in ("sources", "clips", "frames/c1", "audio", "masks/c1/proposal-abc123"):
        (ws / sub).mkdir(parents=True, exist_ok=True)
    (ws / "recipe.toml").write_text(load_recipe("avss").text)
    (ws / "sources" / "yt-abc.mp4").write_bytes(b"video")
    con = sqlite3.connect(ws / "catalog.sqlite")
    con.executescript((DATA / schema_file).read_text())
    has_permanent = "permanent" in (DATA / schema_file).read_text()
    con.executemany("INSERT INTO meta(key, value) VALUES(?, ?)", [
        ("recipe", "avss"), ("recipe_digest", "d1"), ("schema_version", "1"), ("initialised", T),
        ("split_seed", "3"),
        ("masks-done:proposal:abc123:c1", "[0, 1, 2, 3, 4]"),
        ("masks-done:proposal:def456:c2", "[]"),
        ("masks-done:review:abc123:odd:clip:id", "[2]"),  # a clip id with ':' in it
    ])
    con.executemany("INSERT INTO sources(source_id, kind, url, path, status, category) VALUES(?, ?, ?, ?, ?, ?)", [
        ("yt-abc", "url", "https://example.org/abc", str(old / "sources" / "yt-abc.mp4"), "done", "dog_barking"),
        ("local-b", "local", None, "/home/someone/videos/b.mp4", "done", "guitar"),
        ("yt-pending", "url", "https://example.org/p", None, "pending", None),
    ])
    con.executemany("INSERT INTO clips(clip_id, source_id, start, seconds, category, path, split, created_at) "
                    "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", [
                        ("c1", "yt-abc", 0.0, 5, "dog_barking", "clips/c1.mp4", "train", T),
                        ("c2", "local-b", 0.0, 5, "guitar", str(old / "clips" / "c2.mp4"), None, T),
                        ("odd:clip:id", "local-b", 5.0, 5, "guitar", "clips/odd.mp4", None, T)])
    con.executemany("INSERT INTO stage_status(clip_id, stage, status, attempts, settings, updated_at) "
                    "VALUES(?, ?, ?, 1, ?, ?)", [("c1", "collect", "done", None, T), ("c1", "sample", "done",
                                                                                         '{"fps": 1}', T),
                                                 ("c1", "preannotate", "done", None, T)])
    con.executemany("INSERT INTO frames(clip_id, second, frame_index, pts, path, width, height) "
                    "VALUES(?, ?, ?, ?, ?, 160, 120)",
                    [("c1", 0, 12, 0.5, "frames/c1/0.jpg"), ("c1", 1, 37, 1.5, str(old / "frames" / "c1" / "1.jpg"))])
    con.execute("INSERT INTO audio VALUES('c1', ?, 'audio/c1.logmel.npy', 16000, 1, 5, ?, ?)",
                (str(old / "audio" / "c1.wav"), json.dumps({"active": [True] * 5}),
                 f"{old / 'audio' / 'c1.vggish.npy'}#d1g35t"))
    con.execute("INSERT INTO mask_versions(clip_id, second, fid, kind, category, score, sounding, evidence, backend, "
                "settings_hash, settings_json, path, created_at) VALUES('c1', 0, 1, 'proposal', 'dog_barking', 0.9, "
                "1, '{}', 'grounded-sam', 'abc123', '{}', ?, ?)", (str(old / "masks/c1/proposal-abc123/0_1.png"), T))
    if has_permanent:
        con.execute("INSERT INTO failures(stage, item, reason, first_at, last_at, permanent) "
                    "VALUES('collect', 'https://example.org/x', 'HTTP 404', ?, ?, 0)", (T, T))
    else:
        con.execute("INSERT INTO failures(stage, item, reason, first_at, last_at) "
                    "VALUES('collect', 'https://example.org/x', 'HTTP 404', ?, ?)", (T, T))
    con.execute(FINGERPRINTS_V1)
    con.execute("INSERT INTO fingerprints VALUES('c1', '1,2,3', x'a0', 3)")
    con.commit()
    con.close()
    return ws


def _columns(ws: Path, table: str) -> set[str]:
    con = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
    finally:
        con.close()


def _dump(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: sorted(tuple(r) for r in con.execute(f"SELECT * FROM {n}")) for n in names}
    finally:
        con.close()


@pytest.mark.parametrize("schema_file", ["schema_v1.sql", "schema_v1_no_permanent.sql"])
def test_a_version_1_catalog_is_upgraded_in_place(tmp_path, schema_file):
    ws = make_v1_workspace(tmp_path / "ws", schema_file)
    before = _dump(ws / "catalog.sqlite")
    assert "mask_sets" not in before and (schema_file == "schema_v1.sql") == ("permanent" in _columns(ws, "failures"))
    cat = Catalog(ws / "catalog.sqlite")
    meta = cat.meta()
    assert meta["schema_version"] == str(schema.SCHEMA_VERSION)
    assert not [k for k in meta if k.startswith("masks-done:")]
    assert (meta["split_seed"], meta["recipe"], meta["initialised"]) == ("3", "avss", T)  # other keys kept
    # masks-done keys are now finished mask sets, with their seconds
    assert cat.mask_set_done("c1", "proposal", "abc123") and cat.mask_set_seconds("c1", "proposal", "abc123") == [
        0, 1, 2, 3, 4]
    assert cat.mask_set_seconds("c2", "proposal", "def456") == []
    assert cat.mask_set_seconds("odd:clip:id", "review", "abc123") == [2]
    assert not cat.mask_set_done("c1", "proposal", "def456")
    # paths inside the workspace are relative to it; a local file outside it stays absolute
    assert cat.source("yt-abc").path == "sources/yt-abc.mp4"
    assert cat.source("local-b").path == "/home/someone/videos/b.mp4" and cat.source("yt-pending").path is None
    assert [c.path for c in cat.clips()] == ["clips/c1.mp4", "clips/c2.mp4", "clips/odd.mp4"]
    assert [f.path for f in cat.frames("c1")] == ["frames/c1/0.jpg", "frames/c1/1.jpg"]
    a = cat.audio("c1")
    assert (a.wav_path, a.logmel_path, a.embedding_path) == ("audio/c1.wav", "audio/c1.logmel.npy",
                                                             "audio/c1.vggish.npy#d1g35t")
    assert a.activity == {"active": [True] * 5}
    assert [v.path for v in cat.mask_versions("c1")] == ["masks/c1/proposal-abc123/0_1.png"]
    # the ledger gained its column; the old row reads as retryable
    [f] = cat.failures()
    assert f.item == "https://example.org/x" and not f.permanent
    cat.fail("collect", "no-audio", "rejected: no audio stream", permanent=True)
    assert {f.item: f.permanent for f in cat.failures()} == {"https://example.org/x": f.permanent, "no-audio": 1}
    # fingerprints written by the old splits.py are read by the typed method
    assert cat.fingerprints()["c1"].frames == [1, 2, 3] and cat.fingerprints()["c1"].audio == b"\xa0"
    # nothing else changed
    after = _dump(ws / "catalog.sqlite")
    for table in ("clips", "stage_status", "objects", "expressions"):
        if table == "clips":
            assert [r[:5] + r[6:] for r in after[table]] == [r[:5] + r[6:] for r in before[table]]
        else:
            assert after[table] == before[table]
    assert cat.clip_ids_done("sample") == ["c1"] and stage_of(cat, "c1", "sample").settings == {"fps": 1}
    cat.close()
    # idempotent: opening again, or migrating again, changes nothing
    again = Catalog(ws / "catalog.sqlite")
    assert again.migrate() == {"columns": 0, "mask_sets": 0, "paths": 0, "projects": 0, "duplicates": 0}
    again.close()
    assert _dump(ws / "catalog.sqlite") == after


def test_the_migration_reports_what_it_changed(tmp_path):
    ws = make_v1_workspace(tmp_path / "ws", "schema_v1_no_permanent.sql")
    db = sqlite3.connect(ws / "catalog.sqlite", isolation_level=None)
    db.execute("DELETE FROM meta WHERE key='schema_version'")  # the oldest catalogs had no version key
    assert schema.stored_version(db) == 1
    db.execute("BEGIN IMMEDIATE")
    changes = schema.upgrade(db, ws)
    db.execute("COMMIT")
    # failures.permanent; 3 masks-done keys; sources, clips, frames, audio wav + embedding, mask path
    assert changes == {"columns": 1, "mask_sets": 3, "paths": 6, "projects": 0, "duplicates": 0}
    assert schema.stored_version(db) == schema.SCHEMA_VERSION
    db.execute("BEGIN IMMEDIATE")
    assert schema.upgrade(db, ws) == {"columns": 0, "mask_sets": 0, "paths": 0, "projects": 0, "duplicates": 0}
    db.execute("COMMIT")
    db.close()


def test_a_v1_workspace_works_through_the_workspace_layer_and_cli(tmp_path):
    ws = make_v1_workspace(tmp_path / "ws")
    st = json.loads(run_cli("status", ws, "--json", check=True).stdout)
    assert st["clips"] == 3 and st["stages"]["sample"]["done"] == 1
    assert {r["item"]: r["retryable"] for r in st["failures"]} == {"https://example.org/x": True}
    assert [c["source"] for c in list_clips(ws)] == ["https://example.org/abc", "b.mp4", "b.mp4"]
    assert workspace_status(ws)["stages"]["preannotate"]["done"] == 1
    w = open_workspace(ws, lock="test")
    try:
        assert w.catalog.meta()["schema_version"] == str(schema.SCHEMA_VERSION)
        src = w.catalog.source("yt-abc")
        assert w.path(src.path).read_bytes() == b"video"
    finally:
        w.close()


def test_a_moved_v1_workspace_finds_its_downloads(tmp_path):
    """Rows written at /old/place/ws: the download is found in this workspace's sources/ folder."""
    old = tmp_path / "old" / "place" / "ws"
    ws = make_v1_workspace(tmp_path / "new" / "ws", old_root=old)
    con = sqlite3.connect(ws / "catalog.sqlite")
    con.execute("INSERT INTO sources(source_id, kind, path, status) VALUES('rel', 'csv', 'ws/sources/yt-abc.mp4', "
                "'downloaded')")  # written by a command run with a relative workspace path
    con.execute("INSERT INTO sources(source_id, kind, path, status) VALUES('gone', 'url', ?, 'done')",
                (str(old / "sources" / "gone.mp4"),))  # no such file here: left as it was
    con.execute("INSERT INTO sources(source_id, kind, path, status) VALUES('loc', 'local', ?, 'done')",
                (str(old / "sources" / "yt-abc.mp4"),))  # a local file is the user's: never redirected
    con.commit()
    con.close()
    cat = Catalog(ws / "catalog.sqlite")
    assert cat.source("yt-abc").path == "sources/yt-abc.mp4" and cat.source("rel").path == "sources/yt-abc.mp4"
    assert cat.source("gone").path == str(old / "sources" / "gone.mp4")
    assert cat.source("loc").path == str(old / "sources" / "yt-abc.mp4")
    cat.close()


def test_a_symlinked_workspace_path_is_made_relative(tmp_path):
    real = make_v1_workspace(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    con = sqlite3.connect(real / "catalog.sqlite")
    con.execute("UPDATE sources SET path=? WHERE source_id='yt-abc'", (str(link / "sources" / "yt-abc.mp4"),))
    con.commit()
    con.close()
    cat = Catalog(real / "catalog.sqlite")  # opened by its real path; the row names the link
    assert cat.source("yt-abc").path == "sources/yt-abc.mp4"
    cat.close()


def test_the_migration_is_one_transaction(tmp_path):
    ws = make_v1_workspace(tmp_path / "ws")
    con = sqlite3.connect(ws / "catalog.sqlite")
    # a step after the mask sets and the new tables fails: nothing of the upgrade may stay
    con.execute("CREATE TRIGGER no_audio_update BEFORE UPDATE ON audio BEGIN SELECT RAISE(ABORT, 'planted'); END")
    con.commit()
    con.close()
    before = _dump(ws / "catalog.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="planted"):
        Catalog(ws / "catalog.sqlite")
    assert _dump(ws / "catalog.sqlite") == before
    r = run_cli("status", ws)
    assert r.returncode == 2 and "planted" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_newer_catalog_is_refused(tmp_path):
    ws = make_v1_workspace(tmp_path / "ws")
    con = sqlite3.connect(ws / "catalog.sqlite")
    con.execute("UPDATE meta SET value='9' WHERE key='schema_version'")
    con.commit()
    con.close()
    before = _dump(ws / "catalog.sqlite")
    with pytest.raises(UsageError, match="schema version 9, newer than this avs-tools knows"):
        Catalog(ws / "catalog.sqlite")
    r = run_cli("status", ws)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "schema version 9" in r.stderr
    assert "Traceback" not in r.stderr
    assert _dump(ws / "catalog.sqlite") == before


def test_a_v1_catalog_that_cannot_be_written_says_it_needs_writing(tmp_path):
    ws = make_v1_workspace(tmp_path / "ws")
    cat = Catalog(tmp_path / "empty.sqlite", root=ws)  # nothing to upgrade yet: then point it at the v1 rows
    cat.db.execute(f"ATTACH DATABASE '{ws / 'catalog.sqlite'}' AS v1")
    cat.db.executescript(";".join(f"CREATE TABLE main.{n} AS SELECT * FROM v1.{n}" for n in (
        "meta", "sources", "clips", "frames", "audio", "mask_versions", "failures")))
    cat.db.execute("DETACH DATABASE v1")
    assert cat.schema_version() == 1
    cat.db.execute("PRAGMA query_only=1")  # what a read-only file or folder does to SQLite writes
    with pytest.raises(UsageError) as exc:
        cat.migrate()
    msg = str(exc.value)
    assert f"must be upgraded to schema version {schema.SCHEMA_VERSION}, which needs write access" in msg and "\n" not in msg
    assert cat.schema_version() == 1
    cat.close()
