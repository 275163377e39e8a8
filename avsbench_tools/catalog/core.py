"""Sources, clips, per-stage status (the one record of "done" per clip and stage) and the failure ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, fields
from typing import Any

from avsbench_tools.catalog.connection import CatalogBase, write_resolved, write_stage
from avsbench_tools.catalog.records import STAGES, Clip, Failure, Source, StageState, dumps, from_row, now

_SOURCE_FIELDS = {f.name for f in fields(Source)} - {"source_id"}


def _check_fields(names: Iterable[str]) -> None:
    bad = sorted(set(names) - _SOURCE_FIELDS)
    if bad:
        raise ValueError(f"sources has no column {', '.join(bad)}")


class CoreMethods(CatalogBase):
    """Sources, clips, stage status and the failure ledger."""

    # -- sources ------------------------------------------------------------------------------------
    def add_source_if_new(self, src: Source) -> bool:
        """Insert a source unless its id is known. True if it was new."""
        d = asdict(src)
        with self.tx() as db:
            cur = db.execute(f"INSERT OR IGNORE INTO sources({', '.join(d)}) VALUES({', '.join('?' for _ in d)})",
                             tuple(d.values()))
            return cur.rowcount > 0

    def source(self, source_id: str) -> Source | None:
        """The source with this id, or None."""
        row = self._one("SELECT * FROM sources WHERE source_id=?", (source_id,))
        return from_row(Source, row) if row else None

    def sources(self, status: str | None = None) -> list[Source]:
        """Every source (or those with `status`), in the order they were added."""
        if status:
            rows = self.query("SELECT * FROM sources WHERE status=? ORDER BY rowid", (status,))
        else:
            rows = self.query("SELECT * FROM sources ORDER BY rowid")
        return [from_row(Source, r) for r in rows]

    def set_source_status(self, source_id: str, status: str, reason: str | None = None, **extra: Any) -> None:
        """Set a source's status and reason, plus any other `Source` fields given (one transaction)."""
        _check_fields(extra)
        sets = ["status=?", "reason=?"] + [f"{k}=?" for k in extra]
        with self.tx() as db:
            db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE source_id=?",
                       (status, reason, *extra.values(), source_id))

    def update_source(self, source_id: str, **values: Any) -> None:
        """Set the given `Source` fields of one source (nothing else changes)."""
        if not values:
            return
        _check_fields(values)
        with self.tx() as db:
            db.execute(f"UPDATE sources SET {', '.join(f'{k}=?' for k in values)} WHERE source_id=?",
                       (*values.values(), source_id))

    # -- clips --------------------------------------------------------------------------------------
    def add_clip(self, clip: Clip) -> None:
        """Insert (or replace) a clip and mark its collect stage done, in one transaction."""
        clip.created_at = clip.created_at or now()
        d = asdict(clip)
        with self.tx() as db:
            db.execute(f"INSERT OR REPLACE INTO clips({', '.join(d)}) VALUES({', '.join('?' for _ in d)})",
                       tuple(d.values()))
            db.execute("INSERT OR REPLACE INTO stage_status(clip_id, stage, status, attempts, updated_at) "
                       "VALUES(?, 'collect', 'done', 1, ?)", (clip.clip_id, now()))

    def clip(self, clip_id: str) -> Clip | None:
        """The clip with this id, or None."""
        row = self._one("SELECT * FROM clips WHERE clip_id=?", (clip_id,))
        return from_row(Clip, row) if row else None

    def clips(self, ids: Iterable[str] | None = None) -> list[Clip]:
        """Every clip (or those whose id is in `ids`; unknown ids are left out), by clip id."""
        return [from_row(Clip, r) for r in self._only(self.query("SELECT * FROM clips ORDER BY clip_id"), ids)]

    def clip_ids_for_source(self, source_id: str) -> list[str]:
        """The ids of the clips cut from a source, sorted."""
        return [r[0] for r in self.query("SELECT clip_id FROM clips WHERE source_id=? ORDER BY clip_id", (source_id,))]

    def count_clips(self) -> int:
        """How many clips the workspace has."""
        return int(self._one("SELECT COUNT(*) FROM clips")[0])

    # -- stage status -------------------------------------------------------------------------------
    def stage_states(self, stage: str | None = None) -> list[StageState]:
        """Every stage record (or one stage's), by clip id then stage."""
        if stage:
            rows = self.query("SELECT * FROM stage_status WHERE stage=? ORDER BY clip_id", (stage,))
        else:
            rows = self.query("SELECT * FROM stage_status ORDER BY clip_id, stage")
        return [StageState.from_row(r) for r in rows]

    def clip_ids_done(self, stage: str) -> list[str]:
        """The ids of the clips whose `stage` is done, sorted."""
        return [r[0] for r in self.query(
            "SELECT s.clip_id FROM stage_status s JOIN clips c USING(clip_id) WHERE s.stage=? AND s.status='done' "
            "ORDER BY s.clip_id", (stage,))]

    def finish(self, stage: str, clip_id: str, settings: dict | None = None) -> None:
        """Mark a clip's stage done with its settings and close its open ledger row, in one transaction."""
        self.finish_many(stage, [clip_id], settings)

    def finish_many(self, stage: str, clip_ids: Iterable[str], settings: dict | None = None) -> None:
        """`finish` for several clips, all in one transaction."""
        with self.tx() as db:
            for cid in clip_ids:
                write_stage(db, cid, stage, "done", None, settings)
                write_resolved(db, stage, cid)

    def stage_counts(self) -> dict[str, dict[str, int]]:
        """{stage: {done, failed, pending}} for every stage in STAGES (collect: clips, open failures, sources left)."""
        with self._lock:
            n_clips = self.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
            out: dict[str, dict[str, int]] = {}
            for stage in STAGES:
                if stage == "collect":
                    done = n_clips
                    failed = self.db.execute(
                        "SELECT COUNT(*) FROM failures WHERE stage='collect' AND resolved=0").fetchone()[0]
                    pending = self.db.execute(
                        "SELECT COUNT(*) FROM sources WHERE status IN ('pending', 'downloaded')").fetchone()[0]
                else:
                    rows = dict(self.db.execute(
                        "SELECT status, COUNT(*) FROM stage_status s JOIN clips c USING(clip_id) WHERE stage=? "
                        "GROUP BY status", (stage,)).fetchall())
                    done, failed = rows.get("done", 0), rows.get("failed", 0)
                    pending = max(n_clips - done - failed, 0)
                out[stage] = {"done": int(done), "failed": int(failed), "pending": int(pending)}
        return out

    # -- the failure ledger -------------------------------------------------------------------------
    def _write_failure(self, db: sqlite3.Connection, stage: str, item: str, reason: str, detail: str | None,
                       payload: dict | None, permanent: bool) -> None:
        t = now()
        db.execute(
            "INSERT INTO failures(stage, item, reason, detail, attempts, first_at, last_at, resolved, payload, "
            "permanent) VALUES(?, ?, ?, ?, 1, ?, ?, 0, ?, ?) ON CONFLICT(stage, item) DO UPDATE SET "
            "reason=excluded.reason, detail=excluded.detail, attempts=failures.attempts+1, last_at=excluded.last_at, "
            "resolved=0, payload=COALESCE(excluded.payload, failures.payload), permanent=excluded.permanent",
            (stage, item, reason, detail, t, t, dumps(payload) if payload else None, int(bool(permanent))))

    def record_failure(self, stage: str, item: str, reason: str, detail: str | None = None,
                       payload: dict | None = None, permanent: bool = False) -> None:
        """Add or update the open ledger row of (stage, item) only (see `fail`). `permanent`: a rejection
        that a retry cannot change (no audio, too short, licence), which `--retry-failed` and `status` do not offer."""
        self._ensure_permanent_column()
        with self.tx() as db:
            self._write_failure(db, stage, item, reason, detail, payload, permanent)

    def fail(self, stage: str, item: str, reason: str, detail: str | None = None, payload: dict | None = None,
             permanent: bool = False, settings: dict | None = None) -> None:
        """Record a failure: the ledger row of (stage, item) and, when `item` is a clip id, the clip's
        status 'failed' in `stage` (with `reason` and `settings`), in one transaction."""
        self._ensure_permanent_column()
        with self.tx() as db:
            self._write_failure(db, stage, item, reason, detail, payload, permanent)
            if db.execute("SELECT 1 FROM clips WHERE clip_id=?", (item,)).fetchone() is not None:
                write_stage(db, item, stage, "failed", reason, settings)

    def _ensure_permanent_column(self) -> None:
        """A catalog whose failures table lost `permanent` (made before it existed) gets it back (NULL: not permanent)."""
        if getattr(self, "_has_permanent", False):
            return
        with self._lock:
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(failures)")}
            if "permanent" not in cols:
                self.db.execute("ALTER TABLE failures ADD COLUMN permanent INTEGER")
            self._has_permanent = True

    def resolve_failure(self, stage: str, item: str) -> None:
        """Close the open ledger row of (stage, item), if any."""
        with self.tx() as db:
            write_resolved(db, stage, item)

    def failures(self, stage: str | None = None, include_resolved: bool = False) -> list[Failure]:
        """Open ledger rows (all with include_resolved), of one stage or all, oldest first."""
        q = "SELECT * FROM failures WHERE 1=1"
        args: list[Any] = []
        if stage:
            q += " AND stage=?"
            args.append(stage)
        if not include_resolved:
            q += " AND resolved=0"
        return [from_row(Failure, r) for r in self.query(q + " ORDER BY first_at, item", tuple(args))]
