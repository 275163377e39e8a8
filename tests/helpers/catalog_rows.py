"""Catalog rows a test puts in place directly, where production writes them only as part of a stage's own
transaction (a Label Studio pull writes objects, expressions and the "pull" state; each stage its own state).
The catalog has no method for these alone: no code but the tests would call it."""

from __future__ import annotations

from collections.abc import Iterable

from avsbench_tools.catalog import Catalog, Expression, ObjectRecord, StageState
from avsbench_tools.catalog.connection import write_stage


def put_objects(cat: Catalog, clip_id: str, objects: Iterable[ObjectRecord]) -> None:
    """Replace the clip's objects."""
    with cat.tx() as db:
        db.execute("DELETE FROM objects WHERE clip_id=?", (clip_id,))
        db.executemany("INSERT INTO objects(clip_id, fid, category, label) VALUES(?, ?, ?, ?)",
                       [(clip_id, o.fid, o.category, o.label) for o in objects])


def put_expressions(cat: Catalog, clip_id: str, expressions: Iterable[Expression]) -> None:
    """Replace the clip's referring expressions."""
    with cat.tx() as db:
        db.execute("DELETE FROM expressions WHERE clip_id=?", (clip_id,))
        db.executemany("INSERT INTO expressions(clip_id, n, fid, text, is_null) VALUES(?, ?, ?, ?, ?)",
                       [(clip_id, e.n, e.fid, e.text, int(e.is_null)) for e in expressions])


def put_stage(cat: Catalog, clip_id: str, stage: str, status: str, reason: str | None = None,
              settings: dict | None = None) -> None:
    """Set a clip's status in a stage (a state no stage of the test wrote: "partial", a failure without a ledger)."""
    with cat.tx() as db:
        write_stage(db, clip_id, stage, status, reason, settings)


def stage_of(cat: Catalog, clip_id: str, stage: str) -> StageState | None:
    """A clip's state in a stage, or None if the stage never ran on it."""
    return next((s for s in cat.stage_states(stage) if s.clip_id == clip_id), None)
