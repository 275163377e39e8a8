PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('recipe','synthetic-avsbench-ms3');
INSERT INTO meta VALUES('recipe_digest','d182f39c97e964be');
INSERT INTO meta VALUES('schema_version','3');
INSERT INTO meta VALUES('initialised','2026-12-06T10:18:56Z');
INSERT INTO meta VALUES('studio.ws_id','152177a37bacb075');
INSERT INTO meta VALUES('studio.project:http://127.0.0.1:46559','1');
INSERT INTO meta VALUES('studio.project:http://127.0.0.1:39363','1');
CREATE TABLE sources(
  source_id TEXT PRIMARY KEY, kind TEXT NOT NULL, url TEXT, video_id TEXT, title TEXT,
  uploader TEXT, license TEXT, duration REAL, width INTEGER, height INTEGER, keyword TEXT,
  category TEXT, start REAL, split_hint TEXT, path TEXT, status TEXT NOT NULL DEFAULT 'pending',
  reason TEXT, fetched_at TEXT, info_json TEXT);
INSERT INTO sources VALUES('local-sy005000000-4254bf81','local',NULL,'sy005000000-4254bf81','sy005000000.mp4',NULL,'own footage (local file)',5.0,160,120,NULL,'guitar',NULL,NULL,'/tmp/engA/gen/world/videos/sy005000000.mp4','done',NULL,'2026-12-06T10:18:56Z',NULL);
CREATE TABLE clips(
  clip_id TEXT PRIMARY KEY, source_id TEXT NOT NULL, start REAL NOT NULL, seconds INTEGER NOT NULL,
  category TEXT, path TEXT NOT NULL, fps REAL, width INTEGER, height INTEGER, n_frames INTEGER,
  has_audio INTEGER, split TEXT, created_at TEXT NOT NULL);
INSERT INTO clips VALUES('sy005000000-4254bf81_0','local-sy005000000-4254bf81',0.0,5,'guitar','clips/sy005000000-4254bf81_0.mp4',25.0,160,120,125,1,NULL,'2026-12-06T10:18:57Z');
CREATE TABLE stage_status(
  clip_id TEXT NOT NULL, stage TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  reason TEXT, settings TEXT, updated_at TEXT NOT NULL, PRIMARY KEY(clip_id, stage));
INSERT INTO stage_status VALUES('sy005000000-4254bf81_0','collect','done',1,NULL,NULL,'2026-12-06T10:18:57Z');
INSERT INTO stage_status VALUES('sy005000000-4254bf81_0','sample','done',1,NULL,'{"audio_rate": 16000, "frame_format": "png", "rule": "end-of-second", "version": 1}','2026-12-06T10:18:57Z');
INSERT INTO stage_status VALUES('sy005000000-4254bf81_0','preannotate','done',1,NULL,'{"analysis_side": 320, "audio_gating": "sample-activity", "backend": "motion", "border_share": 0.3, "border_sides": 3, "link": "flow-tracker", "max_objects_per_clip": 4, "min_displacement_px": 1.5, "min_motion_ratio": 1.5, "prompts": "recipe", "refine": "grabcut", "span_s": 0.4, "version": 1}','2026-12-06T10:18:57Z');
INSERT INTO stage_status VALUES('sy005000000-4254bf81_0','push','done',2,NULL,'{"model_versions": ["motion:7aeafcaed5c0"], "project": 1, "url": "http://127.0.0.1:39363"}','2026-12-06T10:19:47Z');
INSERT INTO stage_status VALUES('sy005000000-4254bf81_0','pull','partial',2,NULL,'{"alpha_threshold": 128, "choice": "latest-submitted", "project": "http://127.0.0.1:39363#1", "source": "label-studio"}','2026-12-06T10:19:49Z');
CREATE TABLE failures(
  stage TEXT NOT NULL, item TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT,
  attempts INTEGER NOT NULL DEFAULT 1, first_at TEXT NOT NULL, last_at TEXT NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0, payload TEXT, permanent INTEGER, PRIMARY KEY(stage, item));
CREATE TABLE frames(
  clip_id TEXT NOT NULL, second INTEGER NOT NULL, frame_index INTEGER NOT NULL, pts REAL NOT NULL,
  path TEXT NOT NULL, width INTEGER, height INTEGER, PRIMARY KEY(clip_id, second));
INSERT INTO frames VALUES('sy005000000-4254bf81_0',0,23,0.92000000000000003996,'frames/sy005000000-4254bf81_0/0.png',160,120);
INSERT INTO frames VALUES('sy005000000-4254bf81_0',1,48,1.9199999999999999289,'frames/sy005000000-4254bf81_0/1.png',160,120);
INSERT INTO frames VALUES('sy005000000-4254bf81_0',2,73,2.9199999999999999289,'frames/sy005000000-4254bf81_0/2.png',160,120);
INSERT INTO frames VALUES('sy005000000-4254bf81_0',3,98,3.9199999999999999289,'frames/sy005000000-4254bf81_0/3.png',160,120);
INSERT INTO frames VALUES('sy005000000-4254bf81_0',4,123,4.9199999999999999289,'frames/sy005000000-4254bf81_0/4.png',160,120);
CREATE TABLE audio(
  clip_id TEXT PRIMARY KEY, wav_path TEXT NOT NULL, logmel_path TEXT NOT NULL, sample_rate INTEGER,
  channels INTEGER, n_examples INTEGER, activity_json TEXT, embedding_path TEXT);
INSERT INTO audio VALUES('sy005000000-4254bf81_0','audio/sy005000000-4254bf81_0.wav','audio/sy005000000-4254bf81_0.logmel.npy',16000,2,5,'{"level_db": [-73.63, -22.13, -17.97, -18.31, -18.31], "floor_db": -74.44, "relative_db": [0.81, 52.3, 56.46, 56.13, 56.13], "active": [false, true, true, true, true], "params": {"window_s": 0.02, "floor_percentile": 10, "level_percentile": 90, "min_relative_db": 10.0, "abs_silence_db": -60.0, "abs_loud_db": -30.0}, "info": {"n_frames": 125, "fps": 25.0, "vfr": false, "rotation": 0, "audio_seconds": 5.0, "source_rate": 44100, "source_channels": 2, "decoded_frames": 88}}',NULL);
CREATE TABLE objects(
  clip_id TEXT NOT NULL, fid INTEGER NOT NULL, category TEXT, label TEXT, PRIMARY KEY(clip_id, fid));
INSERT INTO objects VALUES('sy005000000-4254bf81_0',0,'guitar',NULL);
CREATE TABLE expressions(
  clip_id TEXT NOT NULL, n INTEGER NOT NULL, fid INTEGER, text TEXT NOT NULL, is_null INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(clip_id, n));
CREATE TABLE mask_versions(
  version_id INTEGER PRIMARY KEY AUTOINCREMENT, clip_id TEXT NOT NULL, second INTEGER NOT NULL,
  fid INTEGER NOT NULL, kind TEXT NOT NULL, category TEXT, score REAL, sounding INTEGER,
  evidence TEXT, backend TEXT, settings_hash TEXT, settings_json TEXT, path TEXT NOT NULL,
  created_at TEXT NOT NULL, author TEXT);
INSERT INTO mask_versions VALUES(1,'sy005000000-4254bf81_0',0,0,'proposal','guitar',0.51331639289855957031,0,'{"activity_active": false, "activity_rel_db": 0.81, "backend": "motion", "box": [20.0, 46.0, 127.0, 118.0], "frames_from_key": 25, "ids_in_clip": 1, "key_second": 1, "lost": false, "tracked": true, "tracker": "flow"}','motion','7aeafcaed5c0','{"analysis_side": 320, "audio_gating": "sample-activity", "backend": "motion", "border_share": 0.3, "border_sides": 3, "link": "flow-tracker", "max_objects_per_clip": 4, "min_displacement_px": 1.5, "min_motion_ratio": 1.5, "prompts": "recipe", "refine": "grabcut", "span_s": 0.4, "version": 1}','masks/sy005000000-4254bf81_0/proposal-7aeafcaed5c0/0_0.png','2026-12-06T10:18:57Z',NULL);
INSERT INTO mask_versions VALUES(2,'sy005000000-4254bf81_0',1,0,'proposal','guitar',0.51331639289855957031,1,'{"activity_active": true, "activity_rel_db": 52.3, "backend": "motion", "box": [18.0, 50.0, 127.0, 120.0], "ids_in_clip": 1, "key_frame": true, "key_second": 1, "lost": false, "motion_score": 0.5133, "tracked": false, "tracker": "flow"}','motion','7aeafcaed5c0','{"analysis_side": 320, "audio_gating": "sample-activity", "backend": "motion", "border_share": 0.3, "border_sides": 3, "link": "flow-tracker", "max_objects_per_clip": 4, "min_displacement_px": 1.5, "min_motion_ratio": 1.5, "prompts": "recipe", "refine": "grabcut", "span_s": 0.4, "version": 1}','masks/sy005000000-4254bf81_0/proposal-7aeafcaed5c0/1_0.png','2026-12-06T10:18:57Z',NULL);
INSERT INTO mask_versions VALUES(3,'sy005000000-4254bf81_0',2,0,'proposal','guitar',0.51331639289855957031,1,'{"activity_active": true, "activity_rel_db": 56.46, "backend": "motion", "box": [14.0, 43.0, 143.0, 120.0], "frames_from_key": 25, "ids_in_clip": 1, "key_second": 1, "lost": false, "tracked": true, "tracker": "flow"}','motion','7aeafcaed5c0','{"analysis_side": 320, "audio_gating": "sample-activity", "backend": "motion", "border_share": 0.3, "border_sides": 3, "link": "flow-tracker", "max_objects_per_clip": 4, "min_displacement_px": 1.5, "min_motion_ratio": 1.5, "prompts": "recipe", "refine": "grabcut", "span_s": 0.4, "version": 1}','masks/sy005000000-4254bf81_0/proposal-7aeafcaed5c0/2_0.png','2026-12-06T10:18:57Z',NULL);
INSERT INTO mask_versions VALUES(4,'sy005000000-4254bf81_0',3,0,'proposal','guitar',0.51331639289855957031,1,'{"activity_active": true, "activity_rel_db": 56.13, "backend": "motion", "box": [11.0, 36.0, 159.0, 120.0], "frames_from_key": 50, "ids_in_clip": 1, "key_second": 1, "lost": false, "tracked": true, "tracker": "flow"}','motion','7aeafcaed5c0','{"analysis_side": 320, "audio_gating": "sample-activity", "backend": "motion", "border_share": 0.3, "border_sides": 3, "link": "flow-tracker", "max_objects_per_clip": 4, "min_displacement_px": 1.5, "min_motion_ratio": 1.5, "prompts": "recipe", "refine": "grabcut", "span_s": 0.4, "version": 1}','masks/sy005000000-4254bf81_0/proposal-7aeafcaed5c0/3_0.png','2026-12-06T10:18:57Z',NULL);
INSERT INTO mask_versions VALUES(5,'sy005000000-4254bf81_0',4,0,'proposal','guitar',0.51331639289855957031,1,'{"activity_active": true, "activity_rel_db": 56.13, "backend": "motion", "box": [7.0, 28.0, 154.0, 120.0], "frames_from_key": 75, "ids_in_clip": 1, "key_second": 1, "lost": false, "refined": true, "tracked": true, "tracker": "flow"}','motion','7aeafcaed5c0','{"analysis_side": 320, "audio_gating": "sample-activity", "backend": "motion", "border_share": 0.3, "border_sides": 3, "link": "flow-tracker", "max_objects_per_clip": 4, "min_displacement_px": 1.5, "min_motion_ratio": 1.5, "prompts": "recipe", "refine": "grabcut", "span_s": 0.4, "version": 1}','masks/sy005000000-4254bf81_0/proposal-7aeafcaed5c0/4_0.png','2026-12-06T10:18:57Z',NULL);
INSERT INTO mask_versions VALUES(9,'sy005000000-4254bf81_0',0,0,'review','guitar',1.0,1,'{"alpha_threshold": 128, "annotation_id": 1, "annotator": "admin@avs-tools.local", "annotator_id": 1, "annotators": 2, "box": [20.0, 46.0, 127.0, 118.0], "choice": "latest-submitted", "last_action": null, "lead_time": 5.0, "lost": false, "model_version": "motion:7aeafcaed5c0", "origin": "prediction", "parent_prediction": 1, "partial_alpha_pixels": 0, "project": "http://127.0.0.1:46559#1", "region_id": "o0", "task_id": 1, "tracked": false, "updated_at": "2026-12-06T10:19:31.896630Z"}','studio','studio','{"alpha_threshold": 128, "choice": "latest-submitted", "source": "label-studio"}','masks/sy005000000-4254bf81_0/studio/0_a1_101931896630_0.png','2026-12-06T10:19:49Z','admin@avs-tools.local');
INSERT INTO mask_versions VALUES(10,'sy005000000-4254bf81_0',1,0,'review','guitar',1.0,1,'{"alpha_threshold": 128, "annotation_id": 2, "annotator": "admin@avs-tools.local", "annotator_id": 1, "annotators": 2, "box": [18.0, 50.0, 127.0, 120.0], "choice": "latest-submitted", "last_action": null, "lead_time": 6.0, "lost": false, "model_version": "motion:7aeafcaed5c0", "origin": "prediction", "parent_prediction": 2, "partial_alpha_pixels": 0, "project": "http://127.0.0.1:46559#1", "region_id": "o0", "task_id": 2, "tracked": false, "updated_at": "2026-12-06T10:19:32.066540Z"}','studio','studio','{"alpha_threshold": 128, "choice": "latest-submitted", "source": "label-studio"}','masks/sy005000000-4254bf81_0/studio/1_a2_101932066540_0.png','2026-12-06T10:19:49Z','admin@avs-tools.local');
INSERT INTO mask_versions VALUES(11,'sy005000000-4254bf81_0',2,0,'review','guitar',1.0,1,'{"alpha_threshold": 128, "annotation_id": 3, "annotator": "admin@avs-tools.local", "annotator_id": 1, "annotators": 2, "box": [14.0, 43.0, 143.0, 120.0], "choice": "latest-submitted", "last_action": null, "lead_time": 7.0, "lost": false, "model_version": "motion:7aeafcaed5c0", "origin": "prediction", "parent_prediction": 3, "partial_alpha_pixels": 0, "project": "http://127.0.0.1:46559#1", "region_id": "o0", "task_id": 3, "tracked": false, "updated_at": "2026-12-06T10:19:32.227962Z"}','studio','studio','{"alpha_threshold": 128, "choice": "latest-submitted", "source": "label-studio"}','masks/sy005000000-4254bf81_0/studio/2_a3_101932227962_0.png','2026-12-06T10:19:49Z','admin@avs-tools.local');
CREATE TABLE mask_sets(
  clip_id TEXT NOT NULL, kind TEXT NOT NULL, settings_hash TEXT NOT NULL, seconds_json TEXT NOT NULL,
  created_at TEXT NOT NULL, PRIMARY KEY(clip_id, kind, settings_hash));
INSERT INTO mask_sets VALUES('sy005000000-4254bf81_0','proposal','7aeafcaed5c0','[0, 1, 2, 3, 4]','2026-12-06T10:18:57Z');
INSERT INTO mask_sets VALUES('sy005000000-4254bf81_0','review','studio','[0, 1, 2]','2026-12-06T10:19:49Z');
CREATE TABLE fingerprints(
  clip_id TEXT PRIMARY KEY, frames TEXT NOT NULL, audio BLOB NOT NULL, n_audio INTEGER NOT NULL);
CREATE TABLE studio_tasks(
  project_key TEXT NOT NULL, clip_id TEXT NOT NULL, second INTEGER NOT NULL, task_id INTEGER NOT NULL,
  created_at TEXT NOT NULL, PRIMARY KEY(project_key, clip_id, second));
INSERT INTO studio_tasks VALUES('http://127.0.0.1:46559#1','sy005000000-4254bf81_0',0,1,'2026-12-06T10:19:30Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:46559#1','sy005000000-4254bf81_0',1,2,'2026-12-06T10:19:30Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:46559#1','sy005000000-4254bf81_0',2,3,'2026-12-06T10:19:30Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:46559#1','sy005000000-4254bf81_0',3,4,'2026-12-06T10:19:30Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:46559#1','sy005000000-4254bf81_0',4,5,'2026-12-06T10:19:30Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:39363#1','sy005000000-4254bf81_0',0,1,'2026-12-06T10:19:47Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:39363#1','sy005000000-4254bf81_0',1,2,'2026-12-06T10:19:47Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:39363#1','sy005000000-4254bf81_0',2,3,'2026-12-06T10:19:47Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:39363#1','sy005000000-4254bf81_0',3,4,'2026-12-06T10:19:47Z');
INSERT INTO studio_tasks VALUES('http://127.0.0.1:39363#1','sy005000000-4254bf81_0',4,5,'2026-12-06T10:19:47Z');
CREATE TABLE studio_predictions(
  project_key TEXT NOT NULL, task_id INTEGER NOT NULL, model_version TEXT NOT NULL, prediction_id INTEGER NOT NULL,
  version_ids TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY(project_key, task_id, model_version));
INSERT INTO studio_predictions VALUES('http://127.0.0.1:46559#1',1,'motion:7aeafcaed5c0',1,'[1]','2026-12-06T10:19:30Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:46559#1',2,'motion:7aeafcaed5c0',2,'[2]','2026-12-06T10:19:30Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:46559#1',3,'motion:7aeafcaed5c0',3,'[3]','2026-12-06T10:19:30Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:46559#1',4,'motion:7aeafcaed5c0',4,'[4]','2026-12-06T10:19:30Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:46559#1',5,'motion:7aeafcaed5c0',5,'[5]','2026-12-06T10:19:30Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:39363#1',1,'motion:7aeafcaed5c0',1,'[1]','2026-12-06T10:19:47Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:39363#1',2,'motion:7aeafcaed5c0',2,'[2]','2026-12-06T10:19:47Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:39363#1',3,'motion:7aeafcaed5c0',3,'[3]','2026-12-06T10:19:47Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:39363#1',4,'motion:7aeafcaed5c0',4,'[4]','2026-12-06T10:19:47Z');
INSERT INTO studio_predictions VALUES('http://127.0.0.1:39363#1',5,'motion:7aeafcaed5c0',5,'[5]','2026-12-06T10:19:47Z');
CREATE TABLE studio_reviews(
  project_key TEXT NOT NULL, annotation_id INTEGER NOT NULL, task_id INTEGER NOT NULL, clip_id TEXT NOT NULL,
  second INTEGER NOT NULL, status TEXT NOT NULL, annotator TEXT, annotator_id INTEGER, lead_time REAL,
  last_action TEXT, parent_prediction INTEGER, model_version TEXT, flags_json TEXT NOT NULL,
  regions_json TEXT NOT NULL, ls_created_at TEXT, ls_updated_at TEXT NOT NULL, pulled_at TEXT NOT NULL,
  PRIMARY KEY(project_key, annotation_id));
INSERT INTO studio_reviews VALUES('http://127.0.0.1:46559#1',1,1,'sy005000000-4254bf81_0',0,'submitted','admin@avs-tools.local',1,5.0,NULL,1,'motion:7aeafcaed5c0','[]','[{"box": [20.0, 46.0, 127.0, 118.0], "category": "guitar", "fid": 0, "origin": "prediction", "partial_alpha": 0, "path": "masks/sy005000000-4254bf81_0/studio/0_a1_101931896630_0.png", "pixels": 4237, "region_id": "o0", "texts": []}]','2026-12-06T10:19:31.896612Z','2026-12-06T10:19:31.896630Z','2026-12-06T10:19:33Z');
INSERT INTO studio_reviews VALUES('http://127.0.0.1:46559#1',2,2,'sy005000000-4254bf81_0',1,'submitted','admin@avs-tools.local',1,6.0,NULL,2,'motion:7aeafcaed5c0','[]','[{"box": [18.0, 50.0, 127.0, 120.0], "category": "guitar", "fid": 0, "origin": "prediction", "partial_alpha": 0, "path": "masks/sy005000000-4254bf81_0/studio/1_a2_101932066540_0.png", "pixels": 4383, "region_id": "o0", "texts": []}]','2026-12-06T10:19:32.066522Z','2026-12-06T10:19:32.066540Z','2026-12-06T10:19:33Z');
INSERT INTO studio_reviews VALUES('http://127.0.0.1:46559#1',3,3,'sy005000000-4254bf81_0',2,'submitted','admin@avs-tools.local',1,7.0,NULL,3,'motion:7aeafcaed5c0','[]','[{"box": [14.0, 43.0, 143.0, 120.0], "category": "guitar", "fid": 0, "origin": "prediction", "partial_alpha": 0, "path": "masks/sy005000000-4254bf81_0/studio/2_a3_101932227962_0.png", "pixels": 5614, "region_id": "o0", "texts": []}]','2026-12-06T10:19:32.227932Z','2026-12-06T10:19:32.227962Z','2026-12-06T10:19:33Z');
INSERT INTO studio_reviews VALUES('http://127.0.0.1:39363#1',1,1,'sy005000000-4254bf81_0',0,'submitted','admin@avs-tools.local',1,5.0,NULL,1,'motion:7aeafcaed5c0','[]','[{"box": [20.0, 46.0, 127.0, 118.0], "category": "guitar", "fid": 0, "origin": "prediction", "partial_alpha": 0, "path": "masks/sy005000000-4254bf81_0/studio/0_a1_101931896630_0.png", "pixels": 4237, "region_id": "o0", "texts": []}]','2026-12-06T10:19:31.896612Z','2026-12-06T10:19:31.896630Z','2026-12-06T10:19:49Z');
INSERT INTO studio_reviews VALUES('http://127.0.0.1:39363#1',2,2,'sy005000000-4254bf81_0',1,'submitted','admin@avs-tools.local',1,6.0,NULL,2,'motion:7aeafcaed5c0','[]','[{"box": [18.0, 50.0, 127.0, 120.0], "category": "guitar", "fid": 0, "origin": "prediction", "partial_alpha": 0, "path": "masks/sy005000000-4254bf81_0/studio/1_a2_101932066540_0.png", "pixels": 4383, "region_id": "o0", "texts": []}]','2026-12-06T10:19:32.066522Z','2026-12-06T10:19:32.066540Z','2026-12-06T10:19:49Z');
INSERT INTO studio_reviews VALUES('http://127.0.0.1:39363#1',3,3,'sy005000000-4254bf81_0',2,'submitted','admin@avs-tools.local',1,7.0,NULL,3,'motion:7aeafcaed5c0','[]','[{"box": [14.0, 43.0, 143.0, 120.0], "category": "guitar", "fid": 0, "origin": "prediction", "partial_alpha": 0, "path": "masks/sy005000000-4254bf81_0/studio/2_a3_101932227962_0.png", "pixels": 5614, "region_id": "o0", "texts": []}]','2026-12-06T10:19:32.227932Z','2026-12-06T10:19:32.227962Z','2026-12-06T10:19:49Z');
CREATE TABLE frame_flags(
  clip_id TEXT NOT NULL, second INTEGER NOT NULL, flag TEXT NOT NULL, PRIMARY KEY(clip_id, second, flag));
CREATE TABLE studio_objects(
  clip_id TEXT NOT NULL, key TEXT NOT NULL, fid INTEGER NOT NULL, PRIMARY KEY(clip_id, key));
CREATE TABLE studio_cursor(
  project_key TEXT PRIMARY KEY, updated_at TEXT NOT NULL, pulled_at TEXT NOT NULL);
INSERT INTO studio_cursor VALUES('http://127.0.0.1:46559#1','2026-12-06T10:19:32.267338Z','2026-12-06T10:19:33Z');
INSERT INTO studio_cursor VALUES('http://127.0.0.1:39363#1','2026-12-06T10:19:32.267338Z','2026-12-06T10:19:49Z');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('mask_versions',11);
CREATE INDEX studio_reviews_clip ON studio_reviews(clip_id, second);
CREATE INDEX mask_versions_clip ON mask_versions(clip_id, second);
CREATE INDEX clips_source ON clips(source_id);
CREATE INDEX stage_status_stage ON stage_status(stage, status);
COMMIT;
