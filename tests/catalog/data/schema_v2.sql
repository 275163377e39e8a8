-- The catalog schema version 2 (avsbench_tools/catalog/schema.py at commit aa2a0a0), frozen for the v2 -> v3 upgrade test.
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
CREATE INDEX IF NOT EXISTS mask_versions_clip ON mask_versions(clip_id, second);
CREATE INDEX IF NOT EXISTS clips_source ON clips(source_id);
CREATE INDEX IF NOT EXISTS stage_status_stage ON stage_status(stage, status);
