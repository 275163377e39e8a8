"""The catalog's schema (every table), its version, and the migration of older catalogs.

Version history:
  1  the catalog of avs-tools up to issue #12: absolute `sources.path`; "preannotate done" kept as
     `masks-done:{kind}:{settings_hash}:{clip_id}` meta keys; `fingerprints` created by splits.py
     outside the schema; `failures.permanent` added on first use.
  2  every table in SCHEMA (`fingerprints`, `mask_sets` included), `failures.permanent`, paths
     relative to the workspace root.
  3  the Label Studio round trip: `studio_tasks` (one pushed task per project, clip and second) and
     `studio_predictions` (one pushed prediction per task and model version, with the mask versions it
     holds); the project id per server URL in meta `studio.project:<url>`, the workspace's random id
     in meta `studio.ws_id`; the pull: `studio_reviews` (every pulled annotation, its provenance and
     regions), `frame_flags` (silent / unusable frames of the chosen reviews), `studio_objects` (object
     ids of hand-drawn regions and expression texts), `studio_cursor` (per project, the newest task
     update a pull saw). A version-2 catalog only gains the new (empty) tables.
  4  a project belongs to the workspace (issue #20): the workspace's own server is named
     "ws:<ws_id>" instead of its URL (its port may change), so its project key is "ws:<ws_id>#<id>"
     whatever the port; `studio_reviews.retracted_at/retracted_why` (an annotation deleted or
     cancelled on the server, or its task or project deleted: kept as history, never shown);
     `studio_predictions.digest` (what a prediction carries: its objects and their labels, so a push
     after set-category updates it); `category_changes` (every set-category: a pull never restores an
     old category); one task id per project (`studio_tasks_task`). A version-3 catalog's rows keyed by
     the URLs its own server ran at (WS/studio/server.log, server.json) are merged under the new key,
     duplicates dropped (the newest pull of an annotation kept).

`upgrade()` brings any older catalog to SCHEMA_VERSION inside one transaction; it is idempotent
(running it on an up-to-date catalog changes nothing).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path, PurePosixPath

from avsbench_tools.catalog import migrate_v4
from avsbench_tools.catalog.records import now

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
  source_id TEXT PRIMARY KEY, kind TEXT NOT NULL, url TEXT, video_id TEXT, title TEXT,
  uploader TEXT, license TEXT, duration REAL, width INTEGER, height INTEGER, keyword TEXT,
  category TEXT, start REAL, split_hint TEXT, path TEXT, status TEXT NOT NULL DEFAULT 'pending',
  reason TEXT, fetched_at TEXT, info_json TEXT);
CREATE TABLE IF NOT EXISTS clips(
  clip_id TEXT PRIMARY KEY, source_id TEXT NOT NULL, start REAL NOT NULL, seconds INTEGER NOT NULL,
  category TEXT, path TEXT NOT NULL, fps REAL, width INTEGER, height INTEGER, n_frames INTEGER,
  has_audio INTEGER, split TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stage_status(
  clip_id TEXT NOT NULL, stage TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  reason TEXT, settings TEXT, updated_at TEXT NOT NULL, PRIMARY KEY(clip_id, stage));
CREATE TABLE IF NOT EXISTS failures(
  stage TEXT NOT NULL, item TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT,
  attempts INTEGER NOT NULL DEFAULT 1, first_at TEXT NOT NULL, last_at TEXT NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0, payload TEXT, permanent INTEGER, PRIMARY KEY(stage, item));
CREATE TABLE IF NOT EXISTS frames(
  clip_id TEXT NOT NULL, second INTEGER NOT NULL, frame_index INTEGER NOT NULL, pts REAL NOT NULL,
  path TEXT NOT NULL, width INTEGER, height INTEGER, PRIMARY KEY(clip_id, second));
CREATE TABLE IF NOT EXISTS audio(
  clip_id TEXT PRIMARY KEY, wav_path TEXT NOT NULL, logmel_path TEXT NOT NULL, sample_rate INTEGER,
  channels INTEGER, n_examples INTEGER, activity_json TEXT, embedding_path TEXT);
CREATE TABLE IF NOT EXISTS objects(
  clip_id TEXT NOT NULL, fid INTEGER NOT NULL, category TEXT, label TEXT, PRIMARY KEY(clip_id, fid));
CREATE TABLE IF NOT EXISTS expressions(
  clip_id TEXT NOT NULL, n INTEGER NOT NULL, fid INTEGER, text TEXT NOT NULL, is_null INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(clip_id, n));
CREATE TABLE IF NOT EXISTS mask_versions(
  version_id INTEGER PRIMARY KEY AUTOINCREMENT, clip_id TEXT NOT NULL, second INTEGER NOT NULL,
  fid INTEGER NOT NULL, kind TEXT NOT NULL, category TEXT, score REAL, sounding INTEGER,
  evidence TEXT, backend TEXT, settings_hash TEXT, settings_json TEXT, path TEXT NOT NULL,
  created_at TEXT NOT NULL, author TEXT);
CREATE TABLE IF NOT EXISTS mask_sets(
  clip_id TEXT NOT NULL, kind TEXT NOT NULL, settings_hash TEXT NOT NULL, seconds_json TEXT NOT NULL,
  created_at TEXT NOT NULL, PRIMARY KEY(clip_id, kind, settings_hash));
CREATE TABLE IF NOT EXISTS fingerprints(
  clip_id TEXT PRIMARY KEY, frames TEXT NOT NULL, audio BLOB NOT NULL, n_audio INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS studio_tasks(
  project_key TEXT NOT NULL, clip_id TEXT NOT NULL, second INTEGER NOT NULL, task_id INTEGER NOT NULL,
  created_at TEXT NOT NULL, PRIMARY KEY(project_key, clip_id, second));
CREATE TABLE IF NOT EXISTS studio_predictions(
  project_key TEXT NOT NULL, task_id INTEGER NOT NULL, model_version TEXT NOT NULL, prediction_id INTEGER NOT NULL,
  version_ids TEXT NOT NULL, created_at TEXT NOT NULL, digest TEXT, PRIMARY KEY(project_key, task_id, model_version));
CREATE TABLE IF NOT EXISTS studio_reviews(
  project_key TEXT NOT NULL, annotation_id INTEGER NOT NULL, task_id INTEGER NOT NULL, clip_id TEXT NOT NULL,
  second INTEGER NOT NULL, status TEXT NOT NULL, annotator TEXT, annotator_id INTEGER, lead_time REAL,
  last_action TEXT, parent_prediction INTEGER, model_version TEXT, flags_json TEXT NOT NULL,
  regions_json TEXT NOT NULL, ls_created_at TEXT, ls_updated_at TEXT NOT NULL, pulled_at TEXT NOT NULL,
  retracted_at TEXT, retracted_why TEXT, PRIMARY KEY(project_key, annotation_id));
CREATE TABLE IF NOT EXISTS frame_flags(
  clip_id TEXT NOT NULL, second INTEGER NOT NULL, flag TEXT NOT NULL, PRIMARY KEY(clip_id, second, flag));
CREATE TABLE IF NOT EXISTS studio_objects(
  clip_id TEXT NOT NULL, key TEXT NOT NULL, fid INTEGER NOT NULL, PRIMARY KEY(clip_id, key));
CREATE TABLE IF NOT EXISTS studio_cursor(
  project_key TEXT PRIMARY KEY, updated_at TEXT NOT NULL, pulled_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS category_changes(
  clip_id TEXT NOT NULL, old TEXT, new TEXT NOT NULL, changed_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS category_changes_clip ON category_changes(clip_id);
CREATE INDEX IF NOT EXISTS studio_reviews_clip ON studio_reviews(clip_id, second);
CREATE INDEX IF NOT EXISTS mask_versions_clip ON mask_versions(clip_id, second);
CREATE INDEX IF NOT EXISTS clips_source ON clips(source_id);
CREATE INDEX IF NOT EXISTS stage_status_stage ON stage_status(stage, status);
"""

MASKS_DONE_PREFIX = "masks-done:"  # version 1's record of a finished mask set (now table mask_sets)

# Columns that hold a path (relative to the workspace root since version 2).
PATH_COLUMNS = {
    "sources": ("source_id", ("path",)),
    "clips": ("clip_id", ("path",)),
    "frames": ("rowid", ("path",)),
    "audio": ("clip_id", ("wav_path", "logmel_path", "embedding_path")),
    "mask_versions": ("version_id", ("path",)),
}


def statements(schema: str = SCHEMA) -> list[str]:
    """The schema's SQL statements, one per item."""
    return [s.strip() for s in schema.strip().split(";") if s.strip()]


def stored_version(db: sqlite3.Connection) -> int | None:
    """The catalog's schema_version (1 for an initialised catalog from before the key); None if not initialised."""
    try:
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', 'initialised')"))
    except sqlite3.OperationalError:
        return None
    if "schema_version" in meta:
        try:
            return int(meta["schema_version"])
        except ValueError:
            return 1
    return 1 if "initialised" in meta else None


def create(db: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Create every table (and any missing column) and write meta; 'initialised' last. Inside a transaction."""
    for stmt in statements():
        db.execute(stmt)
    add_missing_columns(db)
    db.execute(migrate_v4.UNIQUE_TASKS)
    for k, v in {**meta, "schema_version": str(SCHEMA_VERSION), "initialised": now()}.items():
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (k, v))


def add_missing_columns(db: sqlite3.Connection) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every column of SCHEMA an existing table lacks. Returns 'table.column's."""
    want = sqlite3.connect(":memory:")
    try:
        want.executescript(SCHEMA)
        tables = [r[0] for r in want.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        added = []
        for table in tables:
            have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            for _, name, typ, notnull, default, _pk in want.execute(f"PRAGMA table_info({table})"):
                if name in have:
                    continue
                sql = f"ALTER TABLE {table} ADD COLUMN {name} {typ}"
                if default is not None:
                    sql += f" {'NOT NULL ' if notnull else ''}DEFAULT {default}"
                db.execute(sql)
                added.append(f"{table}.{name}")
        return added
    finally:
        want.close()


def upgrade(db: sqlite3.Connection, root: Path) -> dict[str, int]:
    """Bring a catalog of any older version to SCHEMA_VERSION, inside the caller's transaction.

    Adds the missing tables and columns, moves `masks-done:*` meta keys into `mask_sets`, makes every
    absolute path inside the workspace `root` relative to it, merges the rows of the workspace's own
    Label Studio server under its version-4 key (`migrate_v4`), and sets schema_version. Idempotent.
    Returns what it changed: {"columns", "mask_sets", "paths", "projects", "duplicates"}."""
    for stmt in statements():
        db.execute(stmt)
    columns = add_missing_columns(db)
    sets = _move_masks_done(db)
    paths = _relative_paths(db, Path(root))
    merged = migrate_v4.merge_own_projects(db, Path(root))
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    return {"columns": len(columns), "mask_sets": sets, "paths": paths, **merged}


def _move_masks_done(db: sqlite3.Connection) -> int:
    rows = db.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                      (len(MASKS_DONE_PREFIX), MASKS_DONE_PREFIX)).fetchall()
    n = 0
    for key, value in rows:
        parts = key.split(":", 3)  # masks-done, kind, settings hash, clip id (which may hold ':')
        if len(parts) == 4 and all(parts[1:]):
            _, kind, h, clip_id = parts
            db.execute("INSERT OR IGNORE INTO mask_sets(clip_id, kind, settings_hash, seconds_json, created_at) "
                       "VALUES(?, ?, ?, ?, ?)", (clip_id, kind, h, value or "[]", now()))
            n += 1
        db.execute("DELETE FROM meta WHERE key=?", (key,))
    return n


def relative_to_root(value: str | None, root: Path, marker: bool = False) -> str | None:
    """`value` as stored from version 2 on: relative (POSIX) when it lies inside `root`, else unchanged.

    `root` is compared both as given (made absolute) and with symlinks resolved. `marker`: the value
    is an embedding marker "path#digest", whose digest is kept."""
    if not value:
        return value
    text, sep, digest = value.rpartition("#") if marker and "#" in value else (value, "", "")
    p = Path(text)
    if not p.is_absolute():
        return value
    for base, cand in ((Path(os.path.abspath(root)), Path(os.path.normpath(p))), (root.resolve(), p.resolve())):
        try:
            rel = cand.relative_to(base)
        except ValueError:
            continue
        if rel.parts:
            return PurePosixPath(*rel.parts).as_posix() + sep + digest
    return value


def _download_path(value: str, kind: str | None, root: Path) -> str | None:
    """A download of version 1 recorded where the workspace was then (an absolute path of an older
    location, or a path relative to the directory the command ran in): "sources/NAME" when the file
    is in this workspace's sources/ folder, else None. Local files are never touched."""
    p = Path(value)
    if kind == "local" or p.parent.name != "sources" or value == f"sources/{p.name}":
        return None
    if p.is_absolute() and p.exists():
        return None
    return f"sources/{p.name}" if (root / "sources" / p.name).is_file() else None


def _relative_paths(db: sqlite3.Connection, root: Path) -> int:
    n = 0
    for table, (key, cols) in PATH_COLUMNS.items():
        kind = "kind" if table == "sources" else "NULL"
        for col in cols:
            rows = db.execute(f"SELECT {key}, {col}, {kind} FROM {table} WHERE {col} IS NOT NULL").fetchall()
            for k, value, src_kind in rows:
                new = relative_to_root(value, root, marker=col == "embedding_path")
                if new == value and table == "sources":
                    new = _download_path(value, src_kind, root) or value
                if new != value:
                    db.execute(f"UPDATE {table} SET {col}=? WHERE {key}=?", (new, k))
                    n += 1
    return n
