"""The workspace catalog: one SQLite database (WAL mode) that is the single source of truth.

Every clip, source video, sampled frame, object, mask version, per-stage status and failure lives
here. Each write is one transaction, so a process killed at any moment leaves the previous state
intact; files on disk are written to temporary names and renamed before their row is committed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STAGES = ("collect", "sample", "preannotate", "push", "pull", "export")

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
CREATE INDEX IF NOT EXISTS mask_versions_clip ON mask_versions(clip_id, second);
CREATE INDEX IF NOT EXISTS clips_source ON clips(source_id);
"""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Source:
    source_id: str
    kind: str  # search | url | csv | local | synth
    url: str | None = None
    video_id: str | None = None
    title: str | None = None
    uploader: str | None = None
    license: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    keyword: str | None = None
    category: str | None = None
    start: float | None = None
    split_hint: str | None = None
    path: str | None = None
    status: str = "pending"  # pending | downloaded | done | rejected | failed
    reason: str | None = None
    fetched_at: str | None = None
    info_json: str | None = None


@dataclass
class Clip:
    clip_id: str
    source_id: str
    start: float
    seconds: int
    path: str
    category: str | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    has_audio: int | None = None
    split: str | None = None
    created_at: str = ""


@dataclass
class Failure:
    stage: str
    item: str
    reason: str
    detail: str | None
    attempts: int
    first_at: str
    last_at: str
    resolved: int
    payload: str | None
    permanent: int | None = None  # 1: not worth retrying (no audio, too short, licence); NULL in older catalogs


def write_stage(db: sqlite3.Connection, clip_id: str, stage: str, status: str, reason: str | None = None,
                settings: dict | None = None) -> None:
    """Set a clip's stage status inside an open transaction (so a stage can commit it with its rows)."""
    db.execute(
        "INSERT INTO stage_status(clip_id, stage, status, attempts, reason, settings, updated_at) "
        "VALUES(?, ?, ?, 1, ?, ?, ?) ON CONFLICT(clip_id, stage) DO UPDATE SET status=excluded.status, "
        "attempts=stage_status.attempts+1, reason=excluded.reason, settings=excluded.settings, "
        "updated_at=excluded.updated_at",
        (clip_id, stage, status, reason, json.dumps(settings, sort_keys=True) if settings else None, now()))


def write_resolved(db: sqlite3.Connection, stage: str, item: str) -> None:
    """Close the ledger row of (stage, item) inside an open transaction."""
    db.execute("UPDATE failures SET resolved=1, last_at=? WHERE stage=? AND item=?", (now(), stage, item))


def _from_row(cls, row: sqlite3.Row):
    names = {f.name for f in fields(cls)}
    return cls(**{k: row[k] for k in row.keys() if k in names})


class Catalog:
    """Thin typed access to the workspace database. One connection per process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        self._lock = threading.RLock()

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; safe to use from several threads (one connection, one lock)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.db.close()

    def create_schema(self, meta: dict[str, str]) -> None:
        """Create tables and write meta in one transaction; 'initialised' is written last."""
        with self.tx() as db:
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    db.execute(stmt)
            for k, v in {**meta, "schema_version": str(SCHEMA_VERSION), "initialised": now()}.items():
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (k, v))

    def meta(self) -> dict[str, str]:
        try:
            return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}
        except sqlite3.OperationalError:
            return {}

    # -- sources --------------------------------------------------------------------------
    def upsert_source(self, src: Source) -> None:
        d = asdict(src)
        cols = ", ".join(d)
        marks = ", ".join("?" for _ in d)
        updates = ", ".join(f"{k}=excluded.{k}" for k in d if k != "source_id")
        with self.tx() as db:
            db.execute(f"INSERT INTO sources({cols}) VALUES({marks}) ON CONFLICT(source_id) DO UPDATE SET {updates}",
                       tuple(d.values()))

    def add_source_if_new(self, src: Source) -> bool:
        d = asdict(src)
        with self.tx() as db:
            cur = db.execute(f"INSERT OR IGNORE INTO sources({', '.join(d)}) VALUES({', '.join('?' for _ in d)})",
                             tuple(d.values()))
            return cur.rowcount > 0

    def source(self, source_id: str) -> Source | None:
        rows = self.query("SELECT * FROM sources WHERE source_id=?", (source_id,))
        return _from_row(Source, rows[0]) if rows else None

    def sources(self, status: str | None = None) -> list[Source]:
        if status:
            rows = self.query("SELECT * FROM sources WHERE status=? ORDER BY rowid", (status,))
        else:
            rows = self.query("SELECT * FROM sources ORDER BY rowid")
        return [_from_row(Source, r) for r in rows]

    def set_source_status(self, source_id: str, status: str, reason: str | None = None, **extra: Any) -> None:
        sets = ["status=?", "reason=?"] + [f"{k}=?" for k in extra]
        with self.tx() as db:
            db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE source_id=?",
                       (status, reason, *extra.values(), source_id))

    # -- clips ----------------------------------------------------------------------------
    def add_clip(self, clip: Clip) -> None:
        clip.created_at = clip.created_at or now()
        d = asdict(clip)
        with self.tx() as db:
            db.execute(f"INSERT OR REPLACE INTO clips({', '.join(d)}) VALUES({', '.join('?' for _ in d)})",
                       tuple(d.values()))
            db.execute("INSERT OR REPLACE INTO stage_status(clip_id, stage, status, attempts, updated_at) "
                       "VALUES(?, 'collect', 'done', 1, ?)", (clip.clip_id, now()))

    def clip(self, clip_id: str) -> Clip | None:
        rows = self.query("SELECT * FROM clips WHERE clip_id=?", (clip_id,))
        return _from_row(Clip, rows[0]) if rows else None

    def clips(self) -> list[Clip]:
        return [_from_row(Clip, r) for r in self.query("SELECT * FROM clips ORDER BY clip_id")]

    def clip_ids_for_source(self, source_id: str) -> list[str]:
        return [r[0] for r in self.query("SELECT clip_id FROM clips WHERE source_id=? ORDER BY clip_id", (source_id,))]

    # -- stage status and failures -----------------------------------------------------------
    def set_stage(self, clip_id: str, stage: str, status: str, reason: str | None = None,
                  settings: dict | None = None) -> None:
        with self.tx() as db:
            write_stage(db, clip_id, stage, status, reason, settings)

    def stage_of(self, clip_id: str, stage: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM stage_status WHERE clip_id=? AND stage=?", (clip_id, stage)).fetchone()

    def record_failure(self, stage: str, item: str, reason: str, detail: str | None = None,
                       payload: dict | None = None, permanent: bool = False) -> None:
        """Add or update the open ledger row of (stage, item). `permanent`: a rejection that a retry
        cannot change (no audio, too short, licence), which `--retry-failed` and `status` do not offer."""
        t = now()
        self._ensure_permanent_column()
        with self.tx() as db:
            db.execute(
                "INSERT INTO failures(stage, item, reason, detail, attempts, first_at, last_at, resolved, payload, "
                "permanent) VALUES(?, ?, ?, ?, 1, ?, ?, 0, ?, ?) ON CONFLICT(stage, item) DO UPDATE SET "
                "reason=excluded.reason, detail=excluded.detail, attempts=failures.attempts+1, last_at=excluded.last_at, "
                "resolved=0, payload=COALESCE(excluded.payload, failures.payload), permanent=excluded.permanent",
                (stage, item, reason, detail, t, t, json.dumps(payload, sort_keys=True) if payload else None,
                 int(bool(permanent))))

    def _ensure_permanent_column(self) -> None:
        """Catalogs made before the `permanent` column get it (NULL: not permanent) on their first new failure."""
        if getattr(self, "_has_permanent", False):
            return
        with self._lock:
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(failures)")}
            if "permanent" not in cols:
                self.db.execute("ALTER TABLE failures ADD COLUMN permanent INTEGER")
            self._has_permanent = True

    def resolve_failure(self, stage: str, item: str) -> None:
        with self.tx() as db:
            write_resolved(db, stage, item)

    def failures(self, stage: str | None = None, include_resolved: bool = False) -> list[Failure]:
        q = "SELECT * FROM failures WHERE 1=1"
        args: list[Any] = []
        if stage:
            q += " AND stage=?"
            args.append(stage)
        if not include_resolved:
            q += " AND resolved=0"
        return [_from_row(Failure, r) for r in self.query(q + " ORDER BY first_at, item", tuple(args))]

    def stage_counts(self) -> dict[str, dict[str, int]]:
        """{stage: {done, failed, pending}} for every stage in STAGES."""
        n_clips = self.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
        out: dict[str, dict[str, int]] = {}
        for stage in STAGES:
            if stage == "collect":
                done = n_clips
                failed = self.db.execute("SELECT COUNT(*) FROM failures WHERE stage='collect' AND resolved=0").fetchone()[0]
                pending = self.db.execute("SELECT COUNT(*) FROM sources WHERE status IN ('pending', 'downloaded')").fetchone()[0]
            else:
                rows = dict(self.db.execute(
                    "SELECT status, COUNT(*) FROM stage_status s JOIN clips c USING(clip_id) WHERE stage=? GROUP BY status",
                    (stage,)).fetchall())
                done, failed = rows.get("done", 0), rows.get("failed", 0)
                pending = max(n_clips - done - failed, 0)
            out[stage] = {"done": int(done), "failed": int(failed), "pending": int(pending)}
        return out

    def executemany(self, sql: str, rows: Iterable[tuple]) -> None:
        with self.tx() as db:
            db.executemany(sql, rows)
