"""Label Studio reviews (the pull stage): every pulled annotation, frame flags, object keys, the pull cursor.

Tables (schema version 4):
  studio_reviews   one row per pulled annotation (submitted, or cancelled: counted, no masks), with its
                   provenance and its regions (mask PNG path, fid, category, origin, texts) as JSON; every
                   annotator's work is kept here, the chosen one per frame becomes the clip's review set.
                   A row whose annotation, task or project is gone from the server is retracted
                   (`retracted_at`, `retracted_why`): kept as history, never listed by default, never chosen.
  frame_flags      (clip, second, flag): "silent" (no sounding object) and "unusable" (export leaves the
                   clip out), from the chosen review of the frame.
  studio_objects   (clip, key) -> fid: the object id given to a hand-drawn region (key "region:<ann>:<id>")
                   or to an expression text (key "text:<words>"), so a re-pull gives it the same fid.
  studio_cursor    per project: the newest task `updated_at` a pull has finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from avsbench_tools.catalog.connection import CatalogBase, write_resolved, write_stage
from avsbench_tools.catalog.records import MaskVersion, dumps, now

REVIEW_SET = "studio"  # the settings hash of every clip's review set rebuilt by pull
UNUSABLE = "unusable"
SILENT = "silent"

_MV_COLUMNS = ("clip_id, second, fid, kind, category, score, sounding, evidence, backend, settings_hash, "
               "settings_json, path, created_at, author")


@dataclass
class StudioReview:
    """A row of `studio_reviews`: one Label Studio annotation of one frame task, as pulled.

    regions: [{"region_id", "fid", "category", "origin", "path", "pixels", "partial_alpha", "texts"}];
    flags: the frame choices ("silent", "unusable"); status "submitted" | "cancelled" (no regions)."""

    project_key: str
    annotation_id: int
    task_id: int
    clip_id: str
    second: int
    status: str
    annotator: str | None = None
    annotator_id: int | None = None
    lead_time: float | None = None
    last_action: str | None = None
    parent_prediction: int | None = None
    model_version: str | None = None
    flags: list[str] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)
    ls_created_at: str | None = None
    ls_updated_at: str = ""
    pulled_at: str = ""
    retracted_at: str | None = None
    retracted_why: str | None = None

    @property
    def submitted(self) -> bool:
        return self.status == "submitted"

    def to_row(self) -> tuple:
        return (self.project_key, int(self.annotation_id), int(self.task_id), self.clip_id, int(self.second),
                self.status, self.annotator, self.annotator_id, self.lead_time, self.last_action,
                self.parent_prediction, self.model_version, dumps(sorted(self.flags)), dumps(self.regions),
                self.ls_created_at, self.ls_updated_at, self.pulled_at or now(), self.retracted_at, self.retracted_why)

    @classmethod
    def from_row(cls, r) -> StudioReview:
        return cls(r["project_key"], int(r["annotation_id"]), int(r["task_id"]), r["clip_id"], int(r["second"]),
                   r["status"], r["annotator"], r["annotator_id"], r["lead_time"], r["last_action"],
                   r["parent_prediction"], r["model_version"], json.loads(r["flags_json"]),
                   json.loads(r["regions_json"]), r["ls_created_at"], r["ls_updated_at"], r["pulled_at"],
                   r["retracted_at"], r["retracted_why"])


_REVIEW_COLUMNS = ("project_key, annotation_id, task_id, clip_id, second, status, annotator, annotator_id, lead_time, "
                   "last_action, parent_prediction, model_version, flags_json, regions_json, ls_created_at, "
                   "ls_updated_at, pulled_at, retracted_at, retracted_why")


@dataclass
class ClipReviews:
    """What a clip's chosen reviews make, written by `save_pull` in place of the clip's previous set.

    versions: the review MaskVersions (kind "review", settings hash REVIEW_SET); seconds: the reviewed
    seconds (with or without objects); flags: {second: ["silent" | "unusable"]}; objects: {fid: category};
    expressions: {fid: texts} replacing the texts of `reviewed_fids` (the fids any chosen review holds);
    done: every sampled second of the clip is reviewed (stage "pull" done, else "partial"; pending when no second
    is reviewed)."""

    versions: list[MaskVersion] = field(default_factory=list)
    seconds: list[int] = field(default_factory=list)
    flags: dict[int, list[str]] = field(default_factory=dict)
    objects: dict[int, str | None] = field(default_factory=dict)
    expressions: dict[int, list[str]] = field(default_factory=dict)
    reviewed_fids: set[int] = field(default_factory=set)
    done: bool = False


class ReviewMethods(CatalogBase):
    """Pulled annotations, frame flags, object keys, pull cursors, and the clip's review set."""

    def studio_reviews(self, clip_ids: Iterable[str] | None = None, project_key: str | None = None,
                       retracted: bool = False) -> list[StudioReview]:
        """Pulled annotations (of some clips, of one project), by clip, second, then annotation id: those the
        server still holds (with `retracted`, the retracted ones too: the history)."""
        sql, args = "SELECT * FROM studio_reviews WHERE 1=1", ()
        if project_key is not None:
            sql, args = sql + " AND project_key=?", (project_key,)
        if not retracted:
            sql += " AND retracted_at IS NULL"
        rows = self._only(self.query(sql + " ORDER BY clip_id, second, annotation_id", args), clip_ids)
        return [StudioReview.from_row(r) for r in rows]

    def live_annotations(self, project_key: str) -> dict[int, dict[int, str]]:
        """{task id: {annotation id: clip id}} of the project's pulled annotations not retracted."""
        out: dict[int, dict[int, str]] = {}
        for r in self.query("SELECT task_id, annotation_id, clip_id FROM studio_reviews WHERE project_key=? AND "
                            "retracted_at IS NULL", (project_key,)):
            out.setdefault(int(r[0]), {})[int(r[1])] = r[2]
        return out

    def paths_in_use(self, paths: Iterable[str]) -> set[str]:
        """The paths (relative) that a mask version or any pulled annotation (retracted ones too) names."""
        out = set()
        for p in set(paths):
            if self._one("SELECT 1 FROM mask_versions WHERE path=? LIMIT 1", (p,)) is not None or self._one(
                    "SELECT 1 FROM studio_reviews WHERE instr(regions_json, ?) > 0 LIMIT 1", (json.dumps(p),)):
                out.add(p)
        return out

    def category_changes(self, clip_id: str) -> list[tuple[str | None, str]]:
        """(old, new) of every set-category of a clip, oldest first."""
        return [(r[0], r[1]) for r in self.query("SELECT old, new FROM category_changes WHERE clip_id=? "
                                                 "ORDER BY changed_at, rowid", (clip_id,))]

    def review_stamps(self, project_key: str) -> dict[int, str]:
        """{annotation id: the Label Studio updated_at it was pulled at} of one project."""
        return {int(r[0]): r[1] for r in self.query(
            "SELECT annotation_id, ls_updated_at FROM studio_reviews WHERE project_key=?", (project_key,))}

    def pushed_frames(self) -> set[tuple[str, int]]:
        """(clip, second) of every frame pushed to any Label Studio project."""
        return {(r[0], int(r[1])) for r in self.query("SELECT DISTINCT clip_id, second FROM studio_tasks")}

    def pull_cursor(self, project_key: str) -> str | None:
        """The newest task updated_at the last finished pull of this project saw (None: never pulled)."""
        row = self._one("SELECT updated_at FROM studio_cursor WHERE project_key=?", (project_key,))
        return row[0] if row else None

    def studio_object_keys(self, clip_id: str) -> dict[str, int]:
        """{key: fid} of a clip's hand-drawn regions and expression texts (see the module docstring)."""
        return {r[0]: int(r[1]) for r in self.query("SELECT key, fid FROM studio_objects WHERE clip_id=?", (clip_id,))}

    def max_fid(self, clip_id: str) -> int:
        """The largest object id a clip uses anywhere (mask versions, objects, studio keys); -1 if none."""
        row = self._one("SELECT MAX(f) FROM (SELECT MAX(fid) AS f FROM mask_versions WHERE clip_id=? UNION ALL "
                        "SELECT MAX(fid) FROM objects WHERE clip_id=? UNION ALL "
                        "SELECT MAX(fid) FROM studio_objects WHERE clip_id=?)", (clip_id,) * 3)
        return -1 if row is None or row[0] is None else int(row[0])

    def frame_flags(self, flag: str | None = None) -> dict[tuple[str, int], set[str]]:
        """{(clip, second): flags} of every flagged frame (only `flag` when given)."""
        out: dict[tuple[str, int], set[str]] = {}
        for r in self.query("SELECT clip_id, second, flag FROM frame_flags ORDER BY clip_id, second"):
            if flag is None or r[2] == flag:
                out.setdefault((r[0], int(r[1])), set()).add(r[2])
        return out

    def clip_flags(self, clip_id: str) -> dict[int, set[str]]:
        """{second: flags} of a clip's flagged frames."""
        out: dict[int, set[str]] = {}
        for r in self.query("SELECT second, flag FROM frame_flags WHERE clip_id=?", (clip_id,)):
            out.setdefault(int(r[0]), set()).add(r[1])
        return out

    def versions_by_id(self, ids: Iterable[int]) -> list[MaskVersion]:
        """The mask versions with these ids (those still stored), by id."""
        wanted = sorted({int(i) for i in ids})
        out = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            out += [MaskVersion.from_row(r) for r in self.query(
                f"SELECT * FROM mask_versions WHERE version_id IN ({', '.join('?' * len(chunk))})", tuple(chunk))]
        return sorted(out, key=lambda v: v.version_id)

    def review_seconds(self, clip_id: str) -> set[int] | None:
        """The seconds a clip's current review set covers (frames reviewed, with or without objects), or
        None when no review set was saved: the set of the newest review version's settings, else the
        newest review set saved (a set of only silent frames has no versions)."""
        newest = self._one("SELECT settings_hash FROM mask_versions WHERE clip_id=? AND kind='review' "
                           "ORDER BY version_id DESC LIMIT 1", (clip_id,))
        if newest is not None:
            row = self._one("SELECT seconds_json FROM mask_sets WHERE clip_id=? AND kind='review' AND settings_hash=?",
                            (clip_id, newest[0]))
        else:
            row = self._one("SELECT seconds_json FROM mask_sets WHERE clip_id=? AND kind='review' "
                            "ORDER BY rowid DESC LIMIT 1", (clip_id,))
        return None if row is None else {int(s) for s in json.loads(row[0])}

    def clip_ids_reviewed(self) -> set[str]:
        """The clips with a saved review set (even one of only frames without a sounding object)."""
        return {r[0] for r in self.query("SELECT DISTINCT clip_id FROM mask_sets WHERE kind='review'")}

    def set_null_expressions(self, changes: dict[str, list[str]]) -> None:
        """Replace the null expressions (Ref-AVS test_n) of each clip in `changes` ({clip: texts}; [] clears
        them), keeping its other expressions, in one transaction."""
        with self.tx() as db:
            for clip_id, texts in changes.items():
                _set_null_expressions(db, clip_id, texts)

    def save_pull(self, project_key: str, reviews: list[StudioReview], object_keys: list[tuple[str, str, int]],
                  clips: dict[str, ClipReviews], cursor: str | None, settings: dict,
                  retract: Iterable[tuple[str, int, str]] = ()) -> None:
        """Store one batch of a pull in one transaction: the pulled annotations (replacing earlier pulls of
        the same annotation ids), the retraction of (project key, annotation id, why) rows the server no
        longer holds, new object keys (clip, key, fid), each touched clip's review set (its REVIEW_SET
        versions, set seconds, frame flags, objects, expressions of its reviewed objects, stage "pull" done
        or partial), and the project's cursor (when given)."""
        with self.tx() as db:
            db.executemany(f"INSERT OR REPLACE INTO studio_reviews({_REVIEW_COLUMNS}) "
                           f"VALUES({', '.join('?' * 19)})", [r.to_row() for r in reviews])
            t = now()
            db.executemany("UPDATE studio_reviews SET retracted_at=?, retracted_why=? WHERE project_key=? AND "
                           "annotation_id=? AND retracted_at IS NULL",
                           [(t, why, key, int(a)) for key, a, why in retract])
            db.executemany("INSERT OR IGNORE INTO studio_objects(clip_id, key, fid) VALUES(?, ?, ?)", object_keys)
            for clip_id, c in clips.items():
                _write_clip(db, clip_id, c, settings)
            if cursor is not None:
                db.execute("INSERT INTO studio_cursor(project_key, updated_at, pulled_at) VALUES(?, ?, ?) "
                           "ON CONFLICT(project_key) DO UPDATE SET updated_at=excluded.updated_at, "
                           "pulled_at=excluded.pulled_at", (project_key, cursor, now()))


def _write_clip(db, clip_id: str, c: ClipReviews, settings: dict) -> None:
    for v in c.versions:
        if (v.clip_id, v.kind, v.settings_hash) != (clip_id, "review", REVIEW_SET):
            raise ValueError(f"mask version {v.clip_id}/{v.kind}/{v.settings_hash} is not in {clip_id}'s review set")
    db.execute("DELETE FROM mask_versions WHERE clip_id=? AND kind='review' AND settings_hash=?", (clip_id, REVIEW_SET))
    db.executemany(f"INSERT INTO mask_versions({_MV_COLUMNS}) VALUES({', '.join('?' * 14)})",
                   [v.to_row() for v in c.versions])
    db.execute("INSERT OR REPLACE INTO mask_sets(clip_id, kind, settings_hash, seconds_json, created_at) "
               "VALUES(?, 'review', ?, ?, ?)", (clip_id, REVIEW_SET, json.dumps(sorted(set(c.seconds))), now()))
    db.execute("DELETE FROM frame_flags WHERE clip_id=?", (clip_id,))
    db.executemany("INSERT OR IGNORE INTO frame_flags(clip_id, second, flag) VALUES(?, ?, ?)",
                   [(clip_id, int(s), f) for s, flags in sorted(c.flags.items()) for f in flags])
    for fid, cat in sorted(c.objects.items()):
        texts = c.expressions.get(fid) or []
        db.execute("INSERT INTO objects(clip_id, fid, category, label) VALUES(?, ?, ?, ?) ON CONFLICT(clip_id, fid) "
                   "DO UPDATE SET category=COALESCE(excluded.category, objects.category), "
                   "label=COALESCE(excluded.label, objects.label)", (clip_id, int(fid), cat, texts[0] if texts else None))
    old = db.execute("SELECT fid, text, is_null FROM expressions WHERE clip_id=? ORDER BY n", (clip_id,)).fetchall()
    keep = [(r[0], r[1], int(r[2])) for r in old if r[2] or r[0] not in c.reviewed_fids]
    new = [(fid, t, 0) for fid in sorted(c.expressions) for t in c.expressions[fid]]
    rows, seen = [], set()
    for fid, text, is_null in keep + new:
        if (fid, text, is_null) not in seen:
            seen.add((fid, text, is_null))
            rows.append((clip_id, len(rows), fid, text, is_null))
    db.execute("DELETE FROM expressions WHERE clip_id=?", (clip_id,))
    db.executemany("INSERT INTO expressions(clip_id, n, fid, text, is_null) VALUES(?, ?, ?, ?, ?)", rows)
    if c.done:
        write_stage(db, clip_id, "pull", "done", None, settings)
        write_resolved(db, "pull", clip_id)
    elif c.seconds:
        write_stage(db, clip_id, "pull", "partial", None, settings)
    else:  # no reviewed second (only cancelled annotations, or every review retracted): not reviewed, pending
        db.execute("DELETE FROM stage_status WHERE clip_id=? AND stage='pull'", (clip_id,))


def _set_null_expressions(db, clip_id: str, texts: list[str]) -> None:
    old = db.execute("SELECT fid, text FROM expressions WHERE clip_id=? AND is_null=0 ORDER BY n", (clip_id,)).fetchall()
    rows = [(clip_id, i, r[0], r[1], 0) for i, r in enumerate(old)]
    rows += [(clip_id, len(old) + i, None, t, 1) for i, t in enumerate(dict.fromkeys(texts))]
    db.execute("DELETE FROM expressions WHERE clip_id=?", (clip_id,))
    db.executemany("INSERT INTO expressions(clip_id, n, fid, text, is_null) VALUES(?, ?, ?, ?, ?)", rows)

