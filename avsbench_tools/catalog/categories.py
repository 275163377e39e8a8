"""Changing a collected clip's category and everything derived from it, in one transaction: the catalog's table
access for `categories.py` (the set-category command's stage)."""

from __future__ import annotations

import sqlite3

from avsbench_tools.catalog.connection import CatalogBase
from avsbench_tools.catalog.records import now


def _template(cat: str | None) -> str | None:
    return f"the {cat.replace('_', ' ')}" if cat else None


def _recategorise(db: sqlite3.Connection, cid: str, new: str) -> dict:
    clip = db.execute("SELECT category, source_id FROM clips WHERE clip_id=?", (cid,)).fetchone()
    if clip is None:
        raise KeyError(f"no clip {cid}")
    old = clip["category"]
    out = {"old": old, "new": new, "mask_versions": 0, "objects": 0, "expressions": 0, "kept_expressions": 0,
           "prompted": 0, "exported": db.execute(
               "SELECT 1 FROM stage_status WHERE clip_id=? AND stage='export' AND status='done'",
               (cid,)).fetchone() is not None}
    if old == new:
        return out
    db.execute("UPDATE clips SET category=? WHERE clip_id=?", (new, cid))
    db.execute("INSERT INTO category_changes(clip_id, old, new, changed_at) VALUES(?, ?, ?, ?)", (cid, old, new, now()))
    derived = "(category IS NULL OR category=?)" if old else "category IS NULL"
    args = (old,) if old else ()
    out["prompted"] = db.execute(
        f"SELECT COUNT(*) FROM mask_versions WHERE clip_id=? AND {derived} AND kind='proposal' "
        "AND backend='grounded-sam'", (cid, *args)).fetchone()[0]
    out["mask_versions"] = db.execute(f"UPDATE mask_versions SET category=? WHERE clip_id=? AND {derived}",
                                      (new, cid, *args)).rowcount
    fids = [r[0] for r in db.execute(f"SELECT fid FROM objects WHERE clip_id=? AND {derived}", (cid, *args))]
    out["objects"] = db.execute(f"UPDATE objects SET category=? WHERE clip_id=? AND {derived}",
                                (new, cid, *args)).rowcount
    old_text, new_text = _template(old), _template(new)
    for fid in fids:
        db.execute("UPDATE objects SET label=? WHERE clip_id=? AND fid=? AND label=?", (new_text, cid, fid, old_text))
        if old_text:
            out["expressions"] += db.execute(
                "UPDATE expressions SET text=? WHERE clip_id=? AND fid=? AND is_null=0 AND lower(text)=?",
                (new_text, cid, fid, old_text.lower())).rowcount
            out["kept_expressions"] += db.execute(
                "SELECT COUNT(*) FROM expressions WHERE clip_id=? AND fid=? AND is_null=0 "
                "AND instr(lower(text), ?) > 0", (cid, fid, old.replace("_", " ").lower())).fetchone()[0]
    src = clip["source_id"]
    others = db.execute("SELECT COUNT(*) FROM clips WHERE source_id=? AND (category IS NULL OR category!=?)",
                        (src, new)).fetchone()[0]
    if others == 0:
        db.execute("UPDATE sources SET category=? WHERE source_id=?", (new, src))
    return out


class CategoryMethods(CatalogBase):
    """Category changes (see `recategorise`)."""

    def recategorise(self, clip_id: str, category: str) -> dict:
        """Set a clip's category and what was derived from the old one, in one transaction.

        Changes clips.category; the clip's mask versions and objects whose category was the old one
        (or none); the objects' template labels and template expressions ("the <old category>"),
        counting written expressions that still name the old category without rewriting them; and the
        source's category when all its clips now have the new one. Returns {old, new, mask_versions,
        objects, expressions, kept_expressions, prompted (grounded-sam proposals prompted with the old
        category), exported (the clip is in an earlier release)}. An unknown clip id is a KeyError."""
        return self.recategorise_many({clip_id: category})[0]

    def recategorise_many(self, changes: dict[str, str]) -> list[dict]:
        """`recategorise` for several clips ({clip_id: category}), all in one transaction, in the given order."""
        with self.tx() as db:
            return [_recategorise(db, cid, new) for cid, new in changes.items()]
